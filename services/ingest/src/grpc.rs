//! The gRPC edge: `IngestService` (`ListStreams`) and the conversions between domain types and
//! the `sseconnector.v1` proto messages.

use std::sync::Arc;

use sse_proto::v1 as pb;
use sse_proto::v1::ingest_service_server::IngestService;

use crate::discovery::listing;
use crate::event::RoutedEvent;
use crate::resource_write::grpc::Writes;
use crate::resources::{Destination, ResourceError};
use crate::routing::Route;
use crate::status::{self, Status, StreamStatus};

/// `IngestService` over the shared stream status.
#[derive(Debug, Clone)]
pub struct IngestApi {
    status: Arc<Status>,
    writes: Option<Arc<Writes>>,
}

impl IngestApi {
    /// The API answering from `status`.
    pub fn new(status: Arc<Status>) -> Self {
        Self {
            status,
            writes: None,
        }
    }

    /// Also serves the resource write calls, from `writes`.
    pub fn with_writes(mut self, writes: Arc<Writes>) -> Self {
        self.writes = Some(writes);
        self
    }

    /// The write API, or why there is none.
    fn writes(&self) -> Result<&Writes, tonic::Status> {
        self.writes.as_deref().ok_or_else(|| {
            tonic::Status::failed_precondition("resource writes are not served here")
        })
    }
}

#[tonic::async_trait]
impl IngestService for IngestApi {
    async fn list_streams(
        &self,
        _request: tonic::Request<pb::ListStreamsRequest>,
    ) -> Result<tonic::Response<pb::ListStreamsResponse>, tonic::Status> {
        // Each stream shows its endpoint's count now, not as of its own latest new type.
        let discovered = self.status.discovery().counts();
        Ok(tonic::Response::new(pb::ListStreamsResponse {
            streams: self
                .status
                .streams()
                .into_iter()
                .map(|mut s| {
                    let endpoint = (s.device.clone(), s.endpoint.clone());
                    s.discovered_types = discovered.get(&endpoint).copied().unwrap_or(0);
                    stream_status(s)
                })
                .collect(),
            resource_errors: self
                .status
                .resource_errors()
                .iter()
                .map(resource_error)
                .collect(),
        }))
    }

    async fn get_status(
        &self,
        _request: tonic::Request<pb::GetStatusRequest>,
    ) -> Result<tonic::Response<pb::GetStatusResponse>, tonic::Status> {
        let mut r = report(self.status.report());
        r.resources_read_only_reason = match &self.writes {
            Some(w) => w.read_only_reason().await.unwrap_or_default(),
            None => "resource writes are not served here".to_owned(),
        };
        Ok(tonic::Response::new(r))
    }

    async fn list_discovered(
        &self,
        request: tonic::Request<pb::ListDiscoveredRequest>,
    ) -> Result<tonic::Response<pb::ListDiscoveredResponse>, tonic::Status> {
        let device = request.into_inner().device;
        let discovery = self.status.discovery().clone();
        // Schemas still missing are inferred here: on the blocking pool, off the runtime threads.
        let listings = tokio::task::spawn_blocking(move || {
            let device = (!device.is_empty()).then_some(device.as_str());
            listing::list(&discovery, device)
        })
        .await
        .map_err(|_| tonic::Status::internal("listing the discovered types failed"))?;
        Ok(tonic::Response::new(pb::ListDiscoveredResponse {
            endpoints: listings.into_iter().map(discovered_endpoint).collect(),
        }))
    }

    async fn put_resource(
        &self,
        request: tonic::Request<pb::PutResourceRequest>,
    ) -> Result<tonic::Response<pb::PutResourceResponse>, tonic::Status> {
        let r = self.writes()?.put(request.into_inner()).await?;
        Ok(tonic::Response::new(r))
    }

    async fn delete_resource(
        &self,
        request: tonic::Request<pb::DeleteResourceRequest>,
    ) -> Result<tonic::Response<pb::DeleteResourceResponse>, tonic::Status> {
        let r = self.writes()?.delete(request.into_inner()).await?;
        Ok(tonic::Response::new(r))
    }

    async fn get_resource(
        &self,
        request: tonic::Request<pb::GetResourceRequest>,
    ) -> Result<tonic::Response<pb::GetResourceResponse>, tonic::Status> {
        let r = self.writes()?.get(request.into_inner()).await?;
        Ok(tonic::Response::new(r))
    }
}

