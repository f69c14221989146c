//! The release artifact catalogue: which files are downloaded for which component, where
//! they are published (URL and checksum file, by the upstream layout), and what each one
//! yields in the binaries directory.

use std::collections::BTreeSet;

use super::error::FetchError;
use super::extract::Extract;
use super::mirrors::Mirrors;
use super::pins::{
    CNI_PLUGINS_VERSION, CONTAINERD_VERSION, CRICTL_VERSION, FLANNEL_CNI_PLUGIN_VERSION,
    RUNC_VERSION,
};
use super::release_group::ReleaseGroup;

/// Kubernetes server and client binaries taken from `dl.k8s.io`.
pub const KUBERNETES_BINARIES: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
];

/// CNI plugins the rendered configuration uses (flannel delegates to bridge and host-local,
/// the conflist chains portmap, containerd needs loopback). An archive without them is refused.
pub const REQUIRED_CNI_PLUGINS: [&str; 4] = ["bridge", "host-local", "loopback", "portmap"];

pub const SUPPORTED_ARCHES: [&str; 2] = ["amd64", "arm64"];
/// CNI plugins, under the binaries directory.
pub const CNI_DIR: &str = "cni";

/// How an artifact becomes files in the binaries directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// The download itself is the executable, installed as `{dir}/{name}`.
    Binary { name: String },
    /// A `.tar.gz` kept in `.cache/` from which executables are extracted.
    Archive(Extract),
}

/// One downloadable release artifact with its published checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub component: ReleaseGroup,
    /// Release version as published, with its `v` (`v1.36.0`, `v3.6.8`).
    pub version: String,
    pub url: String,
    pub checksum_url: String,
    /// The name looked up in the checksum file.
    pub checksum_name: String,
    /// File name under `{dir}/.cache/` (partial downloads get `.part` appended).
    pub cache_name: String,
    pub install: Install,
}

impl Artifact {
    /// The files (relative to the binaries directory) that installing this artifact always
    /// yields: optional archive members are left out, and of an archive whose executables
    /// are all taken only the required ones are named.
    pub fn guaranteed_files(&self) -> Vec<String> {
        match &self.install {
            Install::Binary { name } => vec![name.clone()],
            Install::Archive(what) => what.guaranteed_names(),
        }
    }
}

/// The artifacts of `components` (empty: [`ReleaseGroup::ALL`]) for one Kubernetes version and
/// architecture, in component order. Validates the version, architecture and mirror URLs;
/// touches neither the network nor the disk.
pub fn catalogue(
    kubernetes_version: &str,
    arch: &str,
    mirrors: &Mirrors,
    components: &[ReleaseGroup],
) -> Result<Vec<Artifact>, FetchError> {
    let profile = crate::versions::profile_for(kubernetes_version).map_err(FetchError::Version)?;
    if !SUPPORTED_ARCHES.contains(&arch) {
        return Err(FetchError::Arch(arch.to_string()));
    }
    let wanted: BTreeSet<ReleaseGroup> = if components.is_empty() {
        ReleaseGroup::ALL.into_iter().collect()
    } else {
        components.iter().copied().collect()
    };
    let mut out = Vec::new();
    for c in wanted {
        let base = mirrors.checked_base(c)?;
        match c {
            ReleaseGroup::Kubernetes => out.extend(kubernetes(base, kubernetes_version, arch)),
            ReleaseGroup::Etcd => out.push(etcd(base, profile.etcd, arch)),
            ReleaseGroup::Containerd => out.push(containerd(base, arch)),
            ReleaseGroup::Runc => out.push(runc(base, arch)),
            ReleaseGroup::Crictl => out.push(crictl(base, arch)),
            ReleaseGroup::CniPlugins => out.push(cni_plugins(base, arch)),
            ReleaseGroup::CniFlannel => out.push(cni_flannel(base, arch)),
        }
    }
    Ok(out)
}

/// An archive member installed under the same name, required.
fn member(path: String, name: &str) -> (String, String, bool) {
    (path, name.to_string(), true)
}

/// `{base}/{v}/bin/linux/{arch}/{name}` with `{name}.sha256` next to it, one per binary.
fn kubernetes(base: &str, v: &str, arch: &str) -> Vec<Artifact> {
    KUBERNETES_BINARIES
        .iter()
        .map(|name| {
            let url = format!("{base}/{v}/bin/linux/{arch}/{name}");
            Artifact {
                component: ReleaseGroup::Kubernetes,
                version: v.to_string(),
                checksum_url: format!("{url}.sha256"),
                url,
                checksum_name: name.to_string(),
                cache_name: format!("{name}-{v}-linux-{arch}"),
                install: Install::Binary {
                    name: name.to_string(),
                },
            }
        })
        .collect()
}

