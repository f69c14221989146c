//! What the product trusts, with the reasons: the release versions of the node components
//! (the Kubernetes minors' own pins, etcd, pause and CoreDNS, are in [`crate::versions`]) and
//! the digests the cluster's image tags must resolve to, each with where it was found.

use super::registry::ImageRef;

/// containerd: the 2.3 line is the long-term-support line (supported to April 2028). 2.3.5 and
/// later fix CVE-2026-53495 and GHSA-rp3h-jf77-q9p4; 2.3.7 is a later patch of the same line
/// (2.3.0-2.3.3 also failed RunPodSandbox with a digest-pinned sandbox image). 2.1 is end of
/// life and 2.2 ends in November 2026. Reads the `version = 4` config we render.
pub const CONTAINERD_VERSION: &str = "2.3.7";
/// runc: the current 1.5.x patch release.
pub const RUNC_VERSION: &str = "1.5.3";
/// CNI plugins: 1.9.x fixes CVE-2025-67499 (portmap with the nftables backend forwarding
/// traffic of other destinations), which affects 1.7.x and 1.8.x; 1.9.1 is the latest patch.
pub const CNI_PLUGINS_VERSION: &str = "1.9.1";
/// crictl from cri-tools, the CRI client for inspecting containerd on a node. cri-tools
/// follows the Kubernetes minors; 1.37.0 speaks the CRI v1 API of every supported minor.
pub const CRICTL_VERSION: &str = "1.37.0";
/// The flannel CNI plugin (flannel-io/cni-plugin), the `flannel` binary the flannel conflist
/// delegates to; built against CNI plugins 1.9.1. The release tag is `v1.9.1-flannel3`, its
/// asset names carry only `v1.9.1`.
pub const FLANNEL_CNI_PLUGIN_VERSION: &str = "1.9.1-flannel3";

/// A row of the pin table: the image reference as the cluster names it, the digest of its
/// image index (manifest list) and where that digest was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub image: &'static str,
    pub digest: Option<&'static str>,
    pub source: &'static str,
}

/// Expected index digests of the images the cluster runs. None of these could be checked
/// against the registries from where this was written (no network); see `docs/FETCH.md`.
/// `None`: no trustworthy digest was found for the exact tag; such an image is fetched on
/// trust (blob digests only) with a warning.
pub const IMAGE_PINS: &[Pin] = &[
    Pin {
        image: "registry.k8s.io/pause:3.10.1",
        digest: Some("sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-kubernetes/images.yaml; kubernetes/k8s.io#8261",
    },
    Pin {
        image: "registry.k8s.io/pause:3.10.2",
        digest: Some("sha256:f548e0e8e3dc1896ca956272154dde3314e8cc4fde0a57577ee9fa1c63f5baf4"),
        source: "third-party pins of registry.k8s.io/pause:3.10.2 in several public repositories, none disagreeing; not in the stored copy of the promotion manifest",
    },
    Pin {
        image: "registry.k8s.io/coredns/coredns:v1.13.1",
        digest: Some("sha256:9b9128672209474da07c91439bf15ed704ae05ad918dd6454e5b6ae14e35fee6"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-coredns/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/coredns/coredns:v1.14.2",
        digest: Some("sha256:e7e6440cfd1e919280958f5b5a6ab2b184d385bba774c12ad2a9e1e4183f90d9"),
        source: "cilium-cli defaults (ConnectivityDNSTestServerImage, kept by Renovate) and other public pins of coredns v1.14.2",
    },
    Pin {
        image: "registry.k8s.io/coredns/coredns:v1.14.6",
        digest: Some("sha256:900f9c109f7a33545d3c811516e8376df9019147b750f5ce3e254468769176ea"),
        source: "third-party pins of registry.k8s.io/coredns/coredns:v1.14.6 and coredns/coredns:1.14.6 in several public repositories, none disagreeing",
    },
    Pin {
        image: "registry.k8s.io/metrics-server/metrics-server:v0.8.0",
        digest: Some("sha256:89258156d0e9af60403eafd44da9676fd66f600c7934d468ccc17e42b199aee2"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-metrics-server/images.yaml",
    },
    Pin {
        image: "ghcr.io/flannel-io/flannel:v0.28.10",
        digest: None,
        source: "no published digest found for this tag",
    },
    Pin {
        image: "docker.io/library/node:24-bookworm-slim",
        digest: None,
        source: "a moving tag: Docker Hub rebuilds it for every Node.js and Debian update",
    },
];

/// The pinned digest of `reference` (normalized first: `node:24` is
/// `docker.io/library/node:24`), if the table has one.
pub fn pinned_digest(reference: &str) -> Option<&'static str> {
    let full = ImageRef::parse(reference).ok()?.full();
    IMAGE_PINS
        .iter()
        .find(|p| p.image == full)
        .and_then(|p| p.digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::oci_digest_hex;

    #[test]
    fn pins_are_well_formed() {
        for p in IMAGE_PINS {
            assert_eq!(
                ImageRef::parse(p.image).unwrap().full(),
                p.image,
                "{}",
                p.image
            );
            if let Some(d) = p.digest {
                assert!(oci_digest_hex(d).is_some(), "{}: {d}", p.image);
            }
            assert!(!p.source.is_empty());
        }
        assert_eq!(
            pinned_digest("registry.k8s.io/pause:3.10.1"),
            Some("sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c")
        );
        assert_eq!(pinned_digest("node:24-bookworm-slim"), None);
        assert_eq!(pinned_digest("example.org/unknown:1"), None);
    }
}
