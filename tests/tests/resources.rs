//! Resources end to end: a dataset or event that cannot be served fails alone (its siblings
//! deliver to the broker, the error is on it in GetStatus and in the retained status, not on its
//! asset; an endpoint's error is likewise not its device's), reloading 20,000 assets does
//! not freeze ingest (it answers gRPC meanwhile), and a file caught half-written closes none of
//! its streams.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use sse_e2e::broker::Mosquitto;
use sse_e2e::fswatch::OpenWatch;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::procs::Service;
use sse_e2e::source::{Feed, Reply, block, blocks_then_hold};
use sse_e2e::stack::Stack;
use sse_e2e::{eventually, grpcurl};

const API: &str = "apiVersion: namespaces.deviceregistry.microsoft.com/v1";

/// Device `dev`: endpoint `sse-0` at `base`, and endpoint `broken` with an address ingest
/// cannot read (an endpoint error, not the device's).
fn device(base: &str) -> String {
    format!(
        "{API}\nkind: Device\nmetadata: {{ name: dev }}\nspec:\n  endpoints:\n    inbound:\n      sse-0: {{ endpointType: Microsoft.SSEHttp, address: \"{base}\" }}\n      broken: {{ endpointType: Microsoft.SSEHttp, address: \"ftp://nowhere\" }}\n"
    )
}

fn mqtt(topic: &str) -> String {
    format!("[ {{ target: Mqtt, configuration: {{ topic: \"{topic}\" }} }} ]")
}

/// Asset `mixed`: dataset `good` and event `ok` are valid, dataset `bad` and event `bad` have a
/// wildcard destination.
fn mixed() -> String {
    format!(
        r#"---
{API}
kind: Asset
metadata: {{ name: mixed }}
spec:
  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  datasets:
    - {{ name: good, dataSource: /good, destinations: {good} }}
    - {{ name: bad, dataSource: /bad, destinations: {bad} }}
  eventGroups:
    - name: alerts
      dataSource: /alerts
      events:
        - {{ name: ok, dataSource: ok, destinations: {ok} }}
        - {{ name: bad, dataSource: bad, destinations: {bad_event} }}
"#,
        good = mqtt("e2e/good"),
        bad = mqtt("e2e/+/bad"),
        ok = mqtt("e2e/ok"),
        bad_event = mqtt("e2e/#"),
    )
}

/// The named entry of a JSON array of `{ name, ... }`.
fn named<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

