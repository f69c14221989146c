//! Secure defaults on the lab cluster: the CIS Kubernetes Benchmark's controls audited on
//! every host, what anonymous requests may reach, Pod Security and external IPs refused by
//! admission, a node's credentials held to its own node (NodeRestriction), the chat's PROXY
//! protocol NodePort closed to all but the LB, and a bounded chat connection flood through
//! the LB that leaves the API answering and the workers Ready.

use super::*;
use crate::common::cis;
use std::net::SocketAddr;

/// The flood: this many connections to the chat through the LB, held this long, from this
/// machine's lab address only.
const FLOOD_CONNECTIONS: usize = 1500;
const FLOOD_HOLD: Duration = Duration::from_secs(10);

pub(super) fn security_defaults(c: &Cluster) {
    cis_benchmark(c);
    anonymous_requests(c);
    admission(c);
    node_restriction(c);
    proxy_protocol_port(c);
    chat_flood(c);
}

fn cis_benchmark(c: &Cluster) {
    step(
        "CIS Kubernetes Benchmark: every applicable control on every host and the cluster, 0 FAIL",
    );
    let started = Instant::now();
    let kubectl =
        |args: &[&str]| -> String { String::from_utf8_lossy(&c.kubectl(args).stdout).into() };
    let findings = cis::audit(&cis::six_host_lab(&c.lab.dir), &kubectl);
    let report = cis::report(&findings);
    eprintln!("{report}");
    figure(&format!(
        "CIS audit of 6 hosts and the cluster: {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    assert!(!cis::failed(&findings), "{report}");
}

/// `curl` on m1 against the API through the LB, without credentials: the HTTP status.
fn anonymous_status(c: &Cluster, path: &str) -> String {
    c.lab.sh(
        M[0],
        &format!(
            "curl -s -o /dev/null -w '%{{http_code}}' --cacert /etc/kubernetes/pki/ca.crt \
             https://{LB}:6443{path}"
        ),
    )
}

fn anonymous_requests(c: &Cluster) {
    step("anonymous requests: the health endpoints answer, nothing else (not even /version)");
    for path in ["/readyz", "/livez", "/healthz"] {
        assert_eq!(anonymous_status(c, path), "200", "{path}");
    }
    for path in ["/version", "/api", "/api/v1/namespaces", "/metrics"] {
        assert_eq!(anonymous_status(c, path), "401", "{path}");
    }
}

/// `kubectl apply --dry-run=server` of `manifest`: admission runs, nothing is stored.
fn server_dry_run(c: &Cluster, manifest: &Value) -> Output {
    let file = c.lab.dir.join("dry-run.json");
    std::fs::write(&file, manifest.to_string()).unwrap();
    c.kubectl(&["apply", "--dry-run=server", "-f", file.to_str().unwrap()])
}

fn admission(c: &Cluster) {
    step("Pod Security: a namespace without labels refuses a privileged pod (baseline)");
    let ns = "k8s-boot-psa-check";
    c.k(&["create", "namespace", ns]);
    // Admission refuses any pod until the namespace's default ServiceAccount exists.
    wait_for(
        "the new namespace's default ServiceAccount",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let out = c.kubectl(&["-n", ns, "get", "serviceaccount", "default", "-o", "name"]);
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| describe(&out))
        },
    );
    let pod = |privileged: bool| {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "psa-check", "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                "securityContext": {"privileged": privileged}}]}})
    };
    let refused = server_dry_run(c, &pod(true));
    assert!(!refused.status.success(), "{}", describe(&refused));
    assert!(
        contains(&refused.stderr, b"violates PodSecurity \"baseline:latest\""),
        "{}",
        describe(&refused)
    );
    let admitted = server_dry_run(c, &pod(false));
    assert!(admitted.status.success(), "{}", describe(&admitted));
    c.k(&["delete", "namespace", ns, "--wait=false"]);
    // The add-ons' namespaces say what they need: flannel privileged, kube-system baseline,
    // the chat restricted.
    for (namespace, level) in [
        ("kube-flannel", "privileged"),
        ("kube-system", "baseline"),
        ("chat", "restricted"),
    ] {
        let labels = c.json(&["get", "namespace", namespace]);
        assert_eq!(
            labels["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], level,
            "{namespace}"
        );
    }

    step("DenyServiceExternalIPs: a Service claiming an external IP is refused");
    let service = serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "external-ip-check", "namespace": "default"},
        "spec": {"ports": [{"port": 80}], "externalIPs": [LB]}});
    let refused = server_dry_run(c, &service);
    assert!(!refused.status.success(), "{}", describe(&refused));
    assert!(
        contains(
            &refused.stderr,
            b"Use of external IPs is denied by admission control"
        ),
        "{}",
        describe(&refused)
    );
}

