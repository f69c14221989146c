//! Pushing the lab's image archives (OCI image layouts, as `fetch` and the lab build write
//! them) into the lab's registry over its HTTP API: each blob the registry lacks (HEAD),
//! uploaded in one PUT; then the manifest under its tag. The registry checks every digest.

use super::error::LabError;
use crate::fetch::ImageRef;
use crate::oci::CONTAINERD_NAME_ANNOTATION;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// JSON blobs (manifests, configs) are at most this big; larger blobs are layers.
const SMALL_BLOB: u64 = 1 << 20;

/// A registry reachable at `base` (`https://10.77.0.11:5000`), trusted through `ca_pem`.
pub struct Registry {
    agent: ureq::Agent,
    base: String,
}

/// What one push did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `registry.k8s.io/pause:3.10.2`, the images of the archive.
    pub images: Vec<String>,
    /// Blobs uploaded (the others were there already).
    pub blobs: usize,
    pub bytes: u64,
}

/// A manifest of the archive's `index.json`: where it goes and what it is.
struct Entry {
    image: String,
    repository: String,
    tag: String,
    digest: String,
    media_type: String,
}

impl Registry {
    pub fn new(base: &str, ca_pem: &[u8]) -> Result<Registry, LabError> {
        let mut roots = rustls::RootCertStore::empty();
        for pem in x509_parser::pem::Pem::iter_from_buffer(ca_pem) {
            let pem = pem.map_err(|e| options(format!("the lab registry's CA: {e}")))?;
            roots
                .add(pem.contents.into())
                .map_err(|e| options(format!("the lab registry's CA: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| options(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(60))
            .redirects(0)
            .build();
        Ok(Registry {
            agent,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// Whether the registry answers its API (`GET /v2/`).
    pub fn answers(&self) -> bool {
        self.agent.get(&format!("{}/v2/", self.base)).call().is_ok()
    }

    /// Pushes every image of the archive at `path` under its full name as the repository
    /// (`registry.k8s.io/pause`), so that one registry mirrors several upstream ones.
    pub fn push_archive(&self, path: &Path) -> Result<Pushed, LabError> {
        let (index, small) = read_small(path)?;
        let entries = entries(path, &index)?;
        let mut needed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &entries {
            let manifest = small
                .get(&e.digest)
                .ok_or_else(|| bad(path, format!("the manifest {} is not in it", e.digest)))?;
            let manifest: serde_json::Value = serde_json::from_slice(manifest)
                .map_err(|err| bad(path, format!("manifest {}: {err}", e.digest)))?;
            let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
            for d in std::iter::once(&manifest["config"]).chain(layers.iter()) {
                let digest = d["digest"]
                    .as_str()
                    .ok_or_else(|| bad(path, format!("manifest {} lacks a digest", e.digest)))?;
                let repos = needed.entry(digest.to_string()).or_default();
                if !self.has_blob(&e.repository, digest)? {
                    repos.push(e.repository.clone());
                }
            }
        }
        let mut pushed = Pushed::default();
        self.upload_blobs(path, &needed, &mut pushed)?;
        for e in &entries {
            let url = format!("{}/v2/{}/manifests/{}", self.base, e.repository, e.tag);
            self.agent
                .put(&url)
                .set("Content-Type", &e.media_type)
                .send_bytes(&small[&e.digest])
                .map_err(|err| http(&url, err))?;
            pushed.images.push(e.image.clone());
        }
        Ok(pushed)
    }

    /// The digest the registry serves for `repository:tag` (`None`: it has no such tag).
    pub fn manifest_digest(&self, repository: &str, tag: &str) -> Result<Option<String>, LabError> {
        let url = format!("{}/v2/{repository}/manifests/{tag}", self.base);
        let accept = [
            crate::oci::MANIFEST_MEDIA_TYPE,
            crate::oci::INDEX_MEDIA_TYPE,
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ]
        .join(", ");
        match self.agent.head(&url).set("Accept", &accept).call() {
            Ok(r) => Ok(r.header("Docker-Content-Digest").map(str::to_string)),
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(err) => Err(http(&url, err)),
        }
    }

    fn has_blob(&self, repository: &str, digest: &str) -> Result<bool, LabError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        match self.agent.head(&url).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404, _)) => Ok(false),
            Err(err) => Err(http(&url, err)),
        }
    }

    /// One pass over the archive: each blob some repository lacks goes up as it is read.
    fn upload_blobs(
        &self,
        path: &Path,
        needed: &BTreeMap<String, Vec<String>>,
        pushed: &mut Pushed,
    ) -> Result<(), LabError> {
        if needed.values().all(Vec::is_empty) {
            return Ok(());
        }
        let mut archive = open(path)?;
        for entry in archive.entries().map_err(read_err(path))? {
            let mut entry = entry.map_err(read_err(path))?;
            let digest = match blob_digest(&entry) {
                Some(d) => d,
                None => continue,
            };
            let Some(repos) = needed.get(&digest).filter(|r| !r.is_empty()) else {
                continue;
            };
            let size = entry.size();
            // One read of the tar: the blob is kept in memory only when two repositories
            // lack it (a shared base layer), else streamed.
            if repos.len() == 1 {
                self.put_blob(&repos[0], &digest, size, &mut entry)?;
            } else {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(read_err(path))?;
                for repo in repos {
                    self.put_blob(repo, &digest, size, &mut bytes.as_slice())?;
                }
            }
            pushed.blobs += repos.len();
            pushed.bytes += size * repos.len() as u64;
        }
        Ok(())
    }

    fn put_blob(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        body: &mut dyn Read,
    ) -> Result<(), LabError> {
        let start = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let started = self
            .agent
            .post(&start)
            .set("Content-Length", "0")
            .call()
            .map_err(|err| http(&start, err))?;
        let location = started
            .header("Location")
            .ok_or_else(|| options(format!("{start}: the registry gave no upload location")))?;
        let mut url = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_string()
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={digest}"));
        self.agent
            .put(&url)
            .set("Content-Type", "application/octet-stream")
            .set("Content-Length", &size.to_string())
            .send(body)
            .map_err(|err| http(&url, err))?;
        Ok(())
    }
}

fn open(path: &Path) -> Result<tar::Archive<io::BufReader<fs::File>>, LabError> {
    let f = fs::File::open(path).map_err(read_err(path))?;
    Ok(tar::Archive::new(io::BufReader::new(f)))
}

/// `sha256:<hex>` of a `blobs/sha256/<hex>` entry.
fn blob_digest<R: Read>(entry: &tar::Entry<R>) -> Option<String> {
    let name = entry.path().ok()?.to_string_lossy().into_owned();
    let hex = name
        .trim_start_matches("./")
        .strip_prefix("blobs/sha256/")?;
    Some(format!("sha256:{hex}"))
}

/// Blobs by digest.
type Blobs = BTreeMap<String, Vec<u8>>;

/// `index.json` and every small blob.
fn read_small(path: &Path) -> Result<(Vec<u8>, Blobs), LabError> {
    let mut index = None;
    let mut small = BTreeMap::new();
    let mut archive = open(path)?;
    for entry in archive.entries().map_err(read_err(path))? {
        let mut entry = entry.map_err(read_err(path))?;
        let name = entry
            .path()
            .map_err(read_err(path))?
            .to_string_lossy()
            .into_owned();
        let digest = blob_digest(&entry);
        let wanted = name.trim_start_matches("./") == "index.json"
            || (digest.is_some() && entry.size() <= SMALL_BLOB);
        if !wanted {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(read_err(path))?;
        match digest {
            Some(d) => {
                small.insert(d, bytes);
            }
            None => index = Some(bytes),
        }
    }
    let index = index.ok_or_else(|| bad(path, "it has no index.json".into()))?;
    Ok((index, small))
}

/// The manifests `index.json` names, each with its image name.
fn entries(path: &Path, index: &[u8]) -> Result<Vec<Entry>, LabError> {
    let index: serde_json::Value =
        serde_json::from_slice(index).map_err(|e| bad(path, format!("index.json: {e}")))?;
    let list = index["manifests"]
        .as_array()
        .ok_or_else(|| bad(path, "index.json lists no manifests".into()))?;
    list.iter()
        .map(|m| {
            let image = m["annotations"][CONTAINERD_NAME_ANNOTATION]
                .as_str()
                .ok_or_else(|| {
                    bad(
                        path,
                        format!("a manifest lacks {CONTAINERD_NAME_ANNOTATION}"),
                    )
                })?;
            let parsed = ImageRef::parse(image).map_err(|e| bad(path, e.to_string()))?;
            let field = |key: &str| {
                m[key]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(path, format!("a manifest lacks `{key}`")))
            };
            Ok(Entry {
                image: parsed.full(),
                repository: format!("{}/{}", parsed.registry, parsed.repository),
                tag: parsed.tag.clone(),
                digest: field("digest")?,
                media_type: field("mediaType")?,
            })
        })
        .collect()
}

fn options(message: String) -> LabError {
    LabError::Registry(message)
}

fn bad(path: &Path, message: String) -> LabError {
    LabError::Registry(format!("image archive {}: {message}", path.display()))
}

fn read_err(path: &Path) -> impl Fn(io::Error) -> LabError + '_ {
    move |e| super::error::io_err("cannot read", path)(e)
}

fn http(url: &str, err: ureq::Error) -> LabError {
    let detail = match err {
        ureq::Error::Status(code, response) => {
            let body = response.into_string().unwrap_or_default();
            format!("HTTP {code}: {}", body.trim())
        }
        ureq::Error::Transport(t) => t.to_string(),
    };
    LabError::Registry(format!("{url}: {detail}"))
}
