//! The whole install, for real, on the 6-host lab (real systemd + sshd hosts in systemd-nspawn;
//! needs root and the lab's upstream builds): `lb1` the nginx LB, `m1`-`m3` etcd +
//! control-plane (tainted kubelets), `w1`-`w2` workers. One plain `install` with every phase,
//! checked with the real `kubectl` the lab built: nodes, system pods, pod network, DNS, logs and
//! exec, metrics, the chat behind the LB, HA, idempotence, dry run, status and reset; then the
//! day-2 operations and the secure defaults (the CIS audit, a chat flood; `lab_cluster/`).

mod common;
#[path = "lab_cluster/ingress.rs"]
mod ingress;
#[path = "lab_cluster/security.rs"]
mod security;

use common::{describe, run, wait_for, TestLab};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LB: &str = "10.77.0.11";
const M: [&str; 3] = ["10.77.0.12", "10.77.0.13", "10.77.0.14"];
const W: [&str; 2] = ["10.77.0.15", "10.77.0.16"];
const ALL: [&str; 6] = [
    LB,
    "10.77.0.12",
    "10.77.0.13",
    "10.77.0.14",
    "10.77.0.15",
    "10.77.0.16",
];
/// What a chat client that came through the LB is named after: the machine's bridge address.
const MACHINE: &str = "10.77.0.1";
const CHAT_PORT: u16 = 30000;
const PREVIOUS: &str = k8s_boot::lab::PREVIOUS_KUBERNETES_VERSION;
const CURRENT: &str = k8s_boot::lab::DEFAULT_KUBERNETES_VERSION;

struct Cluster {
    lab: TestLab,
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> Output {
        run(Command::new(self.lab.dir.join("binaries/kubectl"))
            .arg("--kubeconfig")
            .arg(self.lab.dir.join("pki/admin.kubeconfig"))
            .arg("--request-timeout=20s")
            .args(args))
    }

    /// kubectl that must succeed; its stdout.
    fn k(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.k(&a)).unwrap()
    }

    /// The chat's image: the lab's Node.js image, which test pods run too.
    fn chat_image(&self) -> String {
        self.k(&[
            "-n",
            "chat",
            "get",
            "deploy",
            "chat",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
    }

    /// `install` with JSON output: (exit code, report, elapsed).
    fn install(&self, extra: &[&str]) -> (i32, Value, Duration) {
        let started = Instant::now();
        let (code, report) = self.lab.install(extra);
        (code, report, started.elapsed())
    }

    /// The lab inventory's chat replicas (`lab up` writes 1).
    fn set_chat_replicas(&self, n: u32) {
        let path = self.lab.dir.join("hosts.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let at = text
            .find("  replicas: ")
            .expect("the lab inventory sets chat replicas");
        let end = at + text[at..].find('\n').unwrap();
        let changed = format!("{}  replicas: {n}{}", &text[..at], &text[end..]);
        std::fs::write(&path, changed).unwrap();
    }

    /// A k8s-boot command on the lab inventory with `--output json`: (exit code, JSON).
    fn json_command(&self, command: &[&str]) -> (i32, Value) {
        let inv = self.lab.inventory();
        let mut args = command.to_vec();
        args.extend(["-i", &inv, "--output", "json"]);
        let out = self.lab.k8s_boot(&args);
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{command:?} printed no JSON ({e}):\n{}", describe(&out)));
        (out.status.code().unwrap_or(-1), v)
    }

    /// Snapshot of what a host has that install could have left behind.
    fn footprint(&self, addr: &str) -> BTreeSet<String> {
        let text = self.lab.sh(
            addr,
            "{ find /etc /usr/local /opt /var/lib /run/systemd/system -xdev \
               -not -path '/var/lib/systemd/*' -not -path '/var/lib/dpkg/*' \
               -not -path '/var/lib/apt/*' -not -path '/etc/ssh/*' \
               -not -path '/var/lib/k8s-boot-lab-registry/*' \
               -not -path '/var/lib/containerd/*' | sed 's/^/file /'; \
               systemctl list-unit-files --no-legend --plain | awk '{print \"unit \" $1}'; \
               systemctl list-units --state=active --no-legend --plain | awk '{print \"active \" $1}' \
                 | grep -vE 'network-online\\.target|systemd-networkd-wait-online\\.service' \
                 | grep -vE 'session-[0-9]+\\.scope|user(-runtime-dir)?@[0-9]+\\.service|user(-[0-9]+)?\\.slice'; \
               awk '{print \"mount \" $2}' /proc/self/mounts; \
               ip -o link | awk -F': ' '{print \"link \" $2}' | sed 's/@.*//'; \
               iptables-save 2>/dev/null | grep -v '^#' | sed 's/\\[[0-9:]*\\]//; s/^/iptables /'; \
               nft list ruleset 2>/dev/null | sed 's/^/nft /'; } | sort -u",
        );
        text.lines().map(str::to_string).collect()
    }
}

fn phase_status<'a>(report: &'a Value, host: &str, phase: &str) -> &'a str {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .and_then(|h| h["phases"][phase]["status"].as_str())
        .unwrap_or("-")
}

fn changes(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for h in report["hosts"].as_array().unwrap() {
        for (phase, r) in h["phases"].as_object().unwrap() {
            if r["status"] != "unchanged" {
                out.push(format!("{} {phase}: {r}", h["host"]));
            }
        }
    }
    out
}

/// Every service row of `status --output json` (one entry per host, each with `services`).
fn services(status: &Value) -> Vec<Value> {
    status["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| h["services"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn step(what: &str) {
    eprintln!("--- {what}");
}

/// A measured figure: on stderr, and appended to `lab-cluster/figures.txt` under the test's
/// target directory (kept after the run, for the docs).
fn figure(line: &str) {
    eprintln!("{line}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-cluster/figures.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// A chat client: lines arrive on a reader with a timeout.
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: &str, port: u16) -> Client {
        let stream = TcpStream::connect((addr, port))
            .unwrap_or_else(|e| panic!("connect {addr}:{port}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    /// The next line containing `needle` (other lines are skipped), or a panic.
    fn expect(&mut self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => panic!("connection closed before {needle:?}; got {seen:?}"),
                Ok(_) if line.contains(needle) => return line.trim_end().to_string(),
                Ok(_) => seen.push(line),
                Err(e) => panic!("waiting for {needle:?}: {e}; got {seen:?}"),
            }
        }
    }

    /// Returns once the chat server has registered this client. The protocol has no
    /// greeting, and a join is announced only to the clients registered before it, so a
    /// test expecting another client's join must first know that this one is in: a probe
    /// client says a line every half second until this one hears it (at most 30 s).
    fn wait_registered(&mut self, addr: &str, port: u16) {
        let mut probe = Client::connect(addr, port);
        let short = Some(Duration::from_millis(500));
        self.stream.set_read_timeout(short).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        'probing: loop {
            assert!(
                Instant::now() < deadline,
                "the chat server did not register the client within 30 s"
            );
            probe.send("probe");
            loop {
                let mut line = String::new();
                match self.reader.read_line(&mut line) {
                    Ok(0) => panic!("the connection closed before the client was registered"),
                    Ok(_) if line.contains(": probe") => break 'probing,
                    Ok(_) => {}
                    Err(_) => break, // nothing within 500 ms: probe again
                }
            }
        }
        self.stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
    }

    /// Reads until the server closes; returns everything read.
    fn until_closed(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return all,
                Ok(_) => all.push_str(&line),
                Err(e) => panic!("waiting for the server to close: {e}; got {all:?}"),
            }
        }
    }

    fn local_port(&self) -> u16 {
        self.stream.local_addr().unwrap().port()
    }
}

