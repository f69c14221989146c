//! `fetch` against a local HTTP/1.1 fixture server (no internet here, and tests must never
//! reach the real download sites): `common::releases`, which serves stand-in artifacts:
//! small shell scripts named like the real binaries, tar.gz archives with the upstream
//! layouts, and checksum files in the upstream formats. It counts requests per path and
//! records `Range` requests so caching and resuming can be asserted.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use common::releases::{
    self, containerd_archive, publish, script, sha, Published, Server, CNI_PLUGINS, K8S_BINS,
};
use k8s_boot::fetch::{
    artifacts, fetch, read_manifest, FetchError, FetchOptions, FetchReport, Mirrors, Outcome,
    ReleaseGroup, CNI_PLUGINS_VERSION, CONTAINERD_VERSION, CRICTL_VERSION,
    FLANNEL_CNI_PLUGIN_VERSION, RUNC_VERSION,
};

const K8S: &str = "v1.36.0";

struct Fixture {
    server: Server,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    opts: FetchOptions,
    /// Installed name -> expected bytes (amd64).
    expected: BTreeMap<String, Vec<u8>>,
    /// Server path of every artifact and every checksum file (amd64).
    artifact_paths: Vec<String>,
    checksum_paths: Vec<String>,
}

fn fixture() -> Fixture {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("binaries");
    let mut opts = FetchOptions::new(K8S, &dir);
    opts.mirror = Mirrors::under(&server.base);
    // Images come from registries; tests/fetch_images.rs covers them.
    opts.images.clear();
    let Published {
        expected,
        artifact_paths,
        checksum_paths,
    } = publish(&server, K8S, "amd64");
    Fixture {
        server,
        _tmp: tmp,
        dir,
        opts,
        expected,
        artifact_paths,
        checksum_paths,
    }
}

fn etcd_version() -> String {
    releases::etcd_version(K8S)
}

impl Fixture {
    fn run(&self) -> (Result<FetchReport, FetchError>, Vec<String>) {
        run(&self.opts)
    }

    fn kubelet_path(&self) -> String {
        format!("/kubernetes/{K8S}/bin/linux/amd64/kubelet")
    }

    /// Where fetch keeps the partial download of an artifact, by its URL.
    fn part_for(&self, url_suffix: &str) -> PathBuf {
        let a = artifacts(&self.opts)
            .unwrap()
            .into_iter()
            .find(|a| a.url.ends_with(url_suffix))
            .unwrap();
        self.dir
            .join(".cache")
            .join(format!("{}.part", a.cache_name))
    }
}

