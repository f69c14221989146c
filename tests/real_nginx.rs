//! The nginx configuration `k8s-boot render` writes for `lb` hosts, checked and run by the
//! real nginx: `nginx -t` accepts it, and a running nginx forwards apiserver traffic to the
//! control-plane hosts (failing over when one is down) and chat traffic to the workers' PROXY
//! protocol NodePort (`chat.lb_node_port`) with a PROXY protocol v1 header.
//!
//! The control-plane and worker "hosts" are plain TCP listeners of this test on loopback
//! addresses (127.0.0.21-22 and 127.0.0.31-32; Linux routes all of 127.0.0.0/8 to lo).
//!
//! Debian builds the stream module as a dynamic module: the rendered file loads it through
//! /etc/nginx/modules-enabled, which the package libnginx-mod-stream populates.

mod common;

use common::{describe, host, require_free, require_program, run, wait_for, Processes, Rendered};
use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const APISERVER_PORT: u16 = 6443;
const CHAT_PORT: u16 = 31880;
const CHAT_NODE_PORT: u16 = 31881;
const CHAT_LB_NODE_PORT: u16 = 31882;
const CONTROL_PLANES: [(&str, &str); 2] = [("m1", "127.0.0.21"), ("m2", "127.0.0.22")];
const WORKERS: [(&str, &str); 2] = [("w1", "127.0.0.31"), ("w2", "127.0.0.32")];

fn inventory() -> String {
    common::inventory_yaml(
        "lbtest",
        &[
            host("lb1", "127.0.0.20", &["lb"]),
            host("m1", "127.0.0.21", &["etcd", "control-plane"]),
            host("m2", "127.0.0.22", &["control-plane"]),
            host("w1", "127.0.0.31", &["worker"]),
            host("w2", "127.0.0.32", &["worker"]),
        ],
        &format!(
            "chat:\n  port: {CHAT_PORT}\n  node_port: {CHAT_NODE_PORT}\n  lb_node_port: {CHAT_LB_NODE_PORT}\n"
        ),
    )
}

fn nginx_conf(r: &Rendered) -> PathBuf {
    let conf = r.host_file("lb1", "/etc/nginx/nginx.conf");
    assert!(conf.is_file(), "no nginx.conf rendered for lb1");
    for h in r.hosts().iter().filter(|h| *h != "lb1") {
        assert!(
            !r.host_file(h, "/etc/nginx/nginx.conf").exists(),
            "{h} is not an lb host but got an nginx.conf"
        );
    }
    conf
}

/// Runs `nginx -t` on `conf`; the PID file and error log go to `tmp` (the rendered file sets
/// neither on purpose: the distribution's defaults apply on the host).
fn nginx_test(nginx: &Path, conf: &Path, tmp: &Path) {
    let o = run(Command::new(nginx)
        .arg("-t")
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(tmp.join("error-t.log"))
        .arg("-g")
        .arg(format!("pid {};", tmp.join("nginx-t.pid").display())));
    let stderr = String::from_utf8_lossy(&o.stderr);
    if stderr.contains("unknown directive \"stream\"") {
        panic!(
            "this nginx has no stream module: install the Debian package \
             `libnginx-mod-stream` (it enables the module in /etc/nginx/modules-enabled)\n{}",
            describe(&o)
        );
    }
    assert!(
        o.status.success() && stderr.contains("test is successful"),
        "nginx -t rejected {}:\n{}",
        conf.display(),
        describe(&o)
    );
}

/// `nginx -t` binds the configured ports too, so the two tests of this file, which use the
/// same ports, take turns instead of running in parallel.
static PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_ports() -> std::sync::MutexGuard<'static, ()> {
    PORTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn nginx_accepts_the_rendered_config() {
    let _ports = lock_ports();
    let nginx = require_program("nginx", "nginx");
    let tmp = tempfile::tempdir().unwrap();
    let r = common::render(tmp.path(), "lb", &inventory());
    // The file exactly as rendered. As root (like CI) nginx may open the access log under
    // /var/log/nginx, which the nginx package creates.
    nginx_test(&nginx, &nginx_conf(&r), tmp.path());
}

/// A host's TCP service: accepts connections, answers each line with `<name>:<line>`, and
/// records what it received. With `proxy_protocol` the first line of a connection is taken
/// as the PROXY header and recorded separately.
struct Backend {
    name: &'static str,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    received: Arc<Mutex<Vec<Received>>>,
}