/// An endpoint's discovered types as the proto message.
pub fn discovered_endpoint(l: listing::Listing) -> pb::DiscoveredEndpoint {
    pb::DiscoveredEndpoint {
        device: l.device,
        endpoint: l.endpoint,
        types: l
            .types
            .into_iter()
            .map(|t| pb::DiscoveredType {
                sse_type: t.sse_type,
                count: t.seen.count,
                first_seen: status::rfc3339(t.seen.first),
                last_seen: status::rfc3339(t.seen.last),
                schema: t.schema,
                sample_truncated: t.truncated,
                stream_data_source: t.stream_source,
            })
            .collect(),
        other: l.other.map(|o| pb::DiscoveredType {
            sse_type: crate::discovery::OTHER.to_string(),
            count: o.count,
            first_seen: status::rfc3339(o.first),
            last_seen: status::rfc3339(o.last),
            ..Default::default()
        }),
        asset_yaml: l.asset_yaml,
    }
}

/// The ADR shaped status report as the proto message.
pub fn report(r: status::Report) -> pb::GetStatusResponse {
    pb::GetStatusResponse {
        devices: r
            .devices
            .into_iter()
            .map(|(name, d)| pb::DeviceStatus {
                name,
                config: Some(config_status(d.config)),
                inbound_endpoints: d
                    .endpoints
                    .inbound
                    .into_iter()
                    .map(|(name, e)| pb::EndpointStatus {
                        name,
                        error: e.error.map(status_error),
                        runtime_health: e.runtime_health.map(health),
                        events_dropped: e.events_dropped.into_iter().collect(),
                        event_notices: e.event_notices.into_iter().collect(),
                        discovered_types: e.discovered_types,
                    })
                    .collect(),
            })
            .collect(),
        assets: r
            .assets
            .into_iter()
            .map(|(name, a)| pb::AssetStatus {
                name,
                config: Some(config_status(a.config)),
                datasets: a.datasets.into_iter().map(operation).collect(),
                event_groups: a
                    .event_groups
                    .into_iter()
                    .map(|g| pb::EventGroupStatus {
                        name: g.name,
                        events: g.events.into_iter().map(operation).collect(),
                    })
                    .collect(),
            })
            .collect(),
        // Filled by the API, which knows the write store.
        resources_read_only_reason: String::new(),
    }
}

fn status_error(e: status::StatusError) -> pb::StatusError {
    pb::StatusError {
        code: e.code,
        message: e.message,
    }
}

fn config_status(c: status::ConfigStatus) -> pb::ConfigStatus {
    pb::ConfigStatus {
        last_transition_time: c.last_transition_time,
        error: c.error.map(status_error),
    }
}

fn health(h: status::RuntimeHealth) -> pb::RuntimeHealth {
    pb::RuntimeHealth {
        status: h.status,
        last_update_time: h.last_update_time,
        message: h.message,
        reason_code: h.reason_code,
    }
}

fn operation(o: status::OperationStatus) -> pb::OperationStatus {
    pb::OperationStatus {
        name: o.name,
        error: o.error.map(status_error),
        message_schema_reference: o
            .message_schema_reference
            .map(|r| pb::MessageSchemaReference {
                schema_name: r.schema_name,
                schema_registry_namespace: r.schema_registry_namespace,
                schema_version: r.schema_version,
            }),
        runtime_health: Some(health(o.runtime_health)),
    }
}

/// A stream's status as the proto message.
pub fn stream_status(s: StreamStatus) -> pb::StreamStatus {
    pb::StreamStatus {
        connected: s.connected(),
        key: s.key,
        url: s.url,
        events_received: s.received,
        events_forwarded: s.forwarded,
        events_unmatched: s.unmatched,
        events_acknowledged: s.acknowledged,
        last_event_id: s.last_event_id,
        last_error: s.last_error,
        connects: s.connects,
        state: s.state.as_str().to_string(),
        routes: s.routes,
        events_dropped: counters(&s.dropped),
        event_notices: counters(&s.notices),
        discovered_types: s.discovered_types,
    }
}

/// Per-reason counters as a proto map.
fn counters(
    c: &std::collections::BTreeMap<&'static str, u64>,
) -> std::collections::HashMap<String, u64> {
    c.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
}

/// A resource error as the proto message.
pub fn resource_error(e: &ResourceError) -> pb::ResourceError {
    pb::ResourceError {
        resource: e.resource.clone(),
        file: e.file.clone(),
        message: e.message.clone(),
    }
}

/// A destination as the proto message.
pub fn destination(d: &Destination) -> pb::Destination {
    use pb::destination::Target;
    let target = match d {
        Destination::Mqtt(m) => Target::Mqtt(mqtt_destination(m)),
        Destination::StateStore { key } => {
            Target::StateStore(pb::StateStoreDestination { key: key.clone() })
        }
    };
    pb::Destination {
        target: Some(target),
    }
}

