//! Pure mapping from a domain event to the MQTT 5 message on the broker: topic, QoS, retain and
//! `PublishProperties` (the table "The message on the broker" in DESIGN.md), plus topic checks.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
use sse_contract::topics::{self, Writer};
use sse_contract::{mqtt_text, route};

use crate::error::Error;
use crate::event::{Destination, Event, Qos, RouteKind, SingleMessage};
use crate::state_store;

/// Content type of JSON data.
pub const JSON: &str = "application/json";
/// Content type of any other data.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// A message ready to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name (validated).
    pub topic: String,
    /// Quality of service.
    pub qos: Qos,
    /// Retain flag.
    pub retain: bool,
    /// Payload.
    pub payload: Bytes,
    /// MQTT 5 properties.
    pub properties: PublishProperties,
}

impl Message {
    /// The rumqttc packet (packet id 0: the event loop assigns one).
    pub fn to_publish(&self) -> Publish {
        let mut p = Publish::new(
            self.topic.as_str(),
            crate::event::mqtt_qos(self.qos),
            self.payload.clone(),
            Some(self.properties.clone()),
        );
        p.retain = self.retain;
        p
    }

    /// Checks every property string the packet carries against what brokers accept
    /// (sse-contract's `mqtt_text`): a broker closes the connection on one it refuses, and the
    /// re-sent message would close every reconnect after it. Names the property and what is
    /// wrong with it. The topic is not checked again: every message is built either with a
    /// constant topic or after [`check_topic`], which applies the same rule; nor are user
    /// property names, which are this crate's constants (a test checks each one).
    pub fn check_text(&self) -> Result<(), Error> {
        let p = &self.properties;
        let unfit = |what: String, u: mqtt_text::Unfit| Error::Invalid(format!("{what} {u}"));
        for (name, s) in [
            ("content type", &p.content_type),
            ("response topic", &p.response_topic),
        ] {
            if let Some(s) = s {
                mqtt_text::check(s).map_err(|u| unfit(format!("the {name}"), u))?;
            }
        }
        if let Some(c) = &p.correlation_data
            && c.len() > mqtt_text::STRING_BYTES_MAX
        {
            return Err(unfit(
                "the correlation data".into(),
                mqtt_text::Unfit::TooLong(c.len()),
            ));
        }
        for (k, v) in &p.user_properties {
            debug_assert!(mqtt_text::check(k).is_ok(), "{k:?}");
            mqtt_text::check(v).map_err(|u| unfit(format!("user property {k:?}"), u))?;
        }
        Ok(())
    }

    /// The PUBLISH packet's size on the wire, with the packet id it gets at QoS 1.
    pub fn packet_size(&self) -> usize {
        let mut p = self.to_publish();
        if self.qos == Qos::AtLeastOnce {
            p.pkid = 1; // only its presence counts: rumqttc leaves out the id of packet id 0
        }
        p.size()
    }

    /// At least [`Message::packet_size`], without building the packet (a copy of every
    /// property): the bytes of the topic, payload and properties plus the most their encoding
    /// adds. Checked against a broker's maximum packet size first, so only a message near that
    /// limit is measured exactly.
    pub fn packet_size_bound(&self) -> usize {
        let p = &self.properties;
        let field = |len: Option<usize>| len.map_or(0, |n| 1 + 2 + n);
        let properties = 2 // payload format indicator
            + 5 // message expiry interval
            + 3 // topic alias
            + field(p.response_topic.as_ref().map(String::len))
            + field(p.correlation_data.as_ref().map(Bytes::len))
            + field(p.content_type.as_ref().map(String::len))
            + p.user_properties
                .iter()
                .map(|(k, v)| 1 + 2 + k.len() + 2 + v.len())
                .sum::<usize>()
            + 5 * p.subscription_identifiers.len();
        // Fixed header (type byte and up to 4 length bytes), topic length, packet id, property
        // length (up to 4 bytes).
        5 + 2 + self.topic.len() + 2 + 4 + properties + self.payload.len()
    }
}

