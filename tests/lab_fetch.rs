//! `k8s-boot lab build --fetch` against the fixture servers of the fetch tests (the release
//! downloads of `common::releases`, the registry of `common::registry`; all on 127.0.0.1):
//! the real binary fills the lab's binaries directory with exactly the programs and image
//! archives the lab build leaves there, and what the releases do not provide is an error.
//! No lab host is started, and nothing needs root.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::registry::{build_image, FixtureRegistry, Image};
use common::releases::{self, Published};
use k8s_boot::fetch::{read_manifest, ImageRef};
use k8s_boot::lab::{contents, release};

/// A supported version other than the lab's default, so `--version` is seen to be used.
const K8S: &str = "v1.36.0";

/// How many images the lab's cluster runs (pause, CoreDNS, the chat and the add-ons').
fn cluster_images() -> usize {
    contents::image_references(&contents::image_names(K8S).unwrap()).len()
}

struct Fixture {
    releases: releases::Server,
    registry: FixtureRegistry,
    published: Published,
    /// The lab cluster's images as the registry serves them, then the conformance run's
    /// when the fixture has them.
    images: Vec<Image>,
    /// `lab build --fetch --conformance`.
    conformance: bool,
    tmp: tempfile::TempDir,
}

fn fixture() -> Fixture {
    fixture_with(false)
}

