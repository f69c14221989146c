//! What every certificate this PKI issues shares: its subject's form, a random serial and a
//! backdated start.

use super::error::PkiError;
use rcgen::{DistinguishedName, DnType, SerialNumber};
use time::Duration;

/// Certificates start this long in the past so that small clock skew between hosts does not
/// make them "not yet valid".
pub(super) const BACKDATE: Duration = Duration::hours(1);

pub(super) fn distinguished_name(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

pub(super) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(PkiError::Randomness)?;
    bytes[0] &= 0x7f; // keep the DER integer positive
    bytes[0] |= 0x01; // and of fixed length
    Ok(SerialNumber::from_slice(&bytes))
}
