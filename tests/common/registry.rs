//! A fixture container registry (no internet here, and tests must never reach the real
//! registries): three HTTP/1.1 servers on 127.0.0.1.
//! - a registry that answers `/v2/...` only with `Authorization: Bearer <token>` and otherwise
//!   sends `401` with a `WWW-Authenticate: Bearer realm=...` challenge;
//! - a token endpoint (the realm) that hands out the token anonymously;
//! - a blob store on another port that the registry can redirect a blob to, recording the
//!   headers it gets, so a test can assert that no `Authorization` header reaches it.
//!
//! The images are stand-ins ([`build_image`]): an OCI index with an OCI manifest, a Docker
//! manifest list with a Docker v2 manifest, or a single-platform Docker v2 manifest, with
//! arbitrary bytes as layers (fetch checks digests, not layer contents). Used by
//! tests/fetch_images.rs and tests/lab_fetch.rs.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use super::releases::sha;

pub const TOKEN: &str = "fixture-token-1";

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 server: one request per connection, a handler decides the answer.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Req {
    pub path: String,
    /// Lowercase names.
    pub headers: BTreeMap<String, String>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub struct Resp {
    pub status: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send only this many body bytes, then drop the connection.
    pub cut: Option<usize>,
}

impl Resp {
    pub fn new(status: &'static str, body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: body.into(),
            cut: None,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Resp {
        self.headers.push((name.into(), value.into()));
        self
    }
}

pub type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

pub struct Server {
    pub base: String,
    log: Arc<Mutex<Vec<Req>>>,
}

impl Server {
    pub fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (h, l) = (handler.clone(), l.clone());
                thread::spawn(move || {
                    let _ = serve(conn, &h, &l);
                });
            }
        });
        Server { base, log }
    }

    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    pub fn hits(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }
}

fn serve(conn: TcpStream, handler: &Handler, log: &Mutex<Vec<Req>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let req = Req { path, headers };
    log.lock().unwrap().push(req.clone());
    let resp = handler(&req);
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    match resp.cut {
        Some(n) => {
            out.write_all(&resp.body[..n.min(resp.body.len())])?;
            out.flush()?;
            out.shutdown(Shutdown::Both)?;
        }
        None => out.write_all(&resp.body)?,
    }
    Ok(())
}

/// A body with `Range: bytes=N-` support (206, or 416 beyond the end).
pub fn ranged(req: &Req, bytes: &[u8], content_type: &str, cut: Option<usize>) -> Resp {
    let len = bytes.len();
    let from = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let mut resp = match from {
        Some(n) if n >= len => {
            return Resp::new("416 Range Not Satisfiable", Vec::new())
                .header("Content-Range", &format!("bytes */{len}"))
        }
        Some(n) => Resp::new("206 Partial Content", bytes[n..].to_vec())
            .header("Content-Range", &format!("bytes {n}-{}/{len}", len - 1)),
        None => Resp::new("200 OK", bytes.to_vec()),
    };
    resp = resp.header("Content-Type", content_type);
    resp.cut = cut;
    resp
}

// ---------------------------------------------------------------------------------------------
// Fixture registry
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub struct Registry {
    /// Request path -> (content type, body), manifests and blobs alike.
    pub files: HashMap<String, (String, Vec<u8>)>,
    /// Request path -> URL to redirect to (307).
    pub redirects: HashMap<String, String>,
    /// Blob store path -> body.
    pub store: HashMap<String, Vec<u8>>,
    /// Path (registry or store) -> body bytes to send before dropping the connection, once.
    pub cut_once: HashMap<String, usize>,
    pub realm: String,
}

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha(bytes))
}

/// Bytes that do not compress and differ per seed, `len` long.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One stand-in image as the fixture registry serves it.
#[derive(Clone)]
pub struct Image {
    pub reference: &'static str,
    /// Repository path in registry URLs (mirror prefix included).
    pub repo: String,
    pub tag: &'static str,
    /// What the tag resolves to (index, or the manifest itself) and its digest.
    pub top: Vec<u8>,
    pub top_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub manifest_type: &'static str,
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    /// Where its archive goes, under the binaries directory (`images` unless a test moves it).
    pub images_dir: &'static str,
}

impl Image {
    pub fn blobs(&self) -> Vec<&[u8]> {
        std::iter::once(self.config.as_slice())
            .chain(self.layers.iter().map(Vec::as_slice))
            .collect()
    }
    pub fn blob_path(&self, bytes: &[u8]) -> String {
        format!("/v2/{}/blobs/{}", self.repo, digest(bytes))
    }
    pub fn archive(&self, dir: &Path) -> PathBuf {
        let name: String = self
            .reference
            .chars()
            .map(|c| if c == '/' || c == ':' { '_' } else { c })
            .collect();
        dir.join(self.images_dir).join(format!("{name}.tar"))
    }
}

pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest(bytes), "size": bytes.len()})
}

