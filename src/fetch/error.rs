//! Errors of the release fetcher. Every variant names what it was working on (URL or path).

use std::io;

use super::shown_url::RedactedUrl;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The Kubernetes version is malformed or not a supported minor.
    #[error("{0}")]
    Version(String),

    #[error("unsupported architecture `{0}` (supported: amd64, arm64)")]
    Arch(String),

    #[error(
        "mirror URL for {component} must start with http:// or https://, got `{}`",
        RedactedUrl::new(url)
    )]
    Mirror { component: String, url: String },

    /// The server answered with an error status (404, 500, ...).
    #[error("GET {}: HTTP {status} {reason}", RedactedUrl::new(url))]
    Http {
        url: String,
        status: u16,
        reason: String,
    },

    /// Connection, TLS, timeout or an interrupted body. A partial download stays in `.cache`
    /// and the next run resumes it.
    #[error("GET {}: {message}", RedactedUrl::new(url))]
    Network { url: String, message: String },

    /// The downloaded bytes do not match the published checksum; the download was deleted.
    #[error(
        "checksum mismatch for {}: expected sha256 {expected}, got {actual}; the download was deleted", RedactedUrl::new(url)
    )]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },

    /// The checksum file has no usable sha256 line for the artifact.
    #[error(
        "{}: no sha256 checksum for `{file}` in the checksum file",
        RedactedUrl::new(url)
    )]
    ChecksumMissing { url: String, file: String },

    #[error(
        "{}: checksum file larger than {limit} bytes; refusing to read it",
        RedactedUrl::new(url)
    )]
    ChecksumTooLarge { url: String, limit: u64 },

    /// A file the product needs is not in the (checksum-verified) archive.
    #[error("{archive}: `{member}` not found in the archive")]
    MissingMember { archive: String, member: String },

    #[error("{archive}: not a readable tar.gz archive: {source}")]
    Archive {
        archive: String,
        #[source]
        source: io::Error,
    },

    /// An image reference that is not `[registry/]repository:tag`.
    #[error("image reference `{reference}`: {message}")]
    Reference { reference: String, message: String },

    /// Fetching one image failed; `error` says how and names the URL.
    #[error("image {image}: {error}")]
    Image {
        image: String,
        error: Box<FetchError>,
    },

    /// The tag resolved to another digest than the pinned one. Nothing of the image was
    /// downloaded or saved.
    #[error(
        "{}: the tag resolves to {actual}, but {expected} is pinned; refusing the image (nothing was saved)", RedactedUrl::new(url)
    )]
    PinnedDigest {
        url: String,
        expected: String,
        actual: String,
    },

    /// A redirect that is not followed: to a scheme other than http(s) (`file:`), from
    /// https down to http, one without a usable `Location`, or one too many.
    #[error(
        "GET {}: not following the redirect to {}: {reason}",
        RedactedUrl::new(url),
        RedactedUrl::new(location)
    )]
    Redirect {
        url: String,
        location: String,
        reason: String,
    },

    /// The registry answered something that is not a usable image: a failed token request,
    /// an unsupported manifest type, no image for the architecture.
    #[error("{}: {message}", RedactedUrl::new(url))]
    Registry { url: String, message: String },

    /// `versions.json` could not be read or written as JSON.
    #[error("{path}: {source}")]
    ManifestJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// `versions.json` names a file outside the binaries directory (absolute, or with `..`),
    /// which a later run would remove or overwrite.
    #[error("{}: `{name}` is not a path inside the binaries directory", path.display())]
    ManifestPath { path: PathBuf, name: String },

    /// Writing an image's OCI archive failed.
    #[error("{path}: {source}")]
    ImageArchive {
        path: PathBuf,
        #[source]
        source: crate::oci::OciError,
    },

    #[error("another run is writing {}: {holder}; run this again when it has finished", dir.display())]
    Locked { dir: PathBuf, holder: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        FetchError::Io {
            path: path.into(),
            source,
        }
    }
}

impl FetchError {
    /// A version, architecture, mirror URL or image reference given is the input's; the
    /// network, registries, archives and the disk are not.
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            FetchError::Version(_)
            | FetchError::Arch(_)
            | FetchError::Mirror { .. }
            | FetchError::Reference { .. } => Fault::Input,
            _ => Fault::Runtime,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}