/// `{base}/v{v}/etcd-v{v}-linux-{arch}.tar.gz`, checksums in `{base}/v{v}/SHA256SUMS`.
fn etcd(base: &str, v: &str, arch: &str) -> Artifact {
    let file = format!("etcd-v{v}-linux-{arch}.tar.gz");
    let top = format!("etcd-v{v}-linux-{arch}");
    Artifact {
        component: ReleaseGroup::Etcd,
        version: format!("v{v}"),
        url: format!("{base}/v{v}/{file}"),
        checksum_url: format!("{base}/v{v}/SHA256SUMS"),
        checksum_name: file.clone(),
        cache_name: file,
        install: Install::Archive(Extract::Members(vec![
            member(format!("{top}/etcd"), "etcd"),
            member(format!("{top}/etcdctl"), "etcdctl"),
            member(format!("{top}/etcdutl"), "etcdutl"),
        ])),
    }
}

/// `{base}/v{v}/containerd-{v}-linux-{arch}.tar.gz` and `.sha256sum`; binaries under `bin/`.
fn containerd(base: &str, arch: &str) -> Artifact {
    let v = CONTAINERD_VERSION;
    let file = format!("containerd-{v}-linux-{arch}.tar.gz");
    let url = format!("{base}/v{v}/{file}");
    let bin = |name: &str| member(format!("bin/{name}"), name);
    Artifact {
        component: ReleaseGroup::Containerd,
        version: format!("v{v}"),
        checksum_url: format!("{url}.sha256sum"),
        url,
        checksum_name: file.clone(),
        cache_name: file,
        install: Install::Archive(Extract::Members(vec![
            bin("containerd"),
            bin("containerd-shim-runc-v2"),
            bin("ctr"),
        ])),
    }
}

/// `{base}/v{v}/runc.{arch}`, checksums in `{base}/v{v}/runc.sha256sum`.
fn runc(base: &str, arch: &str) -> Artifact {
    let v = RUNC_VERSION;
    Artifact {
        component: ReleaseGroup::Runc,
        version: format!("v{v}"),
        url: format!("{base}/v{v}/runc.{arch}"),
        checksum_url: format!("{base}/v{v}/runc.sha256sum"),
        checksum_name: format!("runc.{arch}"),
        cache_name: format!("runc-v{v}-linux-{arch}"),
        install: Install::Binary {
            name: "runc".into(),
        },
    }
}

/// `{base}/v{v}/crictl-v{v}-linux-{arch}.tar.gz` and `.sha256`.
fn crictl(base: &str, arch: &str) -> Artifact {
    let v = CRICTL_VERSION;
    let file = format!("crictl-v{v}-linux-{arch}.tar.gz");
    let url = format!("{base}/v{v}/{file}");
    Artifact {
        component: ReleaseGroup::Crictl,
        version: format!("v{v}"),
        checksum_url: format!("{url}.sha256"),
        url,
        checksum_name: file.clone(),
        cache_name: file,
        install: Install::Archive(Extract::Members(vec![member("crictl".into(), "crictl")])),
    }
}

