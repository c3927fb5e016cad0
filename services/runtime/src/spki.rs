//! The public key of an X.509 certificate, found by a minimal DER walk.
//!
//! Why not webpki (what `CertifiedKey::keys_match` uses): it parses certificates as a verifier
//! must, and refuses X.509 v1 certificates (no extensions), which OpenSSL-based servers accept
//! and `openssl x509 -req` makes without an extension file. To match a private key against its
//! certificate only the SubjectPublicKeyInfo is needed, so this reads the outer structure up to
//! it and nothing else (x509-parser would do too, but adds five crates for one field):
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate TBSCertificate, ... }
//! TBSCertificate ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, serialNumber INTEGER,
//!     signature AlgorithmIdentifier, issuer Name, validity Validity, subject Name,
//!     subjectPublicKeyInfo SubjectPublicKeyInfo, ... }
//! SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
//! ```

/// Why a certificate's public key could not be found; each says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpkiError {
    /// The bytes end inside an element.
    #[error("truncated DER (the certificate file is cut short)")]
    Truncated,
    /// An element is not the one X.509 puts there.
    #[error("not an X.509 certificate: expected {0}")]
    Unexpected(&'static str),
    /// A length form DER does not allow (indefinite, or more than 4 bytes).
    #[error("invalid DER length")]
    Length,
}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xa0;
const BIT_STRING: u8 = 0x03;

/// One DER element: its tag, its contents, and the whole element.
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
    whole: &'a [u8],
}

/// Splits the first DER element off `input`; the rest follows it.
fn element(input: &[u8]) -> Result<(Element<'_>, &[u8]), SpkiError> {
    let (&tag, rest) = input.split_first().ok_or(SpkiError::Truncated)?;
    if tag & 0x1f == 0x1f {
        // High tag numbers never occur in the fields walked here.
        return Err(SpkiError::Unexpected("a low-number tag"));
    }
    let (&first, mut rest) = rest.split_first().ok_or(SpkiError::Truncated)?;
    let len = match first {
        0..=0x7f => usize::from(first),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            if rest.len() < n {
                return Err(SpkiError::Truncated);
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, b| acc << 8 | usize::from(*b))
        }
        _ => return Err(SpkiError::Length),
    };
    if rest.len() < len {
        return Err(SpkiError::Truncated);
    }
    let (contents, after) = rest.split_at(len);
    let header = input.len() - rest.len();
    let element = Element {
        tag,
        contents,
        whole: &input[..header + len],
    };
    Ok((element, after))
}

/// The first element of `input`, which must have `tag` (`what` names it in the error).
fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(Element<'a>, &'a [u8]), SpkiError> {
    let (e, rest) = element(input)?;
    if e.tag != tag {
        return Err(SpkiError::Unexpected(what));
    }
    Ok((e, rest))
}

/// The SubjectPublicKeyInfo (whole DER element) of a DER certificate of any X.509 version.
pub fn certificate_spki(cert: &[u8]) -> Result<&[u8], SpkiError> {
    let (certificate, _) = expect(cert, SEQUENCE, "a Certificate SEQUENCE")?;
    let (tbs, _) = expect(certificate.contents, SEQUENCE, "a TBSCertificate SEQUENCE")?;
    let mut fields = tbs.contents;
    let (first, rest) = element(fields)?;
    if first.tag == VERSION {
        fields = rest; // v2 / v3; a v1 certificate has no version field
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        fields = element(fields)?.1;
    }
    let (spki, _) = expect(fields, SEQUENCE, "a SubjectPublicKeyInfo SEQUENCE")?;
    Ok(spki.whole)
}

/// The `subjectPublicKey` bits of a SubjectPublicKeyInfo: the key itself, without the algorithm
/// identifier (whose optional NULL parameters encoders disagree on).
pub fn public_key_bits(spki: &[u8]) -> Result<&[u8], SpkiError> {
    let (info, _) = expect(spki, SEQUENCE, "a SubjectPublicKeyInfo SEQUENCE")?;
    let (_algorithm, rest) = expect(info.contents, SEQUENCE, "an AlgorithmIdentifier")?;
    let (bits, _) = expect(rest, BIT_STRING, "a subjectPublicKey BIT STRING")?;
    Ok(bits.contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An X.509 v1 certificate (no version field, no extensions) made from an Ed25519 key by
    /// `openssl req -new` then `openssl x509 -req -signkey` (OpenSSL 3).
    const V1_CERT: &str = "-----BEGIN CERTIFICATE-----
MIHiMIGVAhR6TEQotKIfSSD0CeT2nMjyp72Z9DAFBgMrZXAwFDESMBAGA1UEAwwJ
djEtY2xpZW50MB4XDTI2MTIwMzA3NDkwOVoXDTM2MTEzMDA3NDkwOVowFDESMBAG
A1UEAwwJdjEtY2xpZW50MCowBQYDK2VwAyEAZHHf3hicgKdU9AGYh2M6iKPwaTJp
BdMc6Vpe/XqXuyAwBQYDK2VwA0EAymP+jGKW1AVNRscv1P1Lu5ZBDzbx1qPkBQkH
dCf7N0kWkxhEVsXu/gPu4AhQ/xzEBs7NivjhWz3HQ/GCahxSCA==
-----END CERTIFICATE-----
";

    #[test]
    fn walks_a_v3_certificate_to_its_key() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let params = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let spki = certificate_spki(cert.der()).unwrap();
        assert_eq!(spki, rcgen::PublicKeyData::subject_public_key_info(&key));
        assert_eq!(
            public_key_bits(spki).unwrap()[1..],
            key.public_key_raw()[..]
        );
    }

    #[test]
    fn walks_a_v1_certificate_without_a_version_field() {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(V1_CERT.as_bytes()).unwrap();
        let spki = certificate_spki(&der).unwrap();
        // Ed25519: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits, 32 bytes) }.
        assert_eq!(
            spki[..12],
            [
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00
            ]
        );
        assert_eq!(public_key_bits(spki).unwrap().len(), 33);
    }

    #[test]
    fn each_broken_input_says_what_is_wrong() {
        assert_eq!(certificate_spki(b""), Err(SpkiError::Truncated));
        assert_eq!(
            certificate_spki(b"\x02\x01\x00"),
            Err(SpkiError::Unexpected("a Certificate SEQUENCE"))
        );
        assert_eq!(certificate_spki(b"\x30\x80"), Err(SpkiError::Length));
        assert_eq!(
            certificate_spki(b"\x30\x05\x30\x03"),
            Err(SpkiError::Truncated)
        );
        // A TBSCertificate with too few fields.
        assert_eq!(
            certificate_spki(b"\x30\x04\x30\x02\x02\x00"),
            Err(SpkiError::Truncated)
        );
        assert!(
            SpkiError::Unexpected("a Certificate SEQUENCE")
                .to_string()
                .contains("not an X.509 certificate")
        );
    }
}