/// What a state store request needs besides the event: the client id, the `__ts` stamp and
/// random correlation data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStamp {
    /// MQTT client id (names the response topic).
    pub client_id: String,
    /// Hybrid logical clock value for `__ts`.
    pub ts: String,
    /// Correlation data of the request.
    pub correlation: Bytes,
}

/// The topic an event goes to (for span attributes), or None without a destination.
pub fn destination_topic(ev: &Event) -> Option<&str> {
    match ev.route.destination.as_ref()? {
        Destination::Mqtt(m) => Some(m.topic.as_str()),
        Destination::StateStore { .. } => Some(state_store::REQUEST_TOPIC),
    }
}

/// The message for `ev`, with `traceparent` as its trace context; `stamp` is called only for a
/// state store destination.
pub fn event_message(
    ev: &Event,
    traceparent: &str,
    stamp: impl FnOnce() -> StoreStamp,
) -> Result<Message, Error> {
    let writer = writer(ev.route.kind);
    match &ev.route.destination {
        None => Err(Error::Invalid("event has no destination".into())),
        Some(Destination::Mqtt(m)) if ev.route.kind == RouteKind::Status => {
            check_topic(&m.topic, writer)?;
            let mut user_properties = Vec::new();
            if !traceparent.is_empty() {
                user_properties.push(("traceparent".to_string(), traceparent.to_string()));
            }
            Ok(Message {
                topic: m.topic.clone(),
                qos: m.qos,
                retain: true,
                payload: ev.data.clone(),
                properties: PublishProperties {
                    message_expiry_interval: m.ttl_seconds,
                    content_type: Some(content_type(&ev.data).to_string()),
                    user_properties,
                    ..Default::default()
                },
            })
        }
        Some(Destination::Mqtt(m)) => {
            check_topic(&m.topic, writer)?;
            Ok(Message {
                topic: m.topic.clone(),
                qos: m.qos,
                retain: m.retain,
                payload: ev.data.clone(),
                properties: PublishProperties {
                    message_expiry_interval: m.ttl_seconds,
                    content_type: Some(event_content_type(ev).to_string()),
                    user_properties: cloud_event_properties(ev, traceparent)?,
                    ..Default::default()
                },
            })
        }
        Some(Destination::StateStore { key }) => {
            if key.is_empty() {
                return Err(Error::Invalid("state store key is empty".into()));
            }
            topics::check_state_store(writer)
                .map_err(|r| Error::topic(state_store::REQUEST_TOPIC, r))?;
            let stamp = stamp();
            let mut user_properties = vec![("__ts".to_string(), stamp.ts)];
            if !traceparent.is_empty() {
                user_properties.push(("traceparent".into(), traceparent.to_string()));
            }
            Ok(Message {
                topic: state_store::REQUEST_TOPIC.to_string(),
                qos: Qos::AtLeastOnce,
                retain: false,
                payload: state_store::resp_set(key.as_bytes(), &ev.data).into(),
                properties: PublishProperties {
                    response_topic: Some(state_store::response_topic(&stamp.client_id)),
                    correlation_data: Some(stamp.correlation),
                    user_properties,
                    ..Default::default()
                },
            })
        }
    }
}

/// The message of a `PublishMessage` request.
pub fn single_message(m: &SingleMessage) -> Result<Message, Error> {
    check_topic(&m.topic, Writer::Admin)?;
    Ok(Message {
        topic: m.topic.clone(),
        qos: m.qos,
        retain: m.retain,
        payload: m.payload.clone(),
        properties: PublishProperties {
            message_expiry_interval: m.ttl_seconds,
            content_type: m.content_type.clone(),
            ..Default::default()
        },
    })
}

/// The content type of an event's data: JSON when the schema service tagged it with a
/// `dataschema` (it parsed the data as JSON to infer that schema, so parsing it again here would
/// repeat the work for every event), else what [`content_type`] finds.
pub fn event_content_type(ev: &Event) -> &'static str {
    if ev.dataschema.is_empty() {
        content_type(&ev.data)
    } else {
        JSON
    }
}

/// `application/json` when `data` parses as JSON, else text.
pub fn content_type(data: &[u8]) -> &'static str {
    if serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok() {
        JSON
    } else {
        TEXT
    }
}