fn run(opts: &FetchOptions) -> (Result<FetchReport, FetchError>, Vec<String>) {
    let mut lines = Vec::new();
    let r = fetch(opts, &mut |l: &str| lines.push(l.to_string()));
    (r, lines)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every file under `dir`, relative.
fn walk(dir: &Path) -> BTreeSet<String> {
    fn go(root: &Path, d: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                go(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    go(dir, dir, &mut out);
    out
}

fn no_temp_files(dir: &Path) {
    let leftovers: Vec<String> = walk(dir)
        .into_iter()
        .filter(|f| f.contains(".tmp-") || f.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

fn outcomes(report: &FetchReport) -> BTreeMap<String, Outcome> {
    report
        .files
        .iter()
        .map(|(n, o, _)| (n.clone(), *o))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn downloads_verifies_and_installs_everything() {
    let f = fixture();
    let (r, lines) = f.run();
    let report = r.unwrap();

    // Every expected file, with its content and mode; nothing else installed.
    for (name, bytes) in &f.expected {
        let p = f.dir.join(name);
        assert_eq!(&fs::read(&p).unwrap(), bytes, "{name}");
        assert_eq!(mode(&p), 0o755, "{name}");
    }
    let installed: BTreeSet<String> = walk(&f.dir)
        .into_iter()
        .filter(|n| !n.starts_with(".cache/") && n != "versions.json")
        .collect();
    let expected: BTreeSet<String> = f.expected.keys().cloned().collect();
    assert_eq!(
        installed, expected,
        "containerd-stress, LICENSE, README must not be installed"
    );

    // The report: one row per file, all downloaded, with the installed size.
    assert_eq!(report.files.len(), f.expected.len());
    for (name, outcome, size) in &report.files {
        assert_eq!(*outcome, Outcome::Downloaded, "{name}");
        assert_eq!(*size, f.expected[name].len() as u64, "{name}");
    }
    let artifact_bytes: usize = {
        let st = f.server.state.lock().unwrap();
        f.artifact_paths.iter().map(|p| st.files[p].len()).sum()
    };
    assert_eq!(report.transferred, artifact_bytes as u64);

    // Archives stay in the cache; nothing half-done is left.
    let cache: BTreeSet<String> = walk(&f.dir.join(".cache"));
    let ev = etcd_version();
    let want: BTreeSet<String> = [
        format!("etcd-v{ev}-linux-amd64.tar.gz"),
        format!("containerd-{CONTAINERD_VERSION}-linux-amd64.tar.gz"),
        format!("cni-plugins-linux-amd64-v{CNI_PLUGINS_VERSION}.tgz"),
        format!("crictl-v{CRICTL_VERSION}-linux-amd64.tar.gz"),
        format!("cni-plugin-flannel-linux-amd64-v{FLANNEL_CNI_PLUGIN_VERSION}.tgz"),
        ".lock".to_string(),
    ]
    .into();
    assert_eq!(cache, want);
    no_temp_files(&f.dir);

    // The manifest knows every file, its version and digest.
    let m = read_manifest(&f.dir).unwrap();
    assert_eq!(m.files.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (name, bytes) in &f.expected {
        assert_eq!(m.files[name].sha256, sha(bytes), "{name}");
        assert_eq!(m.files[name].arch, "amd64");
    }
    assert_eq!(m.files["kubelet"].version, K8S);
    assert_eq!(m.files["kubelet"].component, "kubernetes");
    assert_eq!(m.files["etcdctl"].version, format!("v{ev}"));
    assert_eq!(m.files["ctr"].version, format!("v{CONTAINERD_VERSION}"));
    assert_eq!(m.files["runc"].version, format!("v{RUNC_VERSION}"));
    assert_eq!(m.files["cni/portmap"].component, "cni-plugins");
    assert_eq!(m.files["crictl"].version, format!("v{CRICTL_VERSION}"));
    assert_eq!(m.files["cni/flannel"].component, "cni-flannel");
    assert_eq!(
        m.files["cni/flannel"].version,
        format!("v{FLANNEL_CNI_PLUGIN_VERSION}")
    );
    assert!(m.files["ctr"].url.ends_with(".tar.gz"));
    assert_ne!(m.files["ctr"].artifact_sha256, m.files["ctr"].sha256);

    // Each artifact fetched exactly once; progress says what happened.
    for p in &f.artifact_paths {
        assert_eq!(f.server.hit(p), 1, "{p}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("kube-apiserver: downloaded ")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("kubelet: downloaded 400.0 kB")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("extracted etcd, etcdctl, etcdutl")),
        "{lines:#?}"
    );
}

#[test]
fn second_run_downloads_only_checksum_files() {
    let f = fixture();
    f.run().0.unwrap();
    let before = f.server.hits();
    let inodes = |names: &[&str]| -> Vec<u64> {
        names
            .iter()
            .map(|n| fs::metadata(f.dir.join(n)).unwrap().ino())
            .collect()
    };
    let watched = [
        "kubelet",
        "etcd",
        "ctr",
        "runc",
        "crictl",
        "cni/bridge",
        "cni/flannel",
    ];
    let first = inodes(&watched);

    let (r, lines) = f.run();
    let report = r.unwrap();
    assert!(
        report.files.iter().all(|(_, o, _)| *o == Outcome::Cached),
        "{:?}",
        report.files
    );
    assert_eq!(report.files.len(), f.expected.len());
    assert_eq!(report.transferred, 0);
    let after = f.server.hits();
    for p in &f.artifact_paths {
        assert_eq!(after.get(p), before.get(p), "{p} downloaded again");
    }
    for p in &f.checksum_paths {
        assert_eq!(after[p], before[p] + 1, "{p} not re-checked");
    }
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("kubelet: cached ({K8S})")),
        "{lines:#?}"
    );
    assert_eq!(inodes(&watched), first, "installed files were rewritten");

    // A stale partial download of something already installed is dropped, not used.
    let stale = f.part_for("/amd64/kubectl");
    fs::write(&stale, b"stale").unwrap();
    f.run().0.unwrap();
    assert!(!stale.exists());

    // Damage the directory: a missing extracted file, a modified binary, a wrong mode.
    fs::remove_file(f.dir.join("ctr")).unwrap();
    fs::write(f.dir.join("kube-proxy"), b"#!/bin/sh\necho tampered\n").unwrap();
    fs::set_permissions(f.dir.join("runc"), fs::Permissions::from_mode(0o644)).unwrap();
    let before = f.server.hits();
    let report = f.run().0.unwrap();
    let o = outcomes(&report);
    assert_eq!(o["kube-proxy"], Outcome::Downloaded);
    assert_eq!(
        o["ctr"],
        Outcome::Cached,
        "restored from the cached archive"
    );
    assert_eq!(o["runc"], Outcome::Cached);
    for name in f.expected.keys() {
        assert_eq!(
            fs::read(f.dir.join(name)).unwrap(),
            f.expected[name],
            "{name}"
        );
        assert_eq!(mode(&f.dir.join(name)), 0o755, "{name}");
    }
    let after = f.server.hits();
    let kube_proxy = format!("/kubernetes/{K8S}/bin/linux/amd64/kube-proxy");
    for p in &f.artifact_paths {
        let extra = usize::from(*p == kube_proxy);
        assert_eq!(after[p], before[p] + extra, "{p}");
    }
}

#[test]
fn corrupted_binary_fails_loudly_and_is_deleted() {
    let f = fixture();
    let path = format!("/kubernetes/{K8S}/bin/linux/amd64/kube-scheduler");
    let good = f.expected["kube-scheduler"].clone();
    let mut bad = good.clone();
    bad[20] ^= 0x20; // one flipped bit, same length
    f.server.put(&path, bad.clone());

    let err = f.run().0.unwrap_err();
    match &err {
        FetchError::ChecksumMismatch {
            url,
            expected,
            actual,
        } => {
            assert_eq!(url, &format!("{}{path}", f.server.base));
            assert_eq!(expected, &sha(&good));
            assert_eq!(actual, &sha(&bad));
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&path) && msg.contains(&sha(&good)) && msg.contains(&sha(&bad)),
        "{msg}"
    );
    assert!(!f.dir.join("kube-scheduler").exists());
    no_temp_files(&f.dir);
    // What was verified before the failure stays installed.
    assert_eq!(
        fs::read(f.dir.join("kube-apiserver")).unwrap(),
        f.expected["kube-apiserver"]
    );
    assert!(!read_manifest(&f.dir)
        .unwrap()
        .files
        .contains_key("kube-scheduler"));
}

#[test]
fn corrupted_archive_fails_and_nothing_is_extracted() {
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Containerd];
    let file = format!("containerd-{CONTAINERD_VERSION}-linux-amd64.tar.gz");
    let path = format!("/containerd/v{CONTAINERD_VERSION}/{file}");
    // A valid archive, but not the published one.
    f.server
        .put(&path, containerd_archive("amd64", &["containerd", "ctr"]));

    let err = f.run().0.unwrap_err();
    assert!(
        matches!(&err, FetchError::ChecksumMismatch { url, .. } if url.ends_with(&path)),
        "{err}"
    );
    for name in ["containerd", "containerd-shim-runc-v2", "ctr"] {
        assert!(!f.dir.join(name).exists(), "{name}");
    }
    assert!(!f.dir.join(".cache").join(&file).exists());
    no_temp_files(&f.dir);
}

#[test]
fn archive_without_a_required_file_is_refused() {
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Containerd];
    let file = format!("containerd-{CONTAINERD_VERSION}-linux-amd64.tar.gz");
    let path = format!("/containerd/v{CONTAINERD_VERSION}/{file}");
    let archive = containerd_archive("amd64", &["containerd", "containerd-shim-runc-v2"]);
    f.server.put(
        &format!("{path}.sha256sum"),
        format!("{}  {file}\n", sha(&archive)),
    );
    f.server.put(&path, archive);

    let err = f.run().0.unwrap_err();
    assert!(
        matches!(&err, FetchError::MissingMember { member, .. } if member == "bin/ctr"),
        "{err}"
    );
    // All or nothing: the members that were present are not installed either.
    assert!(!f.dir.join("containerd").exists());
    no_temp_files(&f.dir);
}

#[test]
fn resumes_a_partial_download_with_a_range_request() {
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Kubernetes];
    let kubelet = f.expected["kubelet"].clone();
    let half = kubelet.len() / 2;
    let part = f.part_for("/amd64/kubelet");
    fs::create_dir_all(part.parent().unwrap()).unwrap();
    fs::write(&part, &kubelet[..half]).unwrap();

    let (r, lines) = f.run();
    let report = r.unwrap();
    let st = f.server.state.lock().unwrap();
    assert_eq!(
        st.partial,
        vec![(f.kubelet_path(), half as u64)],
        "exactly one 206 answer, for kubelet from the half"
    );
    drop(st);
    let o = outcomes(&report);
    assert_eq!(o["kubelet"], Outcome::Resumed);
    assert_eq!(o["kubectl"], Outcome::Downloaded);
    assert_eq!(fs::read(f.dir.join("kubelet")).unwrap(), kubelet);
    assert_eq!(mode(&f.dir.join("kubelet")), 0o755);
    assert!(!part.exists());
    let others: u64 = K8S_BINS
        .iter()
        .filter(|n| **n != "kubelet")
        .map(|n| f.expected[*n].len() as u64)
        .sum();
    assert_eq!(report.transferred, others + (kubelet.len() - half) as u64);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("kubelet: resumed at 200.0 kB")),
        "{lines:#?}"
    );
}

#[test]
fn restarts_when_the_server_ignores_ranges() {
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Kubernetes];
    f.server.state.lock().unwrap().ignore_ranges = true;
    let kubelet = f.expected["kubelet"].clone();
    let part = f.part_for("/amd64/kubelet");
    fs::create_dir_all(part.parent().unwrap()).unwrap();
    fs::write(&part, &kubelet[..1000]).unwrap();

    let report = f.run().0.unwrap();
    let st = f.server.state.lock().unwrap();
    assert_eq!(
        st.range_headers,
        vec![(f.kubelet_path(), "bytes=1000-".to_string())]
    );
    assert!(st.partial.is_empty());
    drop(st);
    assert_eq!(outcomes(&report)["kubelet"], Outcome::Downloaded);
    assert_eq!(fs::read(f.dir.join("kubelet")).unwrap(), kubelet);
    no_temp_files(&f.dir);
}

