use super::*;
use crate::sse::request::{build_request, redirect_target};

/// `build_request` of a plain GET.
fn get(url: &url::Url, extra: Option<&HeaderMap>, id: &str) -> Result<Request<()>, String> {
    let spec = RequestSpec::default();
    build_request(url, extra, id, (&spec, &spec.first_hop()))
}

#[test]
fn server_retry_is_clamped_to_the_floor_and_an_hour() {
    let floor = Duration::from_millis(500);
    assert_eq!(server_retry(0, floor), floor);
    assert_eq!(server_retry(499, floor), floor);
    assert_eq!(server_retry(2000, floor), Duration::from_secs(2));
    assert_eq!(server_retry(u64::MAX, floor), MAX_SERVER_RETRY);
    assert_eq!(server_retry(3_600_001, floor), MAX_SERVER_RETRY);
    // A floor above the cap cannot make clamp panic.
    assert_eq!(server_retry(5, Duration::from_secs(7200)), MAX_SERVER_RETRY);
}

#[test]
fn redirects_from_https_to_http_are_refused() {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::FOUND;
    let to = |location: &'static str, from: &str| {
        let mut r = response.clone();
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static(location));
        redirect_target(&from.parse().unwrap(), &r)
    };
    let e = to("http://h/p?token=secret", "https://h/s").unwrap_err();
    assert!(
        e.starts_with("redirect from https to plain http refused"),
        "{e}"
    );
    assert!(!e.contains("secret"), "{e}");
    assert!(to("https://other/p", "https://h/s").is_ok());
    assert!(to("https://h/p", "http://h/s").is_ok());
    assert!(to("/p", "https://h/s").is_ok());
}

#[test]
fn request_headers_and_last_event_id_policy() {
    let url: url::Url = "http://127.0.0.1:1/s?x=1".parse().unwrap();
    let mut extra = HeaderMap::new();
    extra.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
    extra.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let request = get(&url, Some(&extra), "42").unwrap();
    let h = request.headers();
    assert_eq!(h[header::ACCEPT], "text/event-stream");
    assert_eq!(h[header::CACHE_CONTROL], "no-cache");
    assert_eq!(h[header::AUTHORIZATION], "Basic abc");
    assert_eq!(h["last-event-id"], "42");
    assert_eq!(request.uri(), "http://127.0.0.1:1/s?x=1");

    let request = get(&url, None, "").unwrap();
    assert!(request.headers().get("last-event-id").is_none());
    assert!(request.headers().get(header::AUTHORIZATION).is_none());

    let request = get(&url, None, "a\u{1}b").unwrap();
    assert!(request.headers().get("last-event-id").is_none());
    let request = get(&url, None, "caf\u{e9}").unwrap();
    assert_eq!(
        request.headers()["last-event-id"].as_bytes(),
        "caf\u{e9}".as_bytes()
    );

    let ftp: url::Url = "ftp://h/x".parse().unwrap();
    assert!(get(&ftp, None, "").is_err());
}

#[test]
fn urls_lose_credentials_and_queries_in_logs() {
    let url: url::Url = "https://user:secret@h.example:8443/p/s?token=abc"
        .parse()
        .unwrap();
    assert_eq!(display_url(&url), "https://h.example:8443/p/s");
    assert_eq!(
        without_credentials(&url).as_str(),
        "https://h.example:8443/p/s?token=abc"
    );
}

/// A reader whose credentials sit on a slow disk: reading them must not hold the runtime thread,
/// on which every other stream of the service runs. The header source here returns only once
/// another task of the same single-thread runtime has run.
#[test]
fn credentials_are_read_off_the_runtime_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Mutex::new(released);
        let (asked, was_asked) = tokio::sync::oneshot::channel::<()>();
        let asked = std::sync::Mutex::new(Some(asked));
        let headers: HeaderSource = Arc::new(move || {
            if let Some(a) = asked.lock().unwrap().take() {
                let _ = a.send(());
            }
            released
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(20))
                .map_err(|_| {
                    "the runtime thread was held while credentials were read".to_string()
                })?;
            Ok(http::HeaderMap::new())
        });
        let tls = rustls::ClientConfig::builder_with_provider(sse_runtime::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let mut cfg = ClientConfig::new(url, headers, Arc::new(tls));
        cfg.headers_read_files = true;
        let (tx, mut reports) = mpsc::channel(8);
        let token = CancellationToken::new();
        let reader = tokio::spawn(run(cfg, String::new(), tx, token.clone()));
        was_asked.await.unwrap();
        // Runs only while the runtime thread is free.
        release.send(()).unwrap();
        loop {
            tokio::select! {
                a = listener.accept() => break assert!(a.is_ok()),
                r = reports.recv() => match r {
                    Some(ClientEvent::Connecting { .. }) => {}
                    r => panic!("no connection, but {r:?}"),
                },
            }
        }
        token.cancel();
        reader.await.unwrap();
    });
}
