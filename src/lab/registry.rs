//! The lab's registry: the CNCF `distribution` registry, built from its Go module with the
//! other upstream programs, runs on the lab's first host (`lb1`) as a systemd service, with
//! TLS from a CA of the lab's own. `lab up` fills it from the binaries directory's image
//! archives (`images/`, `images/conformance/`) under the images' full names
//! (`registry.k8s.io/pause`), and the lab inventory points the registry mirrors of
//! registry.k8s.io, docker.io, ghcr.io and quay.io at it
//! (`https://10.77.0.11:5000/registry.k8s.io`, ...), so the nodes' containerd pulls what
//! the hosts cannot reach: a pull with policy `Always` works as on a site with a mirror.
//!
//! The files go into the host's overlay before it boots (see `host::create`); the storage
//! lives in the overlay too, so `lab down` removes it with the host and the next `lab up`
//! fills it again (the registry keeps what it has: only missing blobs are uploaded).

use super::error::{io_err, LabError};
use super::push::{Pushed, Registry};
use crate::fsutil::write_atomic;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The build component (`build-upstream.sh registry`) and its module version.
pub const COMPONENT: &str = "registry";
pub const VERSION: &str = "v3.1.2";
/// Where the build puts the program, relative to the lab directory.
pub const PROGRAM: &str = "tools/registry";
pub const PORT: u16 = 5000;
/// The upstream registries the lab inventory mirrors through it.
pub const MIRRORED: &[&str] = &["registry.k8s.io", "docker.io", "ghcr.io", "quay.io"];
/// The lab's CA for the registry, relative to the lab directory (the inventory's `ca_file`).
pub const CA_FILE: &str = "registry/ca.crt";
const CA_KEY_FILE: &str = "registry/ca.key";
/// The serving certificate and key, relative to the lab directory.
pub const CERT_FILE: &str = "registry/tls.crt";
pub const KEY_FILE: &str = "registry/tls.key";

/// Inside the host.
const HOST_PROGRAM: &str = "usr/local/bin/k8s-boot-lab-registry";
const HOST_CONFIG_DIR: &str = "etc/k8s-boot-lab-registry";
const UNIT: &str = "k8s-boot-lab-registry.service";

/// The registry's configuration: listening on `addr` with TLS from `cert` and `key`,
/// storing under `storage`.
pub fn config(addr: &str, storage: &str, cert: &str, key: &str) -> String {
    format!(
        "# The lab's registry (CNCF distribution), written by `k8s-boot lab up`; see docs/LAB.md.\n\
         version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n\
         http:\n  addr: {addr}\n  tls:\n    certificate: {cert}\n    key: {key}\n"
    )
}

const UNIT_TEXT: &str = "\
# The lab's registry (CNCF distribution), the nodes' registry mirror; written by
# `k8s-boot lab up`, see docs/LAB.md.
[Unit]
Description=k8s-boot lab registry
After=network-online.target

[Service]
# No OpenTelemetry collector here: without this the registry keeps trying to reach one.
Environment=OTEL_TRACES_EXPORTER=none
ExecStart=/usr/local/bin/k8s-boot-lab-registry serve /etc/k8s-boot-lab-registry/config.yml
Restart=always

[Install]
WantedBy=multi-user.target
";

/// The registry program of a lab, if its build made one (`lab build --fetch` builds
/// nothing, and its lab has no registry).
pub fn program(lab: &Path) -> Option<PathBuf> {
    let p = lab.join(PROGRAM);
    p.is_file().then_some(p)
}

/// The mirror URL of `registry` on the lab registry at `address`.
pub fn mirror_url(address: IpAddr, registry: &str) -> String {
    format!("https://{address}:{PORT}/{registry}")
}