#[test]
fn a_stale_partial_download_is_discarded_and_fetched_again() {
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Kubernetes];
    let kubelet = f.expected["kubelet"].clone();
    let part = f.part_for("/amd64/kubelet");
    fs::create_dir_all(part.parent().unwrap()).unwrap();
    fs::write(&part, vec![b'x'; kubelet.len() / 2]).unwrap();

    let (r, lines) = f.run();
    let report = r.unwrap();
    assert_eq!(outcomes(&report)["kubelet"], Outcome::Downloaded);
    assert_eq!(fs::read(f.dir.join("kubelet")).unwrap(), kubelet);
    assert_eq!(
        f.server.hit(&f.kubelet_path()),
        2,
        "resume, then from the start"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("does not match the published checksum")),
        "{lines:#?}"
    );
    no_temp_files(&f.dir);
}

#[test]
fn an_interrupted_download_is_resumed_by_the_next_run() {
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Kubernetes];
    let kubelet = f.expected["kubelet"].clone();
    f.server
        .state
        .lock()
        .unwrap()
        .cut_once
        .insert(f.kubelet_path(), 150_000);

    let err = f.run().0.unwrap_err();
    assert!(
        matches!(&err, FetchError::Network { url, .. } if url.ends_with("/amd64/kubelet")),
        "{err}"
    );
    assert!(!f.dir.join("kubelet").exists());
    let part = f.part_for("/amd64/kubelet");
    assert_eq!(fs::metadata(&part).unwrap().len(), 150_000);

    let report = f.run().0.unwrap();
    assert_eq!(outcomes(&report)["kubelet"], Outcome::Resumed);
    assert_eq!(
        f.server.state.lock().unwrap().partial,
        vec![(f.kubelet_path(), 150_000)]
    );
    assert_eq!(fs::read(f.dir.join("kubelet")).unwrap(), kubelet);
    assert!(!part.exists());
}

