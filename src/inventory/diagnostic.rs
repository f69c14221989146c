//! What is wrong with an inventory: one `Diagnostic` per problem, and `InventoryError`, the
//! error of `Cluster::load` (an unreadable file, or the list of diagnostics).

use super::locate::Position;
use std::path::{Path, PathBuf};

/// Largest inventory file accepted, in bytes (1 MiB); a real one is a few KiB.
pub const MAX_INVENTORY_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    /// `error` or `warning`, as messages and JSON spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem found in an inventory, located as precisely as the file allows.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Field path such as `hosts[2].address`.
    pub field: String,
    pub position: Option<Position>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "inventory {} is {kind}, not a regular file; expected the path of a YAML file",
        path.display()
    )]
    NotAFile {
        path: PathBuf,
        kind: crate::fsutil::FileKind,
    },
    #[error(
        "inventory {} is {}; expected a YAML file of at most {MAX_INVENTORY_BYTES} bytes (1 MiB)",
        path.display(),
        match size {
            Some(n) => format!("{n} bytes"),
            None => format!("larger than {MAX_INVENTORY_BYTES} bytes"),
        }
    )]
    TooLarge { path: PathBuf, size: Option<u64> },
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Diagnostic>,
    },
}

fn render_problems(file: &Path, problems: &[Diagnostic]) -> String {
    let errors = problems
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let mut out = format!(
        "inventory {} is invalid ({errors} error(s)):",
        file.display()
    );
    for d in problems {
        out.push_str("\n  ");
        out.push_str(&d.display_in(file));
    }
    out
}

impl Diagnostic {
    /// An error about the document as a whole (its encoding, syntax or size).
    pub(super) fn document_error(position: Option<Position>, message: String) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            field: "(document)".to_string(),
            position,
            message,
        }
    }

    pub fn display_in(&self, file: &Path) -> String {
        let level = self.severity.as_str();
        let at = match self.position {
            Some(p) => format!("{}:{}:{}", file.display(), p.line, p.col),
            None => file.display().to_string(),
        };
        format!("{at}: {level}: {}: {}", self.field, self.message)
    }
}

impl InventoryError {
    /// Every inventory error is the input's.
    pub fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Input
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}
