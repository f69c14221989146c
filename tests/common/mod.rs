//! Shared helpers for the integration tests that run real programs (etcd, nginx,
//! systemd-analyze, kubectl, openssl) against the files `k8s-boot render` writes.
//!
//! Every test binary includes this module with `mod common;` and uses a different subset of
//! it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cis;
pub mod registry;
pub mod releases;

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A host of a test inventory: name, address, roles.
pub struct HostSpec<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub roles: &'a [&'a str],
}

pub const fn host<'a>(name: &'a str, address: &'a str, roles: &'a [&'a str]) -> HostSpec<'a> {
    HostSpec {
        name,
        address,
        roles,
    }
}

/// A minimal inventory (format of `inventory/hosts.yaml`); `extra` is appended verbatim as
/// top-level YAML (for example a `chat:` section).
pub fn inventory_yaml(cluster: &str, hosts: &[HostSpec], extra: &str) -> String {
    let mut y = format!("cluster:\n  name: {cluster}\n  kubernetes_version: v1.36.0\n");
    if hosts.iter().any(|h| h.address.starts_with("127.")) {
        // The hosts all run on this machine.
        y.push_str("  allow_loopback_hosts: true\n");
    }
    y.push('\n');
    y.push_str(extra);
    if !extra.is_empty() && !extra.ends_with('\n') {
        y.push('\n');
    }
    y.push_str("hosts:\n");
    for h in hosts {
        y.push_str(&format!(
            "  - name: {}\n    address: {}\n    roles: [{}]\n",
            h.name,
            h.address,
            h.roles.join(", ")
        ));
    }
    y
}

/// The result of one `k8s-boot render` run.
pub struct Rendered {
    pub inventory: PathBuf,
    pub pki: PathBuf,
    pub out: PathBuf,
}

impl Rendered {
    /// `OUT/hosts/<host>/<absolute path>`.
    pub fn host_file(&self, host: &str, abs: &str) -> PathBuf {
        self.out
            .join("hosts")
            .join(host)
            .join(abs.trim_start_matches('/'))
    }

    /// `OUT/hosts/<host>`.
    pub fn host_root(&self, host: &str) -> PathBuf {
        self.out.join("hosts").join(host)
    }

    /// Names of the host directories under `OUT/hosts`, sorted.
    pub fn hosts(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.out.join("hosts"))
            .unwrap_or_else(|e| panic!("reading {}/hosts: {e}", self.out.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Writes `yaml` to `dir/<name>/hosts.yaml` and runs `k8s-boot render` into `dir/<name>/out`
/// with the PKI in `dir/<name>/pki` (created by render); panics with the tool's output if it
/// fails.
pub fn render(dir: &Path, name: &str, yaml: &str) -> Rendered {
    let base = dir.join(name);
    fs::create_dir_all(&base).unwrap();
    let inventory = base.join("hosts.yaml");
    fs::write(&inventory, yaml).unwrap();
    let pki = base.join("pki");
    let out = base.join("out");
    let output = run(Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .arg("render")
        .arg("--inventory")
        .arg(&inventory)
        .arg("--pki-dir")
        .arg(&pki)
        .arg("--out")
        .arg(&out));
    assert!(
        output.status.success(),
        "k8s-boot render failed for inventory:\n{yaml}\n{}",
        describe(&output)
    );
    assert!(out.join("plan.json").is_file(), "render wrote no plan.json");
    Rendered {
        inventory,
        pki,
        out,
    }
}

/// Finds `program` in PATH (and the sbin directories, where nginx lives); panics with the
/// Debian package to install when it is missing. Tests never skip silently.
pub fn require_program(program: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/local/sbin", "/usr/sbin", "/sbin"] {
        dirs.push(PathBuf::from(extra));
    }
    for d in dirs {
        let candidate = d.join(program);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!(
        "required program `{program}` was not found in PATH or /usr/sbin: \
         install the Debian package `{debian_package}` (apt-get install {debian_package})"
    );
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs a command to completion, capturing its output; panics only if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Exit status, stdout and stderr of a finished command, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Retries `attempt` every `interval` until it returns `Ok` or `timeout` passes; panics with
/// the last error on timeout.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match attempt() {
            Ok(v) => return v,
            Err(e) if start.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last error: {e}")
            }
            Err(_) => std::thread::sleep(interval),
        }
    }
}

/// Panics with a clear message if `addr` (`ip:port`) cannot be bound, i.e. something else on
/// this machine listens there. The probe socket is closed before returning.
pub fn require_free(addr: &str, why: &str) {
    if let Err(e) = TcpListener::bind(addr) {
        panic!(
            "{addr} is not free on this machine ({e}): {why}; stop whatever listens there \
             (see `ss -ltnp`) and run the test again"
        );
    }
}

/// Every regular file under `dir` (recursively) accepted by `keep`, sorted.
pub fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display())) {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && keep(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Background processes started by a test. Dropping the guard (normally, or while unwinding
/// from a failed assertion) stops every process: SIGTERM first so that daemons such as nginx
/// take their worker processes down with them, SIGKILL after a bounded wait. When the test is
/// failing, the tail of each process's log is printed to help diagnose it.
pub struct Processes {
    log_dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Processes {
    /// Logs of the processes go to `log_dir/<name>.log`.
    pub fn new(log_dir: &Path) -> Processes {
        fs::create_dir_all(log_dir).unwrap();
        Processes {
            log_dir: log_dir.to_path_buf(),
            children: Vec::new(),
        }
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Starts `cmd` with stdout and stderr going to its log file.
    pub fn spawn(&mut self, name: &str, cmd: &mut Command) {
        let log = fs::File::create(self.log_path(name)).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        self.children.push((name.to_string(), child));
    }

    /// Panics (with its log) if a process has already exited: daemons must keep running.
    pub fn assert_running(&mut self) {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{name} exited early with {status}; log:\n{}",
                    tail(&self.log_dir.join(format!("{name}.log")), 40)
                );
            }
        }
    }

    /// The log of process `name`, as written so far.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Stops process `name` (SIGTERM, then SIGKILL) and forgets it.
    pub fn stop(&mut self, name: &str) {
        if let Some(i) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.children.remove(i);
            terminate(&mut child);
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        for (name, child) in &mut self.children {
            terminate(child);
            if failing {
                eprintln!(
                    "--- last lines of the {name} log ({}):\n{}",
                    self.log_dir.join(format!("{name}.log")).display(),
                    tail(&self.log_dir.join(format!("{name}.log")), 25)
                );
            }
        }
    }
}

fn terminate(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // std offers only SIGKILL; the shell's `kill` builtin sends SIGTERM.
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -TERM {}", child.id()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `n` lines of a text file.
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(f) = fs::File::open(path) else {
        return String::from("(no log)");
    };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The rendered LB nginx.conf adapted to run on a test machine whose "hosts" are loopback
/// addresses: the access log goes to `dir/k8s-boot-stream.log` instead of /var/log/nginx, and
/// the apiserver listener (`listen <apiserver_port>;`, every address on an lb host) is narrowed
/// to 127.0.0.1, because Linux refuses a wildcard listener on a port that the fake
/// control-plane listeners (127.0.0.21:6443, ...) may already use. Everything else, including
/// the chat listener `listen <chat_port>;`, is used as rendered. Panics if the rendered file
/// does not have exactly the expected lines.
pub fn lb_conf_for_loopback(
    rendered: &str,
    dir: &Path,
    apiserver_port: u16,
    chat_port: u16,
) -> String {
    let access_log = "/var/log/nginx/k8s-boot-stream.log";
    assert_eq!(
        rendered.matches(access_log).count(),
        1,
        "expected one access_log {access_log} in:\n{rendered}"
    );
    let listen = format!("listen {apiserver_port};");
    assert_eq!(
        rendered.matches(&listen).count(),
        1,
        "expected one `{listen}` in:\n{rendered}"
    );
    assert!(
        rendered.contains(&format!("listen {chat_port};")),
        "expected `listen {chat_port};` in:\n{rendered}"
    );
    rendered
        .replace(
            access_log,
            dir.join("k8s-boot-stream.log").to_str().unwrap(),
        )
        .replace(&listen, &format!("listen 127.0.0.1:{apiserver_port};"))
}

impl Processes {
    /// Kills process `name` with SIGKILL (a crash, not a shutdown), reaps it and forgets it.
    pub fn kill(&mut self, name: &str) {
        let i = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process named {name}"));
        let (_, mut child) = self.children.remove(i);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits until the log of process `name` contains `needle` (checking that every process
    /// is still running meanwhile); panics with the log on timeout.
    pub fn wait_for_log(&mut self, name: &str, needle: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self.log(name).contains(needle) {
                return;
            }
            self.assert_running();
            if start.elapsed() >= timeout {
                panic!(
                    "timed out after {timeout:?} waiting for `{needle}` in the {name} log:\n{}",
                    tail(&self.log_path(name), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A lab (systemd-nspawn hosts, see docs/LAB.md) for one test, in
/// `$CARGO_TARGET_TMPDIR/<name>/lab`, taken down when dropped. The root file system is
/// cached in `$K8S_BOOT_LAB_CACHE` (default `$CARGO_TARGET_TMPDIR/lab-cache`) and shared by
/// the lab tests. Needs root: fails clearly otherwise.
pub struct TestLab {
    pub dir: PathBuf,
}

impl TestLab {
    pub fn up(name: &str, hosts: usize) -> TestLab {
        TestLab::up_with(name, hosts, &[])
    }

    /// [`TestLab::up`] with more `lab up` arguments (`--version`).
    pub fn up_with(name: &str, hosts: usize, extra: &[&str]) -> TestLab {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")),
            "this test needs root: it starts systemd-nspawn lab hosts"
        );
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = fs::remove_dir_all(&base);
        let lab = TestLab {
            dir: base.join("lab"),
        };
        let hosts = hosts.to_string();
        let dir = lab.dir.to_str().unwrap().to_string();
        let mut args = vec!["lab", "up", "--dir", &dir, "--hosts", &hosts];
        args.extend_from_slice(extra);
        let up = lab.k8s_boot(&args);
        assert!(up.status.success(), "{}", describe(&up));
        lab
    }

    /// Runs the built k8s-boot with the shared rootfs cache.
    pub fn k8s_boot(&self, args: &[&str]) -> Output {
        let cache = std::env::var_os("K8S_BOOT_LAB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-cache"));
        run(Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
            .args(args)
            .env("K8S_BOOT_LAB_CACHE", cache))
    }

    pub fn inventory(&self) -> String {
        self.dir.join("hosts.yaml").display().to_string()
    }

    /// `install --inventory <lab> --output json EXTRA...`: (exit code, report).
    pub fn install(&self, extra: &[&str]) -> (i32, serde_json::Value) {
        let inv = self.inventory();
        let mut args = vec!["install", "--inventory", &inv, "--output", "json"];
        args.extend_from_slice(extra);
        let out = self.k8s_boot(&args);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("install printed no JSON report ({e}):\n{}", describe(&out))
        });
        (out.status.code().unwrap_or(-1), report)
    }

    /// Real OpenSSH as root on a lab host, host key checked against the lab's known_hosts.
    pub fn ssh(&self, addr: &str, command: &str) -> Output {
        lab_ssh(&self.dir, addr, command)
    }

    /// `ssh` that must succeed; its trimmed stdout.
    pub fn sh(&self, addr: &str, command: &str) -> String {
        let out = self.ssh(addr, command);
        assert!(
            out.status.success(),
            "{addr}: {command}\n{}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// [`TestLab::ssh`] for the lab in `dir` (from a thread that does not own the lab).
pub fn lab_ssh(dir: &Path, addr: &str, command: &str) -> Output {
    run(Command::new(require_program("ssh", "openssh-client"))
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "ConnectTimeout=5", "-o"])
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .arg("-i")
        .arg(dir.join("id_ed25519"))
        .arg(format!("root@{addr}"))
        .arg(command))
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let dir = self.dir.to_str().unwrap().to_string();
        let out = self.k8s_boot(&["lab", "down", "--dir", &dir]);
        if !out.status.success() {
            eprintln!("lab down failed: {}", describe(&out));
        }
    }
}

/// Starts nginx in the foreground from `conf` under `procs`, its error log in the process log
/// (printed if the test fails) and its pid file in `pid_dir`.
pub fn spawn_nginx(procs: &mut Processes, nginx: &Path, conf: &Path, pid_dir: &Path) {
    procs.spawn(
        "nginx",
        Command::new(nginx)
            .arg("-c")
            .arg(conf)
            .arg("-e")
            .arg("stderr")
            .arg("-g")
            .arg(format!(
                "daemon off; pid {};",
                pid_dir.join("nginx.pid").display()
            )),
    );
}

/// An upstream program of the lab's build (`k8s-boot lab build --dir target/lab-build`, which
/// tests/run-all.sh runs before the tests): the version k8s-boot targets, not whatever the
/// machine happens to have on PATH.
pub fn lab_program(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/lab-build/binaries")
        .join(name);
    assert!(
        is_executable(&path),
        "{} is missing: run `cargo run -- lab build --dir target/lab-build` first \
         (tests/run-all.sh does)",
        path.display()
    );
    path
}

/// A build cache in `dir` that holds every entry of the machine's warm one (`lab build`
/// fills it; see k8s_boot::lab::build::default_cache) as a link, except those of
/// `component`, which therefore builds from nothing (its Go packages come from Go's own
/// cache, so a small component takes seconds): the cold path, on one component.
pub fn build_cache_with_cold(dir: &Path, component: &str) {
    let warm = k8s_boot::lab::build::default_cache();
    fs::create_dir_all(dir).unwrap();
    let prefix = format!("{component}-v");
    let mut linked = 0;
    for entry in fs::read_dir(&warm).unwrap_or_else(|e| {
        panic!(
            "the warm build cache {} cannot be read ({e}): run `cargo run -- lab build --dir \
             target/lab-build` first (tests/run-all.sh does)",
            warm.display()
        )
    }) {
        let name = entry.unwrap().file_name();
        let name = name.to_string_lossy();
        // Dot entries are locks and work directories; logs and the script are per run.
        if name.starts_with('.') || name.starts_with(&prefix) || name == "logs" {
            continue;
        }
        if name == "build-upstream.sh" {
            continue;
        }
        std::os::unix::fs::symlink(warm.join(&*name), dir.join(&*name)).unwrap();
        linked += 1;
    }
    assert!(
        linked > 0,
        "the warm build cache {} is empty",
        warm.display()
    );
}

/// The cache entry `component` got in the build cache `dir`: a real directory (built there),
/// not a link into the warm cache.
pub fn built_in(dir: &Path, component: &str) -> PathBuf {
    let prefix = format!("{component}-v");
    let entry = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no {component} build in {}", dir.display()));
    let meta = fs::symlink_metadata(&entry).unwrap();
    assert!(
        meta.is_dir() && entry.join(".complete").is_file(),
        "{} is not a complete build made here",
        entry.display()
    );
    entry
}
