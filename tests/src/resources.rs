//! Resource YAML for tests: one device `dev` whose endpoint `sse-0` is an SSE base URL, and
//! assets on it with one dataset per path; or a device of its own per asset, with the
//! endpoint's authentication.

/// Device `dev` with inbound endpoint `sse-0` at `base`.
pub fn device(base: &str) -> String {
    format!(
        r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: dev }}
spec:
  endpoints:
    inbound:
      sse-0: {{ endpointType: Microsoft.SSEHttp, address: "{base}" }}
"#
    )
}

/// An asset of device `dev` with one dataset per `(name, path, topic)`, each published at QoS 1
/// (a document of its own, starting with `---`).
pub fn asset(name: &str, datasets: &[(&str, &str, &str)]) -> String {
    let mut s = format!(
        r#"---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: {name} }}
spec:
  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  datasets:
"#
    );
    for (n, path, topic) in datasets {
        s.push_str(&format!(
            "    - {{ name: {n}, dataSource: {path}, destinations: [ {{ target: Mqtt, configuration: {{ topic: {topic}, qos: Qos1 }} }} ] }}\n"
        ));
    }
    s
}

/// Device `dev-<name>` with inbound endpoint `sse-0` at `address`, the endpoint's further
/// fields given as YAML lines (`authentication: ...`), and asset `asset-<name>` whose dataset
/// `all` reads `/events` to topic `<topic_prefix>/<name>` (each a document of its own).
pub fn device_with_asset(
    name: &str,
    address: &str,
    endpoint: &[&str],
    topic_prefix: &str,
) -> String {
    let fields: String = endpoint.iter().map(|l| format!("        {l}\n")).collect();
    format!(
        r#"---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: dev-{name} }}
spec:
  endpoints:
    inbound:
      sse-0:
        endpointType: Microsoft.SSEHttp
        address: "{address}"
{fields}---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: asset-{name} }}
spec:
  deviceRef: {{ deviceName: dev-{name}, endpointName: sse-0 }}
  datasets:
    - {{ name: all, dataSource: /events, destinations: [ {{ target: Mqtt, configuration: {{ topic: {topic_prefix}/{name}, qos: Qos1 }} }} ] }}
"#
    )
}

/// An endpoint's `authentication` for HTTP Basic from two `<secret>/<key>` references.
pub fn username_password(user: &str, password: &str) -> String {
    format!(
        "{{ method: UsernamePassword, usernamePasswordCredentials: {{ usernameSecretName: {user}, passwordSecretName: {password} }} }}"
    )
}
