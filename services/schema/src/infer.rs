//! JSON Schema (draft-07) inference: the shape of JSON payloads, merged over time.
//!
//! A [`Shape`] is the state of a subject's schema; merging a payload into it is a pure function
//! ([`Shape::merged`]), and [`Shape::from_schema`] reads back a schema this module rendered, so a
//! restart resumes merging from the last registered version.
//!
//! Merge rules:
//! - each JSON kind maps to a draft-07 type: `null`, `boolean`, `integer` (a number written
//!   without fraction or exponent), `number`, `string`, `array`, `object`;
//! - `integer` and `number` widen to `number`; a `number` schema already covers integers;
//! - any other conflict keeps every type seen, as a sorted `type` list (`["null","string"]`,
//!   `["object","string"]`). `properties`, `required` and `items` then describe the object and
//!   array members of the union only, which is what draft-07 means by them. We chose a type list
//!   over `anyOf` because it is shorter, keeps one node per path, and merges trivially;
//! - an object's `properties` are the union of the keys seen; `required` holds the keys present
//!   in every object seen at that place (omitted when empty); objects nest;
//! - an array's `items` is the merge of every element seen (omitted while only empty arrays were
//!   seen);
//! - `additionalProperties` is never emitted, and the root carries `$schema`.
//!
//! Fast path: [`Shape::covers`] tells, without allocating, whether merging a payload would change
//! nothing (same shape in another key order or with other values), so known shapes cost one walk.
//! [`Shape::covers_json`] does the same on the raw bytes while parsing them, without building a
//! `Value` at all (keys are borrowed from the input), so a known shape costs less than parsing.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::Error;

/// The `$schema` URI of every schema this service produces.
pub const DRAFT_07: &str = "http://json-schema.org/draft-07/schema#";

/// A JSON Schema type name. Declared in alphabetical order, so a set of them renders sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `array`
    Array,
    /// `boolean`
    Boolean,
    /// `integer`
    Integer,
    /// `null`
    Null,
    /// `number`
    Number,
    /// `object`
    Object,
    /// `string`
    String,
}

impl Kind {
    /// The draft-07 type name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Array => "array",
            Kind::Boolean => "boolean",
            Kind::Integer => "integer",
            Kind::Null => "null",
            Kind::Number => "number",
            Kind::Object => "object",
            Kind::String => "string",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "array" => Kind::Array,
            "boolean" => Kind::Boolean,
            "integer" => Kind::Integer,
            "null" => Kind::Null,
            "number" => Kind::Number,
            "object" => Kind::Object,
            "string" => Kind::String,
            _ => return None,
        })
    }
}

/// A set of [`Kind`]s as a bit set (iterates in [`Kind`] order, which is alphabetical).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Kinds(u8);

impl Kinds {
    const ALL: [Kind; 7] = [
        Kind::Array,
        Kind::Boolean,
        Kind::Integer,
        Kind::Null,
        Kind::Number,
        Kind::Object,
        Kind::String,
    ];

    fn bit(k: Kind) -> u8 {
        1 << (k as u8)
    }

    fn contains(&self, k: &Kind) -> bool {
        self.0 & Self::bit(*k) != 0
    }

    /// Adds `k`; true when it was not there.
    fn insert(&mut self, k: Kind) -> bool {
        let new = !self.contains(&k);
        self.0 |= Self::bit(k);
        new
    }

    fn remove(&mut self, k: &Kind) {
        self.0 &= !Self::bit(*k);
    }

    fn iter(&self) -> impl Iterator<Item = &Kind> + '_ {
        Self::ALL.iter().filter(|k| self.contains(k))
    }
}

/// The inferred schema of one place in a JSON document (the root, a property, array items).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    types: Kinds,
    properties: BTreeMap<String, Shape>,
    required: BTreeSet<String>,
    items: Option<Box<Shape>>,
}

impl Shape {
    /// The shape of one payload.
    pub fn of(value: &Value) -> Self {
        let mut s = Shape::default();
        s.absorb(value);
        s
    }

    /// This shape merged with `value`'s: a pure function, the heart of inference.
    pub fn merged(&self, value: &Value) -> Self {
        let mut s = self.clone();
        s.absorb(value);
        s
    }