#[derive(Clone, Debug)]
struct Received {
    header: Option<String>,
    payload: String,
}

impl Backend {
    fn start(name: &'static str, addr: &str, proxy_protocol: bool) -> Backend {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| {
            panic!("cannot listen on {addr} for backend {name}: {e} (is something using it?)")
        });
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::spawn(move || {
                // Polls so that `stop` closes the listening socket promptly; the listener
                // is dropped when this thread returns.
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let received = received.clone();
                            std::thread::spawn(move || {
                                serve(name, stream, proxy_protocol, &received)
                            });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Backend {
            name,
            stop,
            thread: Some(thread),
            received,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Closes the listening socket: new connections to it are refused.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(name: &str, stream: TcpStream, proxy_protocol: bool, received: &Mutex<Vec<Received>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    let mut read_line = || {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => Some(line),
            _ => None,
        }
    };
    let header = if proxy_protocol {
        match read_line() {
            Some(h) => Some(h),
            None => return,
        }
    } else {
        None
    };
    let Some(payload) = read_line() else { return };
    let payload = payload.trim_end().to_string();
    // Recorded before the reply, so a client that has its reply finds the record.
    received.lock().unwrap().push(Received {
        header,
        payload: payload.clone(),
    });
    let _ = writeln!(writer, "{name}:{payload}");
    // Wait for the client to close.
    let _ = read_line();
}

/// Sends one line through `addr` and returns the reply line and the client's local address.
fn exchange(addr: &str, msg: &str) -> Result<(String, SocketAddr), String> {
    exchange_and_hold(addr, msg).map(|(reply, local, _)| (reply, local))
}

/// [`exchange`], keeping the connection open.
fn exchange_and_hold(addr: &str, msg: &str) -> Result<(String, SocketAddr, TcpStream), String> {
    let sa: SocketAddr = addr.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(1))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = s.local_addr().unwrap();
    s.write_all(format!("{msg}\n").as_bytes())
        .map_err(|e| format!("write {addr}: {e}"))?;
    let mut reply = String::new();
    BufReader::new(&s)
        .read_line(&mut reply)
        .map_err(|e| format!("read {addr}: {e}"))?;
    if reply.is_empty() {
        return Err(format!("{addr} closed the connection without a reply"));
    }
    Ok((reply.trim_end().to_string(), local, s))
}

#[test]
fn nginx_balances_apiservers_with_failover_and_sends_proxy_protocol_to_chat() {
    let _ports = lock_ports();
    let nginx = require_program("nginx", "nginx");
    require_free(
        &format!("0.0.0.0:{APISERVER_PORT}"),
        "this test runs the LB's apiserver listener and fake apiservers on port 6443",
    );
    require_free(
        &format!("0.0.0.0:{CHAT_PORT}"),
        "this test runs the LB's chat listener there",
    );

    let tmp = tempfile::tempdir().unwrap();
    let r = common::render(tmp.path(), "lb", &inventory());
    let rendered = fs::read_to_string(nginx_conf(&r)).unwrap();
    let conf = tmp.path().join("nginx.conf");
    fs::write(
        &conf,
        common::lb_conf_for_loopback(&rendered, tmp.path(), APISERVER_PORT, CHAT_PORT),
    )
    .unwrap();
    nginx_test(&nginx, &conf, tmp.path());

    // Declared after `tmp` so that they are stopped before the directory is removed.
    let mut apiservers: Vec<Backend> = CONTROL_PLANES
        .iter()
        .map(|(n, ip)| Backend::start(n, &format!("{ip}:{APISERVER_PORT}"), false))
        .collect();
    let chat: Vec<Backend> = WORKERS
        .iter()
        .map(|(n, ip)| Backend::start(n, &format!("{ip}:{CHAT_LB_NODE_PORT}"), true))
        .collect();
    let mut procs = Processes::new(&tmp.path().join("logs"));
    common::spawn_nginx(&mut procs, &nginx, &conf, tmp.path());

    let api = format!("127.0.0.1:{APISERVER_PORT}");
    let cp_names: BTreeSet<&str> = CONTROL_PLANES.iter().map(|(n, _)| *n).collect();

    // 1. A connection to the LB reaches an apiserver backend (retried until nginx listens).
    let (reply, _) = wait_for(
        "nginx to forward to an apiserver",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            procs.assert_running();
            exchange(&api, "ready")
        },
    );
    let (who, echoed) = reply.split_once(':').unwrap();
    assert!(cp_names.contains(who) && echoed == "ready", "reply {reply}");

    // 2. Both control-plane hosts are in the upstream. Each nginx worker process balances
    //    round-robin on its own, so a worker's second connection goes to the other
    //    apiserver: with more connections than workers (one per CPU) both are reached.
    let mut seen = BTreeSet::new();
    for i in 0..200 {
        let (reply, _) = exchange(&api, &format!("rr{i}")).expect("apiserver via LB");
        seen.insert(reply.split_once(':').unwrap().0.to_string());
        if seen.len() == cp_names.len() {
            break;
        }
    }
    assert_eq!(
        seen.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        cp_names,
        "connections through the LB did not reach every control-plane host"
    );

    // 3. One apiserver goes away: new connections still get through, to the other one
    //    (nginx tries the next upstream server when a connect is refused).
    apiservers[0].stop();
    for i in 0..10 {
        let msg = format!("failover{i}");
        let (reply, _) = exchange(&api, &msg)
            .unwrap_or_else(|e| panic!("connection {i} after m1 went down failed: {e}"));
        assert_eq!(reply, format!("m2:{msg}"));
    }
    // nginx's own record of it: failed-over sessions list both upstream addresses.
    let access_log = tmp.path().join("k8s-boot-stream.log");
    wait_for(
        "a failed-over session in the access log",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let log = fs::read_to_string(&access_log).unwrap_or_default();
            if log.contains("\"127.0.0.21:6443, 127.0.0.22:6443\"") {
                Ok(())
            } else {
                Err(format!("access log:\n{log}"))
            }
        },
    );
    assert!(
        apiservers[1]
            .received()
            .iter()
            .any(|r| r.payload == "failover0"),
        "m2 did not record the failed-over connection"
    );

    // 4. The chat port reaches a worker's PROXY protocol NodePort, and the worker first
    //    receives a PROXY protocol v1 header naming the real client.
    let chat_addr = format!("127.0.0.1:{CHAT_PORT}");
    let (reply, local) = wait_for(
        "nginx to forward chat traffic",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || exchange(&chat_addr, "hello chat"),
    );
    let (who, echoed) = reply.split_once(':').unwrap();
    assert_eq!(echoed, "hello chat");
    let worker = chat
        .iter()
        .find(|b| b.name == who)
        .unwrap_or_else(|| panic!("chat reply from unexpected backend: {reply}"));
    let got = worker.received();
    let entry = got
        .iter()
        .find(|r| r.payload == "hello chat")
        .expect("worker recorded the chat line");
    assert_eq!(
        entry.header.as_deref(),
        Some(
            format!(
                "PROXY TCP4 127.0.0.1 127.0.0.1 {} {CHAT_PORT}\r\n",
                local.port()
            )
            .as_str()
        ),
        "PROXY protocol header received by {who}"
    );
    // Apiserver traffic carries no PROXY header: the backends echoed the first line as is.
    assert!(apiservers[1]
        .received()
        .iter()
        .all(|r| r.header.is_none() && !r.payload.starts_with("PROXY")));

    // 5. One client address holds at most its share of chat connections at once: the next
    //    is closed at once, while the API still answers that client.
    let per_client = k8s_boot::catalog::LB_LIMITS.chat_connections_per_client;
    let held: Vec<TcpStream> = (0..per_client)
        .map(|i| {
            exchange_and_hold(&chat_addr, &format!("held{i}"))
                .unwrap_or_else(|e| panic!("chat connection {i} of {per_client}: {e}"))
                .2
        })
        .collect();
    let refused = exchange(&chat_addr, "one too many").expect_err("over the per-client limit");
    // nginx closes it unanswered: a FIN, or a reset when the line had already arrived
    // unread (the kernel resets a connection closed with unread data).
    assert!(
        refused.contains("without a reply") || refused.contains("reset by peer"),
        "{refused}"
    );
    let api = exchange(&format!("127.0.0.1:{APISERVER_PORT}"), "api meanwhile");
    assert!(api.is_ok(), "{api:?}");
    drop(held);
    wait_for(
        "a chat connection once the held ones are closed",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || exchange(&chat_addr, "room again"),
    );

    procs.assert_running();
    let errors = procs.log("nginx");
    assert!(
        !errors.contains("[emerg]"),
        "nginx error log has emergencies:\n{errors}"
    );
}
