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

/// `<bin> --version` names the binary the user ran, not the crate it was built from.
#[tokio::test]
async fn every_binary_names_itself_in_its_version() {
    let all = BINARIES
        .iter()
        .chain(&["sse-console", "ssectl", "sse-demo-source"]);
    for bin in all {
        let out = run_to_exit(bin, &["--version"]).await.unwrap();
        assert_eq!(out.code, Some(0), "{bin}: {}", out.stderr);
        let version = format!("{bin} {}\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(out.stdout, version, "{bin} --version");
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

/// `sse-connector`'s flags for a run that ends before it needs a broker: resources in `dir`,
/// a broker nothing listens on, every port free, then `extra`.
fn connector_args<'a>(dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let any = "127.0.0.1:0";
    let mut args = vec!["--resources", dir, "--mqtt-url", "mqtt://127.0.0.1:1"];
    args.extend([
        "--listen",
        any,
        "--schema-listen",
        any,
        "--publisher-listen",
        any,
    ]);
    args.extend_from_slice(extra);
    args
}

/// The embedded console's options are checked with the rest, before any port is bound: a
/// console off loopback without a token file or HTTPS stops sse-connector before it listens.
#[tokio::test]
async fn a_console_that_could_not_serve_safely_stops_the_connector_before_it_binds() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    let args = connector_args(&dir, &["--console-listen", "0.0.0.0:0"]);
    let out = run_to_exit("sse-connector", &args).await.unwrap();
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(
        out.stderr.contains("--console-listen 0.0.0.0:0"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("listening on"),
        "bound first: {}",
        out.stdout
    );
}

/// A broker password or token file that cannot be read at start is a configuration error
/// (it used to start and retry the broker forever, logging the file at each attempt).
#[tokio::test]
async fn an_unreadable_broker_password_or_token_file_exits_64_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().display().to_string();
    let missing = dir.path().join("missing").display().to_string();
    let broker = "mqtt://127.0.0.1:1";
    let runs: [(&str, Vec<&str>, &str); 4] = [
        (
            "sse-publisher",
            vec!["--mqtt-url", broker, "--mqtt-password-file", &missing],
            "password file",
        ),
        (
            "sse-publisher",
            vec!["--mqtt-url", broker, "--mqtt-sat-file", &res],
            "service account token file",
        ),
        (
            "sse-ingest",
            vec![
                "--resources",
                &res,
                "--checkpoint-store",
                broker,
                "--mqtt-password-file",
                &missing,
            ],
            "password file",
        ),
        (
            "sse-connector",
            connector_args(&res, &["--mqtt-password-file", &missing]),
            "password file",
        ),
    ];
    for (bin, args, what) in runs {
        let out = run_to_exit(bin, &args).await.unwrap();
        assert_eq!(out.code, Some(64), "{bin} {args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("cannot read {what} ")),
            "{bin}: {}",
            out.stderr
        );
    }
}

/// sse-console checks its peers' scheme against its gRPC TLS flags, as the services do: mTLS
/// with `http://` peers (or `https://` without it) would fail every call, not the start.
#[tokio::test]
async fn a_console_peer_scheme_that_does_not_match_its_tls_flags_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let pki = sse_e2e::pki::Pki::new().unwrap();
    let id = sse_e2e::mtls::Identity::issue(dir.path(), &pki, "sse-console", &pki.ca_pem).unwrap();
    let mut args = id.flags();
    args.extend(["--console-listen".into(), "127.0.0.1:0".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_to_exit("sse-console", &args).await.unwrap();
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(
        out.stderr.contains("--ingest http://127.0.0.1:50051"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("must be https://"), "{}", out.stderr);
    let plain = [
        "--ingest",
        "https://127.0.0.1:1",
        "--console-listen",
        "127.0.0.1:0",
    ];
    let out = run_to_exit("sse-console", &plain).await.unwrap();
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(
        out.stderr.contains("https:// needs --grpc-tls-ca"),
        "{}",
        out.stderr
    );
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

/// A duration flag outside its bounds: a zero that made a service save its checkpoints at every
/// timer tick or drop every SSE connection at once, and a span long enough to overflow a
/// deadline, were accepted before; each now exits 64 naming the flag and its bound.
#[tokio::test]
async fn a_duration_that_would_spin_fail_or_overflow_exits_64_naming_its_bound() {
    let huge = "18446744073709551615s";
    let runs: [(&str, &str, &str, &str); 13] = [
        (
            "sse-ingest",
            "--checkpoint-interval",
            "0s",
            "minimum of 100ms",
        ),
        ("sse-ingest", "--read-timeout", "0s", "minimum of 1s"),
        (
            "sse-ingest",
            "--min-reconnect-delay",
            "0s",
            "minimum of 100ms",
        ),
        ("sse-ingest", "--status-interval", "0s", "minimum of 1s"),
        ("sse-ingest", "--rescan-interval", "1ms", "(or 0 for off)"),
        ("sse-ingest", "--read-timeout", huge, "maximum of 1h"),
        (
            "sse-ingest",
            "--checkpoint-retention",
            "11years",
            "maximum of 10years",
        ),
        ("sse-publisher", "--ack-delay", huge, "maximum of 1h"),
        (
            "sse-publisher",
            "--state-store-timeout",
            "0s",
            "minimum of 100ms",
        ),
        ("sse-schema", "--registry-timeout", huge, "maximum of 1h"),
        (
            "sse-console",
            "--console-session-lifetime",
            "0s",
            "minimum of 1m",
        ),
        (
            "sse-connector",
            "--checkpoint-interval",
            "0s",
            "minimum of 100ms",
        ),
        ("sse-connector", "--ack-delay", huge, "maximum of 1h"),
    ];
    for (bin, flag, value, bound) in runs {
        let out = run_to_exit(bin, &[flag, value]).await.unwrap();
        assert_eq!(out.code, Some(64), "{bin} {flag} {value}: {}", out.stderr);
        assert!(
            out.stderr.contains(flag) && out.stderr.contains(bound),
            "{bin} {flag} {value}: expected {bound:?} in {}",
            out.stderr
        );
    }
}

/// A broker user name holding a character brokers refuse made every CONNECT a protocol error,
/// retried forever as "Connection closed by peer abruptly"; now it is bad usage, named.
#[tokio::test]
async fn a_broker_user_name_brokers_refuse_exits_64_naming_the_character() {
    for bin in ["sse-publisher", "sse-ingest", "sse-connector"] {
        let out = run_to_exit(bin, &["--mqtt-username", "us\ter"])
            .await
            .unwrap();
        assert_eq!(out.code, Some(64), "{bin}: {}", out.stderr);
        assert!(
            out.stderr.contains("--mqtt-username") && out.stderr.contains("holds U+0009"),
            "{bin}: {}",
            out.stderr
        );
    }
}

/// An address flag holding a password is refused without printing it: the peer and checkpoint
/// store errors used to quote the whole URL, and `ssectl` labelled its errors with it.
#[tokio::test]
async fn an_address_with_a_password_is_refused_without_printing_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    let runs: [(&str, Vec<&str>, &str); 6] = [
        (
            "sse-ingest",
            vec!["--resources", &dir, "--schema", "ftp://u:hunter2@x"],
            "--schema",
        ),
        (
            "sse-ingest",
            vec![
                "--resources",
                &dir,
                "--checkpoint-store",
                "http://u:hunter2@x",
            ],
            "checkpoint store",
        ),
        (
            "sse-ingest",
            vec![
                "--resources",
                &dir,
                "--checkpoint-store",
                "mqtt://u:hunter2@x:99999",
            ],
            "checkpoint store: broker URL",
        ),
        (
            "sse-console",
            vec![
                "--listen",
                "127.0.0.1:0",
                "--ingest",
                "http://u:hunter2@x:1",
            ],
            "--ingest",
        ),
        (
            "sse-schema",
            vec!["--data-dir", &dir, "--publisher", "ftp://u:hunter2@x"],
            "--publisher",
        ),
        (
            "ssectl",
            vec!["--ingest", "http://u:hunter2@127.0.0.1:1", "streams"],
            "127.0.0.1:1",
        ),
    ];
    for (bin, args, named) in runs {
        let out = run_to_exit(bin, &args).await.unwrap();
        let all = format!("{}{}", out.stdout, out.stderr);
        assert_ne!(out.code, Some(0), "{bin} {args:?}: {all}");
        assert!(
            all.contains(named),
            "{bin} {args:?}: {named:?} not in {all}"
        );
        assert!(
            !all.contains("hunter2"),
            "{bin} {args:?} printed the password: {all}"
        );
    }
}
