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
