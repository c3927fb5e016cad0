//! The second layouts of the Akri device mounts (reference §5), which the SDKs use besides ours:
//!
//! - credentials (`DEVICE_ENDPOINT_CREDENTIALS_MOUNT_PATH`): without unified secretsync a
//!   reference `<secret>/<key>` is the file `{mount}/{secret}/{key}` (our layout); with it the
//!   files are `{mount}/{device}_{endpoint}_{kind}`, `kind` one of `username`, `password`,
//!   `certificate`, `intermediatecertificates`, `certificatekey`;
//! - trust lists (`DEVICE_ENDPOINT_TLS_TRUST_BUNDLE_CA_CERT_MOUNT_PATH`): the contract's folder
//!   `{mount}/{trustList}` (our layout), or .NET's file `{mount}/{device}_{endpoint}`.
//!
//! With the ADR resource source our layout is used when its file or folder exists, else the
//! endpoint's own file. That file's name is made from the device's and the endpoint's names,
//! never from what a definition says, so an endpoint can only reach its own device's files; the
//! names must make one plain file name that no other device's name can make (a device name has
//! no `_`, as ADR's names have none), else there is no fallback.

use std::path::{Path, PathBuf};

use crate::resources::SecretRef;

/// Which credential of an endpoint a unified secretsync file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// `usernameSecretName`.
    Username,
    /// `passwordSecretName`.
    Password,
    /// `certificateSecretName`.
    Certificate,
    /// `intermediateCertificatesSecretName`.
    IntermediateCertificates,
    /// `keySecretName`.
    CertificateKey,
}

impl CredentialKind {
    /// The file name's suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Password => "password",
            Self::Certificate => "certificate",
            Self::IntermediateCertificates => "intermediatecertificates",
            Self::CertificateKey => "certificatekey",
        }
    }
}

/// One device endpoint whose own files the Akri mounts may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFiles {
    prefix: String,
}

impl EndpointFiles {
    /// The files of `device`'s `endpoint`; an error naming the problem when the names cannot
    /// make a file name of that endpoint alone (empty, `.`, `..`, a `/` or `\`, or a `_` in the
    /// device name, which would make another device's name).
    pub fn new(device: &str, endpoint: &str) -> Result<Self, String> {
        // The rule of a secret name in the allow-list: one plain path component.
        let plain = crate::secret_access::plain_name;
        if !plain(device) || device.contains('_') || device.starts_with('.') {
            return Err(format!(
                "device name {device:?} cannot name an Akri mount file"
            ));
        }
        if !plain(endpoint) {
            return Err(format!(
                "endpoint name {endpoint:?} cannot name an Akri mount file"
            ));
        }
        Ok(Self {
            prefix: format!("{device}_{endpoint}"),
        })
    }

    /// The unified secretsync file name of credential `kind`.
    pub fn credential(&self, kind: CredentialKind) -> String {
        format!("{}_{}", self.prefix, kind.suffix())
    }

    /// The .NET layout's trust bundle file name.
    pub fn trust_file(&self) -> &str {
        &self.prefix
    }
}

/// Where secret `r` (credential `kind`) is read under `dir`: `{dir}/{secret}/{key}` when it
/// exists or when there is no `unified` endpoint, else the endpoint's unified file (blocking:
/// call it where the secret is read).
pub fn credential_path(
    dir: &Path,
    r: &SecretRef,
    unified: Option<(&EndpointFiles, CredentialKind)>,
) -> PathBuf {
    let ours = dir.join(&r.secret).join(&r.key);
    match unified {
        Some((ep, kind)) if !ours.exists() => dir.join(ep.credential(kind)),
        _ => ours,
    }
}

/// Where a trust list is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustPath {
    /// A folder of PEM files: `{dir}/{trustList}`.
    Folder(PathBuf),
    /// One PEM file: `{dir}/{device}_{endpoint}`.
    File(PathBuf),
}

/// Where trust list `list` is read under `dir`: its folder when present or when there is no
/// endpoint file to fall back to, else the endpoint's file (blocking).
pub fn trust_path(dir: &Path, list: &str, endpoint: Option<&EndpointFiles>) -> TrustPath {
    let folder = dir.join(list);
    match endpoint {
        Some(ep) if !folder.is_dir() => TrustPath::File(dir.join(ep.trust_file())),
        _ => TrustPath::Folder(folder),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_mount_or_make_another_devices_file_are_refused() {
        for (d, e) in [
            ("..", "sse"),
            ("dev", ".."),
            ("a/b", "sse"),
            ("dev", "s/e"),
            ("dev", "s\\e"),
            ("", "sse"),
            ("dev", ""),
            ("de_v", "sse"),
            (".hidden", "sse"),
        ] {
            let err = EndpointFiles::new(d, e).unwrap_err();
            assert!(
                err.contains("cannot name an Akri mount file"),
                "{d} {e}: {err}"
            );
        }
        let ep = EndpointFiles::new("press", "sse_main").unwrap();
        assert_eq!(
            ep.credential(CredentialKind::CertificateKey),
            "press_sse_main_certificatekey"
        );
        assert_eq!(ep.trust_file(), "press_sse_main");
    }

    #[test]
    fn a_secret_file_is_read_where_it_exists_else_from_the_unified_layout() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let r = SecretRef::parse("creds/user").unwrap();
        let ep = EndpointFiles::new("dev", "sse").unwrap();
        let unified = Some((&ep, CredentialKind::Username));
        assert_eq!(credential_path(d, &r, unified), d.join("dev_sse_username"));
        // Files only: without an endpoint there is no fallback.
        assert_eq!(credential_path(d, &r, None), d.join("creds/user"));
        std::fs::create_dir(d.join("creds")).unwrap();
        std::fs::write(d.join("creds/user"), "u").unwrap();
        assert_eq!(credential_path(d, &r, unified), d.join("creds/user"));
    }

    #[test]
    fn a_trust_list_is_its_folder_when_present_else_the_endpoints_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ep = EndpointFiles::new("dev", "sse").unwrap();
        assert_eq!(
            trust_path(d, "plant-ca", Some(&ep)),
            TrustPath::File(d.join("dev_sse"))
        );
        assert_eq!(
            trust_path(d, "plant-ca", None),
            TrustPath::Folder(d.join("plant-ca"))
        );
        std::fs::create_dir(d.join("plant-ca")).unwrap();
        assert_eq!(
            trust_path(d, "plant-ca", Some(&ep)),
            TrustPath::Folder(d.join("plant-ca"))
        );
    }
}
