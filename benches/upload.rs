//! Upload throughput of the SSH layer against OpenSSH `scp`, in one run, to the lab hosts.
//!
//! `cargo bench --bench upload` with a lab running (`k8s-boot lab up`, root). Sends one
//! 100 MB file to every host of `lab/hosts.yaml` (or `$K8S_BOOT_BENCH_INVENTORY`) in
//! parallel, alternating k8s-boot uploads and `scp` runs, and prints both throughputs and
//! their ratio. Not run by `cargo test` (it needs the lab).

use k8s_boot::inventory::Cluster;
use k8s_boot::ssh::{self, Connection, HostKeyPolicy, NewFile, Source, Target, Timeouts};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const SIZE: usize = 100 * 1024 * 1024;
const ROUNDS: usize = 3;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --all-targets`; only `cargo bench` runs it
    }
    let inventory = std::env::var_os("K8S_BOOT_BENCH_INVENTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("lab/hosts.yaml"));
    let cluster = Cluster::load(&inventory)
        .unwrap_or_else(|e| panic!("{e}\n(start a lab first: k8s-boot lab up)"));
    let keys = HostKeyPolicy {
        known_hosts: ssh::expand_path(&cluster, &cluster.inventory.ssh.known_hosts),
        accept_new: false,
        record_new: true,
    };
    let targets: Vec<Target> = cluster
        .inventory
        .hosts
        .iter()
        .map(|h| Target::of(&cluster, h))
        .collect();
    let file = std::env::temp_dir().join("k8s-boot-bench-100MB");
    // Incompressible content, so no transport compression can flatter either side.
    let mut data = vec![0u8; SIZE];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&file, &data).unwrap();
    drop(data);
    let conns: Vec<Connection> = targets
        .iter()
        .map(|t| Connection::open(t, &keys, Timeouts::default()).unwrap())
        .collect();
    let total_mb = (SIZE * targets.len()) as f64 / 1e6;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for c in &conns {
            c.run("rm -f /tmp/bench-upload /tmp/bench-scp").unwrap();
        }
        // As the installer does: the local checksum once per file, then per host one stat
        // round trip and the transfer.
        let t = Instant::now();
        let sha = Source::File(&file).sha256().unwrap();
        std::thread::scope(|s| {
            for c in &conns {
                let (file, sha) = (&file, &sha);
                s.spawn(move || {
                    let dest = "/tmp/bench-upload";
                    let remote = c.stat_files(&[dest]).unwrap();
                    let new = NewFile {
                        source: Source::File(file),
                        sha256: sha,
                        dest,
                        mode: 0o644,
                        owner: "root:root",
                        check: None,
                    };
                    c.put(&new, remote.get(dest)).unwrap()
                });
            }
        });
        ours.push(total_mb / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let children: Vec<_> = targets
            .iter()
            .map(|tg| scp(tg, &file, &keys.known_hosts))
            .collect();
        for mut ch in children {
            assert!(ch.wait().unwrap().success(), "scp failed");
        }
        theirs.push(total_mb / t.elapsed().as_secs_f64());
        println!(
            "round {}: k8s-boot {:.0} MB/s, scp {:.0} MB/s (100 MB to each of {} hosts in parallel)",
            round + 1,
            ours[round],
            theirs[round],
            targets.len()
        );
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "mean: k8s-boot {:.0} MB/s, scp {:.0} MB/s, ratio {:.2}",
        mean(&ours),
        mean(&theirs),
        mean(&ours) / mean(&theirs)
    );
    let _ = std::fs::remove_file(&file);
}

fn scp(t: &Target, file: &Path, known_hosts: &Path) -> std::process::Child {
    Command::new("scp")
        .args([
            "-q",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
        ])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(t.key.as_ref().expect("lab hosts use a key file"))
        .arg("-P")
        .arg(t.port.to_string())
        .arg(file)
        .arg(format!("{}@{}:/tmp/bench-scp", t.user, t.address))
        .spawn()
        .expect("scp (Debian package openssh-client)")
}
