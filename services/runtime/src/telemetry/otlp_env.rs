//! Where each signal (traces, metrics, logs) is exported, read from the environment: the
//! standard `OTEL_*` variables and the Azure IoT Operations connector contract's `OTLP_*` ones.
//! One pure function over a variable lookup, so every combination is unit-tested.
//!
//! Precedence, per signal (the first that applies wins):
//! 1. `OTEL_SDK_DISABLED=true` or `OTEL_<SIGNAL>_EXPORTER=none`: not exported.
//! 2. `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`, used as-is.
//! 3. `OTEL_EXPORTER_OTLP_ENDPOINT`: as-is for gRPC, with `/v1/<signal>` appended for HTTP.
//! 4. `OTLP_GRPC_<SIGNAL>_ENDPOINT` (Azure; gRPC), as-is.
//! 5. `OTLP_HTTP_<SIGNAL>_ENDPOINT` (Azure; HTTP/protobuf), as-is, or with `/v1/<signal>`
//!    appended when it has no path.
//!
//! The standard endpoints speak `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, else
//! `OTEL_EXPORTER_OTLP_PROTOCOL`, else gRPC (what these services always spoke). An `https`
//! endpoint is reached over TLS trusting the system roots plus the CA file of
//! `OTEL_EXPORTER_OTLP_<SIGNAL>_CERTIFICATE`, else `OTEL_EXPORTER_OTLP_CERTIFICATE`, else (metrics
//! and logs) `FIRST_PARTY_OTLP_GRPC_{METRICS,LOG}_COLLECTOR_CA_PATH`.

use std::fmt;
use std::path::PathBuf;