/// A pod's or a node's `Ready` condition is `True`.
fn is_ready(object: &Value) -> bool {
    object["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// At least `count` pods of `selector` in `namespace` are Ready now; else how many are.
fn pods_ready(c: &Cluster, namespace: &str, selector: &str, count: usize) -> Result<(), String> {
    let pods = c.json(&["-n", namespace, "get", "pods", "-l", selector]);
    let items = pods["items"].as_array().unwrap();
    let ready = items.iter().filter(|p| is_ready(p)).count();
    if ready >= count {
        Ok(())
    } else {
        Err(format!("{ready} of {} ready", items.len()))
    }
}

/// Waits for `count` Ready pods: for pods this test replaced, not for what install applied.
fn ready_pods(c: &Cluster, namespace: &str, selector: &str, count: usize) {
    wait_for(
        &format!("{count} ready pod(s) {selector} in {namespace}"),
        Duration::from_secs(240),
        Duration::from_secs(2),
        || pods_ready(c, namespace, selector, count),
    );
}

/// `count` Ready pods without waiting: install returns only once what it applied is ready.
fn ready_pods_now(c: &Cluster, namespace: &str, selector: &str, count: usize) {
    if let Err(e) = pods_ready(c, namespace, selector, count) {
        panic!("{count} ready pod(s) {selector} in {namespace} expected right after install: {e}");
    }
}

#[test]
fn whole_install_on_six_lab_hosts() {
    // The previous minor first: the test upgrades it (two chat replicas through the upgrade).
    let lab = TestLab::up_with("lab-cluster", 6, &["--version", PREVIOUS]);
    let c = Cluster { lab };
    c.set_chat_replicas(2);
    let names = ["m1", "m2", "m3", "w1", "w2"];
    let baseline: Vec<BTreeSet<String>> = ALL.iter().map(|a| c.footprint(a)).collect();

    step("dry run on fresh hosts: lists what would change, exits 0, writes nothing");
    let (code, dry, _) = c.install(&["--dry-run"]);
    assert_eq!(code, 0, "{dry:#}");
    assert!(dry["dry_run"].as_bool().unwrap());
    assert_eq!(
        phase_status(&dry, "m1", "control-plane"),
        "changed",
        "{dry:#}"
    );
    assert!(
        !c.lab.dir.join("pki").exists(),
        "a dry run wrote the PKI locally"
    );
    for (addr, before) in ALL.iter().zip(&baseline) {
        assert_eq!(&c.footprint(addr), before, "a dry run changed {addr}");
    }

    step("install: every phase, one command");
    let (code, first, took) = c.install(&[]);
    assert_eq!(code, 0, "{first:#}");
    eprintln!("first install: {:.0} s", took.as_secs_f64());

    step("install returned with what it applied ready: every pod Ready, kubectl top answers");
    // Not one wait or retry here: install returns only once every add-on is rolled out and
    // the metrics API is available.
    for namespace in ["kube-system", "kube-flannel", "chat"] {
        let pods = c.json(&["-n", namespace, "get", "pods"]);
        let items = pods["items"].as_array().unwrap();
        let unready: Vec<String> = items
            .iter()
            .filter(|p| !is_ready(p))
            .map(|p| {
                format!(
                    "{} on {} ({})",
                    p["metadata"]["name"], p["spec"]["nodeName"], p["status"]["phase"]
                )
            })
            .collect();
        assert!(
            !items.is_empty() && unready.is_empty(),
            "{namespace} right after install: {} pod(s), not Ready: {unready:?}",
            items.len()
        );
    }
    let top = c.kubectl(&["top", "nodes", "--no-headers"]);
    let text = String::from_utf8_lossy(&top.stdout).to_string();
    assert!(
        top.status.success() && names.iter().all(|n| text.contains(n)),
        "kubectl top nodes right after install: {}",
        describe(&top)
    );

    step("nodes: Ready, named as in the inventory, roles and taints");
    wait_for(
        "every node Ready",
        Duration::from_secs(120),
        Duration::from_secs(2),
        || {
            let nodes = c.json(&["get", "nodes"]);
            let ready: BTreeSet<String> = nodes["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| is_ready(n))
                .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
                .collect();
            let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
            if ready == want {
                Ok(())
            } else {
                Err(format!("ready: {ready:?}"))
            }
        },
    );
    for n in names {
        let node = c.json(&["get", "node", n]);
        let labels = &node["metadata"]["labels"];
        let taints = node["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let cp_taint = taints.iter().any(|t| {
            t["key"] == "node-role.kubernetes.io/control-plane" && t["effect"] == "NoSchedule"
        });
        if n.starts_with('m') {
            assert!(
                labels["node-role.kubernetes.io/control-plane"].is_string(),
                "{n}: {labels}"
            );
            assert!(
                cp_taint,
                "{n} lacks the control-plane NoSchedule taint: {taints:?}"
            );
        } else {
            assert!(
                labels["node-role.kubernetes.io/worker"].is_string(),
                "{n}: {labels}"
            );
            assert!(!cp_taint, "{n}: {taints:?}");
        }
    }

    upgrade_to_current(&c);
    step("the chat back to one replica (the checks below talk to one server)");
    c.set_chat_replicas(1);
    let (code, scaled, _) = c.install(&[]);
    assert_eq!(code, 0, "{scaled:#}");
    wait_for(
        "one chat pod left",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let pods = c.json(&["-n", "chat", "get", "pods", "-l", "app=chat"]);
            let n = pods["items"].as_array().unwrap().len();
            (n == 1).then_some(()).ok_or(format!("{n} pods"))
        },
    );

    step("system pods: flannel on every node, two CoreDNS, metrics-server, all Ready");
    ready_pods_now(&c, "kube-flannel", "app=flannel", 5);
    ready_pods_now(&c, "kube-system", "k8s-app=kube-dns", 2);
    ready_pods_now(&c, "kube-system", "k8s-app=metrics-server", 1);

    step("pod network: pods on two nodes, a ClusterIP Service, DNS");
    let image = c.chat_image();
    let server_js = "require('http').createServer((q,r)=>{console.log('served '+q.url);r.end('pong from '+require('os').hostname())}).listen(8080,()=>console.log('listening'))";
    for (pod, node, cmd) in [
        ("netsrv", "w1", server_js),
        ("netcli", "w2", "setInterval(()=>{},1000)"),
    ] {
        let overrides = serde_json::json!({"spec": {"nodeName": node}}).to_string();
        c.k(&[
            "run",
            pod,
            "--image",
            &image,
            "--image-pull-policy=IfNotPresent",
            "--labels",
            &format!("app={pod}"),
            "--overrides",
            &overrides,
            "--command",
            "--",
            "node",
            "-e",
            cmd,
        ]);
    }
    c.k(&[
        "expose",
        "pod",
        "netsrv",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    c.k(&[
        "wait",
        "--for=condition=Ready",
        "pod/netsrv",
        "pod/netcli",
        "--timeout=120s",
    ]);
    let srv_ip = c.k(&["get", "pod", "netsrv", "-o", "jsonpath={.status.podIP}"]);
    let svc_ip = c.k(&["get", "svc", "netsrv", "-o", "jsonpath={.spec.clusterIP}"]);
    let fetch = |url: &str| {
        c.k(&[
            "exec", "netcli", "--", "node", "-e",
            &format!("require('http').get('{url}',r=>{{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(b))}}).on('error',e=>{{console.error(e.message);process.exit(1)}})"),
        ])
    };
    assert_eq!(
        fetch(&format!("http://{srv_ip}:8080/direct")),
        "pong from netsrv"
    );
    // A new Service works once every kube-proxy has programmed it (seconds, more on a busy
    // machine); each try is a real request from the pod on w2.
    for url in [
        format!("http://{svc_ip}/service"),
        "http://netsrv.default.svc.cluster.local/dns".to_string(),
    ] {
        wait_for(
            &format!("GET {url} from netcli"),
            Duration::from_secs(60),
            Duration::from_secs(2),
            || {
                let out = c.kubectl(&[
                    "exec", "netcli", "--", "node", "-e",
                    &format!("require('http').get('{url}',{{timeout:3000}},r=>{{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(b))}}).on('error',e=>{{console.error(e.message);process.exit(1)}}).on('timeout',function(){{this.destroy(new Error('timeout'))}})"),
                ]);
                let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if out.status.success() && body == "pong from netsrv" {
                    Ok(())
                } else {
                    Err(describe(&out))
                }
            },
        );
    }
    let resolved = c.k(&[
        "exec", "netcli", "--", "node", "-e",
        "require('dns').lookup('kubernetes.default.svc.cluster.local',(e,a)=>{if(e){console.error(e.message);process.exit(1)}console.log(a)})",
    ]);
    let kubernetes_ip = c.k(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(resolved, kubernetes_ip);

    ingress::routes_through_the_lb(&c);

    step("logs and exec on a worker's pod (the apiserver verifies the kubelet's certificate)");
    let logs = c.k(&["logs", "netsrv"]);
    assert!(
        logs.contains("listening") && logs.contains("served /direct"),
        "{logs}"
    );
    assert_eq!(
        c.k(&["exec", "netsrv", "--", "node", "-e", "console.log(1+1)"]),
        "2"
    );
    let apiserver = c.lab.sh(M[0], "systemctl cat kube-apiserver");
    assert!(
        apiserver.contains("--kubelet-certificate-authority="),
        "{apiserver}"
    );
    assert!(!apiserver.contains("insecure"), "{apiserver}");

    step("registry mirrors: nodes pull through the lab registry (the hosts reach no other)");
    // `crictl pull` asks the registry even for an image the node has: without the mirror
    // (hosts.toml under /etc/containerd/certs.d) these fail, as the hosts have no internet.
    let mirrored = c.lab.sh(W[0], "ls /etc/containerd/certs.d");
    assert_eq!(mirrored, "docker.io\nghcr.io\nquay.io\nregistry.k8s.io");
    for image in [
        "registry.k8s.io/pause:3.10.2",
        "ghcr.io/flannel-io/flannel:v0.28.10",
        "docker.io/library/node:24-bookworm-slim",
    ] {
        let out = c.lab.sh(W[0], &format!("crictl pull {image}"));
        assert!(out.contains("Image is up to date"), "{image}: {out}");
    }
    // A pod whose image is pulled every time, as the conformance tests that say `Always`.
    c.k(&[
        "run",
        "pull-always",
        "--image=docker.io/library/node:24-bookworm-slim",
        "--image-pull-policy=Always",
        "--restart=Never",
        "--overrides={\"spec\":{\"nodeName\":\"w2\"}}",
        "--",
        "node",
        "-e",
        "console.log('pulled')",
    ]);
    let (two_minutes, second) = (Duration::from_secs(120), Duration::from_secs(1));
    wait_for("the Always pod to succeed", two_minutes, second, || {
        let phase = c.k(&[
            "get",
            "pod",
            "pull-always",
            "-o",
            "jsonpath={.status.phase}",
        ]);
        (phase == "Succeeded").then_some(()).ok_or(phase)
    });
    assert_eq!(c.k(&["logs", "pull-always"]), "pulled");
    c.k(&["delete", "pod", "pull-always", "--wait=false"]);

    step("chat: on workers only, two clients through the LB, one straight to a NodePort");
    ready_pods_now(&c, "chat", "app=chat", 1);
    let pods = c.json(&["-n", "chat", "get", "pods", "-l", "app=chat"]);
    for p in pods["items"].as_array().unwrap() {
        let node = p["spec"]["nodeName"].as_str().unwrap();
        assert!(node.starts_with('w'), "chat pod on {node}");
    }
    let mut a = Client::connect(LB, CHAT_PORT);
    a.wait_registered(LB, CHAT_PORT);
    let mut b = Client::connect(LB, CHAT_PORT);
    let b_id = format!("{MACHINE}:{}", b.local_port());
    let joined = a.expect(&format!("{b_id} join"));
    eprintln!("a saw: {joined}");
    b.send("hello from b");
    assert_eq!(a.expect("hello from b"), format!("{b_id}: hello from b"));
    a.send("hello from a");
    let a_id = format!("{MACHINE}:{}", a.local_port());
    assert_eq!(b.expect("hello from a"), format!("{a_id}: hello from a"));
    let mut direct = Client::connect(W[0], CHAT_PORT);
    direct.send("hello directly");
    a.expect("hello directly");
    direct.stream.shutdown(Shutdown::Both).unwrap();
    drop(b);

    step("chat: SIGTERM says goodbye and the pod exits within seconds");
    let pod = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    c.k(&["-n", "chat", "delete", "pod", &pod, "--wait=false"]);
    let rest = a.until_closed();
    let closed = started.elapsed();
    assert!(rest.contains("server shutting down"), "{rest:?}");
    c.k(&[
        "-n",
        "chat",
        "wait",
        "--for=delete",
        &format!("pod/{pod}"),
        "--timeout=30s",
    ]);
    let gone = started.elapsed();
    eprintln!(
        "chat: goodbye and close {:.1} s after the delete, pod gone after {:.1} s",
        closed.as_secs_f64(),
        gone.as_secs_f64()
    );
    assert!(closed < Duration::from_secs(5), "{closed:?}");
    assert!(gone < Duration::from_secs(10), "{gone:?}");
    ready_pods(&c, "chat", "app=chat", 1);

    step("HA: the API through the LB with kube-apiserver stopped on m1");
    c.lab.sh(M[0], "systemctl stop kube-apiserver");
    for i in 0..5 {
        c.k(&["get", "nodes"]);
        c.k(&["create", "configmap", &format!("ha-apiserver-{i}")]);
    }
    c.lab.sh(M[0], "systemctl start kube-apiserver");
    step("HA: the cluster serves with the etcd member on m2 stopped");
    c.lab.sh(M[1], "systemctl stop etcd");
    for i in 0..5 {
        c.k(&["create", "configmap", &format!("ha-etcd-{i}")]);
        c.k(&["get", "configmap", &format!("ha-etcd-{i}")]);
    }
    c.lab.sh(M[1], "systemctl start etcd");
    wait_for(
        "kube-apiserver on m1 and etcd on m2 healthy again",
        Duration::from_secs(120),
        Duration::from_secs(2),
        || {
            let st = c.lab.k8s_boot(&[
                "status",
                "--inventory",
                &c.lab.inventory(),
                "--output",
                "json",
            ]);
            let v: Value = serde_json::from_slice(&st.stdout).map_err(|e| e.to_string())?;
            let unhealthy: Vec<String> = services(&v)
                .into_iter()
                .filter(|r| r["healthy"] != true)
                .map(|r| r.to_string())
                .collect();
            if unhealthy.is_empty() {
                Ok(())
            } else {
                Err(unhealthy.join("\n"))
            }
        },
    );

    step("second install: no change, no restart");
    let pids = |addr: &str| {
        c.lab.sh(
            addr,
            "for s in etcd kube-apiserver kubelet containerd kube-proxy nginx; do \
             systemctl show -p MainPID --value $s 2>/dev/null; done | tr '\\n' ' '",
        )
    };
    let before: Vec<String> = ALL.iter().map(|a| pids(a)).collect();
    let (code, second, took) = c.install(&[]);
    assert_eq!(code, 0, "{second:#}");
    assert!(changes(&second).is_empty(), "{:#?}", changes(&second));
    let after: Vec<String> = ALL.iter().map(|a| pids(a)).collect();
    assert_eq!(before, after, "a service restarted");
    eprintln!("no-change install: {:.1} s", took.as_secs_f64());

    step("dry run on a running cluster: drift inside it is listed, not repaired");
    let worker_label = "node-role.kubernetes.io/worker";
    let w1_labels = || c.k(&["get", "node", "w1", "-o", "jsonpath={.metadata.labels}"]);
    let coredns_replicas = || {
        c.k(&[
            "-n",
            "kube-system",
            "get",
            "deployment/coredns",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
    };
    c.k(&["label", "node", "w1", &format!("{worker_label}-")]);
    c.k(&[
        "-n",
        "kube-system",
        "scale",
        "deployment/coredns",
        "--replicas=1",
    ]);
    let (code, dry, _) = c.install(&["--dry-run"]);
    assert_eq!(code, 0, "{dry:#}");
    let predicted: Vec<String> = dry["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "m1")
        .and_then(|h| h["phases"]["cluster"]["changes"].as_array())
        .map(|cs| cs.iter().map(|c| c.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    for want in [
        "kubectl: deployment.apps/coredns configured".to_string(),
        format!("label node w1 {worker_label}="),
    ] {
        assert!(predicted.contains(&want), "{want} not in {dry:#}");
    }
    assert_eq!(
        predicted.len(),
        2,
        "only the drift is predicted: {predicted:#?}"
    );
    assert!(!w1_labels().contains(worker_label), "a dry run labelled w1");
    assert_eq!(coredns_replicas(), "1", "a dry run scaled coredns back");
    let (code, repaired, _) = c.install(&[]);
    assert_eq!(code, 0, "{repaired:#}");
    assert!(w1_labels().contains(worker_label), "{repaired:#}");
    assert_eq!(coredns_replicas(), "2", "{repaired:#}");

    step("status: every component on every host active, healthy, with its version");
    let st = c.lab.k8s_boot(&[
        "status",
        "--inventory",
        &c.lab.inventory(),
        "--output",
        "json",
    ]);
    assert!(st.status.success(), "{}", describe(&st));
    let report: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["healthy"], true, "{report:#}");
    for h in report["hosts"].as_array().expect("status hosts") {
        assert!(h["error"].is_null(), "{h}");
    }
    let rows = services(&report);
    let kube_version = k8s_boot::lab::DEFAULT_KUBERNETES_VERSION;
    for r in &rows {
        assert_eq!(r["active"], true, "{r}");
        assert_eq!(r["healthy"], true, "{r}");
        let service = r["service"].as_str().unwrap();
        let version = r["version"].as_str().unwrap_or("");
        if service.starts_with("kube") {
            assert_eq!(version, kube_version, "{r}");
        } else {
            assert!(!version.is_empty() && version != "-", "{r}");
        }
    }
    // lb1: nginx; m1-m3: etcd, its backup timer, the control plane, the node (with the
    // PROXY protocol NodePort filter); w1-w2: the node.
    assert_eq!(rows.len(), 1 + 3 * 9 + 2 * 4, "{rows:#?}");

    step("reset: nothing of ours is left on any host");
    let recorded: Vec<Value> = ALL
        .iter()
        .map(|a| serde_json::from_str(&c.lab.sh(a, "cat /var/lib/k8s-boot/state.json")).unwrap())
        .collect();
    let inv = c.lab.inventory();
    let out = c
        .lab
        .k8s_boot(&["reset", "--inventory", &inv, "--yes", "--purge-data"]);
    assert!(out.status.success(), "{}", describe(&out));
    for ((addr, before), state) in ALL.iter().zip(&baseline).zip(&recorded) {
        let now = c.footprint(addr);
        for path in state["files"].as_object().unwrap().keys() {
            if state["backups"].get(path).is_none() {
                assert!(
                    !now.contains(&format!("file {path}")),
                    "{addr}: {path} left"
                );
            }
        }
        let extra: Vec<&String> = now.difference(before).collect();
        let missing: Vec<&String> = before.difference(&now).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{addr} after reset differs from before install:\n  left: {extra:#?}\n  gone: {missing:#?}"
        );
    }

    step("install after reset converges again");
    let (code, again, took) = c.install(&[]);
    assert_eq!(code, 0, "{again:#}");
    eprintln!("install after reset: {:.0} s", took.as_secs_f64());
    ready_pods_now(&c, "chat", "app=chat", 1);
    chat_answers_through_the_lb("after the re-install");

    step("conformance --quick: upstream's conformance image runs one test in the cluster");
    conformance(&c);

    remove_and_add_back(&c);
    short_lived_certificates(&c);
    backup_and_restore(&c);
    security::security_defaults(&c);
}

/// The nodes: (name, address).
const NODES: [(&str, &str); 5] = [
    ("m1", M[0]),
    ("m2", M[1]),
    ("m3", M[2]),
    ("w1", W[0]),
    ("w2", W[1]),
];

/// The certificate the kubelet on `addr` uses now: (subject, issuer, serial, seconds left).
fn kubelet_client_cert(c: &Cluster, addr: &str) -> (String, String, String, i64) {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let pem = c.lab.sh(
        addr,
        "sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' /var/lib/kubelet/pki/kubelet-client-current.pem",
    );
    let der = k8s_boot::pki::pem_to_der(&pem).expect("a certificate");
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let left =
        cert.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    (
        cert.subject().to_string(),
        cert.issuer().to_string(),
        cert.raw_serial_as_string(),
        left,
    )
}

/// The serial of the client certificate embedded in the kubelet's kubeconfig on `addr`.
fn kubeconfig_serial(c: &Cluster, addr: &str) -> String {
    use base64::Engine;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let line = c.lab.sh(
        addr,
        "grep client-certificate-data /etc/kubernetes/kubelet.kubeconfig",
    );
    let b64 = line.split(':').nth(1).unwrap().trim();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let der = k8s_boot::pki::pem_to_der(&String::from_utf8(pem).unwrap()).unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    cert.raw_serial_as_string()
}

/// `certs renew`, then `install` with the API polled through the LB: (elapsed, longest gap).
fn renew_and_install(c: &Cluster) -> (Duration, Duration) {
    let inv = c.lab.inventory();
    let renew = c.lab.k8s_boot(&["certs", "renew", "-i", &inv]);
    assert!(renew.status.success(), "{}", describe(&renew));
    let api = api_probe(c);
    let (code, report, took) = c.install(&[]);
    let (down, _) = api.finish();
    assert_eq!(code, 0, "{report:#}");
    (took, down)
}

/// Kubelet client certificates renewed in the cluster (CSRs approved and signed by the
/// controller-manager), `certs renew` + `install` with no API gap, `status` naming what
/// expires: with 30-minute leaves, then back to the default.
fn short_lived_certificates(c: &Cluster) {
    step("kubelets renew their own client certificates: a CSR-signed certificate, not the seed");
    for (name, addr) in NODES {
        let (subject, issuer, serial, _) = kubelet_client_cert(c, addr);
        assert_eq!(subject, format!("O=system:nodes, CN=system:node:{name}"));
        assert_eq!(issuer, "CN=kubernetes-ca");
        assert_ne!(
            serial,
            kubeconfig_serial(c, addr),
            "{name} still uses the seed"
        );
        let link = c.lab.sh(
            addr,
            "readlink /var/lib/kubelet/pki/kubelet-client-current.pem",
        );
        assert!(link.contains("kubelet-client-2"), "{name}: {link}");
    }

    step("certs --rotate-cas on the installed cluster: refused, the PKI untouched");
    let inv = c.lab.inventory();
    let ca = std::fs::read(c.lab.dir.join("pki/ca.crt")).unwrap();
    let rotate = c.lab.k8s_boot(&["certs", "--rotate-cas", "-i", &inv]);
    assert_eq!(rotate.status.code(), Some(2), "{}", describe(&rotate));
    let said = String::from_utf8_lossy(&rotate.stderr);
    assert!(
        said.contains("admin.kubeconfig") && said.contains("certs renew"),
        "{said}"
    );
    assert_eq!(std::fs::read(c.lab.dir.join("pki/ca.crt")).unwrap(), ca);

    step("30-minute leaves: certs renew, then install, the API polled through the LB");
    let path = c.lab.dir.join("hosts.yaml");
    let inv = std::fs::read_to_string(&path).unwrap();
    assert!(
        !inv.contains("\npki:"),
        "the lab inventory sets pki already"
    );
    std::fs::write(
        &path,
        inv.replacen("\nhosts:", "\npki:\n  cert_validity_minutes: 30\nhosts:", 1),
    )
    .unwrap();
    let (took, down) = renew_and_install(c);
    figure(&format!(
        "certs renew + install (30-minute leaves): {:.0} s, API longest unavailable {:.1} s",
        took.as_secs_f64(),
        down.as_secs_f64()
    ));
    assert!(down <= Duration::from_secs(2), "{down:?}");
    // Every host's certificates expire within 30 days now, and `status` says so.
    let (code, st) = c.json_command(&["status"]);
    assert_eq!(code, 0, "{st:#}");
    for h in st["hosts"].as_array().unwrap() {
        let expiring: Vec<&str> = h["expiring"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["hours_left"].as_i64().unwrap() < 1)
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        if h["host"] == "m1" {
            for path in [
                "/etc/kubernetes/pki/apiserver.crt",
                "/etc/kubernetes/pki/etcd/server-m1.crt",
                "/etc/kubernetes/controller-manager.kubeconfig",
            ] {
                assert!(expiring.contains(&path), "{path} not in {expiring:?}");
            }
        }
        // lb1 holds no certificate (nginx passes TLS through).
        assert_eq!(expiring.is_empty(), h["host"] == "lb1", "{h:#}");
    }
    // The kubelets started from the renewed kubeconfig and at once asked for a certificate,
    // which the controller-manager signed for the inventory's 30 minutes.
    for (name, addr) in NODES {
        wait_for(
            &format!("{name}'s kubelet on a certificate signed for 30 minutes"),
            Duration::from_secs(120),
            Duration::from_secs(2),
            || {
                let (_, issuer, serial, left) = kubelet_client_cert(c, addr);
                let signed = issuer == "CN=kubernetes-ca"
                    && serial != kubeconfig_serial(c, addr)
                    && (25 * 60..=30 * 60).contains(&left);
                signed
                    .then_some(())
                    .ok_or(format!("{left} s left, serial {serial}"))
            },
        );
    }
    let csrs = c.json(&["get", "csr"]);
    for (name, _) in NODES {
        let issued = csrs["items"].as_array().unwrap().iter().any(|csr| {
            csr["spec"]["username"] == format!("system:node:{name}")
                && csr["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
                && csr["status"]["certificate"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
                && csr["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Approved"))
        });
        assert!(issued, "no approved and issued CSR of {name}");
    }

    step("back to the default validity: certs renew, then install, the API polled");
    let inv = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        inv.replacen("\npki:\n  cert_validity_minutes: 30\n", "\n", 1),
    )
    .unwrap();
    let (took, down) = renew_and_install(c);
    figure(&format!(
        "certs renew + install (back to 365 days): {:.0} s, API longest unavailable {:.1} s",
        took.as_secs_f64(),
        down.as_secs_f64()
    ));
    assert!(down <= Duration::from_secs(2), "{down:?}");
    wait_for(
        "no certificate expiring on any host",
        Duration::from_secs(120),
        Duration::from_secs(5),
        || {
            let (_, st) = c.json_command(&["status"]);
            let left: Vec<String> = st["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|h| h["expiring"].as_array().unwrap().clone())
                .map(|e| format!("{} {}", e["host"], e["path"]))
                .collect();
            left.is_empty().then_some(()).ok_or(left.join(", "))
        },
    );
}

/// Two chat clients through the LB: one hears the other. Until kube-proxy has programmed the
/// NodePorts (after a new cluster or a restore), nginx's connections to the workers wait or
/// fail over; the chat answers within a minute and a half.
fn chat_answers_through_the_lb(when: &str) {
    wait_for(
        &format!("the chat through the LB {when}"),
        Duration::from_secs(90),
        Duration::from_secs(2),
        || {
            let mut a = Client::connect(LB, CHAT_PORT);
            a.stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut b = Client::connect(LB, CHAT_PORT);
            b.send("back again");
            let mut line = String::new();
            while a.reader.read_line(&mut line).map_err(|e| e.to_string())? > 0 {
                if line.contains("back again") {
                    return Ok(());
                }
                line.clear();
            }
            Err("closed".into())
        },
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `backup`, then a namespace deleted and an object created, then `restore`: the namespace
/// and its Secret are back and readable (the encryption key was kept), the later object is
/// gone, every node is Ready and the chat answers through the LB.
fn backup_and_restore(c: &Cluster) {
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;
    step("scheduled snapshots: the timer on every etcd host, the newest `keep` kept");
    for m in M {
        assert_eq!(
            c.lab
                .sh(m, "systemctl is-active k8s-boot-etcd-backup.timer"),
            "active"
        );
    }
    let path = c.lab.dir.join("hosts.yaml");
    let inv = std::fs::read_to_string(&path).unwrap();
    assert!(
        !inv.contains("\netcd:"),
        "the lab inventory sets etcd already"
    );
    let inv = inv.replacen("\nhosts:", "\netcd:\n  backup: {keep: 2}\nhosts:", 1);
    std::fs::write(&path, inv).unwrap();
    let (code, report, _) = c.install(&["--phases", "etcd"]);
    assert_eq!(code, 0, "{report:#}");
    let scheduled = "/var/backups/k8s-boot-etcd";
    for _ in 0..3 {
        c.lab.sh(
            M[0],
            "systemctl start k8s-boot-etcd-backup.service && sleep 1",
        );
    }
    let kept = c.lab.sh(M[0], &format!("ls {scheduled}"));
    let kept: Vec<&str> = kept.lines().collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.iter()
            .all(|f| f.starts_with("lab-m1-") && f.ends_with(".db")),
        "{kept:?}"
    );
    let status = c.lab.sh(
        M[0],
        &format!(
            "/usr/local/bin/etcdutl snapshot status {scheduled}/{} -w json",
            kept[1]
        ),
    );
    assert!(status.contains("\"revision\""), "{status}");
    assert_eq!(
        c.lab
            .sh(M[0], &format!("stat -c %a {scheduled}/{}", kept[1])),
        "600"
    );

    step("backup: a namespace with a ConfigMap and a Secret, then a snapshot on this machine");
    const SECRET: &str = "s3cret-kept-by-the-backup";
    c.k(&["create", "namespace", "kept"]);
    c.k(&[
        "-n",
        "kept",
        "create",
        "configmap",
        "settings",
        "--from-literal=colour=blue",
    ]);
    c.k(&[
        "-n",
        "kept",
        "create",
        "secret",
        "generic",
        "token",
        &format!("--from-literal=value={SECRET}"),
    ]);
    let (code, made) = c.json_command(&["backup"]);
    assert_eq!(code, 0, "{made:#}");
    let snapshot = made["snapshot"].as_str().unwrap().to_string();
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&snapshot), 0o600);
    assert_eq!(mode(made["manifest_file"].as_str().unwrap()), 0o600);
    let manifest = &made["manifest"];
    assert_eq!(manifest["kubernetes_version"], CURRENT, "{made:#}");
    assert!(manifest["revision"].as_i64().unwrap() > 0, "{made:#}");
    assert_eq!(manifest["members"].as_array().unwrap().len(), 3, "{made:#}");
    let key = std::fs::read_to_string(c.lab.dir.join("pki/encryption.key")).unwrap();
    assert!(
        !made.to_string().contains(key.trim()),
        "the key was printed"
    );
    // The ConfigMap is in the snapshot as written; the Secret only encrypted.
    let bytes = std::fs::read(&snapshot).unwrap();
    assert!(contains(&bytes, b"/registry/configmaps/kept/settings"));
    assert!(contains(&bytes, b"k8s:enc:"));
    assert!(!contains(&bytes, SECRET.as_bytes()));
    let kept = manifest["encryption_key"]["kept"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(kept).unwrap(), key);
    assert_eq!(mode(kept), 0o600);
    for m in M {
        assert_eq!(
            c.lab
                .sh(m, "ls -A /var/lib/k8s-boot/backup 2>/dev/null | wc -l"),
            "0",
            "a member kept a copy"
        );
    }

    step("after the backup: the namespace deleted, another object created");
    c.k(&["delete", "namespace", "kept", "--timeout=120s"]);
    c.k(&["-n", "default", "create", "configmap", "after-backup"]);

    step("restore --dry-run, then restore: control planes and etcd stopped, every member restored");
    let (code, dry) = c.json_command(&["restore", "--snapshot", &snapshot, "--dry-run"]);
    assert_eq!(code, 0, "{dry:#}");
    assert_eq!(step_names(&dry).len(), 9, "{dry:#}");
    assert!(c.kubectl(&["get", "namespace", "kept"]).status.code() != Some(0));
    let started = Instant::now();
    let (code, restored) = c.json_command(&["restore", "--snapshot", &snapshot, "--yes"]);
    assert_eq!(code, 0, "{restored:#}");
    figure(&format!(
        "restore of a {} byte snapshot on 3 members: {:.0} s",
        bytes.len(),
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(
        c.k(&[
            "-n",
            "kept",
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.colour}"
        ]),
        "blue"
    );
    let value = c.k(&[
        "-n",
        "kept",
        "get",
        "secret",
        "token",
        "-o",
        "jsonpath={.data.value}",
    ]);
    let value = base64::engine::general_purpose::STANDARD
        .decode(value)
        .unwrap();
    assert_eq!(String::from_utf8(value).unwrap(), SECRET);
    let later = c.kubectl(&["-n", "default", "get", "configmap", "after-backup"]);
    assert!(
        !later.status.success(),
        "the later object survived the restore"
    );
    for m in M {
        let aside = c.lab.sh(m, "ls -d /var/lib/etcd.before-restore-* | wc -l");
        assert_eq!(
            aside, "1",
            "{m}: the previous data directory is not kept aside"
        );
    }
    assert!(etcd_healthy(c));
    let nodes = c.json(&["get", "nodes"]);
    for n in nodes["items"].as_array().unwrap() {
        assert!(
            is_ready(n),
            "{} not Ready after the restore",
            n["metadata"]["name"]
        );
    }
    assert_eq!(nodes["items"].as_array().unwrap().len(), 5);
    ready_pods(c, "chat", "app=chat", 1);
    chat_answers_through_the_lb("after the restore");
}

/// The conformance suite from k8s-boot on the cluster: `--quick`, then the fixed CI subset of
/// tests/data/conformance/ci-subset.txt, every test of which must run and pass.
fn conformance(c: &Cluster) {
    let lab = c.lab.dir.to_str().unwrap();
    // The conformance programs and images, built up front by tests/run-all.sh (cached); `lab
    // up` again (the hosts keep running) puts them into the lab registry too, for the tests
    // that pull with policy `Always`.
    let up = c
        .lab
        .k8s_boot(&["lab", "up", "--dir", lab, "--hosts", "6", "--conformance"]);
    assert!(up.status.success(), "{}", describe(&up));
    let said = String::from_utf8_lossy(&up.stdout);
    assert_eq!(said.matches("(already running)").count(), 6, "{said}");
    // The cluster's images and the conformance suite's.
    let images = k8s_boot::lab::images::Image::all().count();
    assert!(
        said.contains(&format!(
            "lab registry on 10.77.0.11:5000: {images} image(s)"
        )),
        "{said}"
    );
    let run = |extra: &[&str]| -> Value {
        let inv = c.lab.inventory();
        let results = c.lab.dir.join("conformance-results");
        let mut args = vec!["conformance", "-i", &inv, "--output", "json"];
        let results = results.to_str().unwrap().to_string();
        args.extend(["--results", &results]);
        args.extend_from_slice(extra);
        let started = Instant::now();
        let out = c.lab.k8s_boot(&args);
        let what = if extra.contains(&"--quick") {
            "--quick"
        } else {
            "the CI subset"
        };
        eprintln!(
            "conformance {what}: {:.0} s",
            started.elapsed().as_secs_f64()
        );
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no JSON from conformance ({e}):\n{}", describe(&out)));
        assert!(out.status.success(), "{report:#}\n{}", describe(&out));
        // Everything the run made is gone again.
        let left = c.k(&[
            "get",
            "namespace",
            "k8s-boot-conformance",
            "--ignore-not-found",
            "-o",
            "name",
        ]);
        assert_eq!(left, "", "the run's namespace is left");
        // ... and so are the tests' own namespaces, with their pods (which have no
        // controller: a drain right after would refuse them).
        let tests_left = c.k(&["get", "namespace", "-l", "e2e-run", "-o", "name"]);
        assert_eq!(tests_left, "", "namespaces of the tests are left");
        let log = std::fs::read_to_string(c.lab.dir.join("conformance-results/e2e.log")).unwrap();
        assert!(
            log.contains("Ran "),
            "e2e.log was not collected whole:\n{log}"
        );
        assert!(
            c.lab.dir.join("conformance-results/junit_01.xml").is_file(),
            "no JUnit report collected"
        );
        report
    };
    let quick = run(&["--quick"]);
    assert_eq!(quick["counts"]["passed"], 1, "{quick:#}");

    step(
        "conformance: the CI subset (api-machinery, apps, node, network, cli, storage, scheduling)",
    );
    let names: Vec<String> = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/conformance/ci-subset.txt"
    ))
    .unwrap()
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(str::to_string)
    .collect();
    assert!(names.len() >= 40, "the CI subset has {} tests", names.len());
    let focus = names
        .iter()
        .map(|n| go_regexp_quote(n))
        .collect::<Vec<_>>()
        .join("|");
    // `[Serial]` tests of the subset run too (ginkgo runs them alone, at the end).
    let subset = run(&[
        "--focus",
        &focus,
        "--skip",
        r"\[Disruptive\]",
        "--parallel",
        "3",
    ]);
    assert_eq!(
        subset["total"],
        names.len(),
        "not every test of the subset ran: {subset:#}"
    );
    assert_eq!(subset["counts"]["passed"], names.len(), "{subset:#}");
}

/// `s` matched literally by a Go regular expression (regexp.QuoteMeta).
fn go_regexp_quote(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        if "\\.+*?()|[]{}^$".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// What a probe saw: when it looked and whether the service answered.
type Samples = Vec<(Instant, bool)>;

/// A thread looking at a service every half second until stopped.
struct Probe {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Samples>,
}

impl Probe {
    fn start(look: impl Fn() -> bool + Send + 'static) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let at = Instant::now();
                samples.push((at, look()));
                std::thread::sleep(Duration::from_millis(500).saturating_sub(at.elapsed()));
            }
            samples
        });
        Probe { stop, handle }
    }

    /// Stops it; the longest time the service did not answer (from the first failed look
    /// to the next answered one) and how many looks there were.
    fn finish(self) -> (Duration, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.handle.join().unwrap();
        (longest_outage(&samples), samples.len())
    }
}

fn longest_outage(samples: &[(Instant, bool)]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut down_since = None;
    for (at, up) in samples {
        match (up, down_since) {
            (false, None) => down_since = Some(*at),
            (true, Some(since)) => {
                longest = longest.max(at.duration_since(since));
                down_since = None;
            }
            _ => {}
        }
    }
    if let (Some(since), Some((last, _))) = (down_since, samples.last()) {
        longest = longest.max(last.duration_since(since));
    }
    longest
}

/// The API through the LB (`/readyz` with the admin kubeconfig, a new connection each time).
fn api_probe(c: &Cluster) -> Probe {
    let kubectl = c.lab.dir.join("binaries/kubectl");
    let kubeconfig = c.lab.dir.join("pki/admin.kubeconfig");
    Probe::start(move || {
        Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--request-timeout=2s", "get", "--raw", "/readyz"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The chat through the LB as a client that reconnects whenever its connection closes: a
/// look is answered while a connection stays open (nginx closes a client's connection at
/// once when no chat server takes it).
fn chat_probe() -> Probe {
    let conn: std::sync::Mutex<Option<BufReader<TcpStream>>> = std::sync::Mutex::new(None);
    Probe::start(move || {
        let mut conn = conn.lock().unwrap();
        if conn.is_none() {
            let addr = format!("{LB}:{CHAT_PORT}").parse().unwrap();
            let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
                return false;
            };
            *conn = Some(BufReader::new(stream));
        }
        let reader = conn.as_mut().unwrap();
        reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        // Drain what the server said; a close (or a reset) means it is gone.
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => {
                    *conn = None;
                    return false;
                }
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return true
                }
                Err(_) => {
                    *conn = None;
                    return false;
                }
            }
        }
    })
}

/// What each node's kubelet reports.
fn kubelet_versions(c: &Cluster) -> Vec<(String, String)> {
    c.json(&["get", "nodes"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

fn step_names(report: &Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

/// The previous minor to the current one with `upgrade`, the API and the chat watched.
fn upgrade_to_current(c: &Cluster) {
    step("upgrade: the lab's binaries and inventory of the current minor; install refuses");
    let lab = c.lab.dir.to_str().unwrap();
    let up = c.lab.k8s_boot(&["lab", "up", "--dir", lab, "--hosts", "6"]);
    assert!(up.status.success(), "{}", describe(&up));
    c.set_chat_replicas(2);
    let inv = std::fs::read_to_string(c.lab.dir.join("hosts.yaml")).unwrap();
    assert!(inv.contains(CURRENT), "{inv}");
    let (code, refused) = c.json_command(&["install"]);
    assert_eq!(code, 2, "{refused:#}");
    let error = refused["error"].to_string();
    assert!(
        error.contains("k8s-boot upgrade") && error.contains(PREVIOUS),
        "{refused:#}"
    );

    step("upgrade --dry-run: every step and what it would change; nothing changes");
    let pids = |addr: &str| {
        c.lab.sh(
            addr,
            "for s in etcd kube-apiserver kubelet containerd; do \
             systemctl show -p MainPID --value $s 2>/dev/null; done | tr '\\n' ' '",
        )
    };
    let before: Vec<String> = ALL.iter().map(|a| pids(a)).collect();
    let (code, dry) = c.json_command(&["upgrade", "--dry-run"]);
    assert_eq!(code, 0, "{dry:#}");
    let planned = step_names(&dry);
    assert_eq!(
        planned.first().unwrap(),
        "stage lb1, m1, m2, m3, w1, w2",
        "{planned:#?}"
    );
    assert_eq!(planned.iter().filter(|s| s.starts_with("etcd ")).count(), 3);
    assert_eq!(planned.iter().filter(|s| s.starts_with("node ")).count(), 5);
    assert_eq!(planned.last().unwrap(), "add-ons");
    let after: Vec<String> = ALL.iter().map(|a| pids(a)).collect();
    assert_eq!(before, after, "a dry run restarted a service");

    step("upgrade: the API polled through the LB every 0.5 s, the chat by a reconnecting client");
    let api = api_probe(c);
    let chat = chat_probe();
    let started = Instant::now();
    let (code, report) = c.json_command(&["upgrade"]);
    let took = started.elapsed();
    let (api_down, api_looks) = api.finish();
    let (chat_down, chat_looks) = chat.finish();
    figure(&format!(
        "upgrade {PREVIOUS} -> {CURRENT}: {:.0} s, {} steps; API longest unavailable {:.1} s \
         ({api_looks} looks), chat longest unavailable {:.1} s ({chat_looks} looks)",
        took.as_secs_f64(),
        report["steps"].as_array().map_or(0, Vec::len),
        api_down.as_secs_f64(),
        chat_down.as_secs_f64()
    ));
    for s in report["steps"].as_array().unwrap() {
        figure(&format!(
            "  {} {} ({} ms)",
            s["step"], s["status"], s["elapsed_ms"]
        ));
    }
    assert_eq!(code, 0, "{report:#}");
    assert!(
        api_down <= Duration::from_secs(2),
        "the API was unavailable for {api_down:?}"
    );
    // Never entirely down: a reconnecting client finds a replica within a few looks (a new
    // pod takes far longer to start than that).
    assert!(
        chat_down <= Duration::from_secs(3),
        "the chat was unavailable for {chat_down:?}"
    );

    step("every node on the current minor; upgrading again has nothing but the add-ons");
    for (node, version) in kubelet_versions(c) {
        assert_eq!(version, CURRENT, "{node}");
    }
    let (code, again) = c.json_command(&["upgrade"]);
    assert_eq!(code, 0, "{again:#}");
    assert_eq!(step_names(&again), ["add-ons"], "{again:#}");
    assert_eq!(
        again["steps"][0]["changes"],
        serde_json::json!([]),
        "{again:#}"
    );
    let (code, install) = c.json_command(&["install"]);
    assert_eq!(code, 0, "{install:#}");
    assert!(changes(&install).is_empty(), "{:#?}", changes(&install));
}

/// The etcd members as m1 lists them.
fn etcd_members(c: &Cluster) -> Vec<String> {
    let out = c.lab.sh(
        M[0],
        "/usr/local/bin/etcdctl --endpoints=https://10.77.0.12:2379 \
         --cacert=/etc/kubernetes/pki/etcd/ca.crt \
         --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
         --key=/etc/kubernetes/pki/etcd/healthcheck-client.key member list -w json",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut names: Vec<String> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

fn etcd_healthy(c: &Cluster) -> bool {
    c.lab
        .ssh(
            M[0],
            "/usr/local/bin/etcdctl --endpoints=https://10.77.0.12:2379 \
             --cacert=/etc/kubernetes/pki/etcd/ca.crt \
             --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
             --key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health --cluster",
        )
        .status
        .success()
}

/// `remove-node NAME`, then `install --hosts NAME`, the API watched throughout.
fn remove_and_add(c: &Cluster, name: &str, addr: &str) -> (Value, Value, Duration) {
    let api = api_probe(c);
    let (code, removed) = c.json_command(&["remove-node", name, "--yes"]);
    assert_eq!(code, 0, "{removed:#}");
    let nodes = c.k(&["get", "nodes", "-o", "name"]);
    assert!(!nodes.contains(&format!("node/{name}")), "{nodes}");
    let nginx = c.lab.sh(LB, "cat /etc/nginx/nginx.conf");
    assert!(!nginx.contains(&format!("{addr}:")), "{nginx}");
    assert!(
        !c.lab
            .ssh(addr, "test -e /var/lib/k8s-boot/state.json")
            .status
            .success(),
        "{name} was not reset"
    );
    let (code, added) = c.json_command(&["install", "--hosts", name]);
    assert_eq!(code, 0, "{added:#}");
    let (down, _) = api.finish();
    (removed, added, down)
}

/// A worker and an etcd + control-plane host leave and come back, the others untouched.
fn remove_and_add_back(c: &Cluster) {
    step(
        "remove-node w2 and add it back: drained, deleted, LB reloaded, reset; install --hosts w2",
    );
    let nginx_pid = c.lab.sh(LB, "systemctl show -p MainPID --value nginx");
    let etcd_pid = c.lab.sh(M[0], "systemctl show -p MainPID --value etcd");
    let (removed, added, api_down) = remove_and_add(c, "w2", W[1]);
    assert_eq!(
        step_names(&removed),
        [
            "cordon and drain w2",
            "delete node w2",
            "lb lb1",
            "reset w2"
        ],
        "{removed:#}"
    );
    assert_eq!(
        c.lab.sh(LB, "systemctl show -p MainPID --value nginx"),
        nginx_pid
    );
    assert_eq!(
        c.lab.sh(M[0], "systemctl show -p MainPID --value etcd"),
        etcd_pid
    );
    // w2's labels came with the same install.
    assert_eq!(phase_status(&added, "lb1", "lb"), "changed", "{added:#}");
    let labels = c.k(&["get", "node", "w2", "-o", "jsonpath={.metadata.labels}"]);
    assert!(
        labels.contains("node-role.kubernetes.io/worker"),
        "{labels}"
    );
    figure(&format!(
        "w2 out and back: API longest unavailable {:.1} s",
        api_down.as_secs_f64()
    ));
    assert!(api_down <= Duration::from_secs(2), "{api_down:?}");

    step("remove-node m3 and add it back: etcd 3 -> 2 -> 3 members, healthy throughout");
    assert_eq!(etcd_members(c), ["m1", "m2", "m3"]);
    // etcd writes through m1's and m2's members, which stay.
    let etcd = Probe::start({
        let dir = c.lab.dir.clone();
        move || {
            common::lab_ssh(
                &dir,
                M[0],
                "/usr/local/bin/etcdctl --endpoints=https://10.77.0.12:2379,https://10.77.0.13:2379 \
                 --cacert=/etc/kubernetes/pki/etcd/ca.crt \
                 --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
                 --key=/etc/kubernetes/pki/etcd/healthcheck-client.key --command-timeout=2s \
                 put k8s-boot-probe ok",
            )
            .status
            .success()
        }
    });
    let (removed, added, api_down) = remove_and_add(c, "m3", M[2]);
    let (etcd_down, _) = etcd.finish();
    let names = step_names(&removed);
    assert!(
        names.contains(&"remove etcd member m3".to_string()),
        "{names:#?}"
    );
    assert_eq!(etcd_members(c), ["m1", "m2", "m3"]);
    assert!(etcd_healthy(c));
    let m3_changes = added["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "m3")
        .map(|h| h["phases"]["etcd"]["changes"].to_string())
        .unwrap_or_default();
    assert!(m3_changes.contains("add etcd member m3"), "{added:#}");
    figure(&format!(
        "m3 out and back: API longest unavailable {:.1} s, etcd writes longest unavailable {:.1} s",
        api_down.as_secs_f64(),
        etcd_down.as_secs_f64()
    ));
    assert!(api_down <= Duration::from_secs(2), "{api_down:?}");
    assert!(etcd_down <= Duration::from_secs(2), "{etcd_down:?}");

    step("a full install teaches the others about m3 (one etcd member, one API server at a time)");
    let api = api_probe(c);
    let (code, full, _) = c.install(&[]);
    let (api_down, _) = api.finish();
    assert_eq!(code, 0, "{full:#}");
    figure(&format!(
        "full install after m3's return: API longest unavailable {:.1} s",
        api_down.as_secs_f64()
    ));
    assert!(api_down <= Duration::from_secs(2), "{api_down:?}");
    assert!(etcd_healthy(c));

    step("the end: every node Ready on the current minor, the chat answering through the LB");
    for (node, version) in kubelet_versions(c) {
        assert_eq!(version, CURRENT, "{node}");
    }
    ready_pods(c, "chat", "app=chat", 1);
    let mut a = Client::connect(LB, CHAT_PORT);
    a.wait_registered(LB, CHAT_PORT);
}
