//! The cluster PKI on the deploy machine: create, keep, re-issue and check certificates.
//!
//! Layout under the PKI directory (PEM): `ca.crt`/`ca.key`, `etcd/ca.*`, `front-proxy-ca.*`,
//! one `<stem>.crt`/`<stem>.key` per row of [`profiles::LEAVES`], the service-account key pair
//! `sa.key`/`sa.pub`, and `encryption.key` (the secrets-at-rest key). Keys are 0600.

mod error;
pub mod profiles;
mod report;
mod store;

pub use error::PkiError;
pub use report::{Action, Options, Report};
use store::PUBLIC_MODE;
pub use store::{default_dir, Pki, ENCRYPTION_KEY, KEY_MODE, SA_KEY, SA_PUB};

use crate::inventory::Cluster;
use profiles::{ca_profile, leaf_certs, LeafCert, San, CAS};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Length of the decoded encryption key: `secretbox` (the provider of the encryption-config
/// template) takes exactly 32 bytes, as does `aescbc` with its strongest key.
pub const ENCRYPTION_KEY_BYTES: usize = 32;
/// `certs check` flags certificates that expire sooner than this.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// Certificates start this long in the past so that small clock skew between hosts does not
/// make them "not yet valid".
const BACKDATE: Duration = Duration::hours(1);

struct LoadedCa {
    cert_der: Vec<u8>,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// Creates what is missing and re-issues what no longer matches the inventory.
    pub fn ensure(&self, cluster: &Cluster, opts: Options) -> Result<Report, PkiError> {
        let mut report = Report::default();
        let days = &cluster.inventory.pki;
        self.create_private_dir()?;
        let now = OffsetDateTime::now_utc();

        let mut cas = BTreeMap::new();
        for ca in CAS {
            let (crt, key) = (format!("{}.crt", ca.file), format!("{}.key", ca.file));
            let exists = self.exists(&crt);
            if !exists && self.exists(&key) && !opts.rotate_cas {
                return Err(PkiError::Refused(format!(
                    "{} exists but its certificate {} is missing: restore the certificate, or replace every CA with --rotate-cas",
                    self.path(&key).display(),
                    self.path(&crt).display()
                )));
            }
            if exists && !opts.rotate_cas {
                if !self.exists(&key) {
                    return Err(PkiError::Refused(format!(
                        "{} exists but its key {} is missing: cannot sign with it. Restore the key, or replace every CA with --rotate-cas",
                        self.path(&crt).display(),
                        self.path(&key).display()
                    )));
                }
                let loaded = self.load_ca(ca.file)?;
                if loaded.not_after <= now {
                    return Err(PkiError::Refused(format!(
                        "{} has expired: replace every CA with --rotate-cas",
                        self.path(&crt).display()
                    )));
                }
                cas.insert(ca.kind, loaded);
                report.actions.push((crt, Action::Kept));
                continue;
            }
            let mut params = CertificateParams::default();
            params.distinguished_name = dn(ca.common_name, None);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ];
            params.not_before = now - BACKDATE;
            params.not_after = now + Duration::days(days.ca_validity_days.into());
            params.serial_number = Some(random_serial());
            let key_pair = KeyPair::generate()?;
            let cert = params.self_signed(&key_pair)?;
            self.write(&key, key_pair.serialize_pem().as_bytes(), KEY_MODE)?;
            self.write(&crt, cert.pem().as_bytes(), PUBLIC_MODE)?;
            cas.insert(
                ca.kind,
                LoadedCa {
                    cert_der: cert.der().to_vec(),
                    not_after: params.not_after,
                    issuer: Issuer::new(params, key_pair),
                },
            );
            report.actions.push((
                crt,
                if exists {
                    Action::Reissued("CA rotation requested".into())
                } else {
                    Action::Created
                },
            ));
        }

        for leaf in leaf_certs(cluster) {
            let ca = &cas[&leaf.ca];
            let crt = format!("{}.crt", leaf.file);
            let action = match self.assess(&leaf, &ca.cert_der, now) {
                Ok(()) if !opts.renew_leaves => Action::Kept,
                Ok(()) => Action::Reissued("renewal requested".into()),
                Err(Problem::Missing) => Action::Created,
                Err(p) => Action::Reissued(p.to_string()),
            };
            if action != Action::Kept {
                self.issue(&leaf, ca, now, days.cert_validity_days)?;
            }
            report.actions.push((crt, action));
        }

        report
            .actions
            .push((SA_KEY.into(), self.ensure_service_account_keys()?));
        if !self.exists(ENCRYPTION_KEY) {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| PkiError::Refused(format!("no randomness: {e}")))?;
            let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret);
            self.write(ENCRYPTION_KEY, format!("{b64}\n").as_bytes(), KEY_MODE)?;
            report
                .actions
                .push((ENCRYPTION_KEY.into(), Action::Created));
        } else {
            report.actions.push((ENCRYPTION_KEY.into(), Action::Kept));
        }
        Ok(report)
    }

    /// The service-account signing key: created once, never replaced (that would invalidate
    /// every service-account token); `sa.pub` is derived from it.
    fn ensure_service_account_keys(&self) -> Result<Action, PkiError> {
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
            self.write(SA_KEY, key_pair.serialize_pem().as_bytes(), KEY_MODE)?;
            self.write(SA_PUB, key_pair.public_key_pem().as_bytes(), PUBLIC_MODE)?;
            return Ok(Action::Created);
        }
        // The parser's error is not shown: it can quote bytes of the key.
        let key_pair =
            KeyPair::from_pem(&self.read_string(SA_KEY)?).map_err(|_| PkiError::Invalid {
                path: self.path(SA_KEY),
                message: KeyProblem::Unusable.to_string(),
            })?;
        let public = key_pair.public_key_pem();
        if self.read(SA_PUB).ok().as_deref() == Some(public.as_bytes()) {
            return Ok(Action::Kept);
        }
        self.write(SA_PUB, public.as_bytes(), PUBLIC_MODE)?;
        Ok(Action::Reissued("sa.pub rebuilt from sa.key".into()))
    }

    fn sa_pub_matches_key(&self) -> bool {
        let public = self
            .read_string(SA_KEY)
            .ok()
            .and_then(|k| KeyPair::from_pem(&k).ok())
            .map(|k| k.public_key_pem());
        public.is_some() && self.read_string(SA_PUB).ok() == public
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
        let not_after = parsed.validity().not_after.to_datetime();
        let key = format!("{stem}.key");
        // `inspect` has parsed the key already; the parser's error is not shown (it can quote
        // bytes of the key).
        let key_pair = KeyPair::from_pem(&self.read_string(&key)?)
            .map_err(|_| invalid(Problem::Key(key, KeyProblem::Unusable)))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), key_pair)
            .map_err(|e| invalid(Problem::NotIssuer(e.to_string())))?;
        Ok(LoadedCa {
            cert_der,
            not_after,
            issuer,
        })
    }

    fn issue(
        &self,
        leaf: &LeafCert,
        ca: &LoadedCa,
        now: OffsetDateTime,
        days: u32,
    ) -> Result<(), PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&leaf.common_name, leaf.organization.as_deref());
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
        params.not_before = now - BACKDATE;
        // A leaf never outlives its CA.
        params.not_after = (now + Duration::days(days.into())).min(ca.not_after);
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let key_pair = KeyPair::generate()?;
        let cert = params.signed_by(&key_pair, &ca.issuer)?;
        // Key first: a crash in between leaves a cert that no longer matches, which the
        // next run detects and re-issues.
        self.write(
            &format!("{}.key", leaf.file),
            key_pair.serialize_pem().as_bytes(),
            KEY_MODE,
        )?;
        self.write(
            &format!("{}.crt", leaf.file),
            cert.pem().as_bytes(),
            PUBLIC_MODE,
        )?;
        Ok(())
    }

    /// `name` as text, or why it is not available.
    fn read_text(&self, name: &str) -> Result<String, ReadFailure> {
        match self.read_string(name) {
            Ok(text) => Ok(text),
            Err(PkiError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(ReadFailure::Absent)
            }
            Err(PkiError::Io { source, .. }) => Err(ReadFailure::Io(source.to_string())),
            Err(_) => Err(ReadFailure::NotText),
        }
    }

    /// The private key `name`, parsed.
    fn read_key(&self, name: &str) -> Result<KeyPair, Problem> {
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
    fn inspect(&self, stem: &str) -> Result<Vec<u8>, Problem> {
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
    fn key_mode_problem(&self, name: &str) -> Option<Problem> {
        use std::os::unix::fs::PermissionsExt;
        if self.staged_bytes(name).is_some() {
            return None;
        }
        let mode = fs::metadata(self.path(name)).ok()?.permissions().mode() & 0o7777;
        (mode & !KEY_MODE != 0).then(|| Problem::Key(name.to_string(), KeyProblem::Mode(mode)))
    }

    /// Why a leaf on disk is not acceptable for the current inventory, if it is not.
    fn assess(&self, leaf: &LeafCert, ca_der: &[u8], now: OffsetDateTime) -> Result<(), Problem> {
        let der = self.inspect(&leaf.file)?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|_| Problem::Unreadable)?;
        check_leaf(leaf, &cert, ca_profile(leaf.ca).file, ca_der, now)
    }

    /// The row of a certificate that `inspect` read: `verdict` decides its status, then
    /// expiry; `file` is the `.crt`, `host` the host a per-host certificate is for.
    fn check_row(
        file: &str,
        host: Option<&str>,
        der: &[u8],
        now: OffsetDateTime,
        verdict: impl FnOnce(&X509Certificate) -> Result<(), Problem>,
    ) -> CheckRow {
        let (_, cert) = X509Certificate::from_der(der).expect("inspected before");
        let status = match verdict(&cert) {
            Ok(()) => expiry_status(&cert, now),
            Err(p) => Status::Bad(p.to_string()),
        };
        let not_after = cert.validity().not_after.to_datetime();
        CheckRow {
            file: file.into(),
            host: host.map(String::from),
            subject: Some(cert.subject().to_string()),
            issuer: Some(cert.issuer().to_string()),
            not_after: Some(format!(
                "{:04}-{:02}-{:02}",
                not_after.year(),
                u8::from(not_after.month()),
                not_after.day()
            )),
            days_left: Some((not_after - now).whole_days()),
            status,
        }
    }

    /// One row per CA and leaf for `certs check`, then `sa.key`, `sa.pub` and
    /// `encryption.key`. Reads only; the one error is a PKI directory that is not a
    /// directory.
    pub fn check(&self, cluster: &Cluster) -> Result<Vec<CheckRow>, PkiError> {
        self.require_directory()?;
        let now = OffsetDateTime::now_utc();
        let mut rows = Vec::new();
        let mut ca_ders = BTreeMap::new();
        for ca in CAS {
            let file = format!("{}.crt", ca.file);
            let row = match self.inspect(ca.file) {
                Err(p) => CheckRow::broken(&file, None, p),
                Ok(der) => {
                    let row = Self::check_row(&file, None, &der, now, check_ca);
                    ca_ders.insert(ca.kind, der);
                    row
                }
            };
            rows.push(row.also(self.key_mode_problem(&format!("{}.key", ca.file))));
        }
        for leaf in leaf_certs(cluster) {
            let file = format!("{}.crt", leaf.file);
            let host = leaf.host.as_deref();
            let ca_stem = ca_profile(leaf.ca).file;
            let row = match (self.inspect(&leaf.file), ca_ders.get(&leaf.ca)) {
                (Err(p), _) => CheckRow::broken(&file, host, p),
                (Ok(der), None) => Self::check_row(&file, host, &der, now, |_| {
                    Err(Problem::CaUnusable(ca_stem))
                }),
                (Ok(der), Some(ca_der)) => Self::check_row(&file, host, &der, now, |cert| {
                    check_leaf(&leaf, cert, ca_stem, ca_der, now)
                }),
            };
            rows.push(row.also(self.key_mode_problem(&format!("{}.key", leaf.file))));
        }

        let sa_key = self.read_key(SA_KEY);
        let sa_key_usable = sa_key.is_ok();
        let sa_key_status = match sa_key {
            Ok(_) => Ok(()),
            Err(Problem::Key(_, KeyProblem::Missing)) => Err(Problem::Missing),
            Err(p) => Err(p),
        };
        let sa_pub_status = if !self.exists(SA_PUB) {
            Err(Problem::Missing)
        } else if !sa_key_usable {
            Err(Problem::Content(format!(
                "cannot be checked: {SA_KEY} is not usable"
            )))
        } else if !self.sa_pub_matches_key() {
            Err(Problem::Content(format!("does not match {SA_KEY}")))
        } else {
            Ok(())
        };
        let encryption_status = match self.read(ENCRYPTION_KEY) {
            Err(_) if !self.exists(ENCRYPTION_KEY) => Err(Problem::Missing),
            Err(PkiError::Io { source, .. }) => Err(Problem::CannotRead(source.to_string())),
            Err(_) => Err(Problem::Unreadable),
            Ok(bytes) => check_encryption_key(&bytes).map_err(Problem::Content),
        };
        for (file, what, status, key) in [
            (SA_KEY, "service-account key", sa_key_status, true),
            (SA_PUB, "service-account public key", sa_pub_status, false),
            (ENCRYPTION_KEY, "encryption key", encryption_status, true),
        ] {
            let row = CheckRow {
                file: file.into(),
                host: None,
                subject: Some(what.into()),
                issuer: None,
                not_after: None,
                days_left: None,
                status: match status {
                    Ok(()) => Status::Ok,
                    Err(p) => Status::Bad(p.to_string()),
                },
            };
            rows.push(row.also(key.then(|| self.key_mode_problem(file)).flatten()));
        }
        Ok(rows)
    }
}

