//! Where each component is downloaded from: the upstream release locations, or a mirror with
//! the same layout, and registry mirrors for images.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::FetchError;
use super::release_group::ReleaseGroup;

/// Base URLs of the release downloads. Defaults are the upstream locations; point them at an
/// internal HTTP(S) mirror with the same layout for air-gapped installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirrors {
    /// `{kubernetes}/{version}/bin/linux/{arch}/{name}` and `{name}.sha256`.
    pub kubernetes: String,
    /// `{etcd}/v{ver}/etcd-v{ver}-linux-{arch}.tar.gz` and `{etcd}/v{ver}/SHA256SUMS`.
    pub etcd: String,
    /// `{containerd}/v{ver}/containerd-{ver}-linux-{arch}.tar.gz` and `.sha256sum`.
    pub containerd: String,
    /// `{runc}/v{ver}/runc.{arch}` and `{runc}/v{ver}/runc.sha256sum`.
    pub runc: String,
    /// `{crictl}/v{ver}/crictl-v{ver}-linux-{arch}.tar.gz` and `.sha256`.
    pub crictl: String,
    /// `{cni_plugins}/v{ver}/cni-plugins-linux-{arch}-v{ver}.tgz` and `.sha256`.
    pub cni_plugins: String,
    /// `{cni_flannel}/v{tag}/cni-plugin-flannel-linux-{arch}-v{ver}.tgz` and `.sha256`, where
    /// `tag` is [`FLANNEL_CNI_PLUGIN_VERSION`](crate::fetch::FLANNEL_CNI_PLUGIN_VERSION) and `ver` the part before `-flannel`.
    pub cni_flannel: String,
    /// Container registries by registry host (`registry.k8s.io`, `ghcr.io`, `docker.io`):
    /// the base URL that answers the registry API (`{base}/v2/...`) instead of the upstream
    /// registry. A path in the base URL is put in front of every repository name
    /// (`https://harbor.corp/hub` -> `https://harbor.corp/v2/hub/library/node/...`).
    /// Hosts not listed use the upstream registry.
    #[serde(default)]
    pub registries: BTreeMap<String, String>,
}

impl Default for Mirrors {
    fn default() -> Self {
        Mirrors {
            kubernetes: "https://dl.k8s.io/release".into(),
            etcd: "https://github.com/etcd-io/etcd/releases/download".into(),
            containerd: "https://github.com/containerd/containerd/releases/download".into(),
            runc: "https://github.com/opencontainers/runc/releases/download".into(),
            crictl: "https://github.com/kubernetes-sigs/cri-tools/releases/download".into(),
            cni_plugins: "https://github.com/containernetworking/plugins/releases/download".into(),
            cni_flannel: "https://github.com/flannel-io/cni-plugin/releases/download".into(),
            registries: BTreeMap::new(),
        }
    }
}

impl Mirrors {
    /// Every release download under one URL: `{base}/kubernetes`, `{base}/etcd`,
    /// `{base}/containerd`, `{base}/runc`, `{base}/crictl`, `{base}/cni-plugins`,
    /// `{base}/cni-flannel` (each with the upstream layout below it). Registries are not
    /// affected: a static file server cannot answer the registry API.
    pub fn under(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Mirrors {
            kubernetes: format!("{base}/kubernetes"),
            etcd: format!("{base}/etcd"),
            containerd: format!("{base}/containerd"),
            runc: format!("{base}/runc"),
            crictl: format!("{base}/crictl"),
            cni_plugins: format!("{base}/cni-plugins"),
            cni_flannel: format!("{base}/cni-flannel"),
            registries: BTreeMap::new(),
        }
    }

    /// The base URL of `c` without a trailing `/`; only http(s) URLs are accepted.
    pub fn checked_base(&self, c: ReleaseGroup) -> Result<&str, FetchError> {
        let given = self.base(c);
        let base = given.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(FetchError::Mirror {
                component: c.name().into(),
                url: given.into(),
            });
        }
        Ok(base)
    }

    fn base(&self, c: ReleaseGroup) -> &str {
        match c {
            ReleaseGroup::Kubernetes => &self.kubernetes,
            ReleaseGroup::Etcd => &self.etcd,
            ReleaseGroup::Containerd => &self.containerd,
            ReleaseGroup::Runc => &self.runc,
            ReleaseGroup::Crictl => &self.crictl,
            ReleaseGroup::CniPlugins => &self.cni_plugins,
            ReleaseGroup::CniFlannel => &self.cni_flannel,
        }
    }
}
