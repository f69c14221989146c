//! Values that reach the templates, and templates given with `--templates`, as an attacker
//! writes them: no value may add a key or a line to a rendered file, and no override may
//! read outside its directory or the environment, recurse without bound, or print key
//! material into an error.

use k8s_boot::inventory::Cluster;
use k8s_boot::pki::{Options, Pki};
use k8s_boot::render::{self, Plan, PlannedFile, RenderError, Templates};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

const EXAMPLE: &str = include_str!("../inventory/hosts.yaml");

fn cluster() -> Cluster {
    Cluster::from_source(Path::new("hosts.yaml"), EXAMPLE).unwrap()
}

fn pki_for(c: &Cluster, dir: &Path) -> Pki {
    let pki = Pki::new(dir.join("pki"));
    pki.ensure(c, Options::default()).unwrap();
    pki
}

/// Every file of the plan with a name (host or `cluster`) in front.
fn files(plan: &Plan) -> Vec<(String, &PlannedFile)> {
    let mut out: Vec<(String, &PlannedFile)> = plan
        .hosts
        .iter()
        .flat_map(|h| {
            h.files
                .iter()
                .map(move |f| (format!("{}:{}", h.name, f.path), f))
        })
        .collect();
    out.extend(
        plan.cluster_files
            .iter()
            .map(|f| (format!("cluster:{}", f.path), f)),
    );
    out
}

fn is_structured(path: &str) -> bool {
    [".yaml", ".kubeconfig", ".conflist", ".json"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// Every key path of every YAML document in `bytes` (sequence items by index), and every
/// string scalar.
fn shape(path: &str, bytes: &[u8]) -> (BTreeSet<String>, Vec<String>) {
    fn walk(
        v: &serde_yaml::Value,
        at: String,
        keys: &mut BTreeSet<String>,
        strings: &mut Vec<String>,
    ) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    let k = format!("{at}/{}", serde_yaml::to_string(k).unwrap().trim());
                    keys.insert(k.clone());
                    walk(v, k, keys, strings);
                }
            }
            serde_yaml::Value::Sequence(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{at}[{i}]"), keys, strings);
                }
            }
            serde_yaml::Value::String(s) => strings.push(s.clone()),
            _ => {}
        }
    }
    let mut keys = BTreeSet::new();
    let mut strings = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
        let v = serde_yaml::Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("{path} does not parse as YAML/JSON: {e}"));
        walk(&v, format!("#{i}"), &mut keys, &mut strings);
    }
    (keys, strings)
}

use serde::Deserialize;

const IMAGE: &str = "node:24\"\n          securityContext: {privileged: true}\n# ";
const NAMESPACE: &str = "chat\n  labels: {owned: 'yes'}";
const DOMAIN: &str = "cluster.local\"\nstaticPodPath: /etc/evil";
const UPSTREAM: &str = "10.0.0.2 {\n    }\n    hosts {\n";
const EVICTION: &str = "1Gi\"\n  nodefs.available: \"0%";
const CLUSTER_NAME: &str = "demo\"\n    insecure-skip-tls-verify: true\n    x: \"";

/// The example with hostile strings in every free-form value that reaches a template, as if
/// validation had let them through (it refuses each of them, see inventory_validation.rs).
fn hostile(mut c: Cluster) -> Cluster {
    let inv = &mut c.inventory;
    inv.chat.image = IMAGE.into();
    inv.chat.namespace = NAMESPACE.into();
    inv.cluster.cluster_domain = DOMAIN.into();
    inv.cluster.name = CLUSTER_NAME.into();
    inv.cluster.dns_upstreams = Some(vec![UPSTREAM.into()]);
    inv.cluster
        .kubelet
        .eviction_hard
        .insert("memory.available".into(), EVICTION.into());
    c
}

