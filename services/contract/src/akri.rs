//! The Akri operator's deployment contract, as far as every service must agree on it: which
//! variable says the operator deployed this connector, and its id. Ingest reads its resources
//! from ADR and the schema service registers with AIO's registry when it did, so both decide
//! it here, the same way.

/// The variable whose presence (non-empty) says the Akri operator deployed this connector: the
/// directory of its allocation files.
pub const RESOURCES_VAR: &str = "ADR_RESOURCES_NAME_MOUNT_PATH";
/// The connector's id (the pod name), distinct per replica; the operator sets it beside
/// [`RESOURCES_VAR`].
pub const CONNECTOR_ID_VAR: &str = "CONNECTOR_ID";

/// Whether the Akri operator deployed this connector (`var` looks a variable up; empty counts
/// as unset).
pub fn deployed(var: impl Fn(&str) -> Option<String>) -> bool {
    var(RESOURCES_VAR).is_some_and(|v| !v.is_empty())
}

/// `CONNECTOR_ID` when the Akri operator deployed this connector and set it, else `None`.
pub fn connector_id(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    if !deployed(&var) {
        return None;
    }
    var(CONNECTOR_ID_VAR).filter(|v| !v.is_empty())
}

/// The MQTT client id of one of the connector's connections (`publisher`, `schema`,
/// `checkpoint`): `{CONNECTOR_ID}-<role>`, so the broker tells them apart and a restarted replica
/// takes its own sessions back.
pub fn client_id(connector_id: &str, role: &str) -> String {
    format!("{connector_id}-{role}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn deployed_only_with_a_non_empty_allocation_directory() {
        assert!(!deployed(env(&[])));
        assert!(!deployed(env(&[
            (RESOURCES_VAR, ""),
            (CONNECTOR_ID_VAR, "p")
        ])));
        assert!(deployed(env(&[(RESOURCES_VAR, "/r")])));
        assert_eq!(connector_id(env(&[(CONNECTOR_ID_VAR, "p")])), None);
        assert_eq!(connector_id(env(&[(RESOURCES_VAR, "/r")])), None);
        assert_eq!(
            connector_id(env(&[(RESOURCES_VAR, "/r"), (CONNECTOR_ID_VAR, "p")])).as_deref(),
            Some("p")
        );
    }
}
