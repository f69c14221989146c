//! The PKI: every certificate parsed and checked field by field, verified by the real
//! `openssl verify`, idempotency, targeted re-issue, CA protection and `certs check`.

use k8s_boot::inventory::Cluster;
use k8s_boot::pki::profiles::{leaf_certs, San, Usage, CAS};
use k8s_boot::pki::{self, Action, Options, Pki, Status};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use x509_parser::prelude::*;

const INVENTORY: &str = "\
cluster:
  name: pkitest
  kubernetes_version: v1.36.0
  api_sans: [api.example.internal]
hosts:
  - {name: lb1, address: 10.1.0.10, roles: [lb]}
  - {name: m1, address: 10.1.0.11, roles: [etcd, control-plane, worker]}
  - {name: m2, address: 10.1.0.12, roles: [etcd, control-plane]}
  - {name: m3, address: 10.1.0.13, roles: [etcd, control-plane]}
  - {name: w1, address: 10.1.0.21, roles: [worker]}
";

fn cluster(src: &str) -> Cluster {
    Cluster::from_source(Path::new("hosts.yaml"), src).expect("valid inventory")
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.insert(p.clone(), fs::read(&p).unwrap());
        }
    }
    out
}

fn parse(pem_bytes: &[u8]) -> Vec<u8> {
    let (_, pem) = parse_x509_pem(pem_bytes).expect("PEM");
    pem.contents
}

