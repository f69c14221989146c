//! The PKI as the plan reads it: each file once, and which files each host receives.

use crate::inventory::{Host, Role};
use crate::pki::{self, profiles, Pki, PkiError};
use base64::Engine;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// Reads PKI files once: every host's plan needs the same CA and certificates again.
pub(super) struct PkiFiles<'a> {
    pki: &'a Pki,
    read: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl<'a> PkiFiles<'a> {
    pub(super) fn new(pki: &'a Pki) -> PkiFiles<'a> {
        PkiFiles {
            pki,
            read: RefCell::default(),
        }
    }

    pub(super) fn read(&self, name: &str) -> Result<Vec<u8>, PkiError> {
        if let Some(bytes) = self.read.borrow().get(name) {
            return Ok(bytes.clone());
        }
        let bytes = self.pki.read(name)?;
        self.read
            .borrow_mut()
            .insert(name.to_string(), bytes.clone());
        Ok(bytes)
    }

    /// Where `name` is, for messages.
    pub(super) fn path(&self, name: &str) -> std::path::PathBuf {
        self.pki.path(name)
    }

    /// The file in base64, as kubeconfigs and Secrets embed it.
    pub(super) fn read_b64(&self, name: &str) -> Result<String, PkiError> {
        Ok(base64::engine::general_purpose::STANDARD.encode(self.read(name)?))
    }
}

/// PKI files (relative to the PKI directory) a host receives.
pub(super) fn pki_deliveries(host: &Host, leaves: &[profiles::LeafCert]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ca in profiles::CAS {
        if host.has_any(ca.cert_to) {
            out.insert(format!("{}.crt", ca.file));
        }
        if host.has_any(ca.key_to) {
            out.insert(format!("{}.key", ca.file));
        }
    }
    for leaf in leaves.iter().filter(|l| l.hosts.contains(&host.name)) {
        out.insert(format!("{}.crt", leaf.file));
        out.insert(format!("{}.key", leaf.file));
    }
    if host.has(Role::ControlPlane) {
        out.insert(pki::SA_KEY.into());
        out.insert(pki::SA_PUB.into());
    }
    out
}
