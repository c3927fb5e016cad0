//! The watching verbs: `status` and `streams` merge every ingest replica's answer (each lists
//! only its own streams), `tail` prints the publisher's messages until Ctrl-C.

use futures::StreamExt as _;
use serde_json::{Value, json};
use sse_proto::v1::ingest_service_client::IngestServiceClient;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use sse_proto::v1::{
    GetStatusRequest, ListStreamsRequest, OperationStatus, RuntimeHealth, StatusError, TailRequest,
    tail_response,
};
use sse_runtime::peers::Dialer;

use crate::cli::{Format, TailArgs};
use crate::clients::{links, refused};
use crate::output::{self, Table};

/// Payload bytes of one tailed message asked of the publisher by default; the rest is cut
/// (a terminal line, not a dump: `--max-payload-bytes` asks for more).
pub const TAIL_MAX_PAYLOAD_BYTES: u32 = 4096;

/// `streams`: every replica's streams, one row each.
pub async fn streams(d: &Dialer, addrs: &[String], fmt: Format) -> anyhow::Result<()> {
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for (addr, link) in links(d, addrs).await? {
        let r = IngestServiceClient::new(link)
            .list_streams(ListStreamsRequest {})
            .await
            .map_err(|s| refused(&addr, s))?
            .into_inner();
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
    output::listing(fmt, &Value::Array(v), &table)?;
    for (res, msg) in errors {
        eprintln!("{res}: {msg}");
    }
    Ok(())
}

/// `status`: devices' and assets' status, merged over the replicas, as YAML or JSON.
pub async fn status(
    d: &Dialer,
    addrs: &[String],
    fmt: Format,
    only: Option<String>,
) -> anyhow::Result<()> {
    let mut devices = serde_json::Map::new();
    let mut assets = serde_json::Map::new();
    for (addr, link) in links(d, addrs).await? {
        let r = IngestServiceClient::new(link)
            .get_status(GetStatusRequest {})
            .await
            .map_err(|s| refused(&addr, s))?
            .into_inner();
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
    if let Some(o) = &only {
        anyhow::ensure!(assets.contains_key(o), "no status for asset {o}");
    }
    output::document(fmt, &json!({ "devices": devices, "assets": assets }))
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

/// `tail`: one line per published message, and a line when a publisher dropped some for this
/// reader, until Ctrl-C or every publisher ends its stream. Each publisher pod tails only what
/// it publishes, so every address is tailed and the lines are merged as they come.
pub async fn tail(d: &Dialer, addrs: &[String], t: TailArgs) -> anyhow::Result<()> {
    let req = TailRequest {
        device: t.device.unwrap_or_default(),
        asset: t.asset.unwrap_or_default(),
        topic: t.topic.unwrap_or_default(),
        max_payload_bytes: t.max_payload_bytes,
    };
    let mut tails = Vec::new();
    for (addr, link) in links(d, addrs).await? {
        let stream = PublisherServiceClient::new(link)
            .tail(req.clone())
            .await
            .map_err(|s| refused(&addr, s))?
            .into_inner();
        tails.push(stream.map(move |m| (addr.clone(), m)).boxed());
    }
    let mut stream = futures::stream::select_all(tails);
    loop {
        let item = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            m = stream.next() => m,
        };
        let Some((addr, item)) = item else {
            return Ok(());
        };
        let item = item.map_err(|s| refused(&addr, s))?;
        match item.item {
            Some(tail_response::Item::Message(m)) => {
                let cut = if m.truncated {
                    format!(" (cut, {} bytes)", m.payload_bytes)
                } else {
                    String::new()
                };
                let payload = String::from_utf8_lossy(&m.payload);
                output::say(format_args!("{} {payload}{cut}\n", m.topic))?;
            }
            Some(tail_response::Item::Dropped(x)) => {
                output::say(format_args!(
                    "-- {} messages dropped (this reader was too slow)\n",
                    x.count
                ))?;
            }
            None => {}
        }
    }
}