fn openssl_verify(ca: &Path, leaf: &Path) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .arg(leaf)
        .output()
        .expect("openssl must be installed (Debian package openssl)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn every_certificate_has_the_right_fields_and_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    let c = cluster(INVENTORY);
    let report = Pki::new(&pki_dir).ensure(&c, Options::default()).unwrap();
    assert!(report.actions.iter().all(|(_, a)| *a == Action::Created));
    assert_eq!(
        fs::metadata(&pki_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // CAs: self-signed, CA:TRUE, keyCertSign, ~10 years.
    for ca in CAS {
        let der = parse(&fs::read(pki_dir.join(format!("{}.crt", ca.file))).unwrap());
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.subject().to_string(), format!("CN={}", ca.common_name));
        assert_eq!(cert.issuer(), cert.subject());
        let bc = cert
            .basic_constraints()
            .unwrap()
            .expect("basicConstraints")
            .value;
        assert!(bc.ca, "{} must be a CA", ca.file);
        let ku = cert.key_usage().unwrap().expect("keyUsage").value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
            / 86400;
        assert_eq!(days, 3650, "CA validity incl. 1 h backdate rounds down");
        let key = pki_dir.join(format!("{}.key", ca.file));
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Three distinct CAs.
    let ca_keys: Vec<_> = CAS
        .iter()
        .map(|ca| fs::read(pki_dir.join(format!("{}.key", ca.file))).unwrap())
        .collect();
    assert!(ca_keys[0] != ca_keys[1] && ca_keys[1] != ca_keys[2]);

    let leaves = leaf_certs(&c);
    assert_eq!(
        leaves.len(),
        11 + 3 * 2 + 4 * 2,
        "11 cluster certs, 2 per etcd member, 2 per node"
    );
    for leaf in &leaves {
        let crt = pki_dir.join(format!("{}.crt", leaf.file));
        let der = parse(&fs::read(&crt).unwrap());
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, leaf.common_name, "{}", leaf.file);
        let org = cert
            .subject()
            .iter_organization()
            .next()
            .map(|o| o.as_str().unwrap().to_string());
        assert_eq!(org, leaf.organization, "{}", leaf.file);
        assert_eq!(pki::cert_sans(&cert), leaf.sans, "{}", leaf.file);
        let bc = cert
            .basic_constraints()
            .unwrap()
            .expect("basicConstraints")
            .value;
        assert!(!bc.ca, "{} must not be a CA", leaf.file);
        let ku = cert.key_usage().unwrap().expect("keyUsage").value;
        assert!(
            ku.digital_signature() && !ku.key_cert_sign(),
            "{}",
            leaf.file
        );
        let eku = cert
            .extended_key_usage()
            .unwrap()
            .expect("extendedKeyUsage")
            .value;
        assert_eq!(
            eku.server_auth,
            leaf.usage != Usage::Client,
            "{}",
            leaf.file
        );
        assert_eq!(
            eku.client_auth,
            leaf.usage != Usage::Server,
            "{}",
            leaf.file
        );
        let secs = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(
            secs,
            365 * 86400 + 3600,
            "{}: 365 days plus 1 h backdate",
            leaf.file
        );
        let key = pki_dir.join(format!("{}.key", leaf.file));
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let ca_file = CAS.iter().find(|ca| ca.kind == leaf.ca).unwrap().file;
        let (ok, text) = openssl_verify(&pki_dir.join(format!("{ca_file}.crt")), &crt);
        assert!(ok, "openssl verify {}: {text}", leaf.file);
        // And it must not verify against another CA.
        let other = CAS.iter().find(|ca| ca.kind != leaf.ca).unwrap().file;
        let (ok, _) = openssl_verify(&pki_dir.join(format!("{other}.crt")), &crt);
        assert!(!ok, "{} verified against the wrong CA {other}", leaf.file);
    }

    // Spot checks of the profiles the cluster depends on.
    let apiserver = leaves.iter().find(|l| l.file == "apiserver").unwrap();
    for san in [
        San::Ip("10.96.0.1".parse().unwrap()),
        San::Ip("127.0.0.1".parse().unwrap()),
        San::Ip("10.1.0.10".parse().unwrap()),
        San::Ip("10.1.0.13".parse().unwrap()),
        San::Dns("kubernetes.default.svc.cluster.local".into()),
        San::Dns("api.example.internal".into()),
        San::Dns("m2".into()),
    ] {
        assert!(apiserver.sans.contains(&san), "apiserver lacks {san}");
    }
    assert!(
        !apiserver
            .sans
            .contains(&San::Ip("10.1.0.21".parse().unwrap())),
        "workers are not apiserver SANs"
    );
    let kubelet_w1 = leaves.iter().find(|l| l.file == "kubelet-w1").unwrap();
    assert_eq!(kubelet_w1.common_name, "system:node:w1");
    assert_eq!(kubelet_w1.organization.as_deref(), Some("system:nodes"));
    assert_eq!(kubelet_w1.hosts, vec!["w1".to_string()]);
    // The everyday admin is a group RBAC can unbind; system:masters is the super-admin's
    // alone, and neither goes to a host as a file.
    let admin = leaves.iter().find(|l| l.file == "admin").unwrap();
    assert_eq!(
        admin.organization.as_deref(),
        Some("k8s-boot:cluster-admins")
    );
    assert!(admin.hosts.is_empty(), "{:?}", admin.hosts);
    let masters: Vec<&str> = leaves
        .iter()
        .filter(|l| l.organization.as_deref() == Some("system:masters"))
        .map(|l| l.file.as_str())
        .collect();
    assert_eq!(masters, ["super-admin"]);
    let super_admin = leaves.iter().find(|l| l.file == "super-admin").unwrap();
    assert!(super_admin.hosts.is_empty(), "{:?}", super_admin.hosts);
    let etcd_m3 = leaves.iter().find(|l| l.file == "etcd/server-m3").unwrap();
    assert_eq!(
        etcd_m3.sans,
        vec![
            San::Dns("localhost".into()),
            San::Dns("m3".into()),
            San::Ip("10.1.0.13".parse().unwrap()),
            San::Ip("127.0.0.1".parse().unwrap()),
        ]
    );

    // The service-account key pair is its own, not a CA key.
    let sa = fs::read(pki_dir.join("sa.key")).unwrap();
    assert!(!ca_keys.contains(&sa));
    assert_eq!(
        fs::metadata(pki_dir.join("sa.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(pki_dir.join("sa.key"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        out.stdout,
        fs::read(pki_dir.join("sa.pub")).unwrap(),
        "sa.pub is the public half of sa.key"
    );
}

#[test]
fn second_run_changes_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(INVENTORY);
    let pki = Pki::new(dir.path());
    pki.ensure(&c, Options::default()).unwrap();
    let before = snapshot(dir.path());
    let report = pki.ensure(&c, Options::default()).unwrap();
    assert_eq!(report.changed(), 0, "{:?}", report.actions);
    assert_eq!(before, snapshot(dir.path()));
}

#[test]
fn changing_an_address_reissues_exactly_the_certs_containing_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.ensure(&cluster(INVENTORY), Options::default()).unwrap();
    let before = snapshot(dir.path());

    let moved = INVENTORY.replace("10.1.0.12", "10.1.0.42");
    let report = pki.ensure(&cluster(&moved), Options::default()).unwrap();
    let reissued: Vec<&str> = report
        .actions
        .iter()
        .filter(|(_, a)| matches!(a, Action::Reissued(_)))
        .map(|(f, _)| f.as_str())
        .collect();
    assert_eq!(
        reissued,
        [
            "apiserver.crt",
            "etcd/server-m2.crt",
            "etcd/peer-m2.crt",
            "kubelet-server-m2.crt"
        ]
    );
    assert!(report.actions.iter().any(|(f, a)| f == "apiserver.crt"
        && matches!(a, Action::Reissued(why) if why.contains("IP:10.1.0.42") && why.contains("IP:10.1.0.12"))));
    let after = snapshot(dir.path());
    let changed: Vec<String> = after
        .iter()
        .filter(|(p, b)| before.get(*p) != Some(b))
        .map(|(p, _)| p.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(changed.len(), 8, "4 certs and their keys: {changed:?}");
    assert!(
        changed
            .iter()
            .all(|f| f.starts_with("apiserver.") || f.contains("-m2.")),
        "{changed:?}"
    );
}

#[test]
fn a_ca_is_never_replaced_silently() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(INVENTORY);
    let pki = Pki::new(dir.path());
    pki.ensure(&c, Options::default()).unwrap();
    let ca_before = fs::read(dir.path().join("ca.crt")).unwrap();

    // Without its key the CA cannot sign: refuse rather than replace it.
    fs::rename(dir.path().join("ca.key"), dir.path().join("ca.key.bak")).unwrap();
    let err = pki.ensure(&c, Options::default()).unwrap_err().to_string();
    assert!(
        err.contains("ca.key is missing") && err.contains("--rotate-cas"),
        "{err}"
    );
    assert_eq!(fs::read(dir.path().join("ca.crt")).unwrap(), ca_before);
    fs::rename(dir.path().join("ca.key.bak"), dir.path().join("ca.key")).unwrap();

    // Explicit rotation replaces every CA and re-issues every leaf.
    let report = pki
        .ensure(
            &c,
            Options {
                rotate_cas: true,
                renew_leaves: false,
            },
        )
        .unwrap();
    assert_ne!(fs::read(dir.path().join("ca.crt")).unwrap(), ca_before);
    let leaves = leaf_certs(&c).len();
    let reissued = report
        .actions
        .iter()
        .filter(|(_, a)| matches!(a, Action::Reissued(_)))
        .count();
    assert_eq!(reissued, CAS.len() + leaves);
    assert!(pki
        .check(&c)
        .unwrap()
        .iter()
        .all(|r| !r.status.is_failure()));
}

/// Issues `file` (a leaf of the Kubernetes CA) with the given validity, bypassing `ensure`.
fn forge(dir: &Path, file: &str, cn: &str, ca: &str, not_after_days: i64) {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key =
        KeyPair::from_pem(&fs::read_to_string(dir.join(format!("{ca}.key"))).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(
        &fs::read_to_string(dir.join(format!("{ca}.crt"))).unwrap(),
        ca_key,
    )
    .unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = ::time::OffsetDateTime::now_utc();
    params.not_before = now - ::time::Duration::days(400);
    params.not_after = now + ::time::Duration::days(not_after_days);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
    let key_path = dir.join(format!("{file}.key"));
    fs::write(&key_path, key.serialize_pem()).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn status_of(pki: &Pki, c: &Cluster, file: &str) -> Status {
    pki.check(c)
        .unwrap()
        .into_iter()
        .find(|r| r.file == file)
        .unwrap()
        .status
}

#[test]
fn check_flags_expired_expiring_foreign_and_outdated_certs() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(INVENTORY);
    let pki = Pki::new(dir.path());
    pki.ensure(&c, Options::default()).unwrap();
    assert!(
        pki.check(&c)
            .unwrap()
            .iter()
            .all(|r| r.status == Status::Ok),
        "fresh PKI is all ok"
    );

    forge(dir.path(), "scheduler", "system:kube-scheduler", "ca", -1);
    assert_eq!(
        status_of(&pki, &c, "scheduler.crt"),
        Status::Bad("expired".into())
    );
    forge(dir.path(), "kube-proxy", "system:kube-proxy", "ca", 10);
    assert_eq!(status_of(&pki, &c, "kube-proxy.crt"), Status::Expiring);
    forge(
        dir.path(),
        "controller-manager",
        "system:kube-controller-manager",
        "etcd/ca",
        100,
    );
    assert_eq!(
        status_of(&pki, &c, "controller-manager.crt"),
        Status::Bad("not signed by its CA ca".into())
    );
    let more_sans = INVENTORY.replace(
        "[api.example.internal]",
        "[api.example.internal, k8s.example.internal]",
    );
    assert_eq!(
        status_of(&pki, &cluster(&more_sans), "apiserver.crt"),
        Status::Bad("lacks SAN DNS:k8s.example.internal".into())
    );
    fs::remove_file(dir.path().join("kubelet-w1.crt")).unwrap();
    assert_eq!(
        status_of(&pki, &c, "kubelet-w1.crt"),
        Status::Bad("missing".into())
    );

    // `certs` repairs what is broken, and renews what expires within 30 days.
    let report = pki.ensure(&c, Options::default()).unwrap();
    let action = |f: &str| {
        report
            .actions
            .iter()
            .find(|(n, _)| n == f)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(action("scheduler.crt"), Action::Reissued("expired".into()));
    assert_eq!(
        action("controller-manager.crt"),
        Action::Reissued("not signed by its CA ca".into())
    );
    assert_eq!(action("kubelet-w1.crt"), Action::Created);
    assert!(
        matches!(action("kube-proxy.crt"), Action::Reissued(why) if why.starts_with("expires ") && why.ends_with(": renewed"))
    );
    // `certs renew` re-issues every leaf, the expiring one included.
    pki.ensure(
        &c,
        Options {
            rotate_cas: false,
            renew_leaves: true,
        },
    )
    .unwrap();
    assert!(pki
        .check(&c)
        .unwrap()
        .iter()
        .all(|r| r.status == Status::Ok));
}

#[test]
fn certs_cli_creates_then_checks() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("hosts.yaml");
    fs::write(&inv, INVENTORY).unwrap();
    let bin = env!("CARGO_BIN_EXE_k8s-boot");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .arg("--inventory")
            .arg(&inv)
            .output()
            .unwrap()
    };
    let check = run(&["certs", "check"]);
    assert_eq!(
        check.status.code(),
        Some(1),
        "missing PKI must fail the check"
    );
    let certs = run(&["certs"]);
    assert!(
        certs.status.success(),
        "{}",
        String::from_utf8_lossy(&certs.stderr)
    );
    assert!(
        dir.path().join("pki/ca.crt").exists(),
        "default PKI dir is pki/ next to the inventory"
    );
    let again = run(&["certs"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains(": 0 changed,"));
    let check = run(&["certs", "check"]);
    assert_eq!(check.status.code(), Some(0));
    let table = String::from_utf8_lossy(&check.stdout);
    assert!(table.lines().next().unwrap().contains("days-left"));
    assert!(table.contains("kubelet-w1.crt") && table.contains("CN=system:node:w1"));
    // Machine-readable form for CI and monitoring.
    let json = run(&["certs", "check", "--output", "json"]);
    assert_eq!(json.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["problems"], 0);
    let kubelet = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == "kubelet-w1.crt")
        .unwrap();
    assert_eq!(kubelet["status"], "ok");
    assert!(kubelet["days_left"].as_i64().unwrap() >= 364);
    // Keys never appear in output.
    assert!(
        !table.contains("PRIVATE KEY")
            && !String::from_utf8_lossy(&certs.stdout).contains("PRIVATE KEY")
    );
}

#[test]
fn keys_are_protected_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(INVENTORY);
    let pki = Pki::new(dir.path());
    pki.ensure(&c, Options::default()).unwrap();
    let p = |f: &str| dir.path().join(f);

    // A CA key without its certificate is not silently replaced by a new CA.
    fs::rename(p("etcd/ca.crt"), p("etcd/ca.crt.bak")).unwrap();
    let err = pki.ensure(&c, Options::default()).unwrap_err().to_string();
    assert!(
        err.contains("certificate") && err.contains("etcd/ca.crt is missing"),
        "{err}"
    );
    fs::rename(p("etcd/ca.crt.bak"), p("etcd/ca.crt")).unwrap();

    // certs check notices an sa.pub that is not sa.key's public half.
    let sa_pub_before = fs::read(p("sa.pub")).unwrap();
    fs::copy(p("admin.key"), p("sa.pub")).unwrap();
    assert_eq!(
        status_of(&pki, &c, "sa.pub"),
        Status::Bad("does not match sa.key".into())
    );
    fs::write(p("sa.pub"), &sa_pub_before).unwrap();
    assert_eq!(status_of(&pki, &c, "sa.pub"), Status::Ok);

    // sa.pub is rebuilt from sa.key; the signing key itself never changes.
    let sa_key = fs::read(p("sa.key")).unwrap();
    let sa_pub = fs::read(p("sa.pub")).unwrap();
    fs::remove_file(p("sa.pub")).unwrap();
    let report = pki.ensure(&c, Options::default()).unwrap();
    assert!(report
        .actions
        .iter()
        .any(|(f, a)| f == "sa.key" && matches!(a, Action::Reissued(_))));
    assert_eq!(fs::read(p("sa.key")).unwrap(), sa_key);
    assert_eq!(fs::read(p("sa.pub")).unwrap(), sa_pub);
    // Without sa.key, refuse instead of invalidating every service-account token.
    fs::remove_file(p("sa.key")).unwrap();
    let err = pki.ensure(&c, Options::default()).unwrap_err().to_string();
    assert!(err.contains("sa.key is missing"), "{err}");
    fs::write(p("sa.key"), &sa_key).unwrap();

    // `certs check` looks at keys too, and tells missing from unreadable.
    fs::remove_file(p("scheduler.key")).unwrap();
    fs::copy(p("admin.key"), p("kube-proxy.key")).unwrap();
    fs::write(p("kubelet-m1.crt"), "not a certificate").unwrap();
    fs::remove_file(p("front-proxy-ca.key")).unwrap();
    assert_eq!(
        status_of(&pki, &c, "scheduler.crt"),
        Status::Bad("scheduler.key: missing".into())
    );
    assert_eq!(
        status_of(&pki, &c, "kube-proxy.crt"),
        Status::Bad("kube-proxy.key: does not match kube-proxy.crt".into())
    );
    assert_eq!(
        status_of(&pki, &c, "kubelet-m1.crt"),
        Status::Bad("unreadable".into())
    );
    assert_eq!(
        status_of(&pki, &c, "front-proxy-ca.crt"),
        Status::Bad("front-proxy-ca.key: missing".into())
    );
    assert_eq!(
        status_of(&pki, &c, "front-proxy-client.crt"),
        Status::Bad("its CA front-proxy-ca is unusable".into())
    );
}