/// One of the three OpenTelemetry signals, each exported on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Instruments.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// The signal's word in the standard variables (`TRACES`, `METRICS`, `LOGS`).
    fn standard(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }

    /// The path the OTLP/HTTP spec appends to a base endpoint.
    fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }

    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`.
    fn standard_endpoint(self) -> &'static str {
        match self {
            Signal::Traces => "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            Signal::Metrics => "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            Signal::Logs => "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        }
    }

    /// The Azure contract's gRPC and HTTP endpoint variables.
    fn azure_endpoints(self) -> (&'static str, &'static str) {
        match self {
            Signal::Traces => ("OTLP_GRPC_TRACE_ENDPOINT", "OTLP_HTTP_TRACE_ENDPOINT"),
            Signal::Metrics => ("OTLP_GRPC_METRIC_ENDPOINT", "OTLP_HTTP_METRIC_ENDPOINT"),
            Signal::Logs => ("OTLP_GRPC_LOG_ENDPOINT", "OTLP_HTTP_LOG_ENDPOINT"),
        }
    }

    /// The Azure contract's CA file variable for the signal's collector, where it has one.
    fn azure_ca(self) -> Option<&'static str> {
        match self {
            Signal::Traces => None,
            Signal::Metrics => Some("FIRST_PARTY_OTLP_GRPC_METRICS_COLLECTOR_CA_PATH"),
            Signal::Logs => Some("FIRST_PARTY_OTLP_GRPC_LOG_COLLECTOR_CA_PATH"),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        })
    }
}

/// The OTLP transport of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (tonic).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (hyper).
    HttpProtobuf,
}

/// Where and how one signal is exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The full URL: for HTTP the one requests are POSTed to, for gRPC the server's.
    pub url: http::Uri,
    /// The transport.
    pub protocol: Protocol,
    /// An extra CA file (PEM) to trust for an `https` URL.
    pub ca: Option<PathBuf>,
    /// The variable the URL came from, to name in errors and logs.
    pub from: &'static str,
}

impl Target {
    /// Whether the collector is reached over TLS.
    pub fn is_tls(&self) -> bool {
        self.url.scheme_str() == Some("https")
    }
}

/// Where each signal goes; `None`: not exported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Spans.
    pub traces: Option<Target>,
    /// Metrics.
    pub metrics: Option<Target>,
    /// Logs.
    pub logs: Option<Target>,
}

/// A telemetry variable that cannot be used; names the variable, never quotes the value (an
/// endpoint may carry credentials).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}: {problem}")]
pub struct OtlpEnvError {
    /// The variable.
    pub var: String,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(var: &str, problem: impl Into<String>) -> OtlpEnvError {
    OtlpEnvError {
        var: var.to_string(),
        problem: problem.into(),
    }
}

/// Reads the endpoints of all three signals through `env` (a variable's value, `None` when
/// unset; an empty value counts as unset).
pub fn resolve(env: &dyn Fn(&str) -> Option<String>) -> Result<Endpoints, OtlpEnvError> {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(Endpoints::default());
    }
    Ok(Endpoints {
        traces: signal(Signal::Traces, &get)?,
        metrics: signal(Signal::Metrics, &get)?,
        logs: signal(Signal::Logs, &get)?,
    })
}

/// Where `s` goes, or `None`.
fn signal(s: Signal, get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Target>, OtlpEnvError> {
    let exporter = format!("OTEL_{}_EXPORTER", s.standard());
    match get(&exporter)
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(_) => return Err(bad(&exporter, "only `otlp` and `none` are supported")),
    }
    let Some((var, raw, protocol, append)) = endpoint(s, get)? else {
        return Ok(None);
    };
    let url = parse_url(var, raw.trim(), append.then(|| s.http_path()))?;
    let ca = ca(s, get);
    Ok(Some(Target {
        url,
        protocol,
        ca,
        from: var,
    }))
}

/// The variable the endpoint comes from, its value, its protocol and whether `/v1/<signal>` is
/// appended (`None`: no endpoint for the signal).
type Found = Option<(&'static str, String, Protocol, bool)>;

fn endpoint(s: Signal, get: &dyn Fn(&str) -> Option<String>) -> Result<Found, OtlpEnvError> {
    let standard = [
        (s.standard_endpoint(), false),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", true),
    ];
    for (var, base) in standard {
        if let Some(v) = get(var) {
            let protocol = protocol(s, get)?;
            return Ok(Some((
                var,
                v,
                protocol,
                base && protocol == Protocol::HttpProtobuf,
            )));
        }
    }
    let (grpc, http) = s.azure_endpoints();
    if let Some(v) = get(grpc) {
        return Ok(Some((grpc, v, Protocol::Grpc, false)));
    }
    if let Some(v) = get(http) {
        let no_path = v
            .trim()
            .parse::<http::Uri>()
            .is_ok_and(|u| matches!(u.path(), "" | "/"));
        return Ok(Some((http, v, Protocol::HttpProtobuf, no_path)));
    }
    Ok(None)
}

/// The standard protocol of `s`: per signal, else general, else gRPC.
fn protocol(s: Signal, get: &dyn Fn(&str) -> Option<String>) -> Result<Protocol, OtlpEnvError> {
    let per_signal = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", s.standard());
    for var in [per_signal.as_str(), "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        if let Some(v) = get(var) {
            return match v.trim() {
                "grpc" => Ok(Protocol::Grpc),
                "http/protobuf" => Ok(Protocol::HttpProtobuf),
                "http/json" => Err(bad(
                    var,
                    "http/json is not supported: use grpc or http/protobuf",
                )),
                _ => Err(bad(var, "unknown protocol: use grpc or http/protobuf")),
            };
        }
    }
    Ok(Protocol::Grpc)
}

/// An `http`/`https` URL with a host, with `path` appended to its own when given.
fn parse_url(var: &str, raw: &str, path: Option<&str>) -> Result<http::Uri, OtlpEnvError> {
    let uri: http::Uri = raw.parse().map_err(|_| {
        bad(
            var,
            "not a URL (expected http://host:port or https://host:port)",
        )
    })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad(var, "the URL must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad(var, "the URL has no host"));
    }
    let Some(path) = path else { return Ok(uri) };
    let base = uri.path().trim_end_matches('/');
    let joined = format!(
        "{}://{}{base}{path}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    joined
        .parse()
        .map_err(|_| bad(var, "not a URL once the signal's path is appended"))
}

/// The CA file to trust for `s`'s collector, if one is named.
fn ca(s: Signal, get: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let per_signal = format!("OTEL_EXPORTER_OTLP_{}_CERTIFICATE", s.standard());
    let standard = [per_signal.as_str(), "OTEL_EXPORTER_OTLP_CERTIFICATE"];
    standard
        .into_iter()
        .chain(s.azure_ca())
        .find_map(|var| get(var).map(|v| PathBuf::from(v.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve_with(vars: &[(&str, &str)]) -> Result<Endpoints, OtlpEnvError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(&|k| map.get(k).cloned())
    }

    fn url(t: &Option<Target>) -> Option<(String, Protocol)> {
        t.as_ref().map(|t| (t.url.to_string(), t.protocol))
    }

    fn grpc(u: &str) -> Option<(String, Protocol)> {
        Some((u.to_string(), Protocol::Grpc))
    }

    fn http(u: &str) -> Option<(String, Protocol)> {
        Some((u.to_string(), Protocol::HttpProtobuf))
    }

    #[test]
    fn nothing_set_exports_nothing() {
        assert_eq!(resolve_with(&[]).unwrap(), Endpoints::default());
        assert_eq!(
            resolve_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]).unwrap(),
            Endpoints::default(),
            "empty counts as unset"
        );
    }

    #[test]
    fn the_general_endpoint_is_grpc_by_default_and_used_as_is() {
        let e = resolve_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]).unwrap();
        for t in [&e.traces, &e.metrics, &e.logs] {
            assert_eq!(url(t), grpc("http://c:4317/"));
            assert_eq!(t.as_ref().unwrap().from, "OTEL_EXPORTER_OTLP_ENDPOINT");
        }
    }

    #[test]
    fn the_general_http_endpoint_gets_the_signal_path_appended() {
        let e = resolve_with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/base/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ])
        .unwrap();
        assert_eq!(url(&e.traces), http("http://c:4318/base/v1/traces"));
        assert_eq!(url(&e.metrics), http("http://c:4318/base/v1/metrics"));
        assert_eq!(url(&e.logs), http("http://c:4318/base/v1/logs"));
    }

    #[test]
    fn a_per_signal_endpoint_wins_and_is_used_as_is() {
        let e = resolve_with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9/custom"),
        ])
        .unwrap();
        assert_eq!(url(&e.metrics), http("http://m:9/custom"));
        assert_eq!(url(&e.logs), http("http://c:4318/v1/logs"));
    }

    #[test]
    fn a_per_signal_protocol_wins_over_the_general_one() {
        let e = resolve_with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ])
        .unwrap();
        assert_eq!(url(&e.traces), grpc("http://c:4318/"));
        assert_eq!(url(&e.metrics), http("http://c:4318/v1/metrics"));
    }

    #[test]
    fn exporter_none_turns_one_signal_off() {
        let e = resolve_with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTLP_GRPC_METRIC_ENDPOINT", "http://azure:4317"),
        ])
        .unwrap();
        assert_eq!(e.metrics, None, "none wins over every endpoint");
        assert_eq!(url(&e.logs), grpc("http://c:4317/"));
        assert_eq!(url(&e.traces), grpc("http://c:4317/"));
    }

    #[test]
    fn sdk_disabled_turns_everything_off() {
        let e = resolve_with(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
        ])
        .unwrap();
        assert_eq!(e, Endpoints::default());
    }

    #[test]
    fn azure_grpc_endpoints_are_per_signal() {
        let e = resolve_with(&[
            ("OTLP_GRPC_METRIC_ENDPOINT", "http://m:4317"),
            ("OTLP_GRPC_LOG_ENDPOINT", "http://l:4317"),
            ("OTLP_GRPC_TRACE_ENDPOINT", "http://t:4317"),
        ])
        .unwrap();
        assert_eq!(url(&e.metrics), grpc("http://m:4317/"));
        assert_eq!(url(&e.logs), grpc("http://l:4317/"));
        assert_eq!(url(&e.traces), grpc("http://t:4317/"));
        assert_eq!(e.metrics.unwrap().from, "OTLP_GRPC_METRIC_ENDPOINT");
    }

    #[test]
    fn azure_http_endpoints_get_the_path_only_when_they_have_none() {
        let e = resolve_with(&[
            ("OTLP_HTTP_METRIC_ENDPOINT", "http://m:4318"),
            ("OTLP_HTTP_LOG_ENDPOINT", "http://l:4318/otlp/logs"),
        ])
        .unwrap();
        assert_eq!(url(&e.metrics), http("http://m:4318/v1/metrics"));
        assert_eq!(url(&e.logs), http("http://l:4318/otlp/logs"));
        assert_eq!(e.traces, None);
    }

    #[test]
    fn azure_grpc_wins_over_azure_http() {
        let e = resolve_with(&[
            ("OTLP_HTTP_METRIC_ENDPOINT", "http://h:4318"),
            ("OTLP_GRPC_METRIC_ENDPOINT", "http://g:4317"),
        ])
        .unwrap();
        assert_eq!(url(&e.metrics), grpc("http://g:4317/"));
    }

    #[test]
    fn standard_variables_win_over_azure_ones() {
        let e = resolve_with(&[
            ("OTLP_GRPC_METRIC_ENDPOINT", "http://azure:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://std:4317"),
        ])
        .unwrap();
        assert_eq!(url(&e.metrics), grpc("http://std:4317/"));
        let e = resolve_with(&[
            ("OTLP_GRPC_LOG_ENDPOINT", "http://azure:4317"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://std:4317"),
        ])
        .unwrap();
        assert_eq!(url(&e.metrics), grpc("http://std:4317/"));
        assert_eq!(url(&e.logs), grpc("http://azure:4317/"), "per signal");
    }

    #[test]
    fn ca_files_standard_first_then_azure() {
        let e = resolve_with(&[
            ("OTLP_GRPC_METRIC_ENDPOINT", "https://m:4317"),
            ("OTLP_GRPC_LOG_ENDPOINT", "https://l:4317"),
            ("OTLP_GRPC_TRACE_ENDPOINT", "https://t:4317"),
            (
                "FIRST_PARTY_OTLP_GRPC_METRICS_COLLECTOR_CA_PATH",
                "/ca/m.pem",
            ),
            ("FIRST_PARTY_OTLP_GRPC_LOG_COLLECTOR_CA_PATH", "/ca/l.pem"),
        ])
        .unwrap();
        let m = e.metrics.unwrap();
        assert!(m.is_tls());
        assert_eq!(m.ca, Some(PathBuf::from("/ca/m.pem")));
        assert_eq!(e.logs.unwrap().ca, Some(PathBuf::from("/ca/l.pem")));
        assert_eq!(e.traces.unwrap().ca, None, "the contract has no trace CA");
        let e = resolve_with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca/all.pem"),
            ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/ca/logs.pem"),
            (
                "FIRST_PARTY_OTLP_GRPC_METRICS_COLLECTOR_CA_PATH",
                "/ca/m.pem",
            ),
        ])
        .unwrap();
        assert_eq!(e.logs.unwrap().ca, Some(PathBuf::from("/ca/logs.pem")));
        assert_eq!(e.metrics.unwrap().ca, Some(PathBuf::from("/ca/all.pem")));
        assert_eq!(e.traces.unwrap().ca, Some(PathBuf::from("/ca/all.pem")));
    }

    #[test]
    fn bad_values_name_the_variable_and_never_quote_it() {
        let cases: [&[(&str, &str)]; 7] = [
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317")],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://secret@c:21")],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url secret")],
            &[("OTLP_GRPC_LOG_ENDPOINT", "http:///secret")],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "udp-secret"),
            ],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
            ],
            &[("OTEL_TRACES_EXPORTER", "zipkin-secret")],
        ];
        let vars = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTLP_GRPC_LOG_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_TRACES_EXPORTER",
        ];
        for (case, var) in cases.iter().zip(vars) {
            let e = resolve_with(case).unwrap_err();
            assert_eq!(e.var, var, "{case:?}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }

    #[test]
    fn protocol_without_endpoint_is_not_an_error() {
        let e = resolve_with(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "bogus")]).unwrap();
        assert_eq!(e, Endpoints::default());
    }
}
