//! The leaf certificates: each row of the profile table assessed against the certificate on
//! disk, and issued again when it is missing, no longer matches or renewal is asked for.

use super::ca::LoadedCa;
use super::error::PkiError;
use super::issuance::{distinguished_name, random_serial, BACKDATE};
use super::problem::{KeyProblem, Problem};
use super::profiles::{ca_profile, leaf_certs, CaKind, LeafCert, San};
use super::report::{Action, Report};
use super::store::{Pki, KEY_MODE, PUBLIC_MODE};
use super::verify::check_leaf;
use crate::inventory::Cluster;
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

impl Pki {
    /// Every leaf of `cluster`: kept when it matches its row (unless `renew`), else issued.
    pub(super) fn ensure_leaves(
        &self,
        cluster: &Cluster,
        cas: &BTreeMap<CaKind, LoadedCa>,
        renew: bool,
        validity: Duration,
        now: OffsetDateTime,
        report: &mut Report,
    ) -> Result<(), PkiError> {
        for leaf in leaf_certs(cluster) {
            let ca = &cas[&leaf.ca];
            let crt = format!("{}.crt", leaf.file);
            let action = match self.assess(&leaf, &ca.cert_der, now) {
                Ok(_) if renew => Action::Reissued("renewal requested".into()),
                Ok(not_after) if not_after - now < renewal_window(validity) => Action::Reissued(
                    format!("expires {}: renewed", super::verify::utc_minute(not_after)),
                ),
                Ok(_) => Action::Kept,
                Err(Problem::Missing) => Action::Created,
                // A file that is there but cannot be read is not replaced: it may be a
                // link, a mount or a permission the owner means.
                Err(Problem::Unavailable(source)) => {
                    return Err(PkiError::Read {
                        path: self.path(&crt),
                        reason: source,
                    })
                }
                Err(Problem::Key(file, KeyProblem::Unavailable(source))) => {
                    return Err(PkiError::Read {
                        path: self.path(&file),
                        reason: source,
                    })
                }
                Err(p) => Action::Reissued(p.to_string()),
            };
            if action != Action::Kept {
                self.issue(&leaf, ca, now, validity)?;
            }
            report.actions.push((crt, action));
        }
        Ok(())
    }

    /// Why a leaf on disk is not acceptable for the current inventory, if it is not; when
    /// it is, when it expires.
    fn assess(
        &self,
        leaf: &LeafCert,
        ca_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, Problem> {
        let der = self.inspect(&leaf.file)?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|_| Problem::Unreadable)?;
        check_leaf(leaf, &cert, ca_profile(leaf.ca).file, ca_der, now)?;
        Ok(cert.validity().not_after.to_datetime())
    }

    fn issue(
        &self,
        leaf: &LeafCert,
        ca: &LoadedCa,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<(), PkiError> {
        let mut params = leaf_params(leaf)?;
        params.not_before = now - BACKDATE;
        // A leaf never outlives its CA.
        params.not_after = (now + validity).min(ca.not_after);
        let key_pair = KeyPair::generate()?;
        let cert = params.signed_by(&key_pair, &ca.issuer)?;
        self.write_together(&[
            (
                &format!("{}.key", leaf.file),
                key_pair.serialize_pem().as_bytes(),
                KEY_MODE,
            ),
            (
                &format!("{}.crt", leaf.file),
                cert.pem().as_bytes(),
                PUBLIC_MODE,
            ),
        ])
    }
}

/// How long before it expires a valid leaf is issued again by an ordinary run (`install`,
/// `certs`): the last third of its validity, at most 30 days. A cluster that runs `install`
/// now and then never meets an expired certificate; `certs renew` renews at once.
pub fn renewal_window(validity: Duration) -> Duration {
    (validity / 3_i32).min(Duration::days(30))
}

/// The subject, usages and SANs of `leaf`'s row, with a fresh serial; validity is the
/// caller's.
fn leaf_params(leaf: &LeafCert) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&leaf.common_name, leaf.organization.as_deref());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if leaf.usage.server() {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if leaf.usage.client() {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    params.subject_alt_names = leaf
        .sans
        .iter()
        .map(|s| match s {
            San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            San::Dns(d) => Ok(SanType::DnsName(d.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.serial_number = Some(random_serial()?);
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}
