//! A real three-member etcd cluster started from the etcd configuration `k8s-boot render`
//! writes for each etcd host, proving that the rendered peer and client TLS settings, URLs
//! and initial cluster form a working cluster that only accepts clients of the etcd CA.
//!
//! Debian's etcd-server package ships etcd 3.4, while production hosts run the upstream etcd
//! release matching the Kubernetes minor (see the version profiles). Every key the rendered
//! etcd.yaml uses (name, data-dir, listen/advertise URLs, initial-cluster*, logger and the
//! client/peer-transport-security blocks) has the same name and meaning in 3.4 and 3.5/3.6,
//! so this test exercises the same configuration.
//!
//! The members run side by side on 127.0.0.11-13 (127.0.0.1 is avoided in case something
//! else listens on 2379). Only host paths are rewritten: each credential the unit loads
//! (`LoadCredential=`) points at the PKI file of the rendered host tree it copies, and the
//! data directory at a temporary directory.

mod common;

use common::{describe, host, require_free, require_program, run, wait_for, Processes, Rendered};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const MEMBERS: [(&str, &str); 3] = [
    ("m1", "127.0.0.11"),
    ("m2", "127.0.0.12"),
    ("m3", "127.0.0.13"),
];

fn inventory() -> String {
    common::inventory_yaml(
        "etcdtest",
        &[
            host("lb1", "127.0.0.10", &["lb"]),
            host("m1", "127.0.0.11", &["etcd", "control-plane"]),
            host("m2", "127.0.0.12", &["etcd", "control-plane"]),
            host("m3", "127.0.0.13", &["etcd", "control-plane"]),
            host("w1", "127.0.0.14", &["worker"]),
        ],
        "",
    )
}

/// Where systemd puts etcd's credentials on a host.
const CREDENTIALS_DIR: &str = "/run/credentials/etcd.service";

/// The rendered etcd.yaml of `member` with only its host paths replaced.
fn rewrite_config(r: &Rendered, member: &str, data_dir: &Path) -> String {
    let rendered_path = r.host_file(member, "/etc/etcd/etcd.yaml");
    let rendered = fs::read_to_string(&rendered_path)
        .unwrap_or_else(|e| panic!("{}: {e}", rendered_path.display()));
    let data_line = "\ndata-dir: /var/lib/etcd\n";
    assert!(
        rendered.contains(data_line),
        "rendered etcd.yaml of {member} has no `data-dir: /var/lib/etcd` line:\n{rendered}"
    );
    // etcd reads its keys and certificates as systemd credentials: the unit's
    // `LoadCredential=NAME:PATH` lines say which PKI file each `%d/NAME` is a copy of.
    let unit_path = r.host_file(member, "/etc/systemd/system/etcd.service");
    let unit = fs::read_to_string(&unit_path).unwrap();
    let credentials: Vec<(String, PathBuf)> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("LoadCredential="))
        .map(|c| {
            let (name, path) = c.split_once(':').unwrap();
            (
                format!("{CREDENTIALS_DIR}/{name}"),
                r.host_file(member, path),
            )
        })
        .collect();
    let mut config = rendered.replace(
        data_line,
        &format!("\ndata-dir: {}\n", data_dir.to_str().unwrap()),
    );
    for (credential, file) in &credentials {
        config = config.replace(credential.as_str(), file.to_str().unwrap());
    }
    assert!(
        !config.contains(CREDENTIALS_DIR),
        "etcd.yaml of {member} names a credential its unit does not load:\n{config}\n{unit}"
    );
    // Nothing else may point at the real host filesystem.
    for line in config.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for root in [" /etc/", " /var/"] {
            assert!(
                !line.contains(root),
                "unexpected host path left in etcd.yaml of {member}: {line}"
            );
        }
    }
    config
}

struct Client {
    etcdctl: PathBuf,
    ca: PathBuf,
}

impl Client {
    /// `etcdctl` (v3 API) against `endpoints` with an optional client certificate pair.
    fn run(&self, endpoints: &str, cert: Option<(&Path, &Path)>, args: &[&str]) -> Output {
        self.run_with_timeout("4s", endpoints, cert, args)
    }

    fn run_with_timeout(
        &self,
        timeout: &str,
        endpoints: &str,
        cert: Option<(&Path, &Path)>,
        args: &[&str],
    ) -> Output {
        let mut cmd = Command::new(&self.etcdctl);
        cmd.env_clear()
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg(format!("--cacert={}", self.ca.display()))
            .arg("--dial-timeout=2s")
            .arg(format!("--command-timeout={timeout}"));
        if let Some((crt, key)) = cert {
            cmd.arg(format!("--cert={}", crt.display()))
                .arg(format!("--key={}", key.display()));
        }
        run(cmd.args(args))
    }
}

fn pair(pki: &Path, stem: &str) -> (PathBuf, PathBuf) {
    let p = (
        pki.join(format!("{stem}.crt")),
        pki.join(format!("{stem}.key")),
    );
    assert!(p.0.is_file() && p.1.is_file(), "missing {}", p.0.display());
    p
}

/// Ok if a member log has a "rejected connection" line whose error contains `reason`.
fn rejected(log: &str, reason: &str) -> Result<(), String> {
    if log
        .lines()
        .any(|l| l.contains("rejected connection") && l.contains(reason))
    {
        Ok(())
    } else {
        Err(format!("no `rejected connection` line with `{reason}`"))
    }
}

