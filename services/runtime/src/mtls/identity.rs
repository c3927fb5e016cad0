//! Who a caller is: the names (DNS and URI SANs) of its certificate, mapped to the roles of the
//! access table by the identities the operator configured.

use rustls_pki_types::CertificateDer;
use sse_contract::access::Role;

/// sse-ingest's identity unless configured.
pub const DEFAULT_INGEST: &str = "sse-ingest";
/// sse-schema's identity unless configured.
pub const DEFAULT_SCHEMA: &str = "sse-schema";
/// sse-publisher's identity unless configured.
pub const DEFAULT_PUBLISHER: &str = "sse-publisher";
/// The console's identity unless configured.
pub const DEFAULT_CONSOLE: &str = "sse-console";

/// The certificate identity (a DNS or URI SAN) that names each role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identities {
    /// `(role, identity)` for every role.
    pub by_role: Vec<(Role, String)>,
}

impl Identities {
    /// The default identity of every role.
    pub fn defaults() -> Self {
        let ids = [
            DEFAULT_INGEST,
            DEFAULT_SCHEMA,
            DEFAULT_PUBLISHER,
            DEFAULT_CONSOLE,
        ];
        Self {
            by_role: Role::ALL.into_iter().zip(ids.map(String::from)).collect(),
        }
    }

    /// The roles a caller whose certificate carries `names` holds (usually one).
    pub fn roles(&self, names: &[String]) -> Vec<Role> {
        self.by_role
            .iter()
            .filter(|(_, id)| names.iter().any(|n| n.eq_ignore_ascii_case(id)))
            .map(|(r, _)| *r)
            .collect()
    }

    /// The identity configured for `role`.
    pub fn of(&self, role: Role) -> &str {
        self.by_role
            .iter()
            .find(|(r, _)| *r == role)
            .map_or("", |(_, id)| id.as_str())
    }
}

/// The DNS and URI subject alternative names of an end-entity certificate (empty when it does
/// not parse: rustls has verified it by then, so that means no usable name).
pub fn names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return Vec::new();
    };
    ee.valid_dns_names()
        .chain(ee.valid_uri_names())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_dns_and_uri_names() {
        let mut p = rcgen::CertificateParams::new(vec!["sse-schema".to_string()]).unwrap();
        p.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://cluster.local/ns/x/sa/console".try_into().unwrap(),
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        let names = names(cert.der());
        assert_eq!(
            names,
            ["sse-schema", "spiffe://cluster.local/ns/x/sa/console"]
        );
        let ids = Identities {
            by_role: vec![
                (Role::Ingest, "sse-ingest".into()),
                (Role::Schema, "SSE-Schema".into()),
                (
                    Role::Console,
                    "spiffe://cluster.local/ns/x/sa/console".into(),
                ),
            ],
        };
        assert_eq!(ids.roles(&names), [Role::Schema, Role::Console]);
        assert!(ids.roles(&["other".into()]).is_empty());
        assert_eq!(ids.of(Role::Ingest), "sse-ingest");
    }
}
