//! What `PutSchema` accepts: a JSON Schema draft-07 document (the registry's one format,
//! [`crate::registry::FORMAT`]) and a version in its one spelling.
//!
//! The document is checked against the draft-07 meta-schema (the `jsonschema` crate, without its
//! remote fetching), so `{"type": 5}` or `{"required": "a"}` is refused. The meta-schema allows any
//! other member, so a document is also refused when its root names no draft-07 keyword at all:
//! `{"temperature": 21.5}` is a payload put where its schema belongs, and would match anything.
//! Unknown members beside draft-07 keywords stay allowed (Azure's own example schema names itself
//! with `name`). A `$schema` naming another dialect is refused: the registry would label it
//! draft-07. Versions already stored, by an older build or another registry, are not checked
//! here: they keep loading ([`crate::registry::validate_version`] only).
//!
//! Errors never echo the content: the meta-schema's message has the value masked, and the
//! message and the location in the document (member names are the caller's) are cut to
//! [`ECHO_BYTES_MAX`] with control characters escaped.

use serde_json::Value;

use crate::error::Error;
use crate::infer::DRAFT_07;

/// Bytes of the meta-schema's message, or of the location in the document, an error quotes.
pub const ECHO_BYTES_MAX: usize = 120;

/// Every keyword the draft-07 meta-schema defines (its `properties`).
pub const KEYWORDS: [&str; 46] = [
    "$id",
    "$schema",
    "$ref",
    "$comment",
    "title",
    "description",
    "default",
    "readOnly",
    "writeOnly",
    "examples",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "additionalItems",
    "items",
    "maxItems",
    "minItems",
    "uniqueItems",
    "contains",
    "maxProperties",
    "minProperties",
    "required",
    "additionalProperties",
    "definitions",
    "properties",
    "patternProperties",
    "dependencies",
    "propertyNames",
    "const",
    "enum",
    "type",
    "format",
    "contentMediaType",
    "contentEncoding",
    "if",
    "then",
    "else",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
];

/// Refuses `schema` unless it is a JSON Schema draft-07 document that names what it checks.
pub fn check_document(schema: &Value) -> Result<(), Error> {
    let refuse = |why: String| {
        Err(Error::InvalidSchema(format!(
            "content is not a JSON Schema draft-07 document: {why}"
        )))
    };
    let Some(root) = schema.as_object() else {
        return refuse("it must be a JSON object".into());
    };
    if let Some(dialect) = root.get("$schema")
        && !dialect.as_str().is_some_and(is_draft07_uri)
    {
        return refuse(format!(
            "$schema names another dialect; this registry holds {DRAFT_07} documents only"
        ));
    }
    if !root.is_empty() && !root.keys().any(|k| KEYWORDS.contains(&k.as_str())) {
        return refuse(
            "its root names no draft-07 keyword (type, properties, ...): a payload, not its schema?"
                .into(),
        );
    }
    if let Err(e) = jsonschema::draft7::meta::validate(schema) {
        let at = e.instance_path().to_string();
        let at = if at.is_empty() { "/".to_string() } else { at };
        return refuse(format!(
            "at {}: {}",
            bounded(&at),
            bounded(&e.masked().to_string())
        ));
    }
    Ok(())
}

/// Refuses a new version whose numeric parts (between dots) have leading zeros: `01` and `1`,
/// or `1.02` and `1.2`, would be two versions that read the same (and two `dataschema`
/// references a person cannot tell apart).
pub fn check_version_spelling(version: &str) -> Result<(), Error> {
    let padded = version
        .split('.')
        .any(|p| p.len() > 1 && p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit()));
    if !padded {
        return Ok(());
    }
    let one: Vec<&str> = version
        .split('.')
        .map(|p| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                match p.trim_start_matches('0') {
                    "" => "0",
                    rest => rest,
                }
            } else {
                p
            }
        })
        .collect();
    Err(Error::VersionSpelling {
        version: version.to_string(),
        canonical: one.join("."),
    })
}

/// Whether `uri` is the draft-07 meta-schema's (with or without its empty fragment).
fn is_draft07_uri(uri: &str) -> bool {
    let uri = uri.strip_suffix('#').unwrap_or(uri);
    let uri = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"));
    uri == Some("json-schema.org/draft-07/schema")
}

/// `text` cut to [`ECHO_BYTES_MAX`] bytes, its control characters escaped.
fn bounded(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > ECHO_BYTES_MAX {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests;
