//! What an SSE server's final answer means: a stream to read, or a retry with the error a
//! stream's status shows and how long to wait (the policy in the parent module's comment).

use std::time::Duration;

use http::Response;
use http::header::{self, HeaderMap};

use crate::sse::ended;
use crate::text::{first_chars, status_text};

use super::{Attempt, Delay};

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What a final (non-redirect) response means; `None` = a stream to read.
pub(super) fn classify(response: &Response<()>) -> Option<Attempt> {
    let status = response.status();
    let code = status.as_u16();
    let outcome = match code {
        200 => {
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            match content_type {
                Some(ct) if is_event_stream(&ct) => return None,
                Some(ct) => not_sse(format!(
                    "wrong content type {:?}, expected text/event-stream (HTTP 200)",
                    first_chars(&ct, 100)
                )),
                None => not_sse("no content type, expected text/event-stream (HTTP 200)"),
            }
        }
        204 => not_sse("HTTP 204 No Content"),
        _ if status.is_success() => not_sse(format!(
            "unexpected {}, expected HTTP 200",
            status_text(status)
        )),
        401 => Attempt::Retry {
            error: "unauthorized (HTTP 401)".to_owned(),
            reason: ended::AUTH,
            delay: Delay::Unauthorized,
        },
        403 => Attempt::Retry {
            error: "forbidden (HTTP 403)".to_owned(),
            reason: ended::AUTH,
            delay: Delay::Long,
        },
        429 | 500..=599 => Attempt::Retry {
            error: status_text(status),
            reason: ended::HTTP_STATUS,
            delay: retry_after(response.headers()).map_or(Delay::Backoff, Delay::AtLeast),
        },
        _ => Attempt::Retry {
            error: status_text(status),
            reason: ended::HTTP_STATUS,
            delay: Delay::Long,
        },
    };
    Some(outcome)
}

/// A success answer that is not an event stream: a browser's EventSource would give up, but a
/// connector nobody watches must come back when the device does, so it waits the long backoff
/// (as for 403) and its status says why.
fn not_sse(what: impl Into<String>) -> Attempt {
    Attempt::Retry {
        error: format!(
            "{}; not an event stream, retried with the long backoff (60 s doubling to 5 min)",
            what.into()
        ),
        reason: ended::NOT_SSE,
        delay: Delay::Long,
    }
}

/// Whether a Content-Type's MIME essence is `text/event-stream` (case-insensitive, parameters ignored).
fn is_event_stream(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// `Retry-After` as seconds or an HTTP date, capped at an hour.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http::header::HeaderValue;

    use super::*;

    #[test]
    fn event_stream_content_type_essence() {
        assert!(is_event_stream("text/event-stream"));
        assert!(is_event_stream("Text/Event-Stream; charset=utf-8"));
        assert!(is_event_stream(" text/event-stream ;foo=bar"));
        assert!(!is_event_stream("text/plain"));
        assert!(!is_event_stream("text/event-streams"));
        assert!(!is_event_stream(""));
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        let later =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let d = retry_after(&headers).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
