//! The runtime health telemetry the connector sends the ADR base service (reference §2): one
//! `deviceEndpointRuntimeHealthEvent` per device endpoint, and per asset one
//! `datasetRuntimeHealthEvent` and one `eventRuntimeHealthEvent` listing the parts whose health
//! goes now. Each payload is wrapped in its telemetry name, as the DTDL wraps it.

use serde::Serialize;
use sse_contract::topics::adr::telemetry;

use super::RuntimeHealth;

/// One health telemetry message, before it is wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// The health of the device endpoint the topic names.
    Endpoint(RuntimeHealth),
    /// The health of some datasets of `asset`.
    Datasets {
        /// The asset.
        asset: String,
        /// Dataset name and health.
        datasets: Vec<(String, RuntimeHealth)>,
    },
    /// The health of some events of `asset`.
    Events {
        /// The asset.
        asset: String,
        /// Event group, event name and health.
        events: Vec<(String, String, RuntimeHealth)>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointHealth<'a> {
    runtime_health: &'a RuntimeHealth,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DatasetHealth<'a> {
    dataset_name: &'a str,
    runtime_health: &'a RuntimeHealth,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventHealth<'a> {
    event_group_name: &'a str,
    event_name: &'a str,
    runtime_health: &'a RuntimeHealth,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AssetHealth<'a, T> {
    asset_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    datasets: Option<Vec<T>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<T>>,
}

impl HealthEvent {
    /// The telemetry name (last topic level and the payload's key).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Endpoint(_) => telemetry::DEVICE_ENDPOINT_HEALTH,
            Self::Datasets { .. } => telemetry::DATASET_HEALTH,
            Self::Events { .. } => telemetry::EVENT_HEALTH,
        }
    }

    /// The payload: `{"<name>": {...}}`.
    pub fn payload(&self) -> Result<Vec<u8>, serde_json::Error> {
        let name = self.name();
        match self {
            Self::Endpoint(h) => super::wire::wrap(name, &EndpointHealth { runtime_health: h }),
            Self::Datasets { asset, datasets } => {
                let parts = (datasets.iter())
                    .map(|(d, h)| DatasetHealth {
                        dataset_name: d,
                        runtime_health: h,
                    })
                    .collect();
                let body = AssetHealth {
                    asset_name: asset,
                    datasets: Some(parts),
                    events: None,
                };
                super::wire::wrap(name, &body)
            }
            Self::Events { asset, events } => {
                let parts = (events.iter())
                    .map(|(g, e, h)| EventHealth {
                        event_group_name: g,
                        event_name: e,
                        runtime_health: h,
                    })
                    .collect();
                let body = AssetHealth {
                    asset_name: asset,
                    datasets: None,
                    events: Some(parts),
                };
                super::wire::wrap(name, &body)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::adr::HealthStatus;
    use serde_json::json;

    fn health() -> RuntimeHealth {
        RuntimeHealth {
            version: 3,
            status: HealthStatus::Unavailable,
            last_update_time: "2026-01-01T00:00:00.000Z".into(),
            message: Some("connection refused".into()),
            reason_code: Some("Disconnected".into()),
        }
    }

    fn json(e: &HealthEvent) -> serde_json::Value {
        serde_json::from_slice(&e.payload().unwrap()).unwrap()
    }

    #[test]
    fn payloads_follow_the_thing_model() {
        let rh = json!({"version": 3, "status": "Unavailable",
            "lastUpdateTime": "2026-01-01T00:00:00.000Z",
            "message": "connection refused", "reasonCode": "Disconnected"});
        assert_eq!(
            json(&HealthEvent::Endpoint(health())),
            json!({"deviceEndpointRuntimeHealthEvent": {"runtimeHealth": rh}})
        );
        let d = HealthEvent::Datasets {
            asset: "a".into(),
            datasets: vec![("t".into(), health())],
        };
        assert_eq!(
            json(&d),
            json!({"datasetRuntimeHealthEvent": {"assetName": "a",
                "datasets": [{"datasetName": "t", "runtimeHealth": rh}]}})
        );
        let e = HealthEvent::Events {
            asset: "a".into(),
            events: vec![("g".into(), "e".into(), health())],
        };
        assert_eq!(
            json(&e),
            json!({"eventRuntimeHealthEvent": {"assetName": "a",
                "events": [{"eventGroupName": "g", "eventName": "e", "runtimeHealth": rh}]}})
        );
    }
}
