//! Errors of building and reading image archives; each names the path or entry.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image reference `{0}` is not NAME:TAG (a tag is required, a digest is not accepted)")]
    Reference(String),
    /// The `index.json` of an archive is not JSON; `path` names the archive and the entry.
    #[error("layer entry `{path}`: {source}")]
    IndexJson {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("layer entry `{path}`: {message}")]
    Entry { path: String, message: String },
}

pub(super) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OciError {
    let path = path.to_path_buf();
    move |source| OciError::Io {
        action,
        path,
        source,
    }
}