/// Why a file could not be read as text.
enum ReadFailure {
    Absent,
    Io(String),
    NotText,
}

/// `Ok` when `bytes` (the content of `encryption.key`) is what the encryption-config
/// template needs: standard base64 (surrounding whitespace ignored) of
/// [`ENCRYPTION_KEY_BYTES`] bytes. The error never quotes the content.
pub fn check_encryption_key(bytes: &[u8]) -> Result<(), String> {
    use base64::Engine;
    const EXPECTED: &str = "expected the standard base64 of 32 random bytes";
    let text = std::str::from_utf8(bytes)
        .map_err(|_| format!("not base64 (not text; {EXPECTED})"))?
        .trim();
    if text.is_empty() {
        return Err(format!("empty ({EXPECTED})"));
    }
    let secret = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| format!("not base64 ({EXPECTED})"))?;
    if secret.len() != ENCRYPTION_KEY_BYTES {
        return Err(format!(
            "decodes to {} bytes, secretbox needs {ENCRYPTION_KEY_BYTES}",
            secret.len()
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub enum Status {
    Ok,
    Expiring,
    Bad(String),
}

impl From<Status> for String {
    fn from(s: Status) -> String {
        s.to_string()
    }
}

impl Status {
    pub fn is_failure(&self) -> bool {
        matches!(self, Status::Bad(_))
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Ok => f.write_str("ok"),
            Status::Expiring => write!(f, "expiring (< {EXPIRY_WARNING_DAYS} days)"),
            Status::Bad(why) => f.write_str(why),
        }
    }
}

/// One row of `certs check`. `None` is a value that is unknown or does not apply (no
/// certificate could be read, or the file is not a certificate): `null` in JSON, `-` in
/// the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckRow {
    /// Path relative to the PKI directory.
    pub file: String,
    /// The host a per-host certificate is for.
    pub host: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// `YYYY-MM-DD` (UTC).
    pub not_after: Option<String>,
    pub days_left: Option<i64>,
    pub status: Status,
}

impl CheckRow {
    fn broken(file: &str, host: Option<&str>, why: Problem) -> CheckRow {
        CheckRow {
            file: file.into(),
            host: host.map(String::from),
            subject: None,
            issuer: None,
            not_after: None,
            days_left: None,
            status: Status::Bad(why.to_string()),
        }
    }

    /// The row with one more problem: a failure whatever its status was, listing every
    /// problem.
    fn also(mut self, extra: Option<Problem>) -> CheckRow {
        if let Some(p) = extra {
            self.status = Status::Bad(match self.status {
                Status::Bad(why) => format!("{why}; {p}"),
                Status::Ok | Status::Expiring => p.to_string(),
            });
        }
        self
    }
}

/// The `certs check --output json` object (after `schema_version` and `command`).
#[derive(Debug, serde::Serialize)]
pub struct CheckReport<'a> {
    pub pki_dir: &'a Path,
    /// Rows whose status is a failure.
    pub problems: usize,
    pub certificates: &'a [CheckRow],
}

