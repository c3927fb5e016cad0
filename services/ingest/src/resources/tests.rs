use super::*;

const DEVICE: &str = r#"
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: { name: dev }
spec:
  endpoints:
    inbound:
      sse-0:
        endpointType: Microsoft.SSEHttp
        address: http://127.0.0.1:8088/base
        authentication: { method: Anonymous }
      sse-1:
        endpointType: microsoft.sse
        address: https://h:8443
        authentication:
          method: UsernamePassword
          usernamePasswordCredentials: { usernameSecretName: creds/user, passwordSecretName: creds/pass }
        trustSettings: { trustList: my-ca }
      sse-2:
        endpointType: MICROSOFT.SSE
        address: http://h2
      rest:
        endpointType: Microsoft.Http
        address: http://h3
"#;

fn asset(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Asset\nmetadata: {{ name: {name} }}\nspec:\n{spec}"
    )
}

fn load(docs: &[String]) -> Resources {
    let text = docs.join("\n---\n");
    load_texts([("res.yaml", text.as_str())])
}

fn mqtt(topic: &str) -> Destination {
    Destination::Mqtt(MqttDestination {
        topic: topic.into(),
        qos: Qos::AtLeastOnce,
        retain: false,
        ttl_seconds: None,
    })
}

fn only_error(r: &Resources) -> &ResourceError {
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    &r.errors[0]
}

