//! Whether a parsed certificate is what its profile says: a CA as designed, or a leaf with
//! the subject, SANs, usage and issuer of its row.

use super::problem::Problem;
use super::profiles::{LeafCert, San};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// A CA certificate as designed: self-signed, CA:TRUE and allowed to sign certificates.
pub(super) fn check_ca(cert: &X509Certificate) -> Result<(), Problem> {
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    let signs = cert
        .key_usage()
        .ok()
        .flatten()
        .is_none_or(|ku| ku.value.key_cert_sign());
    if !is_ca || !signs {
        return Err(Problem::NotCa);
    }
    cert.verify_signature(None)
        .map_err(|_| Problem::NotSelfSigned)
}

/// `ca_stem`/`ca_der`: the CA the profile table names for `leaf`.
pub(super) fn check_leaf(
    leaf: &LeafCert,
    cert: &X509Certificate,
    ca_stem: &'static str,
    ca_der: &[u8],
    now: OffsetDateTime,
) -> Result<(), Problem> {
    let wrong = || Problem::WrongIssuer(ca_stem);
    let (_, ca) = X509Certificate::from_der(ca_der).map_err(|_| wrong())?;
    if cert.issuer() != ca.subject() || cert.verify_signature(Some(ca.public_key())).is_err() {
        return Err(wrong());
    }
    check_subject(leaf, cert)?;
    check_sans(leaf, cert)?;
    let eku = cert.extended_key_usage().ok().flatten().map(|e| e.value);
    let (server, client) = eku
        .map(|e| (e.server_auth, e.client_auth))
        .unwrap_or((false, false));
    if server != leaf.usage.server() || client != leaf.usage.client() {
        return Err(Problem::Usage);
    }
    let not_before = cert.validity().not_before.to_datetime();
    if not_before > now {
        return Err(Problem::NotYetValid(utc_minute(not_before)));
    }
    if cert.validity().not_after.to_datetime() <= now {
        return Err(Problem::Expired);
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM UTC`.
pub(super) fn utc_minute(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// The common name and organization of the row, and no other.
fn check_subject(leaf: &LeafCert, cert: &X509Certificate) -> Result<(), Problem> {
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok());
    let org = cert
        .subject()
        .iter_organization()
        .next()
        .and_then(|a| a.as_str().ok());
    if cn != Some(leaf.common_name.as_str()) || org != leaf.organization.as_deref() {
        return Err(Problem::Subject(cert.subject().to_string()));
    }
    Ok(())
}

/// Exactly the SANs of the row.
fn check_sans(leaf: &LeafCert, cert: &X509Certificate) -> Result<(), Problem> {
    let have = cert_sans(cert);
    let missing: Vec<San> = leaf
        .sans
        .iter()
        .filter(|s| !have.contains(s))
        .cloned()
        .collect();
    let extra: Vec<San> = have
        .iter()
        .filter(|s| !leaf.sans.contains(s))
        .cloned()
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(Problem::Sans { missing, extra });
    }
    Ok(())
}

/// The SANs of a parsed certificate, sorted.
pub fn cert_sans(cert: &X509Certificate) -> Vec<San> {
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => out.push(San::Dns(d.to_string())),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        out.push(San::Ip(a.into()));
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        out.push(San::Ip(a.into()));
                    }
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}
