//! What each verb does: the device and asset verbs here, the watching verbs in `watch`, the
//! registry's in `schemas`.

use anyhow::Context as _;
use serde_json::{Value, json};
use sse_proto::v1::ingest_service_client::IngestServiceClient;
use sse_proto::v1::{DeleteResourceRequest, GetResourceRequest, PutResourceRequest};
use sse_runtime::link::Link;
use sse_runtime::peers::Dialer;

use crate::cli::{
    AssetCmd, AssetSseCmd, Cli, Cmd, DeviceCmd, EndpointCmd, EndpointKind, Format, Write,
};
use crate::clients::{Answers, ask, dialer, finish, links, refused};
use crate::output::{self, Table};
use crate::resources;

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Cmd::Completions { shell } = cli.cmd {
        return completions(shell);
    }
    let d = dialer(&cli.conn)?;
    let fmt = cli.output;
    match cli.cmd {
        Cmd::Device(c) => device(&d, &cli.conn.ingest, fmt, c).await,
        Cmd::Asset(c) => asset(&d, &cli.conn.ingest, fmt, c).await,
        Cmd::Status { asset } => crate::watch::status(&d, &cli.conn.ingest, fmt, asset).await,
        Cmd::Streams => crate::watch::streams(&d, &cli.conn.ingest, fmt).await,
        Cmd::Tail(t) => crate::tail::run(&d, &cli.conn.publisher, &cli.conn.ingest, fmt, t).await,
        Cmd::Schemas(c) => crate::schemas::run(&d, &cli.conn.schema, fmt, c).await,
        Cmd::Completions { .. } => Ok(()),
    }
}

/// Prints the completion script of `shell`.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    output::say(format_args!(
        "{}",
        String::from_utf8_lossy(&completion_script(shell))
    ))
}

/// The completion script of `shell`, generated from the same definition that parses (into
/// memory: clap_complete panics on a write error, such as a closed pipe).
fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ssectl", &mut script);
    script
}

/// Where writes go and what is done with them.
struct Writer<'a> {
    dialer: &'a Dialer,
    addrs: &'a [String],
    fmt: Format,
    write: Write,
}

/// The `device` verbs.
async fn device(d: &Dialer, addrs: &[String], fmt: Format, c: DeviceCmd) -> anyhow::Result<()> {
    let w = |write| Writer {
        dialer: d,
        addrs,
        fmt,
        write,
    };
    match c {
        DeviceCmd::Create { name, write } => {
            put(&w(write), &resources::empty_device(&name), true).await
        }
        DeviceCmd::Endpoint(EndpointCmd::Add(EndpointKind::Sse(e))) => {
            let doc = get(d, addrs, "Device", &e.device).await?;
            let doc = resources::add_endpoint(doc, &e)?;
            put(&w(e.write), &doc, false).await
        }
        DeviceCmd::Show { name } => output::document(fmt, &get(d, addrs, "Device", &name).await?),
        DeviceCmd::List => names(d, addrs, fmt, "Device").await,
        DeviceCmd::Delete { name, write } => delete(&w(write), "Device", &name).await,
    }
}

/// The `asset` verbs.
async fn asset(d: &Dialer, addrs: &[String], fmt: Format, c: AssetCmd) -> anyhow::Result<()> {
    let w = |write| Writer {
        dialer: d,
        addrs,
        fmt,
        write,
    };
    match c {
        AssetCmd::Sse(AssetSseCmd::Create(a)) => {
            put(&w(a.write), &resources::asset(&a)?, true).await
        }
        AssetCmd::Show { name } => output::document(fmt, &get(d, addrs, "Asset", &name).await?),
        AssetCmd::List => names(d, addrs, fmt, "Asset").await,
        AssetCmd::Delete { name, write } => delete(&w(write), "Asset", &name).await,
    }
}

/// The replica resources are written through: the first address (all replicas watch one
/// resources directory, so any of them will do).
async fn writer(d: &Dialer, addrs: &[String]) -> anyhow::Result<(String, Link)> {
    let first = addrs.first().context("no --ingest address")?;
    let mut l = links(d, std::slice::from_ref(first)).await?;
    l.pop().context("no --ingest address")
}

