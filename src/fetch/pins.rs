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

/// Expected index digests of the images the cluster runs (the add-ons' images have theirs
/// in their rows, [`crate::addons::ADDONS`]). None of these could be checked
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
        image: "docker.io/library/node:24-bookworm-slim",
        digest: None,
        source: "a moving tag: Docker Hub rebuilds it for every Node.js and Debian update",
    },
    // The conformance run's images (`fetch --conformance`). The conformance image follows
    // the cluster's patch release; a release with no row here is fetched on trust, with a
    // warning (`--image-digest` pins it).
    Pin {
        image: "registry.k8s.io/e2e-test-images/agnhost:2.66.1",
        digest: Some("sha256:6e2eef87d0dc77e070a7549bc5fdfa290c0fefe3359eb33c2ad1eda692fe66a4"),
        source: "the promotion pull request kubernetes/k8s.io#9787; not in the stored copy of the promotion manifest",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/agnhost:2.63.0",
        digest: Some("sha256:a62f40481e05709988fe44e5035b2e0f553cd52bf0ae4e83614928255b00e8c1"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/agnhost:2.59",
        digest: Some("sha256:10ed98804c877e505e17bced991682b6fd50ab1da9cddcd19935b48d645da40a"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/agnhost:2.55",
        digest: Some("sha256:541cafada1867e8684b25d24f0cb1132e76aff093401b5987490b654fbd79c0a"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/busybox:1.37.0-1",
        digest: Some("sha256:0ffbe172f8d245c83f285c6992b452c53d085661e03ddfd3b484332026e6c8bb"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/busybox:1.37.0-2",
        digest: Some("sha256:690925c6f3493b235eb590113f8c481564dcd4f1962cf7d5b321f185980721ef"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/nginx:1.14-4",
        digest: Some("sha256:5c99cf6a02adda929b10321dbf4ecfa00d87be9ba4fb456006237d530ab4baa1"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/nginx:1.15-4",
        digest: Some("sha256:db048754ae68ae337d8fa96494c96d2a1204c3320f5dcf7e8e71085adec85da6"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/nginx:1.27-0",
        digest: Some("sha256:037a9ce8ffbc267f5e65bc08e1279da84b6f136bbf9bbf5a15cfb4088dc85b7d"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/nginx:1.27.0-2",
        digest: None,
        source: "promoted in kubernetes/k8s.io#9788; its digest is in no stored copy of the promotion manifest",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/nginx:1.28.0-2",
        digest: None,
        source: "promoted in kubernetes/k8s.io#9788; its digest is in no stored copy of the promotion manifest",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2",
        digest: Some("sha256:19d4ecf1e0731b9ea55aca9c070d520f68b96ed0defbcc0e4eefe97b3d663ca3"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/kitten:1.7",
        digest: Some("sha256:03446e7dc02d04378c747bc731fb44249b13bcd836c7ae83aa7690b9e6e57b29"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/kitten:1.8",
        digest: Some("sha256:e122d064bcccffaa662f800ea6982cb90de0b5d5d309273e2f99fef6b99c865d"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/nautilus:1.7",
        digest: Some("sha256:80ba6c8c44f9623f06e868a1aa66026c8ec438ad814f9ec95e9333b415fe3550"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/nautilus:1.8",
        digest: Some("sha256:f2e26351c2132bf496376a780cb5985805d8f53b71e55571a759292c3325b718"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/nonewprivs:1.3",
        digest: Some("sha256:8ac1264691820febacf3aea5d152cbde6d10685731ec14966a9401c6f47a68ac"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/nonewprivs:1.4",
        digest: Some("sha256:176bf4c0e3555b7be45fb0922a463de6019746cbbb27fa74bd0e97a6dad6af9c"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0",
        digest: Some("sha256:5017306bb8d1d4c34b7678e69c26b6d6c44168bbe600829c4cae5534c7d0324a"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1",
        digest: None,
        source: "promoted in kubernetes/k8s.io#9788; its digest is in no stored copy of the promotion manifest",
    },
    Pin {
        image: "registry.k8s.io/etcd:3.6.6-0",
        digest: Some("sha256:60a30b5d81b2217555e2cfb9537f655b7ba97220b99c39ee2e162a7127225890"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-etcd/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/etcd:3.6.8-0",
        digest: Some("sha256:397189418d1a00e500c0605ad18d1baf3b541a1004d768448c367e48071622e5"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-etcd/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/etcd:3.7.0-0",
        digest: Some("sha256:6ecefbe2510c4a30573a62a4d6dd175acf881ca67003fcd91849a16df7a724d5"),
        source: "the promotion pull request kubernetes/k8s.io#9687 (its crane output) and a fork's copy of the promotion manifest, agreeing",
    },
    Pin {
        image: "registry.k8s.io/conformance:v1.35.0",
        digest: Some("sha256:4bb5da70df0f973df99c386f61c7d8d48df4ddb6e935a4b5212ec35ce8d350dc"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-kubernetes/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/conformance:v1.35.1",
        digest: Some("sha256:76df9c319d1b2e74933fd2d8e37520ecfaa41b97d73df60d7194e54bf1c54c3d"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-kubernetes/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/conformance:v1.35.2",
        digest: Some("sha256:6ee0db98252c78d8f70426e2bb4b912376fec3eb9b67ca99dcc187e8f5423000"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-kubernetes/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/conformance:v1.35.3",
        digest: Some("sha256:c63c41f3ccd4a2ba1f9dfeec2b4dfed3f909ada57200057747e5f69bf5c9a0f2"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-kubernetes/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/conformance:v1.35.4",
        digest: Some("sha256:4e8d2b000cd84452dcf7363ff8d9f904b6d2354c6a0466f05fdaa3b2aa56ca72"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-kubernetes/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/conformance:v1.36.0",
        digest: Some("sha256:d2158f40555e28265994711e971c3f6f9f5591ffcae7ca0209909ae4bd71c21e"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-kubernetes/images.yaml",
    },
];

/// The pinned digest of `reference` (normalized first: `node:24` is
/// `docker.io/library/node:24`), if the table has one.
pub fn pinned_digest(reference: &str) -> Option<&'static str> {
    pin(reference).and_then(|p| p.digest)
}

/// The pin row of `reference`: from [`IMAGE_PINS`] or an add-on's image row
/// ([`crate::addons::AddonImage`]).
pub fn pin(reference: &str) -> Option<Pin> {
    let full = ImageRef::parse(reference).ok()?.full();
    IMAGE_PINS
        .iter()
        .find(|p| p.image == full)
        .copied()
        .or_else(|| {
            crate::addons::images()
                .find(|i| i.reference == full)
                .map(|i| Pin {
                    image: i.reference,
                    digest: i.digest,
                    source: i.digest_source,
                })
        })
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
