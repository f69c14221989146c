//! sha256 digests as the crate spells them: lowercase hex (`sha256sum`, `versions.json`,
//! rendered plans) and `sha256:<hex>` (OCI descriptors, registry references).
//!
//! The one place bytes become hex, so every digest the product prints or compares has the
//! same spelling.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Lowercase hex of `bytes` (a finished digest).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of what `hasher` was fed.
pub fn finish_hex(hasher: Sha256) -> String {
    hex(&hasher.finalize())
}

/// `sha256:<hex>` of `bytes`, the OCI digest.
pub fn oci_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Whether `s` is 64 hex digits (either case: published checksum files vary).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The hex part of an OCI digest `sha256:<64 lowercase hex>`, or `None` for anything else
/// (other algorithms, uppercase, wrong length).
pub fn oci_digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// Feeds everything `reader` yields into `hasher`; returns the byte count.
pub fn hash_reader(reader: &mut dyn Read, hasher: &mut Sha256) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// Lowercase hex sha256 of a local file (streamed), or `None` when it does not exist.
pub fn sha256_file(path: &Path) -> io::Result<Option<String>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    hash_reader(&mut f, &mut hasher)?;
    Ok(Some(finish_hex(hasher)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // sha256 of "abc" (FIPS 180-2, appendix B.1).
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn hex_spellings_agree() {
        assert_eq!(sha256_hex(b"abc"), ABC);
        assert_eq!(oci_digest(b"abc"), format!("sha256:{ABC}"));
        let mut h = Sha256::new();
        let n = hash_reader(&mut &b"abc"[..], &mut h).unwrap();
        assert_eq!((n, finish_hex(h)), (3, ABC.to_string()));
        assert_eq!(hex(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
    }

    #[test]
    fn digest_shapes() {
        assert!(is_sha256_hex(ABC));
        assert!(is_sha256_hex(&ABC.to_uppercase()));
        assert!(!is_sha256_hex(&ABC[1..]));
        assert_eq!(oci_digest_hex(&format!("sha256:{ABC}")), Some(ABC));
        assert_eq!(
            oci_digest_hex(&format!("sha256:{}", ABC.to_uppercase())),
            None
        );
        assert_eq!(oci_digest_hex(&format!("sha512:{ABC}")), None);
        assert_eq!(oci_digest_hex(ABC), None);
    }

    #[test]
    fn files_hash_like_sha256sum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(sha256_file(&path).unwrap(), None);
        std::fs::write(&path, b"abc").unwrap();
        let out = std::process::Command::new("sha256sum")
            .arg(&path)
            .output()
            .unwrap();
        let want = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            sha256_file(&path).unwrap().as_deref(),
            want.split_whitespace().next()
        );
    }
}
