//! `fetch` of container images against the fixture registry of `common::registry` (no
//! internet here, and tests must never reach the real registries): a registry that wants an
//! anonymous bearer token, its token endpoint, and a blob store on another port that the
//! registry redirects one blob to, so the test can assert that no `Authorization` header
//! reaches it. The one release binary the run needs comes from `common::releases`.
//!
//! The images are stand-ins built by the test: an OCI index with an OCI manifest, a Docker
//! manifest list with a Docker v2 manifest, and a single-platform Docker v2 manifest, with
//! arbitrary bytes as layers (fetch checks digests, not layer contents).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::registry::{
    build_image, digest, FixtureRegistry, Image, Registry, Req, Resp, Server, DOCKER_MANIFEST,
    TOKEN,
};
use common::releases::{self, sha};
use k8s_boot::fetch::{
    fetch, read_manifest, FetchError, FetchOptions, FetchReport, ImageSpec, Mirrors, Outcome,
    ReleaseGroup,
};
use serde_json::{json, Value};

const K8S: &str = "v1.36.0";
const PAUSE: &str = "registry.k8s.io/pause:3.10.2";
const FLANNEL: &str = "ghcr.io/flannel-io/flannel:v0.28.10";
const NODE: &str = "docker.io/library/node:24-bookworm-slim";

struct Fixture {
    registry: Server,
    tokens: Server,
    store: Server,
    state: Arc<Mutex<Registry>>,
    /// Serves the runc release the run needs.
    _releases: releases::Server,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    opts: FetchOptions,
    pause: Image,
    flannel: Image,
    node: Image,
    /// Registry path of the flannel layer that is redirected to the blob store, and the
    /// store path it goes to.
    redirected: (String, String),
}
fn fixture() -> Fixture {
    let served = FixtureRegistry::start();
    let pause = build_image(PAUSE, "pause", "3.10.2", 1, &[30_000], true, true);
    let flannel = build_image(
        FLANNEL,
        "flannel-io/flannel",
        "v0.28.10",
        2,
        &[20_000, 300_000],
        false,
        true,
    );
    // Docker Hub through a mirror with a path: /v2/hub/library/node/...
    let node = Image {
        images_dir: k8s_boot::conformance::IMAGES_DIR,
        ..build_image(
            NODE,
            "hub/library/node",
            "24-bookworm-slim",
            3,
            &[50_000, 10_000],
            false,
            false,
        )
    };
    for img in [&pause, &flannel, &node] {
        served.serve(img);
    }
    // The big flannel layer lives in the blob store; the registry redirects to it.
    let redirected = served.redirect_to_store(&flannel, &flannel.layers[1]);
    let FixtureRegistry {
        registry,
        tokens,
        store,
        state,
    } = served;
    let releases = releases::Server::start();
    releases::publish(&releases, K8S, "amd64");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("binaries");
    let mut opts = FetchOptions::new(K8S, &dir);
    opts.mirror = Mirrors::under(&releases.base);
    opts.components = vec![ReleaseGroup::Runc];
    let reg = &registry.base;
    opts.mirror.registries = [
        ("registry.k8s.io".to_string(), reg.clone()),
        ("ghcr.io".to_string(), reg.clone()),
        ("docker.io".to_string(), format!("{reg}/hub/")),
    ]
    .into();
    opts.images = vec![
        ImageSpec {
            digest: Some(pause.top_digest.clone()),
            ..ImageSpec::pinned(PAUSE)
        },
        ImageSpec {
            digest: None,
            ..ImageSpec::pinned(FLANNEL)
        },
        // Short form: normalized to docker.io/library/node. Its archive goes where a
        // conformance run's images go, as `fetch --conformance` asks for those.
        ImageSpec {
            digest: None,
            dir: k8s_boot::conformance::IMAGES_DIR,
            ..ImageSpec::pinned("node:24-bookworm-slim")
        },
    ];
    Fixture {
        registry,
        tokens,
        store,
        state,
        _releases: releases,
        _tmp: tmp,
        dir,
        opts,
        pause,
        flannel,
        node,
        redirected,
    }
}

impl Fixture {
    fn run(&self) -> (Result<FetchReport, FetchError>, Vec<String>) {
        let mut lines = Vec::new();
        let r = fetch(&self.opts, &mut |l: &str| lines.push(l.to_string()));
        (r, lines)
    }

    fn images(&self) -> [&Image; 3] {
        [&self.pause, &self.flannel, &self.node]
    }