/// Reads a resource as a document.
async fn get(d: &Dialer, addrs: &[String], kind: &str, name: &str) -> anyhow::Result<Value> {
    let (addr, link) = writer(d, addrs).await?;
    let req = GetResourceRequest {
        kind: kind.into(),
        name: name.into(),
    };
    let r = IngestServiceClient::new(link)
        .get_resource(req)
        .await
        .map_err(|s| refused(&addr, s))?
        .into_inner();
    serde_yaml_ng::from_str(&r.yaml).with_context(|| format!("{kind}/{name} is not YAML"))
}

/// Writes a resource (`only_if_absent` for the create verbs), or with --dry-run prints the YAML
/// it would send, byte for byte, and connects to nothing.
async fn put(w: &Writer<'_>, doc: &Value, only_if_absent: bool) -> anyhow::Result<()> {
    let yaml = serde_yaml_ng::to_string(doc)?;
    if w.write.dry_run {
        return output::say(format_args!("{yaml}"));
    }
    let (addr, link) = writer(w.dialer, w.addrs).await?;
    let req = PutResourceRequest {
        yaml,
        only_if_absent,
    };
    let r = IngestServiceClient::new(link)
        .put_resource(req)
        .await
        .map_err(|s| refused(&addr, s))?
        .into_inner();
    let fmt = w.fmt;
    let v = json!({ "kind": r.kind, "name": r.name, "file": r.file, "created": r.created });
    match fmt {
        Format::Json | Format::Yaml => output::document(fmt, &v),
        Format::Text => {
            let verb = if r.created { "created" } else { "updated" };
            output::say(format_args!("{}/{} {verb} ({})\n", r.kind, r.name, r.file))
        }
    }
}

/// Deletes a resource, or with --dry-run says what it would delete and connects to nothing.
async fn delete(w: &Writer<'_>, kind: &str, name: &str) -> anyhow::Result<()> {
    if w.write.dry_run {
        return output::say(format_args!("{kind}/{name} would be deleted (dry run)\n"));
    }
    let (addr, link) = writer(w.dialer, w.addrs).await?;
    let req = DeleteResourceRequest {
        kind: kind.into(),
        name: name.into(),
    };
    IngestServiceClient::new(link)
        .delete_resource(req)
        .await
        .map_err(|s| refused(&addr, s))?;
    output::say(format_args!("{kind}/{name} deleted\n"))
}

/// Lists the devices or assets every replica that answers reports status for, with their
/// configuration error if any.
async fn names(d: &Dialer, addrs: &[String], fmt: Format, kind: &str) -> anyhow::Result<()> {
    let Answers { got, failed } = ask(d, addrs, crate::watch::get_status).await?;
    let mut rows = std::collections::BTreeMap::new();
    for (_, s) in got {
        let err = |c: &Option<sse_proto::v1::ConfigStatus>| {
            c.as_ref()
                .and_then(|c| c.error.as_ref())
                .map(|e| e.message.clone())
                .unwrap_or_default()
        };
        if kind == "Device" {
            rows.extend(s.devices.iter().map(|x| (x.name.clone(), err(&x.config))));
        } else {
            rows.extend(s.assets.iter().map(|x| (x.name.clone(), err(&x.config))));
        }
    }
    let v: Vec<Value> = rows
        .iter()
        .map(|(n, e)| json!({ "name": n, "error": e }))
        .collect();
    let table = Table {
        headers: vec!["NAME", "ERROR"],
        rows: rows.into_iter().map(|(n, e)| vec![n, e]).collect(),
    };
    finish(failed, output::listing(fmt, &Value::Array(v), &table))
}

#[cfg(test)]
mod tests {
    use clap_complete::Shell;

    use super::*;

    #[test]
    fn every_shell_completes_the_verbs() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell] {
            let script = String::from_utf8(completion_script(shell)).unwrap_or_default();
            for word in ["schemas", "diff", "dry-run", "completions"] {
                assert!(script.contains(word), "{shell}: no {word}");
            }
        }
    }
}
