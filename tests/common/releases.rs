//! A fixture of the official release downloads (no internet here, and tests must never reach
//! the real download sites): a small HTTP/1.1 server on 127.0.0.1 and the stand-in releases
//! it serves. Small shell scripts named like the real binaries, tar.gz archives with the
//! upstream layouts, checksum files in the upstream formats. The server counts requests per
//! path and records `Range` requests so caching and resuming can be asserted. Used by
//! tests/fetch.rs, tests/fetch_images.rs and tests/lab_fetch.rs.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use k8s_boot::fetch::{
    CNI_PLUGINS_VERSION, CONTAINERD_VERSION, CRICTL_VERSION, FLANNEL_CNI_PLUGIN_VERSION,
    RUNC_VERSION,
};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Fixture HTTP server
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub struct State {
    pub files: HashMap<String, Vec<u8>>,
    pub hits: HashMap<String, usize>,
    /// (path, Range header) of every request that carried one.
    pub range_headers: Vec<(String, String)>,
    /// (path, offset) of every 206 answer.
    pub partial: Vec<(String, u64)>,
    /// Answer range requests with the whole file (200), like a server without range support.
    pub ignore_ranges: bool,
    /// path -> bytes of body to send before dropping the connection, once.
    pub cut_once: HashMap<String, usize>,
    /// path -> `Location` of a `302 Found` answered instead of the file.
    pub redirects: HashMap<String, String>,
}

pub struct Server {
    pub base: String,
    pub state: Arc<Mutex<State>>,
}

