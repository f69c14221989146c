//! Why a file of the PKI is not acceptable: the reasons `certs` re-issues a certificate for
//! and `certs check` reports.

use super::pem::KeyFormatError;
use super::profiles::San;
use super::store::{ENCRYPTION_KEY_BYTES, KEY_MODE};
use crate::fsutil::ReadError;

#[derive(Debug)]
pub(super) enum Problem {
    Missing,
    /// The file is there but cannot be read (not a regular file, too large, an OS error):
    /// never replaced.
    Unavailable(ReadError),
    Unreadable,
    /// A problem of the private key file named first (relative to the PKI directory).
    Key(String, KeyProblem),
    NotSelfSigned,
    NotCa,
    NotIssuer(rcgen::Error),
    CaUnusable(&'static str),
    /// Not issued by the CA (file stem) that the profile table names.
    WrongIssuer(&'static str),
    Subject(String),
    Sans {
        missing: Vec<San>,
        extra: Vec<San>,
    },
    Usage,
    Expired,
    /// `notBefore` is still ahead (the date, UTC).
    NotYetValid(String),
    /// A temporary file a killed run left (see `Pki::recover`).
    Leftover,
    EncryptionKey(EncryptionKeyError),
    /// The content of a non-certificate file is wrong (never quoting it).
    Content(String),
}

const EXPECTED_ENCRYPTION_KEY: &str = "expected the standard base64 of 32 random bytes";

/// Why the content of `encryption.key` is not usable; never quoting it (it is the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionKeyError {
    #[error("not base64 (not text; {})", EXPECTED_ENCRYPTION_KEY)]
    NotText,
    #[error("empty ({})", EXPECTED_ENCRYPTION_KEY)]
    Empty,
    #[error("not base64 ({})", EXPECTED_ENCRYPTION_KEY)]
    NotBase64,
    #[error("decodes to {0} bytes, secretbox needs {wanted}", wanted = ENCRYPTION_KEY_BYTES)]
    Length(usize),
}

#[derive(Debug)]
pub(super) enum KeyProblem {
    Missing,
    Unavailable(ReadError),
    Unusable(KeyFormatError),
    /// Not the key of this certificate file.
    Mismatch(String),
    /// Wider than [`KEY_MODE`].
    Mode(u32),
}

impl std::fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyProblem::Missing => f.write_str("missing"),
            KeyProblem::Unavailable(why) => write!(f, "{why}"),
            KeyProblem::Unusable(why) => write!(f, "not a usable private key: {why}"),
            KeyProblem::Mismatch(crt) => write!(f, "does not match {crt}"),
            KeyProblem::Mode(mode) => {
                write!(f, "mode {mode:04o}, expected {KEY_MODE:04o} (chmod 600)")
            }
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[San]| {
            v.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Problem::Missing => f.write_str("missing"),
            Problem::Unavailable(why) => write!(f, "{why}"),
            Problem::Unreadable => f.write_str("unreadable"),
            Problem::Key(file, kp) => write!(f, "{file}: {kp}"),
            Problem::NotSelfSigned => f.write_str("not self-signed"),
            Problem::NotCa => f.write_str("not a CA certificate (no CA:TRUE or keyCertSign)"),
            Problem::NotIssuer(why) => write!(f, "cannot be used as an issuer: {why}"),
            Problem::CaUnusable(ca) => write!(f, "its CA {ca} is unusable"),
            Problem::WrongIssuer(ca) => write!(f, "not signed by its CA {ca}"),
            Problem::Subject(s) => write!(f, "subject is {s}"),
            Problem::Sans { missing, extra } if extra.is_empty() => {
                write!(f, "lacks SAN {}", list(missing))
            }
            Problem::Sans { missing, extra } if missing.is_empty() => {
                write!(f, "extra SAN {}", list(extra))
            }
            Problem::Sans { missing, extra } => {
                write!(f, "lacks SAN {}; extra SAN {}", list(missing), list(extra))
            }
            Problem::Usage => f.write_str("wrong key usage"),
            Problem::Expired => f.write_str("expired"),
            Problem::NotYetValid(from) => {
                write!(f, "not valid before {from} (check this machine's clock)")
            }
            Problem::Leftover => {
                f.write_str("left by an interrupted run: `k8s-boot certs` completes or removes it")
            }
            Problem::EncryptionKey(e) => write!(f, "{e}"),
            Problem::Content(why) => f.write_str(why),
        }
    }
}
