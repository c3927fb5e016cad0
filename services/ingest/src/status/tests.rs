use super::live::subject_of;
use super::*;
use crate::resources::load_texts;
use crate::resources::{ResourceError, Resources};
use crate::routing::plan;
use crate::routing::{Route, RouteKind, StreamPlan};
use sse_proto::v1 as pb;
use std::time::SystemTime;

const RES: &str = r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
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
"#;

/// Whether anything the report shows changed since the last call.
fn changed(s: &Status) -> bool {
    !s.take_dirty().is_empty()
}

#[test]
fn what_the_report_shows_changes_it_counters_do_not() {
    let r = load_texts([("r.yaml", RES)]);
    let s = Status::new(&plan(&r), Vec::new());
    let key = "d/e|http://h/x/z";
    assert!(changed(&s), "the first plan");
    s.update(key, |st| st.forwarded += 1);
    assert!(!changed(&s), "a counter is not shown");
    s.update(key, |st| st.set_state(StreamState::Connected));
    assert!(changed(&s));
    s.update(key, |st| st.set_state(StreamState::Connected));
    assert!(!changed(&s), "the same state again changes nothing");
    s.update(key, |st| st.last_error = "boom".into());
    assert!(changed(&s));
    s.update(key, |st| st.last_error = "bang".into());
    assert!(changed(&s), "another error of the same length");
    let z = Route {
        group: "z".into(),
        ..route(RouteKind::Dataset)
    };
    // Acks of events 1, 2, ... of the stream.
    let ack = |seq: u64, version: &str| pb::Ack {
        stream_key: key.into(),
        seq,
        schema: Some(pb::SchemaReference {
            name: "N".into(),
            namespace: "ns".into(),
            version: version.into(),
        }),
        ..Default::default()
    };
    s.apply_ack(&z, &ack(1, "1"));
    assert!(changed(&s), "a first schema reference");
    s.apply_ack(&z, &ack(2, "1"));
    assert!(!changed(&s), "the same reference again");
    s.apply_ack(&z, &ack(3, "2"));
    assert!(changed(&s), "a new schema version");

    // A freeze is kept by an ack the schema service could not annotate (a duplicate of a
    // re-sent event), and cleared only by one with a schema and no problem.
    let mut frozen = ack(5, "2");
    frozen.set_schema_frozen_reason(pb::SchemaFrozenReason::MaxVersions);
    s.apply_ack(&z, &frozen);
    assert!(changed(&s), "frozen");
    let bare = pb::Ack {
        stream_key: key.into(),
        ..Default::default()
    };
    s.apply_ack(&z, &bare);
    assert!(!changed(&s), "an ack that says nothing changes nothing");
    // A late ack of an earlier event, of the frozen version or an older one, keeps the freeze.
    s.apply_ack(&z, &ack(4, "2"));
    s.apply_ack(&z, &ack(1, "1"));
    assert!(!changed(&s), "late acks change nothing");
    // A newer version (the cap was raised) clears it.
    s.apply_ack(&z, &ack(6, "3"));
    assert!(changed(&s), "a newer version clears the freeze");
}

#[test]
fn late_acks_of_versions_with_their_own_names_keep_the_latest_and_its_freeze() {
    // The schema service names each version by its content, so every version of a subject has
    // its own name. The publisher acks in the order the broker answers: here event 1, 2, then
    // 20 down to 3; events 6 on are past the property cap and keep version 5. The route must end
    // on version 5, frozen (it once ended on version 3 with no problem shown).
    let r = load_texts([("r.yaml", RES)]);
    let s = Status::default();
    s.reconcile(&plan(&r), &r);
    let key = "d/e|http://h/x/z";
    let z = Route {
        group: "z".into(),
        ..route(RouteKind::Dataset)
    };
    let ack = |seq: u64| {
        let version = seq.min(5);
        let mut a = pb::Ack {
            stream_key: key.into(),
            seq,
            schema: Some(pb::SchemaReference {
                name: format!("HASH-OF-VERSION-{version}"),
                namespace: "ns".into(),
                version: version.to_string(),
            }),
            ..Default::default()
        };
        if seq > 5 {
            a.set_schema_frozen_reason(pb::SchemaFrozenReason::MaxSchemaProperties);
        }
        a
    };
    for seq in [1, 2].into_iter().chain((3..=20).rev()) {
        s.apply_ack(&z, &ack(seq));
    }
    let report = s.report();
    let dataset = report.assets["a"]
        .datasets
        .iter()
        .find(|d| d.name == "z")
        .unwrap();
    let reference = dataset.message_schema_reference.as_ref().unwrap();
    assert_eq!(reference.schema_version, "5", "{dataset:?}");
    assert_eq!(reference.schema_name, "HASH-OF-VERSION-5", "{dataset:?}");
    let error = dataset.error.as_ref().expect("the freeze is shown");
    assert_eq!(error.code, "SchemaFrozen", "{dataset:?}");
}

