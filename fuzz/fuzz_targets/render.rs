//! Arbitrary template overrides through the whole render, as `--templates DIR` feeds them:
//! the first byte picks the template the rest replaces, written as a file into a templates
//! directory; then `Templates::load` (the file checks, the parser, the sandbox's structure
//! checks) and `render::plan` of the example inventory with a real PKI. Any panic, stack
//! overflow, hang or out-of-memory is a bug, and so is the encryption key in an error
//! message or in any file but the encryption config.
#![no_main]

use k8s_boot::inventory::Cluster;
use k8s_boot::pki::{Options, Pki};
use k8s_boot::render::{self, Templates};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Templates an override may replace here: those with key material and a few without.
const TARGETS: &[&str] = &[
    "node/kubelet.yaml",
    "control-plane/encryption-config.yaml",
    "kubeconfig.yaml",
    "manifests/40-metrics-server.yaml",
    "manifests/30-chat.yaml",
    "lb/nginx.conf",
    "etcd/etcd.service",
];

struct Fixture {
    _dir: tempfile::TempDir,
    cluster: Cluster,
    pki: Pki,
    templates: PathBuf,
    encryption_key: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cluster =
            Cluster::from_source(Path::new("hosts.yaml"), k8s_boot::EXAMPLE_INVENTORY).unwrap();
        let pki = Pki::new(dir.path().join("pki"));
        pki.ensure(&cluster, Options::default()).unwrap();
        let encryption_key = std::fs::read_to_string(dir.path().join("pki/encryption.key"))
            .unwrap()
            .trim()
            .to_string();
        let templates = dir.path().join("templates");
        Fixture {
            _dir: dir,
            cluster,
            pki,
            templates,
            encryption_key,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let name = TARGETS[usize::from(pick) % TARGETS.len()];
    let _ = std::fs::remove_dir_all(&f.templates);
    let path = f.templates.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    let templates = match Templates::load(Some(&f.templates)) {
        Ok(t) => t,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    match render::plan(&f.cluster, &f.pki, &templates) {
        Ok(plan) => {
            for h in &plan.hosts {
                for file in &h.files {
                    if file.path != "/etc/kubernetes/encryption-config.yaml" {
                        let text = String::from_utf8_lossy(&file.bytes);
                        assert!(
                            !text.contains(&f.encryption_key),
                            "{name}: the encryption key reached {}",
                            file.path
                        );
                    }
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.contains(&f.encryption_key),
                "{name}: the encryption key is in the error: {msg}"
            );
        }
    }
});
