//! Canonical JSON and content-addressed schema names.
//!
//! Canonical form: object keys sorted (by their UTF-8 bytes), no insignificant whitespace,
//! strings and numbers as serde_json writes them. Keys are sorted here explicitly, so the name
//! does not depend on whether some crate in the build turns on serde_json's `preserve_order`.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical JSON text of `value`.
pub fn to_canonical(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The schema name of a canonical JSON text: its SHA-256 in uppercase hex.
pub fn name_of(canonical: &str) -> String {
    let digest = Sha256::digest(canonical.as_bytes());
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// Whether `s` has the form of a schema name (64 uppercase hex digits).
pub fn is_name(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sorted_without_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, {"z": null, "a": "x\"y"}], "a": 1.5 }"#).unwrap();
        assert_eq!(
            to_canonical(&v),
            r#"{"a":1.5,"b":[1,{"a":"x\"y","z":null}]}"#
        );
    }

    #[test]
    fn name_is_independent_of_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"type":"object","properties":{"x":{},"y":{}}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"properties": {"y":{}, "x":{}}, "type": "object"}"#).unwrap();
        assert_eq!(name_of(&to_canonical(&a)), name_of(&to_canonical(&b)));
        assert_ne!(name_of(&to_canonical(&a)), name_of(r#"{"type":"object"}"#));
    }

    #[test]
    fn name_is_uppercase_sha256_hex() {
        // SHA-256 of "abc".
        assert_eq!(
            name_of("abc"),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
        assert!(is_name(&name_of("{}")));
        assert!(!is_name("ba7816bf"));
        assert!(!is_name(&name_of("{}").to_lowercase()));
    }
}
