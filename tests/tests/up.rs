//! `just up`, as a new user runs it in a terminal: it shows events, and Ctrl-C (typed into a
//! pseudo-terminal, so the terminal's line discipline signals its foreground process group)
//! stops everything with a clean message and exit code 0; the Prometheus it starts scrapes the
//! three services and the console, the console URL it prints shows the demo's stream, and so
//! does `ssectl` with the addresses it prints.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn ctrl_c_on_just_up_stops_cleanly_with_exit_0() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // `script` runs `just up` on a pseudo-terminal and passes what we write to it as typed
    // keys; `-e` returns its exit code. `--no-deps`: setup and build have run (`just test`
    // depends on them), and a nested cargo build would wait on the lock of this test's cargo.
    let mut up = tokio::process::Command::new("script")
        .args(["-qefc", "just --no-deps up", "/dev/null"])
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script (util-linux) runs");
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let mut out = String::new();
    // Up once an event of the demo station reached the broker and was printed.
    loop {
        let line = tokio::time::timeout(sse_e2e::DEADLINE, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("just up shows no event: {out}"))
            .unwrap()
            .unwrap_or_else(|| panic!("just up ended early: {out}"));
        out.push_str(&line);
        out.push('\n');
        if line.starts_with("factory/") {
            break;
        }
    }
    // The Prometheus it started scrapes the three services' admin ports.
    let prometheus: std::net::SocketAddr = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("metrics")?
                .trim()
                .strip_prefix("http://")?
                .split_whitespace()
                .next()
        })
        .unwrap_or_else(|| panic!("just up prints no Prometheus URL: {out}"))
        .parse()
        .unwrap();
    // The console it started lists the demo station's stream.
    let console: std::net::SocketAddr = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("console")?
                .trim()
                .strip_prefix("http://")?
                .split_whitespace()
                .next()
        })
        .unwrap_or_else(|| panic!("just up prints no console URL: {out}"))
        .parse()
        .unwrap();
    sse_e2e::eventually("the console listing the demo's stream", || async {
        let (status, body) = sse_e2e::prometheus::get(console, "/streams").await.ok()?;
        let page = String::from_utf8_lossy(&body);
        (status == 200 && page.contains("data-stream=")).then_some(())
    })
    .await
    .unwrap();
    sse_e2e::eventually(
        "Prometheus scraping the three services and the console",
        || async {
            let (status, body) =
                sse_e2e::prometheus::get(prometheus, "/api/v1/query?query=sum(up)")
                    .await
                    .ok()?;
            let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
            (status == 200 && v["data"]["result"][0]["value"][1] == "4").then_some(())
        },
    )
    .await
    .unwrap();
    // The ssectl line it prints, pasted as a user would, lists the demo's streams (ssectl's
    // default addresses are not the demo's: before this line a new user's `ssectl streams`
    // could not connect).
    let exports = out
        .lines()
        .find_map(|l| l.strip_prefix("ssectl")?.trim().strip_prefix("export "))
        .unwrap_or_else(|| panic!("just up prints no ssectl line: {out}"));
    let streams = tokio::process::Command::new("bash")
        .args([
            "-c",
            &format!("export {exports}; target/debug/ssectl streams"),
        ])
        .current_dir(&root)
        .output()
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&streams.stdout);
    assert!(streams.status.success(), "{listed}{:?}", streams.stderr);
    assert!(listed.contains("weather-station/sse-0|"), "{listed}");
    let mut keys = up.stdin.take().unwrap();
    keys.write_all(b"\x03").await.unwrap();
    keys.flush().await.unwrap();
    let tail = async {
        while let Ok(Some(l)) = lines.next_line().await {
            out.push_str(&l);
            out.push('\n');
        }
        up.wait().await
    };
    let status = tokio::time::timeout(sse_e2e::DEADLINE, tail)
        .await
        .expect("just up stops on Ctrl-C")
        .unwrap();
    drop(keys);
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("stopped."), "{out}");
    assert!(!out.contains("error:"), "{out}");
}