#[test]
fn http_404_names_the_url() {
    let f = fixture();
    let path = format!("/kubernetes/{K8S}/bin/linux/amd64/kube-proxy");
    f.server.remove(&path);
    let err = f.run().0.unwrap_err();
    let url = format!("{}{path}", f.server.base);
    assert!(
        matches!(&err, FetchError::Http { url: u, status: 404, .. } if *u == url),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&url) && msg.contains("HTTP 404"), "{msg}");
    assert!(!f.dir.join("kube-proxy").exists());

    // A missing checksum file is just as explicit.
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Etcd];
    let sums = format!("/etcd/v{}/SHA256SUMS", etcd_version());
    f.server.remove(&sums);
    let msg = f.run().0.unwrap_err().to_string();
    assert!(
        msg.contains(&format!("{}{sums}", f.server.base)) && msg.contains("404"),
        "{msg}"
    );
}

#[test]
fn checksum_file_without_the_artifact_is_an_error() {
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Runc];
    let path = format!("/runc/v{RUNC_VERSION}/runc.sha256sum");
    f.server.put(&path, format!("{}  runc.arm64\n", sha(b"x")));
    let err = f.run().0.unwrap_err();
    assert!(
        matches!(&err, FetchError::ChecksumMissing { file, url } if file == "runc.amd64" && url.ends_with(&path)),
        "{err}"
    );
    assert!(!f.dir.join("runc").exists());
    assert_eq!(
        f.server.hit(&format!("/runc/v{RUNC_VERSION}/runc.amd64")),
        0
    );
}