#[test]
fn an_expired_ca_is_refused() {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(INVENTORY);
    let pki = Pki::new(dir.path());
    pki.ensure(&c, Options::default()).unwrap();
    // Replace the etcd CA by an expired one with the same key.
    let key =
        KeyPair::from_pem(&fs::read_to_string(dir.path().join("etcd/ca.key")).unwrap()).unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "etcd-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = ::time::OffsetDateTime::now_utc();
    params.not_before = now - ::time::Duration::days(10);
    params.not_after = now - ::time::Duration::days(1);
    fs::write(
        dir.path().join("etcd/ca.crt"),
        params.self_signed(&key).unwrap().pem(),
    )
    .unwrap();
    let err = pki.ensure(&c, Options::default()).unwrap_err().to_string();
    assert!(
        err.contains("etcd/ca.crt has expired") && err.contains("--rotate-cas"),
        "{err}"
    );
    assert_eq!(
        status_of(&pki, &c, "etcd/ca.crt"),
        Status::Bad("expired".into())
    );
}

/// A PKI made by `k8s-boot certs` in a temporary directory, driven through the CLI.
struct Cli {
    tmp: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        let cli = Cli {
            tmp: tempfile::tempdir().unwrap(),
        };
        fs::write(cli.tmp.path().join("hosts.yaml"), INVENTORY).unwrap();
        let out = cli.run(&["certs"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        cli
    }
    fn pki(&self) -> PathBuf {
        self.tmp.path().join("pki")
    }
    fn p(&self, file: &str) -> PathBuf {
        self.pki().join(file)
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
            .args(args)
            .arg("--inventory")
            .arg(self.tmp.path().join("hosts.yaml"))
            .output()
            .unwrap()
    }
    /// `certs check` in text and JSON: both exit with the same status and read only. Returns
    /// the exit status, the text output and the JSON rows by file.
    fn check(&self) -> (Option<i32>, String, BTreeMap<String, serde_json::Value>) {
        let before = modes_and_bytes(&self.pki());
        let out = self.run(&["certs", "check"]);
        let json = self.run(&["certs", "check", "--output", "json"]);
        assert_eq!(out.status.code(), json.status.code());
        assert_eq!(modes_and_bytes(&self.pki()), before, "certs check wrote");
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(v["schema_version"], 1);
        let rows = v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["file"].as_str().unwrap().to_string(), r.clone()))
            .collect();
        let all = text(&out) + &text(&json);
        self.assert_no_secrets(&all);
        (out.status.code(), all, rows)
    }
    /// No line of any private key or of the encryption key appears in `output`.
    fn assert_no_secrets(&self, output: &str) {
        for (path, (_, bytes)) in modes_and_bytes(&self.pki()) {
            let name = path.to_string_lossy();
            if !(name.ends_with(".key") || name.ends_with(".key.bak")) {
                continue;
            }
            for line in String::from_utf8_lossy(&bytes).lines() {
                let line = line.trim();
                if line.len() >= 8 && !line.starts_with("-----") {
                    assert!(
                        !output.contains(line),
                        "{name}: key material in output:\n{output}"
                    );
                }
            }
        }
    }
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Every file under `dir` with its mode and bytes.
fn modes_and_bytes(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    snapshot(dir)
        .into_iter()
        .map(|(p, b)| {
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
            (p, (mode, b))
        })
        .collect()
}