    fn all_requests(&self) -> usize {
        self.registry.requests().len()
            + self.store.requests().len()
            + self
                .tokens
                .requests()
                .iter()
                .filter(|r| r.path.starts_with("/token"))
                .count()
    }
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

/// Reads an archive back: entry path -> bytes.
fn read_archive(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut tar = tar::Archive::new(fs::File::open(path).unwrap());
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

fn outcomes(report: &FetchReport) -> BTreeMap<String, Outcome> {
    report
        .images
        .iter()
        .map(|(n, o, _)| (n.clone(), *o))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn fetches_verifies_and_archives_images_as_oci_layouts() {
    let f = fixture();
    let (r, lines) = f.run();
    let report = r.unwrap();

    // One row per image, all downloaded; every blob byte counted.
    let o = outcomes(&report);
    assert_eq!(o.len(), 3, "{:?}", report.images);
    for img in f.images() {
        assert_eq!(o[img.reference], Outcome::Downloaded, "{}", img.reference);
    }
    let blob_bytes: usize = f
        .images()
        .iter()
        .flat_map(|i| i.blobs())
        .map(<[u8]>::len)
        .sum();
    let runc_bytes = fs::metadata(f.dir.join("runc")).unwrap().len();
    assert_eq!(report.transferred, blob_bytes as u64 + runc_bytes);

    let m = read_manifest(&f.dir).unwrap();
    for img in f.images() {
        // A valid OCI layout: oci-layout, index.json, and exactly the manifest, config and
        // layer blobs, each named by its sha256.
        let archive = img.archive(&f.dir);
        let entries = read_archive(&archive);
        assert_eq!(
            serde_json::from_slice::<Value>(&entries["oci-layout"]).unwrap(),
            json!({"imageLayoutVersion": "1.0.0"})
        );
        let mut want: BTreeSet<String> = img
            .blobs()
            .iter()
            .map(|b| format!("blobs/sha256/{}", sha(b)))
            .collect();
        want.insert(format!("blobs/sha256/{}", sha(&img.manifest)));
        let have: BTreeSet<String> = entries
            .keys()
            .filter(|k| k.starts_with("blobs/sha256/") && k.len() > "blobs/sha256/".len())
            .cloned()
            .collect();
        assert_eq!(have, want, "{}", img.reference);
        for (name, bytes) in &entries {
            if let Some(hex) = name.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
                assert_eq!(sha(bytes), hex, "{name} in {}", img.reference);
            }
        }
        // The platform manifest exactly as the registry sent it.
        assert_eq!(
            entries[&format!("blobs/sha256/{}", sha(&img.manifest))],
            img.manifest
        );
        let index: Value = serde_json::from_slice(&entries["index.json"]).unwrap();
        let d = &index["manifests"][0];
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(d["digest"], img.manifest_digest.as_str());
        assert_eq!(
            d["mediaType"], img.manifest_type,
            "registry media type kept"
        );
        assert_eq!(d["size"], img.manifest.len());
        assert_eq!(
            d["annotations"]["io.containerd.image.name"], img.reference,
            "named as containerd names it"
        );
        assert_eq!(
            d["annotations"]["org.opencontainers.image.ref.name"],
            img.tag
        );

        // Recorded in versions.json.
        let e = &m.images[img.reference];
        assert_eq!(e.digest, img.top_digest);
        assert_eq!(e.manifest_digest, img.manifest_digest);
        assert_eq!(e.arch, "amd64");
        assert_eq!(
            f.dir.join(&e.archive),
            archive,
            "archive path relative to the directory"
        );
        assert_eq!(e.archive_sha256, sha(&fs::read(&archive).unwrap()));
        assert!(e
            .url
            .ends_with(&format!("/v2/{}/manifests/{}", img.repo, img.tag)));
    }
    assert!(m.images[PAUSE].pinned);
    assert!(!m.images[FLANNEL].pinned && !m.images[NODE].pinned);
    // The single-platform node image: its digest is the manifest's.
    assert_eq!(m.images[NODE].digest, f.node.manifest_digest);

    // Trust on first use is said, for the unpinned images only.
    let warned: Vec<&String> = lines.iter().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warned.len(), 2, "{lines:#?}");
    assert!(warned
        .iter()
        .any(|l| l.contains(FLANNEL) && l.contains(&f.flannel.top_digest)));
    assert!(warned.iter().any(|l| l.contains(NODE)));
    assert!(
        lines
            .iter()
            .any(|l| l.contains(PAUSE) && l.contains("matches the pinned digest")),
        "{lines:#?}"
    );

    // The token came from the realm, anonymously, for each repository's scope.
    let token_requests: Vec<Req> = f
        .tokens
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/token?"))
        .collect();
    for repo in ["pause", "flannel-io/flannel", "hub/library/node"] {
        let scope = format!("scope=repository%3A{}%3Apull", repo.replace('/', "%2F"));
        assert!(
            token_requests
                .iter()
                .any(|r| r.path.contains(&scope) && r.path.contains("service=fixture-registry")),
            "{repo}: {token_requests:#?}"
        );
    }
    assert!(token_requests
        .iter()
        .all(|r| r.header("authorization").is_none()));
    // Every answered registry request carried the token.
    for r in f.registry.requests() {
        let with_token = r.header("authorization") == Some(&format!("Bearer {TOKEN}"));
        assert!(with_token || r.path.contains("/manifests/"), "{r:?}");
    }

    // The redirected blob: asked of the registry with the token, fetched from the store
    // without any Authorization header.
    let (from, to) = &f.redirected;
    assert!(f
        .registry
        .requests()
        .iter()
        .any(|r| &r.path == from && r.header("authorization").is_some()));
    let at_store: Vec<Req> = f
        .store
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(to.as_str()))
        .collect();
    assert_eq!(at_store.len(), 1, "{at_store:#?}");
    assert_eq!(
        at_store[0].header("authorization"),
        None,
        "{:?}",
        at_store[0]
    );

