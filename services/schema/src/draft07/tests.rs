use serde_json::json;

use super::*;
use crate::infer::Shape;

/// The message of `check_document(v)`'s refusal.
fn refusal(v: &Value) -> String {
    match check_document(v) {
        Err(Error::InvalidSchema(m)) => m,
        other => panic!("{v}: {other:?}"),
    }
}

#[test]
fn what_the_inferrer_writes_passes_the_check() {
    let payloads = [
        json!({"t": 21, "s": "ws"}),
        json!({"t": 21.5, "s": null, "tags": ["a", "b"]}),
        json!({"t": 1, "pos": {"lat": 1.5, "lon": -2}, "tags": []}),
        json!({"t": "x", "pos": [1, {"a": true}], "tags": [1, "a", null, [2], {}]}),
        json!({"": {"$schema": 1, "type": {"type": 5}, "required": "x"}}),
        json!([{"a": 1}, {"b": [[[]]]}, 3, "s"]),
        json!(5),
        json!(null),
        json!("text"),
        json!(true),
        json!({}),
        json!([]),
    ];
    let mut merged = Shape::default();
    for p in &payloads {
        let alone = Shape::of(p).to_schema();
        check_document(&alone).unwrap_or_else(|e| panic!("{alone}: {e}"));
        merged = merged.merged(p);
        let schema = merged.to_schema();
        check_document(&schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
    }
}

#[test]
fn meta_schema_faults_are_named_where_they_are() {
    for (doc, at) in [
        (json!({"type": 5}), "at /type:"),
        (json!({"type": "integr"}), "at /type:"),
        (json!({"required": "a"}), "at /required:"),
        (
            json!({"properties": {"a": {"minimum": "0"}}}),
            "at /properties/a/minimum:",
        ),
        (json!({"items": [{"type": "string"}, 3]}), "at /items"),
        (
            json!({"type": "object", "uniqueItems": 1}),
            "at /uniqueItems:",
        ),
        (
            json!({"$schema": 7, "type": "object"}),
            "$schema names another dialect",
        ),
        (
            json!({"$schema": "http://json-schema.org/draft-04/schema#"}),
            "another dialect",
        ),
        (json!({"foo": 1}), "names no draft-07 keyword"),
        (json!([]), "must be a JSON object"),
    ] {
        let m = refusal(&doc);
        assert!(
            m.starts_with("content is not a JSON Schema draft-07 document: "),
            "{m}"
        );
        assert!(m.contains(at), "{doc}: {m}");
    }
}

#[test]
fn refusals_quote_no_value_and_are_bounded() {
    let long = "k\u{1b}[31m".repeat(500);
    let doc = json!({"properties": {long.clone(): {"type": format!("secret-{long}")}}});
    let m = refusal(&doc);
    assert!(!m.contains("secret"), "the value is masked: {m}");
    assert!(!m.contains('\u{1b}'), "control characters escaped: {m}");
    assert!(m.contains("\\u{1b}"), "{m}");
    assert!(m.len() < 2 * ECHO_BYTES_MAX + 100, "{} bytes: {m}", m.len());
    assert!(m.contains('…'), "{m}");
}

#[test]
fn documents_a_person_writes_pass() {
    for doc in [
        json!({}),
        json!({"$schema": "http://json-schema.org/draft-07/schema"}),
        json!({"$schema": "https://json-schema.org/draft-07/schema#", "type": "string"}),
        // Azure's example message schema: `name` beside draft-07 keywords.
        json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "name": "foobarbaz",
            "description": "A representation of an event",
            "type": "object",
            "required": ["date", "temperature"],
            "properties": {
                "date": {"type": "string", "format": "date"},
                "temperature": {"type": "number"}
            }
        }),
        json!({"definitions": {"p": {"type": "integer"}}, "$ref": "#/definitions/p"}),
        json!({"if": {"minimum": 0}, "then": {"multipleOf": 2}, "else": false}),
    ] {
        check_document(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
    }
}

#[test]
fn a_version_has_one_spelling() {
    for ok in [
        "0", "1", "10", "1.0", "1.0.3", "100.20", "beta", "1-rc.0", "v01", "1.0-01", "1.00-rc",
    ] {
        check_version_spelling(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (padded, one) in [
        ("01", "1"),
        ("00", "0"),
        ("1.02", "1.2"),
        ("007.000.1", "7.0.1"),
        ("01.x", "1.x"),
    ] {
        match check_version_spelling(padded) {
            Err(Error::VersionSpelling { version, canonical }) => {
                assert_eq!((version.as_str(), canonical.as_str()), (padded, one));
            }
            other => panic!("{padded}: {other:?}"),
        }
    }
    let m = check_version_spelling("01").unwrap_err().to_string();
    assert!(
        m.contains("leading zeros") && m.contains("use \"1\""),
        "{m}"
    );
}