/// A route of `kind` of asset `a`, group `g`, event `e`.
fn route(kind: RouteKind) -> Route {
    Route {
        device: "d".into(),
        endpoint: "e".into(),
        asset: "a".into(),
        kind,
        group: "g".into(),
        event: "e".into(),
        data_source: String::new(),
        type_ref: String::new(),
        ids: Default::default(),
        dead_letter: None,
        destination: crate::resources::Destination::Mqtt(crate::resources::MqttDestination {
            topic: "t".into(),
            qos: crate::resources::Qos::AtLeastOnce,
            retain: false,
            ttl_seconds: None,
        }),
    }
}

#[test]
fn subjects_of_datasets_and_events_none_for_status_reports() {
    let mut out = "left over".to_string();
    assert!(subject_of(&route(RouteKind::Event), &mut out));
    assert_eq!(out, "a/g/e");
    assert!(subject_of(&route(RouteKind::Dataset), &mut out));
    assert_eq!(out, "a/g");
    assert!(!subject_of(&route(RouteKind::Status), &mut out));
}

#[test]
fn streams_sorted_by_key_with_routes_and_updates() {
    let r = load_texts([("r.yaml", RES)]);
    let err = ResourceError {
        resource: "Asset/x".into(),
        file: "f".into(),
        message: "m".into(),
    };
    let s = Status::new(&plan(&r), vec![err.clone()]);
    s.update("d/e|http://h/x/z", |st| {
        st.received += 2;
        st.set_state(StreamState::Connected);
    });
    s.update("nope", |st| st.received += 1);
    let all = s.streams();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].key, "d/e|http://h/x/b");
    assert_eq!(all[0].routes, ["a/b"]);
    assert_eq!(all[1].url, "http://h/x/z");
    assert_eq!(all[1].received, 2);
    assert!(all[1].connected());
    assert_eq!(s.resource_errors(), [err]);
}

#[test]
fn reconcile_keeps_counters_of_kept_streams_and_reports_changes() {
    let r = load_texts([("r.yaml", RES)]);
    let s = Status::default();
    let c = s.reconcile(&plan(&r), &r);
    assert_eq!(c.added.len(), 2);
    s.update("d/e|http://h/x/b", |st| st.received = 7);
    let text = RES.replace("{ name: z, dataSource: /z }, ", "");
    let r2 = load_texts([("r.yaml", text.as_str())]);
    let c = s.reconcile(&plan(&r2), &r2);
    assert_eq!(c.added, Vec::<String>::new());
    assert_eq!(c.removed, ["d/e|http://h/x/z"]);
    assert_eq!(s.get("d/e|http://h/x/b").unwrap().received, 7);
    assert!(s.get("d/e|http://h/x/z").is_none());
}

#[test]
fn adr_report_has_health_schema_reference_and_config_errors() {
    let r = load_texts([("r.yaml", RES)]);
    let s = Status::default();
    s.reconcile(
        &plan(&r),
        &Resources {
            errors: vec![ResourceError {
                resource: "Asset/broken".into(),
                file: "f".into(),
                message: "unknown device nope".into(),
            }],
            ..r.clone()
        },
    );
    s.update("d/e|http://h/x/z", |st| {
        st.set_state(StreamState::Connected)
    });
    s.update("d/e|http://h/x/b", |st| {
        st.set_state(StreamState::Disconnected);
        st.last_error = "HTTP 503 Service Unavailable".into();
    });
    s.update_route("a/z", |r| {
        r.schema = SchemaReference::from_dataschema("aio-sr://ns/ABC:2");
    });
    let rep = s.report();
    let a = &rep.assets["a"];
    assert!(a.config.error.is_none());
    let z = a.datasets.iter().find(|d| d.name == "z").unwrap();
    assert!(z.runtime_health.available());
    assert_eq!(
        z.message_schema_reference.as_ref().unwrap().schema_version,
        "2"
    );
    let b = a.datasets.iter().find(|d| d.name == "b").unwrap();
    assert_eq!(b.runtime_health.status, "Unavailable");
    assert_eq!(b.runtime_health.reason_code, "Disconnected");
    assert!(b.runtime_health.message.contains("503"));
    // The endpoint is as healthy as its worst stream.
    let ep = &rep.devices["d"].endpoints.inbound["e"];
    assert!(!ep.runtime_health.as_ref().unwrap().available());
    let broken = &rep.assets["broken"];
    assert_eq!(
        broken.config.error.as_ref().unwrap().message,
        "unknown device nope"
    );
    let json = serde_json::to_value(&rep.assets["a"]).unwrap();
    assert_eq!(
        json["datasets"][0]["messageSchemaReference"]["schemaRegistryNamespace"],
        "ns"
    );
    assert!(json["config"]["lastTransitionTime"].is_string());
}

