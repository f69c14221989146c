//! The groups of release artifacts that are fetched together, by their command-line names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A group of artifacts that is fetched together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
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

impl Component {
    pub const ALL: [Component; 7] = [
        Component::Kubernetes,
        Component::Etcd,
        Component::Containerd,
        Component::Runc,
        Component::Crictl,
        Component::CniPlugins,
        Component::CniFlannel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Kubernetes => "kubernetes",
            Component::Etcd => "etcd",
            Component::Containerd => "containerd",
            Component::Runc => "runc",
            Component::Crictl => "crictl",
            Component::CniPlugins => "cni-plugins",
            Component::CniFlannel => "cni-flannel",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A component name that is none of [`Component::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown component `{0}` (one of: {names})", names = component_names())]
pub struct UnknownComponent(pub String);

fn component_names() -> String {
    let names: Vec<&str> = Component::ALL.iter().map(|c| c.name()).collect();
    names.join(", ")
}

impl FromStr for Component {
    type Err = UnknownComponent;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Component::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownComponent(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_names_round_trip() {
        for c in Component::ALL {
            assert_eq!(c.name().parse::<Component>().unwrap(), c);
        }
        assert!("docker"
            .parse::<Component>()
            .unwrap_err()
            .to_string()
            .contains("cni-flannel"));
    }
}
