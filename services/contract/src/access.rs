//! Who may call which gRPC method: the per-method table every server enforces once callers
//! prove who they are (mTLS, the caller's certificate names its role). One table, so the three
//! services and their documentation cannot disagree; a method missing here is refused.

use std::fmt;

/// The kinds of caller a server tells apart by the identity in their certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `sse-ingest`: opens the schema service's Process stream.
    Ingest,
    /// `sse-schema`: opens the publisher's Publish stream.
    Schema,
    /// `sse-publisher`: calls nobody today, but may read.
    Publisher,
    /// An operator's tool (the console, `ssectl`, grpcurl with the console certificate).
    Console,
}

impl Role {
    /// Every role, in the order identities are configured.
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Schema, Role::Publisher, Role::Console];

    /// The role's name in messages and documentation.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Schema => "schema",
            Role::Publisher => "publisher",
            Role::Console => "console",
        }
    }
}

/// Who may call one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A pipeline stream: only the one service upstream of it.
    Only(Role),
    /// A read API: every peer service and the console.
    Read,
    /// An admin write (it changes what the connector publishes or stores): the console only.
    Admin,
    /// A read of the events' payloads (`Tail`): the console only, since no peer service needs
    /// it and payloads may be confidential.
    Payloads,
    /// Health and reflection: any caller whose certificate the CA signed.
    Any,
}

impl Access {
    /// Whether a caller holding `roles` may call a method with this rule.
    pub fn allows(self, roles: &[Role]) -> bool {
        match self {
            Access::Only(r) => roles.contains(&r),
            Access::Read => !roles.is_empty(),
            Access::Admin | Access::Payloads => roles.contains(&Role::Console),
            Access::Any => true,
        }
    }

    /// Whether the method is refused without mTLS outside loopback: admin writes, and payload
    /// reads, which would show every event to whoever reaches the port.
    pub fn needs_mtls_off_loopback(self) -> bool {
        matches!(self, Access::Admin | Access::Payloads)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Only(r) => write!(f, "a pipeline stream: only the {} identity", r.name()),
            Access::Read => f.write_str("a read API: the peer services and the console identity"),
            Access::Admin => f.write_str("an admin write: only the console identity"),
            Access::Payloads => f.write_str("a read of event payloads: only the console identity"),
            Access::Any => f.write_str("open to every authenticated caller"),
        }
    }
}

/// Every method of the three services with the process that serves it and its rule: the table
/// [`rule`] and [`refused_without_mtls`] read.
const METHODS: &[(&str, &str, &str, Access)] = &[
    ("sse-schema", SCHEMA, "Process", Access::Only(Role::Ingest)),
    ("sse-schema", SCHEMA, "GetSchema", Access::Read),
    ("sse-schema", SCHEMA, "ListSchemas", Access::Read),
    ("sse-schema", SCHEMA, "ListSubjects", Access::Read),
    ("sse-schema", SCHEMA, "PutSchema", Access::Admin),
    ("sse-schema", SCHEMA, "DeleteSchema", Access::Admin),
    ("sse-schema", SCHEMA, "InferSchema", Access::Admin),
    (
        "sse-publisher",
        PUBLISHER,
        "Publish",
        Access::Only(Role::Schema),
    ),
    ("sse-publisher", PUBLISHER, "PublishMessage", Access::Admin),
    // Payloads, but only to identities that already carry them (docs/security.md).
    ("sse-publisher", PUBLISHER, "Tail", Access::Payloads),
    ("sse-ingest", INGEST, "ListStreams", Access::Read),
    ("sse-ingest", INGEST, "GetStatus", Access::Read),
    ("sse-ingest", INGEST, "ListDiscovered", Access::Read),
    ("sse-ingest", INGEST, "GetResource", Access::Read),
    ("sse-ingest", INGEST, "PutResource", Access::Admin),
    ("sse-ingest", INGEST, "DeleteResource", Access::Admin),
];