#[test]
fn a_rejected_dataset_or_event_has_the_error_not_its_asset() {
    let text = RES.replace(
            "{ name: b, dataSource: /b }",
            "{ name: b, dataSource: /b, destinations: [ { target: Mqtt, configuration: { topic: a/+/b } } ] }",
        ) + "  eventGroups: [ { name: g, events: [ { name: e, dataSource: x }, { name: bad, dataSource: y, destinations: [ { target: Storage } ] } ] } ]\n  defaultEventsDestinations: [ { target: Mqtt, configuration: { topic: ev } } ]\n";
    let r = load_texts([("r.yaml", text.as_str())]);
    let s = Status::default();
    s.reconcile(&plan(&r), &r);
    let a = &s.report().assets["a"];
    assert!(a.config.error.is_none(), "{:?}", a.config.error);
    let by_name =
        |ops: &[OperationStatus], n: &str| ops.iter().find(|o| o.name == n).cloned().unwrap();
    assert!(by_name(&a.datasets, "z").error.is_none());
    let b = by_name(&a.datasets, "b");
    let e = b.error.unwrap();
    assert_eq!(e.code, INVALID_CONFIGURATION);
    assert!(e.message.contains("wildcard"), "{}", e.message);
    assert_eq!(b.runtime_health.reason_code, INVALID_CONFIGURATION);
    let events = &a.event_groups[0].events;
    assert!(by_name(events, "e").error.is_none());
    let bad = by_name(events, "bad").error.unwrap();
    assert!(bad.message.contains("Storage"), "{}", bad.message);
    let listed: Vec<String> = s.resource_errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed[0].starts_with("Asset/a (r.yaml): dataset \"b\": "),
        "{listed:?}"
    );
    assert!(
        listed[1].contains("event group \"g\" event \"bad\""),
        "{listed:?}"
    );
    // One replica of several reports them (no replica reads them), once.
    let s = Status::default();
    s.set_partial(false);
    s.reconcile(&plan(&r), &r);
    assert_eq!(s.report().assets["a"].datasets.len(), 1);
    s.set_partial(true);
    assert_eq!(s.report().assets["a"].datasets.len(), 2);
}

#[test]
fn a_rejected_endpoint_has_the_error_not_its_device() {
    let text = RES.replace(
        "inbound: { e: {",
        "inbound: { bad: { endpointType: Microsoft.SSE, address: \"ftp://h\" }, e: {",
    );
    let r = load_texts([("r.yaml", text.as_str())]);
    let s = Status::default();
    s.reconcile(&plan(&r), &r);
    let d = &s.report().devices["d"];
    assert!(d.config.error.is_none(), "{:?}", d.config.error);
    let bad = d.endpoints.inbound["bad"].error.as_ref().unwrap();
    assert_eq!(bad.code, INVALID_CONFIGURATION);
    assert!(bad.message.contains("not http(s)"), "{}", bad.message);
    assert!(d.endpoints.inbound["e"].error.is_none());
    let listed = s.resource_errors();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].resource, "Device/d");
    assert!(listed[0].message.starts_with("endpoint bad: "));
}

#[test]
fn a_replica_reports_only_what_it_reads() {
    let r = load_texts([("r.yaml", RES)]);
    let owned: Vec<StreamPlan> = plan(&r)
        .into_iter()
        .filter(|p| p.key.ends_with("/z"))
        .collect();
    let errors = vec![ResourceError {
        resource: "Asset/broken".into(),
        file: "f".into(),
        message: "m".into(),
    }];
    let with_errors = Resources {
        errors,
        ..r.clone()
    };
    let s = Status::default();
    s.set_partial(false);
    s.reconcile(&owned, &with_errors);
    let rep = s.report();
    let names: Vec<&str> = rep.assets["a"]
        .datasets
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["z"], "b is read by another replica");
    assert!(!rep.assets.contains_key("broken"), "ordinal 0 reports it");
    s.set_partial(true);
    assert!(s.report().assets.contains_key("broken"));
    // A replica that reads nothing of the asset does not report it at all.
    let idle = Status::default();
    idle.set_partial(false);
    idle.reconcile(&[], &r);
    assert!(idle.report().assets.is_empty());
    assert!(idle.report().devices.is_empty());
}

