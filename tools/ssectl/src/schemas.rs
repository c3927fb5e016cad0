//! The `schemas` verbs: the registry's schemas, which subject uses which, and what changed between
//! a subject's versions, merged over every schema replica given that answers (the others are
//! reported after).

use serde_json::{Value, json};
use sse_contract::limits::GRPC_MESSAGE_BYTES_MAX;
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_proto::v1::{
    GetSchemaRequest, ListSchemasRequest, ListSubjectsRequest, Schema, SchemaReference,
};
use sse_runtime::link::Link;
use sse_runtime::peers::Dialer;
use sse_schema::history;

use crate::cli::{Format, SchemasCmd};
use crate::clients::{Answers, ask, finish, refused};
use crate::output::{self, Table};

/// Runs a `schemas` verb.
pub async fn run(d: &Dialer, addrs: &[String], fmt: Format, c: SchemasCmd) -> anyhow::Result<()> {
    match c {
        SchemasCmd::List => list(d, addrs, fmt).await,
        SchemasCmd::Show { subject, version } => show(d, addrs, fmt, &subject, version).await,
        SchemasCmd::Diff { subject, from, to } => {
            diff(d, addrs, fmt, &subject, from.as_deref(), to.as_deref()).await
        }
    }
}

/// Every schema of every replica that answers (duplicates included), and the replicas that
/// did not.
async fn all_schemas(d: &Dialer, addrs: &[String]) -> anyhow::Result<(Vec<Schema>, Failed)> {
    let Answers { got, failed } = ask(d, addrs, every_schema).await?;
    let all = got.into_iter().flat_map(|(_, r)| r).collect();
    Ok((all, failed))
}

/// Most entries asked for per page of `ListSchemas` and `ListSubjects`: the server's maximum.
const PAGE_SIZE: i32 = sse_schema::paging::PAGE_SIZE_MAX as i32;

/// A client of one replica that reads what the services may send: a page holding one schema
/// over tonic's default 4 MiB decode limit still arrives.
fn client(link: Link) -> SchemaServiceClient<Link> {
    SchemaServiceClient::new(link).max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
}

/// Every schema version one replica has, page after page.
async fn every_schema(link: Link) -> Result<Vec<Schema>, tonic::Status> {
    let client = client(link);
    let pages = sse_schema::paging::read_pages(usize::MAX, |page_token| {
        let mut client = client.clone();
        async move {
            let req = ListSchemasRequest {
                page_size: PAGE_SIZE,
                page_token,
            };
            let r = client.list_schemas(req).await?.into_inner();
            Ok::<_, tonic::Status>((r.schemas, r.next_page_token))
        }
    });
    Ok(pages.await?.0)
}

/// The schema `subject` uses now at one replica, looked for page after page; `None` when the
/// replica has no such subject, or it has no schema yet.
async fn used_by(
    client: &mut SchemaServiceClient<Link>,
    subject: &str,
) -> Result<Option<SchemaReference>, tonic::Status> {
    let mut page_token = String::new();
    loop {
        let req = ListSubjectsRequest {
            page_size: PAGE_SIZE,
            page_token: page_token.clone(),
        };
        let r = client.list_subjects(req).await?.into_inner();
        if let Some(s) = r.subjects.into_iter().find(|s| s.subject == subject) {
            return Ok(s.schema);
        }
        if r.next_page_token.is_empty() || r.next_page_token == page_token {
            return Ok(None);
        }
        page_token = r.next_page_token;
    }
}

/// The addresses that did not answer, each as its error.
type Failed = Vec<anyhow::Error>;

