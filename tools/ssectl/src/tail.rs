//! `ssectl tail`: the publishers' messages as they are published, until Ctrl-C. Each publisher
//! pod tails only what it publishes, so every address is tailed and the lines are merged as
//! they come: a line per message for people, a JSON (or YAML) document per message for scripts.

use base64::Engine as _;
use futures::StreamExt as _;
use serde_json::{Value, json};
use sse_proto::v1::ingest_service_client::IngestServiceClient;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use sse_proto::v1::{GetResourceRequest, Qos, TailMessage, TailRequest, tail_response};
use sse_runtime::peers::Dialer;

use crate::cli::{Format, TailArgs};
use crate::clients::{links, refused};
use crate::output;

/// Tails every publisher address with `t`'s filters and prints each item in `fmt`, until
/// Ctrl-C or every publisher ends its stream. A device or asset filter that names nothing ingest
/// (the first of `ingest`) knows gets a note on stderr, so a typo does not look like silence.
pub async fn run(
    d: &Dialer,
    addrs: &[String],
    ingest: &[String],
    fmt: Format,
    t: TailArgs,
) -> anyhow::Result<()> {
    let named = [("Device", &t.device), ("Asset", &t.asset)]
        .into_iter()
        .filter_map(|(kind, name)| Some((kind, name.clone()?)));
    for (kind, name) in named {
        // Beside the tail, not before it: an ingest that is slow or away delays nothing.
        tokio::spawn(note_if_unknown(
            d.clone(),
            ingest.first().cloned(),
            kind,
            name,
        ));
    }
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
        if let Some(text) = item.item.map(|i| render(fmt, i)).transpose()? {
            output::say(format_args!("{text}"))?;
        }
    }
}

/// Prints a note when ingest at `addr` answers that `kind`/`name` does not exist. Any other
/// outcome (ingest unreachable, slow, not allowed to read resources) says nothing: the filter
/// may be right, and the tail goes on either way.
async fn note_if_unknown(d: Dialer, addr: Option<String>, kind: &'static str, name: String) {
    let Some(addr) = addr else { return };
    let ask = async {
        let (shown, link) = links(&d, std::slice::from_ref(&addr)).await.ok()?.pop()?;
        let req = GetResourceRequest {
            kind: kind.into(),
            name: name.clone(),
        };
        let r = IngestServiceClient::new(link).get_resource(req).await;
        Some((shown, r))
    };
    if let Ok(Some((shown, Err(s)))) = tokio::time::timeout(NOTE_WAIT, ask).await
        && s.code() == tonic::Code::NotFound
    {
        eprintln!(
            "note: {shown}: no {kind} named {name:?}; tailing anyway (its messages appear if it is created)"
        );
    }
}

/// How long the existence check of a tail filter may take before it gives up silently.
const NOTE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// One item as printed: `TOPIC PAYLOAD` (or the drop notice) for people; a one-line JSON object
/// (JSON Lines) or a YAML document for scripts.
fn render(fmt: Format, item: tail_response::Item) -> anyhow::Result<String> {
    let doc = match (&item, fmt) {
        (tail_response::Item::Message(m), Format::Text) => {
            let cut = if m.truncated {
                format!(" (cut, {} bytes)", m.payload_bytes)
            } else {
                String::new()
            };
            let payload = String::from_utf8_lossy(&m.payload);
            return Ok(format!("{} {payload}{cut}\n", m.topic));
        }
        (tail_response::Item::Dropped(x), Format::Text) => {
            return Ok(format!(
                "-- {} messages dropped (this reader was too slow)\n",
                x.count
            ));
        }
        (tail_response::Item::Message(m), _) => message(m),
        (tail_response::Item::Dropped(x), _) => json!({ "dropped": x.count }),
    };
    Ok(match fmt {
        Format::Yaml => format!("---\n{}", serde_yaml_ng::to_string(&doc)?),
        _ => format!("{}\n", serde_json::to_string(&doc)?),
    })
}

