//! The console's small cryptography: random 256-bit tokens, HMAC-SHA-256 (the pre-session CSRF
//! tokens) and a constant-time comparison, so neither a token's content nor its length leaks
//! through the time a check takes.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of a token in hex characters (256 random bits).
pub const TOKEN_HEX_LEN: usize = 64;

/// A fresh random 256-bit token, as 64 hex characters.
pub fn random_token() -> String {
    hex::encode(random_key())
}

/// 32 fresh random bytes (the thread RNG is a CSPRNG seeded from the OS).
pub fn random_key() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b
}

/// Whether `s` has the shape of a [`random_token`]: a cookie of another shape is ignored.
pub fn is_token(s: &str) -> bool {
    s.len() == TOKEN_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// HMAC-SHA-256 (RFC 2104) of `msg` under `key`.
pub fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Whether `a` and `b` are equal, in a time that depends on neither: both are hashed first, so
/// even their lengths stay hidden, then every byte of the digests is compared.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let mac = hmac(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn tokens_are_random_and_well_formed() {
        let (a, b) = (random_token(), random_token());
        assert!(is_token(&a) && is_token(&b));
        assert_ne!(a, b);
        assert!(!is_token("abc"));
        assert!(!is_token(&"z".repeat(TOKEN_HEX_LEN)));
    }

    #[test]
    fn same_compares_content_and_length() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}