/// `index`: wrap the amd64 manifest in an index (with an arm64 sibling) of `index_type`.
pub fn build_image(
    reference: &'static str,
    repo: &str,
    tag: &'static str,
    seed: u64,
    layer_sizes: &[usize],
    oci: bool,
    index: bool,
) -> Image {
    let (manifest_type, config_type, layer_type, index_type) = if oci {
        (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            OCI_INDEX,
        )
    } else {
        (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            DOCKER_LIST,
        )
    };
    let layers: Vec<Vec<u8>> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, n)| noise(seed * 100 + i as u64, *n))
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [format!("/{tag}")]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| digest(l)).collect::<Vec<_>>()},
    }))
    .unwrap();
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": descriptor(config_type, &config),
        "layers": layers.iter().map(|l| descriptor(layer_type, l)).collect::<Vec<_>>(),
    }))
    .unwrap();
    let (top, top_digest) = if index {
        let arm = format!("{{\"schemaVersion\":2,\"note\":\"arm64 of {reference}\"}}");
        let mut amd = descriptor(manifest_type, &manifest);
        amd["platform"] = json!({"architecture": "amd64", "os": "linux"});
        let mut arm64 = descriptor(manifest_type, arm.as_bytes());
        arm64["platform"] = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
        let top = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": index_type,
            "manifests": [arm64, amd],
        }))
        .unwrap();
        let d = digest(&top);
        (top, d)
    } else {
        (manifest.clone(), digest(&manifest))
    };
    Image {
        reference,
        repo: repo.to_string(),
        tag,
        top,
        top_digest,
        manifest_digest: digest(&manifest),
        manifest,
        manifest_type,
        config,
        layers,
        images_dir: "images",
    }
}

// ---------------------------------------------------------------------------------------------
// The three servers
// ---------------------------------------------------------------------------------------------

/// The registry, its token endpoint and its blob store, serving what `state` holds.
pub struct FixtureRegistry {
    pub registry: Server,
    pub tokens: Server,
    pub store: Server,
    pub state: Arc<Mutex<Registry>>,
}

impl FixtureRegistry {
    /// The three servers, serving no image yet.
    pub fn start() -> FixtureRegistry {
        let state = Arc::new(Mutex::new(Registry::default()));

        // The blob store: serves what it has, no authentication.
        let st = state.clone();
        let store = Server::start(Arc::new(move |req: &Req| {
            let mut s = st.lock().unwrap();
            let path = req.path.split('?').next().unwrap_or("").to_string();
            let cut = s.cut_once.remove(&path);
            match s.store.get(&path) {
                Some(b) => ranged(req, b, "application/octet-stream", cut),
                None => Resp::new("404 Not Found", "no such blob\n"),
            }
        }));

        // The token endpoint.
        let tokens = Server::start(Arc::new(move |req: &Req| {
            if req.path.starts_with("/token?") {
                return Resp::new(
                    "200 OK",
                    format!("{{\"token\":\"{TOKEN}\",\"expires_in\":300}}"),
                )
                .header("Content-Type", "application/json");
            }
            Resp::new("404 Not Found", "not found\n")
        }));

        // The registry: every /v2/ request needs the bearer token.
        let st = state.clone();
        let registry = Server::start(Arc::new(move |req: &Req| {
            let mut s = st.lock().unwrap();
            if !req.path.starts_with("/v2/") {
                return Resp::new("404 Not Found", "not found\n");
            }
            if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
                let repo = req.path["/v2/".len()..]
                    .rsplit_once("/manifests/")
                    .or_else(|| req.path["/v2/".len()..].rsplit_once("/blobs/"))
                    .map_or("", |(r, _)| r)
                    .to_string();
                let challenge = format!(
                    "Bearer realm=\"{}\",service=\"fixture-registry\",scope=\"repository:{repo}:pull\"",
                    s.realm
                );
                return Resp::new(
                    "401 Unauthorized",
                    "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
                )
                .header("WWW-Authenticate", &challenge)
                .header("Content-Type", "application/json");
            }
            if let Some(to) = s.redirects.get(&req.path) {
                return Resp::new("307 Temporary Redirect", Vec::new()).header("Location", to);
            }
            let cut = s.cut_once.remove(&req.path);
            match s.files.get(&req.path) {
                Some((ct, b)) => ranged(req, b, ct, cut),
                None => Resp::new(
                    "404 Not Found",
                    "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}",
                ),
            }
        }));
        state.lock().unwrap().realm = format!("{}/token", tokens.base);
        FixtureRegistry {
            registry,
            tokens,
            store,
            state,
        }
    }

    /// Serves `img`: its tag, its platform manifest by digest, and its blobs.
    pub fn serve(&self, img: &Image) {
        let mut s = self.state.lock().unwrap();
        let top_type = if img.top == img.manifest {
            img.manifest_type
        } else if img.manifest_type == OCI_MANIFEST {
            OCI_INDEX
        } else {
            DOCKER_LIST
        };
        s.files.insert(
            format!("/v2/{}/manifests/{}", img.repo, img.tag),
            (top_type.into(), img.top.clone()),
        );
        s.files.insert(
            format!("/v2/{}/manifests/{}", img.repo, img.manifest_digest),
            (img.manifest_type.into(), img.manifest.clone()),
        );
        for b in img.blobs() {
            s.files.insert(
                img.blob_path(b),
                ("application/octet-stream".into(), b.to_vec()),
            );
        }
    }

    /// Moves `blob` of `img` to the blob store, to which the registry redirects (307) with a
    /// signed-looking URL; returns the registry path and the store path.
    pub fn redirect_to_store(&self, img: &Image, blob: &[u8]) -> (String, String) {
        let mut s = self.state.lock().unwrap();
        let from = img.blob_path(blob);
        let to_path = format!("/store/{}", sha(blob));
        s.files.remove(&from);
        s.store.insert(to_path.clone(), blob.to_vec());
        s.redirects.insert(
            from.clone(),
            format!("{}{to_path}?signature=fixture", self.store.base),
        );
        (from, to_path)
    }
}
