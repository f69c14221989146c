//! An add-on's Go program image ([`crate::addons::Recipe::GoProgram`]): the built program at
//! its row's path on the distroless base, run as its row's user.

use super::base::{distroless_base, program_config};
use super::inputs_digest::sha256_file;
use crate::addons::GoProgram;
use crate::lab::error::LabError;
use crate::oci::{Entry, ImageConfig};
use std::path::Path;

/// The inputs record's line: the program's digest.
pub(super) fn inputs(recipe: &GoProgram, program: &Path) -> Result<Vec<String>, LabError> {
    Ok(vec![format!(
        "program {} {}",
        recipe.path,
        sha256_file(program, &format!("the {} program", recipe.program_name()))?
    )])
}

/// The layer and config, with the CA bundle from `root` (Debian's `ca-certificates`).
pub(super) fn contents(
    recipe: &GoProgram,
    program: &Path,
    root: &Path,
) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    let mut e = distroless_base(root)?;
    e.push(Entry::file(recipe.path, program, 0o755));
    Ok((e, program_config(&[recipe.path], recipe.user)))
}
