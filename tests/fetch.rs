//! `fetch` against a local HTTP/1.1 fixture server (no internet here, and tests must never
//! reach the real download sites). The server serves stand-in artifacts built by the test:
//! small shell scripts named like the real binaries, tar.gz archives with the upstream
//! layouts, and checksum files in the upstream formats. It counts requests per path and
//! records `Range` requests so caching and resuming can be asserted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use k8s_boot::fetch::{
    artifacts, fetch, read_manifest, Component, FetchError, FetchOptions, FetchReport, Mirrors,
    Outcome, CNI_PLUGINS_VERSION, CONTAINERD_VERSION, CRICTL_VERSION, FLANNEL_CNI_PLUGIN_VERSION,
    RUNC_VERSION,
};
use sha2::{Digest, Sha256};

const K8S: &str = "v1.36.0";

// ---------------------------------------------------------------------------------------------
// Fixture HTTP server
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    hits: HashMap<String, usize>,
    /// (path, Range header) of every request that carried one.
    range_headers: Vec<(String, String)>,
    /// (path, offset) of every 206 answer.
    partial: Vec<(String, u64)>,
    /// Answer range requests with the whole file (200), like a server without range support.
    ignore_ranges: bool,
    /// path -> bytes of body to send before dropping the connection, once.
    cut_once: HashMap<String, usize>,
}

struct Server {
    base: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        Server { base, state }
    }

    fn put(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), bytes.into());
    }

    fn remove(&self, path: &str) {
        self.state.lock().unwrap().files.remove(path);
    }

    fn hits(&self) -> HashMap<String, usize> {
        self.state.lock().unwrap().hits.clone()
    }

    fn hit(&self, path: &str) -> usize {
        self.hits().get(path).copied().unwrap_or(0)
    }
}

/// One request per connection (`Connection: close`): GET, optional `Range: bytes=N-`.
fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let (status, headers, body, cut) = {
        let mut st = state.lock().unwrap();
        *st.hits.entry(path.clone()).or_default() += 1;
        if let Some(r) = &range {
            st.range_headers.push((path.clone(), r.clone()));
        }
        let cut = st.cut_once.remove(&path);
        match (method.as_str(), st.files.get(&path).cloned()) {
            ("GET", Some(file)) => {
                let len = file.len() as u64;
                let from = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<u64>().ok());
                match from {
                    Some(n) if !st.ignore_ranges && n >= len => (
                        "416 Range Not Satisfiable",
                        format!("Content-Range: bytes */{len}\r\n"),
                        Vec::new(),
                        None,
                    ),
                    Some(n) if !st.ignore_ranges => {
                        st.partial.push((path.clone(), n));
                        (
                            "206 Partial Content",
                            format!("Content-Range: bytes {n}-{}/{len}\r\n", len - 1),
                            file[n as usize..].to_vec(),
                            cut,
                        )
                    }
                    _ => ("200 OK", String::new(), file, cut),
                }
            }
            ("GET", None) => (
                "404 Not Found",
                String::new(),
                b"not found\n".to_vec(),
                None,
            ),
            _ => ("405 Method Not Allowed", String::new(), Vec::new(), None),
        }
    };
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{headers}Connection: close\r\n\r\n",
        body.len()
    )?;
    match cut {
        Some(n) => {
            out.write_all(&body[..n.min(body.len())])?;
            out.flush()?;
            out.shutdown(Shutdown::Both)?;
        }
        None => out.write_all(&body)?,
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fixture artifacts
// ---------------------------------------------------------------------------------------------

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A stand-in executable: a shell script named like the real binary, padded to `size`.
fn script(name: &str, arch: &str, size: usize) -> Vec<u8> {
    let mut s = format!("#!/bin/sh\n# test stand-in for {name} ({arch})\necho {name}\n");
    let mut i = 0;
    while s.len() < size {
        s.push_str(&format!("# padding line {i} for {name}\n"));
        i += 1;
    }
    s.into_bytes()
}

/// A tar.gz with the given directories and (path, bytes, mode) files.
fn targz(dirs: &[&str], files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for d in dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, d, &[][..]).unwrap();
    }
    for (path, bytes, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(*mode);
        h.set_size(bytes.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, path, *bytes).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

const K8S_BINS: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
];
const CNI_PLUGINS: [&str; 5] = ["bridge", "host-local", "loopback", "portmap", "tuning"];

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