/// The CA (kept while the lab exists) and a serving certificate for `address` (made again
/// each time: it is cheap, and the address is the layout's).
pub fn ensure_tls(lab: &Path, address: IpAddr) -> Result<(), LabError> {
    let dir = lab.join("registry");
    fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    let (ca_crt, ca_key) = (lab.join(CA_FILE), lab.join(CA_KEY_FILE));
    let tls = |e: rcgen::Error| LabError::Registry(format!("certificates: {e}"));
    let issuer = if ca_crt.is_file() && ca_key.is_file() {
        let key_pem = fs::read_to_string(&ca_key).map_err(io_err("cannot read", &ca_key))?;
        let crt_pem = fs::read_to_string(&ca_crt).map_err(io_err("cannot read", &ca_crt))?;
        let key = KeyPair::from_pem(&key_pem).map_err(tls)?;
        Issuer::from_ca_cert_pem(&crt_pem, key).map_err(tls)?
    } else {
        let key = KeyPair::generate().map_err(tls)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "k8s-boot lab registry CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(tls)?;
        write_atomic(&ca_key, key.serialize_pem().as_bytes(), 0o600)
            .map_err(io_err("cannot write", &ca_key))?;
        write_atomic(&ca_crt, cert.pem().as_bytes(), 0o644)
            .map_err(io_err("cannot write", &ca_crt))?;
        Issuer::new(params, key)
    };
    let key = KeyPair::generate().map_err(tls)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "k8s-boot lab registry");
    params.subject_alt_names = vec![SanType::IpAddress(address)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).map_err(tls)?;
    let (crt, key_file) = (lab.join(CERT_FILE), lab.join(KEY_FILE));
    write_atomic(&key_file, key.serialize_pem().as_bytes(), 0o600)
        .map_err(io_err("cannot write", &key_file))?;
    write_atomic(&crt, cert.pem().as_bytes(), 0o644).map_err(io_err("cannot write", &crt))?;
    Ok(())
}

/// Writes the program, its configuration, certificate and enabled unit into the root of
/// the host that runs the registry (before it boots).
pub fn install_into(root: &Path, lab: &Path, program: &Path) -> Result<(), LabError> {
    let put = |to: &str, bytes: &[u8], mode: u32| -> Result<(), LabError> {
        let target = root.join(to);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
        }
        write_atomic(&target, bytes, mode).map_err(io_err("cannot write", &target))
    };
    let read = |path: &Path| fs::read(path).map_err(io_err("cannot read", path));
    put(HOST_PROGRAM, &read(program)?, 0o755)?;
    let config = |name: &str| format!("{HOST_CONFIG_DIR}/{name}");
    put(&config("tls.crt"), &read(&lab.join(CERT_FILE))?, 0o644)?;
    put(&config("tls.key"), &read(&lab.join(KEY_FILE))?, 0o600)?;
    let text = self::config(
        &format!(":{PORT}"),
        "/var/lib/k8s-boot-lab-registry",
        &format!("/{HOST_CONFIG_DIR}/tls.crt"),
        &format!("/{HOST_CONFIG_DIR}/tls.key"),
    );
    put(&config("config.yml"), text.as_bytes(), 0o644)?;
    put(
        &format!("etc/systemd/system/{UNIT}"),
        UNIT_TEXT.as_bytes(),
        0o644,
    )?;
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).map_err(io_err("cannot create", &wants))?;
    let link = wants.join(UNIT);
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("../{UNIT}"), &link)
        .map_err(io_err("cannot link", &link))?;
    Ok(())
}

/// A client of the lab registry at `endpoint`, trusting the lab's CA.
pub fn client(lab: &Path, endpoint: &str) -> Result<Registry, LabError> {
    let ca_file = lab.join(CA_FILE);
    let ca = fs::read(&ca_file).map_err(io_err("cannot read", &ca_file))?;
    Registry::new(&format!("https://{endpoint}"), &ca)
}

/// What [`fill`] pushed.
#[derive(Debug, Default, Clone)]
pub struct Filled {
    pub images: usize,
    pub blobs: usize,
    pub bytes: u64,
}

/// Waits for the registry at `endpoint` (`10.77.0.11:5000`) to answer, then pushes every
/// archive of `binaries/images` and `binaries/images/conformance`.
pub fn fill(lab: &Path, endpoint: &str, binaries: &Path) -> Result<Filled, LabError> {
    let registry = client(lab, endpoint)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !registry.answers() {
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!("the lab registry on {endpoint}"),
                waited: Duration::from_secs(60),
                detail: format!("journalctl -u {UNIT} on the host says why"),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut filled = Filled::default();
    for sub in [crate::install::IMAGES_DIR, crate::conformance::IMAGES_DIR] {
        let dir = binaries.join(sub);
        let Ok(list) = fs::read_dir(&dir) else {
            continue;
        };
        let mut archives: Vec<PathBuf> = list
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "tar"))
            .collect();
        archives.sort();
        for archive in archives {
            let Pushed {
                images,
                blobs,
                bytes,
            } = registry.push_archive(&archive)?;
            filled.images += images.len();
            filled.blobs += blobs;
            filled.bytes += bytes;
        }
    }
    Ok(filled)
}
