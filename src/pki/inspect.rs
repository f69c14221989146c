//! Reading a certificate with its private key from the PKI directory, as a [`Problem`] when
//! they cannot be used.

use super::error::PkiError;
use super::problem::{KeyProblem, Problem};
use super::store::{Pki, KEY_MODE};
use rcgen::KeyPair;
use std::fs;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a file could not be read as text.
enum ReadFailure {
    Absent,
    Io(std::io::Error),
    NotText,
}

impl Pki {
    /// `name` as text, or why it is not available.
    fn read_text(&self, name: &str) -> Result<String, ReadFailure> {
        match self.read_string(name) {
            Ok(text) => Ok(text),
            Err(PkiError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(ReadFailure::Absent)
            }
            Err(PkiError::Io { source, .. }) => Err(ReadFailure::Io(source)),
            Err(_) => Err(ReadFailure::NotText),
        }
    }

    /// The private key `name`, parsed.
    pub(super) fn read_key(&self, name: &str) -> Result<KeyPair, Problem> {
        let key = |kp| Problem::Key(name.to_string(), kp);
        let pem = self.read_text(name).map_err(|e| match e {
            ReadFailure::Absent => key(KeyProblem::Missing),
            ReadFailure::Io(why) => key(KeyProblem::CannotRead(why)),
            ReadFailure::NotText => key(KeyProblem::Unusable),
        })?;
        // The parser's error is not kept: it can quote bytes of the key.
        KeyPair::from_pem(&pem).map_err(|_| key(KeyProblem::Unusable))
    }

    /// Reads `<stem>.crt` and `<stem>.key` and checks that they belong together; returns the
    /// certificate's DER.
    pub(super) fn inspect(&self, stem: &str) -> Result<Vec<u8>, Problem> {
        let crt = format!("{stem}.crt");
        let cert_pem = self.read_text(&crt).map_err(|e| match e {
            ReadFailure::Absent => Problem::Missing,
            ReadFailure::Io(why) => Problem::CannotRead(why),
            ReadFailure::NotText => Problem::Unreadable,
        })?;
        let der = pem_to_der(&cert_pem).ok_or(Problem::Unreadable)?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|_| Problem::Unreadable)?;
        let key = self.read_key(&format!("{stem}.key"))?;
        if cert.public_key().subject_public_key.data.as_ref()
            != rcgen::PublicKeyData::der_bytes(&key)
        {
            return Err(Problem::Key(
                format!("{stem}.key"),
                KeyProblem::Mismatch(crt),
            ));
        }
        Ok(der)
    }

    /// A private key file whose mode is wider than [`KEY_MODE`]; `None` when it is not, or
    /// when the file is absent (or only staged).
    pub(super) fn key_mode_problem(&self, name: &str) -> Option<Problem> {
        use std::os::unix::fs::PermissionsExt;
        if self.staged_bytes(name).is_some() {
            return None;
        }
        let mode = fs::metadata(self.path(name)).ok()?.permissions().mode() & 0o7777;
        (mode & !KEY_MODE != 0).then(|| Problem::Key(name.to_string(), KeyProblem::Mode(mode)))
    }
}

/// DER bytes of the first PEM block of `pem`.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(block.contents)
}
