//! The one MQTT 5 client stack of the connector, used by the publisher, ingest's checkpoint store
//! and the schema service's Azure registry client: broker URLs, connection options with the
//! packet limits of `sse-contract`, TLS and credentials read afresh at every connect, connect
//! failures described without secrets, one supervised connection loop, and the Azure IoT
//! Operations RPC invoker ([`rpc`]) on top of it.
//!
//! Every client announces the largest packet it accepts in its CONNECT (MQTT 5 Maximum Packet
//! Size) and rumqttc refuses larger incoming packets at that size; an MQTT 5 broker then discards
//! a larger message for that client instead of delivering it, so no message anyone publishes on a
//! topic the client reads can break its connection.

mod address;
mod credentials;
mod describe;
pub mod rpc;
mod settings;
mod supervisor;
mod tls_files;

pub use address::BrokerAddress;
pub use credentials::{BrokerCredentials, SAT_METHOD};
pub use describe::describe;
pub use settings::{Broker, BrokerAuthFlags, ClientSettings};
pub use supervisor::{Dispatched, Handler, Supervisor, pause};
pub use tls_files::TlsFiles;

/// Why a broker configuration cannot be used. Never holds a secret: URLs are shown without
/// their user info, key files only by path.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The broker URL is not `mqtt://`, `mqtts://`, `tcp://` or `ssl://` with a host.
    #[error("broker URL {url:?}: {why}")]
    Url {
        /// The URL, without user info.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A CA file could not be read or holds no usable certificate.
    #[error("broker CA: {0}")]
    Ca(crate::tls::TlsError),
    /// The client certificate file could not be read.
    #[error("client certificate: {0}")]
    ClientCertificate(crate::tls::TlsError),
    /// The client key file is unreadable or holds no PEM key (the parser's detail is not shown:
    /// it could quote key material).
    #[error("client key {0}: unreadable or not a PEM private key")]
    ClientKey(std::path::PathBuf),
    /// rustls refused the certificate and key, or the TLS configuration.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
}
