//! Every kubeconfig `k8s-boot render` writes, read by the real kubectl and checked with the
//! real openssl: the right server per host, a user named after the certificate's CN, the
//! cluster CA embedded, a client certificate that verifies against that CA and matches its
//! key, and mode 0600.

mod common;

use base64::Engine;
use common::{describe, host, require_program, run, Rendered};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const CLUSTER: &str = "kctest";
const LB: &str = "10.40.0.10";

fn inventory() -> String {
    common::inventory_yaml(
        CLUSTER,
        &[
            host("lb1", LB, &["lb"]),
            host("m1", "10.40.0.11", &["etcd", "control-plane", "worker"]),
            host("m2", "10.40.0.12", &["etcd", "control-plane"]),
            host("m3", "10.40.0.13", &["etcd", "control-plane"]),
            host("w1", "10.40.0.21", &["worker"]),
            host("w2", "10.40.0.22", &["worker"]),
        ],
        "",
    )
}

/// What a kubeconfig must contain.
struct Expect {
    server: String,
    /// Certificate CN, which is also the kubeconfig's user name.
    cn: String,
    /// Organization the apiserver maps to a group, where the cluster depends on it.
    org: Option<&'static str>,
}

fn expectation(host: Option<&str>, file: &str, control_plane: bool) -> Expect {
    let server = if control_plane {
        "https://127.0.0.1:6443".to_string()
    } else {
        format!("https://{LB}:6443")
    };
    let (cn, org) = match file {
        // The everyday admin is a group RBAC binds to cluster-admin (and can unbind).
        "admin.kubeconfig" => (
            "kubernetes-admin".to_string(),
            Some("k8s-boot:cluster-admins"),
        ),
        // system:masters, beyond RBAC: only ever in the PKI directory.
        "super-admin.kubeconfig" => ("kubernetes-super-admin".to_string(), Some("system:masters")),
        "controller-manager.kubeconfig" => ("system:kube-controller-manager".to_string(), None),
        "scheduler.kubeconfig" => ("system:kube-scheduler".to_string(), None),
        "kube-proxy.kubeconfig" => ("system:kube-proxy".to_string(), None),
        // The Node authorizer only recognises system:node:<name> in group system:nodes.
        "kubelet.kubeconfig" => (
            format!(
                "system:node:{}",
                host.expect("kubelet kubeconfigs are per host")
            ),
            Some("system:nodes"),
        ),
        other => panic!("unexpected kubeconfig {other}"),
    };
    Expect { server, cn, org }
}

fn kubectl_view(kubectl: &Path, file: &Path, home: &Path) -> Value {
    let o = run(Command::new(kubectl)
        .env_remove("KUBECONFIG")
        .env("HOME", home)
        .arg("config")
        .arg("view")
        .arg("--kubeconfig")
        .arg(file)
        .arg("--raw")
        .arg("-o")
        .arg("json"));
    assert!(
        o.status.success(),
        "kubectl cannot read {}: {}",
        file.display(),
        describe(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "kubectl config view output for {} is not JSON ({e}): {}",
            file.display(),
            describe(&o)
        )
    })
}

fn openssl(args: &[&str]) -> std::process::Output {
    run(Command::new("openssl").args(args))
}

