//! The life of a service process, the same for every binary: parse the flags, validate them
//! into settings, start telemetry, bind, run until SIGTERM, drain. Every bad flag, bad
//! configuration or bind failure exits [`EXIT_CONFIG`] with a message naming the problem, so
//! an orchestrator tells an operator's mistake from a crash.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::observability::Observability;
use crate::{EXIT_CONFIG, Shutdown, admin, telemetry};

/// An error a service can end with: the operator's configuration (exit 64) or not.
pub trait Fault: std::fmt::Display {
    /// Whether the error is the operator's configuration.
    fn is_config(&self) -> bool;
}

/// Prints a configuration error and exits with [`EXIT_CONFIG`], so orchestrators see a config fault.
pub fn exit_config_error(service: &str, err: &dyn std::fmt::Display) -> ! {
    eprintln!("{service}: configuration error: {err}");
    std::process::exit(EXIT_CONFIG)
}

/// Parses the command line (and environment) with `P`: `--help` and `--version` print and exit
/// 0; any other clap error (an unknown flag, a bad value) exits [`EXIT_CONFIG`].
pub fn parse<P: clap::Parser>(service: &str) -> P {
    parse_from(service, std::env::args_os())
}

/// [`parse`] of the given arguments (the first is the program name).
pub fn parse_from<P, I, T>(service: &str, args: I) -> P
where
    P: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match P::try_parse_from(args) {
        Ok(p) => p,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => exit_config_error(service, &clap_message(&e)),
    }
}

/// Clap's message without its own `error: ` prefix: the line already says "configuration error".
pub fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    text.trim_end().to_owned()
}

/// Exits [`EXIT_CONFIG`] naming the problem when validating the flags into settings failed.
pub fn settings_or_exit<S, E: std::fmt::Display>(service: &str, settings: Result<S, E>) -> S {
    settings.unwrap_or_else(|e| exit_config_error(service, &e))
}

/// Binds `listen` (printing `<service> listening on <addr>`), exiting [`EXIT_CONFIG`] naming
/// the address when it cannot be bound (in use, not local, no permission).
pub async fn bind_or_exit(service: &str, listen: SocketAddr) -> TcpListener {
    match crate::bind(listen, service).await {
        Ok(l) => l,
        Err(e) => exit_config_error(service, &format!("cannot listen on {listen}: {e}")),
    }
}

/// Telemetry and the admin port of a running process; [`Observed::shutdown`] stops both.
#[must_use = "dropping it stops telemetry export"]
pub struct Observed {
    guard: telemetry::Guard,
    admin: CancellationToken,
}

impl Observed {
    /// Stops the admin port and flushes telemetry. Call before the runtime stops.
    pub async fn shutdown(self) {
        self.admin.cancel();
        self.guard.shutdown().await;
    }
}

/// Starts telemetry and, with `--admin-listen`, the admin port, for `service`, after applying
/// the observability flags; a bad telemetry variable or an admin address that cannot be bound
/// exits [`EXIT_CONFIG`] naming it. Must be called inside the Tokio runtime.
pub async fn observe(service: &'static str, observability: &Observability) -> Observed {
    observability.apply();
    let admin_on = observability.admin_listen.is_some();
    let guard =
        telemetry::init(service, admin_on).unwrap_or_else(|e| exit_config_error(service, &e));
    let token = CancellationToken::new();
    if let (Some(addr), Some(registry)) = (observability.admin_listen, guard.registry()) {
        let listener = admin::bind_or_exit(service, addr).await;
        tokio::spawn(admin::serve(listener, registry, token.clone()));
    }
    Observed {
        guard,
        admin: token,
    }
}

/// Runs a service whose settings are already validated: starts telemetry (and the admin port
/// `observability` asks for), binds `listen`,
/// runs `service` until SIGTERM, then waits up to `drain` for its tasks. A configuration error
/// the service ends with exits [`EXIT_CONFIG`]; any other is returned.
pub async fn run<F, Fut, E>(
    name: &'static str,
    listen: SocketAddr,
    observability: &Observability,
    drain: Duration,
    service: F,
) -> anyhow::Result<()>
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Fault + std::error::Error + Send + Sync + 'static,
{
    let observed = observe(name, observability).await;
    let listener = bind_or_exit(name, listen).await;
    let shutdown = Shutdown::on_signals();
    let result = service(listener, shutdown.clone()).await;
    if !shutdown.drain(drain).await {
        tracing::warn!("shutdown: tasks still running after {drain:?}; exiting anyway");
    }
    tracing::debug!("drained");
    observed.shutdown().await;
    match result {
        Err(e) if e.is_config() => exit_config_error(name, &e),
        r => Ok(r?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[arg(long)]
        size: u32,
    }

    #[test]
    fn a_clap_error_is_named_once_as_an_error() {
        use clap::Parser;
        for args in [&["x", "--bogus"][..], &["x", "--size", "big"]] {
            let e = Flags::try_parse_from(args).unwrap_err();
            let m = clap_message(&e);
            assert!(!m.starts_with("error"), "{m}");
            assert!(m.contains(args[1]) || m.contains("big"), "{m}");
        }
    }
}
