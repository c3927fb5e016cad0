//! The console's device and asset forms, end to end: the real `sse-console` binary in front of
//! the real three services, driven by a hyper client posting forms as a browser would (the CSRF
//! field read from the page). Devices and assets created through the forms are listed with
//! their health, a bad URL comes back on the `address` input, each referenced secret shows
//! whether its file exists, and a read-only resources directory shows `div.readonly` and
//! refuses the post.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use sse_e2e::broker::Mosquitto;
use sse_e2e::eventually;
use sse_e2e::source::{SseSource, block, by_path};
use sse_e2e::stack::{Pipeline, PipelineArgs};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A page: its status, its `Location` (redirects), the cookies it sets and its text.
struct Page {
    status: u16,
    location: String,
    cookies: Vec<String>,
    text: String,
}

/// One request as a browser on the console's own page sends it: `cookie` (the `name=value`
/// pairs the form page set, e.g. a pre-session one the CSRF token is bound to) and, on a POST,
/// a same-origin `Origin`.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    form: Option<String>,
    cookie: &[String],
) -> Page {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string());
    if !cookie.is_empty() {
        req = req.header(hyper::header::COOKIE, cookie.join("; "));
    }
    if form.is_some() {
        req = req
            .header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(hyper::header::ORIGIN, format!("http://{addr}"));
    }
    let req = req
        .body(Full::new(Bytes::from(form.unwrap_or_default())))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cookies = resp
        .headers()
        .get_all(hyper::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Page {
        status,
        location,
        cookies,
        text: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Page {
    request(addr, "GET", path, None, &[]).await
}

/// The CSRF token of the first form of `page`.
fn csrf(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap_or_default().to_owned()
}

fn encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_value(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Posts `pairs` to `path` with the CSRF field of the form at `form_page`.
async fn post(addr: SocketAddr, form_page: &str, path: &str, pairs: &[(&str, &str)]) -> Page {
    let page = get(addr, form_page).await;
    let token = csrf(&page.text);
    let mut all = vec![("csrf", token.as_str())];
    all.extend_from_slice(pairs);
    request(addr, "POST", path, Some(encode(&all)), &page.cookies).await
}

/// The text of the `td.health` of the row `attr="name"` of `page`.
fn health(page: &str, attr: &str, name: &str) -> Option<String> {
    let row = page.find(&format!(r#"{attr}="{name}""#))?;
    let rest = &page[row..];
    let td = rest.find(r#"class="health">"#)? + 15;
    Some(rest[td..].split('<').next()?.to_owned())
}

/// `sse-console` on a free loopback port, in front of `pipeline`.
async fn console(pipeline: &Pipeline) -> (Child, SocketAddr) {
    let bin = sse_e2e::procs::bin_dir().join("sse-console");
    let url = |s: &sse_e2e::procs::Service| format!("http://{}", s.addr);
    let mut child = Command::new(bin)
        .args(["--console-listen", "127.0.0.1:0"])
        .args(["--ingest", &url(&pipeline.ingest)])
        .args(["--schema", &url(&pipeline.schema)])
        .args(["--publisher", &url(&pipeline.publisher)])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Some(a) = l.strip_prefix("sse-console listening on ") {
                return a.trim().parse::<SocketAddr>().unwrap();
            }
        }
        panic!("sse-console exited before printing its address")
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_assets_are_written_listed_and_guarded_through_the_forms() {
    let broker = Mosquitto::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(
        listener,
        by_path(|_| Some(vec![block(Some("1"), Some("temperature"), r#"{"t":21.5}"#)])),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&res).unwrap();
    std::fs::create_dir_all(secrets.join("gw")).unwrap();
    std::fs::write(secrets.join("gw/user"), "edge").unwrap();
    std::fs::write(secrets.join("gw/password"), "s3cret-value").unwrap();
    let pipeline = Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: dir.path().join("schemas").display().to_string(),
        resources: res.display().to_string(),
        publisher: vec![],
        ingest: vec!["--secrets-dir".into(), secrets.display().to_string()],
        env: None,
    })
    .await
    .unwrap();
    let (_console, web) = console(&pipeline).await;

    // A bad URL: 422, the form again with the user's values and the error on `address`.
    let new_device = get(web, "/devices/new").await;
    assert_eq!(new_device.status, 200);
    assert!(new_device.text.contains(r#"id="device-form""#));
    let device = |name: &str, address: &str, auth: &str| {
        vec![
            ("name", name.to_owned()),
            ("endpoint_name", "sse".to_owned()),
            ("address", address.to_owned()),
            ("auth", auth.to_owned()),
            ("username_secret", "gw/user".to_owned()),
            ("password_secret", "gw/password".to_owned()),
        ]
    };
    let bad = device("plant", "not a url", "Anonymous");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post(web, "/devices/new", "/devices", &bad).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.text
            .contains(r#"<span class="field-error" data-field="address">"#),
        "{}",
        r.text
    );
    assert!(r.text.contains(r#"value="not a url""#), "{}", r.text);
    assert!(!res.join("device-plant.yaml").exists());

    // A good device: 303 to its page.
    let good = device("plant", &source.base_url(), "Anonymous");
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post(web, "/devices/new", "/devices", &good).await;
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/devices/plant"),
        "{}",
        r.text
    );

    // A device with credentials (https: never over plain http; no asset reads it): its page
    // shows whether each secret's file exists, never the content.
    let gated = device("gated", "https://127.0.0.1:9/events", "UsernamePassword");
    let gated: Vec<(&str, &str)> = gated.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post(web, "/devices/new", "/devices", &gated).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let page = get(web, "/devices/gated").await.text;
    assert!(page.contains(r#"value="gw/password""#), "{page}");
    assert!(
        page.contains(r#"class="secret-present" data-secret="gw/user""#),
        "{page}"
    );
    assert!(!page.contains("s3cret-value"), "{page}");
    std::fs::remove_file(secrets.join("gw/password")).unwrap();
    let page = get(web, "/devices/gated").await.text;
    assert!(
        page.contains(r#"class="secret-missing" data-secret="gw/password""#),
        "{page}"
    );

    // An asset routing the `temperature` events: listed, and Available once its stream is read.
    let asset = [
        ("name", "line"),
        ("device", "plant"),
        ("endpoint", "sse"),
        ("event_name", "temp"),
        ("event_type", "temperature"),
        ("event_name", ""),
        ("event_type", ""),
        ("events_topic", "e2e/temp"),
        ("events_qos", "Qos1"),
    ];
    let r = post(web, "/assets/new", "/assets", &asset).await;
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/assets/line"),
        "{}",
        r.text
    );
    let written = std::fs::read_to_string(res.join("asset-line.yaml")).unwrap();
    assert!(written.contains("dataSource: temperature"), "{written}");
    eventually(
        "the asset and its device listed as Available",
        || async move {
            let assets = get(web, "/assets").await.text;
            let devices = get(web, "/devices").await.text;
            let a = health(&assets, "data-asset", "line")?;
            let d = health(&devices, "data-device", "plant")?;
            (a == "Available" && d == "Available").then_some(())
        },
    )
    .await
    .unwrap();

    // A read-only directory (as a ConfigMap mount): the lists and forms say so, posts are refused.
    std::fs::set_permissions(&res, std::fs::Permissions::from_mode(0o555)).unwrap();
    let list = get(web, "/devices").await.text;
    let form = get(web, "/assets/line").await.text;
    let refused = post(web, "/assets/line", "/assets", &asset).await;
    std::fs::set_permissions(&res, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(list.contains(r#"class="readonly""#), "{list}");
    assert!(!list.contains(r#"id="new-device""#), "{list}");
    assert!(
        form.contains(r#"class="readonly""#) && !form.contains(r#"id="save""#),
        "{form}"
    );
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(
        refused.text.contains(r#"class="readonly""#),
        "{}",
        refused.text
    );

    // "Add as event" prefills the form from the query; deleting posts with the CSRF field.
    let prefill = get(
        web,
        "/assets/new?device=plant&endpoint=sse&event_name=gust&event_type=wind-gust",
    )
    .await
    .text;
    assert!(
        prefill.contains(r#"<option value="plant" selected>"#),
        "{prefill}"
    );
    assert!(prefill.contains(r#"value="wind-gust""#), "{prefill}");
    let r = post(web, "/assets/line", "/assets/line/delete", &[]).await;
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/assets"),
        "{}",
        r.text
    );
    assert!(!res.join("asset-line.yaml").exists());
    let r = post(web, "/devices/plant", "/devices/plant/delete", &[]).await;
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/devices"),
        "{}",
        r.text
    );
    assert!(!res.join("device-plant.yaml").exists());
}
