//! The lab registry's pieces against the real registry: the CNCF distribution registry the
//! lab build makes (`target/lab-build/tools/registry`; tests/run-all.sh builds it first),
//! run on 127.0.0.1 with the TLS material `registry::ensure_tls` makes, filled by
//! `registry::fill` from image archives as the lab's binaries directory holds them. The
//! whole path (nodes pulling through it) is checked on the lab cluster (tests/lab_cluster.rs).

mod common;

use k8s_boot::lab::registry;
use k8s_boot::oci::{build_layer, write_image, Entry, ImageConfig};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The registry, serving `storage` on 127.0.0.1:`port` with the lab's TLS files of `lab`.
fn serve(lab: &Path, storage: &Path, port: u16) -> Served {
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lab-build/tools/registry");
    assert!(
        program.is_file(),
        "{} is missing: run `cargo run -- lab build --dir target/lab-build` first \
         (tests/run-all.sh does)",
        program.display()
    );
    let config = lab.join("config.yml");
    let path = |rel: &str| lab.join(rel).to_string_lossy().into_owned();
    fs::write(
        &config,
        registry::config(
            &format!("127.0.0.1:{port}"),
            &storage.to_string_lossy(),
            &path(registry::CERT_FILE),
            &path(registry::KEY_FILE),
        ),
    )
    .unwrap();
    let child = Command::new(program)
        .arg("serve")
        .arg(&config)
        .env("OTEL_TRACES_EXPORTER", "none")
        .stdout(Stdio::null())
        .stderr(fs::File::create(lab.join("registry.log")).unwrap())
        .spawn()
        .unwrap();
    Served(child)
}

#[test]
fn the_lab_registry_takes_the_archives_and_serves_them_under_their_full_names() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path();
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    registry::ensure_tls(lab, loopback).unwrap();
    let key_mode = |rel: &str| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(lab.join(rel)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(key_mode("registry/ca.key"), 0o600);
    assert_eq!(key_mode(registry::KEY_FILE), 0o600);

    // Two images sharing a layer, one of them for the conformance directory.
    let binaries = lab.join("binaries");
    let shared = build_layer(&[Entry::bytes("shared", vec![7u8; 300_000], 0o644)]).unwrap();
    let own = build_layer(&[Entry::bytes("own", b"b".to_vec(), 0o644)]).unwrap();
    fs::create_dir_all(binaries.join("images/conformance")).unwrap();
    let a = write_image(
        &binaries.join("images/a.tar"),
        "registry.k8s.io/e2e/a:1.0",
        &ImageConfig::default(),
        std::slice::from_ref(&shared),
    )
    .unwrap();
    let b = write_image(
        &binaries.join("images/conformance/b.tar"),
        "docker.io/library/b:2",
        &ImageConfig::default(),
        &[shared, own],
    )
    .unwrap();

    let port = free_port();
    let _served = serve(lab, &lab.join("storage"), port);
    let endpoint = format!("127.0.0.1:{port}");
    let first = registry::fill(lab, &endpoint, &binaries).unwrap();
    assert_eq!(first.images, 2);
    // a: config + shared; b: config + shared (another repository) + own.
    assert_eq!(first.blobs, 5, "{first:?}");

    let client = registry::client(lab, &endpoint).unwrap();
    assert_eq!(
        client
            .manifest_digest("registry.k8s.io/e2e/a", "1.0")
            .unwrap(),
        Some(a)
    );
    assert_eq!(
        client.manifest_digest("docker.io/library/b", "2").unwrap(),
        Some(b)
    );
    assert_eq!(
        client.manifest_digest("docker.io/library/b", "3").unwrap(),
        None
    );

    // Filled again (every `lab up`): nothing is uploaded twice.
    let again = registry::fill(lab, &endpoint, &binaries).unwrap();
    assert_eq!((again.images, again.blobs, again.bytes), (2, 0, 0));

    // A client without the lab's CA is refused: the registry is TLS only.
    let other = tempfile::tempdir().unwrap();
    registry::ensure_tls(other.path(), loopback).unwrap();
    let stranger = registry::client(other.path(), &endpoint).unwrap();
    assert!(!stranger.answers());
}
