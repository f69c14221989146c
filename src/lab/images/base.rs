//! What several images share: the files of upstream's distroless base, the CA bundle, the
//! PATH and the runtime config of the single-program images.

use crate::lab::error::{io_err, LabError};
use crate::oci::{Entry, ImageConfig};
use std::fs;
use std::path::{Path, PathBuf};

pub(super) const PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The Debian package of the CA bundle.
pub(super) const CA_PACKAGES: &[&str] = &["ca-certificates"];

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n";
pub(super) const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n\
networks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n";

/// The config of an image that runs one program: `entrypoint` as `user`, from `/`.
pub(super) fn program_config(entrypoint: &[&str], user: &str) -> ImageConfig {
    ImageConfig {
        entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
        user: user.into(),
        env: vec![PATH_ENV.into()],
        working_dir: "/".into(),
        ..ImageConfig::default()
    }
}

/// What upstream's distroless base holds that a Go program may use: users, name service
/// switch, `/tmp` and the CA bundle.
pub(super) fn distroless_base(root: &Path) -> Result<Vec<Entry>, LabError> {
    Ok(vec![
        Entry::bytes("/etc/passwd", PASSWD, 0o644),
        Entry::bytes("/etc/group", GROUP, 0o644),
        Entry::bytes("/etc/nsswitch.conf", NSSWITCH, 0o644),
        Entry::bytes(
            "/etc/ssl/certs/ca-certificates.crt",
            ca_bundle(root)?,
            0o644,
        ),
        Entry::dir("/tmp", 0o1777),
    ])
}

/// The bundle `update-ca-certificates` makes from every certificate Debian's
/// `ca-certificates` ships (all enabled, as by default), sorted by file name.
pub(super) fn ca_bundle(root: &Path) -> Result<Vec<u8>, LabError> {
    let dir = root.join("usr/share/ca-certificates/mozilla");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(io_err("cannot read", &dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LabError::State {
            path: dir,
            message: "no certificates in Debian's ca-certificates package".into(),
        });
    }
    let mut bundle = Vec::new();
    for f in files {
        let mut pem = fs::read(&f).map_err(io_err("cannot read", &f))?;
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        bundle.extend(pem);
    }
    Ok(bundle)
}
