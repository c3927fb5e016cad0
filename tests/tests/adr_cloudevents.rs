//! In ADR mode (`sse-connector` deployed by the Akri operator, the kit's in-test ADR service on a
//! real Mosquitto) the CloudEvents properties name devices and assets as Microsoft's connector
//! does: `source` by the device's `externalDeviceId` where it differs from its uuid, `subject` by
//! the asset's `externalAssetId` where it differs from its uuid, `aiodeviceref` /
//! `aioassetref` by the uuids (the names without one), `type` with the dataset's `typeRef`.
//! The rule is one: resource files carrying the same ids get the same properties. And like
//! Microsoft's connector it registers its schemas with AIO's schema registry (the kit's
//! in-test one), on the publisher's broker as `{CONNECTOR_ID}-schema`, by default.

#![allow(clippy::unwrap_used, missing_docs)]

use sha2::{Digest, Sha256};
use sse_contract::topics::SCHEMA_REGISTRY_PUT;
use sse_e2e::akri::{CONNECTOR, Setup, T1, T2, T3, asset_with_ids, device_with_ids};
use sse_e2e::mqtt::Received;
use sse_e2e::procs::run_to_exit_with;
use sse_e2e::schema_registry::NAMESPACE;
use sse_e2e::source::demo_feed;
use sse_e2e::stack::Stack;

const DEVICE_UUID: &str = "5f0a6c1e-3b1d-4c6e-9a47-2f0d8e6b7c11";
const TAGGED_UUID: &str = "9b1e0f3a-77c2-4d2b-8a5e-61c0d4e2f900";
const SAME_UUID: &str = "0c3d9e55-1a2b-4c3d-8e9f-aabbccddeeff";

/// The identity properties of a message: source, subject, type and the two refs.
fn identity(m: &Received) -> [Option<&str>; 5] {
    ["source", "subject", "type", "aiodeviceref", "aioassetref"].map(|k| m.user(k))
}

