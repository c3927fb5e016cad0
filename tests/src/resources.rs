//! Resource YAML for tests: one device `dev` whose endpoint `sse-0` is an SSE base URL, and
//! assets on it with one dataset per path.

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
