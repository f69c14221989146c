//! The CAs: loaded and checked when they exist, created when they do not, replaced on
//! `--rotate-cas`; a half-present or expired CA is refused rather than replaced silently.

use super::error::PkiError;
use super::issuance::{distinguished_name, random_serial, BACKDATE};
use super::problem::Problem;
use super::profiles::{CaKind, CaProfile, CAS};
use super::report::{Action, Report};
use super::store::{Pki, KEY_MODE, PUBLIC_MODE};
use super::verify::{check_ca, utc_minute};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A CA ready to sign leaves.
pub(super) struct LoadedCa {
    pub(super) cert_der: Vec<u8>,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
    pub(super) issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// Every CA of [`CAS`], kept or created, with one action per CA certificate.
    pub(super) fn ensure_cas(
        &self,
        rotate: bool,
        validity_days: u32,
        now: OffsetDateTime,
        report: &mut Report,
    ) -> Result<BTreeMap<CaKind, LoadedCa>, PkiError> {
        let mut cas = BTreeMap::new();
        for ca in CAS {
            let (loaded, action) = self.ensure_ca(ca, rotate, validity_days, now)?;
            cas.insert(ca.kind, loaded);
            report.actions.push((format!("{}.crt", ca.file), action));
        }
        Ok(cas)
    }

    fn ensure_ca(
        &self,
        ca: &CaProfile,
        rotate: bool,
        validity_days: u32,
        now: OffsetDateTime,
    ) -> Result<(LoadedCa, Action), PkiError> {
        let (crt, key) = (format!("{}.crt", ca.file), format!("{}.key", ca.file));
        let exists = self.exists(&crt);
        if !rotate {
            // Replacing a CA re-issues everything it signed: only on request.
            match (exists, self.exists(&key)) {
                (false, true) => return Err(PkiError::Refused(format!(
                    "{} exists but its certificate {} is missing: restore the certificate, or replace every CA with --rotate-cas",
                    self.path(&key).display(),
                    self.path(&crt).display()
                ))),
                (true, false) => return Err(PkiError::Refused(format!(
                    "{} exists but its key {} is missing: cannot sign with it. Restore the key, or replace every CA with --rotate-cas",
                    self.path(&crt).display(),
                    self.path(&key).display()
                ))),
                (true, true) => return Ok((self.load_unexpired_ca(ca.file, now)?, Action::Kept)),
                (false, false) => {}
            }
        }
        let created = self.create_ca(ca, validity_days, now)?;
        let action = if exists {
            Action::Reissued("CA rotation requested".into())
        } else {
            Action::Created
        };
        Ok((created, action))
    }

    fn load_unexpired_ca(&self, stem: &str, now: OffsetDateTime) -> Result<LoadedCa, PkiError> {
        let loaded = self.load_ca(stem)?;
        if loaded.not_before > now {
            return Err(PkiError::Refused(format!(
                "{} is {}: leaves signed now would not be valid either; replace every CA with --rotate-cas",
                self.path(&format!("{stem}.crt")).display(),
                Problem::NotYetValid(utc_minute(loaded.not_before))
            )));
        }
        if loaded.not_after <= now {
            return Err(PkiError::Refused(format!(
                "{} has expired: replace every CA with --rotate-cas",
                self.path(&format!("{stem}.crt")).display()
            )));
        }
        Ok(loaded)
    }

    /// A new self-signed CA, written key first.
    fn create_ca(
        &self,
        ca: &CaProfile,
        validity_days: u32,
        now: OffsetDateTime,
    ) -> Result<LoadedCa, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(ca.common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(validity_days.into());
        params.serial_number = Some(random_serial()?);
        let key_pair = KeyPair::generate()?;
        let cert = params.self_signed(&key_pair)?;
        let stem = ca.file;
        self.write_together(&[
            (
                &format!("{stem}.key"),
                key_pair.serialize_pem().as_bytes(),
                KEY_MODE,
            ),
            (&format!("{stem}.crt"), cert.pem().as_bytes(), PUBLIC_MODE),
        ])?;
        Ok(LoadedCa {
            cert_der: cert.der().to_vec(),
            not_before: params.not_before,
            not_after: params.not_after,
            issuer: Issuer::new(params, key_pair),
        })
    }

    fn load_ca(&self, stem: &str) -> Result<LoadedCa, PkiError> {
        // Each problem is reported on the file it is about: the key's on the key.
        let invalid = |p: Problem| match p {
            Problem::Key(file, kp) => PkiError::Invalid {
                path: self.path(&file),
                message: kp.to_string(),
            },
            p => PkiError::Invalid {
                path: self.path(&format!("{stem}.crt")),
                message: p.to_string(),
            },
        };
        let cert_der = self.inspect(stem).map_err(invalid)?;
        let (_, parsed) =
            X509Certificate::from_der(&cert_der).map_err(|_| invalid(Problem::Unreadable))?;
        check_ca(&parsed).map_err(invalid)?;
        let not_before = parsed.validity().not_before.to_datetime();
        let not_after = parsed.validity().not_after.to_datetime();
        let key_pair = self.read_key(&format!("{stem}.key")).map_err(invalid)?;
        let issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), key_pair)
            .map_err(|e| invalid(Problem::NotIssuer(e)))?;
        Ok(LoadedCa {
            cert_der,
            not_before,
            not_after,
            issuer,
        })
    }
}
