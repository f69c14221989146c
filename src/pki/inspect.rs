//! Reading a certificate with its private key from the PKI directory, as a [`Problem`] when
//! they cannot be used.

use super::pem::{parse_private_key, pem_to_der};
use super::problem::{KeyProblem, Problem};
use super::store::{Pki, KEY_MODE};
use crate::fsutil::ReadError;
use rcgen::KeyPair;
use std::fs;
use x509_parser::prelude::{FromDer, X509Certificate};

impl Pki {
    /// The private key `name`, parsed.
    pub(super) fn read_key(&self, name: &str) -> Result<KeyPair, Problem> {
        let key = |kp| Problem::Key(name.to_string(), kp);
        let bytes = self.read_file(name).map_err(|e| match e {
            ReadError::NotFound => key(KeyProblem::Missing),
            e => key(KeyProblem::Unavailable(e)),
        })?;
        parse_private_key(&bytes).map_err(|why| key(KeyProblem::Unusable(why)))
    }

    /// The DER of the certificate `name`.
    pub(super) fn read_certificate(&self, name: &str) -> Result<Vec<u8>, Problem> {
        let bytes = self.read_file(name).map_err(|e| match e {
            ReadError::NotFound => Problem::Missing,
            e => Problem::Unavailable(e),
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Problem::Unreadable)?;
        let der = pem_to_der(text).ok_or(Problem::Unreadable)?;
        X509Certificate::from_der(&der).map_err(|_| Problem::Unreadable)?;
        Ok(der)
    }

    /// Reads `<stem>.crt` and `<stem>.key` and checks that they belong together; returns the
    /// certificate's DER.
    pub(super) fn inspect(&self, stem: &str) -> Result<Vec<u8>, Problem> {
        let crt = format!("{stem}.crt");
        let der = self.read_certificate(&crt)?;
        let key = self.read_key(&format!("{stem}.key"))?;
        if !key_matches(&der, &key) {
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
        let meta = fs::symlink_metadata(self.path(name)).ok()?;
        let mode = meta.permissions().mode() & 0o7777;
        (meta.is_file() && mode & !KEY_MODE != 0)
            .then(|| Problem::Key(name.to_string(), KeyProblem::Mode(mode)))
    }
}

/// Whether `key` is the private half of the certificate `der`.
pub(super) fn key_matches(der: &[u8], key: &KeyPair) -> bool {
    X509Certificate::from_der(der).is_ok_and(|(_, cert)| {
        cert.public_key().subject_public_key.data.as_ref() == rcgen::PublicKeyData::der_bytes(key)
    })
}
