//! The chat workload behind the LB as rendered: real nginx started from the nginx.conf that
//! `k8s-boot render` writes for an `lb` host, in front of two real chat servers
//! (`node templates/workloads/chat/server.js`), one per worker.
//!
//! What it shows:
//! * clients connecting through nginx chat with each other (join announcements, broadcast);
//! * the ids the server shows are the clients' real address:port, not nginx's upstream
//!   connection: the PROXY protocol header nginx sends to the workers' PROXY NodePort
//!   (`chat.lb_node_port`) is honoured end to end;
//! * a client connecting straight to a worker's plain NodePort (`chat.node_port`) chats in the
//!   same room under its own address, and a PROXY header it sends there is just a chat line;
//! * the chat upstream hashes the client address: connections from one address always land
//!   on the same worker, and different addresses are spread over both workers;
//! * when the worker a client address lands on dies, new clients from that address are sent
//!   to the other worker and can chat there, while nginx keeps running.
//!
//! Hosts are loopback addresses (Linux routes all of 127.0.0.0/8 to lo): the LB listens on
//! every address, the workers are 127.0.0.31 and 127.0.0.32, and clients bind their socket
//! to a chosen 127.0.0.x source address so that "different client machines" can be told
//! apart. In a cluster, nginx connects to the chat Service's PROXY NodePort on each worker and
//! kube-proxy forwards that to the chat pod. Here there is no kube-proxy: each chat server
//! listens directly on `<worker address>:<node_port>` (plain) and
//! `<worker address>:<lb_node_port>` (`CHAT_PROXY_PORT`, PROXY header required), standing in
//! for "NodePorts forwarded to the pod", as in the rendered Deployment behind this LB.

mod common;

use common::{host, require_free, require_program, run, wait_for, Processes, Rendered};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const APISERVER_PORT: u16 = 6443;
const CHAT_PORT: u16 = 31890;
const CHAT_NODE_PORT: u16 = 31891;
const CHAT_LB_NODE_PORT: u16 = 31892;
const WORKERS: [(&str, Ipv4Addr); 2] = [
    ("w1", Ipv4Addr::new(127, 0, 0, 31)),
    ("w2", Ipv4Addr::new(127, 0, 0, 32)),
];
/// Source address of the chatting clients ("one client machine").
const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 77);
/// Source address of a client that bypasses the LB.
const DIRECT_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 88);
/// Source addresses used to see how the hash spreads client machines over the workers.
const SPREAD_ADDRS: std::ops::RangeInclusive<u8> = 101..=124;
const TIMEOUT: Duration = Duration::from_secs(5);

fn inventory() -> String {
    common::inventory_yaml(
        "chatlb",
        &[
            host("lb1", "127.0.0.20", &["lb"]),
            host("m1", "127.0.0.21", &["etcd", "control-plane"]),
            host("w1", "127.0.0.31", &["worker"]),
            host("w2", "127.0.0.32", &["worker"]),
        ],
        &format!(
            "chat:\n  port: {CHAT_PORT}\n  node_port: {CHAT_NODE_PORT}\n  lb_node_port: {CHAT_LB_NODE_PORT}\n"
        ),
    )
}

fn server_js() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/workloads/chat/server.js")
}

/// Process name of the chat server of worker `w`.
fn chat(w: &str) -> String {
    format!("chat-{w}")
}

/// A TCP connection to `dst` from source address `src` (port chosen by the kernel): std has
/// no bind-before-connect, so the socket is set up with libc and then handed to std.
fn connect_from(src: Ipv4Addr, dst: SocketAddrV4) -> io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
        // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_port = a.port().to_be();
        sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
        sa
    }
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket(2); the descriptor is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket owned by nobody else; the TcpStream now owns (and on
    // error closes) it.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let local = sockaddr(SocketAddrV4::new(src, 0));
    // SAFETY: `local` is a valid sockaddr_in of length `len`.
    if unsafe { libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let remote = sockaddr(dst);
    // SAFETY: `remote` is a valid sockaddr_in of length `len`.
    if unsafe { libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stream)
}

fn lb_addr() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, CHAT_PORT)
}

/// A chat client, connected through the LB or straight to a worker.
struct Client {
    /// What the server should call this client: its own socket's local address.
    id: String,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(src: Ipv4Addr) -> io::Result<Client> {
        Client::connect_to(src, lb_addr())
    }