    // Blobs are kept, verified, in the cache; nothing half-done is left.
    let cache = walk(&f.dir.join(".cache/blobs/sha256"));
    for img in f.images() {
        for b in img.blobs() {
            assert!(cache.contains(&sha(b)), "{} blob missing", img.reference);
        }
    }
    let leftovers: Vec<String> = walk(&f.dir)
        .into_iter()
        .filter(|n| n.ends_with(".part") || n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_second_run_transfers_nothing_and_a_lost_archive_is_rebuilt_from_the_cache() {
    let f = fixture();
    f.run().0.unwrap();
    let before = f.all_requests();
    let inode = |img: &Image| fs::metadata(img.archive(&f.dir)).unwrap().ino();
    let first: Vec<u64> = f.images().iter().map(|i| inode(i)).collect();

    let (r, lines) = f.run();
    let report = r.unwrap();
    assert_eq!(report.transferred, 0);
    assert!(
        outcomes(&report).values().all(|o| *o == Outcome::Cached),
        "{report:?}"
    );
    assert_eq!(
        f.all_requests(),
        before,
        "no registry, token or store request at all"
    );
    assert_eq!(
        f.images().iter().map(|i| inode(i)).collect::<Vec<_>>(),
        first
    );
    assert!(
        lines.iter().all(|l| !l.starts_with("warning:")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("{PAUSE}: cached ({})", f.pause.top_digest)),
        "{lines:#?}"
    );

    // A deleted archive comes back from the cached blobs: manifests are asked again, no blob.
    fs::remove_file(f.flannel.archive(&f.dir)).unwrap();
    // And a modified one is not trusted.
    fs::write(f.node.archive(&f.dir), b"tampered").unwrap();
    let blob_hits = |f: &Fixture| {
        f.registry
            .requests()
            .iter()
            .filter(|r| r.path.contains("/blobs/"))
            .count()
            + f.store.requests().len()
    };
    let blobs_before = blob_hits(&f);
    let report = f.run().0.unwrap();
    assert_eq!(report.transferred, 0);
    assert_eq!(blob_hits(&f), blobs_before);
    let o = outcomes(&report);
    assert_eq!(o[FLANNEL], Outcome::Cached);
    assert_eq!(o[NODE], Outcome::Cached);
    let entries = read_archive(&f.node.archive(&f.dir));
    assert_eq!(
        entries[&format!("blobs/sha256/{}", sha(&f.node.manifest))],
        f.node.manifest
    );
    assert!(f.flannel.archive(&f.dir).exists());
}

#[test]
fn a_tag_that_resolves_to_another_digest_than_the_pinned_one_is_refused() {
    let mut f = fixture();
    let wrong = digest(b"what the pin table says");
    f.opts.images[0].digest = Some(wrong.clone());
    let err = f.run().0.unwrap_err();
    let url = format!("{}/v2/pause/manifests/3.10.2", f.registry.base);
    match &err {
        FetchError::Image { image, error } => {
            assert_eq!(image, PAUSE);
            match error.as_ref() {
                FetchError::PinnedDigest {
                    url: u,
                    expected,
                    actual,
                } => {
                    assert_eq!(u, &url);
                    assert_eq!(expected, &wrong);
                    assert_eq!(actual, &f.pause.top_digest);
                }
                other => panic!("expected a pinned-digest refusal, got {other:?}"),
            }
        }
        other => panic!("expected an image error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(PAUSE)
            && msg.contains(&url)
            && msg.contains(&wrong)
            && msg.contains(&f.pause.top_digest),
        "{msg}"
    );
    // Nothing at the final name, nothing recorded, no blob of it even asked for.
    assert!(!f.pause.archive(&f.dir).exists());
    assert!(!read_manifest(&f.dir).unwrap().images.contains_key(PAUSE));
    for b in f.pause.blobs() {
        assert_eq!(f.registry.hits(&f.pause.blob_path(b)), 0);
    }
    assert!(!f.dir.join("images").exists() || walk(&f.dir.join("images")).is_empty());

    // An archive saved under an earlier pin is removed once the pin no longer matches it.
    f.opts.images[0].digest = Some(f.pause.top_digest.clone());
    f.run().0.unwrap();
    assert!(f.pause.archive(&f.dir).exists());
    f.opts.images[0].digest = Some(wrong);
    let (r, lines) = f.run();
    assert!(matches!(r, Err(FetchError::Image { .. })));
    assert!(!f.pause.archive(&f.dir).exists());
    assert!(!read_manifest(&f.dir).unwrap().images.contains_key(PAUSE));
    assert!(
        lines.iter().any(|l| l.contains("is not the pinned digest")),
        "{lines:#?}"
    );
}

#[test]
fn a_corrupted_blob_or_manifest_is_refused_and_nothing_is_saved() {
    let f = fixture();
    let layer = f.pause.layers[0].clone();
    let path = f.pause.blob_path(&layer);
    let mut bad = layer.clone();
    bad[100] ^= 0x01;
    f.state.lock().unwrap().files.insert(
        path.clone(),
        ("application/octet-stream".into(), bad.clone()),
    );
    let err = f.run().0.unwrap_err();
    match &err {
        FetchError::Image { image, error } => {
            assert_eq!(image, PAUSE);
            match error.as_ref() {
                FetchError::ChecksumMismatch {
                    url,
                    expected,
                    actual,
                } => {
                    assert_eq!(url, &format!("{}{path}", f.registry.base));
                    assert_eq!(expected, &digest(&layer));
                    assert_eq!(actual, &digest(&bad));
                }
                other => panic!("expected a checksum mismatch, got {other:?}"),
            }
        }
        other => panic!("expected an image error, got {other:?}"),
    }
    assert!(err.to_string().contains(PAUSE), "{err}");
    assert!(!f.pause.archive(&f.dir).exists());
    let cache = walk(&f.dir.join(".cache/blobs/sha256"));
    assert!(!cache.contains(&sha(&layer)) && !cache.contains(&sha(&bad)));
    assert!(cache.iter().all(|n| !n.ends_with(".part")), "{cache:?}");

    // A platform manifest that does not match the digest its index names.
    let f = fixture();
    let mpath = format!(
        "/v2/flannel-io/flannel/manifests/{}",
        f.flannel.manifest_digest
    );
    let mut other = f.flannel.manifest.clone();
    other.push(b'\n');
    f.state
        .lock()
        .unwrap()
        .files
        .insert(mpath.clone(), (DOCKER_MANIFEST.into(), other));
    let err = f.run().0.unwrap_err();
    assert!(
        matches!(&err, FetchError::Image { image, error }
            if image == FLANNEL
            && matches!(error.as_ref(), FetchError::ChecksumMismatch { url, .. } if url.ends_with(&mpath))),
        "{err:?}"
    );
    assert!(!f.flannel.archive(&f.dir).exists());
    // The pause image before it is complete and stays.
    assert!(f.pause.archive(&f.dir).exists());
}

#[test]
fn an_interrupted_blob_download_is_resumed_by_the_next_run() {
    let f = fixture();
    let (_, to) = f.redirected.clone();
    f.state.lock().unwrap().cut_once.insert(to.clone(), 100_000);
    let err = f.run().0.unwrap_err();
    assert!(
        matches!(&err, FetchError::Image { image, error }
            if image == FLANNEL && matches!(error.as_ref(), FetchError::Network { .. })),
        "{err:?}"
    );
    let big = &f.flannel.layers[1];
    let part = f
        .dir
        .join(".cache/blobs/sha256")
        .join(format!("{}.part", sha(big)));
    assert_eq!(fs::metadata(&part).unwrap().len(), 100_000);
    assert!(!f.flannel.archive(&f.dir).exists());

    let (r, lines) = f.run();
    let report = r.unwrap();
    assert_eq!(outcomes(&report)[FLANNEL], Outcome::Resumed);
    let resumed: Vec<Req> = f
        .store
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(to.as_str()) && r.header("range").is_some())
        .collect();
    assert_eq!(resumed.len(), 1, "{resumed:#?}");
    assert_eq!(resumed[0].header("range"), Some("bytes=100000-"));
    assert_eq!(resumed[0].header("authorization"), None);
    assert!(!part.exists());
    let entries = read_archive(&f.flannel.archive(&f.dir));
    assert_eq!(&entries[&format!("blobs/sha256/{}", sha(big))], big);
    // Only the rest of the blob was transferred, and the node image the first run did not get
    // to; the other flannel blobs and pause came from the cache.
    let node: usize = f.node.blobs().iter().map(|b| b.len()).sum();
    assert_eq!(report.transferred, (big.len() - 100_000 + node) as u64);
    assert_eq!(outcomes(&report)[PAUSE], Outcome::Cached);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("resuming blob") && l.contains("100.0 kB")),
        "{lines:#?}"
    );
}

