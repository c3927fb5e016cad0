//! Where the Akri operator puts what a connector needs, from the environment it sets: the
//! connector's id (which must be its MQTT client id, since ADR authorises calls by it) and the
//! allocation directory. The contract is present when `ADR_RESOURCES_NAME_MOUNT_PATH` is set;
//! `CONNECTOR_ID` is then required. (The device credential and trust bundle mounts are ingest's
//! secrets and trust directories, through the aliases of its flags.)

use std::path::PathBuf;

/// The connector's id (the pod name), distinct per replica (sse-contract's).
pub use sse_contract::akri::CONNECTOR_ID_VAR;
/// The variable whose presence says the Akri operator deployed this connector (sse-contract's).
pub use sse_contract::akri::RESOURCES_VAR;

/// How the MQTT client id is made from `CONNECTOR_ID`: the SDKs disagree (the .NET connector
/// uses it as it is, the Rust `BaseConnector` appends "0"), so both are offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientIdStyle {
    /// `CONNECTOR_ID` as it is (the contract document and the .NET SDK).
    #[default]
    AsIs,
    /// `CONNECTOR_ID` followed by "0" (the Rust SDK's `BaseConnector`).
    AppendZero,
}

/// The Akri deployment contract, as far as resources go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkriContract {
    /// `CONNECTOR_ID`.
    pub connector_id: String,
    /// The allocation files' directory.
    pub resources_dir: PathBuf,
}

/// Why the contract in the environment cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// The allocation directory is set but the connector id is not.
    #[error("{RESOURCES_VAR} is set but {CONNECTOR_ID_VAR} is not: Akri sets both")]
    NoConnectorId,
}

impl AkriContract {
    /// The contract from the environment (`var` looks a variable up; empty counts as unset):
    /// `None` when the operator did not deploy this connector.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ContractError> {
        // Whether the operator deployed it is sse-contract's rule, which the schema service
        // follows too.
        if !sse_contract::akri::deployed(&var) {
            return Ok(None);
        }
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let resources_dir = get(RESOURCES_VAR).unwrap_or_default();
        let connector_id = get(CONNECTOR_ID_VAR).ok_or(ContractError::NoConnectorId)?;
        Ok(Some(Self {
            connector_id,
            resources_dir: resources_dir.into(),
        }))
    }

    /// The MQTT client id every connection of this connector uses.
    pub fn client_id(&self, style: ClientIdStyle) -> String {
        match style {
            ClientIdStyle::AsIs => self.connector_id.clone(),
            ClientIdStyle::AppendZero => format!("{}0", self.connector_id),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn present_only_when_the_operator_set_the_allocation_directory() {
        assert_eq!(AkriContract::from_env(env(&[])), Ok(None));
        assert_eq!(
            AkriContract::from_env(env(&[(CONNECTOR_ID_VAR, "pod-1"), (RESOURCES_VAR, "")])),
            Ok(None)
        );
        let c = AkriContract::from_env(env(&[
            (RESOURCES_VAR, "/etc/akri/config/adr_resources_names"),
            (CONNECTOR_ID_VAR, "sse-7f9c"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            c.resources_dir,
            std::path::Path::new("/etc/akri/config/adr_resources_names")
        );
        assert_eq!(c.client_id(ClientIdStyle::AsIs), "sse-7f9c");
        assert_eq!(c.client_id(ClientIdStyle::AppendZero), "sse-7f9c0");
    }

    #[test]
    fn the_allocation_directory_without_a_connector_id_is_an_error() {
        let err = AkriContract::from_env(env(&[(RESOURCES_VAR, "/r")])).unwrap_err();
        assert_eq!(err, ContractError::NoConnectorId);
        assert!(err.to_string().contains("CONNECTOR_ID"), "{err}");
    }
}