fn openssl(args: &[&str], cwd: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl must be installed (Debian package openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

fn status_text(rows: &BTreeMap<String, serde_json::Value>, file: &str) -> String {
    rows[file]["status"].as_str().unwrap().to_string()
}

#[test]
fn check_reports_private_keys_wider_than_0600() {
    let cli = Cli::new();
    assert_eq!(cli.check().0, Some(0));
    for key in ["admin.key", "etcd/ca.key", "sa.key", "encryption.key"] {
        fs::set_permissions(cli.p(key), fs::Permissions::from_mode(0o644)).unwrap();
    }
    // Narrower than 0600 is fine.
    fs::set_permissions(cli.p("scheduler.key"), fs::Permissions::from_mode(0o400)).unwrap();
    let (code, out, rows) = cli.check();
    assert_eq!(code, Some(1), "{out}");
    let mode = |key: &str| format!("{key}: mode 0644, expected 0600 (chmod 600)");
    assert_eq!(status_text(&rows, "admin.crt"), mode("admin.key"));
    assert_eq!(status_text(&rows, "etcd/ca.crt"), mode("etcd/ca.key"));
    assert_eq!(status_text(&rows, "sa.key"), mode("sa.key"));
    assert_eq!(status_text(&rows, "encryption.key"), mode("encryption.key"));
    assert_eq!(status_text(&rows, "scheduler.crt"), "ok");
    assert!(out.contains(&mode("admin.key")), "{out}");
    assert!(out.contains("4 problem(s)"), "{out}");
    // Another problem on the same row is listed too.
    fs::remove_file(cli.p("admin.crt")).unwrap();
    let (_, _, rows) = cli.check();
    assert_eq!(
        status_text(&rows, "admin.crt"),
        format!("missing; {}", mode("admin.key"))
    );
}

#[test]
fn check_reports_a_key_of_another_pair() {
    let cli = Cli::new();
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "kubelet-w1.key",
        ],
        &cli.pki(),
    );
    fs::set_permissions(cli.p("kubelet-w1.key"), fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out, rows) = cli.check();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        status_text(&rows, "kubelet-w1.crt"),
        "kubelet-w1.key: does not match kubelet-w1.crt"
    );
    // `certs` re-issues the pair, saying why.
    let out = cli.run(&["certs"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out)
            .contains("reissued kubelet-w1.crt (kubelet-w1.key: does not match kubelet-w1.crt)"),
        "{}",
        text(&out)
    );
    assert_eq!(cli.check().0, Some(0));
}

