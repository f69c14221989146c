//! The control-plane, cluster and workloads phases and `deploy`, in the lab, against
//! STAND-INS: Kubernetes binaries cannot be obtained on this machine, so small shell scripts
//! take their place. They prove the installer's orchestration (units rendered, installed,
//! started and health-checked through the load balancer; kubectl invoked with the right
//! manifests, labels and rollout wait), not Kubernetes itself.
//!
//! - kube-apiserver stand-in: `openssl s_server` on the rendered `--secure-port` with the
//!   rendered `--tls-cert-file`/`--tls-private-key-file` (answers `/readyz` with 200);
//! - kube-controller-manager / kube-scheduler stand-ins: `openssl s_server` on 10257 / 10259;
//! - kubectl stand-in: records its arguments and answers like kubectl.
//!
//! etcd (Debian's binary) and nginx are real.

mod common;

use common::{describe, TestLab};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const APISERVER_STAND_IN: &str = r#"#!/bin/sh
# STAND-IN for kube-apiserver (k8s-boot tests): TLS on the rendered port and certificate.
for a in "$@"; do
  case $a in
    --secure-port=*) port=${a#*=} ;;
    --tls-cert-file=*) cert=${a#*=} ;;
    --tls-private-key-file=*) key=${a#*=} ;;
  esac
done
[ -n "$port" ] && [ -r "$cert" ] && [ -r "$key" ] || { echo "stand-in: missing TLS flags" >&2; exit 2; }
exec openssl s_server -quiet -accept "$port" -www -cert "$cert" -key "$key"
"#;

fn port_stand_in(what: &str, port: u16, cert: &str) -> String {
    format!(
        "#!/bin/sh\n# STAND-IN for {what} (k8s-boot tests): answers HTTPS on {port}.\n\
         exec openssl s_server -quiet -accept {port} -www -cert /etc/kubernetes/pki/{cert}.crt -key /etc/kubernetes/pki/{cert}.key\n"
    )
}

const KUBECTL_STAND_IN: &str = r#"#!/bin/sh
# STAND-IN for kubectl (k8s-boot tests): records each call and answers like kubectl.
mkdir -p /var/log/stand-in && echo "$*" >> /var/log/stand-in/kubectl.log
for a in "$@"; do case $a in rollout) echo 'deployment "chat" successfully rolled out'; exit 0;; esac; done
case " $* " in
  *" apply "*) echo "resources from $(echo "$*" | sed 's/.* -f //') configured" ;;
  *" label "*) echo "node labeled" ;;
  *" taint "*) echo "node tainted" ;;
esac
"#;

fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn control_plane_cluster_and_workloads_phases_with_stand_ins() {
    let lab = TestLab::up("lab-standins", 4);
    let bin = lab.dir.join("binaries");
    write_exec(&bin.join("kube-apiserver"), APISERVER_STAND_IN);
    write_exec(
        &bin.join("kube-controller-manager"),
        &port_stand_in("kube-controller-manager", 10257, "controller-manager"),
    );
    write_exec(
        &bin.join("kube-scheduler"),
        &port_stand_in("kube-scheduler", 10259, "scheduler"),
    );
    write_exec(&bin.join("kubectl"), KUBECTL_STAND_IN);

    let inv = lab.dir.join("hosts.yaml");
    let inv_s = inv.to_str().unwrap();
    let phases = "preflight,prepare,pki,binaries,etcd,lb,control-plane,cluster,workloads,verify";
    let out = lab.k8s_boot(&["install", "--inventory", inv_s, "--phases", phases]);
    assert!(out.status.success(), "{}", describe(&out));
    for m in ["10.77.0.12", "10.77.0.13", "10.77.0.14"] {
        for s in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            assert_eq!(
                lab.sh(m, &format!("systemctl is-active {s}")),
                "active",
                "{m} {s}"
            );
        }
    }
    // The apiserver health check went through the load balancer.
    let lb_log = lab.sh("10.77.0.11", "cat /var/log/nginx/k8s-boot-stream.log");
    // Log format: client address first, upstream address last (quoted).
    assert!(
        lb_log
            .lines()
            .any(|l| l.starts_with("10.77.0.1") && l.ends_with(":6443\"")),
        "{lb_log}"
    );

    // kubectl ran on the first control-plane host only, with the admin kubeconfig.
    let calls = lab.sh("10.77.0.12", "cat /var/log/stand-in/kubectl.log");
    let expected_applies = [
        "00-apiserver-to-kubelet-rbac.yaml",
        "10-flannel.yaml",
        "20-coredns.yaml",
        "30-chat.yaml",
    ];
    let applies: Vec<&str> = calls.lines().filter(|l| l.contains(" apply -f ")).collect();
    assert_eq!(applies.len(), 4, "{calls}");
    for (line, manifest) in applies.iter().zip(expected_applies) {
        assert!(line.starts_with("--kubeconfig /etc/kubernetes/admin.kubeconfig apply -f /var/lib/k8s-boot/manifests/"), "{line}");
        assert!(line.ends_with(manifest), "{line} (expected {manifest})");
    }
    for node in ["m1", "m2", "m3"] {
        assert!(
            calls.contains(&format!(
                "label node {node} node-role.kubernetes.io/control-plane= --overwrite"
            )),
            "{calls}"
        );
        assert!(
            calls.contains(&format!(
                "label node {node} node-role.kubernetes.io/worker= --overwrite"
            )),
            "{calls}"
        );
    }
    assert!(
        !calls.contains("taint"),
        "control-plane hosts that are workers get no taint: {calls}"
    );
    assert!(
        calls.contains("-n chat rollout status deployment/chat --timeout=180s"),
        "{calls}"
    );
    assert!(!lab
        .ssh("10.77.0.13", "test -e /var/log/stand-in/kubectl.log")
        .status
        .success());
    // The manifests on the host are the rendered ones.
    let render_dir = lab.dir.parent().unwrap().join("rendered");
    let r = lab.k8s_boot(&[
        "render",
        "--inventory",
        inv_s,
        "--out",
        render_dir.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", describe(&r));
    let local = fs::read_to_string(render_dir.join("cluster/manifests/30-chat.yaml")).unwrap();
    assert_eq!(
        lab.sh(
            "10.77.0.12",
            "sha256sum < /var/lib/k8s-boot/manifests/30-chat.yaml | cut -d' ' -f1"
        ),
        {
            use sha2::Digest;
            k8s_boot::render::hex(&sha2::Sha256::digest(local.as_bytes()))
        }
    );

    // A second install restarts no control-plane service.
    let pid = lab.sh(
        "10.77.0.12",
        "systemctl show -p MainPID --value kube-apiserver",
    );
    let again = lab.k8s_boot(&[
        "install",
        "--inventory",
        inv_s,
        "--phases",
        phases,
        "--output",
        "json",
    ]);
    assert!(again.status.success(), "{}", describe(&again));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    for h in report["hosts"].as_array().unwrap() {
        assert_ne!(h["phases"]["control-plane"]["status"], "changed", "{h}");
    }
    assert_eq!(
        lab.sh(
            "10.77.0.12",
            "systemctl show -p MainPID --value kube-apiserver"
        ),
        pid
    );

    // deploy: load balancer, cluster manifests and the chat workload again.
    lab.sh("10.77.0.12", "rm /var/log/stand-in/kubectl.log");
    let deploy = lab.k8s_boot(&["deploy", "--inventory", inv_s]);
    assert!(deploy.status.success(), "{}", describe(&deploy));
    let calls = lab.sh("10.77.0.12", "cat /var/log/stand-in/kubectl.log");
    assert_eq!(
        calls.lines().filter(|l| l.contains(" apply -f ")).count(),
        4,
        "{calls}"
    );
    assert!(calls.contains("rollout status deployment/chat"), "{calls}");
}
