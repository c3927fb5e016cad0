//! The TCP options a running binary set on its own connections, read through a duplicate of
//! each descriptor (`pidfd_getfd`, Linux 5.6): what the kernel applies, not what the code meant.

use std::net::SocketAddr;

use anyhow::Context;
use rustix::io::Errno;
use rustix::net::{SocketAddrAny, sockopt};
use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};

/// One TCP connection of a process, as its socket options stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The process's end.
    pub local: SocketAddr,
    /// The peer's end.
    pub peer: SocketAddr,
    /// Whether `TCP_NODELAY` is set (Nagle's algorithm off).
    pub nodelay: bool,
}

/// Every connected TCP socket of process `pid` whose peer listens on `port`. The caller needs
/// to be allowed to trace `pid` (its parent, or root).
pub fn connections_to(pid: u32, port: u16) -> anyhow::Result<Vec<Connection>> {
    let raw = i32::try_from(pid).context("pid out of range")?;
    let pid_t = Pid::from_raw(raw).context("pid 0")?;
    let pidfd = pidfd_open(pid_t, PidfdFlags::empty()).context("pidfd_open")?;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        let dup = match pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()) {
            Ok(dup) => dup,
            // Closed since the listing.
            Err(Errno::BADF) => continue,
            Err(e) => return Err(e).context("pidfd_getfd (may the caller trace the process?)"),
        };
        let inet = |a: SocketAddrAny| SocketAddr::try_from(a).ok();
        let peer = rustix::net::getpeername(&dup).ok().flatten().and_then(inet);
        let local = rustix::net::getsockname(&dup).ok().and_then(inet);
        let (Some(peer), Some(local)) = (peer, local) else {
            continue;
        };
        if peer.port() != port {
            continue;
        }
        let nodelay = sockopt::tcp_nodelay(&dup).context("getsockopt TCP_NODELAY")?;
        found.push(Connection {
            local,
            peer,
            nodelay,
        });
    }
    Ok(found)
}