#[test]
fn check_verifies_each_leaf_against_the_ca_of_its_profile() {
    let cli = Cli::new();
    let dir = cli.pki();
    // A scheduler certificate with the right subject and usage, signed by the etcd CA.
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "scheduler.key",
        ],
        &dir,
    );
    fs::set_permissions(cli.p("scheduler.key"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-new",
            "-key",
            "scheduler.key",
            "-subj",
            "/CN=system:kube-scheduler",
            "-out",
            "scheduler.csr",
        ],
        &dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "scheduler.csr",
            "-CA",
            "etcd/ca.crt",
            "-CAkey",
            "etcd/ca.key",
            "-set_serial",
            "7",
            "-days",
            "100",
            "-extfile",
            "leaf.ext",
            "-out",
            "scheduler.crt",
        ],
        &dir,
    );
    assert!(openssl_verify(&cli.p("etcd/ca.crt"), &cli.p("scheduler.crt")).0);
    assert!(!openssl_verify(&cli.p("ca.crt"), &cli.p("scheduler.crt")).0);
    let (code, out, rows) = cli.check();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        status_text(&rows, "scheduler.crt"),
        "not signed by its CA ca"
    );
    assert_eq!(rows["scheduler.crt"]["issuer"], "CN=etcd-ca");

    // A CA certificate without CA:TRUE (same key, self-signed) is refused by both commands.
    fs::write(
        dir.join("ca.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyCertSign\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=kubernetes-ca",
            "-out",
            "ca.csr",
        ],
        &dir,
    );
    openssl(
        &[
            "x509", "-req", "-in", "ca.csr", "-key", "ca.key", "-days", "100", "-extfile",
            "ca.ext", "-out", "ca.crt",
        ],
        &dir,
    );
    let (code, out, rows) = cli.check();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        status_text(&rows, "ca.crt"),
        "not a CA certificate (no CA:TRUE or keyCertSign)"
    );
    // A PKI `certs` cannot build on is invalid input.
    let out = cli.run(&["certs"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out);
    assert!(
        err.contains(&format!(
            "{}: not a CA certificate",
            cli.p("ca.crt").display()
        )),
        "{err}"
    );
}