/// `schemas diff`: what changed between two versions of a subject, one row per field.
async fn diff(
    d: &Dialer,
    addrs: &[String],
    fmt: Format,
    subject: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<()> {
    let (all, failed) = all_schemas(d, addrs).await?;
    finish(failed, print_diff(&all, fmt, subject, from, to))
}

/// Prints the diff of `subject` between two of its versions among `all`.
fn print_diff(
    all: &[Schema],
    fmt: Format,
    subject: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<()> {
    let versions = history::subject_versions(all, subject);
    let (a, b) = history::pick(&versions, subject, from, to)?;
    let changes = history::diff_schemas(a, b)?;
    let v = json!({
        "subject": subject, "from": a.version, "to": b.version, "changes": changes,
    });
    let table = Table {
        headers: vec!["FIELD", "CHANGE", "DETAIL"],
        rows: changes
            .iter()
            .map(|c| vec![c.shown_path().to_owned(), c.label().to_owned(), c.detail()])
            .collect(),
    };
    if fmt == Format::Text {
        output::say(format_args!(
            "# {subject}: version {} -> {}\n",
            a.version, b.version
        ))?;
    }
    output::listing(fmt, &v, &table)
}

/// Every schema (name, version, subject), merged and sorted: a version several subjects use
/// is listed under each of them.
async fn list(d: &Dialer, addrs: &[String], fmt: Format) -> anyhow::Result<()> {
    let (schemas, failed) = all_schemas(d, addrs).await?;
    let mut all = std::collections::BTreeMap::new();
    for s in schemas {
        let subjects: Vec<String> = history::subjects_of(&s).map(str::to_owned).collect();
        if subjects.is_empty() {
            all.insert((String::new(), s.name.clone(), s.version.clone()), s);
            continue;
        }
        for subject in subjects {
            let row = Schema {
                subject: subject.clone(),
                ..s.clone()
            };
            all.insert((subject, s.name.clone(), s.version.clone()), row);
        }
    }
    let v: Vec<Value> = all.values().map(schema_json).collect();
    let table = Table {
        headers: vec!["SUBJECT", "NAME", "VERSION", "FORMAT"],
        rows: all
            .values()
            .map(|s| {
                vec![
                    s.subject.clone(),
                    s.name.clone(),
                    s.version.clone(),
                    s.format.clone(),
                ]
            })
            .collect(),
    };
    finish(failed, output::listing(fmt, &Value::Array(v), &table))
}

/// One schema, by subject (the schema a subject currently uses) or by schema name: the first
/// replica that has it answers.
async fn show(
    d: &Dialer,
    addrs: &[String],
    fmt: Format,
    subject: &str,
    version: Option<String>,
) -> anyhow::Result<()> {
    let Answers { got, failed } = ask(d, addrs, |link| {
        lookup(link, subject.to_owned(), version.clone())
    })
    .await?;
    let mut last = None;
    for (addr, found) in got {
        match found {
            Ok(s) => return finish(failed, print_schema(fmt, &s)),
            Err(s) => last = Some(refused(&addr, s)),
        }
    }
    let none = last.unwrap_or_else(|| anyhow::anyhow!("no schema for {subject}"));
    finish(failed, Err(none))
}

/// One replica's schema of `subject` (a subject, or else a schema name) at `version` (default:
/// the one the subject uses now, or the latest): `Ok(Err(..))` when the replica answers that it
/// has none, `Err` when it does not answer.
async fn lookup(
    link: Link,
    subject: String,
    version: Option<String>,
) -> Result<Result<Schema, tonic::Status>, tonic::Status> {
    let mut client = client(link);
    let (name, v) = match used_by(&mut client, &subject).await? {
        Some(r) => (r.name, version.unwrap_or(r.version)),
        None => (subject, version.unwrap_or_default()),
    };
    match client
        .get_schema(GetSchemaRequest { name, version: v })
        .await
    {
        Ok(r) => Ok(Ok(r.into_inner().schema.unwrap_or_default())),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(Err(s)),
        Err(s) => Err(s),
    }
}

/// Prints one schema: as a document for scripts, its content under a heading for people.
fn print_schema(fmt: Format, s: &Schema) -> anyhow::Result<()> {
    match fmt {
        Format::Json | Format::Yaml => output::document(fmt, &schema_json(s)),
        Format::Text => {
            let subjects: Vec<&str> = history::subjects_of(s).collect();
            output::say(format_args!(
                "# {} {} ({})\n{}\n",
                s.name,
                s.version,
                subjects.join(", "),
                s.content
            ))
        }
    }
}

/// A schema as JSON, its content parsed when it is JSON.
fn schema_json(s: &Schema) -> Value {
    let content = serde_json::from_str(&s.content).unwrap_or_else(|_| json!(s.content));
    let subjects: Vec<&str> = history::subjects_of(s).collect();
    json!({
        "subject": s.subject, "subjects": subjects, "name": s.name, "version": s.version,
        "namespace": s.namespace, "format": s.format, "content": content,
    })
}
