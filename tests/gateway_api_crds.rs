//! The Gateway API CRDs k8s-boot applies (`templates/manifests/05-gateway-api-crds.yaml`)
//! are upstream's, unchanged: the standard channel's files of the pinned module, in the
//! order of its kustomization. The module comes from the Go module proxy (Go is on every
//! machine the tests run on: the lab builds with it).

use std::path::PathBuf;
use std::process::Command;

const MODULE: &str = "sigs.k8s.io/gateway-api@v1.4.0";
const VENDORED: &str = include_str!("../templates/manifests/05-gateway-api-crds.yaml");

fn module_dir() -> PathBuf {
    let out = Command::new("go")
        .args(["mod", "download", "-json", MODULE])
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("go (1.26) on PATH: the tests need it, as the lab does");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(info["Dir"].as_str().expect("the module's directory"))
}

#[test]
fn the_vendored_crds_are_the_modules_standard_channel() {
    let crd = module_dir().join("config/crd");
    let kustomization = std::fs::read_to_string(crd.join("kustomization.yaml")).unwrap();
    let mut upstream = String::new();
    for file in kustomization.lines().filter_map(|l| l.strip_prefix("- ")) {
        assert!(file.starts_with("standard/"), "{file}");
        upstream.push_str("---\n");
        upstream.push_str(&std::fs::read_to_string(crd.join(file)).unwrap());
    }
    // The header says where they come from; everything after it is upstream's.
    let body = &VENDORED[VENDORED.find("---\n").expect("a document")..];
    assert!(VENDORED[..VENDORED.len() - body.len()]
        .lines()
        .all(|l| l.starts_with('#')));
    assert_eq!(body.len(), upstream.len());
    assert!(body == upstream, "the vendored CRDs differ from {MODULE}");
    assert_eq!(
        body.matches("\nkind: CustomResourceDefinition\n").count(),
        6
    );
    // Rendered as a template: nothing in it may look like template syntax.
    for marker in ["{{", "{%", "{#"] {
        assert!(!VENDORED.contains(marker), "{marker}");
    }
}
