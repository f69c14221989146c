//! The two keys that are not certificates: the service-account signing pair (`sa.key`,
//! `sa.pub`) and the secrets-at-rest `encryption.key`. Both are created once and never
//! replaced: a new one would invalidate every token, or make every stored secret unreadable.

use super::error::PkiError;
use super::problem::{EncryptionKeyError, KeyProblem, Problem};
use super::report::Action;
use super::store::{
    Pki, ENCRYPTION_KEY, ENCRYPTION_KEY_BYTES, KEY_MODE, PUBLIC_MODE, SA_KEY, SA_PUB,
};
use crate::fsutil::ReadError;
use rcgen::KeyPair;

impl Pki {
    /// The service-account signing key: created once, never replaced (that would invalidate
    /// every service-account token); `sa.pub` is derived from it.
    pub(super) fn ensure_service_account_keys(&self) -> Result<Action, PkiError> {
        let (key_exists, pub_exists) = (self.exists(SA_KEY), self.exists(SA_PUB));
        if !key_exists && pub_exists {
            return Err(PkiError::Refused(format!(
                "{} exists but {} is missing: restore the key, or delete both to create a new pair (which invalidates every service-account token)",
                self.path(SA_PUB).display(),
                self.path(SA_KEY).display()
            )));
        }
        if !key_exists {
            let key_pair = KeyPair::generate()?;
            self.write_together(&[
                (SA_KEY, key_pair.serialize_pem().as_bytes(), KEY_MODE),
                (SA_PUB, key_pair.public_key_pem().as_bytes(), PUBLIC_MODE),
            ])?;
            return Ok(Action::Created);
        }
        let key_pair = self.read_key(SA_KEY).map_err(|p| match p {
            Problem::Key(_, KeyProblem::Unavailable(source)) => PkiError::Read {
                path: self.path(SA_KEY),
                reason: source,
            },
            Problem::Key(_, why) => PkiError::Invalid {
                path: self.path(SA_KEY),
                message: why.to_string(),
            },
            other => PkiError::Invalid {
                path: self.path(SA_KEY),
                message: other.to_string(),
            },
        })?;
        let public = key_pair.public_key_pem();
        match self.read_file(SA_PUB) {
            Ok(bytes) if bytes == public.as_bytes() => return Ok(Action::Kept),
            Ok(_) | Err(ReadError::NotFound) => {}
            // Not replaced: whatever stands there was put there by someone.
            Err(source) => {
                return Err(PkiError::Read {
                    path: self.path(SA_PUB),
                    reason: source,
                })
            }
        }
        self.write(SA_PUB, public.as_bytes(), PUBLIC_MODE)?;
        Ok(Action::Reissued("sa.pub rebuilt from sa.key".into()))
    }

    /// `encryption.key`: random bytes, base64, created when absent and otherwise kept as is.
    /// One that is there but cannot be read (a dangling link, a FIFO, no permission) is an
    /// error, never replaced: a new key would make every stored Secret unreadable.
    pub(super) fn ensure_encryption_key(&self) -> Result<Action, PkiError> {
        match self.read_file(ENCRYPTION_KEY) {
            Ok(_) => return Ok(Action::Kept),
            Err(ReadError::NotFound) if !self.exists(ENCRYPTION_KEY) => {}
            Err(source) => {
                return Err(PkiError::Read {
                    path: self.path(ENCRYPTION_KEY),
                    reason: source,
                })
            }
        }
        let mut secret = [0u8; ENCRYPTION_KEY_BYTES];
        getrandom::fill(&mut secret).map_err(PkiError::Randomness)?;
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret);
        self.write(ENCRYPTION_KEY, format!("{b64}\n").as_bytes(), KEY_MODE)?;
        Ok(Action::Created)
    }

    /// What is wrong with `sa.key` and with `sa.pub`, for `certs check`.
    pub(super) fn service_account_problems(&self) -> (Result<(), Problem>, Result<(), Problem>) {
        let key = self.read_key(SA_KEY);
        let public = key.as_ref().ok().map(|k| k.public_key_pem());
        let key_status = match key {
            Ok(_) => Ok(()),
            Err(Problem::Key(_, KeyProblem::Missing)) => Err(Problem::Missing),
            Err(p) => Err(p),
        };
        let pub_status = match (self.read_file(SA_PUB), public) {
            (Err(ReadError::NotFound), _) => Err(Problem::Missing),
            (Err(e), _) => Err(Problem::Unavailable(e)),
            (Ok(_), None) => Err(Problem::Content(format!(
                "cannot be checked: {SA_KEY} is not usable"
            ))),
            (Ok(bytes), Some(public)) if bytes != public.as_bytes() => {
                Err(Problem::Content(format!("does not match {SA_KEY}")))
            }
            (Ok(_), Some(_)) => Ok(()),
        };
        (key_status, pub_status)
    }

    /// What is wrong with `encryption.key`, for `certs check`.
    pub(super) fn encryption_key_problem(&self) -> Result<(), Problem> {
        match self.read_file(ENCRYPTION_KEY) {
            Err(ReadError::NotFound) => Err(Problem::Missing),
            Err(e) => Err(Problem::Unavailable(e)),
            Ok(bytes) => check_encryption_key(&bytes).map_err(Problem::EncryptionKey),
        }
    }
}

/// `Ok` when `bytes` (the content of `encryption.key`) is what the encryption-config
/// template needs: standard base64 (surrounding whitespace ignored) of
/// [`ENCRYPTION_KEY_BYTES`] bytes. The error never quotes the content.
pub fn check_encryption_key(bytes: &[u8]) -> Result<(), EncryptionKeyError> {
    use base64::Engine;
    let text = std::str::from_utf8(bytes)
        .map_err(|_| EncryptionKeyError::NotText)?
        .trim();
    if text.is_empty() {
        return Err(EncryptionKeyError::Empty);
    }
    // The decoder's error is not kept: it names the offending byte of the secret.
    let secret = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| EncryptionKeyError::NotBase64)?;
    if secret.len() != ENCRYPTION_KEY_BYTES {
        return Err(EncryptionKeyError::Length(secret.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_key_is_base64_of_32_bytes_and_never_quoted() {
        use base64::Engine;
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        assert_eq!(
            check_encryption_key(format!("{}\n", b64(32)).as_bytes()),
            Ok(())
        );
        assert_eq!(
            check_encryption_key(format!("  {}  ", b64(32)).as_bytes()),
            Ok(())
        );
        for (input, want) in [
            (b64(16), "decodes to 16 bytes, secretbox needs 32"),
            (b64(33), "decodes to 33 bytes, secretbox needs 32"),
            (
                "\n".into(),
                "empty (expected the standard base64 of 32 random bytes)",
            ),
            (
                format!("{}_", &b64(32)[..43]),
                "not base64 (expected the standard base64 of 32 random bytes)",
            ),
        ] {
            let err = check_encryption_key(input.as_bytes())
                .unwrap_err()
                .to_string();
            assert_eq!(err, want, "{input:?}");
            assert!(input.trim().is_empty() || !err.contains(input.trim()));
        }
        assert_eq!(
            check_encryption_key(&[0xff, 0xfe, 0x41]),
            Err(EncryptionKeyError::NotText)
        );
        assert!(EncryptionKeyError::NotText
            .to_string()
            .starts_with("not base64"));
    }
}
