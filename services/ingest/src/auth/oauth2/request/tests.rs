use std::collections::BTreeMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::auth::b64;
use crate::resources::SecretRef;
use crate::resources::options::OptionValue;

const SECRET: &str = "s3cr3t-never-shown";

fn config(url: &str) -> OAuth2 {
    OAuth2 {
        token_url: url.parse().unwrap(),
        client_id: OptionValue::Literal("my client".into()),
        client_secret: SecretRef::parse("oauth/secret").unwrap(),
        scopes: vec!["read:events".into(), "api://x/.default".into()],
        audience: Some("https://api.example".into()),
        parameters: BTreeMap::new(),
    }
}

#[test]
fn the_form_has_the_grant_scopes_audience_and_parameters() {
    let extra = vec![("resource".to_owned(), "a&b=c".to_owned())];
    assert_eq!(
        form(&config("https://idp/token"), &extra),
        "grant_type=client_credentials&scope=read%3Aevents+api%3A%2F%2Fx%2F.default\
         &audience=https%3A%2F%2Fapi.example&resource=a%26b%3Dc"
    );
    let mut bare = config("https://idp/token");
    bare.scopes.clear();
    bare.audience = None;
    assert_eq!(form(&bare, &[]), "grant_type=client_credentials");
}

#[test]
fn client_credentials_are_form_encoded_before_base64() {
    let h = client_basic("my client", "p:w&d").unwrap();
    assert_eq!(h, format!("Basic {}", b64(b"my+client:p%3Aw%26d")).as_str());
    assert!(h.is_sensitive());
}

#[test]
fn a_bearer_answer_gives_a_sensitive_token_and_its_lifetime() {
    let ok = |body: &str| answer(http::StatusCode::OK, body.as_bytes(), SECRET);
    let t = ok(r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3599}"#).unwrap();
    assert_eq!(t.value, "Bearer tok-1");
    assert!(t.value.is_sensitive());
    assert_eq!(t.lifetime, Some(Duration::from_secs(3599)));
    let t = ok(r#"{"access_token":"tok-2","token_type":"bearer","expires_in":"60"}"#).unwrap();
    assert_eq!(t.lifetime, Some(Duration::from_secs(60)));
    let t = ok(r#"{"access_token":"tok-3","token_type":"BEARER"}"#).unwrap();
    assert_eq!(t.lifetime, None);
}

#[test]
fn a_bad_answer_is_named_without_quoting_the_token() {
    let ok = |body: &str| {
        answer(http::StatusCode::OK, body.as_bytes(), SECRET)
            .err()
            .unwrap()
    };
    for (body, why) in [
        ("T0KEN-in-html", "not JSON"),
        (r#"{"token_type":"Bearer"}"#, "no access_token"),
        (r#"{"access_token":"T0KEN-x"}"#, "no token_type"),
        (
            r#"{"access_token":"T0KEN-x","token_type":"mac"}"#,
            "token_type \"mac\", only Bearer",
        ),
        (
            r#"{"access_token":"T0KEN x","token_type":"Bearer"}"#,
            "the access_token is not a valid bearer token",
        ),
    ] {
        let e = ok(body);
        assert!(e.lasting, "{body}");
        assert!(e.message.contains(why), "{body}: {}", e.message);
        assert!(!e.message.contains("T0KEN"), "{body}: {}", e.message);
    }
}

#[test]
fn a_refusal_names_the_status_and_rfc6749_error_truncated_without_the_secret() {
    let refused = |code: u16, body: &str| {
        answer(
            http::StatusCode::from_u16(code).unwrap(),
            body.as_bytes(),
            SECRET,
        )
        .err()
        .unwrap()
    };
    let e = refused(
        401,
        &format!(
            r#"{{"error":"invalid_client","error_description":"bad secret {SECRET}\nfor client"}}"#
        ),
    );
    assert_eq!(
        e.message,
        "answered HTTP 401 Unauthorized: invalid_client: bad secret *** for client"
    );
    assert!(e.lasting);
    let long = "x".repeat(5000);
    let e = refused(
        400,
        &format!(r#"{{"error":"invalid_scope","error_description":"{long}"}}"#),
    );
    assert!(e.message.len() < 300, "{}", e.message.len());
    assert!(
        e.message
            .starts_with("answered HTTP 400 Bad Request: invalid_scope: xxx")
    );
    let e = refused(503, "<html>down</html>");
    assert_eq!(e.message, "answered HTTP 503 Service Unavailable");
    assert!(!e.lasting, "5xx may pass");
}

/// A plain-HTTP token endpoint on loopback answering `response`; returns the URL and what it read.
async fn endpoint(response: Vec<u8>) -> (String, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth/token", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // Read the head and the form body (small), then answer.
        while !String::from_utf8_lossy(&seen).contains("grant_type") {
            let n = sock.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let _ = sock.write_all(&response).await;
        let _ = sock.shutdown().await;
        String::from_utf8_lossy(&seen).into_owned()
    });
    (url, task)
}

fn inputs() -> Inputs {
    let tls = rustls::ClientConfig::builder_with_provider(sse_runtime::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Inputs {
        client_id: "id-1".into(),
        client_secret: SECRET.into(),
        parameters: vec![],
        tls: Arc::new(tls),
    }
}

#[tokio::test]
async fn the_request_is_a_form_post_with_basic_auth_and_the_answer_is_read() {
    let body = r#"{"access_token":"tok-9","token_type":"Bearer","expires_in":120}"#;
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (url, seen) = endpoint(response.into_bytes()).await;
    let token = fetch(&config(&url), &inputs()).await.unwrap();
    assert_eq!(token.value, "Bearer tok-9");
    assert_eq!(token.lifetime, Some(Duration::from_secs(120)));
    let seen = seen.await.unwrap().to_ascii_lowercase();
    assert!(seen.starts_with("post /oauth/token http/1.1\r\n"), "{seen}");
    assert!(
        seen.contains("content-type: application/x-www-form-urlencoded\r\n"),
        "{seen}"
    );
    let basic = b64(format!("id-1:{SECRET}").as_bytes()).to_ascii_lowercase();
    assert!(
        seen.contains(&format!("authorization: basic {basic}\r\n")),
        "{seen}"
    );
    assert!(
        seen.contains("\r\n\r\ngrant_type=client_credentials&scope="),
        "{seen}"
    );
    assert!(!seen.contains(SECRET), "the secret is not in the body");
}

#[tokio::test]
async fn an_answer_over_the_limit_is_refused() {
    let huge = vec![b'a'; MAX_TOKEN_RESPONSE_BYTES + 1];
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        huge.len()
    )
    .into_bytes();
    response.extend_from_slice(&huge);
    let (url, _seen) = endpoint(response).await;
    let e = fetch(&config(&url), &inputs()).await.err().unwrap();
    assert!(
        e.message.ends_with(&format!(
            "answer larger than {MAX_TOKEN_RESPONSE_BYTES} bytes"
        )),
        "{}",
        e.message
    );
    assert!(
        e.message
            .starts_with("OAuth2 token endpoint http://127.0.0.1:"),
        "{}",
        e.message
    );
}
