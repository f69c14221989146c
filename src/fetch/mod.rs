//! Download of the official release binaries with checksum verification, and of the images
//! the cluster runs.
//!
//! [`fetch`] fills a local binaries directory (`binaries.dir` of the inventory) with the
//! release artifacts of one Kubernetes version, verified against the checksum files published
//! next to them, and with OCI archives of the images (see the `images` module):
//!
//! ```text
//! {dir}/kube-apiserver ... kubectl, etcd, etcdctl, etcdutl,
//!       containerd, containerd-shim-runc-v2, ctr, runc, crictl   executables, 0755
//! {dir}/cni/bridge, host-local, loopback, portmap, flannel, ...  CNI plugins, 0755
//! {dir}/images/*.tar                                             image archives
//! {dir}/versions.json                                 what is installed (see Manifest)
//! {dir}/.cache/*.tar.gz                               verified archives
//! {dir}/.cache/blobs/sha256/*                         verified image blobs
//! {dir}/.cache/*.part                                 interrupted downloads
//! ```
//!
//! A file that already matches its published checksum is not downloaded again (the small
//! checksum files are fetched on every run). An interrupted download is continued with an
//! HTTP `Range` request. Nothing reaches `{dir}/{name}` before its checksum was verified;
//! files are written to a temporary name and renamed. See `docs/FETCH.md`.

mod checksum;
mod error;
mod extract;
mod http;
mod images;
mod manifest;
mod registry;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use error::FetchError;
pub use extract::Extract;
pub use http::{CONNECT_TIMEOUT, READ_TIMEOUT};
pub use images::{
    archive_name, cluster_images, default_chat_image, pinned_digest, ImageSpec, Pin,
    BLOB_CACHE_DIR, IMAGES_DIR, IMAGE_PINS,
};
pub use manifest::{read_manifest, ImageEntry, Manifest, ManifestEntry, MANIFEST_FILE};
pub use registry::ImageRef;

use crate::digest::sha256_file;
use checksum::find_digest;
use http::{Client, Downloaded};

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
/// Downloaded archives and partial downloads, under the binaries directory.
pub const CACHE_DIR: &str = ".cache";
/// CNI plugins, under the binaries directory.
pub const CNI_DIR: &str = "cni";

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

impl FromStr for Component {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Component::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Component::ALL.iter().map(|c| c.name()).collect();
                format!("unknown component `{s}` (one of: {})", names.join(", "))
            })
    }
}

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
    /// `tag` is [`FLANNEL_CNI_PLUGIN_VERSION`] and `ver` the part before `-flannel`.
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

    fn base(&self, c: Component) -> &str {
        match c {
            Component::Kubernetes => &self.kubernetes,
            Component::Etcd => &self.etcd,
            Component::Containerd => &self.containerd,
            Component::Runc => &self.runc,
            Component::Crictl => &self.crictl,
            Component::CniPlugins => &self.cni_plugins,
            Component::CniFlannel => &self.cni_flannel,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// `v1.36.0`; must be a supported minor (see [`crate::versions`]).
    pub kubernetes_version: String,
    /// The binaries directory.
    pub dir: PathBuf,
    /// `amd64` or `arm64`.
    pub arch: String,
    pub mirror: Mirrors,
    /// What to fetch; empty means everything ([`Component::ALL`]).
    pub components: Vec<Component>,
    /// Container images to save as archives under `images/`; empty: none. [`FetchOptions::new`]
    /// puts in [`cluster_images`] with the default chat image.
    pub images: Vec<ImageSpec>,
}

impl FetchOptions {
    /// Everything for `amd64` from the upstream locations: every component and the images of
    /// [`cluster_images`] with the default chat image (none if the version is not supported;
    /// [`fetch`] then reports the version).
    pub fn new(kubernetes_version: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        let kubernetes_version = kubernetes_version.into();
        let images =
            cluster_images(&kubernetes_version, Some(&default_chat_image())).unwrap_or_default();
        FetchOptions {
            kubernetes_version,
            dir: dir.into(),
            arch: "amd64".into(),
            mirror: Mirrors::default(),
            components: Vec::new(),
            images,
        }
    }
}

/// How a file came to be in the binaries directory in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Its artifact was already there and matched the published checksum: nothing downloaded.
    Cached,
    /// Its artifact was downloaded from the start.
    Downloaded,
    /// Its artifact was completed from an earlier partial download.
    Resumed,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Cached => "cached",
            Outcome::Downloaded => "downloaded",
            Outcome::Resumed => "resumed",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// One row per installed file: name relative to the binaries directory (`kubelet`,
    /// `cni/bridge`), how its artifact was obtained, and the installed file's size in bytes.
    /// Files extracted from one archive share the archive's outcome.
    pub files: Vec<(String, Outcome, u64)>,
    /// One row per image: its reference, how its blobs were obtained (`Cached` also when the
    /// archive was rebuilt from cached blobs) and the archive's size in bytes.
    pub images: Vec<(String, Outcome, u64)>,
    /// Bytes received over the network for artifacts and image blobs (checksum files,
    /// manifests and tokens not counted).
    pub transferred: u64,
}

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
    pub component: Component,
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

