//! The PEM files of the PKI as bytes: a certificate's DER, and a private key parsed or the
//! reason it cannot be used, said without quoting any of it (a key file's bytes are secret).

use rcgen::KeyPair;

/// The only private key format read and written: unencrypted PKCS#8.
const EXPECTED: &str = "unencrypted PKCS#8 (BEGIN PRIVATE KEY)";

/// Why a private key file is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("not text")]
    NotText,
    #[error("no PEM block (expected {EXPECTED})")]
    NotPem,
    #[error("the key is encrypted (expected {EXPECTED}): decrypt it with `openssl pkey -in FILE -out FILE`")]
    Encrypted,
    #[error("a {0} key (expected {EXPECTED}): convert it with `openssl pkcs8 -topk8 -nocrypt -in FILE -out FILE`")]
    OtherFormat(&'static str),
    #[error("a PEM block of another kind, {0} (expected {EXPECTED})")]
    NotAKey(String),
    #[error("damaged, or of an algorithm not supported (expected {EXPECTED}, as written by k8s-boot: ECDSA P-256)")]
    Damaged,
}

/// The private key in the PEM text `bytes`, or why it is not usable.
pub fn parse_private_key(bytes: &[u8]) -> Result<KeyPair, KeyFormatError> {
    let text = std::str::from_utf8(bytes).map_err(|_| KeyFormatError::NotText)?;
    // The parser's error is not kept: it can quote bytes of the key.
    KeyPair::from_pem(text).map_err(|_| classify(text))
}

/// Why the PEM text of a key that does not parse is not usable, from its first block's
/// label and headers.
fn classify(text: &str) -> KeyFormatError {
    let Some(label) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
    else {
        return KeyFormatError::NotPem;
    };
    // Legacy OpenSSL encryption: a SEC1 or PKCS#1 block with a Proc-Type header.
    if label == "ENCRYPTED PRIVATE KEY" || text.contains("Proc-Type: 4,ENCRYPTED") {
        return KeyFormatError::Encrypted;
    }
    match label {
        "EC PRIVATE KEY" => KeyFormatError::OtherFormat("SEC1 EC (BEGIN EC PRIVATE KEY)"),
        "RSA PRIVATE KEY" => KeyFormatError::OtherFormat("PKCS#1 RSA (BEGIN RSA PRIVATE KEY)"),
        "OPENSSH PRIVATE KEY" => KeyFormatError::OtherFormat("OpenSSH (BEGIN OPENSSH PRIVATE KEY)"),
        "PRIVATE KEY" => KeyFormatError::Damaged,
        other => KeyFormatError::NotAKey(printable_label(other)),
    }
}

/// A PEM label as shown in a message: only when it looks like one (capitals, digits,
/// spaces and `-`, at most 40), else its length; it is read from a file that may hold key
/// material, or anyone's text.
fn printable_label(label: &str) -> String {
    let looks_like_a_label = label.len() <= 40
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'-');
    if looks_like_a_label {
        format!("BEGIN {label}")
    } else {
        format!("a BEGIN line of {} characters", label.chars().count())
    }
}

/// DER bytes of the first PEM block of `pem`.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(block.contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unusable_key_says_why_and_quotes_nothing() {
        let good = KeyPair::generate().unwrap().serialize_pem();
        assert!(parse_private_key(good.as_bytes()).is_ok());
        let body = good.lines().nth(1).unwrap();
        // Blocks whose body is no PKCS#8 key (the parser reads the body whatever the label).
        let block = |label: &str, header: &str| {
            format!("-----BEGIN {label}-----\n{header}MIIBAjANBgkqhkiG9w0BAQEF\n-----END {label}-----\n")
        };
        let cert = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        let cases = [
            (good[..good.len() / 2].to_string(), KeyFormatError::Damaged),
            (block("PRIVATE KEY", ""), KeyFormatError::Damaged),
            (
                block("ENCRYPTED PRIVATE KEY", ""),
                KeyFormatError::Encrypted,
            ),
            (
                block(
                    "EC PRIVATE KEY",
                    "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n",
                ),
                KeyFormatError::Encrypted,
            ),
            (
                block("RSA PRIVATE KEY", ""),
                KeyFormatError::OtherFormat("PKCS#1 RSA (BEGIN RSA PRIVATE KEY)"),
            ),
            (
                block("EC PRIVATE KEY", ""),
                KeyFormatError::OtherFormat("SEC1 EC (BEGIN EC PRIVATE KEY)"),
            ),
            (cert, KeyFormatError::NotAKey("BEGIN CERTIFICATE".into())),
            (
                block("X\u{1b}[31m", ""),
                KeyFormatError::NotAKey("a BEGIN line of 6 characters".into()),
            ),
            ("hello".into(), KeyFormatError::NotPem),
        ];
        for (text, want) in cases {
            let got = parse_private_key(text.as_bytes()).unwrap_err();
            assert_eq!(got, want, "{text}");
            assert!(!got.to_string().contains(&body[..16]));
        }
        assert_eq!(
            parse_private_key(&[0xff, 0x00]).unwrap_err(),
            KeyFormatError::NotText
        );
    }
}