/// Who an event's route kind publishes as: status reports may use the status topics, dataset
/// and event routes (from ingest's resources) only topics the connector does not own.
fn writer(kind: RouteKind) -> Writer {
    match kind {
        RouteKind::Status => Writer::StatusReport,
        RouteKind::Dataset | RouteKind::Event => Writer::Route,
    }
}

/// Checks that `writer` may publish to `topic`: a valid MQTT topic name (non-empty, no
/// wildcards, no NUL, at most 65535 bytes) that the connector does not own, unless the owned
/// rule lets this writer in (sse-contract's topic list).
pub fn check_topic(topic: &str, writer: Writer) -> Result<(), Error> {
    topics::check_destination(topic, writer).map_err(|r| Error::topic(topic, r))
}

/// The CloudEvents and Azure IoT Operations user properties, in their fixed order.
pub(crate) fn cloud_event_properties(
    ev: &Event,
    traceparent: &str,
) -> Result<Vec<(String, String)>, Error> {
    let r = &ev.route;
    let Some(type_) = route::cloud_event_type(r.kind, &r.type_ref) else {
        return Err(Error::Invalid("a status report has no CloudEvent".into()));
    };
    // At most 12 properties: one allocation for the list.
    let mut props = Vec::with_capacity(12);
    // Source, subject and the refs name the device and asset by their ADR ids where the route
    // has them (sse-contract's rules), by their names otherwise.
    props.extend([
        ("specversion".to_string(), "1.0".to_string()),
        ("id".into(), ev.id.clone()),
        ("source".into(), r.cloud_event_source()),
        ("type".into(), type_),
        ("subject".into(), r.cloud_event_subject(&ev.subject)),
        ("time".into(), rfc3339_millis(ev.received_unix_nanos)),
    ]);
    if !ev.dataschema.is_empty() {
        props.push(("dataschema".into(), ev.dataschema.clone()));
    }
    props.push(("aiodeviceref".into(), r.aio_device_ref()));
    props.push(("aioassetref".into(), r.aio_asset_ref()));
    let sse_event = if ev.sse_event.is_empty() {
        "message"
    } else {
        ev.sse_event.as_str()
    };
    // The device chose these two: a character brokers refuse is escaped, not a reason to refuse
    // the event.
    props.push((
        "sseevent".into(),
        mqtt_text::escaped(sse_event).into_owned(),
    ));
    if !ev.sse_id.is_empty() {
        props.push(("sseid".into(), mqtt_text::escaped(&ev.sse_id).into_owned()));
    }
    if !traceparent.is_empty() {
        props.push(("traceparent".into(), traceparent.to_string()));
    }
    Ok(props)
}