/// The artifacts `fetch` would download for these options, in order. Validates the version,
/// architecture and mirror URLs; touches neither the network nor the disk.
pub fn artifacts(opts: &FetchOptions) -> Result<Vec<Artifact>, FetchError> {
    let profile =
        crate::versions::profile_for(&opts.kubernetes_version).map_err(FetchError::Version)?;
    let arch = opts.arch.as_str();
    if !SUPPORTED_ARCHES.contains(&arch) {
        return Err(FetchError::Arch(opts.arch.clone()));
    }
    let wanted: BTreeSet<Component> = if opts.components.is_empty() {
        Component::ALL.into_iter().collect()
    } else {
        opts.components.iter().copied().collect()
    };
    let mut out = Vec::new();
    for c in wanted {
        let base = opts.mirror.base(c).trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(FetchError::Mirror {
                component: c.name().into(),
                url: opts.mirror.base(c).into(),
            });
        }
        match c {
            Component::Kubernetes => {
                let v = &opts.kubernetes_version;
                for name in KUBERNETES_BINARIES {
                    let url = format!("{base}/{v}/bin/linux/{arch}/{name}");
                    out.push(Artifact {
                        component: c,
                        version: v.clone(),
                        checksum_url: format!("{url}.sha256"),
                        url,
                        checksum_name: name.into(),
                        cache_name: format!("{name}-{v}-linux-{arch}"),
                        install: Install::Binary { name: name.into() },
                    });
                }
            }
            Component::Etcd => {
                let v = profile.etcd;
                let file = format!("etcd-v{v}-linux-{arch}.tar.gz");
                let top = format!("etcd-v{v}-linux-{arch}");
                let member =
                    |name: &str, required| (format!("{top}/{name}"), name.into(), required);
                out.push(Artifact {
                    component: c,
                    version: format!("v{v}"),
                    url: format!("{base}/v{v}/{file}"),
                    checksum_url: format!("{base}/v{v}/SHA256SUMS"),
                    checksum_name: file.clone(),
                    cache_name: file,
                    install: Install::Archive(Extract::Members(vec![
                        member("etcd", true),
                        member("etcdctl", true),
                        member("etcdutl", false),
                    ])),
                });
            }
            Component::Containerd => {
                let v = CONTAINERD_VERSION;
                let file = format!("containerd-{v}-linux-{arch}.tar.gz");
                let member = |name: &str| (format!("bin/{name}"), name.into(), true);
                let url = format!("{base}/v{v}/{file}");
                out.push(Artifact {
                    component: c,
                    version: format!("v{v}"),
                    checksum_url: format!("{url}.sha256sum"),
                    url,
                    checksum_name: file.clone(),
                    cache_name: file,
                    install: Install::Archive(Extract::Members(vec![
                        member("containerd"),
                        member("containerd-shim-runc-v2"),
                        member("ctr"),
                    ])),
                });
            }
            Component::Runc => {
                let v = RUNC_VERSION;
                out.push(Artifact {
                    component: c,
                    version: format!("v{v}"),
                    url: format!("{base}/v{v}/runc.{arch}"),
                    checksum_url: format!("{base}/v{v}/runc.sha256sum"),
                    checksum_name: format!("runc.{arch}"),
                    cache_name: format!("runc-v{v}-linux-{arch}"),
                    install: Install::Binary {
                        name: "runc".into(),
                    },
                });
            }
            Component::Crictl => {
                let v = CRICTL_VERSION;
                let file = format!("crictl-v{v}-linux-{arch}.tar.gz");
                let url = format!("{base}/v{v}/{file}");
                out.push(Artifact {
                    component: c,
                    version: format!("v{v}"),
                    checksum_url: format!("{url}.sha256"),
                    url,
                    checksum_name: file.clone(),
                    cache_name: file,
                    install: Install::Archive(Extract::Members(vec![(
                        "crictl".into(),
                        "crictl".into(),
                        true,
                    )])),
                });
            }
            Component::CniPlugins => {
                let v = CNI_PLUGINS_VERSION;
                let file = format!("cni-plugins-linux-{arch}-v{v}.tgz");
                let url = format!("{base}/v{v}/{file}");
                out.push(Artifact {
                    component: c,
                    version: format!("v{v}"),
                    checksum_url: format!("{url}.sha256"),
                    url,
                    checksum_name: file.clone(),
                    cache_name: file,
                    install: Install::Archive(Extract::AllExecutables {
                        subdir: CNI_DIR.into(),
                        required: REQUIRED_CNI_PLUGINS.iter().map(|s| s.to_string()).collect(),
                    }),
                });
            }
            Component::CniFlannel => {
                let tag = FLANNEL_CNI_PLUGIN_VERSION;
                let v = tag.split("-flannel").next().unwrap_or(tag);
                let file = format!("cni-plugin-flannel-linux-{arch}-v{v}.tgz");
                let url = format!("{base}/v{tag}/{file}");
                out.push(Artifact {
                    component: c,
                    version: format!("v{tag}"),
                    checksum_url: format!("{url}.sha256"),
                    url,
                    checksum_name: file.clone(),
                    cache_name: format!("cni-plugin-flannel-linux-{arch}-v{tag}.tgz"),
                    install: Install::Archive(Extract::Members(vec![(
                        format!("flannel-{arch}"),
                        format!("{CNI_DIR}/flannel"),
                        true,
                    )])),
                });
            }
        }
    }
    Ok(out)
}