#[test]
fn arm64_and_a_subset_of_components() {
    let mut f = fixture();
    f.opts.arch = "arm64".into();
    f.opts.components = vec![ReleaseGroup::CniPlugins, ReleaseGroup::Runc];
    let report = f.run().0.unwrap();
    let names: BTreeSet<String> = report.files.iter().map(|(n, _, _)| n.clone()).collect();
    let mut want: BTreeSet<String> = CNI_PLUGINS.iter().map(|p| format!("cni/{p}")).collect();
    want.insert("runc".into());
    assert_eq!(names, want);
    assert_eq!(
        fs::read(f.dir.join("runc")).unwrap(),
        script("runc", "arm64", 4_000)
    );
    assert_eq!(
        fs::read(f.dir.join("cni/bridge")).unwrap(),
        script("bridge", "arm64", 2_500)
    );
    assert_eq!(mode(&f.dir.join("cni/bridge")), 0o755);
    assert!(!f.dir.join("kubelet").exists());
    let m = read_manifest(&f.dir).unwrap();
    assert_eq!(m.files.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(m.files["runc"].arch, "arm64");
    assert!(f
        .server
        .hits()
        .keys()
        .all(|p| p.starts_with("/runc/") || p.starts_with("/cni-plugins/")));
}

#[test]
fn bad_options_fail_before_any_request() {
    let mut f = fixture();
    f.opts.kubernetes_version = "v1.18.3".into();
    let err = f.run().0.unwrap_err();
    assert!(matches!(&err, FetchError::Version(_)), "{err}");
    assert!(err.to_string().contains("supported minors"), "{err}");

    f.opts.kubernetes_version = K8S.into();
    f.opts.arch = "386".into();
    let err = f.run().0.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported architecture `386` (supported: amd64, arm64)"
    );
    assert!(f.server.hits().is_empty());
    assert!(!f.dir.exists());
}

#[test]
fn a_second_concurrent_fetch_is_refused() {
    let f = fixture();
    let cache = f.dir.join(".cache");
    fs::create_dir_all(&cache).unwrap();
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache.join(".lock"))
        .unwrap();
    // SAFETY: flock on a descriptor owned by this test.
    assert_eq!(
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let err = f.run().0.unwrap_err();
    assert!(
        matches!(&err, FetchError::Locked { dir, .. } if *dir == f.dir),
        "{err}"
    );
    assert!(f.server.hits().is_empty());
    drop(lock);
    f.run().0.unwrap();
}

#[test]
fn temporary_files_of_a_killed_run_are_removed_and_links_not_followed() {
    let f = fixture();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, "keep").unwrap();
    fs::create_dir_all(f.dir.join("cni")).unwrap();
    fs::write(f.dir.join(".kubectl.tmp-4242-0a1b"), "half").unwrap();
    fs::write(f.dir.join("cni/.bridge.tmp-4242"), "half").unwrap();
    std::os::unix::fs::symlink(&victim, f.dir.join(".etcd.tmp-4243-ff")).unwrap();
    let (result, lines) = f.run();
    result.unwrap();
    for left in [
        ".kubectl.tmp-4242-0a1b",
        "cni/.bridge.tmp-4242",
        ".etcd.tmp-4243-ff",
    ] {
        assert!(
            fs::symlink_metadata(f.dir.join(left)).is_err(),
            "{left} is still there"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains(left) && l.contains("interrupted run")),
            "{left} not reported: {lines:?}"
        );
    }
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
}