impl Server {
    pub fn start() -> Server {
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

    pub fn put(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), bytes.into());
    }

    /// Answers `path` with `302 Found` to `location` (absolute or relative, any scheme).
    pub fn redirect(&self, path: &str, location: &str) {
        self.state
            .lock()
            .unwrap()
            .redirects
            .insert(path.to_string(), location.to_string());
    }

    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().files.remove(path);
    }

    pub fn hits(&self) -> HashMap<String, usize> {
        self.state.lock().unwrap().hits.clone()
    }

    pub fn hit(&self, path: &str) -> usize {
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
        let redirect = st.redirects.get(&path).cloned();
        match (method.as_str(), st.files.get(&path).cloned()) {
            ("GET", _) if redirect.is_some() => (
                "302 Found",
                format!("Location: {}\r\n", redirect.unwrap_or_default()),
                Vec::new(),
                None,
            ),
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

pub fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A stand-in executable: a shell script named like the real binary, padded to `size`.
pub fn script(name: &str, arch: &str, size: usize) -> Vec<u8> {
    let mut s = format!("#!/bin/sh\n# test stand-in for {name} ({arch})\necho {name}\n");
    let mut i = 0;
    while s.len() < size {
        s.push_str(&format!("# padding line {i} for {name}\n"));
        i += 1;
    }
    s.into_bytes()
}

/// A tar.gz with the given directories and (path, bytes, mode) files.
pub fn targz(dirs: &[&str], files: &[(&str, &[u8], u32)]) -> Vec<u8> {
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

/// The Kubernetes binaries the fixture publishes: the ones `fetch` downloads.
pub const K8S_BINS: [&str; 6] = k8s_boot::fetch::KUBERNETES_BINARIES;
pub const CNI_PLUGINS: [&str; 5] = ["bridge", "host-local", "loopback", "portmap", "tuning"];

// ---------------------------------------------------------------------------------------------
// The releases of one Kubernetes version
// ---------------------------------------------------------------------------------------------

/// What [`publish`] put on the server, for one architecture.
pub struct Published {
    /// Installed name (`kubelet`, `cni/bridge`) -> the bytes fetch must install.
    pub expected: BTreeMap<String, Vec<u8>>,
    /// Server path of every artifact and every checksum file.
    pub artifact_paths: Vec<String>,
    pub checksum_paths: Vec<String>,
}

/// The etcd release of a Kubernetes version's profile, without its `v`.
pub fn etcd_version(k8s: &str) -> String {
    k8s_boot::versions::profile_for(k8s)
        .unwrap()
        .etcd
        .to_string()
}

pub fn containerd_archive(arch: &str, members: &[&str]) -> Vec<u8> {
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

/// etcd's `etcd-v{ver}-linux-{arch}.tar.gz` with these programs and a README.md (which must
/// not be installed), and its server path.
pub fn etcd_archive(k8s: &str, arch: &str, programs: &[&str]) -> (String, Vec<u8>) {
    let ev = etcd_version(k8s);
    let top = format!("etcd-v{ev}-linux-{arch}");
    let paths: Vec<(String, Vec<u8>)> = programs
        .iter()
        .map(|n| (format!("{top}/{n}"), script(n, arch, 5_000)))
        .collect();
    let readme = format!("{top}/README.md");
    let mut files: Vec<(&str, &[u8], u32)> = paths
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice(), 0o755))
        .collect();
    files.push((readme.as_str(), b"# etcd\n", 0o644));
    let archive = targz(&[&format!("{top}/")], &files);
    (format!("/etcd/v{ev}/{top}.tar.gz"), archive)
}

/// etcd's one `SHA256SUMS` for these archives (server path, bytes), with a line of another
/// platform too.
pub fn put_etcd_sums(server: &Server, k8s: &str, archives: &[(String, Vec<u8>)]) -> String {
    let ev = etcd_version(k8s);
    let mut sums: String = archives
        .iter()
        .map(|(path, bytes)| format!("{}  {}\n", sha(bytes), path.rsplit('/').next().unwrap()))
        .collect();
    sums.push_str(&format!(
        "{}  etcd-v{ev}-darwin-amd64.zip\n",
        sha(b"other os")
    ));
    let path = format!("/etcd/v{ev}/SHA256SUMS");
    server.put(&path, sums);
    path
}

/// Serves every component's release of `k8s` for amd64 and arm64, in the upstream layouts
/// under the component names of `Mirrors::under` (stand-in scripts for the programs, checksum
/// files in each upstream format), and returns what fetch must make of them for `arch`.
pub fn publish(server: &Server, k8s: &str, arch: &str) -> Published {
    let mut expected = BTreeMap::new();
    let mut artifact_paths = Vec::new();
    let mut checksum_paths = Vec::new();
    let mut etcd_archives = Vec::new();

    for a in ["amd64", "arm64"] {
        let mine = a == arch;
        let mut keep = |name: String, bytes: &[u8]| {
            if mine {
                expected.insert(name, bytes.to_vec());
            }
        };
        let mut paths = |artifact: &str, checksum: &str| {
            if mine {
                artifact_paths.push(artifact.to_string());
                checksum_paths.push(checksum.to_string());
            }
        };

        // Kubernetes: plain binaries with a bare-digest .sha256 each. kubelet is the big one
        // (several read chunks) so resuming has something to resume.
        for name in K8S_BINS {
            let size = if name == "kubelet" { 400_000 } else { 2_000 };
            let bytes = script(name, a, size);
            let path = format!("/kubernetes/{k8s}/bin/linux/{a}/{name}");
            server.put(&format!("{path}.sha256"), format!("{}\n", sha(&bytes)));
            server.put(&path, bytes.clone());
            keep(name.to_string(), &bytes);
            paths(&path, &format!("{path}.sha256"));
        }

        // etcd: etcd-vX-linux-ARCH/{etcd,etcdctl,etcdutl,README.md} + one SHA256SUMS (below).
        let programs = ["etcd", "etcdctl", "etcdutl"];
        let (path, archive) = etcd_archive(k8s, a, &programs);
        server.put(&path, archive.clone());
        for n in programs {
            keep(n.to_string(), &script(n, a, 5_000));
        }
        paths(&path, &format!("/etcd/v{}/SHA256SUMS", etcd_version(k8s)));
        etcd_archives.push((path, archive));

        // containerd: bin/{containerd,containerd-shim-runc-v2,ctr,containerd-stress}.
        let cv = CONTAINERD_VERSION;
        let members = [
            "containerd",
            "containerd-shim-runc-v2",
            "ctr",
            "containerd-stress",
        ];
        let archive = containerd_archive(a, &members);
        let file = format!("containerd-{cv}-linux-{a}.tar.gz");
        let path = format!("/containerd/v{cv}/{file}");
        server.put(&path, archive.clone());
        server.put(
            &format!("{path}.sha256sum"),
            format!("{}  {file}\n", sha(&archive)),
        );
        for n in &members[..3] {
            keep(n.to_string(), &script(n, a, 3_000));
        }
        paths(&path, &format!("{path}.sha256sum"));

        // runc: runc.ARCH; one runc.sha256sum for every architecture (below).
        let rv = RUNC_VERSION;
        let runc = script("runc", a, 4_000);
        server.put(&format!("/runc/v{rv}/runc.{a}"), runc.clone());
        keep("runc".into(), &runc);
        paths(
            &format!("/runc/v{rv}/runc.{a}"),
            &format!("/runc/v{rv}/runc.sha256sum"),
        );

        // CNI plugins: ./PLUGIN at the top level, plus non-executable LICENSE and README.md.
        let nv = CNI_PLUGINS_VERSION;
        let plugins: Vec<(String, Vec<u8>)> = CNI_PLUGINS
            .iter()
            .map(|n| (format!("./{n}"), script(n, a, 2_500)))
            .collect();
        let mut files: Vec<(&str, &[u8], u32)> = plugins
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice(), 0o755))
            .collect();
        files.push(("./LICENSE", b"Apache License\n", 0o644));
        files.push(("./README.md", b"# plugins\n", 0o644));
        let archive = targz(&["./"], &files);
        let file = format!("cni-plugins-linux-{a}-v{nv}.tgz");
        let path = format!("/cni-plugins/v{nv}/{file}");
        server.put(&path, archive.clone());
        server.put(
            &format!("{path}.sha256"),
            format!("{}  {file}\n", sha(&archive)),
        );
        for (p, b) in &plugins {
            keep(format!("cni/{}", &p[2..]), b);
        }
        paths(&path, &format!("{path}.sha256"));

        // crictl: a lone `crictl` at the top level; the .sha256 holds a bare digest.
        let cv = CRICTL_VERSION;
        let crictl = script("crictl", a, 3_500);
        let archive = targz(&[], &[("crictl", &crictl, 0o755)]);
        let file = format!("crictl-v{cv}-linux-{a}.tar.gz");
        let path = format!("/crictl/v{cv}/{file}");
        server.put(&path, archive.clone());
        server.put(&format!("{path}.sha256"), format!("{}\n", sha(&archive)));
        keep("crictl".into(), &crictl);
        paths(&path, &format!("{path}.sha256"));

        // flannel CNI plugin: `flannel-ARCH` at the top level, under the release tag, with
        // an asset name that carries only the CNI plugins version.
        let tag = FLANNEL_CNI_PLUGIN_VERSION;
        let fv = tag.split("-flannel").next().unwrap();
        let flannel = script("flannel", a, 2_800);
        let archive = targz(&[], &[(&format!("flannel-{a}"), &flannel, 0o755)]);
        let file = format!("cni-plugin-flannel-linux-{a}-v{fv}.tgz");
        let path = format!("/cni-flannel/v{tag}/{file}");
        server.put(&path, archive.clone());
        server.put(
            &format!("{path}.sha256"),
            format!("{}  {file}\n", sha(&archive)),
        );
        keep("cni/flannel".into(), &flannel);
        paths(&path, &format!("{path}.sha256"));
    }
    put_etcd_sums(server, k8s, &etcd_archives);
    let rv = RUNC_VERSION;
    let sums = format!(
        "{}  runc.amd64\n{}  runc.arm64\n{}  runc.armhf\n",
        sha(&script("runc", "amd64", 4_000)),
        sha(&script("runc", "arm64", 4_000)),
        sha(b"armhf")
    );
    server.put(&format!("/runc/v{rv}/runc.sha256sum"), sums);

    Published {
        expected,
        artifact_paths,
        checksum_paths,
    }
}
