//! Golden files of the rendered example inventory, one per supported Kubernetes minor, plus
//! determinism, restart links and template overrides.
//!
//! Files carrying key material (certificates, keys, kubeconfigs, the encryption config) differ
//! per PKI and are left out of the goldens; the other tests check them.

use k8s_boot::inventory::Cluster;
use k8s_boot::pki::{Options, Pki};
use k8s_boot::render::{self, Plan, Templates};
use k8s_boot::versions::PROFILES;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const EXAMPLE: &str = include_str!("../inventory/hosts.yaml");

fn plan_for(src: &str, pki_dir: &Path) -> Plan {
    let c = Cluster::from_source(Path::new("hosts.yaml"), src).unwrap();
    let pki = Pki::new(pki_dir);
    pki.ensure(&c, Options::default()).unwrap();
    render::plan(&c, &pki, &Templates::load(None).unwrap()).unwrap()
}

fn carries_secrets(path: &str) -> bool {
    path.contains("/pki/")
        || path.ends_with(".kubeconfig")
        || path.ends_with("encryption-config.yaml")
}

fn golden_text(plan: &Plan) -> String {
    let mut out = String::new();
    for h in plan
        .hosts
        .iter()
        .filter(|h| ["lb1", "m1", "w1"].contains(&h.name.as_str()))
    {
        out += &format!(
            "##### host {} roles {:?} services {:?}\n",
            h.name, h.roles, h.services
        );
        for f in &h.files {
            out += &format!("=== {} {:04o} restarts {:?}\n", f.path, f.mode, f.restarts);
            if !carries_secrets(&f.path) {
                out += &String::from_utf8_lossy(&f.bytes);
            }
        }
    }
    for f in plan
        .cluster_files
        .iter()
        .filter(|f| !carries_secrets(&f.path))
    {
        out += &format!("##### cluster/{} {:04o}\n", f.path, f.mode);
        // Upstream's CRDs, unchanged: tests/gateway_api_crds.rs compares them with the module.
        if f.path.ends_with("-gateway-api-crds.yaml") {
            out += &format!("<{} bytes>\n", f.bytes.len());
            continue;
        }
        // The chat server code has its own tests; the golden keeps the manifest around it.
        let text =
            String::from_utf8_lossy(&f.bytes).replace(&indented_server_js(), "    <server.js>\n");
        // Certificates and keys differ on every run: keep the field, not the value.
        for line in text.split_inclusive('\n') {
            match line.split_once(": ") {
                Some((key, _)) if ["tls.crt", "tls.key", "caBundle"].contains(&key.trim()) => {
                    out += &format!("{key}: <base64 PEM>\n")
                }
                _ => out += line,
            }
        }
    }
    out
}

const SERVER_JS: &str = include_str!("../templates/workloads/chat/server.js");

fn indented_server_js() -> String {
    SERVER_JS
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("    {l}\n")
            }
        })
        .collect()
}

#[test]
fn chat_manifest_carries_the_server_code_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(EXAMPLE, dir.path());
    let chat = plan
        .cluster_files
        .iter()
        .find(|f| f.path.ends_with("30-chat.yaml"))
        .unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_slice(&chat.bytes)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("ConfigMap");
    assert_eq!(cm["data"]["server.js"].as_str().unwrap(), SERVER_JS);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "Deployment", "Service"]);
    let svc = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
    // Plain NodePort for direct clients, PROXY protocol NodePort for nginx (the example has an
    // lb host).
    let ports: Vec<(&str, u64, u64)> = svc["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["port"].as_u64().unwrap(),
                p["nodePort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [("chat", 30000, 30000), ("chat-lb", 30001, 30001)]);
    let pod = &docs.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env: BTreeMap<&str, &str> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert_eq!(env["CHAT_PORT"], "30000");
    assert_eq!(env["CHAT_PROXY_PORT"], "30001");
    assert!(!env.contains_key("CHAT_PROXY_PROTOCOL"));
    // Only node is needed in the image: the probes run the server file in probe mode.
    for probe in ["readinessProbe", "livenessProbe"] {
        let cmd: Vec<&str> = container[probe]["exec"]["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(cmd, ["node", "/app/server.js", "--probe"], "{probe}");
    }
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(container["resources"]["limits"]["memory"].is_string());
    // The pod is given longer than the server's own shutdown bound.
    let grace_ms: u64 = env["CHAT_SHUTDOWN_GRACE_MS"].parse().unwrap();
    let termination_s = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace_ms <= 2000 && termination_s * 1000 > grace_ms);
}

#[test]
fn chat_without_lb_hosts_has_no_proxy_port() {
    let dir = tempfile::tempdir().unwrap();
    let src = EXAMPLE.replace("roles: [lb]", "roles: [worker]").replace(
        "  # api_endpoint: 10.10.10.127:6443",
        "  api_endpoint: 10.10.10.128:6443 #",
    );
    let plan = plan_for(&src, dir.path());
    let chat = plan
        .cluster_files
        .iter()
        .find(|f| f.path.ends_with("30-chat.yaml"))
        .unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_slice(&chat.bytes)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let svc = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(svc["spec"]["ports"].as_sequence().unwrap().len(), 1);
    assert_eq!(svc["spec"]["ports"][0]["name"], "chat");
    let container = &docs.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]
        ["spec"]["containers"][0];
    assert_eq!(container["ports"].as_sequence().unwrap().len(), 1);
    let env = container["env"].as_sequence().unwrap();
    assert!(
        env.iter().all(|e| e["name"] != "CHAT_PROXY_PORT"),
        "{env:?}"
    );
}

