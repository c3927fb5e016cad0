//! The `skeleton` contender: `sse-bench-skeleton` run as its three roles (in → mid → out), the
//! pipeline's architecture (three processes, tonic gRPC bidi streams, the real protobuf messages)
//! without the services' logic, so the pipeline's cost splits into the architecture's and ours.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sse_e2e::broker::Mosquitto;
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
}

impl Skeleton {
    /// Starts out, mid and in (in that order) from `bin_dir`, for `streams` streams of `source`
    /// published to `<prefix>/s<i>` on `broker`.
    pub async fn start(
        bin_dir: &Path,
        broker: &Mosquitto,
        source: &LoadSource,
        streams: u32,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let path = bin_dir.join(BINARY);
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let start = |args: Vec<String>| {
            let path = path.clone();
            async move { Service::start_at(&path, any_port, &args, &[]).await }
        };
        let s = |x: &str| x.to_string();
        let out = start(vec![s("out"), s("--mqtt-port"), broker.port.to_string()]).await?;
        let mid = start(vec![s("mid"), s("--next"), out.url()]).await?;
        let input = start(vec![
            s("in"),
            s("--next"),
            mid.url(),
            s("--source"),
            source.base_url(),
            s("--streams"),
            streams.to_string(),
            s("--prefix"),
            s(prefix),
        ])
        .await?;
        Ok(Self {
            roles: [input, mid, out],
        })
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