#[test]
fn hostile_values_add_no_key_and_no_line_to_any_rendered_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = cluster();
    // The same eviction signal set in both, so that only the values differ.
    plain
        .inventory
        .cluster
        .kubelet
        .eviction_hard
        .insert("memory.available".into(), "1Gi".into());
    let pki = pki_for(&plain, dir.path());
    let templates = Templates::load(None).unwrap();
    let baseline = render::plan(&plain, &pki, &templates).unwrap();
    let attacked = render::plan(&hostile(plain.clone()), &pki, &templates).unwrap();

    let before = files(&baseline);
    let after = files(&attacked);
    assert_eq!(before.len(), after.len());
    let mut seen_values = BTreeSet::new();
    for ((name, b), (name2, a)) in before.iter().zip(&after) {
        assert_eq!(name, name2);
        let lines = |f: &PlannedFile| f.bytes.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(lines(a), lines(b), "{name}: a value added a line");
        if !is_structured(name) {
            continue;
        }
        let (keys_before, _) = shape(name, &b.bytes);
        let (keys_after, strings) = shape(name, &a.bytes);
        assert_eq!(
            keys_after,
            keys_before,
            "{name}: a value changed the keys:\n{}",
            String::from_utf8_lossy(&a.bytes)
        );
        for value in [IMAGE, NAMESPACE, DOMAIN, EVICTION, CLUSTER_NAME] {
            if strings.iter().any(|s| s == value) {
                seen_values.insert(value);
            }
        }
        // The Corefile is text inside a block scalar: the upstream stays on its line.
        for s in &strings {
            assert!(
                !s.lines().any(|l| l.trim() == "hosts {"),
                "{name}: the DNS upstream added a Corefile block:\n{s}"
            );
        }
    }
    // Each value arrived whole, as the value of its own field.
    for value in [IMAGE, NAMESPACE, DOMAIN, EVICTION] {
        assert!(
            seen_values.contains(value),
            "{value:?} is in no rendered field"
        );
    }
    assert!(seen_values.contains(CLUSTER_NAME) || attacked.cluster == CLUSTER_NAME);
}

#[test]
fn an_unusable_encryption_key_stops_the_plan_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster();
    let pki = pki_for(&c, dir.path());
    let key_path = dir.path().join("pki/encryption.key");
    let templates = Templates::load(None).unwrap();
    for garbage in [
        "c2VjcmV0\n      - identity: {}\n",
        "not base64 at all!",
        "QUJD\n",
        "",
    ] {
        fs::write(&key_path, garbage).unwrap();
        let Err(err) = render::plan(&c, &pki, &templates) else {
            panic!("the key {garbage:?} was used");
        };
        let msg = err.to_string();
        assert!(msg.contains("encryption.key"), "{msg}");
        assert_eq!(err.exit_code(), 2, "{msg}");
        if !garbage.is_empty() {
            assert!(!msg.contains(garbage.trim()), "{msg}");
        }
    }
}

/// `check` reads the encryption key of the PKI directory beside the inventory, when there is
/// one: an unusable key, or anything but a regular file there, fails at `check` (exit 2,
/// never quoted), not at `install`.
#[test]
fn check_refuses_an_unusable_encryption_key_beside_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_k8s-boot");
    let init = std::process::Command::new(bin)
        .arg("init")
        .output()
        .unwrap();
    let inventory = dir.path().join("hosts.yaml");
    fs::write(&inventory, &init.stdout).unwrap();
    let check = || {
        std::process::Command::new(bin)
            .args(["check", "--inventory"])
            .arg(&inventory)
            .output()
            .unwrap()
    };
    // No PKI yet: nothing to read.
    assert!(check().status.success());
    let certs = std::process::Command::new(bin)
        .args(["certs", "--inventory"])
        .arg(&inventory)
        .output()
        .unwrap();
    assert!(certs.status.success(), "{certs:?}");
    assert!(check().status.success(), "the key certs made is refused");

    let key = dir.path().join("pki/encryption.key");
    for garbage in ["S0VZS0VZS0VZ\n", "not base64 at all!", ""] {
        fs::write(&key, garbage).unwrap();
        let out = check();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{garbage:?} accepted: {err}");
        assert!(err.contains("encryption.key"), "{err}");
        if !garbage.is_empty() {
            assert!(!err.contains(garbage.trim()), "{err}");
        }
    }
    fs::remove_file(&key).unwrap();
    symlink("/nonexistent/encryption.key", &key).unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a dangling link accepted: {err}"
    );
    assert!(err.contains("not a regular file"), "{err}");
}

