//! Shared parts of the authentication tests: TLS SSE sources, device resources with each
//! authentication method, and `ListStreams` of ingest by asset.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::eventually;
use crate::grpcurl;
use crate::pki::{Leaf, Pki};
use crate::procs::Service;
use crate::resources::device_with_asset;
use crate::source::{Feed, Reply, SseSource, block, blocks_then_hold};

/// The HTTP Basic user name of the test devices.
pub const USER: &str = "weather-user";
/// Their password: a value no output may ever show.
pub const PASSWORD: &str = "Pw-7f3c9e1d-never-logged";

/// One event per connection, then the stream stays open.
pub fn feed(name: &'static str) -> Feed {
    Arc::new(move |_req| {
        Reply::Sse(blocks_then_hold(vec![block(
            Some("1"),
            None,
            &format!(r#"{{"endpoint":"{name}"}}"#),
        )]))
    })
}

/// An https SSE source with `leaf`, asking for a client certificate when `require_client_cert`.
pub async fn tls_source(
    pki: &Pki,
    leaf: &Leaf,
    require_client_cert: bool,
    feed: Feed,
) -> SseSource {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    SseSource::start_tls(
        listener,
        feed,
        pki.server_config(leaf, require_client_cert)
            .expect("a server configuration"),
    )
    .expect("the TLS source starts")
}

/// A device with one endpoint and an asset whose dataset goes to `auth/<name>`.
pub fn resources(
    name: &str,
    address: &str,
    authentication: &str,
    trust_list: Option<&str>,
) -> String {
    let mut endpoint = vec![format!("authentication: {authentication}")];
    endpoint.extend(trust_list.map(|t| format!("trustSettings: {{ trustList: {t} }}")));
    let endpoint: Vec<&str> = endpoint.iter().map(String::as_str).collect();
    device_with_asset(name, address, &endpoint, "auth")
}

/// A `Certificate` authentication naming its secrets.
pub fn cert_auth(cert: &str, key: &str, chain: Option<&str>) -> String {
    let chain = chain
        .map(|c| format!(", intermediateCertificatesSecretName: {c}"))
        .unwrap_or_default();
    format!(
        "{{ method: Certificate, x509Credentials: {{ certificateSecretName: {cert}, keySecretName: {key}{chain} }} }}"
    )
}

/// An `Anonymous` authentication.
pub const ANONYMOUS: &str = "{ method: Anonymous }";

/// `ListStreams`, by the asset each stream feeds (`asset-<name>`).
pub async fn streams(ingest: &Service) -> Option<Vec<serde_json::Value>> {
    let l = grpcurl::call_json(
        &ingest.addr.to_string(),
        None,
        &["sseconnector.v1.IngestService/ListStreams"],
    )
    .await
    .ok()?;
    l["streams"].as_array().cloned()
}

/// The stream of `ListStreams` that feeds asset `asset-<name>`.
pub fn stream_of<'a>(
    streams: &'a [serde_json::Value],
    name: &str,
) -> Option<&'a serde_json::Value> {
    let route = format!("asset-{name}/all");
    streams.iter().find(|s| {
        s["routes"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == route.as_str()))
    })
}

/// Waits until stream `name` reports an error (`what` names the wait); returns every stream
/// and that error.
pub async fn last_error(
    ingest: &Service,
    name: &str,
    what: &str,
) -> (Vec<serde_json::Value>, String) {
    let all = eventually(what, || async move {
        let all = streams(ingest).await?;
        stream_of(&all, name)
            .is_some_and(|s| !s["lastError"].as_str().unwrap_or("").is_empty())
            .then_some(all)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let error = stream_of(&all, name).expect("the stream")["lastError"]
        .as_str()
        .expect("an error text")
        .to_string();
    (all, error)
}