/// `{base}/v{v}/cni-plugins-linux-{arch}-v{v}.tgz` and `.sha256`; every plugin into `cni/`.
fn cni_plugins(base: &str, arch: &str) -> Artifact {
    let v = CNI_PLUGINS_VERSION;
    let file = format!("cni-plugins-linux-{arch}-v{v}.tgz");
    let url = format!("{base}/v{v}/{file}");
    Artifact {
        component: ReleaseGroup::CniPlugins,
        version: format!("v{v}"),
        checksum_url: format!("{url}.sha256"),
        url,
        checksum_name: file.clone(),
        cache_name: file,
        install: Install::Archive(Extract::AllExecutables {
            subdir: CNI_DIR.into(),
            required: REQUIRED_CNI_PLUGINS.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

/// `{base}/v{tag}/cni-plugin-flannel-linux-{arch}-v{ver}.tgz` and `.sha256`: the release tag
/// carries a `-flannelN` suffix its asset names do not. Cached under the tag, so another
/// build of the same plugin version is another file.
fn cni_flannel(base: &str, arch: &str) -> Artifact {
    let tag = FLANNEL_CNI_PLUGIN_VERSION;
    let v = tag.split("-flannel").next().unwrap_or(tag);
    let file = format!("cni-plugin-flannel-linux-{arch}-v{v}.tgz");
    let url = format!("{base}/v{tag}/{file}");
    Artifact {
        component: ReleaseGroup::CniFlannel,
        version: format!("v{tag}"),
        checksum_url: format!("{url}.sha256"),
        url,
        checksum_name: file,
        cache_name: format!("cni-plugin-flannel-linux-{arch}-v{tag}.tgz"),
        install: Install::Archive(Extract::Members(vec![(
            format!("flannel-{arch}"),
            format!("{CNI_DIR}/flannel"),
            true,
        )])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let upstream = Mirrors::default();
        let list = catalogue("v1.36.0", "amd64", &upstream, &[]).unwrap();
        let urls: Vec<(&str, &str)> = list
            .iter()
            .map(|a| (a.url.as_str(), a.checksum_url.as_str()))
            .collect();
        assert_eq!(list.len(), 12);
        assert_eq!(
            urls[0],
            (
                "https://dl.k8s.io/release/v1.36.0/bin/linux/amd64/kube-apiserver",
                "https://dl.k8s.io/release/v1.36.0/bin/linux/amd64/kube-apiserver.sha256"
            )
        );
        assert!(urls.contains(&(
            "https://github.com/etcd-io/etcd/releases/download/v3.6.8/etcd-v3.6.8-linux-amd64.tar.gz",
            "https://github.com/etcd-io/etcd/releases/download/v3.6.8/SHA256SUMS"
        )));
        assert!(urls.contains(&(
            "https://github.com/containerd/containerd/releases/download/v2.3.7/containerd-2.3.7-linux-amd64.tar.gz",
            "https://github.com/containerd/containerd/releases/download/v2.3.7/containerd-2.3.7-linux-amd64.tar.gz.sha256sum"
        )));
        assert!(urls.contains(&(
            "https://github.com/opencontainers/runc/releases/download/v1.5.3/runc.amd64",
            "https://github.com/opencontainers/runc/releases/download/v1.5.3/runc.sha256sum"
        )));
        assert!(urls.contains(&(
            "https://github.com/kubernetes-sigs/cri-tools/releases/download/v1.37.0/crictl-v1.37.0-linux-amd64.tar.gz",
            "https://github.com/kubernetes-sigs/cri-tools/releases/download/v1.37.0/crictl-v1.37.0-linux-amd64.tar.gz.sha256"
        )));
        assert!(urls.contains(&(
            "https://github.com/flannel-io/cni-plugin/releases/download/v1.9.1-flannel3/cni-plugin-flannel-linux-amd64-v1.9.1.tgz",
            "https://github.com/flannel-io/cni-plugin/releases/download/v1.9.1-flannel3/cni-plugin-flannel-linux-amd64-v1.9.1.tgz.sha256"
        )));
        let flannel = list.last().unwrap();
        assert_eq!(flannel.component, ReleaseGroup::CniFlannel);
        assert_eq!(
            flannel.install,
            Install::Archive(Extract::Members(vec![(
                "flannel-amd64".into(),
                "cni/flannel".into(),
                true
            )]))
        );
        assert!(urls.contains(&(
            "https://github.com/containernetworking/plugins/releases/download/v1.9.1/cni-plugins-linux-amd64-v1.9.1.tgz",
            "https://github.com/containernetworking/plugins/releases/download/v1.9.1/cni-plugins-linux-amd64-v1.9.1.tgz.sha256"
        )));

        let list = catalogue(
            "v1.35.2",
            "arm64",
            &upstream,
            &[ReleaseGroup::Runc, ReleaseGroup::Etcd],
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        let etcd = crate::versions::profile_for("v1.35.2").unwrap().etcd;
        assert_eq!(
            list[0].url,
            format!("https://github.com/etcd-io/etcd/releases/download/v{etcd}/etcd-v{etcd}-linux-arm64.tar.gz")
        );
        assert_eq!(list[1].checksum_name, "runc.arm64");
    }

    #[test]
    fn rejects_bad_options() {
        let mut mirrors = Mirrors::default();
        let v = "v1.36.1";
        assert!(
            matches!(catalogue("v1.18.3", "amd64", &mirrors, &[]), Err(FetchError::Version(m)) if m.contains("v1.36.x"))
        );
        assert!(
            matches!(catalogue(v, "s390x", &mirrors, &[]), Err(FetchError::Arch(a)) if a == "s390x")
        );
        mirrors.runc = "ftp://mirror/runc".into();
        let err = catalogue(v, "arm64", &mirrors, &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("runc") && err.contains("ftp://mirror/runc"),
            "{err}"
        );
    }

    #[test]
    fn every_binary_install_needs_is_fetched_for_every_supported_version() {
        let upstream = Mirrors::default();
        for profile in crate::versions::PROFILES {
            let v = format!("v{}.0", profile.minor);
            for arch in SUPPORTED_ARCHES {
                let produced: BTreeSet<String> = catalogue(&v, arch, &upstream, &[])
                    .unwrap()
                    .iter()
                    .flat_map(Artifact::guaranteed_files)
                    .collect();
                for (_, b) in crate::catalog::binaries() {
                    assert!(
                        produced.contains(b.file),
                        "{v} {arch}: install needs `{}`, which fetch does not produce",
                        b.file
                    );
                }
            }
        }
    }
}