/// A templates directory holding `files` (name, text).
fn overrides(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

fn load_error(dir: &Path) -> String {
    match Templates::load(Some(dir)) {
        Ok(_) => panic!("the overrides in {} were accepted", dir.display()),
        Err(e) => {
            assert!(matches!(e, RenderError::Override { .. }), "{e}");
            assert_eq!(e.exit_code(), 2);
            e.to_string()
        }
    }
}

#[test]
fn overrides_cannot_read_outside_their_directory() {
    // A link to the environment of whoever renders, and to a key outside.
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.key"), "PRIVATE").unwrap();
    for target in [
        Path::new("/proc/self/environ"),
        &outside.path().join("secret.key"),
    ] {
        let dir = overrides(&[]);
        fs::create_dir(dir.path().join("node")).unwrap();
        symlink(target, dir.path().join("node/kubelet.yaml")).unwrap();
        let msg = load_error(dir.path());
        assert!(msg.contains("outside the templates directory"), "{msg}");
        assert!(!msg.contains("PRIVATE"), "{msg}");
    }
    // A link to a directory (outside, or a loop back to itself).
    let dir = overrides(&[]);
    symlink(outside.path(), dir.path().join("node")).unwrap();
    assert!(load_error(dir.path()).contains("symbolic link to a directory"));
    let dir = overrides(&[]);
    symlink(dir.path(), dir.path().join("node")).unwrap();
    assert!(load_error(dir.path()).contains("symbolic link to a directory"));
    // A link to another file inside is fine.
    let dir = overrides(&[("etcd/etcd.service", "# {{ host.name }}\n")]);
    symlink("etcd.service", dir.path().join("etcd/etcd.yaml")).unwrap();
    Templates::load(Some(dir.path())).unwrap();
}

#[test]
fn overrides_must_be_small_regular_files() {
    let dir = overrides(&[]);
    fs::create_dir(dir.path().join("node")).unwrap();
    let fifo = dir.path().join("node/kubelet.yaml");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let msg = load_error(dir.path());
    assert!(msg.contains("FIFO"), "{msg}");
    assert!(started.elapsed().as_secs() < 5, "a FIFO was waited on");

    let big = "#".repeat((1 << 20) + 1);
    let dir = overrides(&[("node/kubelet.yaml", &big)]);
    assert!(load_error(dir.path()).contains("at most 1048576 bytes"));
}

#[test]
fn overrides_cannot_recurse_or_nest_without_bound() {
    let deep = format!(
        "{}x{}",
        "{% if true %}".repeat(100),
        "{% endif %}".repeat(100)
    );
    let chain: Vec<(String, String)> = [
        "node/kubelet.yaml",
        "node/kube-proxy.yaml",
        "node/sysctl.conf",
        "node/modules.conf",
    ]
    .windows(2)
    .map(|w| (w[0].to_string(), format!("{{% include \"{}\" %}}", w[1])))
    .chain([(
        "node/modules.conf".to_string(),
        "{% include \"node/kubelet.yaml\" %}".to_string(),
    )])
    .collect();
    let chain: Vec<(&str, &str)> = chain
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("node/kubelet.yaml", "{% include \"node/kubelet.yaml\" %}")],
            "calls itself again",
        ),
        (chain, "calls itself again"),
        (
            vec![(
                "node/kubelet.yaml",
                "{% macro f() %}{{ self::g() }}{% endmacro f %}{% macro g() %}{{ self::f() }}{% endmacro g %}{{ self::f() }}",
            )],
            "calls itself again",
        ),
        (vec![("node/kubelet.yaml", &deep)], "nest more than 64"),
    ];
    for (files, expected) in cases {
        let dir = overrides(&files);
        let msg = load_error(dir.path());
        assert!(msg.contains(expected), "{files:?}: {msg}");
    }
}

