//! Which devices may use which secrets. Without it, whoever can edit a Device resource can point
//! any secret under `--secrets-dir` at any address and read it there. The allow-list is one
//! YAML file (`--secret-access`), a mapping of secret names (the `<secret>` of a `<secret>/<key>`
//! reference) to the devices allowed to use them:
//!
//! ```yaml
//! weather-creds: [weather-station]      # only this device
//! plant-client-cert: [press-1, press-2]
//! shared-token: ["*"]                    # any device
//! ```
//!
//! An endpoint naming a secret its device is not allowed is refused like any invalid endpoint:
//! a configuration error in its status (naming the device and the secret, never a value), its
//! assets failing, no secret read and no connection made. The file is read with the resources
//! (bounded like them) and re-read when it changes; a bad file at start is a configuration
//! error, and on a reload the previous allow-list stays.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_yaml_ng::Value;

use crate::error::Error;
use crate::resources::{Auth, Endpoint, ResourceError, Resources, SecretRef};

/// The device entry that allows every device.
pub const ANY_DEVICE: &str = "*";

/// The parsed allow-list: secret name to the devices allowed to use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretAccess {
    by_secret: BTreeMap<String, BTreeSet<String>>,
}

impl SecretAccess {
    /// Parses the file's text; errors name the entry and the problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value = crate::resources::yaml::parse(text).map_err(|e| format!("not YAML: {e}"))?;
        let map = match value {
            // An empty file allows nothing.
            Value::Null => return Ok(Self::default()),
            Value::Mapping(m) => m,
            _ => return Err("expected a mapping of <secret>: [<device>, ...]".to_owned()),
        };
        let mut by_secret = BTreeMap::new();
        for (key, devices) in map {
            let Value::String(secret) = key else {
                return Err("every key must be a secret name (a string)".to_owned());
            };
            if !plain_name(&secret) {
                return Err(format!(
                    "{secret:?} is not a secret name: use the <secret> part of <secret>/<key>"
                ));
            }
            let Value::Sequence(list) = devices else {
                return Err(format!(
                    "secret {secret:?}: expected a list of device names"
                ));
            };
            let mut names = BTreeSet::new();
            for d in list {
                match d {
                    Value::String(name) if !name.is_empty() => names.insert(name),
                    _ => {
                        return Err(format!(
                            "secret {secret:?}: every device must be a non-empty name (or \"*\")"
                        ));
                    }
                };
            }
            by_secret.insert(secret, names);
        }
        Ok(Self { by_secret })
    }

    /// Whether `device` may use `secret`.
    pub fn allows(&self, device: &str, secret: &str) -> bool {
        self.by_secret
            .get(secret)
            .is_some_and(|d| d.contains(device) || d.contains(ANY_DEVICE))
    }

    /// The first secret reference of `auth` that `device` may not use, as the endpoint's error.
    pub fn check(&self, device: &str, auth: &Auth) -> Result<(), String> {
        self.check_refs(
            device,
            secret_refs(auth)
                .into_iter()
                .map(|(f, r)| (f.to_owned(), r)),
        )
    }

    /// [`Self::check`] for a whole endpoint: its authentication and the secrets its
    /// `additionalConfiguration` references (tokens, headers, proxy credentials).
    pub fn check_endpoint(&self, device: &str, endpoint: &Endpoint) -> Result<(), String> {
        self.check(device, &endpoint.auth)?;
        let refs = endpoint.options.secret_refs();
        self.check_refs(
            device,
            refs.into_iter()
                .map(|(f, r)| (format!("additionalConfiguration.{f}"), r)),
        )
    }

    fn check_refs<'a>(
        &self,
        device: &str,
        refs: impl Iterator<Item = (String, &'a SecretRef)>,
    ) -> Result<(), String> {
        for (field, r) in refs {
            if !self.allows(device, &r.secret) {
                return Err(format!(
                    "secret {:?} ({field}) is not allowed for device {device:?} by the --secret-access file",
                    r.secret
                ));
            }
        }
        Ok(())
    }
}

/// A secret name as `SecretRef` accepts one (also the rule for the Akri mounts' unified file
/// names, `akri::mounts`).
pub(crate) fn plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\'])
}

