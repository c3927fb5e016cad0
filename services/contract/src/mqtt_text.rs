//! What an MQTT 5 UTF-8 string may hold: topic names, the content type, user property names and
//! values, the response topic. MQTT forbids U+0000 and lets a receiver treat control characters
//! and Unicode non-characters as a malformed packet; Mosquitto does, and closes the connection.
//! A publisher re-sends an unacknowledged message after reconnecting, so one such string would
//! close every reconnect and stop every stream: each is refused before it is written.

/// The longest MQTT UTF-8 string or binary field, in bytes (a two-byte length prefix).
pub const STRING_BYTES_MAX: usize = 65_535;

/// Why a string cannot go into an MQTT packet. `Display` completes "<what> ...".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unfit {
    /// Longer than [`STRING_BYTES_MAX`].
    #[error("is {0} bytes, more than {STRING_BYTES_MAX}")]
    TooLong(usize),
    /// Holds a character MQTT forbids or lets a broker refuse.
    #[error("holds U+{:04X}, a character MQTT brokers refuse (NUL, control characters, Unicode non-characters)", u32::from(*.0))]
    Forbidden(char),
}

/// Whether MQTT forbids `c` (U+0000) or lets a receiver refuse it: the control characters
/// U+0001–U+001F and U+007F–U+009F, and the non-characters U+FDD0–U+FDEF and U+xFFFE/U+xFFFF.
pub fn is_forbidden(c: char) -> bool {
    let n = u32::from(c);
    n <= 0x1f
        || (0x7f..=0x9f).contains(&n)
        || (0xfdd0..=0xfdef).contains(&n)
        || n & 0xfffe == 0xfffe
}

/// Checks that `s` can be an MQTT UTF-8 string that brokers accept.
pub fn check(s: &str) -> Result<(), Unfit> {
    if s.len() > STRING_BYTES_MAX {
        return Err(Unfit::TooLong(s.len()));
    }
    first_forbidden(s).map_or(Ok(()), |c| Err(Unfit::Forbidden(c)))
}

/// `s` with every character brokers refuse written as its Rust escape (`\u{9}`), for text a
/// device chose (an SSE event's type or id) that an event carries as a property: the event is
/// delivered with a readable stand-in rather than refused. Borrowed when nothing needs escaping.
pub fn escaped(s: &str) -> std::borrow::Cow<'_, str> {
    if first_forbidden(s).is_none() {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_forbidden(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// The first character of `s` brokers refuse, if any.
fn first_forbidden(s: &str) -> Option<char> {
    // Nearly every string is printable ASCII: one pass over the bytes decides those. It does not
    // stop early, so the compiler can vectorise it (half the time on an event's properties).
    if s.bytes()
        .fold(true, |ok, b| ok & (b.wrapping_sub(0x20) < 0x5f))
    {
        return None;
    }
    s.chars().find(|&c| is_forbidden(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_in_any_script_fits() {
        for s in [
            "",
            "application/json",
            "héllo wörld",
            "温度",
            "emoji 🌡",
            "\u{a0}\u{fdcf}\u{fdf0}",
        ] {
            assert_eq!(check(s), Ok(()), "{s:?}");
        }
        assert_eq!(check(&"a".repeat(STRING_BYTES_MAX)), Ok(()));
    }

    #[test]
    fn nul_controls_and_non_characters_are_refused_by_name() {
        for (s, c) in [
            ("a\0b", '\0'),
            ("tab\there", '\t'),
            ("line\nfeed", '\n'),
            ("\u{1f}", '\u{1f}'),
            ("del\u{7f}", '\u{7f}'),
            ("c1 \u{85}", '\u{85}'),
            ("\u{9f}", '\u{9f}'),
            ("\u{fdd0}", '\u{fdd0}'),
            ("\u{fdef}", '\u{fdef}'),
            ("\u{fffe}", '\u{fffe}'),
            ("\u{ffff}", '\u{ffff}'),
            ("\u{1fffe}", '\u{1fffe}'),
            ("\u{10ffff}", '\u{10ffff}'),
        ] {
            assert_eq!(check(s), Err(Unfit::Forbidden(c)), "{s:?}");
        }
        assert_eq!(
            Unfit::Forbidden('\t').to_string(),
            "holds U+0009, a character MQTT brokers refuse (NUL, control characters, Unicode \
             non-characters)"
        );
    }

    #[test]
    fn escaped_text_fits_and_keeps_the_rest() {
        assert!(matches!(
            escaped("reading"),
            std::borrow::Cow::Borrowed("reading")
        ));
        assert_eq!(escaped("read\u{1}ing\t°"), r"read\u{1}ing\u{9}°");
        assert_eq!(check(&escaped("a\0\u{85}\u{fffe}")), Ok(()));
    }

    #[test]
    fn a_string_over_the_length_prefix_is_refused_with_its_size() {
        let long = "a".repeat(STRING_BYTES_MAX + 1);
        assert_eq!(check(&long), Err(Unfit::TooLong(STRING_BYTES_MAX + 1)));
        assert!(Unfit::TooLong(70_000).to_string().contains("65535"));
    }
}
