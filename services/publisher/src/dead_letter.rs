//! Dead letters: an event that failed for good goes to its route's dead-letter topic, with its
//! payload, its CloudEvents properties and user properties naming the reason, the original
//! destination and its CloudEvents id (sse-contract's `dead_letter` names). A dead letter that
//! fails for good in turn is counted and acknowledged: it is never dead-lettered again.

use rumqttc::v5::mqttbytes::v5::PublishProperties;
use sse_contract::dead_letter::{self as contract, Mark, Reason};
use sse_contract::route;
use sse_contract::topics::Writer;

use crate::error::Error;
use crate::event::{Destination, Event, MqttDestination};
use crate::properties::{self, Message};

/// The dead-letter reason of a delivery that failed with `e`, when a dead letter applies: a
/// broker refusal (PUBACK reason code 0x80 or more) or a state store error after the last
/// attempt. Other permanent errors (an invalid event, an owned topic) are the sender's: counted
/// as before.
pub fn reason_of(e: &Error) -> Option<Reason> {
    match e {
        Error::Rejected { .. } => Some(Reason::BrokerRefused),
        Error::StateStore(_) => Some(Reason::StateStore),
        _ => None,
    }
}

/// The original destination as [`contract::PROP_DESTINATION`] names it: the topic, or
/// `statestore:<key>`.
pub fn original_destination(ev: &Event) -> String {
    match &ev.route.destination {
        Some(Destination::Mqtt(m)) => m.topic.clone(),
        Some(Destination::StateStore { key }) => format!("statestore:{key}"),
        None => String::new(),
    }
}

/// The dead letter of `ev` for `mark` (why, and whether its data is truncated), with
/// `traceparent` as its trace context.
pub fn message(ev: &Event, mark: &Mark, traceparent: &str) -> Result<Message, Error> {
    let Some(dl) = &ev.route.dead_letter else {
        return Err(Error::Invalid(
            "a dead letter on a route without a dead-letter destination".into(),
        ));
    };
    check(dl)?;
    // Keep the CloudEvents properties when the route has them (not a status report).
    let mut user_properties = if route::cloud_event_type(ev.route.kind, "").is_some() {
        properties::cloud_event_properties(ev, traceparent)?
    } else {
        Vec::new()
    };
    user_properties.extend([
        (contract::PROP_REASON.to_string(), mark.reason.to_string()),
        (contract::PROP_DETAIL.to_string(), mark.detail.clone()),
        (
            contract::PROP_DESTINATION.to_string(),
            original_destination(ev),
        ),
        (contract::PROP_ID.to_string(), ev.id.clone()),
    ]);
    if let Some(bytes) = mark.truncated_from {
        user_properties.extend([
            (contract::PROP_TRUNCATED.to_string(), "true".to_string()),
            (contract::PROP_ORIGINAL_BYTES.to_string(), bytes.to_string()),
        ]);
    }
    Ok(Message {
        topic: dl.topic.clone(),
        qos: dl.qos,
        retain: dl.retain,
        payload: ev.data.clone(),
        properties: PublishProperties {
            message_expiry_interval: dl.ttl_seconds,
            content_type: Some(properties::event_content_type(ev).to_string()),
            user_properties,
            ..Default::default()
        },
    })
}

