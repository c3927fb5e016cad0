//! The caps on schema growth. A source that sends a new key in every event would otherwise make
//! every event a new version, each rewriting the whole (growing) schema to disk: quadratic in
//! bytes, unbounded in files. A subject that reaches a cap stops evolving: it registers no new
//! version, its events flow on tagged with its last version, and its status says which cap.

use sse_proto::v1::SchemaFrozenReason;

/// Default of `--max-schema-properties`: twice the per-payload `--max-properties`, so any one
/// payload within the payload limits has room; far above what a device's records hold.
pub const SCHEMA_PROPERTIES_DEFAULT: usize = 2000;
/// Default of `--max-versions`: real schemas change a handful of times.
pub const VERSIONS_DEFAULT: u64 = 100;
/// Default of `--max-registry-bytes`: a quarter of the 256 MiB volume and memory limit of the
/// Kubernetes manifests (the registry keeps what its files hold in memory too).
pub const REGISTRY_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// The per-subject caps the pipeline applies before registering a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Most properties in a subject's merged schema, counted over every level.
    pub max_schema_properties: usize,
    /// Most versions of one subject.
    pub max_versions: u64,
    /// The registry's `--max-registry-bytes`, for messages only (the registry enforces it).
    pub max_registry_bytes: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            max_schema_properties: SCHEMA_PROPERTIES_DEFAULT,
            max_versions: VERSIONS_DEFAULT,
            max_registry_bytes: REGISTRY_BYTES_DEFAULT,
        }
    }
}

/// Which cap made a subject's schema stop evolving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cap {
    /// The merged schema would have more than [`Caps::max_schema_properties`] properties.
    SchemaProperties,
    /// The subject has [`Caps::max_versions`] versions.
    Versions,
    /// The registry's files would grow over `--max-registry-bytes`.
    RegistryBytes,
}

impl Cap {
    /// The flag that sets the cap, for messages.
    pub fn flag(self) -> &'static str {
        match self {
            Cap::SchemaProperties => "--max-schema-properties",
            Cap::Versions => "--max-versions",
            Cap::RegistryBytes => "--max-registry-bytes",
        }
    }

    /// What status shows: the cap, its value and what it means for the subject's events.
    pub fn message(self, caps: &Caps) -> String {
        let what = match self {
            Cap::SchemaProperties => format!(
                "the merged schema would have more than {} properties",
                caps.max_schema_properties
            ),
            Cap::Versions => format!("the subject has {} versions", caps.max_versions),
            Cap::RegistryBytes => format!(
                "the registry's files would grow over {} bytes",
                caps.max_registry_bytes
            ),
        };
        format!(
            "schema stopped evolving: {what} ({}); events are tagged with the last version",
            self.flag()
        )
    }

    /// The proto reason.
    pub fn to_proto(self) -> SchemaFrozenReason {
        match self {
            Cap::SchemaProperties => SchemaFrozenReason::MaxSchemaProperties,
            Cap::Versions => SchemaFrozenReason::MaxVersions,
            Cap::RegistryBytes => SchemaFrozenReason::MaxRegistryBytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_flag_and_value() {
        let caps = Caps {
            max_schema_properties: 7,
            max_versions: 3,
            max_registry_bytes: 99,
        };
        for (cap, value) in [
            (Cap::SchemaProperties, "7"),
            (Cap::Versions, "3"),
            (Cap::RegistryBytes, "99"),
        ] {
            let m = cap.message(&caps);
            assert!(m.contains(cap.flag()) && m.contains(value), "{m}");
        }
    }
}