    fn connect_to(src: Ipv4Addr, dst: SocketAddrV4) -> io::Result<Client> {
        let stream = connect_from(src, dst)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let id = stream.local_addr()?.to_string();
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Client { id, stream, reader })
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("client {} cannot send: {e}", self.id));
    }

    /// The next line from the server (without the newline); panics on timeout or EOF.
    fn read_line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("client {}: connection closed, expected a line", self.id),
            Ok(_) => line.trim_end_matches('\n').to_string(),
            Err(e) => panic!("client {}: no line within {TIMEOUT:?}: {e}", self.id),
        }
    }

    fn expect(&mut self, expected: &str) {
        let got = self.read_line();
        assert_eq!(got, expected, "client {} received", self.id);
    }

    /// Waits for the server side to close the connection (EOF), skipping what comes before.
    fn expect_closed(&mut self) {
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => continue,
                // A reset is as good as a close.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("client {}: connection not closed: {e}", self.id),
            }
        }
    }
}

/// Which worker's chat server logged `<id> join`; waits for it.
fn joined_on(procs: &mut Processes, workers: &[&str], id: &str) -> String {
    let needle = format!("\n{id} join\n");
    wait_for(
        &format!("a chat server to log `{id} join`"),
        TIMEOUT,
        Duration::from_millis(10),
        || {
            procs.assert_running();
            let on: Vec<&str> = workers
                .iter()
                .copied()
                .filter(|w| procs.log(&chat(w)).contains(&needle))
                .collect();
            match on.as_slice() {
                [w] => Ok(w.to_string()),
                [] => Err("not logged yet".to_string()),
                _ => panic!("{id} joined on several servers: {on:?}"),
            }
        },
    )
}

/// Connects a client from `src`, waits until a chat server has logged its join, and returns
/// it with the worker it landed on.
fn join(procs: &mut Processes, workers: &[&str], src: Ipv4Addr) -> (Client, String) {
    let c = Client::connect(src).unwrap_or_else(|e| panic!("connect from {src} via LB: {e}"));
    let w = joined_on(procs, workers, &c.id);
    (c, w)
}

/// Established TCP connections from /proc/net/tcp: (local, remote).
fn tcp_connections() -> Vec<(SocketAddrV4, SocketAddrV4)> {
    let parse = |s: &str| {
        let (ip, port) = s.split_once(':').unwrap();
        // The address is the raw network-order u32 printed as a host (little-endian) integer.
        let ip = u32::from_str_radix(ip, 16).unwrap().to_le_bytes();
        SocketAddrV4::new(Ipv4Addr::from(ip), u16::from_str_radix(port, 16).unwrap())
    };
    fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[3] == "01").then(|| (parse(f[1]), parse(f[2])))
        })
        .collect()
}

/// Starts nginx from the rendered LB config (adapted for loopback, see
/// `common::lb_conf_for_loopback`) after `nginx -t` accepted it.
fn start_nginx(procs: &mut Processes, r: &Rendered, dir: &Path) {
    let nginx = require_program("nginx", "nginx");
    let rendered = fs::read_to_string(r.host_file("lb1", "/etc/nginx/nginx.conf"))
        .expect("nginx.conf rendered for lb1");
    assert!(
        rendered.contains("hash $remote_addr consistent;")
            && rendered.contains("proxy_protocol on;"),
        "the chat upstream is not a consistent hash with PROXY protocol:\n{rendered}"
    );
    for (_, ip) in WORKERS {
        assert!(
            rendered.contains(&format!("server {ip}:{CHAT_LB_NODE_PORT} "))
                && !rendered.contains(&format!("{ip}:{CHAT_NODE_PORT}")),
            "the chat upstream must use the PROXY NodePort {CHAT_LB_NODE_PORT} of {ip}, never \
             the plain NodePort {CHAT_NODE_PORT}:\n{rendered}"
        );
    }
    let conf = dir.join("nginx.conf");
    fs::write(
        &conf,
        common::lb_conf_for_loopback(&rendered, dir, APISERVER_PORT, CHAT_PORT),
    )
    .unwrap();
    let t = run(Command::new(&nginx)
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error-t.log"))
        .arg("-g")
        .arg(format!("pid {};", dir.join("nginx-t.pid").display())));
    assert!(
        t.status.success(),
        "nginx -t rejected {}:\n{}",
        conf.display(),
        common::describe(&t)
    );
    common::spawn_nginx(procs, &nginx, &conf, dir);
}

