//! The asset form: the device endpoint it reads, one dataset destination and/or events (name =
//! SSE type rows) with their destination, in the shape `ssectl asset sse create` writes (the
//! dataset named after the asset on `/`, the events in one group `events`), so both tools
//! produce the same document. Editing keeps what the form does not show.

use serde_json::{Map, Value, json};

use super::Fields;
use super::errors::FormErrors;
use super::yaml;

/// Name of the one event group the form fills (as `ssectl`).
pub const EVENT_GROUP: &str = "events";
/// QoS choices of a destination.
pub const QOS: [&str; 2] = ["Qos0", "Qos1"];
/// Retain choices of a destination.
pub const RETAIN: [&str; 2] = ["Keep", "Never"];

/// One MQTT destination: topic, QoS, retain, TTL (seconds); empty strings are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dest {
    /// The topic; empty: no destination.
    pub topic: String,
    /// `Qos0` or `Qos1`; empty: the default.
    pub qos: String,
    /// `Keep` or `Never`; empty: the default.
    pub retain: String,
    /// Seconds; empty: none.
    pub ttl: String,
}

impl Dest {
    fn from_fields(f: &Fields, prefix: &str) -> Self {
        Self {
            topic: f.get(&format!("{prefix}_topic")),
            qos: f.get(&format!("{prefix}_qos")),
            retain: f.get(&format!("{prefix}_retain")),
            ttl: f.get(&format!("{prefix}_ttl")),
        }
    }

    fn from_value(v: &Value) -> Self {
        let first = v.get("destinations").and_then(|d| d.get(0));
        let conf_of = |k: &str| {
            first
                .map(|d| yaml::text(d, &["configuration", k]))
                .unwrap_or_default()
        };
        Self {
            topic: conf_of("topic"),
            qos: conf_of("qos"),
            retain: conf_of("retain"),
            ttl: conf_of("ttl"),
        }
    }

    fn check(&self, prefix: &str, e: &mut FormErrors) {
        if !self.qos.is_empty() && !QOS.contains(&self.qos.as_str()) {
            e.field(
                &format!("{prefix}_qos"),
                format!("choose {}", QOS.join(" or ")),
            );
        }
        if !self.retain.is_empty() && !RETAIN.contains(&self.retain.as_str()) {
            e.field(
                &format!("{prefix}_retain"),
                format!("choose {}", RETAIN.join(" or ")),
            );
        }
        if !self.ttl.is_empty() && self.ttl.parse::<u64>().is_err() {
            e.field(&format!("{prefix}_ttl"), "a number of seconds");
        }
    }

    /// The `destinations` list, as `ssectl` writes it.
    fn to_value(&self) -> Value {
        let mut conf = Map::new();
        conf.insert("topic".into(), json!(self.topic));
        if !self.qos.is_empty() {
            conf.insert("qos".into(), json!(self.qos));
        }
        if !self.retain.is_empty() {
            conf.insert("retain".into(), json!(self.retain));
        }
        if let Ok(t) = self.ttl.parse::<u64>() {
            conf.insert("ttl".into(), json!(t));
        }
        json!([{ "target": "Mqtt", "configuration": conf }])
    }
}

/// What the asset form holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetForm {
    /// The asset's name.
    pub name: String,
    /// The device it reads.
    pub device: String,
    /// The device's endpoint.
    pub endpoint: String,
    /// The dataset's destination (empty topic: no dataset).
    pub dataset: Dest,
    /// Events: (name, SSE type) rows.
    pub events: Vec<(String, String)>,
    /// The events' destination.
    pub events_dest: Dest,
}

impl AssetForm {
    /// The form as posted; blank event rows are dropped.
    pub fn from_fields(f: &Fields) -> Self {
        let names = f.all("event_name");
        let types = f.all("event_type");
        let rows = names.len().max(types.len());
        let events = (0..rows)
            .map(|i| {
                let at = |v: &[String]| v.get(i).cloned().unwrap_or_default();
                (at(&names), at(&types))
            })
            .filter(|(n, t)| !n.is_empty() || !t.is_empty())
            .collect();
        Self {
            name: f.get("name"),
            device: f.get("device"),
            endpoint: f.get("endpoint"),
            dataset: Dest::from_fields(f, "dataset"),
            events,
            events_dest: Dest::from_fields(f, "events"),
        }
    }

    /// The form prefilled from an asset document: its first dataset and first event group.
    pub fn from_yaml(text: &str) -> Self {
        let doc = yaml::parse(text);
        let spec = &doc["spec"];
        let dataset = spec.get("datasets").and_then(|d| d.get(0));
        let group = spec.get("eventGroups").and_then(|g| g.get(0));
        let events: Vec<&Value> = group
            .and_then(|g| g.get("events"))
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        Self {
            name: yaml::text(&doc, &["metadata", "name"]),
            device: yaml::text(spec, &["deviceRef", "deviceName"]),
            endpoint: yaml::text(spec, &["deviceRef", "endpointName"]),
            dataset: dataset.map(Dest::from_value).unwrap_or_default(),
            events: events
                .iter()
                .map(|e| (yaml::text(e, &["name"]), yaml::text(e, &["dataSource"])))
                .collect(),
            events_dest: events
                .first()
                .map(|e| Dest::from_value(e))
                .unwrap_or_default(),
        }
    }

