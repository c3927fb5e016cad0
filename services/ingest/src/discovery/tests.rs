use std::sync::Arc;

use url::Url;

use super::listing::{self, Listing};
use super::*;
use crate::resources::load_texts;
use crate::routing::plan;

const DEVICE: &str = r#"
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: { name: dev }
spec:
  endpoints:
    inbound:
      sse-0: { endpointType: Microsoft.SSEHttp, address: "http://h/base" }
"#;

/// An asset reading `/alerts` of `dev/sse-0` with an event group routing `routed` only.
const ALERTS: &str = r#"
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: { name: a }
spec:
  deviceRef: { deviceName: dev, endpointName: sse-0 }
  defaultEventsDestinations: [ { target: Mqtt, configuration: { topic: ev } } ]
  eventGroups:
    - name: g
      dataSource: /alerts
      events:
        - { name: r, dataSource: routed }
"#;

fn resources(texts: &[&str]) -> crate::resources::Resources {
    let files: Vec<(String, &str)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("r{i}.yaml"), *t))
        .collect();
    let r = load_texts(files.iter().map(|(n, t)| (n.as_str(), *t)));
    assert!(r.errors.is_empty(), "{:?}", r.problems());
    r
}

/// Discovery over the plans of `texts`, and the endpoint record of `dev/sse-0`.
fn discovery(limits: Limits, texts: &[&str]) -> (Discovery, Arc<EndpointTypes>, Arc<str>) {
    let r = resources(texts);
    let d = Discovery::new(limits);
    let plans = plan(&r);
    d.retain(&plans, &r);
    let ep = d.endpoint("dev", "sse-0");
    let source = ep.source_of(&plans[0].url);
    (d, ep, source)
}

fn listed(d: &Discovery) -> Listing {
    let mut l = listing::list(d, None);
    assert_eq!(l.len(), 1, "{l:?}");
    l.remove(0)
}

