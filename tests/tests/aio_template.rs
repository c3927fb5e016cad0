//! deploy/aio, the Akri ConnectorTemplate and connector metadata, against the connector itself:
//! the Akri variables `scripts/aio_check.py` says `sse-connector` reads are the ones its command
//! reads (and the checker finds them all in the Akri contract); every endpoint type the template
//! declares is one ingest serves; and the real `sse-connector`, given only what an Akri pod gets
//! (the contract's variables and mounts), connects over TLS, trusting the mounted CA bundle, to
//! the broker of the mounted `MQTT_CONNECTION_CONFIGURATION`, its ADR client as `CONNECTOR_ID`. The template's own fields and the metadata's
//! schema are checked by `scripts/aio_check.py` and its tests, run by `just deploy-check`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use sse_e2e::broker::Mosquitto;
use sse_e2e::pki::Pki;
use sse_e2e::procs::Service;
use sse_e2e::{eventually, write_file};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The checker's lists of variables: the Akri contract's, those it says the connector reads, and
/// those the image sets because the contract lacks them.
struct CheckerEnv {
    contract: BTreeSet<String>,
    connector: BTreeSet<String>,
    image: BTreeSet<String>,
}

fn checker_env() -> CheckerEnv {
    let out = Command::new("python3")
        .arg(root().join("scripts/aio_check.py"))
        .arg("--env")
        .output()
        .expect("python3 runs (just setup installs what aio_check.py needs)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = |k: &str| {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
    };
    CheckerEnv {
        contract: list("contract"),
        connector: list("connector"),
        image: list("image"),
    }
}

/// Every environment variable `sse-connector` reads: its composed clap command's (hidden ones
/// too), ingest's Azure aliases and the Akri contract of its ADR resource source.
fn connector_env() -> BTreeSet<String> {
    let mut env: BTreeSet<String> = sse_connector::args::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    env.insert(sse_ingest::config::SECRETS_DIR_ALIAS.to_string());
    env.insert(sse_ingest::config::TRUST_DIR_ALIAS.to_string());
    // The Akri contract ingest reads for its ADR resource source.
    env.insert(sse_ingest::akri::contract::RESOURCES_VAR.to_string());
    env.insert(sse_ingest::akri::contract::CONNECTOR_ID_VAR.to_string());
    env
}

#[test]
fn the_akri_variables_the_checker_lists_are_those_the_connector_reads() {
    let CheckerEnv {
        contract,
        connector: listed,
        ..
    } = checker_env();
    let reads = connector_env();
    let unread: Vec<_> = listed.difference(&reads).collect();
    assert!(
        unread.is_empty(),
        "aio_check.py lists {unread:?}, which sse-connector does not read"
    );
    let read_from_contract: BTreeSet<String> = reads.intersection(&contract).cloned().collect();
    assert_eq!(
        read_from_contract, listed,
        "sse-connector reads these Akri contract variables; aio_check.py must list exactly them"
    );
}

#[test]
fn every_endpoint_type_of_the_template_is_one_ingest_serves() {
    let text = std::fs::read_to_string(root().join("deploy/aio/connector-template.yaml")).unwrap();
    let types: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- endpointType:"))
        .map(str::trim)
        .collect();
    assert!(types.contains(&"Microsoft.SSEHttp"), "{types:?}");
    for t in types {
        assert!(
            sse_ingest::resources::is_sse_endpoint_type(t),
            "the template declares {t}, which ingest does not serve"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_starts_on_the_akri_contract_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mount = |rel: &str| dir.path().join(rel).display().to_string();
    // A TLS broker (as aio-broker:18883 is) whose CA only the mounted trust bundle holds.
    let pki = Pki::new().unwrap();
    let server = pki.server(&["127.0.0.1"]).unwrap();
    let chain = format!("{}{}", server.cert_pem, server.chain_pem);
    let cert = write_file(dir.path(), "broker/cert.pem", &chain);
    let key = write_file(dir.path(), "broker/key.pem", &server.key_pem);
    write_file(dir.path(), "broker-ca/ca.crt", &pki.ca_pem);
    let tls = [format!("certfile {cert}"), format!("keyfile {key}")];
    let broker = Mosquitto::start_with(&[
        "log_dest file {dir}/mosquitto.log",
        "log_type all",
        &tls[0],
        &tls[1],
    ])
    .await
    .unwrap();
    // The operator's files: the connection configuration (a keep-alive the connector would not
    // pick itself, to see it was read), an empty ADR resources directory, empty secret mounts.
    write_file(
        dir.path(),
        "config/MQTT_CONNECTION_CONFIGURATION",
        &format!(
            r#"{{"host":"127.0.0.1:{}","keepAliveSeconds":45,"maxInflightMessages":100,"protocol":"mqtt","sessionExpirySeconds":600,"tls":{{"mode":"Enabled"}}}}"#,
            broker.port
        ),
    );
    for d in ["adr", "creds", "resources"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let id = "sse-connector-7f9c2-0";
    let env = [
        ("CONNECTOR_ID", id.to_string()),
        ("CONNECTOR_NAMESPACE", "azure-iot-operations".to_string()),
        ("CONNECTOR_CONFIGURATION_MOUNT_PATH", mount("config")),
        ("ADR_RESOURCES_NAME_MOUNT_PATH", mount("adr")),
        ("DEVICE_ENDPOINT_CREDENTIALS_MOUNT_PATH", mount("creds")),
        (
            "BROKER_TLS_TRUST_BUNDLE_CACERT_MOUNT_PATH",
            mount("broker-ca"),
        ),
        ("BROKER_SAT_MOUNT_PATH", mount("broker-sat")),
        // The image's defaults (deploy/Dockerfile), at test paths (the resources directory is
        // not read: Devices and Assets come from ADR for the allocations, none here).
        ("RESOURCES_DIR", mount("resources")),
        ("SCHEMA_DATA_DIR", mount("schemas")),
    ]
    .map(|(k, v)| (k.to_string(), v));
    // Nothing but the contract's variables and what the image sets.
    let CheckerEnv {
        contract, image, ..
    } = checker_env();
    for (k, _) in &env {
        assert!(
            contract.contains(k) || image.contains(k),
            "{k} reaches no Akri pod"
        );
    }
    let connector = Service::start_isolated("sse-connector", &env)
        .await
        .unwrap();
    let log = broker.dir().join("mosquitto.log");
    // Mosquitto logs each CONNECT with its client id, protocol 5, clean start 0 and keep-alive.
    // ADR authorises by CONNECTOR_ID, so the ADR client takes it and the publisher (with the
    // mounted keep-alive) takes `{CONNECTOR_ID}-publisher`: one id on two connections would
    // have each evict the other.
    let publisher = format!(" as {id}-publisher (p5, c0, k45)");
    let adr = format!(" as {id} (p5,");
    eventually(
        "the publisher's CONNECT with the mounted keep-alive and the ADR client's as CONNECTOR_ID",
        || {
            let found = std::fs::read_to_string(&log)
                .is_ok_and(|t| t.contains(&publisher) && t.contains(&adr));
            async move { found.then_some(()) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nconnector log:\n{}", connector.log_text()));
}