#[test]
fn chat_through_rendered_nginx_with_proxy_protocol_hashing_and_failover() {
    let node = require_program("node", "nodejs");
    require_free(
        &format!("127.0.0.1:{APISERVER_PORT}"),
        "the LB config also has an apiserver listener, run on 127.0.0.1 in this test",
    );
    require_free(
        &format!("0.0.0.0:{CHAT_PORT}"),
        "this test runs the LB's chat listener there",
    );
    for (_, ip) in WORKERS {
        for port in [CHAT_NODE_PORT, CHAT_LB_NODE_PORT] {
            require_free(
                &format!("{ip}:{port}"),
                "this test runs a chat server on each worker's NodePorts",
            );
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    let r = common::render(tmp.path(), "chat-lb", &inventory());
    let mut procs = Processes::new(&tmp.path().join("logs"));

    // The chat pods behind the workers' NodePort (see the module comment).
    for (w, ip) in WORKERS {
        procs.spawn(
            &chat(w),
            Command::new(&node)
                .arg(server_js())
                .env("CHAT_HOST", ip.to_string())
                .env("CHAT_PORT", CHAT_NODE_PORT.to_string())
                .env("CHAT_PROXY_PORT", CHAT_LB_NODE_PORT.to_string())
                // Bounded shutdown when the guard stops the servers at the end.
                .env("CHAT_SHUTDOWN_GRACE_MS", "500"),
        );
    }
    for (w, _) in WORKERS {
        procs.wait_for_log(&chat(w), "chat server listening on", TIMEOUT);
    }
    start_nginx(&mut procs, &r, tmp.path());
    let mut workers: Vec<&str> = WORKERS.iter().map(|(w, _)| *w).collect();

    // --- Hashing: the LB picks the worker from the client address. --------------------------
    // Retried until nginx accepts connections.
    let probe = wait_for(
        "nginx to forward chat connections",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            procs.assert_running();
            Client::connect(CLIENT_ADDR).map_err(|e| e.to_string())
        },
    );
    let w = joined_on(&mut procs, &workers, &probe.id);
    let mut gone = vec![(probe.id.clone(), w)];
    drop(probe);

    // Several client machines, two connections each (one after the other): each machine's
    // connections land on one worker, and the machines are spread over both workers.
    let mut by_worker: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for last in SPREAD_ADDRS {
        let src = Ipv4Addr::new(127, 0, 0, last);
        let (first, w1) = join(&mut procs, &workers, src);
        gone.push((first.id.clone(), w1.clone()));
        drop(first);
        let (second, w2) = join(&mut procs, &workers, src);
        gone.push((second.id.clone(), w2.clone()));
        drop(second);
        assert_eq!(
            w1, w2,
            "two connections from {src} went to different workers: the chat upstream does \
             not hash the client address"
        );
        by_worker.entry(w1).or_default().insert(src);
    }
    assert_eq!(
        by_worker.len(),
        2,
        "{} client addresses all landed on one worker: {by_worker:?}",
        SPREAD_ADDRS.count()
    );
    // Every one of those clients has left before the chat below starts, so that no late
    // "has left" reaches the chatting clients.
    for (id, w) in &gone {
        procs.wait_for_log(&chat(w), &format!("\n{id} has left ("), TIMEOUT);
    }

    // --- Chat through nginx, with the real client ids. --------------------------------------
    // Clients from one machine: they all land on the same worker ("home").
    let mut clients: Vec<Client> = Vec::new();
    let mut home = String::new();
    for i in 0..4 {
        let (c, w) = join(&mut procs, &workers, CLIENT_ADDR);
        if i == 0 {
            home = w;
        } else {
            assert_eq!(
                w, home,
                "clients from {CLIENT_ADDR} landed on different workers"
            );
        }
        // Everyone already in the room is told, with the newcomer's real address:port.
        for earlier in &mut clients {
            earlier.expect(&format!("{} join", c.id));
        }
        clients.push(c);
    }
    assert!(clients.iter().all(|c| c.id.starts_with("127.0.0.77:")));

    // Each client says something; everybody else receives it prefixed with the sender's
    // real id, in order. A client never gets its own line: the next line it reads is the
    // next sender's.
    for i in 0..clients.len() {
        let msg = format!("hello from client {i} via the LB");
        clients[i].send(&msg);
        let from = clients[i].id.clone();
        for (j, c) in clients.iter_mut().enumerate() {
            if j != i {
                c.expect(&format!("{from}: {msg}"));
            }
        }
    }

    // The chat server's TCP peers are nginx's upstream connections (from 127.0.0.1), not the
    // clients: the ids above can only come from the PROXY protocol header.
    let home_addr = WORKERS.iter().find(|(w, _)| *w == home).unwrap().1;
    let peers: BTreeSet<Ipv4Addr> = tcp_connections()
        .into_iter()
        .filter(|(local, _)| *local == SocketAddrV4::new(home_addr, CHAT_LB_NODE_PORT))
        .map(|(_, remote)| *remote.ip())
        .collect();
    assert!(
        !peers.is_empty() && !peers.contains(&CLIENT_ADDR),
        "the chat server on {home} should be connected to nginx only, its TCP peers are {peers:?}"
    );
    let home_log = procs.log(&chat(&home));
    for c in &clients {
        assert!(home_log.contains(&format!("\n{} join\n", c.id)));
    }
    assert!(
        !home_log.contains("reject"),
        "the chat server rejected a connection:\n{home_log}"
    );

    // --- A client that bypasses the LB: the plain NodePort of the same worker. --------------
    let direct_addr = SocketAddrV4::new(home_addr, CHAT_NODE_PORT);
    let mut direct = Client::connect_to(DIRECT_ADDR, direct_addr)
        .unwrap_or_else(|e| panic!("connect from {DIRECT_ADDR} to {direct_addr}: {e}"));
    assert!(direct.id.starts_with("127.0.0.88:"));
    // Its join names its own address, in the same room as the LB's clients.
    for c in &mut clients {
        c.expect(&format!("{} join", direct.id));
    }
    // A PROXY header on the plain port is not trusted: it is a chat line from the real id.
    let forged = "PROXY TCP4 198.51.100.66 10.0.0.1 4444 30000";
    direct.send(&format!("{forged}\r"));
    direct.send("hello, I came in directly");
    for c in &mut clients {
        c.expect(&format!("{}: {forged}", direct.id));
        c.expect(&format!("{}: hello, I came in directly", direct.id));
    }
    let msg = "hello to the direct client";
    clients[0].send(msg);
    let line = format!("{}: {msg}", clients[0].id);
    direct.expect(&line);
    for c in clients.iter_mut().skip(1) {
        c.expect(&line);
    }
    direct.send("leave");
    for c in &mut clients {
        c.expect(&format!("{} has left", direct.id));
    }
    direct.expect_closed();
    let home_log = procs.log(&chat(&home));
    assert!(home_log.contains(&format!("\n{} join\n", direct.id)));
    assert!(!home_log.contains("198.51.100.66") && !home_log.contains("reject"));

    // --- Failover: the worker these clients landed on dies. --------------------------------
    procs.kill(&chat(&home));
    workers.retain(|w| *w != home);
    let other = workers[0].to_string();
    // nginx closes the client side of the connections whose upstream went away.
    for c in &mut clients {
        c.expect_closed();
    }
    drop(clients);

    // New clients from the same machine: the hash still points at the dead worker, nginx
    // gets "connection refused" there and uses the other one.
    let mut moved: Vec<Client> = Vec::new();
    for _ in 0..3 {
        let (c, w) = join(&mut procs, &workers, CLIENT_ADDR);
        assert_eq!(w, other, "a new client after {home} died");
        for earlier in &mut moved {
            earlier.expect(&format!("{} join", c.id));
        }
        moved.push(c);
    }
    for i in 0..moved.len() {
        let msg = format!("still chatting, client {i}");
        moved[i].send(&msg);
        let from = moved[i].id.clone();
        for (j, c) in moved.iter_mut().enumerate() {
            if j != i {
                c.expect(&format!("{from}: {msg}"));
            }
        }
    }

    // nginx kept serving throughout and logged nothing worse than the refused connects.
    procs.assert_running();
    let nginx_log = procs.log("nginx");
    for bad in ["[emerg]", "[alert]", "[crit]"] {
        assert!(!nginx_log.contains(bad), "nginx logged {bad}:\n{nginx_log}");
    }
    drop(moved);
}