    /// Whether merging `value` would leave this shape unchanged.
    pub fn covers(&self, value: &Value) -> bool {
        match value {
            Value::Null => self.types.contains(&Kind::Null),
            Value::Bool(_) => self.types.contains(&Kind::Boolean),
            Value::Number(n) if is_integer(n) => {
                self.types.contains(&Kind::Integer) || self.types.contains(&Kind::Number)
            }
            Value::Number(_) => self.types.contains(&Kind::Number),
            Value::String(_) => self.types.contains(&Kind::String),
            Value::Array(elems) => {
                self.types.contains(&Kind::Array)
                    && elems.iter().all(|e| match &self.items {
                        Some(items) => items.covers(e),
                        None => false,
                    })
            }
            Value::Object(map) => {
                self.types.contains(&Kind::Object)
                    && self.required.iter().all(|k| map.contains_key(k))
                    && map.iter().all(|(k, v)| match self.properties.get(k) {
                        Some(p) => p.covers(v),
                        None => false,
                    })
            }
        }
    }

    /// Whether `data` is JSON within `max_depth` and `max_properties` (see
    /// `pipeline::Limits`) whose merge would leave this shape unchanged, checked while parsing,
    /// without building a `Value`. `false` means "take the slow path" (not JSON, over a limit,
    /// a new shape, or duplicate keys), never a wrong `true`.
    pub fn covers_json(&self, data: &[u8], max_depth: usize, max_properties: usize) -> bool {
        let members = Cell::new(0);
        let check = Check {
            shape: self,
            depth: 0,
            max_depth,
            max_properties,
            members: &members,
        };
        let mut de = serde_json::Deserializer::from_slice(data);
        matches!(check.deserialize(&mut de), Ok(true)) && de.end().is_ok()
    }

    /// How many properties the schema of this shape has, counted over every level (nested
    /// objects and array items included): what `--max-schema-properties` caps.
    pub fn property_count(&self) -> usize {
        let nested: usize = self.properties.values().map(Shape::property_count).sum();
        self.properties.len() + nested + self.items.as_ref().map_or(0, |i| i.property_count())
    }

    /// The types this place has been seen with.
    pub fn types(&self) -> impl Iterator<Item = Kind> + '_ {
        self.types.iter().copied()
    }

    fn absorb(&mut self, value: &Value) {
        match value {
            Value::Null => {
                self.types.insert(Kind::Null);
            }
            Value::Bool(_) => {
                self.types.insert(Kind::Boolean);
            }
            Value::Number(n) if is_integer(n) => {
                if !self.types.contains(&Kind::Number) {
                    self.types.insert(Kind::Integer);
                }
            }
            Value::Number(_) => {
                self.types.remove(&Kind::Integer);
                self.types.insert(Kind::Number);
            }
            Value::String(_) => {
                self.types.insert(Kind::String);
            }
            Value::Array(elems) => {
                self.types.insert(Kind::Array);
                for e in elems {
                    self.items.get_or_insert_with(Default::default).absorb(e);
                }
            }
            Value::Object(map) => {
                if self.types.insert(Kind::Object) {
                    // The first object seen here: every key it has is required so far.
                    self.required = map.keys().cloned().collect();
                } else {
                    self.required.retain(|k| map.contains_key(k));
                }
                for (k, v) in map {
                    match self.properties.get_mut(k) {
                        Some(p) => p.absorb(v),
                        None => {
                            self.properties.insert(k.clone(), Shape::of(v));
                        }
                    }
                }
            }
        }
    }

    /// The draft-07 schema document of this shape, with `$schema` at the root.
    pub fn to_schema(&self) -> Value {
        let mut v = self.render();
        if let Value::Object(m) = &mut v {
            m.insert("$schema".into(), Value::String(DRAFT_07.into()));
        }
        v
    }

    fn render(&self) -> Value {
        let mut m = Map::new();
        let types: Vec<Value> = self
            .types
            .iter()
            .map(|t| Value::String(t.as_str().into()))
            .collect();
        match types.len() {
            0 => {}
            1 => {
                m.insert("type".into(), types.into_iter().next().unwrap_or_default());
            }
            _ => {
                m.insert("type".into(), Value::Array(types));
            }
        }
        if self.types.contains(&Kind::Object) {
            let props: Map<String, Value> = self
                .properties
                .iter()
                .map(|(k, p)| (k.clone(), p.render()))
                .collect();
            m.insert("properties".into(), Value::Object(props));
            if !self.required.is_empty() {
                let req = self.required.iter().cloned().map(Value::String).collect();
                m.insert("required".into(), Value::Array(req));
            }
        }
        if let (true, Some(items)) = (self.types.contains(&Kind::Array), &self.items) {
            m.insert("items".into(), items.render());
        }
        Value::Object(m)
    }

    /// Reads back a schema rendered by [`Shape::to_schema`] (to resume merging after a restart).
    /// Keywords this module never emits are an error, so a foreign schema is not half-understood.
    pub fn from_schema(schema: &Value) -> Result<Self, Error> {
        Self::parse(schema, true)
    }

    fn parse(v: &Value, root: bool) -> Result<Self, Error> {
        let bad = |what: &str| Error::InvalidSchema(what.to_string());
        let m = v.as_object().ok_or_else(|| bad("not an object"))?;
        let mut s = Shape::default();
        for (k, val) in m {
            match k.as_str() {
                "$schema" if root => {}
                "type" => {
                    let names: Vec<&Value> = match val {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for n in names {
                        let kind = n
                            .as_str()
                            .and_then(Kind::parse)
                            .ok_or_else(|| bad("unknown type"))?;
                        s.types.insert(kind);
                    }
                }
                "properties" => {
                    let props = val.as_object().ok_or_else(|| bad("properties"))?;
                    for (pk, pv) in props {
                        s.properties.insert(pk.clone(), Self::parse(pv, false)?);
                    }
                }
                "required" => {
                    let req = val.as_array().ok_or_else(|| bad("required"))?;
                    for r in req {
                        let r = r.as_str().ok_or_else(|| bad("required"))?;
                        s.required.insert(r.to_string());
                    }
                }
                "items" => s.items = Some(Box::new(Self::parse(val, false)?)),
                other => return Err(bad(&format!("unsupported keyword {other}"))),
            }
        }
        if s.types.contains(&Kind::Number) {
            s.types.remove(&Kind::Integer);
        }
        Ok(s)
    }
}

