//! Published checksum files.
//!
//! Two formats exist upstream: a bare hex digest (`kubelet.sha256` on dl.k8s.io) and
//! `sha256sum` output, one `digest  filename` line per file (etcd `SHA256SUMS`, containerd
//! `.sha256sum`, runc `runc.sha256sum`, CNI plugins `.sha256`).

use crate::digest::is_sha256_hex;

/// The lowercase sha256 hex digest for `file` in a checksum file, if there is one.
///
/// A file holding exactly one bare digest applies to whatever it was published next to.
/// In `sha256sum` output the name may carry a `*` (binary mode) or a leading directory
/// (`./name`, `bin/name`); only its last path component is compared.
pub fn find_digest(text: &str, file: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if let [only] = lines.as_slice() {
        if is_sha256_hex(only) {
            return Some(only.to_ascii_lowercase());
        }
    }
    for line in lines {
        let mut parts = line.splitn(2, char::is_whitespace);
        let (Some(digest), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let name = name.trim().trim_start_matches('*');
        let base = name.rsplit('/').next().unwrap_or(name);
        if base == file && is_sha256_hex(digest) {
            return Some(digest.to_ascii_lowercase());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    #[test]
    fn bare_digest_applies_to_any_name() {
        assert_eq!(find_digest(&format!("{A}\n"), "kubelet"), Some(A.into()));
        assert_eq!(
            find_digest(&format!("  {B}  "), "x"),
            Some(B.to_lowercase())
        );
    }

    #[test]
    fn sha256sum_lines_match_by_file_name() {
        let text =
            format!("{A}  etcd-v3.6.8-linux-amd64.tar.gz\n{B} *etcd-v3.6.8-linux-arm64.tar.gz\n");
        assert_eq!(
            find_digest(&text, "etcd-v3.6.8-linux-arm64.tar.gz"),
            Some(B.to_lowercase())
        );
        assert_eq!(
            find_digest(&text, "etcd-v3.6.8-linux-amd64.tar.gz"),
            Some(A.into())
        );
        assert_eq!(find_digest(&text, "etcd-v3.6.8-linux-s390x.tar.gz"), None);
        // A path in front of the name is ignored; a prefix match is not a match.
        assert_eq!(
            find_digest(&format!("{A}  ./bin/runc.amd64"), "runc.amd64"),
            Some(A.into())
        );
        assert_eq!(
            find_digest(&format!("{A}  runc.amd64\n{B}  runc.arm64"), "runc"),
            None
        );
    }

    #[test]
    fn rejects_things_that_are_not_digests() {
        assert_eq!(find_digest("<html>Not Found</html>", "kubelet"), None);
        assert_eq!(find_digest("abc123  kubelet", "kubelet"), None);
        assert_eq!(find_digest("", "kubelet"), None);
    }
}