/// Checks a dead-letter destination as the publisher sends it: under the dead-letter prefix,
/// which only dead letters may write to (a route from the wire is not trusted).
fn check(dl: &MqttDestination) -> Result<(), Error> {
    properties::check_topic(&dl.topic, Writer::DeadLetter)?;
    contract::check_topic(&dl.topic).map_err(|e| Error::Invalid(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::{Qos, ResourceIds, Route, RouteKind};

    fn event(dead_letter: &str) -> Event {
        Event {
            id: "ce-1".into(),
            seq: 1,
            stream_key: "k".into(),
            data: bytes::Bytes::from_static(br#"{"t":1}"#),
            sse_event: "reading".into(),
            sse_id: "7".into(),
            received_unix_nanos: 1,
            route: Route {
                device: "dev".into(),
                endpoint: "sse".into(),
                asset: "a".into(),
                kind: RouteKind::Dataset,
                group: "d".into(),
                event: String::new(),
                data_source: "/r".into(),
                type_ref: String::new(),
                destination: Some(Destination::Mqtt(MqttDestination {
                    topic: "plant/r".into(),
                    qos: Qos::AtLeastOnce,
                    retain: false,
                    ttl_seconds: None,
                })),
                ids: ResourceIds::default(),
                dead_letter: Some(MqttDestination {
                    topic: dead_letter.into(),
                    qos: Qos::AtLeastOnce,
                    retain: false,
                    ttl_seconds: Some(60),
                }),
            },
            traceparent: String::new(),
            tracestate: String::new(),
            dataschema: String::new(),
            subject: "a/d".into(),
            dead_letter: None,
        }
    }

    fn prop<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
        m.properties
            .user_properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Message::check_text` leaves user property names alone: a dead letter's are constants.
    #[test]
    fn every_dead_letter_property_name_is_mqtt_text() {
        let mark = Mark {
            reason: Reason::TooLarge,
            detail: "over".into(),
            truncated_from: Some(5000),
        };
        let m = message(&event("sse-connector/dead-letter/plant"), &mark, "00-tp").unwrap();
        for (name, _) in &m.properties.user_properties {
            assert_eq!(sse_contract::mqtt_text::check(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn a_dead_letter_keeps_payload_and_cloud_event_and_says_why() {
        let ev = event("sse-connector/dead-letter/plant");
        let mark = Mark {
            reason: Reason::TooLarge,
            detail: "over".into(),
            truncated_from: Some(5000),
        };
        let m = message(&ev, &mark, "").unwrap();
        assert_eq!(m.topic, "sse-connector/dead-letter/plant");
        assert_eq!(m.payload, ev.data);
        assert_eq!(m.properties.message_expiry_interval, Some(60));
        assert_eq!(prop(&m, "id"), Some("ce-1"));
        assert_eq!(prop(&m, "specversion"), Some("1.0"));
        assert_eq!(prop(&m, contract::PROP_REASON), Some("too_large"));
        assert_eq!(prop(&m, contract::PROP_DESTINATION), Some("plant/r"));
        assert_eq!(prop(&m, contract::PROP_ID), Some("ce-1"));
        assert_eq!(prop(&m, contract::PROP_TRUNCATED), Some("true"));
        assert_eq!(prop(&m, contract::PROP_ORIGINAL_BYTES), Some("5000"));
        let untruncated = Mark {
            truncated_from: None,
            ..mark
        };
        let m = message(&ev, &untruncated, "").unwrap();
        assert_eq!(prop(&m, contract::PROP_TRUNCATED), None);
    }

    #[test]
    fn a_dead_letter_goes_only_under_the_dead_letter_prefix() {
        let mark = Mark {
            reason: Reason::BrokerRefused,
            detail: String::new(),
            truncated_from: None,
        };
        for bad in ["plant/dead", "sse-connector/status/x", "$SYS/x"] {
            assert!(message(&event(bad), &mark, "").is_err(), "{bad}");
        }
        let mut ev = event("sse-connector/dead-letter/x");
        ev.route.dead_letter = None;
        assert!(matches!(message(&ev, &mark, ""), Err(Error::Invalid(_))));
    }

    #[test]
    fn only_broker_refusals_and_state_store_errors_are_dead_lettered() {
        let refused = Error::Rejected {
            code: "not_authorized",
            detail: "NotAuthorized".into(),
        };
        assert_eq!(reason_of(&refused), Some(Reason::BrokerRefused));
        assert_eq!(
            reason_of(&Error::StateStore("-ERR".into())),
            Some(Reason::StateStore)
        );
        assert_eq!(reason_of(&Error::Invalid(String::new())), None);
        assert_eq!(reason_of(&Error::Unavailable), None);
    }
}
