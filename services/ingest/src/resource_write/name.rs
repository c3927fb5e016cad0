//! Resource names as Kubernetes names (RFC 1123 subdomains): the name becomes part of a file
//! name, so only lowercase letters, digits, `-` and `.` pass, never `/`, `..` or a leading dot.

/// Longest Kubernetes object name (an RFC 1123 subdomain).
pub const NAME_BYTES_MAX: usize = 253;

/// Checks `name` is a Kubernetes object name: labels of `[a-z0-9]([-a-z0-9]*[a-z0-9])?` joined
/// by dots, at most [`NAME_BYTES_MAX`] bytes. The message names the value, not the field: the
/// caller knows which field it checked (`metadata.name` of a document, `name` of a request).
pub fn check(name: &str) -> Result<(), String> {
    if name.len() > NAME_BYTES_MAX {
        return Err(format!(
            "{} bytes, more than the {NAME_BYTES_MAX} of a Kubernetes name",
            name.len()
        ));
    }
    let label_ok = |l: &str| {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        l.starts_with(alnum) && l.ends_with(alnum) && l.chars().all(|c| alnum(c) || c == '-')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!(
            "{name:?} is not a Kubernetes name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names_only() {
        for ok in ["a", "dev-1", "plant.line-2.sensor", "0x"] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "-a", "a-", "..", "../etc", "a/b", ".a", "a..b", "a_b", "é", "a.", " a",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check(&"a".repeat(253)).is_ok());
        assert!(check(&"a".repeat(254)).unwrap_err().contains("253"));
    }
}
