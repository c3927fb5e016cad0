use super::*;
use serde_json::json;

fn infer(payloads: &[Value]) -> Value {
    let mut s = Shape::default();
    for p in payloads {
        s = s.merged(p);
    }
    s.to_schema()
}

#[test]
fn scalar_types() {
    for (v, t) in [
        (json!(null), "null"),
        (json!(true), "boolean"),
        (json!(3), "integer"),
        (json!(-3), "integer"),
        (json!(u64::MAX), "integer"),
        (json!(1.5), "number"),
        (json!("x"), "string"),
    ] {
        assert_eq!(infer(std::slice::from_ref(&v))["type"], t, "{v}");
    }
}

#[test]
fn root_has_draft07_and_no_additional_properties() {
    let s = infer(&[json!({"a": {"b": 1}})]);
    assert_eq!(s["$schema"], DRAFT_07);
    assert!(s["properties"]["a"].get("$schema").is_none());
    assert!(!s.to_string().contains("additionalProperties"));
}

#[test]
fn object_properties_and_required() {
    let s = infer(&[json!({"b": 1, "a": "x"})]);
    assert_eq!(
        s,
        json!({
            "$schema": DRAFT_07,
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
            "required": ["a", "b"]
        })
    );
}

#[test]
fn property_missing_from_some_payloads_is_not_required() {
    let s = infer(&[json!({"a": 1, "b": 2}), json!({"a": 3, "c": 4})]);
    assert_eq!(s["required"], json!(["a"]));
    assert_eq!(s["properties"]["b"]["type"], "integer");
    assert_eq!(s["properties"]["c"]["type"], "integer");
}

#[test]
fn required_omitted_when_empty() {
    let s = infer(&[json!({"a": 1}), json!({"b": 2})]);
    assert!(s.get("required").is_none(), "{s}");
    let s = infer(&[json!({})]);
    assert_eq!(s["properties"], json!({}));
    assert!(s.get("required").is_none(), "{s}");
}

#[test]
fn null_and_string_become_sorted_type_list() {
    let s = infer(&[json!({"a": "x"}), json!({"a": null})]);
    assert_eq!(s["properties"]["a"]["type"], json!(["null", "string"]));
    let s = infer(&[json!(null), json!("x")]);
    assert_eq!(s["type"], json!(["null", "string"]));
}

#[test]
fn integer_and_number_widen_to_number() {
    assert_eq!(infer(&[json!(1), json!(1.5)])["type"], "number");
    assert_eq!(infer(&[json!(1.5), json!(1)])["type"], "number");
    assert_eq!(infer(&[json!(1), json!(2)])["type"], "integer");
    assert_eq!(
        infer(&[json!(1), json!(null), json!(2.5)])["type"],
        json!(["null", "number"])
    );
}

#[test]
fn other_conflicts_become_type_list_keeping_members() {
    let s = infer(&[json!({"a": 1}), json!("x"), json!([true])]);
    assert_eq!(s["type"], json!(["array", "object", "string"]));
    assert_eq!(s["properties"]["a"]["type"], "integer");
    assert_eq!(s["required"], json!(["a"]));
    assert_eq!(s["items"]["type"], "boolean");
    assert_eq!(
        infer(&[json!(true), json!(1)])["type"],
        json!(["boolean", "integer"])
    );
}

#[test]
fn object_after_null_starts_required_from_that_object() {
    let s = infer(&[json!(null), json!({"a": 1})]);
    assert_eq!(s["type"], json!(["null", "object"]));
    assert_eq!(s["required"], json!(["a"]));
}

#[test]
fn arrays_merge_items_over_all_elements() {
    let s = infer(&[json!([1, 2.5, null])]);
    assert_eq!(s["items"]["type"], json!(["null", "number"]));
    let s = infer(&[json!([{"a": 1, "b": 1}, {"a": 2}])]);
    assert_eq!(s["items"]["required"], json!(["a"]));
    let s = infer(&[json!(["x"]), json!([1])]);
    assert_eq!(s["items"]["type"], json!(["integer", "string"]));
}

#[test]
fn empty_array_has_no_items_until_an_element_is_seen() {
    let s = infer(&[json!([])]);
    assert_eq!(s, json!({"$schema": DRAFT_07, "type": "array"}));
    let s = infer(&[json!([]), json!(["x"])]);
    assert_eq!(s["items"]["type"], "string");
}

#[test]
fn objects_nest() {
    let s = infer(&[
        json!({"o": {"p": {"q": [ {"r": 1} ]}}}),
        json!({"o": {"p": {"q": [ {"r": "s"} ]}}}),
    ]);
    assert_eq!(
        s["properties"]["o"]["properties"]["p"]["properties"]["q"]["items"]["properties"]["r"]["type"],
        json!(["integer", "string"])
    );
    assert_eq!(s["properties"]["o"]["required"], json!(["p"]));
}

