//! The cluster's add-ons: what `install` applies into the cluster once the nodes run, one
//! row each. A row names its manifest template (embedded here), the images that manifest
//! runs with their digest pins (`fetch` downloads them), how the lab builds each image, the
//! certificate the manifest carries as a Secret, and the inventory setting that switches it
//! off. Adding an add-on is a row here, its template and, for an image the lab cannot build
//! with [`Recipe::GoProgram`], a recipe module under `src/lab/images/`.

use crate::inventory::Inventory;

/// How the lab builds an image from upstream sources (docs/LAB.md).
#[derive(Debug, PartialEq, Eq)]
pub enum Recipe {
    /// One Go program on the distroless base of upstream's images.
    GoProgram(GoProgram),
    /// flannel's program with Debian's iptables and nft (`src/lab/images/flannel.rs`).
    Flannel,
}

impl Recipe {
    /// The `build-upstream.sh` component that builds its program, which is also the
    /// program's file name in the build's directory.
    pub fn build_component(&self) -> &'static str {
        match self {
            Recipe::GoProgram(program) => program.program_name(),
            Recipe::Flannel => "flannel",
        }
    }
}

/// A Go program built from its published module at the image's tag.
#[derive(Debug, PartialEq, Eq)]
pub struct GoProgram {
    pub module: &'static str,
    /// The package of the module to build (`.`: the module's root).
    pub package: &'static str,
    /// Linker flags beyond `-s -w`, `{version}` standing for the tag: what upstream's release
    /// build sets, so the program reports its version.
    pub ldflags: &'static str,
    /// Where the program goes in the image: its entry point.
    pub path: &'static str,
    /// The user it runs as, as upstream's image sets it.
    pub user: &'static str,
}

impl GoProgram {
    /// The program's file name, as `go build` names it.
    pub fn program_name(&self) -> &'static str {
        let last = self.package.rsplit('/').next().unwrap_or(self.package);
        if last == "." {
            self.module.rsplit('/').next().unwrap_or(self.module)
        } else {
            last
        }
    }
}

/// An image an add-on's manifest runs.
#[derive(Debug, PartialEq, Eq)]
pub struct AddonImage {
    /// What the manifest reads its reference under: `{{ images.<key> }}`.
    pub key: &'static str,
    /// `name:tag`, as the manifest names it.
    pub reference: &'static str,
    /// Digest of its image index, checked by `fetch`; `None`: fetched on trust with a warning.
    pub digest: Option<&'static str>,
    /// Where the digest was found (or why there is none).
    pub digest_source: &'static str,
    pub recipe: Recipe,
}

impl AddonImage {
    /// Its tag: the version the lab builds.
    pub fn tag(&self) -> &'static str {
        self.reference
            .rsplit_once(':')
            .map_or(self.reference, |(_, t)| t)
    }
}

/// A certificate an add-on's manifest carries as a Secret: the leaf (a `LEAVES` row of
/// `src/pki/profiles.rs`), given to its manifest alone under `key` as `cert_b64`, `key_b64`
/// and `ca_b64` (its issuing CA).
#[derive(Debug)]
pub struct AddonCert {
    pub key: &'static str,
    /// The leaf's file stem in the PKI directory.
    pub leaf: &'static str,
}

pub struct Addon {
    pub name: &'static str,
    /// Its manifest: the template's name and its embedded text.
    pub manifest: (&'static str, &'static str),
    /// The images the manifest runs besides the version profile's (pause, CoreDNS) and the
    /// inventory's chat image.
    pub images: &'static [AddonImage],
    pub cert: Option<AddonCert>,
    /// Applied by the `workloads` phase (the demo workload) instead of the `cluster` phase.
    pub workload: bool,
    /// Whether an inventory wants it; an add-on switched off is not rendered, applied or
    /// fetched (the lab builds every row's images).
    pub wanted: fn(&Inventory) -> bool,
}

macro_rules! manifest {
    ($name:literal) => {
        ($name, include_str!(concat!("../templates/", $name)))
    };
}

fn always(_: &Inventory) -> bool {
    true
}

