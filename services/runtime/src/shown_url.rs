//! A URL as an error message or a log line may show it: an operator's address flag can carry a
//! password (`http://user:secret@host`) or a token in its query, and the message that refuses
//! it must not print them.

/// `raw` with its user info, query and fragment replaced by `***`, so the reader sees they were
/// there. Text that does not parse as a URL with a host is not shown at all when it has an `@`
/// or a `?`.
pub fn shown(raw: &str) -> String {
    const HIDDEN: &str = "(not shown: it may hold credentials)";
    let url = url::Url::parse(raw).ok().filter(|u| !u.cannot_be_a_base());
    let Some(mut url) = url else {
        return if raw.contains(['@', '?']) {
            HIDDEN.to_string()
        } else {
            raw.to_string()
        };
    };
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_password(None);
        let _ = url.set_username("***");
    }
    if url.query().is_some() {
        url.set_query(Some("***"));
    }
    if url.fragment().is_some() {
        url.set_fragment(Some("***"));
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn credentials_and_queries_are_never_shown() {
        for raw in [
            "http://u:hunter2@host:1/",
            "ftp://u:hunter2@x",
            "mqtt://hunter2@b:99999",
            "http://b/?token=hunter2",
            "http://b/#hunter2",
            "u:hunter2@x",
            "hunter2@x:1",
            "http://[::1:hunter2@x",
        ] {
            let s = shown(raw);
            assert!(!s.contains("hunter2"), "{raw} shown as {s}");
        }
        assert_eq!(shown("http://u:p@host:1/x?q=1"), "http://***@host:1/x?***");
        assert_eq!(shown("127.0.0.1:50051"), "127.0.0.1:50051");
        assert_eq!(shown("ftp://x"), "ftp://x/");
    }
}