#[test]
fn dataschema_parsing_and_rfc3339() {
    assert_eq!(
        SchemaReference::from_dataschema("aio-sr://n/N:1"),
        Some(SchemaReference {
            schema_name: "N".into(),
            schema_registry_namespace: "n".into(),
            schema_version: "1".into()
        })
    );
    assert_eq!(SchemaReference::from_dataschema("http://x"), None);
    assert_eq!(SchemaReference::from_dataschema("aio-sr://n/N"), None);
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_743_000);
    assert_eq!(rfc3339(t), "2026-11-27T01:30:00Z");
    assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
}

#[test]
fn a_change_marks_only_the_resources_that_show_it() {
    let r = load_texts([("r.yaml", RES)]);
    let s = Status::default();
    s.reconcile(&plan(&r), &r);
    assert!(s.take_dirty().all, "a reload changes everything");
    assert!(s.take_dirty().is_empty(), "taken");
    let key = "d/e|http://h/x/z";
    s.update(key, |st| st.forwarded += 1);
    assert!(s.take_dirty().is_empty(), "a counter is not shown");
    s.update(key, |st| st.set_state(StreamState::Connected));
    let d = s.take_dirty();
    assert!(!d.all);
    assert_eq!(d.devices, ["d".to_string()].into());
    assert_eq!(d.assets, ["a".to_string()].into());
    let ack = pb::Ack {
        stream_key: key.into(),
        error: "broker said no".into(),
        ..Default::default()
    };
    s.apply_ack(&route(RouteKind::Dataset), &ack);
    assert_eq!(s.take_dirty().assets, ["a".to_string()].into());
    s.set_partial(false);
    assert!(s.take_dirty().all, "a new share of the streams");
}

#[test]
fn an_event_read_is_counted_and_only_a_new_type_is_shown() {
    let r = load_texts([("r.yaml", RES)]);
    let s = Status::default();
    s.reconcile(&plan(&r), &r);
    assert!(s.take_dirty().all);
    let key = "d/e|http://h/x/z";
    s.update(key, |st| st.last_error = "an earlier error".into());
    let _ = s.take_dirty();
    s.count_received(key, 1, None, "41");
    s.count_received(key, 0, None, "42");
    assert!(s.take_dirty().is_empty(), "counters and ids are not shown");
    s.count_received(key, 0, Some(3), "43");
    assert_eq!(
        s.take_dirty().devices,
        ["d".to_string()].into(),
        "a new type is"
    );
    s.count_received(key, 0, Some(3), "44");
    assert!(s.take_dirty().is_empty(), "the same count again is not");
    let st = s.streams().into_iter().find(|st| st.key == key).unwrap();
    assert_eq!(
        (st.received, st.unmatched, st.last_event_id.as_str()),
        (4, 1, "44")
    );
    assert_eq!(st.discovered_types, 3);
    assert_eq!(st.last_error, "an earlier error");
}

#[test]
fn a_scoped_report_is_that_part_of_the_full_one() {
    let r = load_texts([("r.yaml", RES)]);
    let s = Status::default();
    s.reconcile(&plan(&r), &r);
    s.update("d/e|http://h/x/z", |st| {
        st.set_state(StreamState::Connected)
    });
    let full = s.report();
    let none: &[String] = &[];
    let only_a = s.report_of(Scope {
        unserved: false,
        devices: Some(none),
        assets: Some(&["a".to_string(), "unknown".to_string()]),
    });
    assert!(only_a.devices.is_empty());
    assert_eq!(only_a.assets, full.assets);
    let (devices, assets) = s.resource_names();
    assert_eq!(
        (devices, assets),
        (vec!["d".to_string()], vec!["a".to_string()])
    );
}

#[test]
fn the_reporter_taking_its_marks_hides_nothing_from_the_adr_status() {
    let r = load_texts([("r.yaml", RES)]);
    let s = Status::new(&plan(&r), Vec::new());
    s.take_dirty();
    s.take_dirty_for(Consumer::Adr);
    let key = "d/e|http://h/x/z";
    s.update(key, |st| st.set_state(StreamState::Connected));
    let reporter = s.take_dirty();
    assert!(reporter.devices.contains("d") && reporter.assets.contains("a"));
    let adr = s.take_dirty_for(Consumer::Adr);
    assert_eq!(adr, reporter, "the ADR status sees the same change");
    assert!(s.take_dirty_for(Consumer::Adr).is_empty());
    assert!(s.take_dirty().is_empty());
}