#[test]
fn rendered_etcd_members_form_a_tls_cluster_that_refuses_foreign_clients() {
    let etcd = require_program("etcd", "etcd-server");
    let etcdctl = require_program("etcdctl", "etcd-client");
    for (name, ip) in MEMBERS {
        for port in [2379, 2380] {
            require_free(
                &format!("{ip}:{port}"),
                &format!("etcd member {name} listens there"),
            );
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    let r = common::render(tmp.path(), "cluster", &inventory());
    // A second, independent PKI: its certificates come from different CAs.
    let foreign = common::render(tmp.path(), "foreign", &inventory());

    // Declared after `tmp` so that it is dropped (processes stopped) before the directory is
    // removed.
    let mut procs = Processes::new(&tmp.path().join("logs"));
    for (name, _) in MEMBERS {
        let config_path = tmp.path().join(format!("{name}.etcd.yaml"));
        let data_dir = tmp.path().join("data").join(name);
        fs::write(&config_path, rewrite_config(&r, name, &data_dir)).unwrap();
        let mut cmd = Command::new(&etcd);
        // No ETCD_* variables from the environment may change the configuration.
        cmd.env_clear()
            .arg(format!("--config-file={}", config_path.display()));
        procs.spawn(name, &mut cmd);
    }

    let m1_pki = r.host_file("m1", "/etc/kubernetes/pki");
    let client = Client {
        etcdctl,
        ca: m1_pki.join("etcd/ca.crt"),
    };
    let endpoints: Vec<String> = MEMBERS
        .iter()
        .map(|(_, ip)| format!("https://{ip}:2379"))
        .collect();
    let all = endpoints.join(",");
    let (hc_crt, hc_key) = pair(&m1_pki, "etcd/healthcheck-client");
    let healthcheck = Some((hc_crt.as_path(), hc_key.as_path()));

    // 1. The members find each other over peer TLS and every member is healthy.
    wait_for(
        "a healthy 3-member etcd cluster",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            procs.assert_running();
            let o = client.run(&all, healthcheck, &["endpoint", "health", "--cluster"]);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let healthy = endpoints
                .iter()
                .all(|e| text.contains(&format!("{e} is healthy")));
            if o.status.success() && healthy {
                Ok(())
            } else {
                Err(describe(&o))
            }
        },
    );

    // The membership is exactly the rendered initial cluster.
    let o = client.run(
        &endpoints[0],
        healthcheck,
        &["member", "list", "-w", "json"],
    );
    assert!(o.status.success(), "member list failed: {}", describe(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut members: Vec<(String, String, String)> = list["members"]
        .as_array()
        .expect("members array")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                m["peerURLs"][0].as_str().unwrap_or_default().to_string(),
                m["clientURLs"][0].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    members.sort();
    let expected: Vec<(String, String, String)> = MEMBERS
        .iter()
        .map(|(n, ip)| {
            (
                n.to_string(),
                format!("https://{ip}:2380"),
                format!("https://{ip}:2379"),
            )
        })
        .collect();
    assert_eq!(members, expected, "member list: {}", describe(&o));

    // 2. The apiserver's etcd client certificate writes through one member and reads the
    //    value back (linearizable) through another.
    let (api_crt, api_key) = pair(&m1_pki, "apiserver-etcd-client");
    let apiserver = Some((api_crt.as_path(), api_key.as_path()));
    let o = client.run(
        &endpoints[0],
        apiserver,
        &["put", "/k8s-boot-test/key", "rendered-value"],
    );
    assert!(o.status.success(), "put failed: {}", describe(&o));
    let o = client.run(
        &endpoints[2],
        apiserver,
        &[
            "get",
            "/k8s-boot-test/key",
            "--print-value-only",
            "--consistency=l",
        ],
    );
    assert!(o.status.success(), "get failed: {}", describe(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "rendered-value");

    // 3. A client certificate signed by another CA is refused. Only the certificate pair
    //    differs from the successful command above (the server is still verified against our
    //    CA), so the failure can only come from client-certificate authentication.
    assert_ne!(
        fs::read(foreign.pki.join("etcd/ca.crt")).unwrap(),
        fs::read(r.pki.join("etcd/ca.crt")).unwrap(),
        "the second render must have its own etcd CA"
    );
    let (f_crt, f_key) = pair(
        &foreign.host_file("m1", "/etc/kubernetes/pki"),
        "etcd/healthcheck-client",
    );
    // A refused client retries until its deadline, so keep that short.
    let o = client.run_with_timeout(
        "2s",
        &endpoints[0],
        Some((f_crt.as_path(), f_key.as_path())),
        &["get", "/k8s-boot-test/key", "--print-value-only"],
    );
    assert!(
        !o.status.success(),
        "etcd accepted a client certificate from a foreign CA: {}",
        describe(&o)
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("rendered-value"),
        "a foreign client read the value: {}",
        describe(&o)
    );
    // The client only sees a deadline; the member's log says why it rejected the handshake
    // (Go's crypto/tls wording, the same in every etcd release).
    wait_for(
        "m1 to log the rejected foreign certificate",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || rejected(&procs.log("m1"), "certificate signed by unknown authority"),
    );

    // 4. A client without any certificate is refused too.
    let o = client.run_with_timeout(
        "2s",
        &endpoints[1],
        None,
        &["get", "/k8s-boot-test/key", "--print-value-only"],
    );
    assert!(
        !o.status.success(),
        "etcd accepted a client without a certificate: {}",
        describe(&o)
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("rendered-value"));
    wait_for(
        "m2 to log the client without a certificate",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || rejected(&procs.log("m2"), "didn't provide a certificate"),
    );

    // The cluster is still fine after the refused attempts (they failed for the right reason,
    // not because a member went away).
    let o = client.run(&all, healthcheck, &["endpoint", "health"]);
    assert!(o.status.success(), "{}", describe(&o));
    procs.assert_running();
}
