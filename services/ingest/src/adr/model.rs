//! The Device and Asset definitions as the ADR base service sends them (DTDL `Device;1`,
//! `Asset;1`): camelCase JSON, optional fields omitted when absent, `dateTime` kept as its
//! RFC 3339 text, `…Configuration` fields as the stringified JSON they are. Unknown fields are
//! ignored, so a newer service does not break the connector.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

dtdl_object! {
    /// A device: its inbound endpoints (the SSE sources) and descriptive fields.
    #[derive(Default)]
    Device {
        ;
        /// Free-form attributes.
        attributes: BTreeMap<String, String>,
        /// The discovered device this one was made from.
        discovered_device_ref: String,
        /// Whether the device is enabled.
        enabled: bool,
        /// Inbound and outbound endpoints.
        endpoints: DeviceEndpoints,
        /// The device's id outside ADR.
        external_device_id: String,
        /// When the definition last changed (RFC 3339).
        last_transition_time: String,
        /// Manufacturer.
        manufacturer: String,
        /// Model.
        model: String,
        /// Operating system.
        operating_system: String,
        /// Operating system version.
        operating_system_version: String,
        /// ADR's id of the resource.
        uuid: String,
        /// Version of the definition, reported back in status.
        version: u64,
    }
}

dtdl_object! {
    /// A device's endpoints.
    #[derive(Default)]
    DeviceEndpoints {
        ;
        /// Inbound endpoints by name: where the connector reads from.
        inbound: BTreeMap<String, InboundEndpoint>,
        /// Outbound endpoints.
        outbound: OutboundEndpoints,
    }
}

dtdl_object! {
    /// One inbound endpoint.
    #[derive(Default)]
    InboundEndpoint {
        /// The endpoint's address (for this connector, the SSE URL).
        address: String,
        /// The endpoint type the connector serves.
        endpoint_type: String,
        ;
        /// Stringified JSON of connector-specific settings.
        additional_configuration: String,
        /// How the connector authenticates to the endpoint.
        authentication: Authentication,
        /// Which CAs to trust.
        trust_settings: TrustSettings,
        /// Endpoint version.
        version: String,
    }
}

dtdl_object! {
    /// How to authenticate to an inbound endpoint; credentials are secret names, never values.
    Authentication {
        /// Which method.
        method: AuthenticationMethod,
        ;
        /// Secret names for `UsernamePassword`.
        username_password_credentials: UsernamePasswordCredentials,
        /// Secret names for `Certificate`.
        x509_credentials: X509Credentials,
    }
}

/// The authentication methods of the DTDL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthenticationMethod {
    /// No credentials.
    Anonymous,
    /// A client certificate.
    Certificate,
    /// User name and password.
    UsernamePassword,
}

dtdl_object! {
    /// Secret names of a user name and password.
    UsernamePasswordCredentials {
        /// The user name's secret.
        username_secret_name: String,
        /// The password's secret.
        password_secret_name: String,
        ;
    }
}

dtdl_object! {
    /// Secret names of a client certificate.
    X509Credentials {
        /// The certificate's secret.
        certificate_secret_name: String,
        ;
        /// Intermediate certificates' secret.
        intermediate_certificates_secret_name: String,
        /// The key's secret.
        key_secret_name: String,
    }
}

dtdl_object! {
    /// Trust settings of an inbound endpoint.
    #[derive(Default)]
    TrustSettings {
        ;
        /// The trust list's secret.
        trust_list: String,
    }
}

dtdl_object! {
    /// Outbound endpoints, assigned and not.
    #[derive(Default)]
    OutboundEndpoints {
        /// Assigned outbound endpoints by name.
        assigned: BTreeMap<String, OutboundEndpoint>,
        ;
        /// Unassigned outbound endpoints by name.
        unassigned: BTreeMap<String, OutboundEndpoint>,
    }
}

dtdl_object! {
    /// One outbound endpoint.
    #[derive(Default)]
    OutboundEndpoint {
        /// Its address.
        address: String,
        ;
        /// Its type.
        endpoint_type: String,
    }
}

dtdl_object! {
    /// The device and inbound endpoint an asset reads through (they fill its command topics).
    #[derive(Default)]
    DeviceRef {
        /// The device.
        device_name: String,
        /// The device's inbound endpoint.
        endpoint_name: String,
        ;
    }
}
