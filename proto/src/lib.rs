//! Generated types of `sseconnector.v1`: the event envelope, acknowledgements and the three
//! services' gRPC APIs. Services convert these into their own domain types at the edge.

#![allow(missing_docs, clippy::all)]

/// `sseconnector.v1`: messages, clients and servers.
pub mod v1 {
    tonic::include_proto!("sseconnector.v1");
}

/// Encoded `FileDescriptorSet` of the package, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sseconnector_descriptor.bin"));

/// Paths of the event streams' methods, which `sse-connector` serves and calls in-process with
/// their messages as they are (`sse_runtime::link::Streams`).
pub mod paths {
    /// `SchemaService.Process`: ingest's events to the schema service.
    pub const SCHEMA_PROCESS: &str = "/sseconnector.v1.SchemaService/Process";
    /// `PublisherService.Publish`: the schema service's events to the publisher.
    pub const PUBLISHER_PUBLISH: &str = "/sseconnector.v1.PublisherService/Publish";
}

#[cfg(test)]
mod tests {
    use super::paths;
    use super::v1::{publisher_service_server, schema_service_server};

    #[test]
    fn paths_name_the_generated_methods() {
        let schema = schema_service_server::SERVICE_NAME;
        let publisher = publisher_service_server::SERVICE_NAME;
        assert_eq!(paths::SCHEMA_PROCESS, format!("/{schema}/Process"));
        assert_eq!(paths::PUBLISHER_PUBLISH, format!("/{publisher}/Publish"));
    }

    /// A method without a rule in the access table is refused under mTLS: every method of the
    /// package must have one.
    #[test]
    fn every_method_has_an_access_rule() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET)
            .expect("descriptor set decodes");
        let mut n = 0;
        for file in &set.file {
            for svc in &file.service {
                for m in &svc.method {
                    let path = format!("/{}.{}/{}", file.package(), svc.name(), m.name());
                    assert!(
                        sse_contract::access::rule(&path).is_some(),
                        "{path} has no rule"
                    );
                    n += 1;
                }
            }
        }
        assert!(n >= 9, "{n} methods");
    }
}
