//! An asset's `defaultDatasetsConfiguration` / `defaultEventsConfiguration`: the JSON string
//! fields Azure Device Registry has for per-asset defaults. This connector reads one key there,
//! `deadLetter` (the shape of the endpoint's, [`super::options::dead_letter`]); other keys are
//! another connector's and are ignored. The JSON Schema is
//! `docs/schemas/asset-configuration.schema.json`.

use serde_json::Value;

use super::model::MqttDestination;
use super::options::{self, Path};

/// Longest configuration string accepted, in bytes (the endpoint's limit).
pub const MAX_ASSET_OPTIONS_BYTES: usize = options::MAX_OPTIONS_BYTES;

/// The asset's own dead-letter destinations (each falls back to the device's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetDeadLetters {
    /// `defaultDatasetsConfiguration.deadLetter`: for the asset's datasets.
    pub datasets: Option<MqttDestination>,
    /// `defaultEventsConfiguration.deadLetter`: for the asset's events.
    pub events: Option<MqttDestination>,
}

/// Parses both configuration fields of an asset; errors name the field and key, never a value.
pub fn parse(
    datasets: Option<&serde_yaml_ng::Value>,
    events: Option<&serde_yaml_ng::Value>,
) -> Result<AssetDeadLetters, String> {
    Ok(AssetDeadLetters {
        datasets: dead_letter(datasets, "defaultDatasetsConfiguration")?,
        events: dead_letter(events, "defaultEventsConfiguration")?,
    })
}

/// The `deadLetter` of one configuration field named `field`, if any.
fn dead_letter(
    config: Option<&serde_yaml_ng::Value>,
    field: &str,
) -> Result<Option<MqttDestination>, String> {
    let Some(root) = to_json(config, field)? else {
        return Ok(None);
    };
    let at = Path::named(field);
    let obj = root
        .as_object()
        .ok_or_else(|| at.error("must be a JSON object"))?;
    match obj.get("deadLetter").filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => options::dead_letter(v, &at.key("deadLetter")).map(Some),
    }
}

/// The field as JSON: ADR's JSON string, or a YAML mapping; `None` when absent or empty.
fn to_json(config: Option<&serde_yaml_ng::Value>, field: &str) -> Result<Option<Value>, String> {
    use serde_yaml_ng::Value as Y;
    match config {
        None | Some(Y::Null) => Ok(None),
        Some(Y::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Y::String(text)) => {
            if text.len() > MAX_ASSET_OPTIONS_BYTES {
                return Err(format!(
                    "{field} is larger than {MAX_ASSET_OPTIONS_BYTES} bytes"
                ));
            }
            serde_json::from_str(text)
                .map(Some)
                .map_err(|e| format!("{field} is not valid JSON: {e}"))
        }
        Some(other) => serde_json::to_value(other)
            .map(Some)
            .map_err(|_| format!("{field} is not a JSON object")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sse_contract::route::Qos;

    fn text(s: &str) -> serde_yaml_ng::Value {
        serde_yaml_ng::Value::String(s.to_owned())
    }

    #[test]
    fn reads_dead_letters_and_ignores_other_keys() {
        let ds = text(
            r#"{"samplingInterval": 500, "deadLetter": {"topic": "sse-connector/dead-letter/line-1", "qos": "Qos0", "retain": "Keep", "ttl": 30}}"#,
        );
        let got = parse(Some(&ds), None).unwrap();
        let d = got.datasets.unwrap();
        assert_eq!(d.topic, "sse-connector/dead-letter/line-1");
        assert_eq!(
            (d.qos, d.retain, d.ttl_seconds),
            (Qos::AtMostOnce, true, Some(30))
        );
        assert_eq!(got.events, None);
        // A YAML mapping is taken too; empty and absent are no configuration.
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("deadLetter: { topic: sse-connector/dead-letter/ev }").unwrap();
        let got = parse(Some(&text("  ")), Some(&yaml)).unwrap();
        assert_eq!(
            (got.datasets, got.events.unwrap().qos),
            (None, Qos::AtLeastOnce)
        );
        assert_eq!(parse(None, None).unwrap(), AssetDeadLetters::default());
    }

    /// The documented JSON Schema's examples are accepted by this parser, for both fields
    /// (scripts/schema_check.py checks they validate against the schema).
    #[test]
    fn the_documented_examples_parse() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/schemas/asset-configuration.schema.json"
        );
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let examples = schema["examples"].as_array().unwrap();
        assert!(examples.len() >= 3);
        for example in examples {
            let t = text(&example.to_string());
            let got = parse(Some(&t), Some(&t)).unwrap_or_else(|e| panic!("{example}: {e}"));
            assert!(got.datasets.is_some() && got.events.is_some(), "{example}");
        }
        let names: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["deadLetter"]);
    }

    #[test]
    fn errors_name_the_field_and_key() {
        for (ds, want) in [
            (
                "{not json",
                "defaultDatasetsConfiguration is not valid JSON",
            ),
            ("[1]", "defaultDatasetsConfiguration: must be a JSON object"),
            (
                r#"{"deadLetter": {"topic": "plant/dead"}}"#,
                "defaultDatasetsConfiguration.deadLetter.topic: a dead-letter topic must be under sse-connector/dead-letter/",
            ),
            (
                r#"{"deadLetter": {"topic": "sse-connector/dead-letter/x", "qos": "Qos2"}}"#,
                "defaultDatasetsConfiguration.deadLetter.qos",
            ),
            (
                r#"{"deadLetter": {"topic": "sse-connector/dead-letter/x", "extra": 1}}"#,
                "defaultDatasetsConfiguration.deadLetter: unknown key \"extra\"",
            ),
        ] {
            let e = parse(Some(&text(ds)), None).unwrap_err();
            assert!(e.contains(want), "{ds}: {e}");
        }
        let e = parse(None, Some(&text(r#"{"deadLetter": 5}"#))).unwrap_err();
        assert!(
            e.starts_with("defaultEventsConfiguration.deadLetter"),
            "{e}"
        );
    }
}
