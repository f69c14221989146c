//! Arbitrary PKI files through the PKI loader, as `certs`, `certs check`, `render` and
//! `install --dry-run` read them from the directory: a complete PKI is made once, then for
//! each input some of its files are replaced by pieces of the input, and `Pki::check` and a
//! dry-run `Pki::ensure` read them (capped regular-file read, PEM, X.509, the private key
//! parser, the key-pair match, the CA and leaf checks, the encryption key), then the files
//! are restored. Any panic, hang or out-of-memory is a bug, and so is an error message that
//! quotes a byte run of a private key or of the encryption key.
//!
//! Input: one flags byte, then up to [`FILES`] pieces separated by [`SEPARATOR`]. Flag bit
//! 0 wraps the certificate pieces, bit 1 the key pieces, in PEM armour (base64), so that the
//! mutations reach the DER parsers directly.
#![no_main]

use k8s_boot::inventory::Cluster;
use k8s_boot::pki::{Options, Pki};
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

/// The files an input replaces, in order: a CA (its certificate is also every leaf's
/// issuer), a leaf, the service-account pair, the encryption key.
const FILES: &[&str] = &[
    "ca.crt",
    "ca.key",
    "admin.crt",
    "admin.key",
    "etcd/ca.crt",
    "sa.key",
    "sa.pub",
    "encryption.key",
];
const SEPARATOR: &[u8] = b"\n--8<--\n";

const INVENTORY: &str = "\
cluster: {name: fuzz, kubernetes_version: v1.36.0}
hosts:
  - {name: m1, address: 192.0.2.11, roles: [etcd, control-plane, worker]}
";

struct Fixture {
    dir: tempfile::TempDir,
    cluster: Cluster,
    /// The files of [`FILES`] as `certs` made them, restored after each input.
    originals: Vec<Vec<u8>>,
    /// Byte runs of every private key and of the encryption key that no message may quote.
    secrets: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // tmpfs when there is one: each input rewrites a few files.
        let dir = tempfile::Builder::new()
            .tempdir_in(if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" })
            .unwrap();
        let cluster = Cluster::from_source(Path::new("hosts.yaml"), INVENTORY).unwrap();
        Pki::new(dir.path())
            .ensure(&cluster, Options::default())
            .unwrap();
        let originals = FILES
            .iter()
            .map(|f| fs::read(dir.path().join(f)).unwrap())
            .collect();
        let mut secrets = Vec::new();
        for f in ["ca.key", "admin.key", "etcd/ca.key", "sa.key", "encryption.key"] {
            let text = fs::read_to_string(dir.path().join(f)).unwrap();
            for line in text.lines().filter(|l| !l.starts_with("-----") && l.len() >= 16) {
                secrets.push(line[..16].to_string());
            }
        }
        Fixture {
            dir,
            cluster,
            originals,
            secrets,
        }
    })
}

fn armour(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

fn split<'a>(mut data: &'a [u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    while pieces.len() + 1 < FILES.len() {
        match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                pieces.push(&data[..at]);
                data = &data[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    pieces.push(data);
    pieces
}

fn assert_quotes_no_secret(f: &Fixture, text: &str) {
    for s in &f.secrets {
        assert!(!text.contains(s.as_str()), "a message quotes key material: {text}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let pieces = split(rest);
    for (file, piece) in FILES.iter().zip(&pieces) {
        let bytes = match (file.ends_with(".crt"), file.ends_with(".key")) {
            (true, _) if flags & 1 != 0 => armour("CERTIFICATE", piece),
            (_, true) if flags & 2 != 0 && *file != "encryption.key" => {
                armour("PRIVATE KEY", piece)
            }
            _ => piece.to_vec(),
        };
        fs::write(f.dir.path().join(file), bytes).unwrap();
    }

    match Pki::new(f.dir.path()).check(&f.cluster) {
        Ok(rows) => {
            for row in rows {
                assert_quotes_no_secret(f, &row.status.to_string());
                let _ = (row.subject, row.issuer, row.not_after, row.days_left);
            }
        }
        Err(e) => assert_quotes_no_secret(f, &e.to_string()),
    }
    let dry = Pki::dry_run(f.dir.path());
    if let Err(e) = dry.ensure(&f.cluster, Options::default()) {
        assert_quotes_no_secret(f, &e.to_string());
    }
    for name in ["ca.crt", "admin.crt", "sa.pub"] {
        let _ = dry.read(name);
    }

    for (file, original) in FILES.iter().zip(&f.originals) {
        fs::write(f.dir.path().join(file), original).unwrap();
    }
});