/// Downloads, verifies and installs the artifacts of `opts` into `opts.dir`, reporting one
/// line per step to `progress` (e.g. `kube-apiserver: downloaded 120.3 MB`).
///
/// Stops at the first error; what was completed before stays installed and recorded in
/// `versions.json`, and an interrupted download stays in `.cache` to be resumed.
pub fn fetch(
    opts: &FetchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<FetchReport, FetchError> {
    let list = artifacts(opts)?;
    let images = images::plan(opts)?;
    let dir = opts.dir.clone();
    let cache = dir.join(CACHE_DIR);
    fs::create_dir_all(&cache).map_err(|e| FetchError::io(&cache, e))?;
    let _lock = lock(&cache)?;
    let manifest = match read_manifest(&dir) {
        Ok(m) => m,
        Err(e) => {
            progress(&format!(
                "{e}; starting a new {MANIFEST_FILE} (every file is verified again)"
            ));
            Manifest::default()
        }
    };
    let mut run = Run {
        client: Client::new(),
        dir,
        cache,
        arch: opts.arch.clone(),
        manifest,
        report: FetchReport::default(),
        progress,
    };
    for a in &list {
        match &a.install {
            Install::Binary { name } => run.binary(a, name)?,
            Install::Archive(what) => run.archive(a, what)?,
        }
    }
    for image in &images {
        run.image(image, &opts.mirror.registries)?;
    }
    Ok(run.report)
}

struct Run<'p> {
    client: Client,
    dir: PathBuf,
    cache: PathBuf,
    arch: String,
    manifest: Manifest,
    report: FetchReport,
    progress: &'p mut dyn FnMut(&str),
}

