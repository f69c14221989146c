//! The metrics-server image: the built program as `/metrics-server` on the distroless base;
//! user 65534.

use super::base::{distroless_base, program_config};
use super::inputs_digest::sha256_file;
use super::spec::ImageInputs;
use crate::lab::error::LabError;
use crate::oci::{Entry, ImageConfig};
use std::path::Path;

/// The inputs record's line: the program's digest.
pub(super) fn inputs(opts: &ImageInputs) -> Result<Vec<String>, LabError> {
    Ok(vec![format!(
        "program /metrics-server {}",
        sha256_file(&opts.metrics_server, "the metrics-server program")?
    )])
}

/// The layer and config, with the CA bundle from `root` (Debian's `ca-certificates`).
pub(super) fn contents(
    opts: &ImageInputs,
    root: &Path,
) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    let mut e = distroless_base(root)?;
    e.push(Entry::file("/metrics-server", &opts.metrics_server, 0o755));
    Ok((e, program_config(&["/metrics-server"], "65534")))
}