#[test]
fn devices_accept_every_sse_alias_and_skip_other_types() {
    let r = load(&[DEVICE.into()]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let d = &r.devices["dev"];
    assert_eq!(
        d.endpoints.keys().collect::<Vec<_>>(),
        ["sse-0", "sse-1", "sse-2"]
    );
    assert_eq!(d.foreign_endpoints, ["rest"]);
    assert_eq!(d.endpoints["sse-2"].auth, Auth::Anonymous);
    assert_eq!(d.endpoints["sse-1"].trust_list.as_deref(), Some("my-ca"));
    assert_eq!(
        d.endpoints["sse-1"].auth,
        Auth::UsernamePassword {
            username: SecretRef::parse("creds/user").unwrap(),
            password: SecretRef::parse("creds/pass").unwrap(),
        }
    );
    assert!(is_sse_endpoint_type("Microsoft.SSE"));
    assert!(!is_sse_endpoint_type("Microsoft.Http"));
}

#[test]
fn multi_document_file_with_other_kinds_and_empty_documents() {
    let text = format!(
        "---\n{DEVICE}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{ name: x }}\n---\n# only a comment\n---\n{}\n...\n",
        asset(
            "a",
            "  deviceRef: { deviceName: dev, endpointName: sse-0 }\n  datasets:\n    - { name: d, dataSource: /r, destinations: [ { target: Mqtt, configuration: { topic: t } } ] }\n"
        )
    );
    let r = load_texts([("f.yaml", text.as_str())]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.devices.len(), 1);
    assert_eq!(r.assets.len(), 1);
    assert_eq!(r.assets[0].datasets[0].destination, mqtt("t"));
    assert_eq!(r.assets[0].file, "f.yaml");
}

#[test]
fn a_broken_document_does_not_stop_the_others() {
    let text = format!(
        "{DEVICE}\n---\nkind: [unclosed\n---\n{}",
        asset(
            "a",
            "  deviceRef: { deviceName: dev, endpointName: sse-0 }\n  defaultDatasetsDestinations: [ { target: Mqtt, configuration: { topic: t } } ]\n  datasets: [ { name: d } ]\n"
        )
    );
    let r = load_texts([("f.yaml", text.as_str())]);
    let e = only_error(&r);
    assert_eq!(e.file, "f.yaml");
    assert!(e.message.contains("unparsable"), "{e}");
    assert_eq!(r.assets.len(), 1);
    assert_eq!(r.assets[0].datasets[0].data_source, "");
}

#[test]
fn an_alias_bomb_is_refused_alone() {
    // 35 KB that serde_yaml_ng alone expands to 25 million nodes (2.5 GB, a minute).
    let anchor = vec!["x"; 5000].join(", ");
    let aliases = vec!["*a"; 5000].join(", ");
    let text = format!("{DEVICE}\n---\na: &a [{anchor}]\nb: [{aliases}]\n");
    let r = load_texts([("f.yaml", text.as_str())]);
    let e = only_error(&r);
    assert!(e.message.contains("alias bomb"), "{e}");
    assert_eq!(r.devices.len(), 1);
}

#[test]
fn dataset_destination_precedence() {
    let r = load(&[
        DEVICE.into(),
        asset(
            "a",
            r#"  deviceRef: { deviceName: dev, endpointName: sse-0 }
  defaultDatasetsDestinations:
    - { target: Mqtt, configuration: { topic: default/ds, qos: Qos0, retain: Keep, ttl: 60 } }
    - { target: Mqtt, configuration: { topic: ignored } }
  datasets:
    - { name: own, dataSource: /a, typeRef: tr, destinations: [ { target: BrokerStateStore, configuration: { key: k1 } } ] }
    - { name: inherited, dataSource: /b }
    - { name: empty-list, dataSource: /c, destinations: [] }
"#,
        ),
    ]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let ds = &r.assets[0].datasets;
    assert_eq!(
        ds[0].destination,
        Destination::StateStore { key: "k1".into() }
    );
    assert_eq!(ds[0].type_ref, "tr");
    let default = Destination::Mqtt(MqttDestination {
        topic: "default/ds".into(),
        qos: Qos::AtMostOnce,
        retain: true,
        ttl_seconds: Some(60),
    });
    assert_eq!(ds[1].destination, default);
    assert_eq!(ds[2].destination, default);
}

#[test]
fn event_destination_precedence() {
    let r = load(&[
        DEVICE.into(),
        asset(
            "a",
            r#"  deviceRef: { deviceName: dev, endpointName: sse-0 }
  defaultEventsDestinations: [ { target: Mqtt, configuration: { topic: asset/default } } ]
  eventGroups:
    - name: g1
      typeRef: group-type
      defaultDestinations: [ { target: Mqtt, configuration: { topic: group/default } } ]
      events:
        - { name: own, dataSource: x, destinations: [ { target: Mqtt, configuration: { topic: own } } ] }
        - { name: group, dataSource: y, typeRef: own-type }
    - name: g2
      dataSource: /other
      events:
        - { name: asset, dataSource: z }
"#,
        ),
    ]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let g = &r.assets[0].event_groups;
    assert_eq!(g[0].events[0].destination, mqtt("own"));
    assert_eq!(g[0].events[0].type_ref, "group-type");
    assert_eq!(g[0].events[1].destination, mqtt("group/default"));
    assert_eq!(g[0].events[1].type_ref, "own-type");
    assert_eq!(g[1].events[0].destination, mqtt("asset/default"));
    assert_eq!(g[1].data_source, "/other");
}

#[test]
fn disabled_assets_and_assets_of_other_connectors_are_skipped() {
    let r = load(&[
        DEVICE.into(),
        asset(
            "off",
            "  enabled: false\n  deviceRef: { deviceName: nope, endpointName: x }\n",
        ),
        asset(
            "rest",
            "  deviceRef: { deviceName: dev, endpointName: rest }\n  datasets: [ { name: d } ]\n",
        ),
    ]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.assets.is_empty());
}

fn asset_error(spec: &str) -> ResourceError {
    let r = load(&[
        DEVICE.into(),
        asset("bad", spec),
        asset(
            "good",
            "  deviceRef: { deviceName: dev, endpointName: sse-0 }\n  datasets: [ { name: d, destinations: [ { target: Mqtt, configuration: { topic: ok } } ] } ]\n",
        ),
    ]);
    assert_eq!(r.assets.len(), 1, "the good asset keeps running");
    assert_eq!(r.assets[0].name, "good");
    let e = only_error(&r).clone();
    assert_eq!(e.resource, "Asset/bad");
    assert_eq!(e.file, "res.yaml");
    e
}

#[test]
fn asset_errors_name_resource_file_and_problem() {
    let e = asset_error("  deviceRef: { deviceName: ghost, endpointName: sse-0 }\n");
    assert!(
        e.message.contains("unknown device") && e.message.contains("ghost"),
        "{e}"
    );
    let e = asset_error("  deviceRef: { deviceName: dev, endpointName: sse-9 }\n");
    assert!(
        e.message.contains("unknown endpoint") && e.message.contains("sse-9"),
        "{e}"
    );
    let e = asset_error("  deviceRef: 42\n");
    assert!(e.message.contains("invalid Asset"), "{e}");
}

/// Loads an asset with dataset `d` written as `dataset` next to a valid dataset `ok`, and
/// returns the one rejection: the asset itself is served, with `ok`.
fn dataset_rejection(dataset: &str) -> Rejected {
    let r = load(&[
        DEVICE.into(),
        asset(
            "a",
            &format!(
                "  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}\n  datasets:\n    - {{ name: ok, destinations: [ {{ target: Mqtt, configuration: {{ topic: ok }} }} ] }}\n    - {dataset}\n"
            ),
        ),
    ]);
    assert!(r.errors.is_empty(), "not an asset error: {:?}", r.errors);
    let a = &r.assets[0];
    assert_eq!(a.datasets.len(), 1, "{:?}", a.datasets);
    assert_eq!(a.datasets[0].name, "ok");
    assert_eq!(a.rejected_datasets.len(), 1, "{:?}", a.rejected_datasets);
    a.rejected_datasets[0].clone()
}

fn with_dest(dest: &str) -> String {
    format!("{{ name: d, destinations: [ {dest} ] }}")
}

#[test]
fn a_bad_dataset_is_rejected_alone_with_the_problem() {
    let cases = [
        ("{ name: d }".to_string(), "no destination"),
        (
            with_dest("{ target: Mqtt, configuration: { topic: \"\" } }"),
            "empty",
        ),
        (
            with_dest("{ target: Mqtt, configuration: { topic: a/+/b } }"),
            "wildcard",
        ),
        (
            with_dest("{ target: Mqtt, configuration: { topic: a/# } }"),
            "wildcard",
        ),
        (
            with_dest("{ target: Mqtt, configuration: { topic: \"a\\0b\" } }"),
            "NUL",
        ),
        (
            with_dest(&format!(
                "{{ target: Mqtt, configuration: {{ topic: {} }} }}",
                "a".repeat(65_536)
            )),
            "65535",
        ),
        (
            with_dest("{ target: Storage, configuration: { path: /x } }"),
            "Storage destinations are not supported",
        ),
        (
            with_dest("{ target: Mqtt, configuration: { topic: t, qos: Qos2 } }"),
            "Qos2",
        ),
        (
            with_dest("{ target: Mqtt, configuration: { topic: t, ttl: soon } }"),
            "invalid",
        ),
    ];
    for (dataset, want) in cases {
        let r = dataset_rejection(&dataset);
        assert_eq!(r.name, "d");
        assert!(r.message.contains(want), "{want}: {}", r.message);
    }
    let r = dataset_rejection("{ dataSource: /nameless }");
    assert_eq!(r.name, "datasets[1]");
    assert!(r.message.contains("name"), "{}", r.message);
    let r = dataset_rejection(
        &with_dest("{ target: Mqtt, configuration: { topic: t } }").replace("name: d", "name: ok"),
    );
    assert_eq!(r.name, "ok");
    assert!(
        r.message.contains("duplicate dataset name"),
        "{}",
        r.message
    );
}

#[test]
fn a_dataset_on_an_owned_topic_is_rejected_alone_naming_the_rule() {
    for rule in sse_contract::topics::OwnedTopic::ALL {
        let r = dataset_rejection(&with_dest(&format!(
            "{{ target: Mqtt, configuration: {{ topic: {:?} }} }}",
            rule.example()
        )));
        assert_eq!(r.name, "d");
        assert!(
            r.message.contains(&rule.to_string()),
            "{rule:?}: {}",
            r.message
        );
        assert!(r.message.contains(rule.example()), "{}", r.message);
    }
}

#[test]
fn an_event_on_an_owned_topic_is_rejected_alone() {
    let r = load(&[
        DEVICE.into(),
        asset(
            "a",
            r#"  deviceRef: { deviceName: dev, endpointName: sse-0 }
  eventGroups:
    - name: g
      events:
        - { name: ok, dataSource: t, destinations: [ { target: Mqtt, configuration: { topic: ok } } ] }
        - { name: forged, dataSource: t, destinations: [ { target: Mqtt, configuration: { topic: sse-connector/status/asset/a } } ] }
"#,
        ),
    ]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let group = &r.assets[0].event_groups[0];
    assert_eq!(group.events.len(), 1);
    assert_eq!(group.events[0].name, "ok");
    assert_eq!(group.rejected.len(), 1);
    assert_eq!(group.rejected[0].name, "forged");
    let rule = sse_contract::topics::OwnedTopic::Status.to_string();
    assert!(
        group.rejected[0].message.contains(&rule),
        "{}",
        group.rejected[0].message
    );
}

/// Names and paths the events carry into their MQTT properties: a character brokers refuse
/// used to reach the publisher in every event (each refused there, or, before it checked, its
/// broker connection closed); now it is a configuration error of the dataset, event or endpoint.
#[test]
fn a_name_brokers_would_refuse_is_a_configuration_error() {
    let dest = "destinations: [ { target: Mqtt, configuration: { topic: t } } ]";
    for (dataset, want) in [
        (
            format!("{{ name: \"d\\t\", {dest} }}"),
            r#"name "d\t" holds U+0009"#,
        ),
        (format!("{{ name: \"\", {dest} }}"), "name is empty"),
        (
            format!("{{ name: d, dataSource: \"/a\\u0085\", {dest} }}"),
            "dataSource \"/a\\u{85}\" holds U+0085",
        ),
        (
            format!("{{ name: d, typeRef: \"\\uFFFF\", {dest} }}"),
            "typeRef",
        ),
        (
            with_dest("{ target: Mqtt, configuration: { topic: \"a\\tb\" } }"),
            "U+0009",
        ),
    ] {
        let r = dataset_rejection(&dataset);
        assert!(r.message.contains(want), "{want}: {}", r.message);
    }
    let r = load(&[
        DEVICE.into(),
        asset(
            "a",
            &format!(
                "  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}\n  eventGroups:\n    - name: \"g\\u0001\"\n      events: [ {{ name: e, {dest} }} ]\n    - name: h\n      events: [ {{ name: \"\", {dest} }}, {{ name: ok, {dest} }} ]\n"
            ),
        ),
    ]);
    let groups = &r.assets[0].event_groups;
    assert!(
        groups[0].rejected[0].message.contains("event group name"),
        "{:?}",
        groups[0]
    );
    assert!(
        groups[1].rejected[0].message.contains("name is empty"),
        "{:?}",
        groups[1]
    );
    assert_eq!(groups[1].events[0].name, "ok");
    let device = DEVICE.replace("      sse-2:", "      \"sse\\t2\":");
    let r = load(&[device]);
    let e = &r.devices["dev"].rejected_endpoints["sse\t2"];
    assert!(e.contains(r#"endpoint name "sse\t2" holds U+0009"#), "{e}");
    assert!(r.devices["dev"].endpoints.contains_key("sse-0"));
}

#[test]
fn a_bad_event_is_rejected_alone_with_the_problem() {
    let r = load(&[
        DEVICE.into(),
        asset(
            "a",
            r#"  deviceRef: { deviceName: dev, endpointName: sse-0 }
  eventGroups:
    - name: g
      events:
        - { name: ok, dataSource: t, destinations: [ { target: Mqtt, configuration: { topic: ok } } ] }
        - { name: none, dataSource: t }
        - { name: store, dataSource: t, destinations: [ { target: BrokerStateStore, configuration: { key: k } } ] }
        - { name: wild, dataSource: t, destinations: [ { target: Mqtt, configuration: { topic: "a/#" } } ] }
    - name: all-bad
      events: [ { name: x, destinations: [ { target: Mqtt, configuration: { topic: "+" } } ] } ]
"#,
        ),
    ]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let groups = &r.assets[0].event_groups;
    assert_eq!(groups[0].events.len(), 1);
    assert_eq!(groups[0].events[0].name, "ok");
    let rejected: Vec<(&str, &str)> = groups[0]
        .rejected
        .iter()
        .map(|r| (r.name.as_str(), r.message.as_str()))
        .collect();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert_eq!(rejected[0].0, "none");
    assert!(
        rejected[0].1.contains("no destination"),
        "{}",
        rejected[0].1
    );
    assert!(rejected[1].1.contains("cannot target BrokerStateStore"));
    assert!(rejected[2].1.contains("wildcard"));
    assert!(groups[1].events.is_empty());
    assert_eq!(groups[1].rejected.len(), 1);
    // A group whose every event is rejected reads nothing; the first group's stream runs.
    let plans = crate::routing::plan(&r);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].subjects(), ["a/g/ok"]);
}

/// A dataset `g/e`, event `e` of group `g`, and a second group `g` all map to the subject
/// `coll/g/e`: the first keeps it, every later one is rejected naming the subject and its owner.
#[test]
fn events_whose_subject_is_taken_are_rejected_naming_the_owner() {
    let to = "destinations: [ { target: Mqtt, configuration: { topic: t } } ]";
    let r = load(&[
        DEVICE.into(),
        asset(
            "coll",
            &format!(
                r#"  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  datasets: [ {{ name: g/e, dataSource: /readings, {to} }} ]
  eventGroups:
    - {{ name: g, events: [ {{ name: e, dataSource: heartbeat, {to} }}, {{ name: f, {to} }} ] }}
    - {{ name: g, events: [ {{ name: f, {to} }} ] }}
    - {{ name: a/b, events: [ {{ name: c, {to} }} ] }}
    - {{ name: a, events: [ {{ name: b/c, {to} }} ] }}
"#
            ),
        ),
    ]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let a = &r.assets[0];
    assert_eq!(a.datasets.len(), 1);
    let kept: Vec<Vec<&str>> = (a.event_groups.iter())
        .map(|g| g.events.iter().map(|e| e.name.as_str()).collect())
        .collect();
    assert_eq!(kept, [vec!["f"], vec![], vec!["c"], vec![]]);
    let why = |g: usize| a.event_groups[g].rejected[0].message.clone();
    assert!(
        why(0).contains(r#""coll/g/e" is already that of dataset "g/e""#),
        "{}",
        why(0)
    );
    assert!(
        why(1).contains(r#"event "f" of event group "g""#),
        "{}",
        why(1)
    );
    assert!(
        why(3).contains(r#"event "c" of event group "a/b""#),
        "{}",
        why(3)
    );
    let plans = crate::routing::plan(&r);
    let mut subjects: Vec<String> = plans.iter().flat_map(|p| p.subjects()).collect();
    let all = subjects.len();
    subjects.sort();
    subjects.dedup();
    assert_eq!(
        subjects.len(),
        all,
        "every subject served once: {subjects:?}"
    );
}

#[test]
fn many_assets_load_with_duplicates_reported_once_each() {
    let mut docs = vec![DEVICE.to_string()];
    for i in 0..5_000 {
        docs.push(asset(
            &format!("a{i}"),
            "  deviceRef: { deviceName: dev, endpointName: sse-0 }\n",
        ));
    }
    docs.push(asset(
        "a7",
        "  deviceRef: { deviceName: dev, endpointName: sse-0 }\n",
    ));
    let r = load(&docs);
    assert_eq!(r.assets.len(), 5_000);
    assert_eq!(only_error(&r).resource, "Asset/a7");
    assert!(only_error(&r).message.contains("duplicate Asset name"));
}

fn cert_device(x509: &str) -> String {
    format!(
        r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: certdev }}
spec:
  endpoints:
    inbound:
      sse-0:
        endpointType: Microsoft.SSEHttp
        address: https://h
        authentication:
          method: Certificate
          {x509}
"#
    )
}

#[test]
fn certificate_auth_reads_the_three_secret_references() {
    let r = load(&[cert_device(
        "x509Credentials: { certificateSecretName: c/cert, keySecretName: c/key, intermediateCertificatesSecretName: c/chain }",
    )]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        r.devices["certdev"].endpoints["sse-0"].auth,
        Auth::Certificate {
            certificate: SecretRef::parse("c/cert").unwrap(),
            key: SecretRef::parse("c/key").unwrap(),
            intermediates: Some(SecretRef::parse("c/chain").unwrap()),
        }
    );
    let r = load(&[cert_device(
        "x509Credentials: { certificateSecretName: c/cert, keySecretName: c/key }",
    )]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(matches!(
        r.devices["certdev"].endpoints["sse-0"].auth,
        Auth::Certificate {
            intermediates: None,
            ..
        }
    ));
}

#[test]
fn incomplete_certificate_auth_is_an_endpoint_error_and_its_assets_fail() {
    let r = load(&[
        cert_device("x509Credentials: { certificateSecretName: c/cert }"),
        asset(
            "a",
            "  deviceRef: { deviceName: certdev, endpointName: sse-0 }\n  datasets: [ { name: d, destinations: [ { target: Mqtt, configuration: { topic: t } } ] } ]\n",
        ),
    ]);
    // The device itself is fine: the error is its endpoint's.
    let e = &r.devices["certdev"].rejected_endpoints["sse-0"];
    assert!(e.contains("without x509Credentials.keySecretName"), "{e}");
    assert_eq!(only_error(&r).resource, "Asset/a");
    assert!(only_error(&r).message.contains("cannot be served"));
    assert!(r.assets.is_empty());
    let all = r.problems();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1].resource, "Device/certdev");
    assert!(
        all[1].message.starts_with("endpoint sse-0: Certificate"),
        "{}",
        all[1].message
    );
    for (x509, want) in [
        (
            "note: none",
            "Certificate authentication without x509Credentials",
        ),
        (
            "x509Credentials: { certificateSecretName: c/cert, keySecretName: nokey }",
            "not of the form",
        ),
        (
            "x509Credentials: { certificateSecretName: c/cert, keySecretName: c/key, intermediateCertificatesSecretName: ../x }",
            "not of the form",
        ),
    ] {
        let r = load(&[cert_device(x509)]);
        assert!(r.errors.is_empty(), "{x509}: {:?}", r.errors);
        let e = &r.devices["certdev"].rejected_endpoints["sse-0"];
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn secret_references_must_be_secret_slash_key() {
    assert_eq!(
        SecretRef::parse("s/k").unwrap(),
        SecretRef {
            secret: "s".into(),
            key: "k".into()
        }
    );
    for bad in ["", "s", "s/", "/k", "s/k/x", "../k", "s/.."] {
        assert!(SecretRef::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn load_dir_reads_yaml_and_yml_only_and_reports_a_missing_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), DEVICE).unwrap();
    std::fs::write(
            dir.path().join("b.yml"),
            asset(
                "x",
                "  deviceRef: { deviceName: dev, endpointName: sse-0 }\n  datasets: [ { name: d, destinations: [ { target: Mqtt, configuration: { topic: t } } ] } ]\n",
            ),
        )
        .unwrap();
    std::fs::write(dir.path().join("c.txt"), "kind: [broken").unwrap();
    let r = load_dir(dir.path()).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.assets.len(), 1);
    assert!(r.assets[0].file.ends_with("b.yml"));
    let missing = dir.path().join("nope");
    let e = load_dir(&missing).unwrap_err();
    assert!(e.to_string().contains("nope"));
    assert!(e.to_string().ends_with("does not exist"), "{e}");
    // A file given as the directory is named as such, not as missing.
    let e = load_dir(&dir.path().join("a.yaml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "cannot read resources dir {}: not a directory",
            dir.path().join("a.yaml").display()
        )
    );
    assert!(e.is_config(), "exits 64 like a missing one");
}

#[test]
fn a_file_over_the_limit_is_refused_alone_and_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), DEVICE).unwrap();
    let big = format!("# {}\n{DEVICE}", "x".repeat(DEVICE.len()));
    std::fs::write(dir.path().join("big.yaml"), big).unwrap();
    let r = load_dir_limited(dir.path(), DEVICE.len() + 1, &LastGood::default()).unwrap();
    assert_eq!(r.devices.len(), 1);
    let e = only_error(&r);
    assert!(e.file.ends_with("big.yaml"), "{e}");
    assert!(e.message.contains("larger than"), "{e}");
}

/// A file caught half-written (or broken by an edit) keeps serving its last clean version, not
/// the documents before the damage alone: the streams of the rest would close until it is whole.
#[test]
fn a_damaged_file_is_served_as_its_last_version_that_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plant.yaml");
    let spec = "  deviceRef: { deviceName: dev, endpointName: sse-0 }\n  datasets: [ { name: d, destinations: [ { target: Mqtt, configuration: { topic: t } } ] } ]\n";
    let whole = [DEVICE.to_string(), asset("a1", spec), asset("a2", spec)].join("\n---\n");
    let last_good = LastGood::default();
    let load = || load_dir_limited(dir.path(), 1 << 20, &last_good).unwrap();
    let names = |r: &Resources| r.assets.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
    std::fs::write(&path, &whole).unwrap();
    assert_eq!(names(&load()), ["a1", "a2"]);

    // Cut in the middle of the last document, and cut inside a UTF-8 character.
    let cut = whole.len() - spec.len() / 2;
    let mut bytes = format!("{whole}\n# é").into_bytes();
    bytes.pop();
    for damaged in [&whole.as_bytes()[..cut], &bytes] {
        std::fs::write(&path, damaged).unwrap();
        let r = load();
        assert_eq!(names(&r), ["a1", "a2"], "{:#?}", r.errors);
        let e = only_error(&r);
        assert!(e.file.ends_with("plant.yaml"), "{e}");
        assert!(e.message.ends_with(SERVING_LAST_GOOD), "{e}");
    }

    // A new clean version replaces it; a file deleted and made again starts afresh.
    std::fs::write(
        &path,
        [DEVICE.to_string(), asset("a1", spec)].join("\n---\n"),
    )
    .unwrap();
    let r = load();
    assert_eq!((names(&r), r.errors.len()), (vec!["a1".to_string()], 0));
    std::fs::remove_file(&path).unwrap();
    assert!(load().devices.is_empty());
    std::fs::write(&path, &whole[..cut]).unwrap();
    let r = load();
    assert_eq!(names(&r), ["a1"]);
    assert!(!only_error(&r).message.contains(SERVING_LAST_GOOD));
}
