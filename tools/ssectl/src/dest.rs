//! The `--dataset-dest topic=T qos=Qos1 retain=Never ttl=3600` and `--event NAME=SSE_TYPE`
//! arguments: parsed here so a typo is a usage error (exit 64) before any call. Values the
//! server judges (the QoS and retain names) are passed as written, so its field error names them.

use serde_json::{Map, Value, json};

/// The keys a dataset destination takes.
const KEYS: [&str; 4] = ["topic", "qos", "retain", "ttl"];

/// Why a destination's arguments are wrong.
#[derive(Debug, PartialEq, Eq)]
pub enum DestError {
    /// `--dataset-dest` without `topic=`.
    NoTopic,
}

impl std::fmt::Display for DestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DestError::NoTopic => f.write_str("--dataset-dest needs topic=TOPIC"),
        }
    }
}

impl std::error::Error for DestError {}

/// An MQTT destination: the asset's `destinations[].configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// The topic to publish on.
    pub topic: String,
    /// `Qos0` or `Qos1`, when given.
    pub qos: Option<String>,
    /// `Keep` or `Never`, when given.
    pub retain: Option<String>,
    /// Message expiry in seconds, when given.
    pub ttl: Option<u64>,
}

impl Dest {
    /// The destination the (already checked) pairs describe; the last of a repeated key wins.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, DestError> {
        let get = |k: &str| pairs.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v);
        Ok(Self {
            topic: get("topic").ok_or(DestError::NoTopic)?.clone(),
            qos: get("qos").cloned(),
            retain: get("retain").cloned(),
            ttl: get("ttl").and_then(|t| t.parse().ok()),
        })
    }

    /// The destination as the asset's `destinations` list of one.
    pub fn to_yaml(&self) -> Value {
        let mut conf = Map::new();
        conf.insert("topic".into(), json!(self.topic));
        if let Some(q) = &self.qos {
            conf.insert("qos".into(), json!(q));
        }
        if let Some(r) = &self.retain {
            conf.insert("retain".into(), json!(r));
        }
        if let Some(t) = self.ttl {
            conf.insert("ttl".into(), json!(t));
        }
        json!([{ "target": "Mqtt", "configuration": conf }])
    }
}

/// One `key=value` of `--dataset-dest`: a known key, and a number for `ttl`.
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = split(s, "KEY=VALUE")?;
    if !KEYS.contains(&k.as_str()) {
        return Err(format!("unknown key {k:?} (known: {})", KEYS.join(", ")));
    }
    if k == "ttl" && v.parse::<u64>().is_err() {
        return Err(format!("ttl must be a number of seconds, not {v:?}"));
    }
    Ok((k, v))
}

/// One `--event NAME=SSE_TYPE`.
pub fn parse_event(s: &str) -> Result<(String, String), String> {
    split(s, "NAME=SSE_TYPE")
}

/// `a=b` into its two non-empty halves.
fn split(s: &str, shape: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected {shape}, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pairs(args: &[&str]) -> Vec<(String, String)> {
        args.iter().map(|a| parse_pair(a).unwrap()).collect()
    }

    #[test]
    fn every_key_is_read() {
        let d = Dest::from_pairs(&pairs(&[
            "topic=a/b",
            "qos=Qos1",
            "retain=Never",
            "ttl=3600",
        ]));
        let d = d.unwrap();
        assert_eq!(d.topic, "a/b");
        assert_eq!(d.qos.as_deref(), Some("Qos1"));
        assert_eq!(d.retain.as_deref(), Some("Never"));
        assert_eq!(d.ttl, Some(3600));
        let y = d.to_yaml();
        assert_eq!(y[0]["target"], "Mqtt");
        assert_eq!(y[0]["configuration"]["ttl"], 3600);
    }

    #[test]
    fn a_value_may_hold_an_equals_sign() {
        assert_eq!(parse_pair("topic=a=b").unwrap().1, "a=b");
    }

    #[test]
    fn the_qos_name_is_left_for_the_server_to_judge() {
        let d = Dest::from_pairs(&pairs(&["topic=t", "qos=Qos9"])).unwrap();
        assert_eq!(d.qos.as_deref(), Some("Qos9"));
        assert_eq!(d.to_yaml()[0]["configuration"].get("ttl"), None);
    }

    #[test]
    fn typos_are_refused() {
        assert!(parse_pair("topc=t").unwrap_err().contains("unknown key"));
        assert!(parse_pair("ttl=soon").unwrap_err().contains("ttl"));
        assert!(parse_pair("topic").is_err());
        assert!(parse_pair("topic=").is_err());
        assert!(parse_event("=x").is_err());
        assert_eq!(parse_event("hot=overheat").unwrap().1, "overheat");
    }

    #[test]
    fn a_topic_is_required() {
        assert_eq!(
            Dest::from_pairs(&pairs(&["qos=Qos0"])),
            Err(DestError::NoTopic)
        );
    }

    #[test]
    fn the_cli_parses_a_destination_of_several_words() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "ssectl",
            "asset",
            "sse",
            "create",
            "line",
            "--device",
            "d",
            "--endpoint",
            "e",
            "--dataset-dest",
            "topic=t",
            "qos=Qos1",
            "--event",
            "hot=overheat",
        ])
        .unwrap();
        let crate::cli::Cmd::Asset(crate::cli::AssetCmd::Sse(crate::cli::AssetSseCmd::Create(a))) =
            cli.cmd
        else {
            panic!("not asset create");
        };
        assert_eq!(a.dest().unwrap().unwrap().qos.as_deref(), Some("Qos1"));
        assert_eq!(a.events, [("hot".into(), "overheat".into())]);
    }
}