/// Every secret an endpoint's authentication reads, with the field naming it.
pub(crate) fn secret_refs(auth: &Auth) -> Vec<(&'static str, &SecretRef)> {
    match auth {
        Auth::Anonymous => Vec::new(),
        Auth::UsernamePassword { username, password } => vec![
            ("usernameSecretName", username),
            ("passwordSecretName", password),
        ],
        Auth::Certificate {
            certificate,
            key,
            intermediates,
        } => {
            let mut refs = vec![
                ("certificateSecretName", certificate),
                ("keySecretName", key),
            ];
            if let Some(i) = intermediates {
                refs.push(("intermediateCertificatesSecretName", i));
            }
            refs
        }
    }
}

/// Refuses every endpoint whose device may not use one of its secrets (moved to the device's
/// rejected endpoints), and the assets reading those endpoints (moved to the errors), as the
/// resource validation does for any endpoint that cannot be served.
pub fn enforce(access: &SecretAccess, res: &mut Resources) {
    let mut refused: BTreeMap<(String, String), String> = BTreeMap::new();
    for d in res.devices.values_mut() {
        let denied: Vec<(String, String)> = d
            .endpoints
            .iter()
            .filter_map(|(ep, e)| {
                access
                    .check_endpoint(&d.name, e)
                    .err()
                    .map(|m| (ep.clone(), m))
            })
            .collect();
        for (ep, message) in denied {
            d.endpoints.remove(&ep);
            d.rejected_endpoints.insert(ep.clone(), message.clone());
            refused.insert((d.name.clone(), ep), message);
        }
    }
    if refused.is_empty() {
        return;
    }
    for a in std::mem::take(&mut res.assets) {
        match refused.get(&(a.device.clone(), a.endpoint.clone())) {
            Some(m) => res.errors.push(ResourceError {
                resource: format!("Asset/{}", a.name),
                file: a.file.clone(),
                message: format!(
                    "endpoint {:?} of device {:?} cannot be served: {m}",
                    a.endpoint, a.device
                ),
            }),
            None => res.assets.push(a),
        }
    }
}

/// The `--secret-access` file and the allow-list read from it last.
#[derive(Debug)]
pub struct AccessFile {
    path: Option<PathBuf>,
    max_bytes: usize,
    current: Mutex<Current>,
}

#[derive(Debug, Default)]
struct Current {
    access: Option<Arc<SecretAccess>>,
    /// The last reload's error, so that a bad file is reported once, not at every rescan.
    error: Option<String>,
}

impl AccessFile {
    /// Reads the file (at most `max_bytes`); a bad one is a configuration error naming it.
    /// Without a file, every device may use every secret, as before there was one: said once,
    /// loudly, when there is a secrets dir.
    pub fn open(
        path: Option<PathBuf>,
        max_bytes: usize,
        secrets_dir: Option<&Path>,
    ) -> Result<Self, Error> {
        let access = match &path {
            Some(p) => Some(Arc::new(read(p, max_bytes).map_err(Error::Config)?)),
            None => {
                if let Some(dir) = secrets_dir {
                    tracing::warn!(secrets_dir = %dir.display(), "no --secret-access file: every device may use every secret in the secrets dir");
                }
                None
            }
        };
        Ok(Self {
            path,
            max_bytes,
            current: Mutex::new(Current {
                access,
                error: None,
            }),
        })
    }

    /// The file, if one is configured.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the file; a bad one is reported (once) and the previous allow-list stays.
    /// `None`: no file, no restriction.
    pub fn refresh(&self) -> Option<Arc<SecretAccess>> {
        let path = self.path.as_deref()?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        match read(path, self.max_bytes) {
            Ok(a) => {
                current.error = None;
                current.access = Some(Arc::new(a));
            }
            Err(e) => {
                if current.error.as_ref() != Some(&e) {
                    tracing::warn!(error = %e, "cannot reload the secret access file; the previous allow-list stays");
                }
                current.error = Some(e);
            }
        }
        current.access.clone()
    }
}

