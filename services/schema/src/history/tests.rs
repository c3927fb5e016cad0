use super::*;
use crate::infer::Shape;
use serde_json::json;

/// The schema inference renders after seeing `payloads`, as the registry would hold it.
fn infer(payloads: &[Value]) -> Value {
    let mut s = Shape::default();
    for p in payloads {
        s = s.merged(p);
    }
    s.to_schema()
}

/// The changes' readable lines.
fn lines(old: &[Value], new: &[Value]) -> Vec<String> {
    diff(&infer(old), &infer(new))
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_same_schema_has_no_changes() {
    let v = [json!({"a": 1, "b": {"c": [1]}})];
    assert!(lines(&v, &v).is_empty());
}

#[test]
fn an_added_field_names_its_type() {
    let old = [json!({"temperature": 20})];
    let new = [
        json!({"temperature": 20}),
        json!({"temperature": 21, "humidity": 0.5}),
    ];
    assert_eq!(lines(&old, &new), ["added humidity (number)"]);
}

#[test]
fn a_removed_field() {
    let old = [json!({"a": 1, "b": "x"})];
    let new = [json!({"a": 1})];
    assert_eq!(lines(&old, &new), ["removed b"]);
}

#[test]
fn made_optional_and_made_required() {
    let old = [json!({"a": 1, "b": 1}), json!({"a": 1})];
    let new = [json!({"a": 1, "b": 1})];
    assert_eq!(lines(&old, &new), ["made required b"]);
    assert_eq!(lines(&new, &old), ["made optional b"]);
}

#[test]
fn integer_to_number_is_widened_and_back_is_narrowed() {
    let old = [json!({"value": 1})];
    let new = [json!({"value": 1.5})];
    assert_eq!(lines(&old, &new), ["widened value: integer -> number"]);
    assert_eq!(lines(&new, &old), ["narrowed value: number -> integer"]);
}

#[test]
fn a_type_added_to_a_list_is_widened() {
    let old = [json!({"s": "on"})];
    let new = [json!({"s": "on"}), json!({"s": null})];
    assert_eq!(lines(&old, &new), ["widened s: string -> null|string"]);
}

#[test]
fn an_unrelated_type_is_other() {
    let old = [json!({"s": "on"})];
    let new = [json!({"s": true})];
    assert_eq!(lines(&old, &new), ["changed s: string -> boolean"]);
    let c = &diff(&infer(&old), &infer(&new))[0];
    assert!(matches!(c.kind, ChangeKind::Other { .. }), "{c:?}");
}

#[test]
fn nested_fields_are_named_by_path() {
    let old = [json!({"m": {"t": 1, "u": {"x": "a"}}})];
    let new = [json!({"m": {"t": 1.5, "u": {"x": "a", "y": false}}})];
    assert_eq!(
        lines(&old, &new),
        ["widened m.t: integer -> number", "added m.u.y (boolean)"]
    );
}

#[test]
fn array_items_are_named_with_brackets() {
    let old = [json!({"r": [{"v": 1}]})];
    let new = [json!({"r": [{"v": 1, "w": "x"}]})];
    assert_eq!(lines(&old, &new), ["added r[].w (string)"]);
    let old = [json!({"r": []})];
    let new = [json!({"r": [1]})];
    assert_eq!(lines(&old, &new), ["added r[] (integer)"]);
    let old = [json!([1])];
    let new = [json!([1.5])];
    assert_eq!(lines(&old, &new), ["widened []: integer -> number"]);
}

#[test]
fn the_root_is_named_root() {
    let old = [json!(1)];
    let new = [json!("x")];
    assert_eq!(lines(&old, &new), ["changed (root): integer -> string"]);
}

#[test]
fn changes_serialize_with_their_kind() {
    let c = Change {
        path: "a".into(),
        kind: ChangeKind::Widened {
            from: "integer".into(),
            to: "number".into(),
        },
    };
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({"path": "a", "kind": "widened", "from": "integer", "to": "number"})
    );
}

fn schema(subject: &str, version: &str, content: Value) -> Schema {
    Schema {
        name: format!("N{version}"),
        version: version.into(),
        subject: subject.into(),
        content: content.to_string(),
        ..Default::default()
    }
}

#[test]
fn a_subjects_versions_are_ordered_by_version_key_without_duplicates() {
    let all = vec![
        schema("s", "10", json!({})),
        schema("s", "2", json!({})),
        schema("other", "3", json!({})),
        schema("s", "2", json!({})),
        schema("s", "1", json!({})),
    ];
    let v: Vec<String> = subject_versions(&all, "s")
        .into_iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(v, ["1", "2", "10"]);
}

#[test]
fn a_version_shared_by_subjects_is_in_each_history_and_an_older_server_still_counts() {
    let shared = Schema {
        subjects: vec!["a/d".into(), "b/d".into()],
        ..schema("a/d", "1", json!({}))
    };
    // From a server without `subjects`: its one subject.
    let older = schema("b/d", "2", json!({}));
    let manual = schema("", "3", json!({}));
    let all = vec![shared, older, manual];
    let versions = |subject| -> Vec<String> {
        subject_versions(&all, subject)
            .into_iter()
            .map(|s| s.version)
            .collect()
    };
    assert_eq!(versions("a/d"), ["1"]);
    assert_eq!(versions("b/d"), ["1", "2"]);
    assert!(versions("").is_empty());
    assert_eq!(subjects_of(&all[2]).count(), 0);
}

#[test]
fn pick_defaults_to_the_latest_two() {
    let v = vec![
        schema("s", "1", json!({})),
        schema("s", "2", json!({})),
        schema("s", "3", json!({})),
    ];
    let (a, b) = pick(&v, "s", None, None).unwrap();
    assert_eq!((a.version.as_str(), b.version.as_str()), ("2", "3"));
    let (a, b) = pick(&v, "s", Some("1"), Some("3")).unwrap();
    assert_eq!((a.version.as_str(), b.version.as_str()), ("1", "3"));
    let (a, b) = pick(&v, "s", None, Some("2")).unwrap();
    assert_eq!((a.version.as_str(), b.version.as_str()), ("1", "2"));
    assert!(matches!(
        pick(&v, "s", Some("9"), None),
        Err(HistoryError::NoSuchVersion { .. })
    ));
    assert!(matches!(
        pick(&v[..1], "s", None, None),
        Err(HistoryError::TooFewVersions { count: 1, .. })
    ));
    // It said "s has 0 version(s): nothing to compare" for a subject nothing has.
    let e = pick(&[], "s", None, None).unwrap_err();
    assert_eq!(e.to_string(), r#"no schema has subject "s""#);
}

#[test]
fn registered_versions_are_compared_by_content() {
    let a = schema("s", "1", infer(&[json!({"t": 1})]));
    let b = schema("s", "2", infer(&[json!({"t": 1, "h": 2.5})]));
    let c = diff_schemas(&a, &b).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].to_string(), "added h (number)");
    let bad = Schema {
        content: "{".into(),
        ..b
    };
    assert!(matches!(
        diff_schemas(&a, &bad),
        Err(HistoryError::NotJson { .. })
    ));
}