impl<'a> CheckReport<'a> {
    pub fn new(pki_dir: &'a Path, rows: &'a [CheckRow]) -> CheckReport<'a> {
        CheckReport {
            pki_dir,
            problems: rows.iter().filter(|r| r.status.is_failure()).count(),
            certificates: rows,
        }
    }
}

#[derive(Debug)]
enum Problem {
    Missing,
    CannotRead(String),
    Unreadable,
    /// A problem of the private key file named first (relative to the PKI directory).
    Key(String, KeyProblem),
    NotSelfSigned,
    NotCa,
    NotIssuer(String),
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
    /// The content of a non-certificate file is wrong (never quoting it).
    Content(String),
}

#[derive(Debug)]
enum KeyProblem {
    Missing,
    CannotRead(String),
    Unusable,
    /// Not the key of this certificate file.
    Mismatch(String),
    /// Wider than [`KEY_MODE`].
    Mode(u32),
}

impl std::fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyProblem::Missing => f.write_str("missing"),
            KeyProblem::CannotRead(why) => write!(f, "cannot be read: {why}"),
            KeyProblem::Unusable => f.write_str("not a usable private key"),
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
            Problem::CannotRead(why) => write!(f, "cannot be read: {why}"),
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
            Problem::Content(why) => f.write_str(why),
        }
    }
}

