//! [`Pki::ensure`]: the whole PKI for an inventory, CAs first (leaves are signed with them),
//! then the leaves, the service-account pair and the encryption key.

use super::error::PkiError;
use super::report::{Options, Report};
use super::store::{Pki, ADMIN_KUBECONFIG, ENCRYPTION_KEY, SA_KEY};
use crate::fsutil::LockMode;
use crate::inventory::Cluster;
use time::OffsetDateTime;

impl Pki {
    /// Creates what is missing and re-issues what no longer matches the inventory, holding
    /// the directory's lock exclusively (shared for a dry run); first completes or removes
    /// what a killed run left ([`Report::tidied`]).
    pub fn ensure(&self, cluster: &Cluster, opts: Options) -> Result<Report, PkiError> {
        let mode = match self.is_dry_run() {
            true => LockMode::Shared,
            false => LockMode::Exclusive,
        };
        let _lock = self.take_lock(mode)?;
        if opts.rotate_cas {
            self.refuse_rotation_of_a_running_cluster()?;
        }
        let mut report = Report::default();
        let days = &cluster.inventory.pki;
        self.create_private_dir()?;
        if !self.is_dry_run() {
            report.tidied = self.recover()?;
        }
        self.require_readable(cluster)?;
        let now = OffsetDateTime::now_utc();
        let cas = self.ensure_cas(opts.rotate_cas, days.ca_validity_days, now, &mut report)?;
        self.ensure_leaves(
            cluster,
            &cas,
            opts.renew_leaves,
            days.leaf_validity(),
            now,
            &mut report,
        )?;
        report
            .actions
            .push((SA_KEY.into(), self.ensure_service_account_keys()?));
        report
            .actions
            .push((ENCRYPTION_KEY.into(), self.ensure_encryption_key()?));
        Ok(report)
    }
}

impl Pki {
    /// New CAs all at once break a running cluster until every host, kubeconfig and client
    /// has them: refused once `install` has used this PKI (its admin kubeconfig is here).
    fn refuse_rotation_of_a_running_cluster(&self) -> Result<(), PkiError> {
        let marker = self.path(ADMIN_KUBECONFIG);
        if std::fs::symlink_metadata(&marker).is_err() {
            return Ok(());
        }
        Err(PkiError::Refused(format!(
            "--rotate-cas replaces every CA at once, and the PKI in {} belongs to an installed \
             cluster ({} is here): every host, kubeconfig and client would stop trusting the \
             others until each had the new CAs. A staged rotation (both CAs trusted, leaves \
             re-issued, the old CA dropped) is not supported yet. A leaf that expires is \
             renewed with `certs renew` and `install`, which keeps the CAs; to replace the CAs, \
             `reset` the cluster, remove {}, then run `certs --rotate-cas` and `install`",
            self.dir.display(),
            marker.display(),
            marker.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::report::Action;
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::{Path, PathBuf};

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

    fn with_minutes(minutes: u32) -> Cluster {
        let src = INVENTORY.replacen(
            "hosts:",
            &format!("pki: {{cert_validity_minutes: {minutes}}}\nhosts:"),
            1,
        );
        Cluster::from_source(Path::new("hosts.yaml"), &src).unwrap()
    }

    #[test]
    fn a_leaf_in_the_last_third_of_its_validity_is_renewed_by_an_ordinary_run() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::new(tmp.path().join("pki"));
        let leaves = |r: &crate::pki::Report| -> Vec<Action> {
            r.actions
                .iter()
                .filter(|(f, _)| f.ends_with(".crt") && !f.contains("ca."))
                .map(|(_, a)| a.clone())
                .collect()
        };
        pki.ensure(&with_minutes(30), Options::default()).unwrap();
        // 30 minutes left of 30: kept.
        let again = pki.ensure(&with_minutes(30), Options::default()).unwrap();
        assert!(leaves(&again).iter().all(|a| *a == Action::Kept));
        // Certificates of 100 minutes are renewed with less than 33 left: these have 30.
        let longer = pki.ensure(&with_minutes(100), Options::default()).unwrap();
        let actions = leaves(&longer);
        assert!(!actions.is_empty());
        for a in &actions {
            assert!(
                matches!(a, Action::Reissued(why) if why.starts_with("expires ") && why.ends_with(": renewed")),
                "{a:?}"
            );
        }
        assert_eq!(
            super::super::leaf::renewal_window(time::Duration::days(365)),
            time::Duration::days(30)
        );
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
