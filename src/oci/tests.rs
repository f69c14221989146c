//! Test helpers for image archives, shared with the lab's image tests: a strict tar reader,
//! an archive opener that checks every digest, and an independent check with python3.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use flate2::read::GzDecoder;

use super::{digest_of, Entry, CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};

/// Every entry of a tar: path -> (type, mode, uid, gid, mtime, content or link target).
pub(crate) type TarEntries = BTreeMap<String, (tar::EntryType, u32, u64, u64, u64, Vec<u8>)>;

pub(crate) fn read_tar(bytes: &[u8]) -> TarEntries {
    let mut out = BTreeMap::new();
    let mut order = Vec::new();
    let mut ar = tar::Archive::new(bytes);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let h = e.header().clone();
        let mut data = Vec::new();
        if h.entry_type() == tar::EntryType::Symlink {
            data = e
                .link_name()
                .unwrap()
                .unwrap()
                .to_string_lossy()
                .into_owned()
                .into_bytes();
        } else {
            e.read_to_end(&mut data).unwrap();
        }
        order.push(path.clone());
        let prev = out.insert(
            path,
            (
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                data,
            ),
        );
        assert!(prev.is_none(), "duplicate entry");
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "entries are sorted by path");
    out
}

pub(crate) fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// The parsed image of an archive: (index, manifest, config, layer tars uncompressed),
/// every digest and size checked against the blob it names.
pub(crate) fn open_archive(
    bytes: &[u8],
) -> (
    serde_json::Value,
    serde_json::Value,
    serde_json::Value,
    Vec<Vec<u8>>,
) {
    let files = read_tar(bytes);
    for (path, (kind, mode, uid, gid, mtime, _)) in &files {
        assert_eq!((*uid, *gid, *mtime), (0, 0, 0), "{path}");
        let want = if path.ends_with('/') { 0o755 } else { 0o644 };
        assert_eq!(*mode, want, "{path}");
        assert!(
            matches!(kind, tar::EntryType::Regular | tar::EntryType::Directory),
            "{path}"
        );
    }
    assert_eq!(
        files["oci-layout"].5,
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()
    );
    for (path, f) in &files {
        if let Some(h) = path.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(
                crate::digest::sha256_hex(&f.5),
                h,
                "blob named by its digest"
            );
        }
    }
    let blob = |d: &serde_json::Value| -> Vec<u8> {
        let d = d.as_object().unwrap();
        let digest = d["digest"].as_str().unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        let b = files[&format!("blobs/sha256/{hex}")].5.clone();
        assert_eq!(d["size"].as_u64().unwrap(), b.len() as u64, "{digest}");
        b
    };
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"].5).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(&index["manifests"][0])).unwrap();
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    let config: serde_json::Value = serde_json::from_slice(&blob(&manifest["config"])).unwrap();
    let mut layers = Vec::new();
    for (l, diff_id) in manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
    {
        assert_eq!(l["mediaType"], LAYER_MEDIA_TYPE);
        let tar = gunzip(&blob(l));
        assert_eq!(diff_id.as_str().unwrap(), digest_of(&tar), "diff_id");
        layers.push(tar);
    }
    assert_eq!(
        layers.len(),
        config["rootfs"]["diff_ids"].as_array().unwrap().len()
    );
    (index, manifest, config, layers)
}

pub(crate) fn sample(dir: &Path) -> Vec<Entry> {
    let src = dir.join("prog");
    fs::write(&src, b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o600)).unwrap();
    vec![
        Entry::bytes("/etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644),
        Entry::file("/usr/local/bin/prog", &src, 0o755).with_xattr(
            "security.capability",
            [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        Entry::symlink("/usr/bin/prog", "../local/bin/prog"),
        Entry::dir("/tmp", 0o1777),
    ]
}

/// Checks an archive with an independent reader (python3's tarfile, gzip, json, hashlib):
/// every digest and size, the diff_ids, the annotations. Prints `name tag` and the layer
/// paths with their modes.
pub(crate) fn python_check(archive: &Path) -> String {
    const SCRIPT: &str = r#"
import gzip, hashlib, io, json, sys, tarfile
t = tarfile.open(sys.argv[1])
files = {m.name.rstrip("/"): m for m in t.getmembers()}
def blob(d):
    data = t.extractfile(files["blobs/sha256/" + d["digest"].split(":", 1)[1]]).read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == d["digest"], d
    assert len(data) == d["size"], d
    return data
layout = json.loads(t.extractfile(files["oci-layout"]).read())
assert layout == {"imageLayoutVersion": "1.0.0"}, layout
index = json.loads(t.extractfile(files["index.json"]).read())
(desc,) = index["manifests"]
a = desc["annotations"]
print(a["io.containerd.image.name"], a["org.opencontainers.image.ref.name"])
manifest = json.loads(blob(desc))
config = json.loads(blob(manifest["config"]))
assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"])
for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
    raw = gzip.decompress(blob(layer))
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
    for m in tarfile.open(fileobj=io.BytesIO(raw)).getmembers():
        assert m.uid == 0 and m.gid == 0 and m.mtime == 0, m.name
        x = sorted(k + "=" + v.encode("utf-8", "surrogateescape").hex() for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr."))
        print(m.name, oct(m.mode), m.type.decode(), m.linkname, *x)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(archive)
        .output()
        .expect("python3 runs (Debian package python3)");
    assert!(
        out.status.success(),
        "python3 check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