/// With `conformance`, the registry serves the conformance run's images too and
/// `lab_build_fetch` asks for them.
fn fixture_with(conformance: bool) -> Fixture {
    let releases = releases::Server::start();
    let published = releases::publish(&releases, K8S, release::machine_arch().unwrap());
    let registry = FixtureRegistry::start();
    let names = contents::image_names(K8S).unwrap();
    let mut references: Vec<String> = contents::image_references(&names)
        .into_iter()
        .map(String::from)
        .collect();
    if conformance {
        references.extend(
            k8s_boot::fetch::conformance_images(K8S)
                .unwrap()
                .into_iter()
                .map(|spec| spec.reference),
        );
    }
    let images: Vec<Image> = references
        .iter()
        .enumerate()
        .map(|(i, reference)| {
            let r = ImageRef::parse(reference).unwrap();
            // Docker Hub's images come through a mirror with a path (as from Harbor), as
            // single-platform Docker manifests; the others as OCI indexes.
            let docker_hub = r.registry == "docker.io";
            let repo = if docker_hub {
                format!("hub/{}", r.repository)
            } else {
                r.repository.clone()
            };
            let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
            let image = build_image(
                leak(r.full()),
                &repo,
                leak(r.tag.clone()),
                10 + i as u64,
                &[20_000 + 1_000 * i],
                !docker_hub,
                !docker_hub,
            );
            registry.serve(&image);
            image
        })
        .collect();
    Fixture {
        releases,
        registry,
        published,
        images,
        conformance,
        tmp: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    fn lab_dir(&self) -> PathBuf {
        self.tmp.path().join("lab")
    }

    fn binaries(&self) -> PathBuf {
        self.lab_dir().join("binaries")
    }

    /// `lab build --fetch` pointed at the fixture servers, every image's digest given (the
    /// stand-ins cannot have the pinned ones), except for the images named in `unpinned`.
    fn lab_build_fetch(&self, unpinned: &[&str]) -> Output {
        let reg = &self.registry.registry.base;
        let mut args: Vec<String> = [
            "lab",
            "build",
            "--fetch",
            "--version",
            K8S,
            "--mirror",
            &self.releases.base,
            "--registry-mirror",
            &format!("registry.k8s.io={reg}"),
            "--registry-mirror",
            &format!("ghcr.io={reg}"),
            "--registry-mirror",
            &format!("docker.io={reg}/hub/"),
            "--dir",
        ]
        .map(String::from)
        .into();
        args.push(self.lab_dir().to_string_lossy().into_owned());
        if self.conformance {
            args.push("--conformance".into());
        }
        for image in &self.images {
            if !unpinned.contains(&image.reference) {
                args.push("--image-digest".into());
                args.push(format!("{}={}", image.reference, image.top_digest));
            }
        }
        k8s_boot(&args)
    }
}

fn k8s_boot(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir`, relative, leaving out `.cache/` (fetch's downloads and blobs).
fn files(dir: &Path) -> BTreeSet<String> {
    fn go(root: &Path, d: &Path, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == ".cache" {
                continue;
            }
            if p.is_dir() {
                go(root, &p, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    go(dir, dir, &mut out);
    out
}

#[test]
fn lab_build_fetch_leaves_the_layout_of_the_lab_build() {
    let f = fixture();
    let out = f.lab_build_fetch(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("lab binaries and images ready in"), "{err}");
    let bin = f.binaries();

    // Every program the lab build installs, as published, executable; fetch's extras are
    // the archive's other CNI plugins and its record, versions.json.
    for program in contents::programs() {
        let path = bin.join(program);
        let want = &f.published.expected[program];
        assert_eq!(&fs::read(&path).unwrap(), want, "{program}");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{program}");
    }
    let mut want: BTreeSet<String> = contents::expected_files(K8S).unwrap().into_iter().collect();
    want.insert("cni/tuning".into());
    want.insert("versions.json".into());
    assert_eq!(files(&bin), want);

    // One archive per image of the lab's cluster, under the name the manifests use, holding
    // the registry's platform manifest; every digest was the one given.
    let manifest = read_manifest(&bin).unwrap();
    for image in &f.images {
        let file = contents::expected_files(K8S)
            .unwrap()
            .into_iter()
            .find(|p| {
                p.ends_with(&k8s_boot::fetch::archive_name(
                    &ImageRef::parse(image.reference).unwrap(),
                ))
            })
            .unwrap_or_else(|| panic!("{} is not among the lab's archives", image.reference));
        let index = k8s_boot::oci::read_archive_index(&bin.join(&file)).unwrap();
        assert_eq!(index.len(), 1, "{file}");
        assert_eq!(index[0].image_ref, image.reference);
        assert_eq!(index[0].digest, image.manifest_digest);
        let entry = &manifest.images[image.reference];
        assert!(entry.pinned, "{}", image.reference);
        assert_eq!(entry.digest, image.top_digest);
    }
    assert_eq!(manifest.images.len(), cluster_images());
    assert!(!err.contains("warning:"), "every image had a digest: {err}");
}

#[test]
fn lab_build_fetch_conformance_puts_the_test_images_apart() {
    let f = fixture_with(true);
    let out = f.lab_build_fetch(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let bin = f.binaries();
    let wanted = k8s_boot::fetch::conformance_images(K8S).unwrap();
    assert_eq!(wanted.len(), 12);
    assert_eq!(
        wanted[0].reference,
        format!("registry.k8s.io/conformance:{K8S}")
    );

    // The cluster's archives where they were; the conformance run's under images/conformance,
    // which nodes import only for a run.
    let all = files(&bin);
    let cluster: BTreeSet<String> = contents::expected_files(K8S).unwrap().into_iter().collect();
    assert!(all.is_superset(&cluster));
    let apart: BTreeSet<String> = all
        .iter()
        .filter(|f| f.starts_with(k8s_boot::conformance::IMAGES_DIR))
        .cloned()
        .collect();
    let expected: BTreeSet<String> = wanted
        .iter()
        .map(|spec| {
            format!(
                "{}/{}",
                k8s_boot::conformance::IMAGES_DIR,
                k8s_boot::fetch::archive_name(&ImageRef::parse(&spec.reference).unwrap())
            )
        })
        .collect();
    assert_eq!(apart, expected);
    let manifest = read_manifest(&bin).unwrap();
    assert_eq!(manifest.images.len(), cluster_images() + 12);
    for spec in &wanted {
        let entry = &manifest.images[&spec.reference];
        assert!(
            entry.archive.starts_with("images/conformance/"),
            "{}",
            entry.archive
        );
        let index = k8s_boot::oci::read_archive_index(&bin.join(&entry.archive)).unwrap();
        assert_eq!(index[0].image_ref, spec.reference);
    }
}

#[test]
fn what_fetch_cannot_provide_is_an_error() {
    // An etcd release without etcdutl (backup and restore need it on the etcd hosts): the
    // archive is refused, naming what it lacks.
    let f = fixture();
    let arch = release::machine_arch().unwrap();
    let (path, archive) = releases::etcd_archive(K8S, arch, &["etcd", "etcdctl"]);
    f.releases.put(&path, archive.clone());
    releases::put_etcd_sums(&f.releases, K8S, &[(path, archive)]);
    let out = f.lab_build_fetch(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("etcdutl") && err.contains(".tar.gz"), "{err}");
    assert!(!err.contains("ready in"), "{err}");

    // An image the registry does not have: the error names it and its URL.
    let f = fixture();
    let node = f.images.last().unwrap();
    assert!(node.reference.starts_with("docker.io/library/node:"));
    let manifest = format!("/v2/{}/manifests/{}", node.repo, node.tag);
    f.registry.state.lock().unwrap().files.remove(&manifest);
    let out = f.lab_build_fetch(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(node.reference) && err.contains(&manifest) && err.contains("404"),
        "{err}"
    );
    assert!(!err.contains("ready in"), "{err}");

    // Pins hold: the stand-in pause image is not the pinned one.
    let f = fixture();
    let pause = &f.images[0];
    assert!(pause.reference.starts_with("registry.k8s.io/pause:"));
    let out = f.lab_build_fetch(&[pause.reference]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(pause.reference) && err.contains("is pinned; refusing the image"),
        "{err}"
    );
    assert!(!f
        .binaries()
        .join("images")
        .join("registry.k8s.io_pause_3.10.2.tar")
        .exists());
}

#[test]
fn fetch_flags_are_refused_where_they_mean_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab").to_string_lossy().into_owned();
    let digest = format!("sha256:{}", "ab".repeat(32));
    for (args, says) in [
        (
            vec!["--mirror", "http://127.0.0.1:9/m"],
            "without --fetch everything is built",
        ),
        (
            vec!["--image-digest", "node:1=sha256:00"],
            "without --fetch everything is built",
        ),
        (
            vec!["--fetch", "--build-cache", "/nonexistent"],
            "--fetch builds nothing",
        ),
        (
            vec!["--fetch", "--mirror", "ftp://mirror"],
            "http:// or https://",
        ),
        (
            vec!["--fetch", "--image-digest", &format!("node:22={digest}")],
            "not one of the images fetched",
        ),
        (
            vec!["--fetch", "--version", "v1.20.0"],
            "v1.20 is not supported",
        ),
    ] {
        let mut all: Vec<String> = ["lab", "build", "--dir", &dir].map(String::from).into();
        all.extend(args.iter().map(|a| a.to_string()));
        let out = k8s_boot(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!Path::new(&dir).exists(), "{args:?}: nothing is written");
    }
}
