//! The cluster's own settings: name, Kubernetes version, domain, kube-proxy, kubelet, PKI
//! validity and the binaries directory.

use super::checker::Checker;
use super::names::{is_dns_label, is_dns_name};
use crate::inventory::schema::{self, Inventory, PkiSettings};
use crate::versions::{self, VersionProfile};

const IPVS_SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh",
];

/// Name, version and domain; the version's profile, when the version is supported.
pub(super) fn check_identity(
    c: &mut Checker,
    cl: &schema::Cluster,
) -> Option<&'static VersionProfile> {
    if !is_dns_label(&cl.name) {
        c.error(
            "cluster.name",
            format!("`{}` must be a DNS label: lowercase letters, digits and '-', at most 63 characters", cl.name),
        );
    }
    let profile = match versions::profile_for(&cl.kubernetes_version) {
        Ok(p) => Some(p),
        Err(msg) => {
            c.error("cluster.kubernetes_version", msg);
            None
        }
    };
    if !is_dns_name(&cl.cluster_domain) {
        c.error(
            "cluster.cluster_domain",
            format!(
                "`{}` must be a DNS domain such as cluster.local",
                cl.cluster_domain
            ),
        );
    }
    profile
}

/// The proxy mode against what the version offers, and the IPVS scheduler.
pub(super) fn check_kube_proxy(
    c: &mut Checker,
    cl: &schema::Cluster,
    profile: Option<&VersionProfile>,
) {
    if let Some(p) = profile {
        let mode = cl.kube_proxy.mode.as_str();
        if !p.proxy_modes.contains(&mode) {
            c.error(
                "cluster.kube_proxy.mode",
                format!(
                    "`{mode}` is not available in v{}; expected one of {}",
                    p.minor,
                    p.proxy_modes.join(", ")
                ),
            );
        } else if p.deprecated_proxy_modes.contains(&mode) {
            c.warn(
                "cluster.kube_proxy.mode",
                format!(
                    "`{mode}` is deprecated upstream in v{}; prefer nftables or iptables",
                    p.minor
                ),
            );
        }
    }
    if !IPVS_SCHEDULERS.contains(&cl.kube_proxy.ipvs_scheduler.as_str()) {
        c.error(
            "cluster.kube_proxy.ipvs_scheduler",
            format!(
                "`{}` is not an IPVS scheduler; expected one of {}",
                cl.kube_proxy.ipvs_scheduler,
                IPVS_SCHEDULERS.join(", ")
            ),
        );
    }
}

pub(super) fn check_kubelet(c: &mut Checker, cl: &schema::Cluster) {
    if cl.kubelet.allow_cgroup_v1 {
        c.warn(
            "cluster.kubelet.allow_cgroup_v1",
            "the kubelet is told to start on cgroup v1 hosts (failCgroupV1: false); cgroup v1 support is deprecated upstream and will be removed, use this only for hosts that cannot move to cgroup v2",
        );
    }
    let (high, low) = (
        cl.kubelet.image_gc_high_threshold_percent,
        cl.kubelet.image_gc_low_threshold_percent,
    );
    for (field, value) in [
        ("cluster.kubelet.image_gc_high_threshold_percent", high),
        ("cluster.kubelet.image_gc_low_threshold_percent", low),
    ] {
        if value.is_some_and(|v| v > 100) {
            c.error(field, "expected a percentage from 0 to 100");
        }
    }
    let (default_high, default_low) = schema::DEFAULT_IMAGE_GC_PERCENT;
    let (h, l) = (high.unwrap_or(default_high), low.unwrap_or(default_low));
    // Past 100 the check above spoke already; with neither set, the defaults are in order.
    if h <= 100 && l <= 100 && l >= h {
        c.error(
            if low.is_some() {
                "cluster.kubelet.image_gc_low_threshold_percent"
            } else {
                "cluster.kubelet.image_gc_high_threshold_percent"
            },
            format!(
                "the low threshold ({l}%) must be below the high one ({h}%): the kubelet deletes \
                 unused images from the high one down to the low one (unset, they are \
                 {default_high}% and {default_low}%)"
            ),
        );
    }
    for (signal, value) in &cl.kubelet.eviction_hard {
        // Escaped: an unknown key is quoted in the field and the message.
        let signal_shown = signal.escape_debug().to_string();
        let field = format!("cluster.kubelet.eviction_hard.{signal_shown}");
        if !schema::EVICTION_SIGNALS.contains(&signal.as_str()) {
            c.error(
                &field,
                format!(
                    "`{signal_shown}` is not an eviction signal; expected one of {}",
                    schema::EVICTION_SIGNALS.join(", ")
                ),
            );
        } else if let Err(why) = eviction_threshold(value) {
            c.error(&field, why);
        }
    }
}