/// The chat's YAML documents as rendered from `src`.
fn chat_documents(src: &str, pki_dir: &Path) -> Vec<serde_yaml::Value> {
    let plan = plan_for(src, pki_dir);
    let chat = plan
        .cluster_files
        .iter()
        .find(|f| f.path.ends_with("30-chat.yaml"))
        .unwrap();
    serde_yaml::Deserializer::from_slice(&chat.bytes)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[test]
fn a_chat_of_several_replicas_spreads_them_and_keeps_one_through_a_drain() {
    let dir = tempfile::tempdir().unwrap();
    let one = chat_documents(EXAMPLE, dir.path());
    assert!(one.iter().all(|d| d["kind"] != "PodDisruptionBudget"));
    let src = EXAMPLE.replace("  replicas: 1 ", "  replicas: 2 ");
    assert_ne!(src, EXAMPLE, "the example's chat section changed");
    let two = chat_documents(&src, dir.path());
    let deployment = two.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let spread = &deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(&spread["labelSelector"]["matchLabels"], selector);
    let pdb = two
        .iter()
        .find(|d| d["kind"] == "PodDisruptionBudget")
        .unwrap();
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(
        pdb["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);
}

#[test]
fn golden_example_per_supported_minor() {
    for profile in PROFILES {
        let version = format!("v{}.0", profile.minor);
        let src = EXAMPLE.replace(
            "kubernetes_version: v1.37.2",
            &format!("kubernetes_version: {version}"),
        );
        assert!(src.contains(&version));
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_for(&src, dir.path());
        insta::assert_snapshot!(
            format!("example_{}", profile.minor.replace('.', "_")),
            golden_text(&plan)
        );
    }
}

#[test]
fn allow_cgroup_v1_renders_fail_cgroup_v1_false() {
    let kubelet_yaml = |src: &str| -> serde_yaml::Value {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_for(src, dir.path());
        let m1 = plan.hosts.iter().find(|h| h.name == "m1").unwrap();
        let f = m1
            .files
            .iter()
            .find(|f| f.path == "/var/lib/kubelet/config.yaml")
            .unwrap();
        serde_yaml::from_slice(&f.bytes).unwrap()
    };
    let default = kubelet_yaml(EXAMPLE);
    assert!(
        default.get("failCgroupV1").is_none(),
        "kubelet default: refuse cgroup v1"
    );
    assert_eq!(default["cgroupDriver"], "systemd");

    let allowed = EXAMPLE.replace("allow_cgroup_v1: false", "allow_cgroup_v1: true");
    assert_ne!(allowed, EXAMPLE);
    let allowed = kubelet_yaml(&allowed);
    assert_eq!(allowed["failCgroupV1"], false);
    assert_eq!(allowed["cgroupDriver"], "systemd");
    assert_eq!(allowed["failSwapOn"], true);
}

/// Every file under `root`: relative path -> (mode, bytes).
fn tree(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    (mode, fs::read(&p).unwrap()),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn render_cli(inv: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .arg("render")
        .arg("--inventory")
        .arg(inv)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn rendering_twice_gives_byte_identical_trees() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("hosts.yaml");
    fs::write(&inv, EXAMPLE).unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    assert!(render_cli(&inv, &a, &[]).status.success());
    assert!(render_cli(&inv, &b, &[]).status.success());
    let (ta, tb) = (tree(&a), tree(&b));
    assert_eq!(ta.len(), tb.len());
    assert!(ta == tb, "two renders differ");
    // Re-rendering into the same directory replaces it with the same bytes and no leftovers.
    fs::write(a.join("stale-file"), "x").unwrap();
    assert!(render_cli(&inv, &a, &[]).status.success());
    assert!(tree(&a) == tb);
    // Beside the outputs only their lock files (kept: removing a lock file races with a
    // run that is opening it).
    let mut siblings: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    siblings.sort();
    assert_eq!(
        siblings,
        [".a.lock", ".b.lock", "a", "b", "hosts.yaml", "pki"]
    );

    // Layout and plan.json agree with the files written.
    let plan: serde_json::Value =
        serde_json::from_slice(&fs::read(a.join("plan.json")).unwrap()).unwrap();
    for host in plan["hosts"].as_array().unwrap() {
        let name = host["name"].as_str().unwrap();
        for f in host["files"].as_array().unwrap() {
            let rel = PathBuf::from("hosts")
                .join(name)
                .join(f["path"].as_str().unwrap().trim_start_matches('/'));
            let (mode, bytes) = ta
                .get(&rel)
                .unwrap_or_else(|| panic!("{} listed in plan.json but not written", rel.display()));
            assert_eq!(
                format!("{mode:04o}"),
                f["mode"].as_str().unwrap(),
                "{}",
                rel.display()
            );
            assert_eq!(
                k8s_boot::digest::hex(&sha2_digest(bytes)),
                f["sha256"].as_str().unwrap()
            );
            assert_eq!(f["owner"], "root:root");
        }
    }
    assert!(ta.contains_key(Path::new(
        "hosts/m1/etc/systemd/system/kube-apiserver.service"
    )));
    assert!(ta.contains_key(Path::new("cluster/admin.kubeconfig")));
    assert!(ta.contains_key(Path::new("cluster/manifests/30-chat.yaml")));
    // Private material is 0600 in the rendered tree too.
    for (p, (mode, _)) in &ta {
        let s = p.to_string_lossy();
        if s.ends_with(".key")
            || s.ends_with(".kubeconfig")
            || s.ends_with("encryption-config.yaml")
        {
            assert_eq!(*mode, 0o600, "{s}");
        }
    }
}

/// A re-render links the files the earlier output holds unchanged and writes the others;
/// under any umask every mode is exact, and an edited or re-moded file is written afresh.
#[test]
fn rerender_reuses_unchanged_files_and_keeps_exact_modes_under_a_narrow_umask() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("hosts.yaml");
    fs::write(&inv, EXAMPLE).unwrap();
    let out = dir.path().join("out");
    let render_with_umask = |umask: &str| {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" render --inventory \"$1\" --out \"$2\""
            ))
            .arg(env!("CARGO_BIN_EXE_k8s-boot"))
            .arg(&inv)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
    };
    let reference = dir.path().join("reference");
    assert!(render_cli(&inv, &reference, &[]).status.success());
    let expected = tree(&reference);
    render_with_umask("077");
    assert!(
        tree(&out) == expected,
        "modes or bytes differ under umask 077"
    );

    let edited = out.join("hosts/m1/etc/systemd/system/kube-apiserver.service");
    let remoded = out.join("cluster/admin.kubeconfig");
    let untouched = out.join("plan.json");
    fs::write(&edited, "edited").unwrap();
    fs::set_permissions(&remoded, fs::Permissions::from_mode(0o644)).unwrap();
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    let before = (ino(&edited), ino(&remoded), ino(&untouched));
    render_with_umask("022");
    assert!(tree(&out) == expected, "re-render did not restore the tree");
    assert_ne!(ino(&edited), before.0, "an edited file is written afresh");
    assert_ne!(
        ino(&remoded),
        before.1,
        "a file with another mode is written afresh"
    );
    assert_eq!(ino(&untouched), before.2, "an unchanged file is linked");
    assert_eq!(fs::metadata(&untouched).unwrap().nlink(), 1);
    let mut siblings: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    siblings.sort();
    assert_eq!(
        siblings,
        [
            ".out.lock",
            ".reference.lock",
            "hosts.yaml",
            "out",
            "pki",
            "reference"
        ]
    );
}

fn sha2_digest(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

#[test]
fn services_and_restart_links_follow_the_roles() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(EXAMPLE, dir.path());
    let host = |n: &str| plan.hosts.iter().find(|h| h.name == n).unwrap();
    assert_eq!(host("lb1").services, ["nginx"]);
    assert_eq!(
        host("w1").services,
        [
            "containerd",
            "k8s-boot-nodeport-filter",
            "kubelet",
            "kube-proxy"
        ]
    );
    assert_eq!(
        host("m1").services,
        [
            "etcd",
            "k8s-boot-etcd-backup.timer",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "containerd",
            "k8s-boot-nodeport-filter",
            "kubelet",
            "kube-proxy"
        ]
    );
    let file = |h: &str, p: &str| host(h).files.iter().find(|f| f.path == p).unwrap().clone();
    // A certificate restarts the services whose unit or config names it.
    assert_eq!(
        file("m1", "/etc/kubernetes/pki/apiserver.crt").restarts,
        ["kube-apiserver"]
    );
    assert_eq!(
        file("m1", "/etc/kubernetes/pki/etcd/server-m1.crt").restarts,
        ["etcd"]
    );
    let mut ca = file("m1", "/etc/kubernetes/pki/ca.crt").restarts;
    ca.sort();
    assert_eq!(ca, ["kube-apiserver", "kube-controller-manager", "kubelet"]);
    assert_eq!(
        file("w1", "/etc/kubernetes/kubelet.kubeconfig").restarts,
        ["kubelet"]
    );
    // CA keys only where a component signs with them.
    assert!(host("m1")
        .files
        .iter()
        .any(|f| f.path == "/etc/kubernetes/pki/ca.key"));
    for h in &plan.hosts {
        assert!(!h
            .files
            .iter()
            .any(|f| f.path.ends_with("etcd/ca.key") || f.path.ends_with("front-proxy-ca.key")));
        if !h.roles.contains(&"control-plane") {
            assert!(
                !h.files
                    .iter()
                    .any(|f| f.path.ends_with(".key") && f.path.contains("/ca.")),
                "{}",
                h.name
            );
        }
    }
    // Control-plane hosts talk to their local apiserver, pure workers to the load balancer.
    let kc =
        |h: &str| String::from_utf8(file(h, "/etc/kubernetes/kubelet.kubeconfig").bytes).unwrap();
    assert!(kc("m1").contains("server: https://127.0.0.1:6443"));
    assert!(kc("w1").contains("server: https://10.10.10.127:6443"));
}

#[test]
fn templates_can_be_overridden_by_name_only() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("hosts.yaml");
    fs::write(&inv, EXAMPLE).unwrap();
    let tpl = dir.path().join("tpl");
    fs::create_dir_all(tpl.join("etcd")).unwrap();
    fs::write(
        tpl.join("etcd/etcd.service"),
        "# custom unit for {{ host.name }}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let res = render_cli(&inv, &out, &["--templates", tpl.to_str().unwrap()]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(
        fs::read_to_string(out.join("hosts/m2/etc/systemd/system/etcd.service")).unwrap(),
        "# custom unit for m2\n"
    );
    // Other templates keep their built-in text.
    assert!(fs::read_to_string(out.join("hosts/m2/etc/etcd/etcd.yaml"))
        .unwrap()
        .contains("name: \"m2\""));

    fs::write(tpl.join("etcd/etcd.servce"), "typo").unwrap();
    let res = render_cli(&inv, &out, &["--templates", tpl.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("etcd/etcd.servce") && err.contains("is not a template name"),
        "{err}"
    );
    // A failed render leaves the previous output untouched.
    assert_eq!(
        fs::read_to_string(out.join("hosts/m2/etc/systemd/system/etcd.service")).unwrap(),
        "# custom unit for m2\n"
    );
}

#[test]
fn disabled_chat_renders_no_chat_manifest_or_lb_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let src = EXAMPLE.replacen(
        "chat:\n  enabled: true                       # default true",
        "chat:\n  enabled: false",
        1,
    );
    assert_ne!(src, EXAMPLE);
    let plan = plan_for(&src, dir.path());
    assert!(!plan.cluster_files.iter().any(|f| f.path.contains("chat")));
    let lb = plan.hosts.iter().find(|h| h.name == "lb1").unwrap();
    let conf = String::from_utf8(lb.files[0].bytes.clone()).unwrap();
    assert!(conf.contains("upstream kube_apiserver") && !conf.contains("upstream chat"));
    // The ingress's NodePorts are still guarded; the chat's is gone.
    let filter = file_of(&plan, "w1", "/etc/k8s-boot/nodeport-filter.nft");
    assert!(filter.contains("tcp dport { 30080, 30443 }"), "{filter}");
}

