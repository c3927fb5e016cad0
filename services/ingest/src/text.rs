//! Text from a device or a token endpoint, shortened for an error message or a log, and the
//! words for an HTTP status such a message quotes.

/// The first `max` characters of `text` (never cut inside a character): a server's reply
/// quoted in an error stays readable and bounded.
pub(crate) fn first_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// A status as people read it ("HTTP 503 Service Unavailable"), for the errors a stream's
/// status and a failed token request show.
pub(crate) fn status_text(status: http::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_between_characters() {
        assert_eq!(first_chars("température", 5), "tempé");
        assert_eq!(first_chars("abc", 3), "abc");
        assert_eq!(first_chars("abc", 10), "abc");
        assert_eq!(first_chars("", 0), "");
    }

    #[test]
    fn status_texts() {
        assert_eq!(
            status_text(http::StatusCode::SERVICE_UNAVAILABLE),
            "HTTP 503 Service Unavailable"
        );
        assert_eq!(
            status_text(http::StatusCode::from_u16(599).unwrap()),
            "HTTP 599"
        );
    }
}