/// Whether `value` is a threshold the kubelet accepts: a percentage from 0% to 100% (0% and
/// 100% switch the signal off) or a positive quantity such as `500Mi`, `2Gi` or `100000`.
fn eviction_threshold(value: &str) -> Result<(), String> {
    let expected = "expected a percentage such as \"5%\" or a positive quantity such as \"2Gi\"";
    let number = |s: &str| {
        let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
        !int.is_empty()
            && !frac.is_empty()
            && int.len() + frac.len() <= 18
            && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    };
    if let Some(pct) = value.strip_suffix('%') {
        return match pct.parse::<f64>() {
            Ok(p) if number(pct) && p <= 100.0 => Ok(()),
            _ => Err(format!("`{value}`: a percentage must be from 0% to 100%")),
        };
    }
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "",
    ];
    let ok = SUFFIXES.iter().any(|suffix| {
        value
            .strip_suffix(suffix)
            .is_some_and(|n| number(n) && n.bytes().any(|b| (b'1'..=b'9').contains(&b)))
    });
    if ok {
        Ok(())
    } else {
        Err(format!("`{value}`: {expected}"))
    }
}

/// The shortest leaf validity: the Kubernetes API signs no CSR for less (10 minutes).
const MIN_LEAF_MINUTES: u32 = 10;

pub(super) fn check_pki(c: &mut Checker, pki: &PkiSettings) {
    if let Some(minutes) = pki.cert_validity_minutes {
        let ca_minutes = u64::from(pki.ca_validity_days) * 24 * 60;
        if minutes < MIN_LEAF_MINUTES || u64::from(minutes) > ca_minutes {
            c.error(
                "pki.cert_validity_minutes",
                format!(
                    "{minutes} minutes: expected {MIN_LEAF_MINUTES} to {ca_minutes} (the CA's \
                     validity); leave it out to use cert_validity_days"
                ),
            );
        }
    }
    if pki.cert_validity_days == 0 || pki.ca_validity_days == 0 {
        c.error("pki", "validity periods must be at least one day");
    } else if pki.cert_validity_days > pki.ca_validity_days {
        c.error(
            "pki.cert_validity_days",
            format!(
                "{} days outlives the CA ({} days)",
                pki.cert_validity_days, pki.ca_validity_days
            ),
        );
    }
}

/// The most snapshots a host keeps: each is as large as etcd's database.
const MAX_BACKUPS_KEPT: u32 = 1000;

/// The scheduled backups: a calendar expression systemd can read, and a sane retention.
pub(super) fn check_etcd_backup(c: &mut Checker, backup: &schema::EtcdBackup) {
    let schedule = backup.schedule.trim();
    // systemd validates the expression itself (`systemd-analyze calendar`); this keeps out
    // what would break the unit file: line breaks, quotes and shell or specifier syntax.
    let allowed = |ch: char| ch.is_ascii_alphanumeric() || " *-:/,.~".contains(ch);
    if schedule.is_empty() || !schedule.chars().all(allowed) || schedule.len() > 100 {
        c.error(
            "etcd.backup.schedule",
            format!(
                "`{}` is not a systemd calendar expression such as `daily`, `hourly` or \
                 `*-*-* 00/6:00:00` (letters, digits, spaces and * - : / , . ~, at most 100)",
                backup.schedule
            ),
        );
    }
    if backup.keep == 0 || backup.keep > MAX_BACKUPS_KEPT {
        c.error(
            "etcd.backup.keep",
            format!(
                "{} snapshots: expected 1 to {MAX_BACKUPS_KEPT} (set `enabled: false` for none)",
                backup.keep
            ),
        );
    }
}

pub(super) fn check_binaries(c: &mut Checker, inventory: &Inventory) {
    if inventory.binaries.dir.trim().is_empty() {
        c.error(
            "binaries.dir",
            "must be the path of the directory of the release binaries, e.g. binaries",
        );
    }
}