#[test]
fn covers_exactly_when_merge_changes_nothing() {
    let cases = [
        (json!({"a": 1, "b": "x"}), json!({"b": "y", "a": 2}), true),
        (json!({"a": 1.5}), json!({"a": 2}), true),
        (json!({"a": 1}), json!({"a": 2.5}), false),
        (json!({"a": 1, "b": 1}), json!({"a": 1}), false),
        (json!({"a": 1}), json!({"a": 1, "b": 1}), false),
        (json!([1]), json!([]), true),
        (json!([]), json!([1]), false),
        (json!([1]), json!([1, 2, 3]), true),
        (json!(null), json!({}), false),
        (json!("x"), json!(null), false),
        (
            json!({"a": [{"b": null}]}),
            json!({"a": [{"b": null}, {"b": null}]}),
            true,
        ),
    ];
    for (first, second, covered) in cases {
        let s = Shape::of(&first);
        assert_eq!(s.covers(&second), covered, "{first} then {second}");
        assert_eq!(s.merged(&second) == s, covered, "{first} then {second}");
    }
    assert!(!Shape::default().covers(&json!(null)));
}

#[test]
fn covers_json_agrees_with_covers() {
    let shapes = [
        json!({"a": 1, "b": "x", "c": [1.5, null], "d": {"e": true}}),
        json!({"a": 1.5}),
        json!([]),
        json!([{"a": 1}]),
        json!(null),
    ];
    let payloads = [
        r#"{"b":"y","a":2,"c":[],"d":{"e":false}}"#,
        r#"{"a":2,"b":"y","c":[1,null,2.5],"d":{"e":false}}"#,
        r#"{"a":2,"b":"y","c":[1,null,2.5],"d":{}}"#,
        r#"{"a":2,"b":"y","c":[1,"s"],"d":{"e":false}}"#,
        r#"{"a":2,"c":[],"d":{"e":false}}"#,
        r#"{"a":2,"b":"y","c":[],"d":{"e":false},"z":1}"#,
        r#"{"a":1}"#,
        r#"{"a":"1"}"#,
        "[]",
        "[1]",
        r#"[{"a":5}, {"a":6}]"#,
        r#"[{"a":5}, {}]"#,
        "null",
        r#"{"a\u0041":1}"#,
    ];
    for shape in &shapes {
        let s = Shape::of(shape);
        for p in payloads {
            let v: Value = serde_json::from_str(p).unwrap();
            assert_eq!(
                s.covers_json(p.as_bytes(), 64, 1000),
                s.covers(&v),
                "{shape} / {p}"
            );
        }
    }
}

#[test]
fn covers_json_is_never_wrongly_true() {
    let s = Shape::of(&json!({"a": 1, "b": 2}));
    // A duplicate key hides a missing required one.
    assert!(!s.covers_json(br#"{"a":1,"a":2}"#, 64, 1000));
    assert!(!s.covers_json(br#"{"a":1,"b":2} trailing"#, 64, 1000));
    assert!(!s.covers_json(br#"{"a":1,"b":"#, 64, 1000));
    assert!(!s.covers_json(b"", 64, 1000));
    // Limits: depth 1 and 2 members.
    assert!(s.covers_json(br#"{"a":1,"b":2}"#, 1, 2));
    assert!(!s.covers_json(br#"{"a":1,"b":2}"#, 0, 2));
    assert!(!s.covers_json(br#"{"a":1,"b":2}"#, 1, 1));
    let escaped = br#"{"\u0061":1,"b":2}"#;
    assert!(s.covers_json(escaped, 64, 1000));
}

#[test]
fn property_count_covers_every_level() {
    assert_eq!(Shape::default().property_count(), 0);
    assert_eq!(Shape::of(&json!(3)).property_count(), 0);
    let s = Shape::of(&json!({"a": 1, "b": {"c": 1, "d": [{"e": 1}, {"f": 2}]}}));
    // a, b, b.c, b.d, b.d[].e, b.d[].f
    assert_eq!(s.property_count(), 6);
    // Known keys merged again add nothing.
    assert_eq!(s.merged(&json!({"a": "x", "b": {}})).property_count(), 6);
}

#[test]
fn merge_is_order_independent_for_types() {
    let a = json!({"x": 1, "y": null});
    let b = json!({"x": 2.5, "y": "s", "z": true});
    assert_eq!(
        Shape::of(&a).merged(&b).to_schema(),
        Shape::of(&b).merged(&a).to_schema()
    );
}

#[test]
fn schema_round_trips_so_a_restart_keeps_merging() {
    let payloads = [
        json!({"a": [1, {"b": null}], "c": {}, "d": []}),
        json!({"a": ["x"], "c": {"e": 1.5}, "f": null}),
    ];
    let mut s = Shape::default();
    for p in &payloads {
        s = s.merged(p);
        let back = Shape::from_schema(&s.to_schema()).unwrap();
        assert_eq!(back, s);
    }
    let resumed = Shape::from_schema(&s.to_schema()).unwrap();
    let next = json!({"a": [true]});
    assert_eq!(resumed.merged(&next), s.merged(&next));
}

#[test]
fn foreign_schemas_are_rejected_by_from_schema() {
    assert!(Shape::from_schema(&json!({"type": "object", "anyOf": []})).is_err());
    assert!(Shape::from_schema(&json!({"type": "date"})).is_err());
    assert!(Shape::from_schema(&json!("object")).is_err());
    assert!(Shape::from_schema(&json!({"properties": {"a": {"$schema": "x"}}})).is_err());
}
