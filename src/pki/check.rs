//! `certs check`: one [`CheckRow`] per CA, leaf and key file, each with a [`Status`]; the
//! JSON object is [`CheckReport`]. Reads only, a dry run's staged files included.

use super::error::PkiError;
use super::problem::Problem;
use super::profiles::{ca_profile, leaf_certs, CaKind, CAS};
use super::store::{Pki, ENCRYPTION_KEY, SA_KEY, SA_PUB};
use super::verify::{check_ca, check_leaf, utc_minute};
use crate::fsutil::LockMode;
use crate::inventory::Cluster;
use std::collections::BTreeMap;
use std::path::Path;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// `certs check` flags certificates that expire sooner than this.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

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

    fn of(verdict: Result<(), Problem>) -> Status {
        match verdict {
            Ok(()) => Status::Ok,
            Err(p) => Status::Bad(p.to_string()),
        }
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
    /// The row of a file that is not a certificate: `what` stands in the subject column.
    fn key_file(file: &str, what: &str, verdict: Result<(), Problem>) -> CheckRow {
        CheckRow {
            file: file.into(),
            host: None,
            subject: Some(what.into()),
            issuer: None,
            not_after: None,
            days_left: None,
            status: Status::of(verdict),
        }
    }

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

    /// The row of a certificate that `inspect` read: `verdict` decides its status, then
    /// expiry; `file` is the `.crt`, `host` the host a per-host certificate is for.
    fn certificate(
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

/// Expiry, and a start still ahead (a certificate not yet valid is refused by its peers as
/// much as an expired one).
fn expiry_status(cert: &X509Certificate, now: OffsetDateTime) -> Status {
    let not_before = cert.validity().not_before.to_datetime();
    let left = cert.validity().not_after.to_datetime() - now;
    if not_before > now {
        Status::Bad(Problem::NotYetValid(utc_minute(not_before)).to_string())
    } else if left <= Duration::ZERO {
        Status::Bad("expired".into())
    } else if left < Duration::days(EXPIRY_WARNING_DAYS) {
        Status::Expiring
    } else {
        Status::Ok
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

/// The DER of each CA that could be read, by kind: leaves are checked against these.
type CaDers = BTreeMap<CaKind, Vec<u8>>;

impl Pki {
    /// One row per CA and leaf for `certs check`, then `sa.key`, `sa.pub` and
    /// `encryption.key`, then one per temporary file a killed run left. Reads only, sharing
    /// the directory's lock; the errors are a directory that is not one (or writable by
    /// others) and a lock held by a writer.
    pub fn check(&self, cluster: &Cluster) -> Result<Vec<CheckRow>, PkiError> {
        let _lock = self.take_lock(LockMode::Shared)?;
        let now = OffsetDateTime::now_utc();
        let mut rows = Vec::new();
        let ca_ders = self.check_cas(now, &mut rows);
        self.check_leaves(cluster, &ca_ders, now, &mut rows);
        self.check_key_files(&mut rows);
        for file in self.leftovers()? {
            rows.push(CheckRow::key_file(
                &file,
                "temporary file",
                Err(Problem::Leftover),
            ));
        }
        Ok(rows)
    }

    fn check_cas(&self, now: OffsetDateTime, rows: &mut Vec<CheckRow>) -> CaDers {
        let mut ca_ders = BTreeMap::new();
        for ca in CAS {
            let file = format!("{}.crt", ca.file);
            let row = match self.inspect(ca.file) {
                Err(p) => CheckRow::broken(&file, None, p),
                Ok(der) => {
                    let row = CheckRow::certificate(&file, None, &der, now, check_ca);
                    ca_ders.insert(ca.kind, der);
                    row
                }
            };
            rows.push(row.also(self.key_mode_problem(&format!("{}.key", ca.file))));
        }
        ca_ders
    }

    fn check_leaves(
        &self,
        cluster: &Cluster,
        ca_ders: &CaDers,
        now: OffsetDateTime,
        rows: &mut Vec<CheckRow>,
    ) {
        for leaf in leaf_certs(cluster) {
            let file = format!("{}.crt", leaf.file);
            let host = leaf.host.as_deref();
            let ca_stem = ca_profile(leaf.ca).file;
            let row = match (self.inspect(&leaf.file), ca_ders.get(&leaf.ca)) {
                (Err(p), _) => CheckRow::broken(&file, host, p),
                (Ok(der), None) => CheckRow::certificate(&file, host, &der, now, |_| {
                    Err(Problem::CaUnusable(ca_stem))
                }),
                (Ok(der), Some(ca_der)) => CheckRow::certificate(&file, host, &der, now, |cert| {
                    check_leaf(&leaf, cert, ca_stem, ca_der, now)
                }),
            };
            rows.push(row.also(self.key_mode_problem(&format!("{}.key", leaf.file))));
        }
    }

    /// `sa.key`, `sa.pub` and `encryption.key`; the mode is checked on the private ones.
    fn check_key_files(&self, rows: &mut Vec<CheckRow>) {
        let (sa_key, sa_pub) = self.service_account_problems();
        for (file, what, verdict, private) in [
            (SA_KEY, "service-account key", sa_key, true),
            (SA_PUB, "service-account public key", sa_pub, false),
            (
                ENCRYPTION_KEY,
                "encryption key",
                self.encryption_key_problem(),
                true,
            ),
        ] {
            let row = CheckRow::key_file(file, what, verdict);
            rows.push(row.also(private.then(|| self.key_mode_problem(file)).flatten()));
        }
    }
}