impl Run<'_> {
    fn say(&mut self, line: String) {
        (self.progress)(&line);
    }

    fn expected_digest(&self, a: &Artifact) -> Result<String, FetchError> {
        let text = self.client.get_text(&a.checksum_url)?;
        find_digest(&text, &a.checksum_name).ok_or_else(|| FetchError::ChecksumMissing {
            url: a.checksum_url.clone(),
            file: a.checksum_name.clone(),
        })
    }

    fn entry(&self, a: &Artifact, sha256: &str, artifact_sha256: &str) -> ManifestEntry {
        ManifestEntry {
            component: a.component.name().into(),
            version: a.version.clone(),
            arch: self.arch.clone(),
            sha256: sha256.into(),
            url: a.url.clone(),
            artifact_sha256: artifact_sha256.into(),
        }
    }

    /// Downloads into `part` and checks the digest. A mismatch deletes the download; when it
    /// was a resumed one (the earlier bytes may be stale), it is downloaded once more from the
    /// start before giving up.
    fn download_verified(
        &mut self,
        a: &Artifact,
        part: &Path,
        expected: &str,
        label: &str,
    ) -> Result<Downloaded, FetchError> {
        match fs::metadata(part) {
            Ok(m) if m.len() > 0 => self.say(format!(
                "{label}: resuming {} from {}",
                a.url,
                human(m.len())
            )),
            _ => self.say(format!("{label}: downloading {}", a.url)),
        }
        let first = self.client.download(&a.url, part)?;
        self.report.transferred += first.transferred;
        if first.sha256 == expected {
            return Ok(first);
        }
        remove_if_exists(part)?;
        let last = if first.resumed {
            self.say(format!(
                "{label}: the resumed download does not match the published checksum; downloading it again from the start"
            ));
            let again = self.client.download(&a.url, part)?;
            self.report.transferred += again.transferred;
            if again.sha256 == expected {
                return Ok(again);
            }
            remove_if_exists(part)?;
            again
        } else {
            first
        };
        Err(FetchError::ChecksumMismatch {
            url: a.url.clone(),
            expected: expected.into(),
            actual: last.sha256,
        })
    }

    fn binary(&mut self, a: &Artifact, name: &str) -> Result<(), FetchError> {
        let expected = self.expected_digest(a)?;
        let target = self.dir.join(name);
        let have = sha256_file(&target).map_err(|e| FetchError::io(&target, e))?;
        let part = self.cache.join(format!("{}.part", a.cache_name));
        let (outcome, size) = if have.as_deref() == Some(expected.as_str()) {
            // A leftover partial download of what is already here is of no use.
            remove_if_exists(&part)?;
            set_mode(&target, 0o755)?;
            self.say(format!("{name}: cached ({})", a.version));
            let size = fs::metadata(&target)
                .map_err(|e| FetchError::io(&target, e))?
                .len();
            (Outcome::Cached, size)
        } else {
            let dl = self.download_verified(a, &part, &expected, name)?;
            set_mode(&part, 0o755)?;
            fs::rename(&part, &target).map_err(|e| FetchError::io(&target, e))?;
            sync_dir(&self.dir)?;
            let outcome = if dl.resumed {
                self.say(format!(
                    "{name}: resumed at {}, downloaded {} more ({})",
                    human(dl.resumed_from),
                    human(dl.transferred),
                    a.version
                ));
                Outcome::Resumed
            } else {
                self.say(format!(
                    "{name}: downloaded {} ({})",
                    human(dl.transferred),
                    a.version
                ));
                Outcome::Downloaded
            };
            (outcome, dl.size)
        };
        let entry = self.entry(a, &expected, &expected);
        self.manifest.files.insert(name.to_string(), entry);
        manifest::write_manifest(&self.dir, &self.manifest)?;
        self.report.files.push((name.to_string(), outcome, size));
        Ok(())
    }

    fn archive(&mut self, a: &Artifact, what: &Extract) -> Result<(), FetchError> {
        let expected = self.expected_digest(a)?;
        let label = a.cache_name.clone();
        let archive = self.cache.join(&a.cache_name);
        let have = sha256_file(&archive).map_err(|e| FetchError::io(&archive, e))?;
        let part = self.cache.join(format!("{}.part", a.cache_name));
        let outcome = if have.as_deref() == Some(expected.as_str()) {
            remove_if_exists(&part)?;
            self.say(format!("{label}: cached"));
            Outcome::Cached
        } else {
            let dl = self.download_verified(a, &part, &expected, &label)?;
            fs::rename(&part, &archive).map_err(|e| FetchError::io(&archive, e))?;
            sync_dir(&self.cache)?;
            if dl.resumed {
                self.say(format!(
                    "{label}: resumed at {}, downloaded {} more",
                    human(dl.resumed_from),
                    human(dl.transferred)
                ));
                Outcome::Resumed
            } else {
                self.say(format!("{label}: downloaded {}", human(dl.transferred)));
                Outcome::Downloaded
            }
        };

        let component = a.component.name();
        let previous: Vec<(String, ManifestEntry)> = self
            .manifest
            .files
            .iter()
            .filter(|(_, e)| e.component == component)
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect();
        if self.extracted_and_intact(&previous, what, &expected)? {
            let mut names = Vec::new();
            for (name, _) in &previous {
                let path = self.dir.join(name);
                set_mode(&path, 0o755)?;
                let size = fs::metadata(&path)
                    .map_err(|e| FetchError::io(&path, e))?
                    .len();
                self.report.files.push((name.clone(), outcome, size));
                names.push(name.as_str());
            }
            self.say(format!("{label}: {} up to date", names.join(", ")));
            return Ok(());
        }

        let staged = extract::stage(&archive, &label, what, &self.dir)?;
        let mut dirs = BTreeSet::new();
        for (i, s) in staged.iter().enumerate() {
            if let Err(e) = fs::rename(&s.tmp, &s.target) {
                for rest in &staged[i..] {
                    rest.discard();
                }
                return Err(FetchError::io(&s.target, e));
            }
            dirs.insert(s.target.parent().unwrap_or(&self.dir).to_path_buf());
        }
        for d in dirs {
            sync_dir(&d)?;
        }
        // Files an older release of this component had and this one does not.
        for (name, _) in &previous {
            if !staged.iter().any(|s| &s.name == name) {
                remove_if_exists(&self.dir.join(name))?;
                self.manifest.files.remove(name);
            }
        }
        let mut names = Vec::new();
        for s in &staged {
            let entry = self.entry(a, &s.sha256, &expected);
            self.manifest.files.insert(s.name.clone(), entry);
            self.report.files.push((s.name.clone(), outcome, s.size));
            names.push(s.name.as_str());
        }
        manifest::write_manifest(&self.dir, &self.manifest)?;
        let line = format!("{label}: extracted {} ({})", names.join(", "), a.version);
        self.say(line);
        Ok(())
    }

    /// Whether an earlier run extracted everything of this exact archive and the files are
    /// unchanged since (by sha256).
    fn extracted_and_intact(
        &self,
        previous: &[(String, ManifestEntry)],
        what: &Extract,
        archive_sha256: &str,
    ) -> Result<bool, FetchError> {
        let required: Vec<String> = match what {
            Extract::Members(list) => list
                .iter()
                .filter(|(_, _, req)| *req)
                .map(|(_, name, _)| name.clone())
                .collect(),
            Extract::AllExecutables { subdir, required } => {
                required.iter().map(|r| format!("{subdir}/{r}")).collect()
            }
        };
        if !required
            .iter()
            .all(|r| previous.iter().any(|(n, _)| n == r))
        {
            return Ok(false);
        }
        for (name, e) in previous {
            if e.artifact_sha256 != archive_sha256 || e.arch != self.arch {
                return Ok(false);
            }
            let path = self.dir.join(name);
            let have = sha256_file(&path).map_err(|err| FetchError::io(&path, err))?;
            if have.as_deref() != Some(e.sha256.as_str()) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Holds an exclusive lock on `{cache}/.lock` for the duration of a run.
fn lock(cache: &Path) -> Result<File, FetchError> {
    let path = cache.join(".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| FetchError::io(&path, e))?;
    // SAFETY: flock on a descriptor we own; no memory is shared with the call.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Err(FetchError::Locked(
                cache.parent().unwrap_or(cache).to_path_buf(),
            ));
        }
        return Err(FetchError::io(&path, err));
    }
    Ok(f)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), FetchError> {
    let meta = fs::metadata(path).map_err(|e| FetchError::io(path, e))?;
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| FetchError::io(path, e))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), FetchError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FetchError::io(dir, e))
}