/// A CA certificate as designed: self-signed, CA:TRUE and allowed to sign certificates.
fn check_ca(cert: &X509Certificate) -> Result<(), Problem> {
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
fn check_leaf(
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
    let eku = cert.extended_key_usage().ok().flatten().map(|e| e.value);
    let (server, client) = eku
        .map(|e| (e.server_auth, e.client_auth))
        .unwrap_or((false, false));
    if server != leaf.usage.server() || client != leaf.usage.client() {
        return Err(Problem::Usage);
    }
    if cert.validity().not_after.to_datetime() <= now {
        return Err(Problem::Expired);
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

fn expiry_status(cert: &X509Certificate, now: OffsetDateTime) -> Status {
    let left = cert.validity().not_after.to_datetime() - now;
    if left <= Duration::ZERO {
        Status::Bad("expired".into())
    } else if left < Duration::days(EXPIRY_WARNING_DAYS) {
        Status::Expiring
    } else {
        Status::Ok
    }
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("system randomness");
    bytes[0] &= 0x7f; // keep the DER integer positive
    bytes[0] |= 0x01; // and of fixed length
    SerialNumber::from_slice(&bytes)
}

/// DER bytes of the first PEM block of `pem`.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(block.contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const INVENTORY: &str = "\
cluster: {name: t, kubernetes_version: v1.36.0}
hosts:
  - {name: lb1, address: 192.0.2.10, roles: [lb]}
  - {name: m1, address: 192.0.2.11, roles: [etcd, control-plane, worker]}
";

    fn cluster(extra_hosts: &str) -> Cluster {
        Cluster::from_source(
            Path::new("hosts.yaml"),
            &format!("{INVENTORY}{extra_hosts}"),
        )
        .unwrap()
    }

    /// Every file under `dir`, relative, with its bytes.
    fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.insert(p.strip_prefix(dir).unwrap().into(), fs::read(&p).unwrap());
                }
            }
        }
        out
    }

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
            let err = check_encryption_key(input.as_bytes()).unwrap_err();
            assert_eq!(err, want, "{input:?}");
            assert!(input.trim().is_empty() || !err.contains(input.trim()));
        }
        assert!(check_encryption_key(&[0xff, 0xfe, 0x41])
            .unwrap_err()
            .starts_with("not base64"));
    }

    #[test]
    fn dry_run_of_a_missing_pki_keeps_everything_in_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let c = cluster("");
        let pki = Pki::dry_run(&dir);
        let report = pki.ensure(&c, Options::default()).unwrap();
        assert_eq!(report.changed(), report.actions.len());
        assert!(!dir.exists(), "a dry run creates no directory");
        assert!(pki.missing(&c).is_empty(), "reads see the staged files");
        // Each certificate with its key, plus sa.key, sa.pub and encryption.key.
        let certs = report.actions.len() - 2;
        assert_eq!(pki.staged().len(), 2 * certs + 3);
        assert!(pki
            .read("ca.crt")
            .unwrap()
            .starts_with(b"-----BEGIN CERTIFICATE"));
        assert_eq!(Pki::new(&dir).missing(&c).len(), pki.staged().len());
        assert!(matches!(
            Pki::new(&dir).require_complete(&c),
            Err(PkiError::Incomplete { .. })
        ));
    }

    #[test]
    fn dry_run_stages_exactly_what_a_real_run_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        Pki::new(&dir)
            .ensure(&cluster(""), Options::default())
            .unwrap();
        let before = files(&dir);

        let up_to_date = Pki::dry_run(&dir);
        assert_eq!(
            up_to_date
                .ensure(&cluster(""), Options::default())
                .unwrap()
                .changed(),
            0
        );
        assert!(up_to_date.staged().is_empty());

        // A second control-plane host: new leaves, and the apiserver's SANs change.
        let bigger = cluster("  - {name: m2, address: 192.0.2.12, roles: [control-plane]}\n");
        let pki = Pki::dry_run(&dir);
        let dry = pki.ensure(&bigger, Options::default()).unwrap();
        assert_eq!(files(&dir), before, "the directory is untouched");
        assert!(dry.actions.iter().any(|(f, a)| f == "apiserver.crt"
            && matches!(a, Action::Reissued(why) if why.contains("lacks SAN"))));
        assert!(Pki::new(&dir).require_complete(&bigger).is_err());

        let real = Pki::new(&dir).ensure(&bigger, Options::default()).unwrap();
        let changed = |r: &Report| -> Vec<String> {
            r.actions
                .iter()
                .filter(|(_, a)| *a != Action::Kept)
                .map(|(f, _)| f.clone())
                .collect()
        };
        assert_eq!(changed(&dry), changed(&real));
        let after = files(&dir);
        let written: Vec<String> = after
            .iter()
            .filter(|(p, b)| before.get(*p) != Some(*b))
            .map(|(p, _)| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(written, pki.staged());
        Pki::new(&dir).require_complete(&bigger).unwrap();
    }
}
