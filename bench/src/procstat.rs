//! What a process costs, read from `/proc`: CPU time (utime + stime) and resident memory.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// CPU time (user + system) `pid` has used so far.
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| std::io::Error::other("malformed /proc stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of stat(5); `rest` starts at field 3.
    let tick = |i: usize| -> std::io::Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| std::io::Error::other("malformed /proc stat"))
    };
    let ticks = tick(14)? + tick(15)?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// CPU time `pid` has used so far, zero when there is no process to read (not started, or gone):
/// a window's CPU is a difference of two readings, and a missing one must not fail the run.
pub fn cpu_time_or_zero(pid: Option<u32>) -> Duration {
    pid.and_then(|p| cpu_time(p).ok()).unwrap_or_default()
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other("no VmRSS in /proc status"))
}

/// The soft limit on open files of this process (`Max open files` of `/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        assert!(cpu_time(pid).expect("stat") > Duration::ZERO);
        assert!(rss_kib(pid).expect("status") > 100);
        assert!(open_files_limit().expect("limits") > 0);
        assert!(cpu_time_or_zero(Some(pid)) > Duration::ZERO);
    }

    #[test]
    fn a_missing_process_costs_zero() {
        assert_eq!(cpu_time_or_zero(None), Duration::ZERO);
        // Above the kernel's pid_max (at most 2^22), so never a live process.
        assert_eq!(cpu_time_or_zero(Some(u32::MAX)), Duration::ZERO);
    }
}
