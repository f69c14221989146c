//! The state of one fetch run, shared by the release downloads (`download`) and the image
//! pulls (`image_pull`): the HTTP client, the directories, `versions.json` as it grows, the
//! report and the progress callback.

use std::path::PathBuf;

use super::error::FetchError;
use super::http::Client;
use super::manifest::{write_manifest, Manifest};
use super::report::FetchReport;

pub(crate) struct Run<'p> {
    pub(crate) client: Client,
    /// The binaries directory.
    pub(crate) dir: PathBuf,
    /// `{dir}/.cache`.
    pub(crate) cache: PathBuf,
    pub(crate) arch: String,
    pub(crate) manifest: Manifest,
    pub(crate) report: FetchReport,
    pub(crate) progress: &'p mut dyn FnMut(&str),
}

impl Run<'_> {
    pub(crate) fn say(&mut self, line: String) {
        (self.progress)(&line);
    }

    /// Writes `versions.json` as it is now; called after every installed file so that an
    /// interrupted run keeps the record of what it finished.
    pub(crate) fn save_manifest(&self) -> Result<(), FetchError> {
        write_manifest(&self.dir, &self.manifest)
    }
}