const SCHEMA: &str = "/sseconnector.v1.SchemaService/";
const PUBLISHER: &str = "/sseconnector.v1.PublisherService/";
const INGEST: &str = "/sseconnector.v1.IngestService/";

/// The rule of the method at `path` (`/package.Service/Method`); `None` for a method this table
/// does not know, which servers refuse.
pub fn rule(path: &str) -> Option<Access> {
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        return Some(Access::Any);
    }
    METHODS
        .iter()
        .find(|(_, prefix, method, _)| path.strip_prefix(prefix) == Some(*method))
        .map(|(.., access)| *access)
}

/// The methods a server of `service` (`sse-ingest`, `sse-schema`, `sse-publisher`) refuses when
/// it listens off loopback without mTLS ([`Access::needs_mtls_off_loopback`]), so its warning
/// names its own and no other service's.
pub fn refused_without_mtls(service: &str) -> Vec<&'static str> {
    METHODS
        .iter()
        .filter(|(s, .., access)| *s == service && access.needs_mtls_off_loopback())
        .map(|(_, _, method, _)| *method)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_names_the_writes_it_refuses_without_mtls() {
        assert_eq!(
            refused_without_mtls("sse-ingest"),
            ["PutResource", "DeleteResource"]
        );
        assert_eq!(
            refused_without_mtls("sse-schema"),
            ["PutSchema", "DeleteSchema", "InferSchema"]
        );
        assert_eq!(
            refused_without_mtls("sse-publisher"),
            ["PublishMessage", "Tail"]
        );
        assert!(refused_without_mtls("sse-console").is_empty());
    }

    #[test]
    fn the_table_of_the_security_model() {
        let process = rule("/sseconnector.v1.SchemaService/Process").unwrap_or(Access::Any);
        assert!(process.allows(&[Role::Ingest]));
        assert!(!process.allows(&[Role::Console]));
        assert!(!process.allows(&[Role::Schema]));
        let publish = rule("/sseconnector.v1.PublisherService/Publish").unwrap_or(Access::Any);
        assert!(publish.allows(&[Role::Schema]));
        assert!(!publish.allows(&[Role::Ingest, Role::Console]));
        let put = rule("/sseconnector.v1.SchemaService/PutSchema").unwrap_or(Access::Any);
        assert!(put.needs_mtls_off_loopback());
        assert!(put.allows(&[Role::Console]));
        assert!(!put.allows(&[Role::Ingest, Role::Schema, Role::Publisher]));
        let list = rule("/sseconnector.v1.IngestService/ListStreams").unwrap_or(Access::Admin);
        assert!(list.allows(&[Role::Console]) && list.allows(&[Role::Publisher]));
        assert!(!list.allows(&[]));
        // Discovery is read-only: whoever may list the streams may list what they discovered.
        let discovered = rule("/sseconnector.v1.IngestService/ListDiscovered");
        assert_eq!(discovered, Some(list));
        // Resources: written by the console only, read like the status.
        for m in ["PutResource", "DeleteResource"] {
            let w = rule(&format!("/sseconnector.v1.IngestService/{m}"));
            assert_eq!(w, Some(Access::Admin), "{m}");
        }
        let get = rule("/sseconnector.v1.IngestService/GetResource");
        assert_eq!(get, Some(list));
        // Tail shows payloads: the operator's tools only, never a peer service.
        let tail = rule("/sseconnector.v1.PublisherService/Tail");
        assert_eq!(tail, Some(Access::Payloads));
        assert!(!Access::Payloads.allows(&[Role::Ingest, Role::Schema, Role::Publisher]));
        assert!(Access::Payloads.allows(&[Role::Console]));
        assert!(Access::Payloads.needs_mtls_off_loopback());
        assert_eq!(rule("/grpc.health.v1.Health/Check"), Some(Access::Any));
        assert_eq!(rule("/sseconnector.v1.SchemaService/Nope"), None);
        assert_eq!(rule("/other.Service/Process"), None);
        assert!(Access::Admin.to_string().contains("console"));
    }
}
