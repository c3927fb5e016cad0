//! Links with query strings: every value percent-encoded, so a name can never end the value or
//! start another parameter.

/// `path?k=v&...` with each value encoded.
pub fn href(path: &str, pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// `s` as a query value: unreserved bytes as they are, every other byte as `%XX`.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `s` as one path segment: [`encode`]d, and `.` or `..` (which a browser would resolve against
/// the path) as `%2E`s, so a name from a resource file cannot lead the link elsewhere.
pub fn segment(s: &str) -> String {
    match s {
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        _ => encode(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_stays_one_segment() {
        assert_eq!(
            segment("../devices/x?y=1#z"),
            "..%2Fdevices%2Fx%3Fy%3D1%23z"
        );
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("."), "%2E");
        assert_eq!(segment("weather-sensors"), "weather-sensors");
    }

    #[test]
    fn values_cannot_escape_their_parameter() {
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(
            href("/x", &[("device", "dev-1"), ("event_type", "t/é")]),
            "/x?device=dev-1&event_type=t%2F%C3%A9"
        );
    }
}