/// A message for scripts: the proto's fields in its JSON names, the payload as text when it is
/// UTF-8 (`payload`) and as base64 otherwise (`payloadBase64`), and the user properties in
/// order as name/value pairs (MQTT allows a name twice).
fn message(m: &TailMessage) -> Value {
    let qos = match Qos::try_from(m.qos) {
        Ok(Qos::AtMostOnce) => json!(0),
        Ok(Qos::AtLeastOnce) => json!(1),
        _ => Value::Null,
    };
    let mut doc = json!({
        "topic": m.topic,
        "qos": qos,
        "retain": m.retain,
        "contentType": m.content_type,
        "userProperties": m
            .user_properties
            .iter()
            .map(|p| json!({ "name": p.name, "value": p.value }))
            .collect::<Vec<_>>(),
        "payloadBytes": m.payload_bytes,
        "truncated": m.truncated,
        "device": m.device,
        "asset": m.asset,
        "ttlSeconds": m.ttl_seconds,
    });
    match std::str::from_utf8(&m.payload) {
        Ok(text) => doc["payload"] = json!(text),
        Err(_) => {
            doc["payloadBase64"] =
                json!(base64::engine::general_purpose::STANDARD.encode(&m.payload))
        }
    }
    doc
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sse_proto::v1::{TailDropped, UserProperty};

    fn sample(payload: &[u8]) -> TailMessage {
        TailMessage {
            topic: "plant/line".into(),
            qos: Qos::AtLeastOnce as i32,
            user_properties: vec![
                UserProperty {
                    name: "type".into(),
                    value: "DataSet".into(),
                },
                UserProperty {
                    name: "type".into(),
                    value: "again".into(),
                },
            ],
            content_type: "application/json".into(),
            payload: payload.to_vec().into(),
            payload_bytes: 9,
            truncated: true,
            asset: "line".into(),
            ..Default::default()
        }
    }

    #[test]
    fn text_is_a_line_per_message_as_before() {
        let m = tail_response::Item::Message(sample(b"{\"t\":1}"));
        assert_eq!(
            render(Format::Text, m).unwrap(),
            "plant/line {\"t\":1} (cut, 9 bytes)\n"
        );
        let d = tail_response::Item::Dropped(TailDropped { count: 3 });
        assert_eq!(
            render(Format::Text, d).unwrap(),
            "-- 3 messages dropped (this reader was too slow)\n"
        );
    }

    #[test]
    fn json_is_one_object_per_line_with_every_field() {
        let line = render(
            Format::Json,
            tail_response::Item::Message(sample(b"{\"t\":1}")),
        )
        .unwrap();
        assert!(
            line.ends_with('\n') && !line.trim_end().contains('\n'),
            "{line}"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["topic"], "plant/line");
        assert_eq!(v["qos"], 1);
        assert_eq!(v["payload"], "{\"t\":1}");
        assert_eq!(v["truncated"], true);
        assert_eq!(v["payloadBytes"], 9);
        assert_eq!(v["asset"], "line");
        assert_eq!(v["userProperties"][1]["value"], "again", "both, in order");
        let d = render(
            Format::Json,
            tail_response::Item::Dropped(TailDropped { count: 3 }),
        )
        .unwrap();
        assert_eq!(d, "{\"dropped\":3}\n");
    }

    #[test]
    fn a_binary_payload_is_base64_and_yaml_is_a_document_per_message() {
        let v = message(&sample(&[0xff, 0x00]));
        assert_eq!(v["payload"], Value::Null);
        assert_eq!(v["payloadBase64"], "/wA=");
        let y = render(Format::Yaml, tail_response::Item::Message(sample(b"x"))).unwrap();
        assert!(y.starts_with("---\n"), "{y}");
        let back: Value = serde_yaml_ng::from_str(y.trim_start_matches("---\n")).unwrap();
        assert_eq!(back["payload"], "x");
    }
}