#[test]
fn counts_each_type_and_keeps_its_first_sample() {
    let (d, ep, src) = discovery(Limits::default(), &[DEVICE, ALERTS]);
    assert_eq!(&*src, "/alerts");
    assert_eq!(ep.record("humidity", br#"{"rh":40}"#, &src), Some(1));
    assert_eq!(ep.record("humidity", br#"{"other":"shape"}"#, &src), None);
    assert_eq!(ep.record("wind", b"not json", &src), Some(2));
    let l = listed(&d);
    assert_eq!((l.device.as_str(), l.endpoint.as_str()), ("dev", "sse-0"));
    let names: Vec<&str> = l.types.iter().map(|t| t.sse_type.as_str()).collect();
    assert_eq!(names, ["humidity", "wind"]);
    let h = &l.types[0];
    assert_eq!(h.seen.count, 2);
    assert!(h.seen.first <= h.seen.last);
    // The first sample's schema, not the second's.
    let schema: serde_json::Value = serde_json::from_str(&h.schema).unwrap();
    assert_eq!(schema["properties"]["rh"]["type"], "integer");
    assert!(schema["properties"].get("other").is_none());
    assert_eq!(l.types[1].schema, "", "no JSON: no schema");
    assert!(l.other.is_none());
}

#[test]
fn types_past_the_cap_are_counted_as_other() {
    let limits = Limits {
        max_types: 3,
        ..Limits::default()
    };
    let (d, ep, src) = discovery(limits, &[DEVICE, ALERTS]);
    for i in 0..10 {
        ep.record(&format!("t{i}"), b"{}", &src);
    }
    ep.record("t0", b"{}", &src); // a kept type still counts as itself
    let l = listed(&d);
    let names: Vec<&str> = l.types.iter().map(|t| t.sse_type.as_str()).collect();
    assert_eq!(names, ["t0", "t1", "t2"]);
    assert_eq!(l.types[0].seen.count, 2);
    assert_eq!(l.other.map(|o| o.count), Some(7));
    assert_eq!(ep.lock().by_type.len(), 3, "memory stays at the cap");
}

#[test]
fn a_sample_over_the_limit_is_kept_cut_and_not_inferred() {
    let limits = Limits {
        sample_bytes: 8,
        ..Limits::default()
    };
    let (d, ep, src) = discovery(limits, &[DEVICE, ALERTS]);
    ep.record("big", br#"{"a":1,"b":2}"#, &src);
    ep.record("small", br#"{"a":1}"#, &src);
    assert_eq!(ep.lock().by_type["big"].sample.len(), 8);
    let l = listed(&d);
    assert!(l.types[0].truncated);
    assert_eq!(l.types[0].schema, "");
    assert!(!l.types[1].truncated);
    assert!(l.types[1].schema.contains("\"a\""), "{}", l.types[1].schema);
}

#[test]
fn the_snippet_loads_and_routes_every_discovered_type() {
    let (d, ep, src) = discovery(Limits::default(), &[DEVICE, ALERTS]);
    for t in ["humidity", "Wind.Gust/2", "wind-gust-2"] {
        ep.record(t, b"{}", &src);
    }
    let yaml = listed(&d).asset_yaml;
    assert!(yaml.starts_with("apiVersion: "), "{yaml}");
    assert!(yaml.contains("\nkind: Asset\n"), "{yaml}");
    let r = resources(&[DEVICE, ALERTS, &yaml]);
    assert_eq!(r.assets.len(), 2, "{yaml}");
    let p = plan(&r);
    assert_eq!(p.len(), 1, "the snippet reads the same stream: {yaml}");
    for t in ["humidity", "Wind.Gust/2", "wind-gust-2"] {
        let routes = p[0].dispatch(t).routes;
        assert_eq!(routes.len(), 1, "{t} in {yaml}");
        assert_eq!(routes[0].data_source, t);
    }
    // Once the snippet is loaded, nothing is left discovered.
    d.retain(&p, &r);
    assert!(listing::list(&d, None).is_empty());
}

#[test]
fn reloading_keeps_what_is_still_unrouted_and_forgets_unread_endpoints() {
    let (d, ep, src) = discovery(Limits::default(), &[DEVICE, ALERTS]);
    ep.record("humidity", b"{}", &src);
    ep.record("wind", b"{}", &src);
    let routes_wind = ALERTS.replace(
        "- { name: r, dataSource: routed }",
        "- { name: r, dataSource: routed }\n        - { name: w, dataSource: wind }",
    );
    let r = resources(&[DEVICE, &routes_wind]);
    d.retain(&plan(&r), &r);
    let names: Vec<String> = listed(&d).types.into_iter().map(|t| t.sse_type).collect();
    assert_eq!(names, ["humidity"]);
    assert_eq!(d.counts().get(&("dev".into(), "sse-0".into())), Some(&1));
    let r = resources(&[DEVICE]);
    d.retain(&plan(&r), &r);
    assert!(d.all(None).is_empty());
}

#[test]
fn the_filter_by_device_and_an_endpoint_with_nothing_found() {
    let (d, ep, src) = discovery(Limits::default(), &[DEVICE, ALERTS]);
    assert!(listing::list(&d, None).is_empty(), "nothing discovered yet");
    ep.record("x", b"1", &src);
    assert_eq!(listing::list(&d, Some("dev")).len(), 1);
    assert!(listing::list(&d, Some("nope")).is_empty());
}

#[test]
fn data_sources_relative_to_the_address() {
    let u = |s: &str| Url::parse(s).unwrap();
    let cases = [
        ("http://h/base", "http://h/base/alerts", "/alerts"),
        ("http://h/base/", "http://h/base/alerts", "/alerts"),
        ("http://h/base", "http://h/base", ""),
        ("http://h/base?x=1", "http://h/base/r?y=2", "/r?y=2"),
        ("http://h/base?x=1", "http://h/base/r?x=1", "/r"),
    ];
    for (a, url, want) in cases {
        let got = relative(&u(a), &u(url));
        assert_eq!(got, want, "{a} {url}");
        // What the snippet writes reads the same URL again.
        assert_eq!(crate::routing::join_url(&u(a), &got), u(url), "{a} {url}");
    }
}

#[test]
fn names_for_resources() {
    assert_eq!(snippet::name_of("Wind.Gust/2"), "wind-gust-2");
    assert_eq!(snippet::name_of("--"), "event");
    assert_eq!(snippet::name_of(&"x".repeat(100)).len(), 63);
}

#[test]
fn the_discovery_message_has_the_discovered_asset_fields() {
    let (d, ep, src) = discovery(Limits::default(), &[DEVICE, ALERTS]);
    ep.record("humidity", br#"{"rh":40}"#, &src);
    let v: serde_json::Value = serde_json::from_str(&topic::message(&listed(&d))).unwrap();
    assert_eq!(v["name"], "dev-sse-0-discovered");
    assert_eq!(v["deviceRef"]["deviceName"], "dev");
    assert_eq!(v["deviceRef"]["endpointName"], "sse-0");
    let group = &v["eventGroups"][0];
    assert_eq!(group["dataSource"], "/alerts");
    let event = &group["events"][0];
    assert_eq!(
        (&event["name"], &event["dataSource"]),
        (&"humidity".into(), &"humidity".into())
    );
    assert_eq!(event["schema"]["properties"]["rh"]["type"], "integer");
    assert_eq!(v["schemasOmitted"], false);
}

#[tokio::test]
async fn the_topic_publishes_a_change_and_clears_an_endpoint_no_longer_read() {
    let (d, ep, src) = discovery(Limits::default(), &[DEVICE, ALERTS]);
    let d = Arc::new(d);
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let publisher = topic::TopicPublisher {
        discovery: d.clone(),
        prefix: "sse-connector/discovery".into(),
        out: tx,
    };
    let token = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(publisher.run(token.clone()));
    ep.record("humidity", br#"{"rh":40}"#, &src);
    let ev = rx.recv().await.unwrap();
    let crate::resources::Destination::Mqtt(m) = &ev.route.destination else {
        panic!("{:?}", ev.route.destination);
    };
    assert_eq!(m.topic, "sse-connector/discovery/dev/sse-0");
    assert!(m.retain);
    assert_eq!(ev.route.kind, crate::routing::RouteKind::Status);
    assert_eq!(&*ev.stream_key, topic::DISCOVERY_STREAM);
    let v: serde_json::Value = serde_json::from_slice(&ev.data).unwrap();
    assert_eq!(v["eventGroups"][0]["events"][0]["dataSource"], "humidity");
    // Unread now: its retained message is cleared.
    let r = resources(&[DEVICE]);
    d.retain(&plan(&r), &r);
    let ev = rx.recv().await.unwrap();
    assert!(ev.data.is_empty());
    token.cancel();
    run.await.unwrap();
}

#[test]
fn a_schema_is_at_most_a_few_times_its_sample() {
    // Many one- and two-letter keys: the schema's worst ratio to its sample (each key becomes
    // `"k":{"type":"integer"}` plus its place in `required`).
    let mut sample = String::from("{");
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
    let keys = letters.iter().map(|c| c.to_string()).chain(
        letters
            .iter()
            .flat_map(|a| letters.iter().map(move |b| format!("{a}{b}"))),
    );
    for k in keys {
        let part = format!("\"{k}\":0,");
        if sample.len() + part.len() + 1 > SAMPLE_BYTES_DEFAULT {
            break;
        }
        sample.push_str(&part);
    }
    sample.pop();
    sample.push('}');
    let schema = listing::infer(sample.as_bytes());
    assert!(
        schema.len() <= 5 * sample.len(),
        "{} bytes of schema from {} bytes of sample",
        schema.len(),
        sample.len()
    );
}
