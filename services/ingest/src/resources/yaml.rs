//! Parses one YAML document into a value with a node budget, aliases expanded: serde_yaml_ng
//! limits nesting depth and alias jumps, but a document of a few KiB whose aliases repeat a big
//! anchor many times ("billion laughs") would still build gigabytes. Counting while building
//! stops such a document once it has cost its budget.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde_yaml_ng::value::{Tag, TaggedValue};
use serde_yaml_ng::{Mapping, Value};
use sse_contract::resources::{RESOURCE_NODES_MIN, RESOURCE_NODES_PER_BYTE};

/// The nodes a document of `len` bytes may expand to.
pub fn node_budget(len: usize) -> usize {
    len.saturating_mul(RESOURCE_NODES_PER_BYTE)
        .max(RESOURCE_NODES_MIN)
}

/// Parses `text` (one document) into a value of at most [`node_budget`] nodes.
pub fn parse(text: &str) -> Result<Value, String> {
    let budget = node_budget(text.len());
    let left = Cell::new(Some(budget));
    Budgeted(&left)
        .deserialize(serde_yaml_ng::Deserializer::from_str(text))
        .map_err(|e| {
            if left.get().is_none() {
                format!("the document expands to more than {budget} YAML nodes (alias bomb?)")
            } else {
                e.to_string()
            }
        })
}

/// Builds a [`Value`], taking one node from the shared budget per node built (`None` once the
/// budget ran out).
#[derive(Clone, Copy)]
struct Budgeted<'a>(&'a Cell<Option<usize>>);

impl Budgeted<'_> {
    fn take<E: de::Error>(self) -> Result<(), E> {
        let left = self.0.get().and_then(|n| n.checked_sub(1));
        self.0.set(left);
        match left {
            Some(_) => Ok(()),
            None => Err(E::custom("node budget exhausted")),
        }
    }

    fn leaf<E: de::Error>(self, v: Value) -> Result<Value, E> {
        self.take()?;
        Ok(v)
    }
}

impl<'de> DeserializeSeed<'de> for Budgeted<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budgeted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        self.leaf(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        self.leaf(Value::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        self.leaf(Value::Number(u.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        self.leaf(Value::Number(f.into()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        self.leaf(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        self.leaf(Value::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.leaf(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.leaf(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut m = Mapping::new();
        while let Some((k, v)) = map.next_entry_seed(self, self)? {
            if m.contains_key(&k) {
                return Err(de::Error::custom(format_args!(
                    "duplicate mapping key {}",
                    serde_yaml_ng::to_string(&k).unwrap_or_default().trim_end()
                )));
            }
            m.insert(k, v);
        }
        Ok(Value::Mapping(m))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        self.take()?;
        let (tag, contents): (String, _) = data.variant()?;
        let value = de::VariantAccess::newtype_variant_seed(contents, self)?;
        Ok(Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_what_serde_yaml_ng_builds() {
        let text = "a: [1, -2, 3.5, true, ~, x]\nb: { c: !Tag { d: e } }\nf: &f [1, 2]\ng: *f\n";
        let want: Value = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(parse(text).unwrap(), want);
        assert!(parse("a: 1\na: 2\n").unwrap_err().contains("duplicate"));
        assert!(parse("a: [unclosed\n").is_err());
    }

    #[test]
    fn an_alias_bomb_is_refused_within_its_budget() {
        // 9 levels of 9 aliases: 9^9 (387 million) leaves from about 300 bytes.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&text).unwrap_err();
        assert!(e.contains("alias bomb"), "{e}");
        // A quadratic one that serde_yaml_ng's own alias limit lets through.
        let anchor = vec!["x"; 5000].join(", ");
        let aliases = vec!["*a"; 5000].join(", ");
        let text = format!("a: &a [{anchor}]\nb: [{aliases}]\n");
        assert!(parse(&text).unwrap_err().contains("alias bomb"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(parse(&text).is_err());
        let text = "- ".repeat(10_000) + "x";
        assert!(parse(&text).is_err());
    }
}