/// The first message received on `topic`.
fn first_on(s: &Setup, topic: &str) -> Received {
    s.sub.all().into_iter().find(|m| m.topic == topic).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adr_ids_name_the_device_and_asset_in_the_cloud_events() {
    let s = Setup::start().await;
    let base = s.source.base_url();
    // Only allocation makes the connector read ADR: these replace what the setup put there.
    s.adr
        .put_device("dev", "sse", device_with_ids(&base, DEVICE_UUID, "press-7"));
    s.adr.put_asset(
        "tagged",
        asset_with_ids("/readings", T1, TAGGED_UUID, "line-7", "dtmi:e2e:Reading;1"),
    );
    // An external id equal to the uuid names the asset by its name, as in Azure.
    s.adr.put_asset(
        "same",
        asset_with_ids("/readings", T2, SAME_UUID, SAME_UUID, "dtmi:e2e:Reading;1"),
    );
    // `alarms` (the setup's) has no ids: its name stands in for them.
    s.allocate(&["tagged", "same", "alarms"]);
    for topic in [T1, T2, T3] {
        s.more_on(topic, 0, 1).await;
    }

    let device_ref = format!("ms-aio:{DEVICE_UUID}/sse");
    let tagged = first_on(&s, T1);
    assert_eq!(
        identity(&tagged),
        [
            Some("ms-aio:press-7/readings"),
            Some("line-7/all"),
            Some("DataSet/dtmi:e2e:Reading;1"),
            Some(device_ref.as_str()),
            Some(format!("ms-aio:{TAGGED_UUID}").as_str()),
        ],
        "{:?}",
        tagged.props.user_properties
    );
    let same = first_on(&s, T2);
    assert_eq!(
        identity(&same),
        [
            Some("ms-aio:press-7/readings"),
            Some("same/all"),
            Some("DataSet/dtmi:e2e:Reading;1"),
            Some(device_ref.as_str()),
            Some(format!("ms-aio:{SAME_UUID}").as_str()),
        ],
        "{:?}",
        same.props.user_properties
    );
    let alarms = first_on(&s, T3);
    assert_eq!(
        identity(&alarms),
        [
            Some("ms-aio:press-7/alerts"),
            Some("alarms/all"),
            Some("DataSet"),
            Some(device_ref.as_str()),
            Some("ms-aio:alarms"),
        ],
        "{:?}",
        alarms.props.user_properties
    );
    drop(s.connector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_akri_contract_schemas_go_to_the_aio_schema_registry() {
    // No registry flag: `--registry auto` and the Akri contract pick AIO's registry (the
    // setup's), reached on the publisher's broker.
    let s = Setup::start().await;
    s.allocate(&["alarms"]);
    let tagged = s
        .sub
        .wait_until("an event on T3 with a dataschema", |m| {
            m.iter()
                .any(|r| r.topic == T3 && r.user("dataschema").is_some())
        })
        .await
        .unwrap();
    let dataschema = tagged
        .iter()
        .find_map(|r| (r.topic == T3).then(|| r.user("dataschema")).flatten())
        .unwrap()
        .to_string();

    let puts: Vec<_> = s
        .registry
        .seen()
        .into_iter()
        .filter(|r| r.topic == SCHEMA_REGISTRY_PUT)
        .collect();
    assert!(!puts.is_empty(), "no put reached the registry");
    let client = format!("{CONNECTOR}-schema");
    for put in &puts {
        assert_eq!(put.user("__srcId"), Some(client.as_str()), "{put:?}");
        assert_eq!(put.payload["schemaType"], "MessageSchema");
    }
    // The event names a schema the registry stored: its name is the registry's (the SHA-256 of
    // the content put), its namespace the registry's too.
    let names: Vec<String> = puts
        .iter()
        .map(|p| {
            let content = p.payload["schemaContent"].as_str().unwrap();
            let name: String = Sha256::digest(content.as_bytes())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            let version = p.payload["version"].as_str().unwrap();
            format!("aio-sr://{NAMESPACE}/{name}:{version}")
        })
        .collect();
    assert!(names.contains(&dataschema), "{dataschema} not in {names:?}");
    drop(s.connector);
}

#[tokio::test]
async fn sse_schema_alone_under_the_akri_contract_without_a_broker_exits_64_naming_the_flag() {
    // `--registry auto` picks AIO's registry under the contract; sse-schema alone has no
    // publisher broker to reach it on.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let env = [
        ("ADR_RESOURCES_NAME_MOUNT_PATH", data.as_str()),
        ("CONNECTOR_ID", CONNECTOR),
    ];
    let args = ["--data-dir", &data, "--listen", "127.0.0.1:0"];
    let out = run_to_exit_with("sse-schema", &args, &env).await.unwrap();
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(
        out.stderr.contains("--registry-mqtt-url") && out.stderr.contains("--registry auto"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_files_with_adr_ids_get_the_same_cloud_events() {
    let resources = |base: &str| {
        format!(
            r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: dev }}
spec:
  uuid: {DEVICE_UUID}
  externalDeviceId: press-7
  endpoints:
    inbound:
      sse-0: {{ endpointType: Microsoft.SSEHttp, address: "{base}/ws" }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: tagged }}
spec:
  uuid: {TAGGED_UUID}
  externalAssetId: line-7
  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  datasets:
    - {{ name: all, dataSource: /readings, typeRef: "dtmi:e2e:Reading;1",
        destinations: [ {{ target: Mqtt, configuration: {{ topic: e2e/file/t1 }} }} ] }}
"#
        )
    };
    let feed = demo_feed(std::time::Duration::from_millis(50));
    let (stack, sub) = Stack::start(feed, resources).await.unwrap();
    let got = sub
        .wait_until("an event on e2e/file/t1", |m| {
            m.iter().any(|r| r.topic == "e2e/file/t1")
        })
        .await
        .unwrap();
    let m = got.iter().find(|r| r.topic == "e2e/file/t1").unwrap();
    assert_eq!(
        identity(m),
        [
            Some("ms-aio:press-7/readings"),
            Some("line-7/all"),
            Some("DataSet/dtmi:e2e:Reading;1"),
            Some(format!("ms-aio:{DEVICE_UUID}/sse-0").as_str()),
            Some(format!("ms-aio:{TAGGED_UUID}").as_str()),
        ],
        "{:?}",
        m.props.user_properties
    );
    drop(stack);
}