#[test]
fn registry_errors_name_the_image_and_the_url() {
    let f = fixture();
    let path = "/v2/hub/library/node/manifests/24-bookworm-slim".to_string();
    f.state.lock().unwrap().files.remove(&path);
    let err = f.run().0.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(NODE)
            && msg.contains(&format!("{}{path}", f.registry.base))
            && msg.contains("HTTP 404"),
        "{msg}"
    );

    // A registry that wants credentials, not an anonymous token.
    let f = fixture();
    let reg = Server::start(Arc::new(|_req: &Req| {
        Resp::new("401 Unauthorized", "").header("WWW-Authenticate", "Basic realm=\"corp\"")
    }));
    let mut opts = f.opts.clone();
    opts.mirror
        .registries
        .insert("registry.k8s.io".into(), reg.base.clone());
    let mut lines = Vec::new();
    let err = fetch(&opts, &mut |l: &str| lines.push(l.to_string())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(PAUSE) && msg.contains(&reg.base) && msg.contains("Basic"),
        "{msg}"
    );

    // Bad references and mirrors are refused before any request or write.
    let mut f = fixture();
    f.opts.images.push(ImageSpec {
        digest: None,
        ..ImageSpec::pinned("registry.k8s.io/pause")
    });
    let err = f.run().0.unwrap_err();
    assert!(
        matches!(&err, FetchError::Reference { reference, .. } if reference == "registry.k8s.io/pause"),
        "{err:?}"
    );
    f.opts.images.pop();
    f.opts
        .mirror
        .registries
        .insert("quay.io".into(), "ftp://mirror".into());
    let err = f.run().0.unwrap_err();
    assert!(err.to_string().contains("ftp://mirror"), "{err}");
    assert_eq!(f.all_requests(), 0);
    assert!(!f.dir.exists());
}