/// RFC 3339 UTC with milliseconds of a Unix time in nanoseconds (negative: the epoch).
pub fn rfc3339_millis(unix_nanos: i64) -> String {
    let nanos = u64::try_from(unix_nanos).unwrap_or(0);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(nanos)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{MqttDestination, ResourceIds, Route};

    fn event(kind: RouteKind, dest: Destination) -> Event {
        Event {
            id: "ev-1".into(),
            seq: 7,
            stream_key: "s".into(),
            data: Bytes::from_static(b"{\"temp\":21.5}"),
            sse_event: "temperature-threshold".into(),
            sse_id: "42".into(),
            received_unix_nanos: 1_700_000_000_123_456_789,
            route: Route {
                device: "weather-station".into(),
                endpoint: "sse-0".into(),
                asset: "my-sse-source".into(),
                kind,
                group: "alerts".into(),
                event: "overheat".into(),
                data_source: "temperature-threshold".into(),
                type_ref: String::new(),
                destination: Some(dest),
                ids: ResourceIds::default(),
                dead_letter: None,
            },
            traceparent: String::new(),
            tracestate: String::new(),
            dataschema: "aio-sr://ns/ABC:1".into(),
            subject: String::new(),
            dead_letter: None,
        }
    }

    fn mqtt(qos: Qos, retain: bool, ttl: Option<u32>) -> Destination {
        Destination::Mqtt(MqttDestination {
            topic: "factory/weather/alerts".into(),
            qos,
            retain,
            ttl_seconds: ttl,
        })
    }

    fn no_stamp() -> StoreStamp {
        panic!("stamp asked for an MQTT destination")
    }

    fn props(m: &Message) -> Vec<(&str, &str)> {
        m.properties
            .user_properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn event_row_by_row() {
        let ev = event(RouteKind::Event, mqtt(Qos::AtLeastOnce, true, Some(3600)));
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let m = event_message(&ev, tp, no_stamp).unwrap();
        assert_eq!(m.topic, "factory/weather/alerts");
        assert_eq!(m.qos, Qos::AtLeastOnce);
        assert!(m.retain);
        assert_eq!(m.properties.message_expiry_interval, Some(3600));
        assert_eq!(m.payload, ev.data);
        assert_eq!(m.properties.content_type.as_deref(), Some(JSON));
        assert_eq!(
            props(&m),
            vec![
                ("specversion", "1.0"),
                ("id", "ev-1"),
                ("source", "ms-aio:weather-station/temperature-threshold"),
                ("type", "Event"),
                ("subject", "my-sse-source/alerts/overheat"),
                ("time", "2023-11-14T22:13:20.123Z"),
                ("dataschema", "aio-sr://ns/ABC:1"),
                ("aiodeviceref", "ms-aio:weather-station/sse-0"),
                ("aioassetref", "ms-aio:my-sse-source"),
                ("sseevent", "temperature-threshold"),
                ("sseid", "42"),
                ("traceparent", tp),
            ]
        );
        let p = m.to_publish();
        assert!(p.retain);
        assert_eq!(p.pkid, 0);
        assert_eq!(&p.topic[..], b"factory/weather/alerts");
    }

    /// A dataset takes every type its path sends, so a device's `event:` and `id:` text reaches
    /// the properties as it came; a control character there is escaped, and the event delivered.
    #[test]
    fn a_devices_type_and_id_are_escaped_where_brokers_would_refuse_them() {
        let mut ev = event(RouteKind::Dataset, mqtt(Qos::AtLeastOnce, false, None));
        ev.sse_event = "read\u{1}ing".into();
        ev.sse_id = "7\t8".into();
        let m = event_message(&ev, "", no_stamp).unwrap();
        let p = props(&m);
        assert!(p.contains(&("sseevent", r"read\u{1}ing")), "{p:?}");
        assert!(p.contains(&("sseid", r"7\u{9}8")), "{p:?}");
        assert_eq!(m.check_text(), Ok(()));
    }

    #[test]
    fn dataset_row_with_type_ref_and_optional_fields_absent() {
        let mut ev = event(RouteKind::Dataset, mqtt(Qos::AtMostOnce, false, None));
        ev.route.group = "all-readings".into();
        ev.route.data_source = "/readings".into();
        ev.route.type_ref = "dtmi:x;1".into();
        ev.sse_event.clear();
        ev.sse_id.clear();
        ev.dataschema.clear();
        ev.data = Bytes::from_static(b"not json");
        let m = event_message(&ev, "", no_stamp).unwrap();
        assert_eq!(m.qos, Qos::AtMostOnce);
        assert!(!m.retain);
        assert_eq!(m.properties.message_expiry_interval, None);
        assert_eq!(m.properties.content_type.as_deref(), Some(TEXT));
        assert_eq!(
            props(&m),
            vec![
                ("specversion", "1.0"),
                ("id", "ev-1"),
                ("source", "ms-aio:weather-station/readings"),
                ("type", "DataSet/dtmi:x;1"),
                ("subject", "my-sse-source/all-readings"),
                ("time", "2023-11-14T22:13:20.123Z"),
                ("aiodeviceref", "ms-aio:weather-station/sse-0"),
                ("aioassetref", "ms-aio:my-sse-source"),
                ("sseevent", "message"),
            ]
        );
    }

    /// The event of `event()` with ADR ids on its route.
    fn adr_event(external_device_id: &str, external_asset_id: &str) -> Event {
        let mut ev = event(RouteKind::Event, mqtt(Qos::AtLeastOnce, false, None));
        ev.subject = "my-sse-source/alerts/overheat".into(); // by names, as ingest sends it
        ev.route.ids = ResourceIds {
            device_uuid: "d-uuid".into(),
            external_device_id: external_device_id.into(),
            asset_uuid: "a-uuid".into(),
            external_asset_id: external_asset_id.into(),
        };
        ev
    }

    /// The identity properties of a message: source, subject and the two refs.
    fn identity(m: &Message) -> Vec<(&str, &str)> {
        let names = ["source", "subject", "aiodeviceref", "aioassetref"];
        props(m)
            .into_iter()
            .filter(|(k, _)| names.contains(k))
            .collect()
    }

    #[test]
    fn adr_external_ids_name_the_device_and_asset() {
        let m = event_message(&adr_event("ws-ext", "src-ext"), "", no_stamp).unwrap();
        assert_eq!(
            identity(&m),
            vec![
                ("source", "ms-aio:ws-ext/temperature-threshold"),
                ("subject", "src-ext/alerts/overheat"),
                ("aiodeviceref", "ms-aio:d-uuid/sse-0"),
                ("aioassetref", "ms-aio:a-uuid"),
            ]
        );
    }

    #[test]
    fn adr_external_ids_equal_to_the_uuid_or_absent_leave_the_names() {
        for (device, asset) in [("d-uuid", "a-uuid"), ("", "")] {
            let m = event_message(&adr_event(device, asset), "", no_stamp).unwrap();
            assert_eq!(
                identity(&m),
                vec![
                    ("source", "ms-aio:weather-station/temperature-threshold"),
                    ("subject", "my-sse-source/alerts/overheat"),
                    ("aiodeviceref", "ms-aio:d-uuid/sse-0"),
                    ("aioassetref", "ms-aio:a-uuid"),
                ],
                "{device:?} {asset:?}"
            );
        }
    }

    #[test]
    fn adr_type_carries_the_type_ref() {
        let mut ev = adr_event("ws-ext", "src-ext");
        ev.route.type_ref = "dtmi:com:example:Overheat;1".into();
        let m = event_message(&ev, "", no_stamp).unwrap();
        assert!(
            props(&m).contains(&("type", "Event/dtmi:com:example:Overheat;1")),
            "{m:?}"
        );
    }

    #[test]
    fn packet_size_bound_is_never_below_the_exact_size() {
        let full = PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: Some(3),
            response_topic: Some("r/t".into()),
            correlation_data: Some(Bytes::from_static(b"corr")),
            user_properties: vec![("k".into(), "v".into()), ("key".into(), "x".repeat(300))],
            subscription_identifiers: vec![1, 300, 70_000],
            content_type: Some(JSON.into()),
        };
        // Payload sizes across the remaining length's 1-, 2-, 3- and 4-byte encodings.
        for len in [0, 1, 100, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
            for properties in [PublishProperties::default(), full.clone()] {
                for qos in [Qos::AtMostOnce, Qos::AtLeastOnce] {
                    let m = Message {
                        topic: "a/b".into(),
                        qos,
                        retain: false,
                        payload: Bytes::from(vec![b'x'; len]),
                        properties: properties.clone(),
                    };
                    let (exact, bound) = (m.packet_size(), m.packet_size_bound());
                    assert!(bound >= exact, "len {len} {qos:?}: {bound} < {exact}");
                    assert!(bound <= exact + 40, "a loose bound: {bound} for {exact}");
                }
            }
        }
    }

    #[test]
    fn packet_size_counts_the_packet_id_of_qos1() {
        let m = |qos| Message {
            topic: "t".into(),
            qos,
            retain: false,
            payload: Bytes::from_static(b"x"),
            properties: PublishProperties::default(),
        };
        // Fixed header 2, topic 3, property length 1, payload 1; the packet id 2 more at QoS 1.
        assert_eq!(m(Qos::AtMostOnce).packet_size(), 7);
        assert_eq!(m(Qos::AtLeastOnce).packet_size(), 9);
    }

    /// `check_text` leaves user property names alone because each one is a constant here: every
    /// kind of message this module builds, with every optional property, is checked in full.
    #[test]
    fn every_user_property_name_is_mqtt_text() {
        let stamp = || StoreStamp {
            client_id: "pub-1".into(),
            ts: "ts".into(),
            correlation: Bytes::from_static(&[7; 16]),
        };
        let kinds = [
            (RouteKind::Dataset, mqtt(Qos::AtLeastOnce, false, None)),
            (RouteKind::Event, mqtt(Qos::AtLeastOnce, false, None)),
            (RouteKind::Status, mqtt(Qos::AtLeastOnce, true, None)),
            (
                RouteKind::Dataset,
                Destination::StateStore { key: "k".into() },
            ),
        ];
        for (kind, dest) in kinds {
            let m = event_message(&event(kind, dest), "00-tp", stamp).unwrap();
            assert!(!m.properties.user_properties.is_empty(), "{kind:?}");
            for (name, _) in &m.properties.user_properties {
                assert_eq!(mqtt_text::check(name), Ok(()), "{kind:?} {name:?}");
            }
        }
    }

    #[test]
    fn the_content_type_of_an_event_with_a_schema_is_json_unparsed() {
        let mut ev = event(RouteKind::Dataset, mqtt(Qos::AtLeastOnce, false, None));
        ev.data = Bytes::from_static(b"not json");
        assert_eq!(
            event_content_type(&ev),
            JSON,
            "tagged by the schema service"
        );
        ev.dataschema.clear();
        assert_eq!(event_content_type(&ev), TEXT);
    }

    #[test]
    fn content_type_json_vs_text() {
        for json in [&b"{}"[..], b"[1,2]", b"42", b"\"s\"", b" true ", b"null"] {
            assert_eq!(content_type(json), JSON, "{json:?}");
        }
        for text in [&b""[..], b"hello", b"{", b"{} {}", b"\xff"] {
            assert_eq!(content_type(text), TEXT, "{text:?}");
        }
    }

    #[test]
    fn time_is_utc_millis() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(-5), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(1_500_000_000), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn rejects_bad_events() {
        let mut ev = event(RouteKind::Event, mqtt(Qos::AtLeastOnce, false, None));
        ev.route.destination = None;
        assert!(matches!(
            event_message(&ev, "", no_stamp),
            Err(Error::Invalid(_))
        ));
        let mut ev = event(RouteKind::Event, mqtt(Qos::AtLeastOnce, false, None));
        if let Some(Destination::Mqtt(m)) = &mut ev.route.destination {
            m.topic = "a/+/b".into();
        }
        assert!(matches!(
            event_message(&ev, "", no_stamp),
            Err(Error::InvalidTopic { .. })
        ));
    }

    #[test]
    fn the_subject_ingest_sent_is_the_one_published() {
        let mut ev = event(RouteKind::Event, mqtt(Qos::AtLeastOnce, false, None));
        ev.subject = "from/ingest".into();
        let m = event_message(&ev, "", no_stamp).unwrap();
        assert!(props(&m).contains(&("subject", "from/ingest")), "{m:?}");
    }

    #[test]
    fn status_reports_are_retained_without_cloud_events() {
        let ev = event(RouteKind::Status, mqtt(Qos::AtLeastOnce, false, None));
        let m = event_message(&ev, "00-aa-bb-01", no_stamp).unwrap();
        assert!(m.retain);
        assert_eq!(props(&m), vec![("traceparent", "00-aa-bb-01")]);
    }

    #[test]
    fn topic_validation() {
        for writer in [Writer::Route, Writer::Admin, Writer::StatusReport] {
            assert!(check_topic("a/b", writer).is_ok());
            for bad in ["", "a/#", "+", "a\0b", &"x".repeat(70_000)] {
                assert!(
                    matches!(check_topic(bad, writer), Err(Error::InvalidTopic { .. })),
                    "{bad:?}"
                );
            }
        }
    }

    #[test]
    fn only_status_reports_publish_under_the_status_prefix() {
        let status = |kind| {
            let mut ev = event(kind, mqtt(Qos::AtLeastOnce, true, None));
            if let Some(Destination::Mqtt(m)) = &mut ev.route.destination {
                m.topic = "sse-connector/status/asset/a".into();
            }
            event_message(&ev, "", no_stamp)
        };
        assert!(status(RouteKind::Status).is_ok());
        for kind in [RouteKind::Dataset, RouteKind::Event] {
            let e = status(kind).unwrap_err();
            assert!(matches!(e, Error::NotAllowed { .. }), "{e}");
            assert!(e.to_string().contains("sse-connector/status/#"), "{e}");
        }
    }

    #[test]
    fn no_route_publishes_to_an_owned_topic() {
        for rule in topics::OwnedTopic::ALL {
            for kind in [RouteKind::Dataset, RouteKind::Event, RouteKind::Status] {
                let mut ev = event(kind, mqtt(Qos::AtLeastOnce, false, None));
                if let Some(Destination::Mqtt(m)) = &mut ev.route.destination {
                    m.topic = rule.example().into();
                }
                let allowed = kind == RouteKind::Status
                    && matches!(
                        rule,
                        topics::OwnedTopic::Status
                            | topics::OwnedTopic::Discovery
                            | topics::OwnedTopic::Connector
                    );
                let r = event_message(&ev, "", no_stamp);
                assert_eq!(r.is_ok(), allowed, "{kind:?} {rule:?}");
                if let Err(e) = r {
                    assert!(e.to_string().contains(&rule.to_string()), "{e}");
                }
            }
            let single = SingleMessage {
                topic: rule.example().into(),
                payload: Bytes::from_static(b"x"),
                qos: Qos::AtLeastOnce,
                retain: true,
                ttl_seconds: None,
                content_type: None,
            };
            let e = single_message(&single).unwrap_err();
            assert!(matches!(e, Error::NotAllowed { .. }), "{rule:?}: {e}");
        }
    }

    #[test]
    fn a_status_report_cannot_write_to_the_state_store() {
        let ev = event(
            RouteKind::Status,
            Destination::StateStore { key: "k".into() },
        );
        let e = event_message(&ev, "", no_stamp).unwrap_err();
        assert!(matches!(e, Error::NotAllowed { .. }), "{e}");
        assert!(e.to_string().contains("state store"), "{e}");
    }

    #[test]
    fn state_store_request() {
        let ev = event(
            RouteKind::Dataset,
            Destination::StateStore {
                key: "weather-latest".into(),
            },
        );
        let m = event_message(&ev, "00-tp", || StoreStamp {
            client_id: "pub-1".into(),
            ts: "001700000000123:00000:pub-1".into(),
            correlation: Bytes::from_static(&[7; 16]),
        })
        .unwrap();
        assert_eq!(m.topic, state_store::REQUEST_TOPIC);
        assert_eq!(m.qos, Qos::AtLeastOnce);
        assert!(!m.retain);
        assert_eq!(
            &m.payload[..],
            b"*3\r\n$3\r\nSET\r\n$14\r\nweather-latest\r\n$13\r\n{\"temp\":21.5}\r\n"
        );
        assert_eq!(
            m.properties.response_topic.as_deref(),
            Some(
                "clients/pub-1/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke/response"
            )
        );
        assert_eq!(
            m.properties.correlation_data.as_deref(),
            Some(&[7u8; 16][..])
        );
        assert_eq!(
            props(&m),
            vec![
                ("__ts", "001700000000123:00000:pub-1"),
                ("traceparent", "00-tp")
            ]
        );
    }

    #[test]
    fn single_message_maps_fields() {
        let m = single_message(&SingleMessage {
            topic: "t".into(),
            payload: Bytes::from_static(b"hi"),
            qos: Qos::AtMostOnce,
            retain: true,
            ttl_seconds: Some(5),
            content_type: Some("text/plain".into()),
        })
        .unwrap();
        assert_eq!(m.properties.message_expiry_interval, Some(5));
        assert_eq!(m.properties.content_type.as_deref(), Some("text/plain"));
        assert!(m.retain);
        assert!(m.properties.user_properties.is_empty());
    }
}
