//! Supported Kubernetes minors and what differs between them.
//!
//! One row per minor. Templates read these values, so supporting a new minor means adding a
//! row here (after checking every rendered flag against that release) and its golden files.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct VersionProfile {
    /// `1.35`
    pub minor: &'static str,
    /// etcd release paired with this minor upstream.
    pub etcd: &'static str,
    /// Sandbox (pause) image the kubelet and containerd agree on.
    pub pause_image: &'static str,
    pub coredns_image: &'static str,
    /// kube-proxy modes this minor accepts.
    pub proxy_modes: &'static [&'static str],
    /// kube-proxy mode that still works but is deprecated upstream in this minor.
    pub deprecated_proxy_modes: &'static [&'static str],
    /// The e2e test images its conformance tests use.
    pub e2e_images: E2eImages,
}

/// Images of a minor's conformance tests, as its `test/utils/image/manifest.go` names them
/// (the etcd one is `registry.k8s.io/etcd:<etcd>-0`, the pause one the profile's).
#[derive(Debug, Clone, Serialize)]
pub struct E2eImages {
    pub agnhost: &'static str,
    pub agnhost_prev: &'static str,
    pub busybox: &'static str,
    pub nginx: &'static str,
    pub nginx_new: &'static str,
    pub sample_apiserver: &'static str,
    /// agnhost's test-webserver serving a picture and `data.json` (kubectl's Update Demo, the
    /// image volume test); two images that differ only in the picture.
    pub kitten: &'static str,
    pub nautilus: &'static str,
    /// A setuid-root program that prints its effective uid (the no-new-privileges test).
    pub nonewprivs: &'static str,
    /// The glibc resolver's DNS querier (`None`: the minor's DNS tests do not use one).
    pub glibc_dns_testing: Option<&'static str>,
}

/// Oldest first. etcd, pause and CoreDNS are the releases kubeadm pins for the minor.
pub const PROFILES: &[VersionProfile] = &[
    VersionProfile {
        minor: "1.35",
        etcd: "3.6.6",
        pause_image: "registry.k8s.io/pause:3.10.1",
        coredns_image: "registry.k8s.io/coredns/coredns:v1.13.1",
        proxy_modes: &["iptables", "ipvs", "nftables"],
        deprecated_proxy_modes: &["ipvs"],
        e2e_images: E2eImages {
            agnhost: "registry.k8s.io/e2e-test-images/agnhost:2.59",
            agnhost_prev: "registry.k8s.io/e2e-test-images/agnhost:2.55",
            busybox: "registry.k8s.io/e2e-test-images/busybox:1.37.0-1",
            nginx: "registry.k8s.io/e2e-test-images/nginx:1.14-4",
            nginx_new: "registry.k8s.io/e2e-test-images/nginx:1.15-4",
            sample_apiserver: "registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2",
            kitten: "registry.k8s.io/e2e-test-images/kitten:1.7",
            nautilus: "registry.k8s.io/e2e-test-images/nautilus:1.7",
            nonewprivs: "registry.k8s.io/e2e-test-images/nonewprivs:1.3",
            glibc_dns_testing: None,
        },
    },
    VersionProfile {
        minor: "1.36",
        etcd: "3.6.8",
        pause_image: "registry.k8s.io/pause:3.10.2",
        coredns_image: "registry.k8s.io/coredns/coredns:v1.14.2",
        proxy_modes: &["iptables", "ipvs", "nftables"],
        deprecated_proxy_modes: &["ipvs"],
        e2e_images: E2eImages {
            agnhost: "registry.k8s.io/e2e-test-images/agnhost:2.63.0",
            agnhost_prev: "registry.k8s.io/e2e-test-images/agnhost:2.55",
            busybox: "registry.k8s.io/e2e-test-images/busybox:1.37.0-1",
            nginx: "registry.k8s.io/e2e-test-images/nginx:1.15-4",
            nginx_new: "registry.k8s.io/e2e-test-images/nginx:1.27-0",
            sample_apiserver: "registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2",
            kitten: "registry.k8s.io/e2e-test-images/kitten:1.8",
            nautilus: "registry.k8s.io/e2e-test-images/nautilus:1.8",
            nonewprivs: "registry.k8s.io/e2e-test-images/nonewprivs:1.4",
            glibc_dns_testing: Some("registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0"),
        },
    },
    VersionProfile {
        minor: "1.37",
        etcd: "3.7.0",
        pause_image: "registry.k8s.io/pause:3.10.2",
        coredns_image: "registry.k8s.io/coredns/coredns:v1.14.6",
        proxy_modes: &["iptables", "ipvs", "nftables"],
        deprecated_proxy_modes: &["ipvs"],
        e2e_images: E2eImages {
            agnhost: "registry.k8s.io/e2e-test-images/agnhost:2.66.1",
            agnhost_prev: "registry.k8s.io/e2e-test-images/agnhost:2.55",
            busybox: "registry.k8s.io/e2e-test-images/busybox:1.37.0-2",
            nginx: "registry.k8s.io/e2e-test-images/nginx:1.27.0-2",
            nginx_new: "registry.k8s.io/e2e-test-images/nginx:1.28.0-2",
            sample_apiserver: "registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2",
            kitten: "registry.k8s.io/e2e-test-images/kitten:1.8",
            nautilus: "registry.k8s.io/e2e-test-images/nautilus:1.8",
            nonewprivs: "registry.k8s.io/e2e-test-images/nonewprivs:1.4",
            glibc_dns_testing: Some("registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1"),
        },
    },
];

/// The profile for a full version such as `v1.35.0`, or the list of supported minors.
pub fn profile_for(version: &str) -> Result<&'static VersionProfile, String> {
    let supported = || {
        PROFILES
            .iter()
            .map(|p| format!("v{}.x", p.minor))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let v = version.strip_prefix('v').ok_or_else(|| {
        format!(
            "`{version}` is not a release version like v1.35.0 (supported: {})",
            supported()
        )
    })?;
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "`{version}` is not a release version like v1.35.0 (supported: {})",
            supported()
        ));
    }
    let minor = format!("{}.{}", parts[0], parts[1]);
    PROFILES.iter().find(|p| p.minor == minor).ok_or_else(|| {
        format!(
            "Kubernetes v{minor} is not supported; supported minors: {}",
            supported()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_versions() {
        assert_eq!(profile_for("v1.35.2").unwrap().minor, "1.35");
        assert_eq!(profile_for("v1.37.2").unwrap().etcd, "3.7.0");
        assert!(profile_for("v1.18.3")
            .unwrap_err()
            .contains("v1.35.x, v1.36.x, v1.37.x"));
        assert!(profile_for("v1.34.6")
            .unwrap_err()
            .contains("Kubernetes v1.34 is not supported"));
        assert!(profile_for("v1.33.5").is_err());
        assert!(profile_for("1.35.0").is_err());
        assert!(profile_for("v1.35").is_err());
        assert!(profile_for("v1.35.0-rc.1").is_err());
    }
}