#[test]
fn a_registry_that_redirects_its_api_gets_the_token_where_it_is_asked_for() {
    // Like registry.k8s.io, which sends clients to Artifact Registry: the front answers every
    // /v2/ request with a redirect, and the host it redirects to wants a token.
    let mut f = fixture();
    let target = f.registry.base.clone();
    let front = Server::start(Arc::new(move |req: &Req| {
        Resp::new("307 Temporary Redirect", Vec::new())
            .header("Location", &format!("{target}{}", req.path))
    }));
    f.opts
        .mirror
        .registries
        .insert("registry.k8s.io".into(), front.base.clone());
    f.opts.images.truncate(1);
    let report = f.run().0.unwrap();
    assert_eq!(outcomes(&report)[PAUSE], Outcome::Downloaded);
    // Only the first request goes through the front; the session then talks to the
    // redirected repository, with the token only ever sent there.
    assert_eq!(front.requests().len(), 1, "{:#?}", front.requests());
    assert_eq!(front.requests()[0].header("authorization"), None);
    for b in f.pause.blobs() {
        let asked: Vec<Req> = f
            .registry
            .requests()
            .into_iter()
            .filter(|r| r.path == f.pause.blob_path(b))
            .collect();
        assert_eq!(asked.len(), 1);
        assert_eq!(
            asked[0].header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let entries = read_archive(&f.pause.archive(&f.dir));
    assert_eq!(
        entries[&format!("blobs/sha256/{}", sha(&f.pause.manifest))],
        f.pause.manifest
    );
}
