//! `BENCH_NOISE=1`'s noise source with the real stress-ng: it runs pinned to the core it was
//! given, and stopping it, or a panic while it runs, leaves none of its processes behind.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use sse_bench::noise::{self, Plan};

/// The plan every test uses: core 0 exists everywhere; stress-ng comes from `just setup`.
fn plan() -> Plan {
    Plan::new(Some(0), 1, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e} (these tests need it)"))
}

/// The CPUs process `pid` may run on, from /proc.
fn cpus_allowed(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test]
async fn noise_runs_pinned_to_its_core_and_stops_without_leftovers() {
    let n = plan().start().await.unwrap();
    let pgid = n.pgid();
    let members = noise::group_members(pgid);
    assert_eq!(members.len(), 1 + noise::WORKERS, "{members:?}");
    for pid in &members {
        assert_eq!(cpus_allowed(*pid), "0", "process {pid}");
    }
    let record = n.stop();
    assert_eq!(record.error, None);
    assert_eq!(record.core, 0);
    assert_eq!(&record.argv[..4], ["taskset", "-c", "0", "stress-ng"]);
    assert_eq!(noise::group_members(pgid), Vec::<u32>::new());
}

#[tokio::test]
async fn a_panic_while_the_noise_runs_kills_its_whole_group() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let n = plan().start().await.unwrap();
        tx.send(n.pgid()).unwrap();
        panic!("a contender failed mid-run");
    });
    let pgid = rx.await.unwrap();
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(noise::group_members(pgid), Vec::<u32>::new());
}
