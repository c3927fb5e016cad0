//! The watching verbs `status` and `streams`: they merge every ingest replica's answer, since
//! each lists only its own streams; a replica that does not answer is reported after the others'.

use serde_json::{Value, json};
use sse_proto::v1::ingest_service_client::IngestServiceClient;
use sse_proto::v1::{
    GetStatusRequest, GetStatusResponse, ListStreamsRequest, OperationStatus, RuntimeHealth,
    StatusError,
};
use sse_runtime::link::Link;
use sse_runtime::peers::Dialer;

use crate::cli::Format;
use crate::clients::{Answers, ask, finish};
use crate::output::{self, Table};

/// Payload bytes of one tailed message asked of the publisher by default; the rest is cut
/// (a terminal line, not a dump: `--max-payload-bytes` asks for more).
pub const TAIL_MAX_PAYLOAD_BYTES: u32 = 4096;

/// `streams`: every replica's streams, one row each.
pub async fn streams(d: &Dialer, addrs: &[String], fmt: Format) -> anyhow::Result<()> {
    let Answers { got, failed } = ask(d, addrs, |link| async move {
        let r = IngestServiceClient::new(link)
            .list_streams(ListStreamsRequest {})
            .await?;
        Ok(r.into_inner())
    })
    .await?;
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for (_, r) in got {
        all.extend(r.streams);
        errors.extend(
            r.resource_errors
                .into_iter()
                .map(|e| (e.resource, e.message)),
        );
    }
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let v: Vec<Value> = all
        .iter()
        .map(|s| {
            json!({
                "key": s.key, "url": s.url, "state": s.state, "connected": s.connected,
                "eventsReceived": s.events_received, "eventsForwarded": s.events_forwarded,
                "eventsAcknowledged": s.events_acknowledged, "lastEventId": s.last_event_id,
                "lastError": s.last_error, "routes": s.routes,
            })
        })
        .collect();
    let rows = all
        .iter()
        .map(|s| {
            vec![
                s.key.clone(),
                s.state.clone(),
                s.events_received.to_string(),
                s.events_forwarded.to_string(),
                s.last_error.clone(),
            ]
        })
        .collect();
    let table = Table {
        headers: vec!["STREAM", "STATE", "RECEIVED", "FORWARDED", "LAST ERROR"],
        rows,
    };
    let done = output::listing(fmt, &Value::Array(v), &table).map(|()| {
        for (res, msg) in errors {
            eprintln!("{res}: {msg}");
        }
    });
    finish(failed, done)
}

/// `status`: devices' and assets' status, merged over the replicas, as YAML or JSON.
pub async fn status(
    d: &Dialer,
    addrs: &[String],
    fmt: Format,
    only: Option<String>,
) -> anyhow::Result<()> {
    let Answers { got, failed } = ask(d, addrs, get_status).await?;
    let mut devices = serde_json::Map::new();
    let mut assets = serde_json::Map::new();
    for (_, r) in got {
        for dev in r.devices.iter().filter(|_| only.is_none()) {
            let eps: serde_json::Map<String, Value> = dev
                .inbound_endpoints
                .iter()
                .map(|e| (e.name.clone(), json!({ "error": error(&e.error), "runtimeHealth": health(&e.runtime_health) })))
                .collect();
            let config = dev
                .config
                .as_ref()
                .map(|c| json!({ "error": error(&c.error) }));
            devices.insert(
                dev.name.clone(),
                json!({ "config": config, "endpoints": eps }),
            );
        }
        for a in r
            .assets
            .iter()
            .filter(|a| only.as_ref().is_none_or(|o| *o == a.name))
        {
            let groups: Vec<Value> = a
                .event_groups
                .iter()
                .map(|g| json!({ "name": g.name, "events": ops(&g.events) }))
                .collect();
            let config = a
                .config
                .as_ref()
                .map(|c| json!({ "error": error(&c.error) }));
            assets.insert(
                a.name.clone(),
                json!({ "config": config, "datasets": ops(&a.datasets), "eventGroups": groups }),
            );
        }
    }
    let done = match &only {
        Some(o) if !assets.contains_key(o) => Err(anyhow::anyhow!("no status for asset {o}")),
        _ => output::document(fmt, &json!({ "devices": devices, "assets": assets })),
    };
    finish(failed, done)
}

/// One replica's `GetStatus` answer (`status`, `device list` and `asset list` merge them).
pub async fn get_status(link: Link) -> Result<GetStatusResponse, tonic::Status> {
    let r = IngestServiceClient::new(link)
        .get_status(GetStatusRequest {})
        .await?;
    Ok(r.into_inner())
}

/// Datasets' or events' status.
fn ops(ops: &[OperationStatus]) -> Vec<Value> {
    ops.iter()
        .map(|o| json!({ "name": o.name, "error": error(&o.error), "runtimeHealth": health(&o.runtime_health) }))
        .collect()
}

/// An error, or null.
fn error(e: &Option<StatusError>) -> Value {
    e.as_ref().map_or(
        Value::Null,
        |e| json!({ "code": e.code, "message": e.message }),
    )
}

/// A runtime health, or null.
fn health(h: &Option<RuntimeHealth>) -> Value {
    h.as_ref().map_or(
        Value::Null,
        |h| json!({ "status": h.status, "reasonCode": h.reason_code, "message": h.message }),
    )
}