/// Why a truncated or corrupted PKCS#8 key is not usable.
const DAMAGED: &str = "damaged, or of an algorithm not supported (expected unencrypted PKCS#8 (BEGIN PRIVATE KEY), as written by k8s-boot: ECDSA P-256)";

#[test]
fn a_truncated_ca_key_is_reported_as_the_key() {
    let cli = Cli::new();
    let key = fs::read(cli.p("ca.key")).unwrap();
    fs::rename(cli.p("ca.key"), cli.p("ca.key.bak")).unwrap();
    fs::write(cli.p("ca.key"), &key[..key.len() / 2]).unwrap();
    fs::set_permissions(cli.p("ca.key"), fs::Permissions::from_mode(0o600)).unwrap();

    let out = cli.run(&["certs"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out);
    cli.assert_no_secrets(&err);
    assert!(
        err.contains(&format!(
            "{}: not a usable private key",
            cli.p("ca.key").display()
        )),
        "{err}"
    );
    assert!(
        !err.contains(&format!("{}:", cli.p("ca.crt").display())),
        "{err}"
    );
    let (code, out, rows) = cli.check();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        status_text(&rows, "ca.crt"),
        format!("ca.key: not a usable private key: {DAMAGED}")
    );

    // The same for a corrupt sa.key: the error names it and quotes nothing of it.
    fs::rename(cli.p("ca.key.bak"), cli.p("ca.key")).unwrap();
    let sa = fs::read_to_string(cli.p("sa.key")).unwrap();
    let mut lines: Vec<&str> = sa.lines().collect();
    let body = lines[1].to_string();
    let broken = format!("{}*{}", &body[..10], &body[11..]);
    lines[1] = &broken;
    fs::write(cli.p("sa.key.bak"), &sa).unwrap();
    fs::write(cli.p("sa.key"), lines.join("\n")).unwrap();
    let out = cli.run(&["certs"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out);
    assert!(
        err.contains(&format!(
            "{}: not a usable private key",
            cli.p("sa.key").display()
        )),
        "{err}"
    );
    cli.assert_no_secrets(&err);
    assert!(!err.contains(&broken[..20]), "{err}");
    let (code, out, rows) = cli.check();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        status_text(&rows, "sa.key"),
        format!("sa.key: not a usable private key: {DAMAGED}")
    );
    assert_eq!(
        status_text(&rows, "sa.pub"),
        "cannot be checked: sa.key is not usable"
    );
}