#[test]
fn disabled_ingress_renders_no_crds_controller_or_lb_ports() {
    let dir = tempfile::tempdir().unwrap();
    let with = plan_for(EXAMPLE, dir.path());
    for manifest in [
        "manifests/05-gateway-api-crds.yaml",
        "manifests/45-traefik.yaml",
    ] {
        assert!(with.cluster_files.iter().any(|f| f.path == manifest));
    }
    let src = EXAMPLE.replacen(
        "ingress:                              # Traefik: Gateway API routes and Ingress objects\n  enabled: true",
        "ingress:\n  enabled: false",
        1,
    );
    assert_ne!(src, EXAMPLE);
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(&src, dir.path());
    let manifests: Vec<&str> = plan.cluster_files.iter().map(|f| f.path.as_str()).collect();
    assert!(
        !manifests
            .iter()
            .any(|p| p.contains("gateway") || p.contains("traefik")),
        "{manifests:?}"
    );
    let conf = file_of(&plan, "lb1", "/etc/nginx/nginx.conf");
    assert!(
        !conf.contains("upstream ingress") && !conf.contains("listen 80;"),
        "{conf}"
    );
    assert!(!conf.contains("zone=ingress"), "{conf}");
    let filter = file_of(&plan, "w1", "/etc/k8s-boot/nodeport-filter.nft");
    assert!(filter.contains("tcp dport { 30001 }"), "{filter}");
}

