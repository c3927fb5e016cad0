//! `sse-connector` deployed by the Akri operator (ADR_RESOURCES_NAME_MOUNT_PATH and CONNECTOR_ID
//! set) takes its Devices and Assets from Azure Device Registry (the kit's in-test ADR service on
//! a real Mosquitto) for what the allocation files name: an allocated asset starts its stream, an
//! ADR asset update moves its events to the new topic without touching other streams, removing
//! the asset from the allocation closes its stream, and an asset ADR does not know is a resource
//! error while the others flow.

#![allow(clippy::unwrap_used, missing_docs)]

use sse_e2e::akri::{CONNECTOR, Setup, T1, T2, T3, asset};
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
    let moved = asset("/readings", T2);
    s.adr.put_asset("boiler", moved.clone());
    s.adr
        .notify_asset(CONNECTOR, "boiler", moved)
        .await
        .unwrap();
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
