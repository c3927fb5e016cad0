//! mTLS between the services in tests: each service's certificate files (rcgen, from the kit's
//! [`Pki`]), the flags that turn mTLS on, and grpcurl over TLS with a chosen client identity.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::pki::{Leaf, Pki};

/// One identity's files, as a service or grpcurl reads them.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The CA bundle it trusts (PEM).
    pub ca: PathBuf,
    /// Its certificate and the intermediate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl Identity {
    /// Writes `leaf` (with its chain) and the CA bundle `ca_pem` under `dir/<name>/`, each file
    /// replaced atomically (a rename, as kubelet swaps a Secret's files).
    pub fn write(dir: &Path, name: &str, leaf: &Leaf, ca_pem: &str) -> anyhow::Result<Self> {
        let d = dir.join(name);
        std::fs::create_dir_all(&d)?;
        let me = Self {
            ca: d.join("ca.crt"),
            cert: d.join("tls.crt"),
            key: d.join("tls.key"),
        };
        me.rotate(leaf, ca_pem)?;
        Ok(me)
    }

    /// A new service certificate of `pki` for `name` (and `127.0.0.1`), written under
    /// `dir/<name>/` with `ca_pem` as the bundle it trusts.
    pub fn issue(dir: &Path, pki: &Pki, name: &str, ca_pem: &str) -> anyhow::Result<Self> {
        Self::write(dir, name, &service_leaf(pki, name)?, ca_pem)
    }

    /// Replaces the files with `leaf` and `ca_pem`: bundle, then certificate, then key.
    pub fn rotate(&self, leaf: &Leaf, ca_pem: &str) -> anyhow::Result<()> {
        let chain = format!("{}{}", leaf.cert_pem, leaf.chain_pem);
        for (path, text) in [
            (&self.ca, ca_pem),
            (&self.cert, chain.as_str()),
            (&self.key, leaf.key_pem.as_str()),
        ] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, path)?;
        }
        Ok(())
    }

    /// The flags that give a service this identity (mTLS on).
    pub fn flags(&self) -> Vec<String> {
        let p = |p: &PathBuf| p.display().to_string();
        vec![
            "--grpc-tls-ca".into(),
            p(&self.ca),
            "--grpc-tls-cert".into(),
            p(&self.cert),
            "--grpc-tls-key".into(),
            p(&self.key),
        ]
    }
}

/// A service's certificate: its identity and `127.0.0.1` (the tests dial addresses).
pub fn service_leaf(pki: &Pki, identity: &str) -> anyhow::Result<Leaf> {
    pki.service(&[identity, "127.0.0.1"])
}

/// How grpcurl connects.
#[derive(Debug, Clone)]
pub enum Client<'a> {
    /// Plaintext (`-plaintext`).
    Plain,
    /// TLS trusting `ca`, presenting no certificate.
    NoCert {
        /// The CA bundle.
        ca: &'a Path,
    },
    /// TLS with this identity.
    As(&'a Identity),
}

/// What grpcurl did.
#[derive(Debug)]
pub struct Outcome {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr (the gRPC status of a failed call: `Code: PermissionDenied`, ...).
    pub stderr: String,
}

impl From<std::process::Output> for Outcome {
    fn from(out: std::process::Output) -> Self {
        Self {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs grpcurl against `addr` as `client`, with `data` as the request, and returns what it
/// did whatever its exit code.
pub async fn grpcurl(
    addr: &str,
    client: Client<'_>,
    data: Option<&str>,
    args: &[&str],
) -> anyhow::Result<Outcome> {
    let mut cmd = tokio::process::Command::new("grpcurl");
    match client {
        Client::Plain => {
            cmd.arg("-plaintext");
        }
        Client::NoCert { ca } => {
            cmd.arg("-cacert").arg(ca);
        }
        Client::As(id) => {
            cmd.arg("-cacert")
                .arg(&id.ca)
                .arg("-cert")
                .arg(&id.cert)
                .arg("-key")
                .arg(&id.key);
        }
    }
    if let Some(d) = data {
        cmd.arg("-d").arg(d);
    }
    let out = cmd
        .arg("-max-time")
        .arg("20")
        .arg(addr)
        .args(args)
        .output()
        .await
        .context("cannot run grpcurl: install it with `just setup`")?;
    Ok(Outcome::from(out))
}

/// `grpc.health.v1.Health/Check` of `service` on `addr` in plaintext, as the kubelet's probe
/// asks it: with the health proto given to grpcurl, since a health-only port has no reflection.
pub async fn health_check(addr: &str, service: &str) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let protoset = dir.path().join("health.protoset");
    std::fs::write(&protoset, tonic_health::pb::FILE_DESCRIPTOR_SET)?;
    let out = tokio::process::Command::new("grpcurl")
        .arg("-plaintext")
        .arg("-protoset")
        .arg(&protoset)
        .arg("-d")
        .arg(format!(r#"{{"service":"{service}"}}"#))
        .arg(addr)
        .arg("grpc.health.v1.Health/Check")
        .output()
        .await
        .context("cannot run grpcurl: install it with `just setup`")?;
    Ok(Outcome::from(out))
}

/// A lone `sse-ingest` under mTLS serving the resources API over `resources` (no schema service:
/// the resource calls need none), and the console and schema identities to call it with.
pub struct LoneIngest {
    /// The running service.
    pub service: crate::procs::Service,
    /// The operator's identity (`sse-console`): may write.
    pub console: Identity,
    /// A peer service's identity (`sse-schema`): may read, not write.
    pub schema: Identity,
}

impl LoneIngest {
    /// Issues the identities under `dir/tls` and starts the service.
    pub async fn start(dir: &Path, resources: &Path) -> anyhow::Result<Self> {
        let pki = Pki::new()?;
        let tls = dir.join("tls");
        let id = |name: &str| Identity::issue(&tls, &pki, name, &pki.ca_pem);
        let (me, console, schema) = (id("sse-ingest")?, id("sse-console")?, id("sse-schema")?);
        let mut args = me.flags();
        let s = |x: &str| x.to_string();
        args.extend([
            s("--health-listen"),
            s("127.0.0.1:0"),
            s("--schema"),
            s("https://127.0.0.1:9"),
            s("--resources"),
            resources.display().to_string(),
            s("--checkpoint-store"),
            s("none"),
        ]);
        let service = crate::procs::Service::start("sse-ingest", &args, &[]).await?;
        Ok(Self {
            service,
            console,
            schema,
        })
    }
}
