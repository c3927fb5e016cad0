//! Where ingest's Devices and Assets come from (issue #26): YAML files in `--resources`, or Azure
//! Device Registry (ADR) for the endpoints and assets the Akri operator allocated this connector.
//! Chosen once at start from `--resource-source` and the Akri contract in the environment.

use sse_runtime::mqtt::{Broker, BrokerAddress};

use crate::adr::{AdrSettings, client_settings};
use crate::akri::contract::{AkriContract, ContractError};
use crate::config::Config;
use crate::error::Error;

/// The `--resource-source` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ResourceSource {
    /// The YAML files in `--resources`.
    Files,
    /// ADR, for what the Akri operator allocated (its contract must be in the environment).
    Adr,
    /// ADR when the Akri contract is in the environment, else the files.
    #[default]
    Auto,
}

/// The ADR source as configured: the allocation contract and the client reaching ADR.
#[derive(Debug, Clone)]
pub struct AdrSource {
    /// Where the operator writes the allocations, and the connector's id.
    pub contract: AkriContract,
    /// The ADR client's broker, client id and patience.
    pub client: AdrSettings,
    /// Re-report period of unchanged runtime health (`--adr-health-interval`).
    pub health_interval: std::time::Duration,
}

/// The Akri contract as read from the environment by [`Config::with_aliases`]: `None` when it
/// was not looked up, else what `AkriContract::from_env` found.
pub type ContractLookup = Option<Result<Option<AkriContract>, ContractError>>;

/// The ADR source `config` asks for, `None` for the files; a configuration error (exit 64)
/// naming the flag when ADR is asked for and cannot be reached.
pub fn resolve(config: &Config) -> Result<Option<AdrSource>, Error> {
    check_health_interval(config)?;
    let contract = match (&config.akri_contract, config.resource_source) {
        (_, ResourceSource::Files) => return Ok(None),
        (Some(Err(e)), _) => return Err(Error::Config(format!("--resource-source: {e}"))),
        (Some(Ok(Some(c))), _) => c.clone(),
        (_, ResourceSource::Auto) => return Ok(None),
        (_, ResourceSource::Adr) => {
            return Err(Error::Config(format!(
                "--resource-source adr (RESOURCE_SOURCE) needs the Akri contract: {} and {} are not set",
                crate::akri::contract::RESOURCES_VAR,
                crate::akri::contract::CONNECTOR_ID_VAR,
            )));
        }
    };
    let broker = adr_broker(config)?;
    let client_id = contract.client_id(config.adr_client_id_style);
    Ok(Some(AdrSource {
        contract,
        client: AdrSettings::new(client_settings(broker, client_id)),
        health_interval: config.adr_health_interval,
    }))
}

/// `--adr-health-interval` follows the SDK's rule (checked whatever the source, so a bad value
/// fails at once rather than when the Akri operator first deploys the connector).
fn check_health_interval(config: &Config) -> Result<(), Error> {
    crate::adr::health::HealthCache::new(config.adr_health_interval)
        .map(drop)
        .map_err(|e| Error::Config(format!("--adr-health-interval (ADR_HEALTH_INTERVAL): {e}")))
}

/// The broker ADR is reached on: `--adr-broker` with the broker credential flags, else the
/// default `sse-connector` sets (the publisher's broker).
fn adr_broker(config: &Config) -> Result<Broker, Error> {
    let Some(url) = config.adr_broker.as_deref() else {
        return config.publisher_broker.clone().ok_or_else(|| {
            Error::Config(
                "--adr-broker (ADR_BROKER) is required with the ADR resource source".to_string(),
            )
        });
    };
    let address = BrokerAddress::parse(url)
        .map_err(|e| Error::Config(format!("--adr-broker (ADR_BROKER) {url:?}: {e}")))?;
    let mut broker = Broker::new(address);
    config.own_broker_flags(&mut broker)?;
    Ok(broker)
}

