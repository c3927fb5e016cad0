//! The `skeleton` contender: `sse-bench-skeleton` run as its three roles (in → mid → out), the
//! pipeline's architecture (three processes, tonic gRPC bidi streams, the real protobuf messages)
//! without the services' logic, so the pipeline's cost splits into the architecture's and ours.
//! `skeleton-mtls` runs both gRPC hops over the services' mTLS, each role with its own
//! certificate, as the `mtls` contender runs the pipeline.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sse_e2e::broker::Mosquitto;
use sse_e2e::mtls::Identity;
use sse_e2e::procs::Service;

use crate::procstat;
use crate::source::LoadSource;

/// The skeleton's binary, installed next to the pipeline's.
pub const BINARY: &str = "sse-bench-skeleton";

/// The roles, in the order events pass them (and the names of the CPU split).
pub const ROLES: [&str; 3] = ["in", "mid", "out"];

/// The three roles, running; killed when dropped.
pub struct Skeleton {
    /// `in`, `mid` and `out`.
    roles: [Service; 3],
    /// The roles' certificate files (mTLS), removed when dropped.
    _dir: tempfile::TempDir,
}

/// The role names certificates are issued for (`skeleton-<role>`), so a log names who was
/// refused.
fn identity(role: &str) -> String {
    format!("skeleton-{role}")
}

impl Skeleton {
    /// Starts out, mid and in (in that order) from `bin_dir`, for `streams` streams of `source`
    /// published to `<prefix>/s<i>` on `broker`; with `mtls`, each role with its own
    /// certificate of the run's test CA and `https://` hops.
    pub async fn start(
        bin_dir: &Path,
        broker: &Mosquitto,
        source: &LoadSource,
        streams: u32,
        prefix: &str,
        mtls: bool,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = bin_dir.join(BINARY);
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let tls = |role: &str| -> anyhow::Result<Vec<String>> {
            if !mtls {
                return Ok(Vec::new());
            }
            let pki = crate::pipeline::test_ca()?;
            let id = Identity::issue(dir.path(), pki, &identity(role), &pki.ca_pem)?;
            Ok(id.flags())
        };
        let start = |mut args: Vec<String>, role: &str| {
            let (path, tls) = (path.clone(), tls(role));
            async move {
                args.extend(tls?);
                Service::start_at(&path, any_port, &args, &[]).await
            }
        };
        let url = |svc: &Service| {
            let scheme = if mtls { "https" } else { "http" };
            format!("{scheme}://{}", svc.addr)
        };
        let s = |x: &str| x.to_string();
        let [r_in, r_mid, r_out] = ROLES;
        let out = start(
            vec![s(r_out), s("--mqtt-port"), broker.port.to_string()],
            r_out,
        )
        .await?;
        let mid = start(vec![s(r_mid), s("--next"), url(&out)], r_mid).await?;
        let args = vec![
            s(r_in),
            s("--next"),
            url(&mid),
            s("--source"),
            source.base_url(),
            s("--streams"),
            streams.to_string(),
            s("--prefix"),
            s(prefix),
        ];
        let input = start(args, r_in).await?;
        Ok(Self {
            roles: [input, mid, out],
            _dir: dir,
        })
    }

    /// The address `mid` listens on (a test dials it without a certificate).
    pub fn mid_addr(&self) -> SocketAddr {
        self.roles[1].addr
    }

    /// CPU time used so far by in, mid and out.
    pub fn cpu(&self) -> [Duration; 3] {
        self.roles
            .each_ref()
            .map(|s| procstat::cpu_time_or_zero(s.pid()))
    }

    /// The last log lines of every role (for a failed run).
    pub fn log_tail(&self) -> String {
        crate::pipeline::log_tails(
            ROLES
                .iter()
                .zip(&self.roles)
                .map(|(role, s)| (format!("skeleton {role}"), s)),
        )
    }
}