/// Checks the file before starting: outside the resources directory (whoever may edit resources
/// must not edit the list of what they may use), readable and valid.
pub fn check_file(path: &Path, resources_dir: &Path, max_bytes: usize) -> Result<(), String> {
    if let (Ok(file), Ok(dir)) = (path.canonicalize(), resources_dir.canonicalize())
        && file.starts_with(&dir)
    {
        return Err(format!(
            "secret access file {} (--secret-access) is inside the resources directory {}: keep it where resource editors cannot write",
            path.display(),
            resources_dir.display()
        ));
    }
    read(path, max_bytes).map(|_| ())
}

/// Reads and parses the file (at most `max_bytes`), errors naming it.
pub fn read(path: &Path, max_bytes: usize) -> Result<SecretAccess, String> {
    let what = format!("secret access file {} (--secret-access)", path.display());
    let text =
        crate::resources::read_limited(path, max_bytes).map_err(|e| format!("{what}: {e}"))?;
    SecretAccess::parse(&text).map_err(|e| format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretRef {
        SecretRef::parse(s).unwrap()
    }

    #[test]
    fn devices_use_only_the_secrets_listed_for_them() {
        let a = SecretAccess::parse("creds: [dev-a, dev-b]\nshared: ['*']\nnobody: []\n").unwrap();
        assert!(a.allows("dev-a", "creds") && a.allows("dev-b", "creds"));
        assert!(!a.allows("dev-c", "creds"));
        assert!(a.allows("anyone", "shared"));
        assert!(!a.allows("dev-a", "nobody") && !a.allows("dev-a", "unlisted"));
        let basic = Auth::UsernamePassword {
            username: secret("creds/user"),
            password: secret("other/password"),
        };
        let e = a.check("dev-a", &basic).unwrap_err();
        assert_eq!(
            e,
            "secret \"other\" (passwordSecretName) is not allowed for device \"dev-a\" by the --secret-access file"
        );
        let cert = Auth::Certificate {
            certificate: secret("shared/cert"),
            key: secret("shared/key"),
            intermediates: Some(secret("creds/chain")),
        };
        assert!(a.check("dev-a", &cert).is_ok());
        let e = a.check("dev-c", &cert).unwrap_err();
        assert!(e.contains("intermediateCertificatesSecretName"), "{e}");
        assert!(a.check("dev-c", &Auth::Anonymous).is_ok());
        assert_eq!(SecretAccess::parse("").unwrap(), SecretAccess::default());
    }

    #[test]
    fn a_bad_file_is_an_error_naming_the_entry() {
        for (text, expected) in [
            ("[a, b]", "expected a mapping"),
            ("creds: dev-a", "secret \"creds\": expected a list"),
            ("creds: [dev-a, 3]", "secret \"creds\": every device"),
            ("creds: [\"\"]", "every device must be a non-empty name"),
            ("a/b: [dev]", "\"a/b\" is not a secret name"),
            ("..: [dev]", "is not a secret name"),
            ("1: [dev]", "every key must be a secret name"),
            ("creds: [dev-a", "not YAML"),
            ("creds: [a]\ncreds: [b]", "not YAML"),
        ] {
            let e = SecretAccess::parse(text).unwrap_err();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_file_is_bounded_and_a_bad_reload_keeps_the_previous_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.yaml");
        std::fs::write(&path, "creds: [dev-a]\n").unwrap();
        let e = AccessFile::open(Some(path.clone()), 5, None).unwrap_err();
        assert!(e.is_config());
        assert!(e.to_string().contains("access.yaml"), "{e}");
        assert!(e.to_string().contains("larger than 5 bytes"), "{e}");
        let file = AccessFile::open(Some(path.clone()), 1024, None).unwrap();
        assert!(file.refresh().unwrap().allows("dev-a", "creds"));
        std::fs::write(&path, "creds: {").unwrap();
        assert!(file.refresh().unwrap().allows("dev-a", "creds"));
        std::fs::write(&path, "creds: [dev-b]\n").unwrap();
        let now = file.refresh().unwrap();
        assert!(now.allows("dev-b", "creds") && !now.allows("dev-a", "creds"));
        let none = AccessFile::open(None, 1024, None).unwrap();
        assert!(none.refresh().is_none());
        let e = AccessFile::open(Some(dir.path().join("missing")), 1024, None).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn the_file_must_live_outside_the_resources_directory() {
        let dir = tempfile::tempdir().unwrap();
        let resources = dir.path().join("resources");
        std::fs::create_dir_all(&resources).unwrap();
        let inside = resources.join("access.yaml");
        let outside = dir.path().join("access.yaml");
        for p in [&inside, &outside] {
            std::fs::write(p, "creds: [dev-a]\n").unwrap();
        }
        let e = check_file(&inside, &resources, 1024).unwrap_err();
        assert!(e.contains("inside the resources directory"), "{e}");
        check_file(&outside, &resources, 1024).unwrap();
        std::fs::write(&outside, "creds: dev-a").unwrap();
        let e = check_file(&outside, &resources, 1024).unwrap_err();
        assert!(e.contains("expected a list"), "{e}");
    }

    #[test]
    fn enforcing_refuses_the_endpoint_and_its_assets_only() {
        let device = |name: &str, auth: &str| {
            format!(
                "---\napiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Device\nmetadata: {{ name: {name} }}\nspec:\n  endpoints:\n    inbound:\n      sse-0: {{ endpointType: Microsoft.SSEHttp, address: \"https://h/\", authentication: {auth} }}\n"
            )
        };
        let asset = |name: &str, dev: &str| {
            format!(
                "---\napiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Asset\nmetadata: {{ name: {name} }}\nspec:\n  deviceRef: {{ deviceName: {dev}, endpointName: sse-0 }}\n  datasets:\n    - {{ name: d, dataSource: /x, destinations: [ {{ target: Mqtt, configuration: {{ topic: t }} }} ] }}\n"
            )
        };
        let basic = "{ method: UsernamePassword, usernamePasswordCredentials: { usernameSecretName: creds/user, passwordSecretName: creds/password } }";
        let text = [
            device("allowed", basic),
            device("refused", basic),
            device("open", "{ method: Anonymous }"),
            asset("a-allowed", "allowed"),
            asset("a-refused", "refused"),
            asset("a-open", "open"),
        ]
        .concat();
        let mut res = crate::resources::load_texts([("r.yaml", text.as_str())]);
        assert!(res.problems().is_empty(), "{:?}", res.problems());
        enforce(&SecretAccess::parse("creds: [allowed]").unwrap(), &mut res);
        let assets: Vec<&str> = res.assets.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(assets, ["a-allowed", "a-open"]);
        let refused = &res.devices["refused"];
        assert!(refused.endpoints.is_empty());
        assert!(refused.rejected_endpoints["sse-0"].contains("device \"refused\""));
        let problems = res.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.resource == "Asset/a-refused" && p.message.contains("secret \"creds\"")),
            "{problems:?}"
        );
    }

    /// Secrets named in `additionalConfiguration` (a token, a header) go through the same
    /// allow-list as ADR's secret names, and the error names the option.
    #[test]
    fn secrets_of_the_endpoint_options_are_checked_too() {
        let device = |name: &str, config: &str| {
            format!(
                "---\napiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Device\nmetadata: {{ name: {name} }}\nspec:\n  endpoints:\n    inbound:\n      sse-0: {{ endpointType: Microsoft.SSEHttp, address: \"https://h/\", additionalConfiguration: '{config}' }}\n"
            )
        };
        let text = [
            device(
                "bearer",
                r#"{"authentication": {"method": "Bearer", "token": {"secretRef": "tokens/t"}}}"#,
            ),
            device(
                "header",
                r#"{"headers": {"x-api-key": {"secretRef": "keys/k"}}}"#,
            ),
        ]
        .concat();
        let mut res = crate::resources::load_texts([("r.yaml", text.as_str())]);
        assert!(res.problems().is_empty(), "{:?}", res.problems());
        enforce(
            &SecretAccess::parse("tokens: [bearer]\nkeys: [bearer]").unwrap(),
            &mut res,
        );
        assert_eq!(res.devices["bearer"].endpoints.len(), 1);
        let e = &res.devices["header"].rejected_endpoints["sse-0"];
        assert!(
            e.contains("secret \"keys\" (additionalConfiguration.headers.x-api-key)"),
            "{e}"
        );
    }
}