/// Renders the example with `files` as overrides; the error's text.
fn render_error(files: &[(&str, &str)]) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster();
    let pki = pki_for(&c, dir.path());
    let tpl = overrides(files);
    let templates = Templates::load(Some(tpl.path())).unwrap();
    let Err(err) = render::plan(&c, &pki, &templates) else {
        panic!("the overrides {files:?} rendered");
    };
    assert_eq!(err.exit_code(), 2, "{err}");
    let secrets = ["encryption.key", "kubelet-w1.key", "metrics-server.key"]
        .iter()
        .map(|f| {
            let bytes = fs::read(dir.path().join("pki").join(f)).unwrap();
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            use base64::Engine;
            if f.ends_with(".key") && !f.starts_with("encryption") {
                base64::engine::general_purpose::STANDARD.encode(&bytes)
            } else {
                text
            }
        })
        .collect();
    (err.to_string(), secrets)
}

/// No 8-character run of a secret, forwards or backwards, is in `msg`.
fn assert_shows_no_part_of(msg: &str, secrets: &[String]) {
    for s in secrets {
        let reversed: String = s.chars().rev().collect();
        for text in [s, &reversed] {
            let chars: Vec<char> = text.chars().collect();
            for w in chars.windows(8) {
                let run: String = w.iter().collect();
                assert!(!msg.contains(&run), "`{run}` of a secret is in: {msg}");
            }
        }
    }
}

#[test]
fn key_material_reaches_neither_other_templates_nor_error_messages() {
    // Templates that need no key do not have it.
    for (name, text) in [
        ("node/kubelet.yaml", "{{ encryption_key }}"),
        ("manifests/30-chat.yaml", "{{ metrics_server.key_b64 }}"),
        ("node/kube-proxy.yaml", "{{ key_data }}"),
    ] {
        let (msg, secrets) = render_error(&[(name, text)]);
        assert!(msg.contains("not found in context"), "{msg}");
        assert_shows_no_part_of(&msg, &secrets);
    }
    // Templates that do have it cannot print it, transformed, into their error.
    for (name, text) in [
        (
            "control-plane/encryption-config.yaml",
            "{{ throw(message=encryption_key | reverse) }}",
        ),
        (
            "control-plane/encryption-config.yaml",
            "{{ throw(message=encryption_key | truncate(length=12, end=\"\")) }}",
        ),
        (
            "control-plane/encryption-config.yaml",
            "{% if encryption_key is starting_with(\"A\") %}{{ throw(message=\"A\") }}{% else %}{{ throw(message=encryption_key | slice(start=2) ) }}{% endif %}",
        ),
        (
            "kubeconfig.yaml",
            "{{ throw(message=key_data | split(pat=\"L\") | reverse | join(sep=\"|\")) }}",
        ),
        (
            "manifests/40-metrics-server.yaml",
            "{{ throw(message=metrics_server.key_b64 | replace(from=\"A\", to=\"@\")) }}",
        ),
    ] {
        let (msg, secrets) = render_error(&[(name, text)]);
        assert_shows_no_part_of(&msg, &secrets);
    }
    // An error that does not depend on the key keeps tera's message.
    let (msg, _) = render_error(&[(
        "control-plane/encryption-config.yaml",
        "{{ encryption_key }}{{ no_such_value }}",
    )]);
    assert!(msg.contains("no_such_value"), "{msg}");
}

#[test]
fn overrides_cannot_read_the_environment_or_loop_without_bound() {
    for (text, expected) in [
        ("{{ get_env(name=\"HOME\") }}", "get_env is disabled"),
        (
            "{% for i in range(end=100000000) %}{% endfor %}",
            "at most 10000",
        ),
    ] {
        let (msg, _) = render_error(&[("node/kubelet.yaml", text)]);
        assert!(msg.contains(expected), "{msg}");
    }
}

#[test]
fn an_override_too_deep_for_the_parser_is_refused_briefly() {
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(20_000), ")".repeat(20_000));
    let dir = overrides(&[("node/kubelet.yaml", &parens)]);
    let msg = load_error(dir.path());
    assert!(msg.contains("kubelet.yaml"), "{msg}");
    assert!(msg.len() < 3000, "{} bytes of message", msg.len());
}
