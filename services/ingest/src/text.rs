//! Text from a device or a token endpoint, shortened for an error message or a log.

/// The first `max` characters of `text` (never cut inside a character): a server's reply
/// quoted in an error stays readable and bounded.
pub(crate) fn first_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
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
}