fn etcd_version() -> String {
    k8s_boot::versions::profile_for(K8S)
        .unwrap()
        .etcd
        .to_string()
}

fn containerd_archive(arch: &str, members: &[&str]) -> Vec<u8> {
    let bins: Vec<(String, Vec<u8>)> = members
        .iter()
        .map(|n| (format!("bin/{n}"), script(n, arch, 3_000)))
        .collect();
    let files: Vec<(&str, &[u8], u32)> = bins
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice(), 0o755))
        .collect();
    targz(&["bin/"], &files)
}

fn fixture() -> Fixture {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("binaries");
    let mut opts = FetchOptions::new(K8S, &dir);
    opts.mirror = Mirrors::under(&server.base);
    // Images come from registries; tests/fetch_images.rs covers them.
    opts.images.clear();
    let mut expected = BTreeMap::new();
    let mut artifact_paths = Vec::new();
    let mut checksum_paths = Vec::new();

    for arch in ["amd64", "arm64"] {
        let amd = arch == "amd64";
        let mut keep = |name: String, bytes: &[u8]| {
            if amd {
                expected.insert(name, bytes.to_vec());
            }
        };

        // Kubernetes: plain binaries with a bare-digest .sha256 each. kubelet is the big one
        // (several read chunks) so resuming has something to resume.
        for name in K8S_BINS {
            let size = if name == "kubelet" { 400_000 } else { 2_000 };
            let bytes = script(name, arch, size);
            let path = format!("/kubernetes/{K8S}/bin/linux/{arch}/{name}");
            server.put(&format!("{path}.sha256"), format!("{}\n", sha(&bytes)));
            server.put(&path, bytes.clone());
            keep(name.to_string(), &bytes);
            if amd {
                artifact_paths.push(path.clone());
                checksum_paths.push(format!("{path}.sha256"));
            }
        }

        // etcd: etcd-vX-linux-ARCH/{etcd,etcdctl,etcdutl,README.md} + one SHA256SUMS.
        let ev = etcd_version();
        let top = format!("etcd-v{ev}-linux-{arch}");
        let bins: Vec<(String, Vec<u8>)> = ["etcd", "etcdctl", "etcdutl"]
            .iter()
            .map(|n| (n.to_string(), script(n, arch, 5_000)))
            .collect();
        let paths: Vec<String> = bins.iter().map(|(n, _)| format!("{top}/{n}")).collect();
        let readme = format!("{top}/README.md");
        let mut files: Vec<(&str, &[u8], u32)> = paths
            .iter()
            .zip(&bins)
            .map(|(p, (_, b))| (p.as_str(), b.as_slice(), 0o755))
            .collect();
        files.push((readme.as_str(), b"# etcd\n", 0o644));
        let archive = targz(&[&format!("{top}/")], &files);
        let file = format!("{top}.tar.gz");
        server.put(&format!("/etcd/v{ev}/{file}"), archive.clone());
        for (n, b) in &bins {
            keep(n.clone(), b);
        }
        if amd {
            artifact_paths.push(format!("/etcd/v{ev}/{file}"));
            let sums = format!(
                "{}  {file}\n{}  etcd-v{ev}-linux-arm64.tar.gz\n{}  etcd-v{ev}-darwin-amd64.zip\n",
                sha(&archive),
                sha(b"other arch"),
                sha(b"other os")
            );
            server.put(&format!("/etcd/v{ev}/SHA256SUMS"), sums);
            checksum_paths.push(format!("/etcd/v{ev}/SHA256SUMS"));
        }

        // containerd: bin/{containerd,containerd-shim-runc-v2,ctr,containerd-stress}.
        let cv = CONTAINERD_VERSION;
        let members = [
            "containerd",
            "containerd-shim-runc-v2",
            "ctr",
            "containerd-stress",
        ];
        let archive = containerd_archive(arch, &members);
        let file = format!("containerd-{cv}-linux-{arch}.tar.gz");
        let path = format!("/containerd/v{cv}/{file}");
        server.put(&path, archive.clone());
        server.put(
            &format!("{path}.sha256sum"),
            format!("{}  {file}\n", sha(&archive)),
        );
        for n in &members[..3] {
            keep(n.to_string(), &script(n, arch, 3_000));
        }
        if amd {
            artifact_paths.push(path.clone());
            checksum_paths.push(format!("{path}.sha256sum"));
        }

        // runc: runc.ARCH; one runc.sha256sum for every architecture (below).
        let rv = RUNC_VERSION;
        let runc = script("runc", arch, 4_000);
        server.put(&format!("/runc/v{rv}/runc.{arch}"), runc.clone());
        keep("runc".into(), &runc);
        if amd {
            artifact_paths.push(format!("/runc/v{rv}/runc.{arch}"));
            checksum_paths.push(format!("/runc/v{rv}/runc.sha256sum"));
        }

        // CNI plugins: ./PLUGIN at the top level, plus non-executable LICENSE and README.md.
        let nv = CNI_PLUGINS_VERSION;
        let plugins: Vec<(String, Vec<u8>)> = CNI_PLUGINS
            .iter()
            .map(|n| (format!("./{n}"), script(n, arch, 2_500)))
            .collect();
        let mut files: Vec<(&str, &[u8], u32)> = plugins
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice(), 0o755))
            .collect();
        files.push(("./LICENSE", b"Apache License\n", 0o644));
        files.push(("./README.md", b"# plugins\n", 0o644));
        let archive = targz(&["./"], &files);
        let file = format!("cni-plugins-linux-{arch}-v{nv}.tgz");
        let path = format!("/cni-plugins/v{nv}/{file}");
        server.put(&path, archive.clone());
        server.put(
            &format!("{path}.sha256"),
            format!("{}  {file}\n", sha(&archive)),
        );
        for (p, b) in &plugins {
            keep(format!("cni/{}", &p[2..]), b);
        }
        if amd {
            artifact_paths.push(path.clone());
            checksum_paths.push(format!("{path}.sha256"));
        }

        // crictl: a lone `crictl` at the top level; the .sha256 holds a bare digest.
        let cv = CRICTL_VERSION;
        let crictl = script("crictl", arch, 3_500);
        let archive = targz(&[], &[("crictl", &crictl, 0o755)]);
        let file = format!("crictl-v{cv}-linux-{arch}.tar.gz");
        let path = format!("/crictl/v{cv}/{file}");
        server.put(&path, archive.clone());
        server.put(&format!("{path}.sha256"), format!("{}\n", sha(&archive)));
        keep("crictl".into(), &crictl);
        if amd {
            artifact_paths.push(path.clone());
            checksum_paths.push(format!("{path}.sha256"));
        }

        // flannel CNI plugin: `flannel-ARCH` at the top level, under the release tag, with
        // an asset name that carries only the CNI plugins version.
        let tag = FLANNEL_CNI_PLUGIN_VERSION;
        let fv = tag.split("-flannel").next().unwrap();
        let flannel = script("flannel", arch, 2_800);
        let archive = targz(&[], &[(&format!("flannel-{arch}"), &flannel, 0o755)]);
        let file = format!("cni-plugin-flannel-linux-{arch}-v{fv}.tgz");
        let path = format!("/cni-flannel/v{tag}/{file}");
        server.put(&path, archive.clone());
        server.put(
            &format!("{path}.sha256"),
            format!("{}  {file}\n", sha(&archive)),
        );
        keep("cni/flannel".into(), &flannel);
        if amd {
            artifact_paths.push(path.clone());
            checksum_paths.push(format!("{path}.sha256"));
        }
    }
    let rv = RUNC_VERSION;
    let sums = format!(
        "{}  runc.amd64\n{}  runc.arm64\n{}  runc.armhf\n",
        sha(&script("runc", "amd64", 4_000)),
        sha(&script("runc", "arm64", 4_000)),
        sha(b"armhf")
    );
    server.put(&format!("/runc/v{rv}/runc.sha256sum"), sums);

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
    f.opts.components = vec![Component::Containerd];
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
    f.opts.components = vec![Component::Containerd];
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
    f.opts.components = vec![Component::Kubernetes];
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
    f.opts.components = vec![Component::Kubernetes];
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
    f.opts.components = vec![Component::Kubernetes];
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
    f.opts.components = vec![Component::Kubernetes];
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
    f.opts.components = vec![Component::Etcd];
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
    f.opts.components = vec![Component::Runc];
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
    f.opts.components = vec![Component::CniPlugins, Component::Runc];
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
        matches!(&err, FetchError::Locked(d) if *d == f.dir),
        "{err}"
    );
    assert!(f.server.hits().is_empty());
    drop(lock);
    f.run().0.unwrap();
}

#[test]
fn a_complete_partial_download_is_verified_without_downloading_again() {
    let mut f = fixture();
    f.opts.components = vec![Component::Kubernetes];
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