/// A host's planned file, as text.
fn file_of(plan: &Plan, host: &str, path: &str) -> String {
    let h = plan.hosts.iter().find(|h| h.name == host).unwrap();
    let f = h.files.iter().find(|f| f.path == path).unwrap();
    String::from_utf8(f.bytes.clone()).unwrap()
}

#[test]
fn registry_mirrors_become_a_hosts_toml_per_registry_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A real CA certificate, made by openssl, and credentials as a user keeps them.
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=registry-ca"])
        .arg("-keyout")
        .arg(d.join("registry-ca.key"))
        .arg("-out")
        .arg(d.join("registry-ca.crt"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    std::fs::write(d.join("registry.auth"), "bob:hun\"ter2\n").unwrap();
    std::fs::set_permissions(
        d.join("registry.auth"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let src = EXAMPLE.replacen(
        "  kubelet:\n",
        "  containerd:\n    registry_mirrors:\n      registry.k8s.io:\n        \
         - url: https://registry.corp:5000/k8s/\n          ca_file: registry-ca.crt\n          \
         auth_file: registry.auth\n        - url: http://10.10.10.200:5000\n      \
         docker.io: [{url: https://harbor.corp}]\n  kubelet:\n",
        1,
    );
    let inv = d.join("hosts.yaml");
    std::fs::write(&inv, src).unwrap();
    let out = d.join("out");
    let rendered = render_cli(&inv, &out, &[]);
    assert!(rendered.status.success(), "{rendered:?}");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&rendered.stdout),
        String::from_utf8_lossy(&rendered.stderr)
    );
    let basic = "Basic Ym9iOmh1biJ0ZXIy"; // base64 of bob:hun"ter2
    assert!(
        !shown.contains("hun\"ter2") && !shown.contains(basic),
        "{shown}"
    );

    let files = tree(&out);
    let k8s = "etc/containerd/certs.d/registry.k8s.io";
    for host in ["m1", "m2", "m3", "w1", "w2"] {
        let h = Path::new("hosts").join(host);
        let (mode, bytes) = &files[&h.join(k8s).join("hosts.toml")];
        assert_eq!(*mode, 0o600, "{host}: credentials inside");
        let text = String::from_utf8(bytes.clone()).unwrap();
        let body: Vec<&str> = text.lines().skip_while(|l| l.starts_with('#')).collect();
        assert_eq!(
            body.join("\n"),
            format!(
                "server = \"https://registry.k8s.io\"\n\n\
                 [host.\"https://registry.corp:5000/v2/k8s\"]\n  \
                 capabilities = [\"pull\", \"resolve\"]\n  \
                 # The mirror's path prefix: asked instead of /v2.\n  \
                 override_path = true\n  \
                 ca = \"/etc/containerd/certs.d/registry.k8s.io/ca-0.crt\"\n  \
                 [host.\"https://registry.corp:5000/v2/k8s\".header]\n    \
                 authorization = \"{basic}\"\n\n\
                 [host.\"http://10.10.10.200:5000\"]\n  \
                 capabilities = [\"pull\", \"resolve\"]"
            )
        );
        let (mode, ca) = &files[&h.join(k8s).join("ca-0.crt")];
        assert_eq!(*mode, 0o644);
        assert_eq!(ca, &std::fs::read(d.join("registry-ca.crt")).unwrap());
        let (mode, docker) = &files[&h.join("etc/containerd/certs.d/docker.io/hosts.toml")];
        assert_eq!(*mode, 0o644, "no credentials");
        let docker = String::from_utf8_lossy(docker);
        assert!(
            docker.contains("server = \"https://registry-1.docker.io\"")
                && docker.contains("[host.\"https://harbor.corp\"]")
                && !docker.contains("override_path"),
            "{docker}"
        );
        let config =
            String::from_utf8_lossy(&files[&h.join("etc/containerd/config.toml")].1).into_owned();
        assert!(config.contains("config_path = '/etc/containerd/certs.d'"));
    }
    // Not on the LB, which runs no containerd; the credentials in no other file.
    assert!(!files
        .keys()
        .any(|p| p.starts_with("hosts/lb1/etc/containerd")));
    let holders: Vec<&PathBuf> = files
        .iter()
        .filter(|(_, (_, bytes))| String::from_utf8_lossy(bytes).contains(basic))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(holders.len(), 5, "{holders:?}");
    assert!(holders
        .iter()
        .all(|p| p.ends_with("registry.k8s.io/hosts.toml")));
}

#[test]
fn scheduled_etcd_backups_are_a_timer_on_every_etcd_host_unless_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let src = EXAMPLE
        .replacen(
            "    schedule: daily ",
            "    schedule: \"*-*-* 00/6:00\" ",
            1,
        )
        .replacen("    keep: 7 ", "    keep: 3 ", 1);
    let plan = plan_for(&src, dir.path());
    let backup_files = |plan: &Plan, host: &str| -> Vec<(String, u32)> {
        let h = plan.hosts.iter().find(|h| h.name == host).unwrap();
        h.files
            .iter()
            .filter(|f| f.path.contains("k8s-boot-etcd-backup"))
            .map(|f| (f.path.clone(), f.mode))
            .collect()
    };
    for host in ["m1", "m2", "m3"] {
        assert_eq!(
            backup_files(&plan, host),
            [
                (
                    "/etc/systemd/system/k8s-boot-etcd-backup.service".to_string(),
                    0o600
                ),
                (
                    "/etc/systemd/system/k8s-boot-etcd-backup.timer".to_string(),
                    0o600
                ),
                ("/usr/local/sbin/k8s-boot-etcd-backup".to_string(), 0o700),
            ],
            "{host}"
        );
    }
    for host in ["lb1", "w1", "w2"] {
        assert!(backup_files(&plan, host).is_empty(), "{host}");
    }
    let m1 = plan.hosts.iter().find(|h| h.name == "m1").unwrap();
    let text = |p: &str| {
        String::from_utf8(m1.files.iter().find(|f| f.path == p).unwrap().bytes.clone()).unwrap()
    };
    let timer = text("/etc/systemd/system/k8s-boot-etcd-backup.timer");
    assert!(timer.contains("\nOnCalendar=*-*-* 00/6:00\n"), "{timer}");
    let script = text("/usr/local/sbin/k8s-boot-etcd-backup");
    assert!(script.contains("head -n -3"), "{script}");
    assert!(
        script.contains("--endpoints=https://10.10.10.128:2379"),
        "{script}"
    );

    let off = EXAMPLE.replacen(
        "    enabled: true                     # default true;",
        "    enabled: false #",
        1,
    );
    let plan = plan_for(&off, tempfile::tempdir().unwrap().path());
    assert!(backup_files(&plan, "m1").is_empty());
    let m1 = plan.hosts.iter().find(|h| h.name == "m1").unwrap();
    assert!(!m1.services.iter().any(|s| s.contains("backup")));
}
