//! The status and health models of the ADR base service (DTDL `DeviceStatus`, `AssetStatus`,
//! `RuntimeHealth`): what the connector reports back. In a status update, every field left out
//! is removed on the service's side, so these are sent whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

dtdl_object! {
    /// Whether a definition's version could be applied.
    #[derive(Default)]
    ConfigStatus {
        ;
        /// Why it could not, when it could not.
        error: ConfigError,
        /// When this status was decided (RFC 3339).
        last_transition_time: String,
        /// The definition's version this status is about.
        version: u64,
    }
}

dtdl_object! {
    /// A configuration error with details.
    #[derive(Default)]
    ConfigError {
        ;
        /// Machine-readable code.
        code: String,
        /// What is wrong.
        message: String,
        /// More about it.
        details: Vec<ErrorDetail>,
    }
}

dtdl_object! {
    /// One detail of a configuration error.
    #[derive(Default)]
    ErrorDetail {
        ;
        /// Code.
        code: String,
        /// Correlation id.
        correlation_id: String,
        /// Extra information.
        info: String,
        /// Message.
        message: String,
    }
}

dtdl_object! {
    /// A device's status: its definition and each inbound endpoint.
    #[derive(Default)]
    DeviceStatus {
        ;
        /// The definition's status.
        config: ConfigStatus,
        /// The endpoints' status.
        endpoints: DeviceStatusEndpoints,
    }
}

dtdl_object! {
    /// The inbound endpoints' status of a device.
    #[derive(Default)]
    DeviceStatusEndpoints {
        ;
        /// By endpoint name; a healthy endpoint is `{}`.
        inbound: BTreeMap<String, EndpointStatus>,
    }
}

dtdl_object! {
    /// One inbound endpoint's status.
    #[derive(Default)]
    EndpointStatus {
        ;
        /// Why it cannot be served.
        error: ConfigError,
    }
}

dtdl_object! {
    /// An asset's status: its definition and each part of it.
    #[derive(Default)]
    AssetStatus {
        ;
        /// The definition's status.
        config: ConfigStatus,
        /// Datasets.
        datasets: Vec<PartStatus>,
        /// Streams.
        streams: Vec<PartStatus>,
        /// Event groups.
        event_groups: Vec<EventGroupStatus>,
        /// Management groups.
        management_groups: Vec<ManagementGroupStatus>,
    }
}

dtdl_object! {
    /// The status of a dataset, event or stream.
    #[derive(Default)]
    PartStatus {
        /// Its name.
        name: String,
        ;
        /// Why it cannot be served.
        error: ConfigError,
        /// The schema of its messages.
        message_schema_reference: MessageSchemaReference,
    }
}

dtdl_object! {
    /// An event group's status.
    #[derive(Default)]
    EventGroupStatus {
        /// Its name.
        name: String,
        ;
        /// Its events.
        events: Vec<PartStatus>,
    }
}

dtdl_object! {
    /// A management group's status.
    #[derive(Default)]
    ManagementGroupStatus {
        /// Its name.
        name: String,
        ;
        /// Its actions.
        actions: Vec<ActionStatus>,
    }
}

dtdl_object! {
    /// A management action's status.
    #[derive(Default)]
    ActionStatus {
        /// Its name.
        name: String,
        ;
        /// Why it cannot be served.
        error: ConfigError,
        /// The schema of its requests.
        request_message_schema_reference: MessageSchemaReference,
        /// The schema of its responses.
        response_message_schema_reference: MessageSchemaReference,
    }
}

dtdl_object! {
    /// A schema in the schema registry (from its `put` answer).
    #[derive(Default)]
    MessageSchemaReference {
        /// The registry's namespace.
        schema_registry_namespace: String,
        /// The schema's name.
        schema_name: String,
        /// The schema's version.
        schema_version: String,
        ;
    }
}

dtdl_object! {
    /// The runtime health of a device endpoint or an asset's part (ADR 0028).
    RuntimeHealth {
        /// The version of the resource reported on.
        version: u64,
        /// Available or Unavailable.
        status: HealthStatus,
        /// When this health was observed (RFC 3339).
        last_update_time: String,
        ;
        /// Why, for humans.
        message: String,
        /// Why, as a unique CamelCase code.
        reason_code: String,
    }
}

/// The two health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthStatus {
    /// Working.
    Available,
    /// Not working.
    Unavailable,
}