/// Every add-on, in the order `install` applies them (their manifests' names sort so too).
pub const ADDONS: &[Addon] = &[
    Addon {
        name: "apiserver-to-kubelet RBAC",
        manifest: manifest!("manifests/00-apiserver-to-kubelet-rbac.yaml"),
        images: &[],
        cert: None,
        workload: false,
        wanted: always,
    },
    Addon {
        // Before anything that creates Gateway API objects; `install` applies a manifest of
        // CustomResourceDefinitions first and waits until they are established.
        name: "Gateway API CRDs",
        manifest: manifest!("manifests/05-gateway-api-crds.yaml"),
        images: &[],
        cert: None,
        workload: false,
        wanted: |inventory| inventory.ingress.enabled,
    },
    Addon {
        name: "flannel",
        manifest: manifest!("manifests/10-flannel.yaml"),
        images: &[AddonImage {
            key: "flannel",
            reference: "ghcr.io/flannel-io/flannel:v0.28.10",
            digest: None,
            digest_source: "no published digest found for this tag",
            recipe: Recipe::Flannel,
        }],
        cert: None,
        workload: false,
        wanted: always,
    },
    Addon {
        name: "CoreDNS",
        manifest: manifest!("manifests/20-coredns.yaml"),
        // Its image is the version profile's.
        images: &[],
        cert: None,
        workload: false,
        wanted: always,
    },
    Addon {
        name: "chat",
        manifest: manifest!("manifests/30-chat.yaml"),
        // Its image is the inventory's `chat.image`.
        images: &[],
        cert: None,
        workload: true,
        wanted: |inventory| inventory.chat.enabled,
    },
    Addon {
        name: "metrics-server",
        manifest: manifest!("manifests/40-metrics-server.yaml"),
        images: &[AddonImage {
            key: "metrics_server",
            reference: "registry.k8s.io/metrics-server/metrics-server:v0.8.0",
            digest: Some("sha256:89258156d0e9af60403eafd44da9676fd66f600c7934d468ccc17e42b199aee2"),
            digest_source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-metrics-server/images.yaml",
            recipe: Recipe::GoProgram(GoProgram {
                module: "sigs.k8s.io/metrics-server",
                package: "cmd/metrics-server",
                ldflags: "-X sigs.k8s.io/metrics-server/pkg/version.gitVersion={version}",
                path: "/metrics-server",
                user: "65534",
            }),
        }],
        cert: Some(AddonCert {
            key: "metrics_server",
            leaf: crate::pki::profiles::METRICS_SERVER_CERT,
        }),
        workload: false,
        wanted: always,
    },
    Addon {
        // Traefik v3.6.12, the newest release whose every module the Go module proxy serves
        // (v3.7's need module versions it refuses: docs/INGRESS.md); Gateway API v1.4.0 is
        // the version it is built against.
        name: "Traefik",
        manifest: manifest!("manifests/45-traefik.yaml"),
        images: &[AddonImage {
            key: "traefik",
            reference: "docker.io/library/traefik:v3.6.12",
            digest: None,
            digest_source: "no published digest found for this tag",
            recipe: Recipe::GoProgram(GoProgram {
                module: "github.com/traefik/traefik/v3",
                package: "cmd/traefik",
                ldflags: "-X github.com/traefik/traefik/v3/pkg/version.Version={version}",
                path: "/traefik",
                // Upstream's image runs as root; the manifest runs it as 65532.
                user: "",
            }),
        }],
        cert: None,
        workload: false,
        wanted: |inventory| inventory.ingress.enabled,
    },
];

/// The add-ons `inventory` wants (every one without an inventory: `fetch --version`).
pub fn wanted(inventory: Option<&Inventory>) -> impl Iterator<Item = &'static Addon> + '_ {
    ADDONS
        .iter()
        .filter(move |a| inventory.is_none_or(|i| (a.wanted)(i)))
}

/// Every add-on image, wanted or not.
pub fn images() -> impl Iterator<Item = &'static AddonImage> {
    ADDONS.iter().flat_map(|a| a.images)
}

/// The add-on whose manifest is the template `name`.
pub fn by_manifest(name: &str) -> Option<&'static Addon> {
    ADDONS.iter().find(|a| a.manifest.0 == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn keys_manifests_and_images_are_unique_and_manifests_sort_in_apply_order() {
        let keys: BTreeSet<_> = images().map(|i| i.key).collect();
        assert_eq!(keys.len(), images().count());
        let references: BTreeSet<_> = images().map(|i| i.reference).collect();
        assert_eq!(references.len(), images().count());
        let manifests: Vec<_> = ADDONS.iter().map(|a| a.manifest.0).collect();
        let mut sorted = manifests.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(manifests, sorted);
    }

    #[test]
    fn every_image_names_its_tag_and_every_go_program_its_file() {
        for image in images() {
            assert!(image.tag().starts_with('v'), "{}", image.reference);
            if let Recipe::GoProgram(p) = &image.recipe {
                assert!(p.path.ends_with(&format!("/{}", p.program_name())));
                assert!(p.ldflags.contains("{version}"), "{}", image.reference);
            }
        }
        let root = GoProgram {
            module: "github.com/coredns/coredns",
            package: ".",
            ldflags: "",
            path: "/coredns",
            user: "0",
        };
        assert_eq!(root.program_name(), "coredns");
    }

    /// A manifest names its images only through its row, so `fetch` and the lab know every
    /// image it runs; and every image of a row is run by its manifest.
    #[test]
    fn each_manifest_runs_exactly_the_images_of_its_row() {
        for addon in ADDONS {
            let text = addon.manifest.1;
            let read: BTreeSet<&str> = text
                .split("images.")
                .skip(1)
                .map(|rest| {
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    &rest[..end]
                })
                .collect();
            let rows: BTreeSet<&str> = addon.images.iter().map(|i| i.key).collect();
            assert_eq!(read, rows, "{}", addon.manifest.0);
            if let Some(cert) = &addon.cert {
                assert!(text.contains(&format!("{}.cert_b64", cert.key)));
            }
        }
    }

    #[test]
    fn an_inventory_switches_the_chat_off_and_no_inventory_wants_every_add_on() {
        let path = std::path::Path::new("hosts.yaml");
        let mut inventory = crate::inventory::Cluster::from_source(path, crate::EXAMPLE_INVENTORY)
            .expect("the example loads")
            .inventory;
        assert_eq!(wanted(None).count(), ADDONS.len());
        assert!(wanted(Some(&inventory)).any(|a| a.name == "chat"));
        inventory.chat.enabled = false;
        assert!(!wanted(Some(&inventory)).any(|a| a.name == "chat"));
    }
}
