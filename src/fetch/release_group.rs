//! The groups of release artifacts that are fetched together, by their command-line names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A group of artifacts that is fetched together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseGroup {
    /// kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl.
    Kubernetes,
    /// etcd, etcdctl, etcdutl.
    Etcd,
    /// containerd, containerd-shim-runc-v2, ctr.
    Containerd,
    Runc,
    /// crictl.
    Crictl,
    /// The reference CNI plugins, into `cni/`.
    CniPlugins,
    /// The flannel CNI plugin, installed as `cni/flannel`.
    CniFlannel,
}

impl ReleaseGroup {
    pub const ALL: [ReleaseGroup; 7] = [
        ReleaseGroup::Kubernetes,
        ReleaseGroup::Etcd,
        ReleaseGroup::Containerd,
        ReleaseGroup::Runc,
        ReleaseGroup::Crictl,
        ReleaseGroup::CniPlugins,
        ReleaseGroup::CniFlannel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ReleaseGroup::Kubernetes => "kubernetes",
            ReleaseGroup::Etcd => "etcd",
            ReleaseGroup::Containerd => "containerd",
            ReleaseGroup::Runc => "runc",
            ReleaseGroup::Crictl => "crictl",
            ReleaseGroup::CniPlugins => "cni-plugins",
            ReleaseGroup::CniFlannel => "cni-flannel",
        }
    }
}

impl fmt::Display for ReleaseGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A component name that is none of [`ReleaseGroup::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown component `{0}` (one of: {names})", names = component_names())]
pub struct UnknownReleaseGroup(pub String);

fn component_names() -> String {
    let names: Vec<&str> = ReleaseGroup::ALL.iter().map(|c| c.name()).collect();
    names.join(", ")
}

impl FromStr for ReleaseGroup {
    type Err = UnknownReleaseGroup;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReleaseGroup::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownReleaseGroup(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_names_round_trip() {
        for c in ReleaseGroup::ALL {
            assert_eq!(c.name().parse::<ReleaseGroup>().unwrap(), c);
        }
        assert!("docker"
            .parse::<ReleaseGroup>()
            .unwrap_err()
            .to_string()
            .contains("cni-flannel"));
    }
}
