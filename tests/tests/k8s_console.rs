//! The console as the Kubernetes component runs it: the rendered local overlay's `sse-console`
//! container (its arguments and environment, each mounted Secret filled with generated files
//! of the same names) started from the real binary, and its login page fetched over HTTPS with
//! the certificate's own names, as through `kubectl port-forward svc/sse-console 8080`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sse_e2e::pki::Pki;
use sse_e2e::procs::Service;

/// The repository's root (this crate is `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every object `kubectl kustomize` renders for `overlay`.
fn render(overlay: &str) -> Vec<Value> {
    let dir = root().join("deploy/k8s/overlays").join(overlay);
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl is installed (just setup)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect()
}

fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered overlay"))
}

fn strings(v: &Value) -> Vec<String> {
    let all = v.as_array().map(Vec::as_slice).unwrap_or_default();
    all.iter()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// Fills each Secret the container mounts under `dir`: a Certificate's Secret with a
/// certificate of `pki` for its DNS names (`ca.crt`, `tls.crt`, `tls.key`, as cert-manager
/// writes them), any other (the login token's) with `token`. Returns mount path → directory.
fn fill_secrets(
    docs: &[Value],
    pod: &Value,
    mounts: &Value,
    pki: &Pki,
    dir: &Path,
) -> Vec<(String, PathBuf)> {
    let certificates: BTreeMap<String, Vec<String>> = docs
        .iter()
        .filter(|d| d["kind"] == "Certificate")
        .map(|c| {
            (
                c["spec"]["secretName"].as_str().unwrap().to_string(),
                strings(&c["spec"]["dnsNames"]),
            )
        })
        .collect();
    let mut mapped = Vec::new();
    for m in mounts.as_array().unwrap() {
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        let secret = volume["secret"]["secretName"]
            .as_str()
            .expect("every mount is a Secret");
        let to = dir.join(secret);
        std::fs::create_dir_all(&to).unwrap();
        match certificates.get(secret) {
            Some(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let leaf = pki.service(&names).unwrap();
                std::fs::write(to.join("ca.crt"), &pki.ca_pem).unwrap();
                std::fs::write(
                    to.join("tls.crt"),
                    format!("{}{}", leaf.cert_pem, leaf.chain_pem),
                )
                .unwrap();
                std::fs::write(to.join("tls.key"), &leaf.key_pem).unwrap();
            }
            None => std::fs::write(to.join("token"), "a-long-enough-console-token\n").unwrap(),
        }
        mapped.push((m["mountPath"].as_str().unwrap().to_string(), to));
    }
    mapped
}

#[tokio::test]
async fn the_kubernetes_console_starts_and_serves_its_login_over_https() {
    let docs = render("local");
    let pod = &object(&docs, "Deployment", "sse-console")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let (pki, dir) = (Pki::new().unwrap(), tempfile::tempdir().unwrap());
    let mounts = fill_secrets(&docs, pod, &container["volumeMounts"], &pki, dir.path());
    let envs: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .map(
            |(k, v)| match mounts.iter().find(|(at, _)| v.starts_with(at.as_str())) {
                Some((at, to)) => (k, format!("{}{}", to.display(), &v[at.len()..])),
                None => (k, v),
            },
        )
        .collect();
    // The manifest's own listen address, on a free port.
    let args = strings(&container["args"]);
    let at = args.iter().position(|a| a == "--console-listen").unwrap();
    let listen: SocketAddr = args[at + 1].parse().unwrap();
    assert!(
        !listen.ip().is_loopback(),
        "the component listens beyond loopback: {listen}"
    );
    let rest: Vec<String> = [&args[..at], &args[at + 2..]].concat();
    let listen = SocketAddr::new(listen.ip(), 0);
    let console = Service::start_as_pod("sse-console", "--console-listen", listen, &rest, &envs)
        .await
        .expect("the console starts as the component configures it");

    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let port = console.addr.port();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/login"))
        .output()
        .await
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status, "200", "{}", String::from_utf8_lossy(&out.stderr));
}
