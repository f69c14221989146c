//! Reading an inventory: a bounded read of a regular file, UTF-8, then validation.

use super::cluster::Cluster;
use super::diagnostic::{Diagnostic, InventoryError, MAX_INVENTORY_BYTES};
use super::locate::Position;
use super::validate;
use crate::fsutil::FileKind;
use std::io::Read;
use std::path::Path;

impl Cluster {
    /// Reads, parses and validates an inventory file. Only a regular file is read (never a
    /// FIFO, device or directory), and at most [`MAX_INVENTORY_BYTES`] of it.
    pub fn load(path: &Path) -> Result<Cluster, InventoryError> {
        let bytes = read_bounded(path)?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses and validates the bytes of an inventory file, as [`Cluster::load`] does once
    /// it has read them; `path` names it in messages.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Cluster, InventoryError> {
        if bytes.len() as u64 > MAX_INVENTORY_BYTES {
            return Err(InventoryError::TooLarge {
                path: path.to_path_buf(),
                size: Some(bytes.len() as u64),
            });
        }
        match std::str::from_utf8(bytes) {
            Ok(source) => Self::from_source(path, source),
            Err(e) => Err(not_utf8(path, bytes, e)),
        }
    }

    /// Parses and validates inventory text; `path` names it in messages. A leading UTF-8
    /// byte order mark is ignored (columns on line 1 are counted after it).
    pub fn from_source(path: &Path, source: &str) -> Result<Cluster, InventoryError> {
        if source.len() as u64 > MAX_INVENTORY_BYTES {
            return Err(InventoryError::TooLarge {
                path: path.to_path_buf(),
                size: Some(source.len() as u64),
            });
        }
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        validate::validate(path, source)
    }
}

/// Opens `path` without blocking (a FIFO would wait for a writer), refuses anything but a
/// regular file, and reads at most one byte more than the limit, whatever the metadata says
/// (the file may grow while it is read).
fn read_bounded(path: &Path) -> Result<Vec<u8>, InventoryError> {
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            // A socket cannot be opened at all (ENXIO): say what it is instead.
            match std::fs::metadata(path).map(|m| FileKind::of(m.file_type())) {
                Ok(Some(kind)) => InventoryError::NotAFile {
                    path: path.to_path_buf(),
                    kind,
                },
                _ => read_err(e),
            }
        })?;
    let meta = file.metadata().map_err(read_err)?;
    if let Some(kind) = FileKind::of(meta.file_type()) {
        return Err(InventoryError::NotAFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    if meta.len() > MAX_INVENTORY_BYTES {
        return Err(InventoryError::TooLarge {
            path: path.to_path_buf(),
            size: Some(meta.len()),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_INVENTORY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_INVENTORY_BYTES {
        return Err(InventoryError::TooLarge {
            path: path.to_path_buf(),
            size: None,
        });
    }
    Ok(bytes)
}

/// The error for bytes that are not UTF-8, at the line and column of the first bad byte.
fn not_utf8(path: &Path, bytes: &[u8], e: std::str::Utf8Error) -> InventoryError {
    let good = &bytes[..e.valid_up_to()];
    // The prefix is valid UTF-8 by definition.
    let good = std::str::from_utf8(good).unwrap_or_default();
    let line_start = good.rfind('\n').map_or(0, |i| i + 1);
    let position = Position {
        line: good.matches('\n').count() + 1,
        col: good[line_start..].chars().count() + 1,
    };
    let byte = bytes[e.valid_up_to()];
    InventoryError::Invalid {
        file: path.to_path_buf(),
        problems: vec![Diagnostic::document_error(
            Some(position),
            format!(
                "byte 0x{byte:02x} at offset {} is not UTF-8; expected a UTF-8 encoded YAML file",
                e.valid_up_to()
            ),
        )],
    }
}