/// A route as the proto message.
pub fn route(r: &Route) -> pb::Route {
    pb::Route {
        device: r.device.clone(),
        endpoint: r.endpoint.clone(),
        asset: r.asset.clone(),
        kind: r.kind.to_wire(),
        group: r.group.clone(),
        event: r.event.clone(),
        data_source: r.data_source.clone(),
        type_ref: r.type_ref.clone(),
        destination: Some(destination(&r.destination)),
        device_uuid: r.ids.device_uuid.clone(),
        external_device_id: r.ids.external_device_id.clone(),
        asset_uuid: r.ids.asset_uuid.clone(),
        external_asset_id: r.ids.external_asset_id.clone(),
        dead_letter: r.dead_letter.as_ref().map(mqtt_destination),
    }
}

/// An MQTT destination as the proto message.
fn mqtt_destination(m: &crate::resources::MqttDestination) -> pb::MqttDestination {
    pb::MqttDestination {
        topic: m.topic.clone(),
        qos: m.qos.to_wire(),
        retain: m.retain,
        ttl_seconds: m.ttl_seconds,
    }
}

/// A dead-letter mark as the proto message.
fn dead_letter(m: &sse_contract::dead_letter::Mark) -> pb::DeadLetter {
    pb::DeadLetter {
        reason: m.reason.to_wire(),
        detail: m.detail.clone(),
        truncated: m.truncated_from.is_some(),
        original_bytes: m.truncated_from.unwrap_or(0),
    }
}

/// A routed event as the proto message sent to the schema service.
pub fn event(e: &RoutedEvent) -> pb::Event {
    pb::Event {
        id: e.id.clone(),
        seq: e.seq,
        stream_key: e.stream_key.to_string(),
        data: e.data.clone(),
        sse_event: e.sse_event.clone(),
        sse_id: e.sse_id.clone(),
        received_unix_nanos: e.received_unix_nanos,
        route: Some(route(&e.route)),
        traceparent: e.traceparent.clone(),
        tracestate: e.tracestate.clone(),
        dataschema: String::new(),
        subject: e.route.subject(),
        dead_letter: e.dead_letter.as_ref().map(dead_letter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{MqttDestination, Qos};
    use crate::routing::RouteKind;
    use sse_contract::route::ResourceIds;

    #[test]
    fn event_conversion_keeps_every_field() {
        let r = Arc::new(Route {
            device: "d".into(),
            endpoint: "e".into(),
            asset: "a".into(),
            kind: RouteKind::Event,
            group: "g".into(),
            event: "ev".into(),
            data_source: "t".into(),
            type_ref: "tr".into(),
            destination: Destination::Mqtt(MqttDestination {
                topic: "x/y".into(),
                qos: Qos::AtMostOnce,
                retain: true,
                ttl_seconds: Some(5),
            }),
            ids: ResourceIds {
                device_uuid: "du".into(),
                external_device_id: "dx".into(),
                asset_uuid: "au".into(),
                external_asset_id: "ax".into(),
            },
            dead_letter: None,
        });
        let p = event(&RoutedEvent {
            id: "id".into(),
            seq: 7,
            stream_key: "k".into(),
            data: "{}".into(),
            sse_event: "t".into(),
            sse_id: "3".into(),
            received_unix_nanos: 42,
            route: r,
            traceparent: "tp".into(),
            tracestate: "ts".into(),
            held: crate::budget::Held::none(),
            dead_letter: None,
        });
        assert_eq!(
            (p.id.as_str(), p.seq, p.stream_key.as_str()),
            ("id", 7, "k")
        );
        assert_eq!(&p.data[..], b"{}");
        assert_eq!((p.sse_event.as_str(), p.sse_id.as_str()), ("t", "3"));
        assert_eq!(p.received_unix_nanos, 42);
        // Computed once here, it travels to schema and the publisher.
        assert_eq!(p.subject, "a/g/ev");
        assert_eq!(
            (p.traceparent.as_str(), p.tracestate.as_str()),
            ("tp", "ts")
        );
        let route = p.route.unwrap();
        assert_eq!(route.kind, pb::RouteKind::Event as i32);
        assert_eq!((route.group.as_str(), route.event.as_str()), ("g", "ev"));
        assert_eq!(route.type_ref, "tr");
        assert_eq!(
            [
                route.device_uuid.as_str(),
                &route.external_device_id,
                &route.asset_uuid,
                &route.external_asset_id
            ],
            ["du", "dx", "au", "ax"]
        );
        match route.destination.unwrap().target.unwrap() {
            pb::destination::Target::Mqtt(m) => {
                assert_eq!(m.topic, "x/y");
                assert_eq!(m.qos, pb::Qos::AtMostOnce as i32);
                assert!(m.retain);
                assert_eq!(m.ttl_seconds, Some(5));
            }
            other => panic!("{other:?}"),
        }
        let ss = destination(&Destination::StateStore { key: "k".into() });
        assert!(matches!(ss.target, Some(pb::destination::Target::StateStore(s)) if s.key == "k"));
    }
}
