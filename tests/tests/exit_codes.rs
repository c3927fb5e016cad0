//! Every binary ends the same way on an operator's mistake: exit code 64 (`EX_USAGE`) with a
//! message naming the problem, whether it is an unknown flag or a listen address in use.

#![allow(clippy::unwrap_used, missing_docs)]

use sse_e2e::procs::run_to_exit;

const BINARIES: [&str; 4] = ["sse-ingest", "sse-schema", "sse-publisher", "sse-connector"];

#[tokio::test]
async fn an_unknown_flag_exits_64_naming_it() {
    for bin in BINARIES {
        let out = run_to_exit(bin, &["--bogus"]).await.unwrap();
        assert_eq!(out.code, Some(64), "{bin}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{bin}: configuration error")),
            "{bin}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("--bogus"), "{bin}: {}", out.stderr);
    }
}

/// "configuration error", then the problem once: not clap's own "error: " again, nor the
/// publisher's "configuration: ".
#[tokio::test]
async fn a_configuration_error_says_so_once() {
    let runs: [(&str, &[&str], &str); 4] = [
        ("sse-ingest", &["--bogus"], "unexpected argument '--bogus'"),
        ("sse-publisher", &["--mqtt-url", "ftp://x"], "broker URL"),
        (
            "sse-publisher",
            &["--max-inflight", "many"],
            "invalid value 'many'",
        ),
        (
            "sse-demo-source",
            &["--interval", "soon"],
            "invalid value 'soon'",
        ),
    ];
    for (bin, args, problem) in runs {
        let out = run_to_exit(bin, args).await.unwrap();
        assert_eq!(out.code, Some(64), "{bin} {args:?}: {}", out.stderr);
        let expected = format!("{bin}: configuration error: {problem}");
        assert!(
            out.stderr.starts_with(&expected),
            "{bin} {args:?}: expected {expected:?} in {}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn a_listen_address_in_use_exits_64_naming_it() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    let any = "127.0.0.1:0";
    let broker = "mqtt://127.0.0.1:1";
    let runs: [(&str, Vec<&str>); 4] = [
        ("sse-ingest", vec!["--resources", &dir]),
        ("sse-schema", vec!["--data-dir", &dir]),
        ("sse-publisher", vec!["--mqtt-url", broker]),
        (
            "sse-connector",
            vec![
                "--resources",
                &dir,
                "--mqtt-url",
                broker,
                "--schema-listen",
                any,
                "--publisher-listen",
                any,
            ],
        ),
    ];
    for (bin, mut args) in runs {
        args.extend(["--listen", &busy]);
        let out = run_to_exit(bin, &args).await.unwrap();
        assert_eq!(out.code, Some(64), "{bin}: {}", out.stderr);
        let named = format!("cannot listen on {busy}");
        assert!(out.stderr.contains(&named), "{bin}: {}", out.stderr);
    }
}

#[tokio::test]
async fn the_adr_source_without_the_akri_contract_exits_64_naming_the_flag() {
    let broker = "mqtt://127.0.0.1:1";
    let runs: [(&str, Vec<&str>); 2] = [
        ("sse-ingest", vec!["--adr-broker", broker]),
        ("sse-connector", vec!["--mqtt-url", broker]),
    ];
    for (bin, mut args) in runs {
        args.extend(["--resource-source", "adr"]);
        let out = run_to_exit(bin, &args).await.unwrap();
        assert_eq!(out.code, Some(64), "{bin}: {}", out.stderr);
        assert!(
            out.stderr.contains("--resource-source"),
            "{bin}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("CONNECTOR_ID"), "{bin}: {}", out.stderr);
    }
}
