//! Which CAs verify an endpoint: system roots, the trust bundle directory and the endpoint's
//! trust list, read into one root store at each connection attempt.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};

use crate::akri::mounts::{self, EndpointFiles, TrustPath};

/// Where the CAs that verify endpoints come from, for every endpoint.
#[derive(Debug, Clone)]
pub struct TrustSources {
    /// Directory of per-endpoint trust lists: `<dir>/<trustList>/*`.
    pub trust_dir: Option<PathBuf>,
    /// Directory whose PEM files are trusted for every endpoint.
    pub trust_bundle: Option<PathBuf>,
    /// Whether the system's root CAs are trusted too.
    pub system_roots: bool,
}

impl Default for TrustSources {
    fn default() -> Self {
        Self {
            trust_dir: None,
            trust_bundle: None,
            system_roots: true,
        }
    }
}

/// The roots for one endpoint: system roots (when on), every certificate of the trust bundle
/// directory, and of the endpoint's trust list (its folder, else the `akri` endpoint's file).
/// `None` when that leaves no root at all.
pub(super) fn build_verifier(
    trust: &TrustSources,
    trust_list: Option<&str>,
    akri: Option<&EndpointFiles>,
) -> Result<Option<Arc<WebPkiServerVerifier>>, String> {
    // The common case, system roots only, shares one verifier (they are read once per process).
    if trust.system_roots && trust.trust_bundle.is_none() && trust_list.is_none() {
        static SYSTEM: std::sync::OnceLock<Option<Arc<WebPkiServerVerifier>>> =
            std::sync::OnceLock::new();
        return Ok(SYSTEM
            .get_or_init(|| {
                let roots = sse_runtime::tls::system_roots();
                if roots.is_empty() {
                    return None;
                }
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    sse_runtime::tls::provider(),
                )
                .build()
                .ok()
            })
            .clone());
    }
    let mut roots = if trust.system_roots {
        sse_runtime::tls::system_roots()
    } else {
        RootCertStore::empty()
    };
    if let Some(dir) = &trust.trust_bundle {
        let what = format!("trust bundle {}", dir.display());
        for f in pem_files(dir, &what)? {
            add_certs(&mut roots, &f, &what)?;
        }
    }
    if let Some(list) = trust_list {
        let what = format!("trust list {list}");
        let base = trust
            .trust_dir
            .as_deref()
            .ok_or_else(|| format!("{what}: no trust dir is configured"))?;
        add_trust_list(&mut roots, mounts::trust_path(base, list, akri), &what)?;
    }
    match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), sse_runtime::tls::provider())
        .build()
    {
        Ok(v) => Ok(Some(v)),
        Err(VerifierBuilderError::NoRootAnchors) => Ok(None),
        Err(e) => Err(format!("trust: {e}")),
    }
}

/// Adds the certificates of a trust list: every file of its folder, or its one file.
pub(super) fn add_trust_list(
    roots: &mut RootCertStore,
    at: TrustPath,
    what: &str,
) -> Result<(), String> {
    match at {
        TrustPath::Folder(dir) => {
            let files = pem_files(&dir, what)?;
            if files.is_empty() {
                return Err(format!("{what}: no certificate in {}", dir.display()));
            }
            for f in files {
                add_certs(roots, &f, what)?;
            }
            Ok(())
        }
        TrustPath::File(file) if !file.is_file() => Err(format!(
            "{what}: neither its folder nor the endpoint's file {} is there",
            file.display()
        )),
        TrustPath::File(file) => add_certs(roots, &file, what),
    }
}

/// The certificate files of a trust directory, sorted; hidden entries skipped.
pub(super) fn pem_files(dir: &Path, what: &str) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{what}: cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        // Kubernetes mounts keep bookkeeping entries (`..data`) beside the files.
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
                && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

pub(super) fn add_certs(roots: &mut RootCertStore, file: &Path, what: &str) -> Result<(), String> {
    for c in sse_runtime::tls::load_certs(file).map_err(|e| format!("{what}: {e}"))? {
        roots
            .add(c)
            .map_err(|e| format!("{what}: {}: {e}", file.display()))?;
    }
    Ok(())
}