/// Reads the Akri contract for [`Config::with_aliases`].
pub fn lookup(env: impl Fn(&str) -> Option<String>) -> ContractLookup {
    Some(AkriContract::from_env(env))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// The flags `args`, with an environment holding `env` only.
    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        let dir = std::env::temp_dir().display().to_string();
        let mut all = vec!["sse-ingest", "--resources", &dir];
        all.extend_from_slice(args);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::try_parse_from(all)
            .unwrap()
            .with_aliases(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    const AKRI: [(&str, &str); 2] = [
        (
            "ADR_RESOURCES_NAME_MOUNT_PATH",
            "/etc/akri/config/adr_resources_names",
        ),
        ("CONNECTOR_ID", "sse-7f9c"),
    ];

    fn config_error(c: Config) -> String {
        let e = c.settings().unwrap_err();
        assert!(e.is_config(), "{e}");
        e.to_string()
    }

    #[test]
    fn auto_reads_adr_only_under_the_akri_contract() {
        assert!(config(&[], &[]).settings().unwrap().adr.is_none());
        let adr = config(&["--adr-broker", "mqtt://aio-broker:18883"], &AKRI)
            .settings()
            .unwrap()
            .adr
            .unwrap();
        assert_eq!(adr.client.client.client_id, "sse-7f9c");
        assert_eq!(adr.client.client.broker.address.port, 18883);
        let files = config(&["--resource-source", "files"], &AKRI);
        assert!(files.settings().unwrap().adr.is_none());
    }

    /// Every connection of an Akri pod is named after CONNECTOR_ID, the checkpoint store's too.
    #[test]
    fn the_checkpoint_store_is_named_after_the_connector_under_akri() {
        use crate::checkpoint::StoreConfig;
        let store = ["--checkpoint-store", "mqtt://b:1883"];
        let id = |c: Config| match c.checkpoint_store().unwrap() {
            StoreConfig::Mqtt { client_id, .. } => client_id,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            id(config(&store, &AKRI)).as_deref(),
            Some("sse-7f9c-checkpoint")
        );
        assert_eq!(id(config(&store, &[])), None, "a random id outside Akri");
    }

    #[test]
    fn the_client_id_style_appends_zero() {
        let c = config(
            &[
                "--adr-broker=mqtt://b:1883",
                "--adr-client-id-style=append-zero",
            ],
            &AKRI,
        );
        let adr = c.settings().unwrap().adr.unwrap();
        assert_eq!(adr.client.client.client_id, "sse-7f9c0");
    }

    #[test]
    fn bad_combinations_are_configuration_errors_naming_the_flag() {
        let e = config_error(config(&["--resource-source", "adr"], &[]));
        assert!(
            e.contains("--resource-source") && e.contains("CONNECTOR_ID"),
            "{e}"
        );
        let e = config_error(config(&[], &AKRI));
        assert!(e.contains("--adr-broker"), "{e}");
        let e = config_error(config(&["--adr-broker", "http://x"], &AKRI));
        assert!(e.contains("--adr-broker"), "{e}");
        let no_id = [AKRI[0]];
        let e = config_error(config(&["--adr-broker=mqtt://b"], &no_id));
        assert!(
            e.contains("--resource-source") && e.contains("CONNECTOR_ID"),
            "{e}"
        );
    }

    #[test]
    fn the_health_interval_defaults_to_the_sdks_and_refuses_less_than_60_s() {
        let adr = config(&["--adr-broker=mqtt://b"], &AKRI)
            .settings()
            .unwrap();
        let interval = adr.adr.unwrap().health_interval;
        assert_eq!(interval, crate::adr::health::INTERVAL_DEFAULT);
        let e = config_error(config(&["--adr-health-interval=59s"], &[]));
        assert!(
            e.contains("--adr-health-interval") && e.contains("60 s"),
            "{e}"
        );
        let c = config(
            &["--adr-broker=mqtt://b", "--adr-health-interval=1m"],
            &AKRI,
        );
        assert_eq!(
            c.settings().unwrap().adr.unwrap().health_interval,
            std::time::Duration::from_secs(60)
        );
    }

    #[test]
    fn the_adr_source_needs_no_resources_directory() {
        let c = Config::try_parse_from([
            "sse-ingest",
            "--resources=/no/such/dir",
            "--adr-broker=mqtt://b",
        ])
        .unwrap()
        .with_aliases(|k| {
            AKRI.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        });
        assert!(c.settings().unwrap().adr.is_some());
    }
}
