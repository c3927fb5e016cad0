//! `sse-connector` deployed by the Akri operator (ADR_RESOURCES_NAME_MOUNT_PATH and CONNECTOR_ID
//! set) takes its Devices and Assets from Azure Device Registry (the kit's in-test ADR service on
//! a real Mosquitto) for what the allocation files name: an allocated asset starts its stream, an
//! ADR asset update moves its events to the new topic without touching other streams, removing
//! the asset from the allocation closes its stream, and an asset ADR does not know is a resource
//! error while the others flow. A device's two allocated endpoints both stream; an update or a
//! new allocation reads only what changed; a deallocated endpoint or asset has its notifications
//! turned off; credentials and trust lists are read from either layout of the Akri mounts.

#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::{Value, json};
use sse_e2e::adr::AdrRequest;
use sse_e2e::akri::{ALLOCATION, CONNECTOR, Setup, T1, T2, T3, asset, asset_on, device};
use sse_e2e::auth::{PASSWORD, USER, feed, tls_source};
use sse_e2e::pki::Pki;
use sse_e2e::source::{SseSource, basic_auth};
use sse_e2e::{eventually, grpcurl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocated_assets_stream_follow_adr_updates_and_stop_when_unallocated() {
    let s = Setup::start().await;

    // a. The allocation file starts both assets' streams, read from ADR.
    s.allocate(&["boiler", "alarms"]);
    s.more_on(T1, 0, 3).await;
    s.more_on(T3, 0, 3).await;
    let reqs = s.adr.requests();
    for command in [
        "getDevice",
        "getAsset",
        "setNotificationPreferenceForAssetUpdates",
    ] {
        assert!(
            reqs.iter()
                .any(|r| r.command == command && r.connector == CONNECTOR),
            "{command} by {CONNECTOR}: {:?}",
            reqs.iter().map(|r| &r.command).collect::<Vec<_>>()
        );
    }
    assert_eq!(s.requests("alerts"), 1, "one connection to /alerts");

    // b. ADR moves boiler to T2 and says so: its events follow, alarms' stream is untouched.
    s.update_asset("boiler", asset("/readings", T2)).await;
    s.more_on(T2, 0, 3).await;
    let t3 = s.count(T3);
    s.more_on(T3, t3, 3).await;
    assert_eq!(s.requests("alerts"), 1, "alarms' stream did not reconnect");
    assert_eq!(s.open("alerts"), 1);

    // c. Unallocating boiler closes its stream; alarms keeps flowing on its connection.
    s.allocate(&["alarms"]);
    eventually("boiler's stream closed", || {
        let closed = s.open("readings") == 0;
        async move { closed.then_some(()) }
    })
    .await
    .unwrap();
    let t3 = s.count(T3);
    s.more_on(T3, t3, 3).await;
    assert_eq!(s.requests("alerts"), 1, "alarms' stream did not reconnect");
    drop(s.connector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_adr_does_not_know_is_a_resource_error_while_the_others_flow() {
    let s = Setup::start().await;
    s.allocate(&["alarms", "ghost"]);
    s.more_on(T3, 0, 3).await;
    let addr = s.connector.addr.to_string();
    let listed = eventually("ghost in ListStreams' resource errors", || {
        let addr = addr.clone();
        async move {
            let v = grpcurl::call_json(&addr, None, &["sseconnector.v1.IngestService/ListStreams"])
                .await
                .ok()?;
            v["resourceErrors"]
                .to_string()
                .contains("Asset/ghost")
                .then_some(v)
        }
    })
    .await
    .unwrap();
    let errors = listed["resourceErrors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{listed}");
    assert!(
        errors[0].to_string().contains("getAsset"),
        "names ADR's refusal: {listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_two_allocated_endpoints_streams_from_both() {
    let s = Setup::start().await;
    // ADR's getDevice answers with the endpoint named in its topic only (the kit's service).
    let mut dev = device(&s.source.base_url());
    dev["endpoints"]["inbound"]["sse2"] = dev["endpoints"]["inbound"]["sse"].clone();
    s.adr.put_device_endpoints("dev", dev);
    s.adr
        .put_asset("alarms2", asset_on("dev", "sse2", "/alerts", T3));
    s.allocate(&["boiler"]);
    s.allocate_file("dev_sse2", &["alarms2"]);
    s.more_on(T1, 0, 3).await;
    s.more_on(T3, 0, 3).await;
    let mut asked: Vec<String> = (s.adr.requests_of("getDevice").into_iter())
        .map(|r| r.endpoint)
        .collect();
    asked.sort();
    asked.dedup();
    assert_eq!(
        asked,
        ["sse", "sse2"],
        "one getDevice per allocated endpoint"
    );
}

/// The asset names of `getAsset` requests, in order.
fn asset_gets(reqs: &[AdrRequest]) -> Vec<String> {
    reqs.iter()
        .map(|r| {
            r.json()["assetName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_or_a_new_allocation_reads_only_what_changed() {
    let s = Setup::start().await;
    s.allocate(&["boiler"]);
    s.more_on(T1, 0, 3).await;
    assert_eq!(asset_gets(&s.adr.requests_of("getAsset")), ["boiler"]);

    // The notification carries the new definition: applied without a getAsset.
    s.update_asset("boiler", asset("/readings", T2)).await;
    s.more_on(T2, 0, 3).await;
    assert_eq!(asset_gets(&s.adr.requests_of("getAsset")), ["boiler"]);

    // A new allocation reads the new asset only.
    s.allocate(&["boiler", "alarms"]);
    s.more_on(T3, 0, 3).await;
    assert_eq!(
        asset_gets(&s.adr.requests_of("getAsset")),
        ["boiler", "alarms"]
    );
    assert_eq!(s.adr.requests_of("getDevice").len(), 1);
}

/// The notification preferences set so far: (asset or `None` for the device, preference).
fn preferences(s: &Setup) -> Vec<(Option<String>, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    s.adr
        .requests()
        .iter()
        .filter_map(|r| {
            let body = r.json()["notificationPreferenceRequest"].clone();
            match r.command.as_str() {
                "setNotificationPreferenceForDeviceUpdates" => Some((None, text(&body))),
                "setNotificationPreferenceForAssetUpdates" => Some((
                    Some(text(&body["assetName"])),
                    text(&body["notificationPreference"]),
                )),
                _ => None,
            }
        })
        .collect()
}

/// Waits until `n` preference requests `pref` were sent for `asset` (`None`: the device).
async fn preference_sent(s: &Setup, asset: Option<&str>, pref: &str, n: usize) {
    let what = format!("{n} {pref} for {asset:?}");
    eventually(&what, || {
        let sent = preferences(s)
            .iter()
            .filter(|(a, p)| a.as_deref() == asset && p == pref)
            .count();
        async move { (sent == n).then_some(()) }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deallocation_turns_notifications_off_and_reallocation_on_again() {
    let s = Setup::start().await;
    s.allocate(&["boiler", "alarms"]);
    s.more_on(T1, 0, 3).await;
    s.more_on(T3, 0, 3).await;
    preference_sent(&s, Some("boiler"), "On", 1).await;

    s.allocate(&["alarms"]);
    preference_sent(&s, Some("boiler"), "Off", 1).await;
    s.allocate(&["boiler", "alarms"]);
    preference_sent(&s, Some("boiler"), "On", 2).await;

    // The whole endpoint leaves: its device and both assets are turned off.
    s.unallocate_file(ALLOCATION);
    preference_sent(&s, None, "Off", 1).await;
    preference_sent(&s, Some("alarms"), "Off", 1).await;
    preference_sent(&s, Some("boiler"), "Off", 2).await;
    let offs = s
        .adr
        .requests_of("setNotificationPreferenceForAssetUpdates");
    let off = offs
        .iter()
        .find(|r| r.json()["notificationPreferenceRequest"]["notificationPreference"] == "Off")
        .unwrap();
    assert_eq!(
        off.json(),
        json!({"notificationPreferenceRequest":
            {"assetName": "boiler", "notificationPreference": "Off"}}),
    );
    assert_eq!((off.device.as_str(), off.endpoint.as_str()), ("dev", "sse"));
}

/// The device `sec` with one endpoint `sse` at `address` authenticating with `authentication`.
fn secured_device(address: &str, authentication: Value, trust_list: Option<&str>) -> Value {
    let mut ep = json!({
        "address": address, "endpointType": "Microsoft.SSEHttp",
        "authentication": authentication,
        // The test source is plain http: Basic over it must be allowed explicitly.
        "additionalConfiguration": "{\"allowInsecureCredentials\": true}"
    });
    if let Some(t) = trust_list {
        ep["trustSettings"] = json!({"trustList": t});
    }
    json!({"enabled": true, "version": 1, "endpoints": {"inbound": {"sse": ep}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_are_read_from_the_unified_secretsync_files() {
    // Only `{mount}/{device}_{endpoint}_{username|password}`: no `creds/...` files.
    let mount = tempfile::tempdir().unwrap();
    std::fs::write(mount.path().join("sec_sse_username"), format!("{USER}\n")).unwrap();
    std::fs::write(mount.path().join("sec_sse_password"), PASSWORD).unwrap();
    let creds = mount.path().display().to_string();
    let env = [("DEVICE_ENDPOINT_CREDENTIALS_MOUNT_PATH", creds.as_str())];
    let s = Setup::start_with(&[], &env).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, basic_auth(USER, PASSWORD, feed("sec"))).unwrap();
    let basic = json!({"method": "UsernamePassword", "usernamePasswordCredentials":
        {"usernameSecretName": "creds/user", "passwordSecretName": "creds/password"}});
    let dev = secured_device(&format!("{}/ws", source.base_url()), basic, None);
    s.adr.put_device("sec", "sse", dev);
    s.adr.put_asset("reader", asset_on("sec", "sse", "/x", T1));
    s.allocate_file("sec_sse", &["reader"]);
    s.more_on(T1, 0, 1).await;
    assert!(
        source
            .seen()
            .iter()
            .all(|r| r.header("authorization").is_some())
    );
    let log = s.connector.log_text();
    assert!(!log.contains(PASSWORD), "the password reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trust_list_is_read_from_the_endpoints_trust_bundle_file() {
    // Only .NET's `{mount}/{device}_{endpoint}` file: no `plant-ca/` folder.
    let pki = Pki::new().unwrap();
    let leaf = pki.server(&["127.0.0.1"]).unwrap();
    let source = tls_source(&pki, &leaf, false, feed("tls")).await;
    let mount = tempfile::tempdir().unwrap();
    std::fs::write(mount.path().join("sec_sse"), &pki.ca_pem).unwrap();
    let trust = mount.path().display().to_string();
    let env = [(
        "DEVICE_ENDPOINT_TLS_TRUST_BUNDLE_CA_CERT_MOUNT_PATH",
        trust.as_str(),
    )];
    let s = Setup::start_with(&[], &env).await;
    let anonymous = json!({"method": "Anonymous"});
    let address = format!("{}/ws", source.https_url());
    let dev = secured_device(&address, anonymous, Some("plant-ca"));
    s.adr.put_device("sec", "sse", dev);
    s.adr.put_asset("reader", asset_on("sec", "sse", "/x", T1));
    s.allocate_file("sec_sse", &["reader"]);
    s.more_on(T1, 0, 1).await;
    assert!(source.tls_errors().is_empty(), "{:?}", source.tls_errors());
}

#[tokio::test]
async fn an_adr_concurrency_out_of_range_exits_64_naming_the_flag() {
    for bin in ["sse-ingest", "sse-connector"] {
        for n in ["0", "65"] {
            let out = sse_e2e::procs::run_to_exit(bin, &["--adr-concurrency", n])
                .await
                .unwrap();
            assert_eq!(out.code, Some(64), "{bin} {n}: {}", out.stderr);
            // Named with its range: the flag exists and refuses the value.
            let named = format!("invalid value '{n}' for '--adr-concurrency");
            assert!(out.stderr.contains(&named), "{bin} {n}: {}", out.stderr);
            assert!(out.stderr.contains("1..=64"), "{bin} {n}: {}", out.stderr);
        }
    }
}