fn remove_if_exists(path: &Path) -> Result<(), FetchError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FetchError::io(path, e)),
    }
}

/// `999 B`, `12.3 kB`, `120.3 MB`, `1.2 GB` (decimal units).
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, size) in UNITS {
        if bytes as f64 >= size {
            return format!("{:.1} {unit}", bytes as f64 / size);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let mut opts = FetchOptions::new("v1.36.0", "/tmp/x");
        let list = artifacts(&opts).unwrap();
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
        assert_eq!(flannel.component, Component::CniFlannel);
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

        opts.arch = "arm64".into();
        opts.kubernetes_version = "v1.35.2".into();
        opts.components = vec![Component::Etcd, Component::Runc];
        let list = artifacts(&opts).unwrap();
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
        let mut opts = FetchOptions::new("v1.18.3", "/tmp/x");
        assert!(matches!(artifacts(&opts), Err(FetchError::Version(m)) if m.contains("v1.36.x")));
        opts.kubernetes_version = "v1.36.1".into();
        opts.arch = "s390x".into();
        assert!(matches!(artifacts(&opts), Err(FetchError::Arch(a)) if a == "s390x"));
        opts.arch = "arm64".into();
        opts.mirror.runc = "ftp://mirror/runc".into();
        let err = artifacts(&opts).unwrap_err().to_string();
        assert!(
            err.contains("runc") && err.contains("ftp://mirror/runc"),
            "{err}"
        );
    }

    #[test]
    fn component_names_round_trip() {
        for c in Component::ALL {
            assert_eq!(c.name().parse::<Component>().unwrap(), c);
        }
        assert!("docker"
            .parse::<Component>()
            .unwrap_err()
            .contains("cni-flannel"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_500), "1.5 kB");
        assert_eq!(human(120_300_000), "120.3 MB");
        assert_eq!(human(2_000_000_000), "2.0 GB");
    }
}