/// Asserts the ADR status of asset `mixed`: no asset error, the error on the bad dataset and
/// the bad event only.
fn assert_fails_alone(asset: &serde_json::Value) {
    assert!(
        asset["config"]["error"].is_null(),
        "the asset itself is fine: {}",
        asset["config"]
    );
    let datasets = &asset["datasets"];
    assert!(named(datasets, "good")["error"].is_null(), "{datasets}");
    let bad = &named(datasets, "bad")["error"];
    assert_eq!(bad["code"], "InvalidConfiguration", "{datasets}");
    assert!(
        bad["message"].as_str().unwrap().contains("wildcard"),
        "{bad}"
    );
    let events = &named(&asset["eventGroups"], "alerts")["events"];
    assert!(named(events, "ok")["error"].is_null(), "{events}");
    let bad = &named(events, "bad")["error"];
    assert_eq!(bad["code"], "InvalidConfiguration", "{events}");
    assert!(
        bad["message"].as_str().unwrap().contains("wildcard"),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_dataset_or_event_fails_alone() {
    let feed: Feed = Arc::new(|req| match req.path.as_str() {
        "/good" | "/bad" => {
            Reply::Sse(blocks_then_hold(vec![block(Some("1"), None, r#"{"n":1}"#)]))
        }
        "/alerts" => Reply::Sse(blocks_then_hold(vec![
            block(Some("a1"), Some("ok"), r#"{"n":2}"#),
            block(Some("a2"), Some("bad"), r#"{"n":3}"#),
        ])),
        _ => Reply::not_found(),
    });
    let (stack, sub) = Stack::start(feed, |base| device(base) + &mixed())
        .await
        .unwrap();
    let status_sub = Subscriber::connect(stack.broker.port, "sse-connector/status/asset/mixed")
        .await
        .unwrap();
    let device_sub = Subscriber::connect(stack.broker.port, "sse-connector/status/device/dev")
        .await
        .unwrap();

    // GetStatus: the error is on the dataset and the event, not on the asset.
    let addr = stack.ingest.addr.to_string();
    let status = eventually("asset mixed in GetStatus", || {
        let addr = addr.clone();
        async move {
            let s = grpcurl::call_json(&addr, None, &["sseconnector.v1.IngestService/GetStatus"])
                .await
                .ok()?;
            s["assets"].is_array().then_some(s)
        }
    })
    .await
    .unwrap();
    assert_fails_alone(named(&status["assets"], "mixed"));
    // The same for an endpoint: the error is the endpoint's, not its device's.
    let dev = named(&status["devices"], "dev");
    assert!(dev["config"]["error"].is_null(), "{dev}");
    let endpoints = &dev["inboundEndpoints"];
    assert!(named(endpoints, "sse-0")["error"].is_null(), "{dev}");
    let broken = &named(endpoints, "broken")["error"];
    assert_eq!(broken["code"], "InvalidConfiguration", "{dev}");

    // The valid dataset and event deliver; nothing is published for the rejected ones.
    sub.wait_until("the valid dataset's and event's events", |m| {
        m.iter().any(|r| r.topic == "e2e/good") && m.iter().any(|r| r.topic == "e2e/ok")
    })
    .await
    .unwrap();
    let topics: Vec<String> = sub.all().iter().map(|r| r.topic.clone()).collect();
    assert!(
        topics.iter().all(|t| t == "e2e/good" || t == "e2e/ok"),
        "{topics:?}"
    );
    // A rejected dataset is not read at all.
    let seen = stack.source.seen();
    assert!(seen.iter().all(|r| r.path != "/bad"), "/bad was requested");

    // The retained status says the same.
    let retained = status_sub
        .wait_until("the retained status of asset mixed", |m| !m.is_empty())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&retained[0].payload).unwrap();
    assert_fails_alone(&json);
    let retained = device_sub
        .wait_until("the retained status of device dev", |m| !m.is_empty())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&retained[0].payload).unwrap();
    assert!(json["config"]["error"].is_null(), "{json}");
    let broken = &json["endpoints"]["inbound"]["broken"]["error"];
    assert_eq!(broken["code"], "InvalidConfiguration", "{json}");
}

/// A resources file of one device and `n` assets `asset-<i>`, each with one dataset on the same
/// path (one stream, `n` routes).
fn many_assets(n: usize) -> String {
    let mut s = device("http://127.0.0.1:9");
    for i in 0..n {
        s.push_str(&format!(
            "---\n{API}\nkind: Asset\nmetadata: {{ name: asset-{i} }}\nspec:\n  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}\n  datasets:\n    - {{ name: d, dataSource: /s, destinations: {} }}\n",
            mqtt(&format!("e2e/big/{i}"))
        ));
    }
    s
}

/// Stream keys in ListStreams.
async fn stream_keys(addr: &str) -> anyhow::Result<Vec<String>> {
    let l = grpcurl::call_json(addr, None, &["sseconnector.v1.IngestService/ListStreams"]).await?;
    Ok(l["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["key"].as_str())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_20000_assets_does_not_freeze_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = Service::start(
        "sse-ingest",
        &reload_args(&dir, &["--schema", "http://127.0.0.1:9"]),
        &[],
    )
    .await
    .unwrap();
    reload_answers_meanwhile(&dir, &ingest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_20000_assets_does_not_freeze_the_connector() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().await.unwrap();
    let data = dir.path().join("schemas").display().to_string();
    let extra = [
        "--schema-listen",
        "127.0.0.1:0",
        "--publisher-listen",
        "127.0.0.1:0",
        "--mqtt-url",
        &broker.url(),
        "--data-dir",
        &data,
    ];
    let connector = Service::start("sse-connector", &reload_args(&dir, &extra), &[])
        .await
        .unwrap();
    reload_answers_meanwhile(&dir, &connector).await;
}

/// Arguments of a service reading `dir/resources` (written here: 20,000 assets), reloading
/// 10 ms after a change and never on a timer, publishing no status; then `extra`.
fn reload_args(dir: &tempfile::TempDir, extra: &[&str]) -> Vec<String> {
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    std::fs::write(res.join("assets.yaml"), many_assets(20_000)).unwrap();
    let mut args: Vec<String> = [
        "--resources",
        &res.display().to_string(),
        "--status-topic=",
        "--reload-debounce=10ms",
        "--rescan-interval=0s",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Once `svc` has loaded `dir/resources`, adds a file: ListStreams, called once the reload has
/// begun reading the big file, answers before that reload's new stream is listed.
async fn reload_answers_meanwhile(dir: &tempfile::TempDir, svc: &Service) {
    let big = dir.path().join("resources/assets.yaml");
    let addr = svc.addr.to_string();
    eventually("the first load's stream", || {
        let addr = addr.clone();
        async move { (stream_keys(&addr).await.ok()?.len() == 1).then_some(()) }
    })
    .await
    .unwrap();

    // A new file asks for a reload; ingest reads the big file again (the reload has begun), and
    // a call made then is answered before the reload is done: its answer has no new stream yet.
    let mut opened = OpenWatch::new(&big).unwrap();
    let extra = format!(
        "{API}\nkind: Asset\nmetadata: {{ name: extra }}\nspec:\n  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}\n  datasets: [ {{ name: d, dataSource: /extra, destinations: {} }} ]\n",
        mqtt("e2e/extra")
    );
    std::fs::write(dir.path().join("resources/extra.yaml"), extra).unwrap();
    opened.opened().await.unwrap();
    let during = stream_keys(&addr)
        .await
        .expect("ingest answers ListStreams while it reloads");
    assert_eq!(
        during.len(),
        1,
        "ListStreams waited for the reload to finish: {during:?}"
    );
    // The reload's done signal: the new stream is listed.
    eventually("the reload's new stream", || {
        let addr = addr.clone();
        async move {
            let keys = stream_keys(&addr).await.ok()?;
            keys.iter().any(|k| k.ends_with("/extra")).then_some(())
        }
    })
    .await
    .unwrap();
}

/// Asset `name` of device `dev` with one dataset on `path` (its own stream).
fn asset_on(name: &str, path: &str) -> String {
    format!(
        "{API}\nkind: Asset\nmetadata: {{ name: {name} }}\nspec:\n  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}\n  datasets:\n    - {{ name: d, dataSource: {path}, destinations: {} }}\n",
        mqtt(&format!("e2e/{name}"))
    )
}

/// Waits until ListStreams has a stream whose key ends with `path`, and returns every key.
async fn keys_once_listed(addr: &str, path: &str) -> Vec<String> {
    eventually(&format!("a stream of {path}"), || async move {
        let keys = stream_keys(addr).await.ok()?;
        keys.iter().any(|k| k.ends_with(path)).then_some(keys)
    })
    .await
    .unwrap()
}

/// A file caught mid-write (cut inside its last document) is served as its last clean version:
/// the streams of its documents past the cut stay open. The old binaries closed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_file_keeps_its_streams() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let whole = [
        device("http://127.0.0.1:9"),
        asset_on("first", "/first"),
        asset_on("last", "/last"),
    ]
    .join("---\n");
    std::fs::write(res.join("plant.yaml"), &whole).unwrap();
    let args = [
        "--resources",
        &res.display().to_string(),
        "--status-topic=",
        "--reload-debounce=10ms",
        "--rescan-interval=0s",
        "--schema",
        "http://127.0.0.1:9",
    ];
    let args = args.map(String::from);
    let ingest = Service::start("sse-ingest", &args, &[]).await.unwrap();
    let addr = ingest.addr.to_string();
    assert_eq!(keys_once_listed(&addr, "/last").await.len(), 2);

    // Cut in the middle of the last asset's dataset line, as a slow copy leaves it.
    let cut = whole.len() - 40;
    std::fs::write(res.join("plant.yaml"), &whole[..cut]).unwrap();
    // A second file's stream shows that a reload read the directory after the cut.
    std::fs::write(res.join("marker.yaml"), asset_on("marker", "/marker")).unwrap();
    let keys = keys_once_listed(&addr, "/marker").await;
    assert!(
        keys.iter().any(|k| k.ends_with("/last")),
        "the half-written file's last stream closed: {keys:?}"
    );
    let listed = grpcurl::call_json(&addr, None, &["sseconnector.v1.IngestService/ListStreams"])
        .await
        .unwrap();
    let errors = listed["resourceErrors"].to_string();
    assert!(
        errors.contains("plant.yaml") && errors.contains("last version that parsed"),
        "the file's error says what is served: {errors}"
    );
}
