//! Reading a file from a directory others may have planted things in: only a regular file,
//! never through a symbolic link, never blocking on a FIFO or device, and never more than a
//! cap, so that a link to `/dev/zero` or a huge file cannot exhaust memory.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What stands where a regular file was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Symlink,
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileKind {
    /// The kind of a non-regular file; `None` for a regular one.
    pub fn of(file_type: fs::FileType) -> Option<FileKind> {
        let kinds = [
            (file_type.is_symlink(), FileKind::Symlink),
            (file_type.is_dir(), FileKind::Directory),
            (file_type.is_fifo(), FileKind::Fifo),
            (file_type.is_socket(), FileKind::Socket),
            (file_type.is_char_device(), FileKind::CharDevice),
            (file_type.is_block_device(), FileKind::BlockDevice),
        ];
        kinds.into_iter().find(|(is, _)| *is).map(|(_, kind)| kind)
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Symlink => "a symbolic link",
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
        })
    }
}

/// Why [`read_regular`] returned no bytes. The messages read after a file name.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("missing")]
    NotFound,
    #[error("is {0}, not a regular file (links are not followed)")]
    NotRegular(FileKind),
    #[error("is larger than {}, the most read from it", size_text(*cap))]
    TooLarge { cap: u64 },
    #[error("cannot be read: {0}")]
    Io(io::Error),
}

/// `1 MiB` for whole mebibytes, else bytes.
fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The bytes of the regular file `path`, at most `cap` of them. A symbolic link (even one
/// to a regular file), FIFO, socket, device or directory is refused without reading it; a
/// FIFO is opened without blocking. The type is checked on the open descriptor too, so a
/// file swapped in between is refused as well.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let not_found = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => ReadError::NotFound,
        _ => ReadError::Io(e),
    };
    let meta = fs::symlink_metadata(path).map_err(not_found)?;
    if let Some(kind) = FileKind::of(meta.file_type()) {
        return Err(ReadError::NotRegular(kind));
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => ReadError::NotRegular(FileKind::Symlink),
            _ => not_found(e),
        })?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if let Some(kind) = FileKind::of(meta.file_type()) {
        return Err(ReadError::NotRegular(kind));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge { cap });
    }
    // The file may grow after fstat: read one byte more than the cap to notice.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge { cap });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn reads_regular_files_only_and_caps_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        fs::write(p("small"), "abc").unwrap();
        assert_eq!(read_regular(&p("small"), 3).unwrap(), b"abc");
        let err = read_regular(&p("small"), 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "is larger than 2 bytes, the most read from it"
        );
        assert!(matches!(
            read_regular(&p("none"), 9),
            Err(ReadError::NotFound)
        ));

        symlink(p("small"), p("link")).unwrap();
        symlink(p("none"), p("dangling")).unwrap();
        symlink("/dev/zero", p("zero")).unwrap();
        for link in ["link", "dangling", "zero"] {
            assert!(
                matches!(
                    read_regular(&p(link), 1 << 20),
                    Err(ReadError::NotRegular(FileKind::Symlink))
                ),
                "{link}"
            );
        }
        let fifo = std::ffi::CString::new(p("fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let err = read_regular(&p("fifo"), 1 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "is a FIFO (named pipe), not a regular file (links are not followed)"
        );
        assert!(matches!(
            read_regular(Path::new("/dev/null"), 1),
            Err(ReadError::NotRegular(FileKind::CharDevice))
        ));
        assert!(matches!(
            read_regular(dir.path(), 1),
            Err(ReadError::NotRegular(FileKind::Directory))
        ));
        assert_eq!(
            ReadError::TooLarge { cap: 1 << 20 }.to_string(),
            "is larger than 1 MiB, the most read from it"
        );
    }
}
