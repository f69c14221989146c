//! `status` and `reset`: read-only health of every component, and removal of exactly what
//! `install` recorded on each host.

use super::phases;
use super::remote::{Connector, Remote};
use super::state::{HostState, STATE_DIR, STATE_FILE};
use super::StepError;
use crate::inventory::{Cluster, Host};
use crate::render::Plan;
use crate::ssh::{self, SshError};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `f` for every item, at most `limit` at a time; results in item order.
pub fn each<I: Sync, T: Send>(items: &[I], limit: usize, f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let results: Vec<Mutex<Option<T>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..limit.max(1).min(items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *results[i].lock().expect("result lock") = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("result lock")
                .expect("every item ran")
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub host: String,
    pub service: String,
    pub active: bool,
    pub healthy: bool,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub host: String,
    /// Set when the host could not be reached.
    #[serde(serialize_with = "super::report::as_optional_string")]
    pub error: Option<SshError>,
    pub services: Vec<ServiceStatus>,
    /// Certificates on the host that expire within [`crate::pki::EXPIRY_WARNING_DAYS`]
    /// days (or have expired), soonest first.
    pub expiring: Vec<super::expiry::ExpiringCert>,
}

fn version_command(service: &str) -> &'static str {
    crate::catalog::component(service).map_or("true", |c| c.version)
}

/// Every planned service on every host: active, healthy, version; and the certificates on
/// the hosts that expire soon.
pub fn status(cluster: &Cluster, plan: &Plan, connector: &dyn Connector) -> Vec<HostStatus> {
    let hosts: Vec<&Host> = cluster.inventory.hosts.iter().collect();
    let now = time::OffsetDateTime::now_utc();
    let within = time::Duration::days(crate::pki::EXPIRY_WARNING_DAYS);
    each(&hosts, 10, |host: &&Host| {
        let host_plan = plan
            .hosts
            .iter()
            .find(|p| p.name == host.name)
            .expect("plan per host");
        let services = &host_plan.services;
        let conn = match connector.connect(host) {
            Ok(c) => c,
            Err(e) => {
                return HostStatus {
                    host: host.name.clone(),
                    error: Some(e),
                    services: vec![],
                    expiring: vec![],
                }
            }
        };
        let services = services
            .iter()
            .map(|s| {
                let ok = |cmd: &str| conn.exec(cmd).map(|o| o.code == 0).unwrap_or(false);
                let active = ok(&format!("systemctl is-active --quiet {s}"));
                let healthy = active
                    && phases::health_command(cluster, host, s)
                        .map(|(cmd, _)| ok(&cmd))
                        .unwrap_or(true);
                let version = conn
                    .exec(version_command(s))
                    .map(|o| o.stdout.trim().to_string())
                    .unwrap_or_default();
                ServiceStatus {
                    host: host.name.clone(),
                    service: s.clone(),
                    active,
                    healthy,
                    version,
                }
            })
            .collect();
        let files = super::expiry::certificate_files(host_plan);
        let (expiring, error) =
            match super::expiry::expiring(conn.as_ref(), &host.name, &files, now, within) {
                Ok(found) => (found, None),
                Err(e) => (Vec::new(), Some(e)),
            };
        HostStatus {
            host: host.name.clone(),
            error,
            services,
            expiring,
        }
    })
}

#[derive(Debug, Serialize)]
pub struct ResetResult {
    pub host: String,
    pub removed: Vec<String>,
    #[serde(serialize_with = "super::report::as_optional_string")]
    pub error: Option<StepError>,
}

/// Stops and disables the services `install` enabled, removes the files it wrote (restoring
/// what they replaced) and its state; keeps etcd data unless `purge_data`.
/// Run by `reset` on a node before its services and files go (see the script's header).
const NODE_TEARDOWN: &str = include_str!("node-teardown.sh");

pub fn reset(hosts: &[&Host], purge_data: bool, connector: &dyn Connector) -> Vec<ResetResult> {
    each(hosts, 10, |host: &&Host| {
        let mut removed = Vec::new();
        let error = connector
            .connect(host)
            .map_err(StepError::from)
            .and_then(|conn| reset_host(conn.as_ref(), purge_data, &mut removed))
            .err();
        ResetResult {
            host: host.name.clone(),
            removed,
            error,
        }
    })
}

/// Removes from one host what its state file records, listing each item in `removed`.
fn reset_host(
    conn: &dyn Remote,
    purge_data: bool,
    removed: &mut Vec<String>,
) -> Result<(), StepError> {
    let text = conn
        .exec(&format!("cat {STATE_FILE} 2>/dev/null || true"))?
        .stdout;
    if text.trim().is_empty() {
        return Ok(()); // nothing of ours here
    }
    let state = HostState::parse(&text)?;
    let run = |cmd: &str| conn.run(cmd).map(drop);
    if state
        .services
        .iter()
        .any(|s| s == "kubelet" || s == "containerd")
    {
        run(NODE_TEARDOWN)?;
        removed.push("pods, their mounts, pod network interfaces and rules".into());
    }
    for service in &state.services {
        run(&format!("systemctl disable --now {service} 2>/dev/null || systemctl stop {service} 2>/dev/null || true"))?;
        removed.push(format!("service {service}"));
    }
    for path in state.files.keys() {
        let q = ssh::shell_quote(path);
        match state.backups.get(path) {
            Some(backup) => run(&format!("mv -f {} {q}", ssh::shell_quote(backup)))?,
            None => run(&format!("rm -f {q}"))?,
        }
        removed.push(path.clone());
    }
    // Directories install created, once empty (deepest first; never one that was there
    // before, such as /usr/local/bin, nor a non-empty one): a failing rmdir is expected.
    for d in state.created_dirs.iter().rev() {
        conn.exec(&format!("rmdir {} 2>/dev/null", ssh::shell_quote(d)))?;
    }
    if purge_data {
        for d in &state.data_dirs {
            run(&format!("rm -rf {}", ssh::shell_quote(d)))?;
            removed.push(d.clone());
        }
    }
    for user in &state.created_users {
        run(&format!(
            "userdel {} 2>/dev/null || true",
            ssh::shell_quote(user)
        ))?;
        removed.push(format!("user {user}"));
    }
    run("systemctl daemon-reload && systemctl reset-failed")?;
    run(&format!("rm -rf {STATE_DIR}"))?;
    Ok(())
}
