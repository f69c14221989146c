//! Digests of an image's local inputs, for the inputs record.

use crate::lab::error::{io_err, LabError};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;

/// `sha256:<hex>` of the file at `path` (`what` names it in errors), streamed.
pub(super) fn sha256_file(path: &Path, what: &str) -> Result<String, LabError> {
    let mut f = fs::File::open(path).map_err(io_err(format!("cannot read {what}"), path))?;
    let mut hasher = Sha256::new();
    crate::digest::hash_reader(&mut f, &mut hasher)
        .map_err(io_err(format!("cannot read {what}"), path))?;
    Ok(format!("sha256:{}", crate::digest::finish_hex(hasher)))
}