#[test]
fn a_complete_partial_download_is_verified_without_downloading_again() {
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Kubernetes];
    let kubelet = f.expected["kubelet"].clone();
    let part = f.part_for("/amd64/kubelet");
    fs::create_dir_all(part.parent().unwrap()).unwrap();
    fs::write(&part, &kubelet).unwrap();

    let report = f.run().0.unwrap();
    // The range starts at the end of the file: the server answers 416 and sends nothing.
    let st = f.server.state.lock().unwrap();
    assert_eq!(
        st.range_headers,
        vec![(f.kubelet_path(), format!("bytes={}-", kubelet.len()))]
    );
    assert!(st.partial.is_empty());
    drop(st);
    assert!(report.files.contains(&(
        "kubelet".to_string(),
        Outcome::Resumed,
        kubelet.len() as u64
    )));
    assert_eq!(fs::read(f.dir.join("kubelet")).unwrap(), kubelet);
    assert_eq!(f.server.hit(&f.kubelet_path()), 1);
}

#[test]
fn a_redirect_to_another_scheme_is_refused_not_followed() {
    for location in [
        "file:///etc/passwd",
        "file:/etc/shadow",
        "ftp://127.0.0.1/kubelet",
        "data:text/plain,kubelet",
        "unix:/run/docker.sock",
        "gopher://127.0.0.1:70/1",
    ] {
        let mut f = fixture();
        f.opts.components = vec![ReleaseGroup::Kubernetes];
        f.server.redirect(&f.kubelet_path(), location);
        let err = f.run().0.unwrap_err();
        assert!(
            matches!(err, FetchError::Redirect { .. }),
            "{location}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("not following the redirect to"), "{msg}");
        assert!(msg.contains("not http or https"), "{msg}");
        assert!(!f.dir.join("kubelet").exists());
    }
}

#[test]
fn redirects_are_followed_within_http_and_bounded() {
    // A relative redirect to where the file now is: followed, verified, installed.
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Kubernetes];
    let kubelet = f.kubelet_path();
    let bytes = f.expected["kubelet"].clone();
    f.server.put("/moved/kubelet", bytes.clone());
    f.server.redirect(&kubelet, "/moved/kubelet");
    f.run().0.unwrap();
    assert_eq!(fs::read(f.dir.join("kubelet")).unwrap(), bytes);
    assert_eq!(f.server.hit("/moved/kubelet"), 1);

    // A loop ends with an error naming the bound.
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Kubernetes];
    let kubelet = f.kubelet_path();
    f.server.redirect(&kubelet, "/loop/a");
    f.server.redirect("/loop/a", "/loop/b");
    f.server.redirect("/loop/b", "/loop/a");
    let msg = f.run().0.unwrap_err().to_string();
    assert!(msg.contains("more than 10 redirects"), "{msg}");
}

#[test]
fn mirror_credentials_are_used_but_never_shown_or_recorded() {
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Kubernetes, ReleaseGroup::Runc];
    let secret = "s3cr3t-pa55";
    let with_user = f
        .server
        .base
        .replace("http://", &format!("http://mirror-user:{secret}@"));
    f.opts.mirror = Mirrors::under(&with_user);
    let (report, lines) = f.run();
    report.unwrap();
    let manifest = fs::read_to_string(f.dir.join("versions.json")).unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("downloading http://***@127.0.0.1")),
        "{lines:?}"
    );
    assert!(
        manifest.contains("\"url\": \"http://***@127.0.0.1"),
        "{manifest}"
    );
    for shown in lines.iter().chain([&manifest]) {
        assert!(
            !shown.contains(secret) && !shown.contains("mirror-user"),
            "{shown}"
        );
    }

    // Nor in an error, with a signed query on top.
    let mut f = fixture();
    f.opts.components = vec![ReleaseGroup::Kubernetes];
    let path = f.kubelet_path();
    f.server.redirect(
        &path,
        "/signed/kubelet?X-Amz-Signature=d34db33f&token=t0k3n",
    );
    f.server.redirect(
        "/signed/kubelet?X-Amz-Signature=d34db33f&token=t0k3n",
        "file:///etc/passwd",
    );
    let with_user = f
        .server
        .base
        .replace("http://", &format!("http://mirror-user:{secret}@"));
    f.opts.mirror = Mirrors::under(&with_user);
    let (err, lines) = f.run();
    let msg = err.unwrap_err().to_string();
    assert!(msg.contains("http://***@127.0.0.1"), "{msg}");
    for shown in lines.iter().chain([&msg]) {
        for leak in [secret, "mirror-user", "d34db33f", "t0k3n"] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
    }
}
