//! `RenderError`: why a plan could not be made.

use crate::pki::PkiError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A built-in template failed. The message is Tera's chain as text, not the error: it
    /// has been redacted of secret values.
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    /// An override file is wrong (invalid input); redacted like `Template`.
    #[error("template override {path}: {message}")]
    Override { path: PathBuf, message: String },
    /// A file the inventory names is not what its field expects.
    #[error("{}: {field}: {message}", file.display())]
    Input {
        file: PathBuf,
        field: String,
        message: String,
    },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("--out {}: {reason}", path.display())]
    Output { path: PathBuf, reason: String },
    /// Another render holds the lock of the output directory.
    #[error("{} is held by {holder}: another render is writing that output; run this again when it has finished", path.display())]
    Busy { path: PathBuf, holder: String },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RenderError {
    /// An override file or a refused `--out` is the input's; a built-in template's error (a
    /// bug) or I/O is not; the PKI's error says for itself.
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            RenderError::Override { .. }
            | RenderError::Output { .. }
            | RenderError::Input { .. } => Fault::Input,
            RenderError::Template { .. } | RenderError::Io { .. } | RenderError::Busy { .. } => {
                Fault::Runtime
            }
            RenderError::Pki(e) => e.fault(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}
