//! Waiting for a helper process (Mosquitto, tinyproxy) to listen on its loopback port, and
//! whose socket answered, from `/proc`: a helper started on a port that was free a moment ago
//! (`free_port`) can find another test's process there instead, and the test must not talk to
//! that one.

use std::time::{Duration, Instant};

use tokio::process::Child;

/// How many free ports a helper's start tries before giving up.
pub const PORT_ATTEMPTS: usize = 5;

/// How many times (20 ms apart) a listener's owner is looked up while `/proc` cannot tell.
const UNKNOWN_LOOKS: u32 = 25;

/// What a helper process started on a port found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// It listens there.
    Ours,
    /// Another process listens there: start it again on another port.
    PortTaken,
}

/// Waits (at most 20 s) until `child`, told to listen on 127.0.0.1:`port`, accepts
/// connections there, and says whose listener answered. A child that exits while another
/// process listens on the port could not bind it ([`Started::PortTaken`]); one that exits
/// otherwise is an error naming `what` and its exit status.
pub async fn wait_accepting(child: &mut Child, port: u16, what: &str) -> anyhow::Result<Started> {
    let pid = child.id();
    let start = Instant::now();
    // Looks at whose listener answered that many times while `/proc` cannot tell: a child that
    // failed to bind is exiting, and has closed its descriptors before it is a zombie.
    let mut unknown = 0;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            if listening(port) {
                return Ok(Started::PortTaken);
            }
            anyhow::bail!("{what} exited at start ({status})");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            match pid.and_then(|p| held_by(p, port)) {
                Some(true) => return Ok(Started::Ours),
                Some(false) => return Ok(Started::PortTaken),
                None if unknown < UNKNOWN_LOOKS => unknown += 1,
                // Its `/proc` stays unreadable (another user's process, and we are not root).
                None => return Ok(Started::Ours),
            }
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not accept connections on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port`: `Some(false)` when
/// another process does, `None` when this cannot be told (no listener yet, or `/proc` of the
/// process is not readable, e.g. it runs as another user and we are not root).
pub fn held_by(pid: u32, port: u16) -> Option<bool> {
    let inode = listening_inode(port)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let want = format!("socket:[{inode}]");
    let mut readable = false;
    for fd in fds.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            readable = true;
            if target.to_string_lossy() == want {
                return Some(true);
            }
        }
    }
    readable.then_some(false)
}

/// Whether some process listens on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    listening_inode(port).is_some()
}

/// The inode of the socket listening on 127.0.0.1:`port` (or the IPv4 wildcard), from
/// `/proc/net/tcp`.
fn listening_inode(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let ends = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl, local_address, rem_address, st (0A: LISTEN), ..., inode at 9.
        let (local, state, inode) = (cols.get(1)?, cols.get(3)?, cols.get(9)?);
        (ends.iter().any(|e| e == local) && *state == "0A")
            .then(|| inode.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_of_this_process_is_ours_and_a_free_port_is_unknown() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listening(port));
        assert_eq!(held_by(std::process::id(), port), Some(true));
        // PID 1 is not this test: its descriptors (when readable) do not hold our socket.
        assert_ne!(held_by(1, port), Some(true));
        drop(l);
        assert!(!listening(port));
        assert_eq!(held_by(std::process::id(), port), None);
    }
}
