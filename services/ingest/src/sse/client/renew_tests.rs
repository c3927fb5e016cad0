//! A 401 with renewable credentials: one prompt retry with a fresh token, then the long backoff.

use std::sync::Mutex;

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::sse::{TokenError, TokenSource};

const FLOOR: Duration = Duration::from_millis(20);

/// Hands out "Bearer old" until it is refused, then "Bearer new"; counts the refusals.
#[derive(Default)]
struct Rotating {
    refused: Mutex<Vec<HeaderValue>>,
}

impl TokenSource for Rotating {
    fn authorization(&self) -> BoxFuture<'_, Result<HeaderValue, TokenError>> {
        let renewed = !self.refused.lock().unwrap().is_empty();
        Box::pin(async move {
            Ok(HeaderValue::from_static(if renewed {
                "Bearer new"
            } else {
                "Bearer old"
            }))
        })
    }

    fn refused(&self, sent: &HeaderValue) {
        self.refused.lock().unwrap().push(sent.clone());
    }
}

/// Answers 401 unless the request carries `Bearer <accept>`, then one event; keeps streams open.
async fn server(accept: &'static str) -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/s", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            if head.contains(&format!("authorization: bearer {accept}\r\n")) {
                let ok =
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nid: 1\ndata: x\n\n";
                let _ = sock.write_all(ok.as_bytes()).await;
                open.push(sock);
            } else {
                let no =
                    "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                let _ = sock.write_all(no.as_bytes()).await;
            }
        }
    });
    url.parse().unwrap()
}

fn config(url: url::Url, tokens: &Arc<Rotating>, renew: bool) -> ClientConfig {
    let tls = rustls::ClientConfig::builder_with_provider(sse_runtime::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut cfg = ClientConfig::new(url, Arc::new(|| Ok(HeaderMap::new())), Arc::new(tls));
    cfg.tokens = Some(tokens.clone());
    cfg.renew_after_401 = renew;
    cfg.min_reconnect_delay = FLOOR;
    cfg
}

/// The reports up to the first `Event`, or the first `n` disconnections' delays.
async fn run_until(cfg: ClientConfig, disconnects: usize) -> (Vec<Option<Duration>>, bool) {
    let (tx, mut reports) = mpsc::channel(8);
    let token = CancellationToken::new();
    let reader = tokio::spawn(run(cfg, String::new(), tx, token.clone()));
    let mut delays = Vec::new();
    let mut got_event = false;
    while let Some(r) = reports.recv().await {
        match r {
            ClientEvent::Disconnected {
                retry_in, reason, ..
            } => {
                assert_eq!(reason, super::super::ended::AUTH);
                delays.push(retry_in);
                if delays.len() == disconnects {
                    break;
                }
            }
            ClientEvent::Event(_) => {
                got_event = true;
                break;
            }
            _ => {}
        }
    }
    token.cancel();
    reader.await.unwrap();
    (delays, got_event)
}

#[tokio::test]
async fn a_refused_token_is_renewed_and_retried_at_the_floor() {
    let tokens = Arc::new(Rotating::default());
    let (delays, got_event) = run_until(config(server("new").await, &tokens, true), 5).await;
    assert_eq!(delays, vec![Some(FLOOR)]);
    assert!(got_event, "the fresh token was accepted");
    assert_eq!(*tokens.refused.lock().unwrap(), vec!["Bearer old"]);
}

#[tokio::test]
async fn a_second_401_in_a_row_takes_the_long_backoff() {
    let tokens = Arc::new(Rotating::default());
    let (delays, got_event) = run_until(config(server("never").await, &tokens, true), 2).await;
    assert!(!got_event);
    assert_eq!(delays[0], Some(FLOOR));
    assert!(
        delays[1].unwrap() >= Duration::from_secs(30),
        "the long backoff (60 s, jittered down to half): {delays:?}"
    );
}

#[tokio::test]
async fn without_renewable_credentials_a_401_takes_the_long_backoff() {
    let tokens = Arc::new(Rotating::default());
    let (delays, _) = run_until(config(server("never").await, &tokens, false), 1).await;
    assert!(
        delays[0].unwrap() >= Duration::from_secs(30),
        "the long backoff (60 s, jittered down to half): {delays:?}"
    );
    assert!(tokens.refused.lock().unwrap().is_empty());
}
