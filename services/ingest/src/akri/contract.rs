//! Where the Akri operator puts what a connector needs, from the environment it sets: the
//! connector's id (which must be its MQTT client id, since ADR authorises calls by it), the
//! allocation directory, the device credentials and the device trust bundles. The contract is
//! present when `ADR_RESOURCES_NAME_MOUNT_PATH` is set; `CONNECTOR_ID` is then required.

use std::path::{Component, Path, PathBuf};

/// The variable whose presence says the Akri operator deployed this connector.
pub const RESOURCES_VAR: &str = "ADR_RESOURCES_NAME_MOUNT_PATH";
/// The connector's id (the pod name), distinct per replica.
pub const CONNECTOR_ID_VAR: &str = "CONNECTOR_ID";
/// Where device endpoint credentials are mounted.
pub const CREDENTIALS_VAR: &str = "DEVICE_ENDPOINT_CREDENTIALS_MOUNT_PATH";
/// Where device endpoint trust bundles are mounted (absent when no device has a trust list).
pub const TRUST_VAR: &str = "DEVICE_ENDPOINT_TLS_TRUST_BUNDLE_CA_CERT_MOUNT_PATH";

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

/// The Akri deployment contract, as far as resources and credentials go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkriContract {
    /// `CONNECTOR_ID`.
    pub connector_id: String,
    /// The allocation files' directory.
    pub resources_dir: PathBuf,
    /// The device endpoint credentials' mount, if any.
    pub credentials_dir: Option<PathBuf>,
    /// The device endpoint trust bundles' mount, if any.
    pub trust_dir: Option<PathBuf>,
}

/// Why the contract in the environment cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// The allocation directory is set but the connector id is not.
    #[error("{RESOURCES_VAR} is set but {CONNECTOR_ID_VAR} is not: Akri sets both")]
    NoConnectorId,
    /// A credential or trust list name would leave its mount.
    #[error("secret name {0:?}: must be a relative path inside the mount, without '..'")]
    EscapingName(String),
}

impl AkriContract {
    /// The contract from the environment (`var` looks a variable up; empty counts as unset):
    /// `None` when the operator did not deploy this connector.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ContractError> {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let Some(resources_dir) = get(RESOURCES_VAR) else {
            return Ok(None);
        };
        let connector_id = get(CONNECTOR_ID_VAR).ok_or(ContractError::NoConnectorId)?;
        Ok(Some(Self {
            connector_id,
            resources_dir: resources_dir.into(),
            credentials_dir: get(CREDENTIALS_VAR).map(PathBuf::from),
            trust_dir: get(TRUST_VAR).map(PathBuf::from),
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

/// `name` (a secret name or trust list from a Device) joined to `mount`, refused when it is
/// absolute or climbs out, as the Rust SDK refuses it.
pub fn inside(mount: &Path, name: &str) -> Result<PathBuf, ContractError> {
    let rel = Path::new(name);
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    if name.is_empty() || !plain {
        return Err(ContractError::EscapingName(name.to_string()));
    }
    Ok(mount.join(rel))
}

/// The files that may hold the trust bundle of `device`'s `endpoint`: the sources disagree, so
/// both layouts are looked for. The contract document puts one directory per trust list at
/// `{mount}/{trust list}`; the .NET SDK reads one file at `{mount}/{device}_{endpoint}`.
pub fn trust_bundle_candidates(
    mount: &Path,
    trust_list: Option<&str>,
    device: &str,
    endpoint: &str,
) -> Result<Vec<PathBuf>, ContractError> {
    let mut out = Vec::new();
    if let Some(list) = trust_list {
        out.push(inside(mount, list)?);
    }
    out.push(inside(mount, &format!("{device}_{endpoint}"))?);
    Ok(out)
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
            (CREDENTIALS_VAR, "/etc/akri/secrets/device_endpoint_auth"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            c.resources_dir,
            Path::new("/etc/akri/config/adr_resources_names")
        );
        assert_eq!(c.trust_dir, None);
        assert_eq!(c.client_id(ClientIdStyle::AsIs), "sse-7f9c");
        assert_eq!(c.client_id(ClientIdStyle::AppendZero), "sse-7f9c0");
    }

    #[test]
    fn the_allocation_directory_without_a_connector_id_is_an_error() {
        let err = AkriContract::from_env(env(&[(RESOURCES_VAR, "/r")])).unwrap_err();
        assert_eq!(err, ContractError::NoConnectorId);
        assert!(err.to_string().contains("CONNECTOR_ID"), "{err}");
    }

    #[test]
    fn names_stay_inside_their_mount() {
        let m = Path::new("/etc/akri/secrets/device_endpoint_auth");
        assert_eq!(inside(m, "creds/user").unwrap(), m.join("creds/user"));
        assert_eq!(inside(m, "d_e_password").unwrap(), m.join("d_e_password"));
        for bad in ["", "/etc/shadow", "../x", "a/../../x", "./a"] {
            assert_eq!(
                inside(m, bad),
                Err(ContractError::EscapingName(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn both_trust_bundle_layouts_are_looked_for() {
        let m = Path::new("/t");
        assert_eq!(
            trust_bundle_candidates(m, Some("plant-ca"), "press", "sse").unwrap(),
            [m.join("plant-ca"), m.join("press_sse")]
        );
        assert_eq!(
            trust_bundle_candidates(m, None, "press", "sse").unwrap(),
            [m.join("press_sse")]
        );
        assert!(trust_bundle_candidates(m, Some("../ca"), "press", "sse").is_err());
    }
}
