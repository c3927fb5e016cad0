//! Per-stream counters and state, and the resource errors, for `ListStreams` and the logs.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::resources::ResourceError;
use crate::routing::StreamPlan;

/// State of one SSE stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStatus {
    /// Stream key.
    pub key: String,
    /// URL read.
    pub url: String,
    /// Whether the HTTP response is open and being read.
    pub connected: bool,
    /// Events dispatched by the SSE parser.
    pub received: u64,
    /// Routed events handed to the schema service.
    pub forwarded: u64,
    /// Event-group non-matches (one per group per SSE event of a type no event of it takes).
    pub unmatched: u64,
    /// Routed events acknowledged as delivered.
    pub acknowledged: u64,
    /// Routed events whose acknowledgement reported a permanent failure.
    pub failed: u64,
    /// The stream's last event ID.
    pub last_event_id: String,
    /// Last problem, empty when none.
    pub last_error: String,
    /// Connection attempts.
    pub connects: u64,
    /// Subjects fed by the stream.
    pub routes: Vec<String>,
}

/// Shared status of every stream, updated by the readers and the forwarder.
#[derive(Debug, Default)]
pub struct Status {
    streams: Mutex<BTreeMap<String, StreamStatus>>,
    resource_errors: Vec<ResourceError>,
}

impl Status {
    /// Status for the planned streams (all idle) and the resources that cannot be served.
    pub fn new(plans: &[StreamPlan], resource_errors: Vec<ResourceError>) -> Self {
        let streams = plans
            .iter()
            .map(|p| {
                (
                    p.key.clone(),
                    StreamStatus {
                        key: p.key.clone(),
                        url: p.url.to_string(),
                        routes: p.subjects(),
                        ..Default::default()
                    },
                )
            })
            .collect();
        Self {
            streams: Mutex::new(streams),
            resource_errors,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, StreamStatus>> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f` to the status of stream `key` (unknown keys are ignored).
    pub fn update(&self, key: &str, f: impl FnOnce(&mut StreamStatus)) {
        if let Some(s) = self.lock().get_mut(key) {
            f(s);
        }
    }

    /// One stream's status.
    pub fn get(&self, key: &str) -> Option<StreamStatus> {
        self.lock().get(key).cloned()
    }

    /// Every stream, sorted by key.
    pub fn streams(&self) -> Vec<StreamStatus> {
        self.lock().values().cloned().collect()
    }

    /// Resources that cannot be served.
    pub fn resource_errors(&self) -> &[ResourceError] {
        &self.resource_errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::load_texts;
    use crate::routing::plan;

    #[test]
    fn streams_sorted_by_key_with_routes_and_updates() {
        let r = load_texts([(
            "r.yaml",
            r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: { name: d }
spec: { endpoints: { inbound: { e: { endpointType: Microsoft.SSE, address: "http://h/x" } } } }
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: { name: a }
spec:
  deviceRef: { deviceName: d, endpointName: e }
  defaultDatasetsDestinations: [ { target: Mqtt, configuration: { topic: t } } ]
  datasets: [ { name: z, dataSource: /z }, { name: b, dataSource: /b } ]
"#,
        )]);
        let err = ResourceError {
            resource: "Asset/x".into(),
            file: "f".into(),
            message: "m".into(),
        };
        let s = Status::new(&plan(&r), vec![err.clone()]);
        s.update("d/e|http://h/x/z", |st| {
            st.received += 2;
            st.connected = true;
        });
        s.update("nope", |st| st.received += 1);
        let all = s.streams();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].key, "d/e|http://h/x/b");
        assert_eq!(all[0].routes, ["a/b"]);
        assert_eq!(all[1].url, "http://h/x/z");
        assert_eq!(all[1].received, 2);
        assert!(all[1].connected);
        assert_eq!(s.resource_errors(), [err]);
    }
}
