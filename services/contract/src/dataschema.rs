//! The CloudEvents `dataschema` value naming a registered schema version:
//! `aio-sr://<namespace>/<name>:<version>`. The schema service builds it and ingest reads it back
//! from acknowledgements for status, so its format and its parse live here together.

use std::fmt;

/// The scheme prefix of a schema registry reference.
pub const SCHEME: &str = "aio-sr://";

/// A schema version in the registry, as a `dataschema` value names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSchema {
    /// Registry namespace.
    pub namespace: String,
    /// Schema name.
    pub name: String,
    /// Schema version.
    pub version: String,
}

impl DataSchema {
    /// Parses `aio-sr://<namespace>/<name>:<version>`; `None` unless every part is present and
    /// non-empty.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(SCHEME)?;
        let (namespace, name_version) = rest.split_once('/')?;
        let (name, version) = name_version.rsplit_once(':')?;
        if namespace.is_empty() || name.is_empty() || version.is_empty() {
            return None;
        }
        Some(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            version: version.to_string(),
        })
    }
}

/// The `dataschema` value of a schema version, without building a [`DataSchema`].
pub fn format(namespace: &str, name: &str, version: &str) -> String {
    [SCHEME, namespace, "/", name, ":", version].concat()
}

impl fmt::Display for DataSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(&self.namespace, &self.name, &self.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        let s = format("ns", "ABC", "2");
        assert_eq!(s, "aio-sr://ns/ABC:2");
        let d = DataSchema::parse(&s).expect("parses");
        assert_eq!((d.namespace.as_str(), d.name.as_str()), ("ns", "ABC"));
        assert_eq!(d.version, "2");
        assert_eq!(d.to_string(), s);
    }

    #[test]
    fn refuses_bad_values() {
        for bad in [
            "",
            "aio-sr://",
            "aio-sr://n/N",
            "aio-sr:///N:1",
            "aio-sr://n/:1",
            "aio-sr://n/N:",
            "aio-sr://nN:1",
            "http://n/N:1",
        ] {
            assert_eq!(DataSchema::parse(bad), None, "{bad:?}");
        }
    }
}
