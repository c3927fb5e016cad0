//! The Asset definition as the ADR base service sends it (DTDL `Asset;1`), with its datasets,
//! event groups, streams, management groups and destinations; the same conventions as
//! [`super::model`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::DeviceRef;

dtdl_object! {
    /// An asset: what the connector reads from its device's endpoint and where it goes.
    #[derive(Default)]
    Asset {
        /// The device and endpoint it reads through.
        device_ref: DeviceRef,
        ;
        /// Asset type references.
        asset_type_refs: Vec<String>,
        /// Free-form attributes.
        attributes: BTreeMap<String, String>,
        /// Description.
        description: String,
        /// Discovered assets this one was made from.
        discovered_asset_refs: Vec<String>,
        /// Display name.
        display_name: String,
        /// Documentation URI.
        documentation_uri: String,
        /// Whether the asset is enabled.
        enabled: bool,
        /// The asset's id outside ADR.
        external_asset_id: String,
        /// Hardware revision.
        hardware_revision: String,
        /// When the definition last changed (RFC 3339).
        last_transition_time: String,
        /// Manufacturer.
        manufacturer: String,
        /// Manufacturer URI.
        manufacturer_uri: String,
        /// Model.
        model: String,
        /// Product code.
        product_code: String,
        /// Serial number.
        serial_number: String,
        /// Software revision.
        software_revision: String,
        /// ADR's id of the resource.
        uuid: String,
        /// Version of the definition, reported back in status.
        version: u64,
        /// Stringified JSON defaults for every dataset.
        default_datasets_configuration: String,
        /// Stringified JSON defaults for every event.
        default_events_configuration: String,
        /// Stringified JSON defaults for every stream.
        default_streams_configuration: String,
        /// Stringified JSON defaults for every management group.
        default_management_groups_configuration: String,
        /// Default destinations of datasets.
        default_datasets_destinations: Vec<DatasetDestination>,
        /// Default destinations of events.
        default_events_destinations: Vec<EventDestination>,
        /// Default destinations of streams.
        default_streams_destinations: Vec<EventDestination>,
        /// Datasets.
        datasets: Vec<Dataset>,
        /// Event groups.
        event_groups: Vec<EventGroup>,
        /// Streams.
        streams: Vec<Stream>,
        /// Management groups.
        management_groups: Vec<ManagementGroup>,
    }
}

dtdl_object! {
    /// A dataset: data points read together.
    #[derive(Default)]
    Dataset {
        /// Name, unique in the asset.
        name: String,
        ;
        /// Where its data comes from.
        data_source: String,
        /// Stringified JSON settings.
        dataset_configuration: String,
        /// Type reference.
        type_ref: String,
        /// Where its messages go.
        destinations: Vec<DatasetDestination>,
        /// Its data points.
        data_points: Vec<DataPoint>,
    }
}

dtdl_object! {
    /// One data point of a dataset.
    #[derive(Default)]
    DataPoint {
        /// Name.
        name: String,
        ;
        /// Where its value comes from.
        data_source: String,
        /// Stringified JSON settings.
        data_point_configuration: String,
        /// Type reference.
        type_ref: String,
    }
}

dtdl_object! {
    /// An event group: events read together.
    #[derive(Default)]
    EventGroup {
        /// Name, unique in the asset.
        name: String,
        ;
        /// Where its events come from.
        data_source: String,
        /// Stringified JSON settings.
        event_group_configuration: String,
        /// Type reference.
        type_ref: String,
        /// Destinations of its events unless an event names its own.
        default_destinations: Vec<EventDestination>,
        /// Its events.
        events: Vec<Event>,
    }
}

dtdl_object! {
    /// One event of an event group.
    #[derive(Default)]
    Event {
        /// Name.
        name: String,
        ;
        /// Where it comes from.
        data_source: String,
        /// Stringified JSON settings.
        event_configuration: String,
        /// Type reference.
        type_ref: String,
        /// Where it goes.
        destinations: Vec<EventDestination>,
    }
}

dtdl_object! {
    /// A stream.
    #[derive(Default)]
    Stream {
        /// Name.
        name: String,
        ;
        /// Stringified JSON settings.
        stream_configuration: String,
        /// Type reference.
        type_ref: String,
        /// Where it goes.
        destinations: Vec<EventDestination>,
    }
}

dtdl_object! {
    /// A management group of actions.
    #[derive(Default)]
    ManagementGroup {
        /// Name.
        name: String,
        ;
        /// Where it acts.
        data_source: String,
        /// Stringified JSON settings.
        management_group_configuration: String,
        /// Type reference.
        type_ref: String,
        /// Default topic of its actions.
        default_topic: String,
        /// Default timeout of its actions, seconds.
        default_timeout_in_seconds: u64,
        /// Its actions.
        actions: Vec<ManagementAction>,
    }
}

dtdl_object! {
    /// One management action.
    ManagementAction {
        /// Name.
        name: String,
        /// Read, Write or Call.
        action_type: ActionType,
        /// What it acts on.
        target_uri: String,
        ;
        /// Stringified JSON settings.
        action_configuration: String,
        /// Its topic.
        topic: String,
        /// Its timeout, seconds.
        timeout_in_seconds: u64,
        /// Type reference.
        type_ref: String,
    }
}

/// The kinds of management action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionType {
    /// Reads a value.
    Read,
    /// Writes a value.
    Write,
    /// Calls a method.
    Call,
}

dtdl_object! {
    /// Where a dataset's messages go.
    DatasetDestination {
        /// `Mqtt`, `BrokerStateStore` or `Storage`.
        target: DatasetTarget,
        /// The target's settings.
        configuration: DestinationConfiguration,
        ;
    }
}

dtdl_object! {
    /// Where an event's or stream's messages go.
    EventDestination {
        /// `Mqtt` or `Storage`.
        target: EventTarget,
        /// The target's settings.
        configuration: DestinationConfiguration,
        ;
    }
}

/// The targets of a dataset destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetTarget {
    /// An MQTT topic.
    Mqtt,
    /// The broker's state store.
    BrokerStateStore,
    /// Storage.
    Storage,
}

/// The targets of an event or stream destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventTarget {
    /// An MQTT topic.
    Mqtt,
    /// Storage.
    Storage,
}

dtdl_object! {
    /// A destination's settings; every field is optional.
    #[derive(Default)]
    DestinationConfiguration {
        ;
        /// MQTT topic.
        topic: String,
        /// `Qos0` or `Qos1` (a string on this wire).
        qos: Qos,
        /// `Keep` or `Never`.
        retain: Retain,
        /// Message expiry, seconds.
        ttl: u64,
        /// State store key (`BrokerStateStore`).
        key: String,
        /// Storage path (`Storage`).
        path: String,
    }
}

/// The MQTT QoS of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Qos {
    /// At most once.
    Qos0,
    /// At least once.
    Qos1,
}

/// The retain flag of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Retain {
    /// Retained.
    Keep,
    /// Not retained.
    Never,
}