#[test]
fn check_validates_the_encryption_key() {
    let cli = Cli::new();
    let dir = cli.pki();
    // A key made by openssl in the expected format is accepted.
    openssl(&["rand", "-base64", "-out", "encryption.key", "32"], &dir);
    fs::set_permissions(cli.p("encryption.key"), fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out, rows) = cli.check();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(status_text(&rows, "encryption.key"), "ok");

    openssl(&["rand", "-base64", "-out", "encryption.key", "16"], &dir);
    let short = fs::read_to_string(cli.p("encryption.key")).unwrap();
    let (code, out, rows) = cli.check();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        status_text(&rows, "encryption.key"),
        "decodes to 16 bytes, secretbox needs 32"
    );
    assert!(!out.contains(short.trim()), "{out}");

    let not_b64 = "this-is-not*base64!\n";
    fs::write(cli.p("encryption.key"), not_b64).unwrap();
    let (code, out, rows) = cli.check();
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        status_text(&rows, "encryption.key"),
        "not base64 (expected the standard base64 of 32 random bytes)"
    );
    assert!(!out.contains(not_b64.trim()), "{out}");
    assert!(out.contains("encryption.key"), "{out}");

    // certs keeps an existing key (replacing it would make every stored Secret unreadable).
    let out = cli.run(&["certs"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        fs::read_to_string(cli.p("encryption.key")).unwrap(),
        not_b64
    );
}