fn node_restriction(c: &Cluster) {
    step(
        "NodeRestriction: w1's own credentials cannot change w2 or read a Secret no pod of w1 uses",
    );
    // The kubeconfig install gave w1's kubelet (its certificate is k8s-boot's, still valid).
    let kubeconfig = c.lab.dir.join("w1.kubelet.kubeconfig");
    let text = c.lab.sh(W[0], "cat /etc/kubernetes/kubelet.kubeconfig");
    k8s_boot::fsutil::write_atomic(&kubeconfig, text.as_bytes(), 0o600).unwrap();
    let as_w1 = |args: &[&str]| -> Output {
        run(Command::new(c.lab.dir.join("binaries/kubectl"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--request-timeout=20s")
            .args(args))
    };
    // Control: the credentials work, for w1's own node.
    let own = as_w1(&["get", "node", "w1", "-o", "name"]);
    assert!(own.status.success(), "{}", describe(&own));
    let other = as_w1(&["label", "node", "w2", "k8s-boot-check=w1-was-here"]);
    assert!(!other.status.success(), "{}", describe(&other));
    assert!(contains(&other.stderr, b"Forbidden") || contains(&other.stderr, b"forbidden"));
    c.k(&[
        "-n",
        "default",
        "create",
        "secret",
        "generic",
        "node-restriction-check",
        "--from-literal=k=v",
    ]);
    let secret = as_w1(&["-n", "default", "get", "secret", "node-restriction-check"]);
    c.k(&[
        "-n",
        "default",
        "delete",
        "secret",
        "node-restriction-check",
    ]);
    assert!(!secret.status.success(), "{}", describe(&secret));
    assert!(
        contains(&secret.stderr, b"forbidden"),
        "{}",
        describe(&secret)
    );
    std::fs::remove_file(&kubeconfig).unwrap();
}

fn proxy_protocol_port(c: &Cluster) {
    step("the chat's PROXY protocol NodePort answers the LB only; the plain NodePort everyone");
    let lb_node_port = 30001;
    let try_connect = |addr: &str, port: u16| {
        let sa: SocketAddr = format!("{addr}:{port}").parse().unwrap();
        TcpStream::connect_timeout(&sa, Duration::from_secs(2)).is_ok()
    };
    for w in W {
        assert!(
            !try_connect(w, lb_node_port),
            "{w}:{lb_node_port} from this machine"
        );
        assert!(
            try_connect(w, CHAT_PORT),
            "{w}:{CHAT_PORT} from this machine"
        );
        // From the LB host itself (bash's /dev/tcp: the lab hosts have no nc).
        let from_lb = c.lab.ssh(
            LB,
            &format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{w}/{lb_node_port}'"),
        );
        assert!(from_lb.status.success(), "{}", describe(&from_lb));
    }
    chat_answers_through_the_lb("with the PROXY protocol NodePort filtered");
}

fn chat_flood(c: &Cluster) {
    step(&format!(
        "chat flood: {FLOOD_CONNECTIONS} connections through the LB held {} s; the API answers, the workers stay Ready",
        FLOOD_HOLD.as_secs()
    ));
    raise_open_files_limit(FLOOD_CONNECTIONS as u64 + 512);
    let api = api_probe(c);
    let started = Instant::now();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..FLOOD_CONNECTIONS {
        let sa: SocketAddr = format!("{LB}:{CHAT_PORT}").parse().unwrap();
        match TcpStream::connect_timeout(&sa, Duration::from_secs(2)) {
            Ok(s) => held.push(s),
            Err(_) => refused += 1,
        }
    }
    let opened = started.elapsed();
    // What nginx let through is still open; what it refused it closed at once.
    std::thread::sleep(Duration::from_secs(1));
    let open = held
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            // Open: nothing to read yet, or the chat's join lines; closed: end of stream.
            let mut byte = [0u8; 1];
            match s.peek(&mut byte) {
                Ok(n) => n > 0,
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            }
        })
        .count();
    std::thread::sleep(FLOOD_HOLD.saturating_sub(started.elapsed()));
    let (api_outage, looks) = api.finish();
    drop(held);
    let per_client = k8s_boot::catalog::LB_LIMITS.chat_connections_per_client as usize;
    figure(&format!(
        "chat flood: {FLOOD_CONNECTIONS} connections in {:.1} s, {open} kept open by the LB \
         (limit {per_client} per client), {refused} not accepted; API through the LB \
         longest unavailable {:.1} s over {looks} looks",
        opened.as_secs_f64(),
        api_outage.as_secs_f64()
    ));
    assert!(
        open <= per_client,
        "{open} chat connections open from one address"
    );
    assert!(
        open > 0,
        "the chat took no connection at all during the flood"
    );
    assert_eq!(
        api_outage,
        Duration::ZERO,
        "the API through the LB failed during the flood"
    );
    for (node, _) in NODES {
        let n = c.json(&["get", "node", node]);
        assert!(is_ready(&n), "{node} not Ready after the flood");
    }
    chat_answers_through_the_lb("after the flood");
}

/// The flood holds its connections in this process: its soft limit of open files (often 1024)
/// is raised toward the hard one, so that no connect and no probe fails for want of one.
fn raise_open_files_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    if limit.rlim_cur >= needed {
        return;
    }
    assert!(
        limit.rlim_max >= needed,
        "the flood needs {needed} open files; the hard limit is {}",
        limit.rlim_max
    );
    limit.rlim_cur = needed;
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}
