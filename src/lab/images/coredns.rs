//! The CoreDNS image: the built program as `/coredns` with the file capability upstream sets,
//! on the distroless base; user 65532.

use super::base::{distroless_base, program_config};
use super::inputs_digest::sha256_file;
use super::spec::ImageInputs;
use crate::lab::error::LabError;
use crate::oci::{Entry, ImageConfig};
use std::path::Path;

/// `security.capability` (VFS_CAP_REVISION_2, effective) with `cap_net_bind_service`: what
/// upstream's `setcap cap_net_bind_service=+ep /coredns` writes.
const NET_BIND_SERVICE_CAPABILITY: [u8; 20] =
    [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The inputs record's line: the program's digest.
pub(super) fn inputs(opts: &ImageInputs) -> Result<Vec<String>, LabError> {
    Ok(vec![format!(
        "program /coredns {}",
        sha256_file(&opts.coredns, "the CoreDNS program")?
    )])
}

/// The layer and config, with the CA bundle from `root` (Debian's `ca-certificates`).
pub(super) fn contents(
    opts: &ImageInputs,
    root: &Path,
) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    let mut e = distroless_base(root)?;
    e.push(
        Entry::file("/coredns", &opts.coredns, 0o755)
            .with_xattr("security.capability", NET_BIND_SERVICE_CAPABILITY),
    );
    Ok((e, program_config(&["/coredns"], "65532:65532")))
}
