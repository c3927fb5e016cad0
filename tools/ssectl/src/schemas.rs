//! The `schemas` verbs: the registry's schemas, which subject uses which, and what changed between
//! a subject's versions, merged over every schema replica given.

use serde_json::{Value, json};
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_proto::v1::{GetSchemaRequest, ListSchemasRequest, ListSubjectsRequest, Schema};
use sse_runtime::peers::Dialer;
use sse_schema::history;

use crate::cli::{Format, SchemasCmd};
use crate::clients::{links, refused};
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

/// Every schema of every replica (duplicates included).
async fn all_schemas(d: &Dialer, addrs: &[String]) -> anyhow::Result<Vec<Schema>> {
    let mut all = Vec::new();
    for (addr, link) in links(d, addrs).await? {
        let r = SchemaServiceClient::new(link)
            .list_schemas(ListSchemasRequest {})
            .await
            .map_err(|s| refused(&addr, s))?
            .into_inner();
        all.extend(r.schemas);
    }
    Ok(all)
}

/// `schemas diff`: what changed between two versions of a subject, one row per field.
async fn diff(
    d: &Dialer,
    addrs: &[String],
    fmt: Format,
    subject: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<()> {
    let versions = history::subject_versions(&all_schemas(d, addrs).await?, subject);
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
    let mut all = std::collections::BTreeMap::new();
    for s in all_schemas(d, addrs).await? {
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
    output::listing(fmt, &Value::Array(v), &table)
}

/// One schema, by subject (the schema a subject currently uses) or by schema name.
async fn show(
    d: &Dialer,
    addrs: &[String],
    fmt: Format,
    subject: &str,
    version: Option<String>,
) -> anyhow::Result<()> {
    let mut last = None;
    for (addr, link) in links(d, addrs).await? {
        let mut client = SchemaServiceClient::new(link);
        let subjects = client
            .list_subjects(ListSubjectsRequest {})
            .await
            .map_err(|s| refused(&addr, s))?
            .into_inner();
        let found = subjects.subjects.iter().find(|s| s.subject == subject);
        let (name, v) = match found.and_then(|s| s.schema.as_ref()) {
            Some(r) => (
                r.name.clone(),
                version.clone().unwrap_or_else(|| r.version.clone()),
            ),
            None => (subject.to_owned(), version.clone().unwrap_or_default()),
        };
        match client
            .get_schema(GetSchemaRequest { name, version: v })
            .await
        {
            Ok(r) => {
                let s = r.into_inner().schema.unwrap_or_default();
                return match fmt {
                    Format::Json | Format::Yaml => output::document(fmt, &schema_json(&s)),
                    Format::Text => {
                        let subjects: Vec<&str> = history::subjects_of(&s).collect();
                        output::say(format_args!(
                            "# {} {} ({})\n{}\n",
                            s.name,
                            s.version,
                            subjects.join(", "),
                            s.content
                        ))
                    }
                };
            }
            Err(s) => last = Some(refused(&addr, s)),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no schema for {subject}")))
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