    /// What the console checks before asking ingest (which checks the rest).
    pub fn check(&self) -> FormErrors {
        let mut e = FormErrors::default();
        for (field, v) in [
            ("name", &self.name),
            ("device", &self.device),
            ("endpoint", &self.endpoint),
        ] {
            if v.is_empty() {
                e.field(field, "required");
            }
        }
        if self.dataset.topic.is_empty() && self.events.is_empty() {
            e.form
                .push("give a dataset topic, or events with their topic".into());
        }
        if !self.events.is_empty() && self.events_dest.topic.is_empty() {
            e.field("events_topic", "the events need a topic");
        }
        if self
            .events
            .iter()
            .any(|(n, t)| n.is_empty() || t.is_empty())
        {
            e.field("event_name", "every event row needs a name and an SSE type");
        }
        self.dataset.check("dataset", &mut e);
        self.events_dest.check("events", &mut e);
        e
    }

    /// The asset document: `existing` (the asset as it is, if any) with the form's device
    /// endpoint, dataset and events set.
    pub fn to_yaml(&self, existing: Option<&str>) -> String {
        let mut doc = existing.map(yaml::parse).unwrap_or_else(|| json!({}));
        yaml::header(&mut doc, "Asset", &self.name);
        let spec = yaml::object(&mut doc, "spec");
        spec["deviceRef"] = json!({ "deviceName": self.device, "endpointName": self.endpoint });
        if let Some(m) = spec.as_object_mut() {
            m.remove("datasets");
            m.remove("eventGroups");
        }
        if !self.dataset.topic.is_empty() {
            spec["datasets"] = json!([{
                "name": self.name,
                "dataSource": "/",
                "destinations": self.dataset.to_value(),
            }]);
        }
        if !self.events.is_empty() {
            let events: Vec<Value> = self
                .events
                .iter()
                .map(|(n, t)| json!({ "name": n, "dataSource": t, "destinations": self.events_dest.to_value() }))
                .collect();
            spec["eventGroups"] = json!([{ "name": EVENT_GROUP, "events": events }]);
        }
        yaml::render(&doc)
    }
}

/// The asset form's input a resource path of an asset is about; `None`: none.
pub fn input(field: &str) -> Option<&'static str> {
    match field {
        "metadata.name" => Some("name"),
        "spec.deviceRef.deviceName" => Some("device"),
        "spec.deviceRef.endpointName" => Some("endpoint"),
        f if f.starts_with("spec.datasets") => Some("dataset_topic"),
        f if f.starts_with("spec.eventGroups") => Some("events_topic"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_only_is_what_ssectl_writes() {
        let f = AssetForm::from_fields(&Fields::parse(
            b"name=wx&device=gw&endpoint=sse&event_name=temp&event_type=temperature&event_name=&event_type=&event_name=hum&event_type=humidity&events_topic=plant%2Fwx&events_qos=Qos1&events_ttl=60",
        ));
        assert!(f.check().is_empty(), "{:?}", f.check());
        let doc = yaml::parse(&f.to_yaml(None));
        let expected = json!({
            "apiVersion": yaml::API_VERSION, "kind": "Asset", "metadata": { "name": "wx" },
            "spec": {
                "deviceRef": { "deviceName": "gw", "endpointName": "sse" },
                "eventGroups": [{ "name": "events", "events": [
                    { "name": "temp", "dataSource": "temperature", "destinations": [{ "target": "Mqtt", "configuration": { "topic": "plant/wx", "qos": "Qos1", "ttl": 60 } }] },
                    { "name": "hum", "dataSource": "humidity", "destinations": [{ "target": "Mqtt", "configuration": { "topic": "plant/wx", "qos": "Qos1", "ttl": 60 } }] },
                ] }],
            },
        });
        assert_eq!(doc, expected);
        assert_eq!(AssetForm::from_yaml(&f.to_yaml(None)), f);
    }

    #[test]
    fn a_dataset_and_events_round_trip_and_bad_values_are_caught() {
        let f = AssetForm {
            name: "a".into(),
            device: "d".into(),
            endpoint: "sse".into(),
            dataset: Dest {
                topic: "t/all".into(),
                qos: "Qos0".into(),
                retain: "Never".into(),
                ttl: String::new(),
            },
            events: vec![("e".into(), "tick".into())],
            events_dest: Dest {
                topic: "t/e".into(),
                ..Dest::default()
            },
        };
        assert_eq!(AssetForm::from_yaml(&f.to_yaml(None)), f);
        let bad = AssetForm {
            dataset: Dest {
                ttl: "soon".into(),
                qos: "Qos2".into(),
                ..f.dataset.clone()
            },
            ..f
        };
        let e = bad.check();
        assert_eq!(e.of("dataset_ttl").len(), 1);
        assert_eq!(e.of("dataset_qos").len(), 1);
        assert!(AssetForm::default().check().form.len() == 1);
    }
}
