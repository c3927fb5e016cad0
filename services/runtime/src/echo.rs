//! Client input quoted back in an error: whole when short, else its start and its size, so a
//! megabyte name or topic makes a short error, not a megabyte one (sent twice when a field
//! violation repeats it).

/// Bytes of a value quoted whole; a longer one is cut at a character boundary.
pub const QUOTED_BYTES_MAX: usize = 100;

/// `value` as an error quotes it: `"abc"`, or `"abc…" (1000000 bytes)` past
/// [`QUOTED_BYTES_MAX`], control characters escaped as `{:?}` does.
pub fn quoted(value: &str) -> String {
    if value.len() <= QUOTED_BYTES_MAX {
        return format!("{value:?}");
    }
    let shown = format!("{:?}", prefix(value, QUOTED_BYTES_MAX));
    format!("{}…\" ({} bytes)", &shown[..shown.len() - 1], value.len())
}

/// The longest start of `value` of at most `max` bytes that ends on a character boundary.
pub fn prefix(value: &str, max: usize) -> &str {
    let end = (0..=max.min(value.len()))
        .rev()
        .find(|&i| value.is_char_boundary(i))
        .unwrap_or(0);
    &value[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_whole_long_ones_cut_with_their_size() {
        assert_eq!(quoted("a\tb"), r#""a\tb""#);
        let long = "x".repeat(1_000_000);
        let q = quoted(&long);
        assert!(q.len() < 130, "{q}");
        assert!(q.ends_with("…\" (1000000 bytes)"), "{q}");
        let wide = "é".repeat(100);
        assert!(quoted(&wide).ends_with("…\" (200 bytes)"));
    }
}