#[test]
fn a_pki_dir_that_is_a_file_is_named_and_refused() {
    let cli = Cli::new();
    let file = cli.tmp.path().join("not-a-dir");
    fs::write(&file, "x").unwrap();
    let expect = format!(
        "PKI directory {} exists but is not a directory: give --pki-dir a directory",
        file.display()
    );
    for args in [
        &["certs"][..],
        &["certs", "renew"],
        &["certs", "check"],
        &["certs", "check", "--output", "json"],
    ] {
        let out = cli.run(&[args, &["--pki-dir", file.to_str().unwrap()]].concat());
        let err = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&expect), "{args:?}: {err}");
        assert!(!err.contains("os error"), "{args:?}: {err}");
    }
    // A path under a file names the file.
    let under = file.join("pki");
    let out = cli.run(&["certs", "--pki-dir", under.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains(&format!("{} exists but is not a directory", file.display())),
        "{}",
        text(&out)
    );
    // Everything else that sets up the PKI (Pki::ensure, in a dry run too) or needs it.
    let render = cli.run(&[
        "render",
        "--pki-dir",
        file.to_str().unwrap(),
        "--out",
        cli.tmp.path().join("out").to_str().unwrap(),
    ]);
    assert!(!render.status.success());
    assert!(text(&render).contains(&expect), "{}", text(&render));
    assert!(!cli.tmp.path().join("out").exists());
    let c = cluster(INVENTORY);
    for pki in [Pki::new(&file), Pki::dry_run(&file)] {
        let err = pki.ensure(&c, Options::default()).unwrap_err().to_string();
        assert!(err.contains(&expect), "{err}");
    }
    let err = Pki::new(&file)
        .require_complete(&c)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&expect), "{err}");
    assert_eq!(fs::read(&file).unwrap(), b"x");

    // A file where the etcd/ subdirectory belongs is named as well.
    let other = cli.tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("etcd"), "x").unwrap();
    let err = Pki::new(&other)
        .ensure(&c, Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "{} (in PKI directory {}) exists but is not a directory",
            other.join("etcd").display(),
            other.display()
        )),
        "{err}"
    );
}

#[test]
fn check_json_uses_null_for_unknown_values_and_names_hosts() {
    let cli = Cli::new();
    fs::write(cli.p("admin.crt"), "not a certificate").unwrap();
    let json = cli.run(&["certs", "check", "--output", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let top: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(top.len(), 5, "{top:?}");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["command"], "certs check");
    assert_eq!(v["problems"], 1);
    assert_eq!(v["pki_dir"], cli.pki().to_str().unwrap());
    let rows = v["certificates"].as_array().unwrap();
    let c = cluster(INVENTORY);
    assert_eq!(rows.len(), CAS.len() + leaf_certs(&c).len() + 3);
    for row in rows {
        let obj = row.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys.len(),
            7,
            "file, host, subject, issuer, not_after, days_left, status: {keys:?}"
        );
        for key in [
            "file",
            "host",
            "subject",
            "issuer",
            "not_after",
            "days_left",
        ] {
            assert!(obj.contains_key(key), "{key} in {row}");
            assert_ne!(obj[key], "-", "{key} in {row}: unknown is null");
        }
        assert!(!obj.contains_key("name"));
        assert_eq!(
            row["not_after"].is_null(),
            row["days_left"].is_null(),
            "{row}"
        );
        let file = row["file"].as_str().unwrap();
        assert!(cli.p(file).exists() && !file.starts_with('/'), "{file}");
    }
    let row = |f: &str| rows.iter().find(|r| r["file"] == f).unwrap();
    assert_eq!(row("kubelet-w1.crt")["host"], "w1");
    assert_eq!(row("etcd/peer-m2.crt")["host"], "m2");
    assert!(row("apiserver.crt")["host"].is_null());
    assert!(row("ca.crt")["host"].is_null());
    let admin = row("admin.crt");
    assert_eq!(admin["status"], "unreadable");
    for key in ["subject", "issuer", "not_after", "days_left"] {
        assert!(admin[key].is_null(), "{key}: {admin}");
    }
    let sa = row("sa.key");
    assert!(sa["not_after"].is_null() && sa["issuer"].is_null(), "{sa}");
    assert_eq!(row("ca.crt")["not_after"].as_str().unwrap().len(), 10);

    // The text table keeps `-` for the same values.
    let table = text(&cli.run(&["certs", "check"]));
    let line = table.lines().find(|l| l.starts_with("admin.crt ")).unwrap();
    assert!(line.contains(" - ") && line.ends_with("- / -"), "{line}");
}