/// Subject attributes of a PEM certificate, via `openssl x509 -subject` (RFC 2253 form).
fn subject(cert: &Path) -> Vec<(String, String)> {
    let o = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let text = text.trim().trim_start_matches("subject=").trim();
    text.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

fn public_key(args: &[&str]) -> String {
    let o = openssl(args);
    assert!(o.status.success(), "{}", describe(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn decode(b64: &Value, what: &str) -> Vec<u8> {
    let s = b64
        .as_str()
        .unwrap_or_else(|| panic!("{what} missing or not a string"));
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("{what} is not base64: {e}"))
}

/// Checks one kubeconfig; `work` is a scratch directory for the extracted PEM files.
fn check(kubectl: &Path, r: &Rendered, file: &Path, want: &Expect, work: &Path) {
    let shown = file.strip_prefix(&r.out).unwrap().display().to_string();

    let mode = fs::metadata(file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode, 0o600,
        "{shown} holds a private key but has mode {mode:04o}"
    );

    let cfg = kubectl_view(kubectl, file, work);
    let one = |key: &str| -> &Value {
        let list = cfg[key]
            .as_array()
            .unwrap_or_else(|| panic!("{shown}: no {key}"));
        assert_eq!(
            list.len(),
            1,
            "{shown}: expected exactly one entry in {key}"
        );
        &list[0]
    };
    let (cluster, user, context) = (one("clusters"), one("users"), one("contexts"));

    assert_eq!(cluster["name"], CLUSTER, "{shown}: cluster name");
    assert_eq!(
        cluster["cluster"]["server"], want.server,
        "{shown}: server URL"
    );
    assert_eq!(user["name"], want.cn.as_str(), "{shown}: user name");
    assert_eq!(context["context"]["cluster"], CLUSTER, "{shown}: context");
    assert_eq!(
        context["context"]["user"],
        want.cn.as_str(),
        "{shown}: context"
    );
    assert_eq!(
        cfg["current-context"], context["name"],
        "{shown}: current-context must select the only context"
    );

    // The embedded CA is the cluster CA.
    let ca = decode(
        &cluster["cluster"]["certificate-authority-data"],
        "certificate-authority-data",
    );
    let pki_ca = r.pki.join("ca.crt");
    assert_eq!(
        ca,
        fs::read(&pki_ca).unwrap(),
        "{shown}: embedded CA differs from {}",
        pki_ca.display()
    );

    // The client certificate: issued by that CA for client authentication, CN = user name,
    // and matching the embedded key.
    let cert = work.join("client.crt");
    let key = work.join("client.key");
    fs::write(
        &cert,
        decode(&user["user"]["client-certificate-data"], "client cert"),
    )
    .unwrap();
    fs::write(&key, decode(&user["user"]["client-key-data"], "client key")).unwrap();
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());

    let o = openssl(&[
        "verify",
        "-CAfile",
        pki_ca.to_str().unwrap(),
        "-purpose",
        "sslclient",
        cert_s,
    ]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains(": OK"),
        "{shown}: client certificate does not verify against ca.crt: {}",
        describe(&o)
    );
    // Control: the same check against another CA of the PKI fails.
    let o = openssl(&[
        "verify",
        "-CAfile",
        r.pki.join("front-proxy-ca.crt").to_str().unwrap(),
        cert_s,
    ]);
    assert!(
        !o.status.success(),
        "{shown}: client certificate verifies against the front-proxy CA too: {}",
        describe(&o)
    );

    let subject = subject(&cert);
    let cns: Vec<&str> = subject
        .iter()
        .filter(|(k, _)| k == "CN")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cns, [want.cn.as_str()], "{shown}: certificate CN");
    if let Some(org) = want.org {
        assert!(
            subject.iter().any(|(k, v)| k == "O" && v == org),
            "{shown}: certificate subject {subject:?} lacks O={org}"
        );
    }

    assert_eq!(
        public_key(&["x509", "-in", cert_s, "-noout", "-pubkey"]),
        public_key(&["pkey", "-in", key_s, "-pubout"]),
        "{shown}: client key does not match the client certificate"
    );
}

#[test]
fn kubectl_reads_every_rendered_kubeconfig_with_verified_credentials() {
    let kubectl = common::lab_program("kubectl");
    require_program("openssl", "openssl");
    let tmp = tempfile::tempdir().unwrap();
    let r = common::render(tmp.path(), "kc", &inventory());
    let work = tmp.path().join("work");
    fs::create_dir_all(&work).unwrap();

    let control_planes = ["m1", "m2", "m3"];
    let cp_files = [
        "admin.kubeconfig",
        "controller-manager.kubeconfig",
        "kube-proxy.kubeconfig",
        "kubelet.kubeconfig",
        "scheduler.kubeconfig",
    ];
    let node_files = ["kube-proxy.kubeconfig", "kubelet.kubeconfig"];

    let mut checked = BTreeSet::new();
    for h in r.hosts() {
        let is_cp = control_planes.contains(&h.as_str());
        let found: Vec<PathBuf> = common::files_under(&r.host_root(&h), &|p| {
            p.extension().is_some_and(|e| e == "kubeconfig")
        });
        let expected_files: &[&str] = match h.as_str() {
            "lb1" => &[],
            _ if is_cp => &cp_files,
            _ => &node_files,
        };
        let expected_paths: Vec<PathBuf> = expected_files
            .iter()
            .map(|f| r.host_file(&h, &format!("/etc/kubernetes/{f}")))
            .collect();
        assert_eq!(found, expected_paths, "kubeconfigs rendered for {h}");
        // Hosts that receive kubeconfigs also receive the CA they embed.
        if !found.is_empty() {
            assert_eq!(
                fs::read(r.host_file(&h, "/etc/kubernetes/pki/ca.crt")).unwrap(),
                fs::read(r.pki.join("ca.crt")).unwrap(),
                "ca.crt delivered to {h}"
            );
        }
        for file in found {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            check(
                &kubectl,
                &r,
                &file,
                &expectation(Some(&h), &name, is_cp),
                &work,
            );
            checked.insert(file);
        }
    }

    // The cluster-level kubeconfigs (used from outside the cluster) go through the LB.
    for name in ["admin.kubeconfig", "super-admin.kubeconfig"] {
        let file = r.out.join("cluster").join(name);
        check(&kubectl, &r, &file, &expectation(None, name, false), &work);
        checked.insert(file);
    }

    // Everything named *.kubeconfig in the output was checked.
    let all: BTreeSet<PathBuf> = common::files_under(&r.out, &|p| {
        p.extension().is_some_and(|e| e == "kubeconfig")
    })
    .into_iter()
    .collect();
    assert_eq!(all, checked);
    assert_eq!(checked.len(), 3 * 5 + 2 * 2 + 2);
}
