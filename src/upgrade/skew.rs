//! Kubernetes' version skew policy as it applies to an upgrade, checked before anything
//! changes: one minor at a time, never down, kubelets never newer than an API server.

use std::fmt;

/// A release version, `v1.37.2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Release {
    /// `v1.37.2`; `None` for anything else (a pre-release, a missing `v`).
    pub fn parse(text: &str) -> Option<Release> {
        let mut parts = text.strip_prefix('v')?.split('.');
        let mut next = || -> Option<u32> {
            let p = parts.next()?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let release = Release {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        parts.next().is_none().then_some(release)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What one service of one host runs, as its state records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub host: String,
    pub service: String,
    pub version: String,
}

/// Why the upgrade is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkewError {
    #[error("{host}: {service} runs `{version}`, which is no release version")]
    Unreadable {
        host: String,
        service: String,
        version: String,
    },
    #[error(
        "no downgrade: {host} runs {running} ({service}), newer than the inventory's {target}"
    )]
    Downgrade {
        host: String,
        service: String,
        running: Release,
        target: Release,
    },
    #[error(
        "one minor at a time: {host} runs {running} ({service}); upgrade to the newest \
         v{}.{}.x first, then to {target}",
        running.major,
        running.minor + 1
    )]
    TooFar {
        host: String,
        service: String,
        running: Release,
        target: Release,
    },
    #[error(
        "kubelet on {kubelet_host} runs {kubelet}, newer than the API server on {apiserver_host} \
         ({apiserver}): control planes go first; that cluster was not upgraded by k8s-boot"
    )]
    KubeletAhead {
        kubelet_host: String,
        kubelet: Release,
        apiserver_host: String,
        apiserver: Release,
    },
}

/// Checks that `target` may follow what runs now: every service at most one minor older,
/// none newer, and no kubelet newer than an API server. The first violation found is
/// returned (hosts in the order given).
pub fn check(target: Release, running: &[Running]) -> Result<(), SkewError> {
    let mut parsed = Vec::new();
    for r in running {
        let v = Release::parse(&r.version).ok_or_else(|| SkewError::Unreadable {
            host: r.host.clone(),
            service: r.service.clone(),
            version: r.version.clone(),
        })?;
        parsed.push((r, v));
    }
    for (r, v) in &parsed {
        if *v > target {
            return Err(SkewError::Downgrade {
                host: r.host.clone(),
                service: r.service.clone(),
                running: *v,
                target,
            });
        }
        if v.major != target.major || v.minor + 1 < target.minor {
            return Err(SkewError::TooFar {
                host: r.host.clone(),
                service: r.service.clone(),
                running: *v,
                target,
            });
        }
    }
    let of = |service: &'static str| parsed.iter().filter(move |(r, _)| r.service == service);
    for (k, kv) in of("kubelet") {
        if let Some((a, av)) = of("kube-apiserver").find(|(_, av)| kv > av) {
            return Err(SkewError::KubeletAhead {
                kubelet_host: k.host.clone(),
                kubelet: *kv,
                apiserver_host: a.host.clone(),
                apiserver: *av,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(host: &str, service: &str, version: &str) -> Running {
        Running {
            host: host.into(),
            service: service.into(),
            version: version.into(),
        }
    }

    fn v(text: &str) -> Release {
        Release::parse(text).unwrap()
    }

    #[test]
    fn releases_parse_and_order() {
        assert_eq!(v("v1.37.2").to_string(), "v1.37.2");
        assert!(v("v1.36.10") > v("v1.36.9"));
        assert!(v("v1.37.0") > v("v1.36.10"));
        for bad in ["1.37.2", "v1.37", "v1.37.2-rc.1", "v1.37.2.1", "v1..2", ""] {
            assert_eq!(Release::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_next_minor_and_a_patch_are_allowed() {
        let now = [
            r("m1", "kube-apiserver", "v1.36.3"),
            r("w1", "kubelet", "v1.36.3"),
        ];
        assert_eq!(check(v("v1.37.2"), &now), Ok(()));
        assert_eq!(check(v("v1.36.4"), &now), Ok(()));
        // Halfway through (control planes done, kubelets not yet): resumable.
        let halfway = [
            r("m1", "kube-apiserver", "v1.37.2"),
            r("w1", "kubelet", "v1.36.3"),
        ];
        assert_eq!(check(v("v1.37.2"), &halfway), Ok(()));
    }

    #[test]
    fn two_minors_a_downgrade_and_a_kubelet_ahead_are_refused() {
        let old = [r("m1", "kube-apiserver", "v1.35.4")];
        let e = check(v("v1.37.2"), &old).unwrap_err();
        assert!(matches!(e, SkewError::TooFar { .. }));
        assert!(
            e.to_string()
                .contains("upgrade to the newest v1.36.x first"),
            "{e}"
        );

        let newer = [r("m1", "etcd", "v1.37.2")];
        let e = check(v("v1.37.1"), &newer).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("no downgrade: m1 runs v1.37.2 (etcd)"),
            "{e}"
        );

        let ahead = [
            r("m1", "kube-apiserver", "v1.36.3"),
            r("w1", "kubelet", "v1.37.2"),
        ];
        let e = check(v("v1.37.2"), &ahead).unwrap_err();
        assert!(matches!(e, SkewError::KubeletAhead { .. }), "{e}");

        let junk = [r("m1", "etcd", "latest")];
        assert!(matches!(
            check(v("v1.37.2"), &junk),
            Err(SkewError::Unreadable { .. })
        ));
    }
}