/// The streaming check of [`Shape::covers_json`]: a visitor that fails (aborting the parse) at
/// the first value the shape does not cover.
struct Check<'s> {
    shape: &'s Shape,
    depth: usize,
    max_depth: usize,
    max_properties: usize,
    members: &'s Cell<usize>,
}

/// Most required keys tracked per object on the fast path (more take the slow path).
const FAST_REQUIRED: usize = 32;

impl<'s> Check<'s> {
    fn has(&self, k: Kind) -> bool {
        self.shape.types.contains(&k)
    }

    fn child(&self, shape: &'s Shape) -> Check<'s> {
        Check {
            shape,
            depth: self.depth + 1,
            max_depth: self.max_depth,
            max_properties: self.max_properties,
            members: self.members,
        }
    }

    fn nest<E: de::Error>(&self) -> Result<(), E> {
        if self.depth + 1 > self.max_depth {
            Err(E::custom("too deep"))
        } else {
            Ok(())
        }
    }
}

fn uncovered<T, E: de::Error>() -> Result<T, E> {
    Err(E::custom("not covered"))
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        if self.has(Kind::Null) {
            Ok(true)
        } else {
            uncovered()
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        if self.has(Kind::Boolean) {
            Ok(true)
        } else {
            uncovered()
        }
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        if self.has(Kind::Integer) || self.has(Kind::Number) {
            Ok(true)
        } else {
            uncovered()
        }
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        if self.has(Kind::Integer) || self.has(Kind::Number) {
            Ok(true)
        } else {
            uncovered()
        }
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        if self.has(Kind::Number) {
            Ok(true)
        } else {
            uncovered()
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        if self.has(Kind::String) {
            Ok(true)
        } else {
            uncovered()
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        if !self.has(Kind::Array) {
            return uncovered();
        }
        self.nest()?;
        match &self.shape.items {
            Some(items) => {
                let child = self.child(items);
                while seq.next_element_seed(Check { ..child })?.is_some() {}
            }
            // Only empty arrays seen so far: any element is new.
            None => {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return uncovered();
                }
            }
        }
        Ok(true)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        if !self.has(Kind::Object) {
            return uncovered();
        }
        self.nest()?;
        let required = &self.shape.required;
        if required.len() > FAST_REQUIRED {
            return uncovered();
        }
        // Required keys seen, by address in `required` (no string compares).
        let mut seen: [*const String; FAST_REQUIRED] = [std::ptr::null(); FAST_REQUIRED];
        let mut n_seen = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let members = self.members.get() + 1;
            if members > self.max_properties {
                return Err(de::Error::custom("too many properties"));
            }
            self.members.set(members);
            let Some((name, prop)) = self.shape.properties.get_key_value(key.as_ref()) else {
                return uncovered();
            };
            if let Some(req) = required.get(name.as_str()) {
                let at: *const String = req;
                if seen[..n_seen].contains(&at) {
                    return uncovered(); // a duplicate key: let the slow path decide
                }
                seen[n_seen] = at;
                n_seen += 1;
            }
            map.next_value_seed(self.child(prop))?;
        }
        if n_seen == required.len() {
            Ok(true)
        } else {
            uncovered()
        }
    }
}

/// Reads an object key, borrowed from the input when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64()
}

#[cfg(test)]
mod tests;
