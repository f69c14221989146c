//! Services: enabled, (re)started only when their files changed or they are not running,
//! then waited for until healthy; and the `verify` phase's check of every service.

use super::change::Change;
use super::executor::Executor;
use super::phases;
use super::remote::{poll_until_ok, Remote};
use super::steps::HostCtx;
use super::{HostWork, StepError};
use crate::catalog::Component;
use crate::ssh::{self, Output};
use std::time::{Duration, Instant};

fn is(remote: &dyn Remote, state: &str, service: &str) -> Result<bool, StepError> {
    Ok(remote
        .exec(&format!("systemctl is-{state} --quiet {service}"))?
        .code
        == 0)
}

/// How long a rolling restart of an LB upstream holds the next host back: the LB's
/// `fail_timeout` and a second (the in-memory hosts of the unit tests have no LB to wait for).
#[cfg(not(test))]
const LB_SETTLE: Duration = Duration::from_secs(crate::catalog::LB_FAIL_TIMEOUT_SECS + 1);
#[cfg(test)]
const LB_SETTLE: Duration = Duration::ZERO;

/// Enables `component`'s service and (re)starts it if its files changed or it is not
/// running, then waits until it is healthy. `daemon_reload` after new unit files.
pub fn start(
    cx: &HostCtx,
    component: &Component,
    daemon_reload: bool,
    work: &mut HostWork,
    ex: &mut Executor,
) -> Result<(), StepError> {
    let service = component.service;
    let active = is(ex.read(), "active", service)?;
    let enabled = is(ex.read(), "enabled", service)?;
    let restart = work.state.pending_restarts.contains(service) || !active;
    if daemon_reload {
        ex.effect(|r| Ok(r.run("systemctl daemon-reload").map(drop)?))?;
    }
    if !enabled {
        ex.change(Change::Enable(service.into()), |r| {
            Ok(r.run(&format!("systemctl enable {service} 2>&1"))
                .map(drop)?)
        })?;
    }
    // One host at a time, from its restart until it is healthy again.
    let one_at_a_time = (restart && active && component.rolling && !ex.is_dry())
        .then(|| cx.run.rolling.lock().unwrap_or_else(|e| e.into_inner()));
    if restart && active && component.reloads && !daemon_reload {
        ex.change(Change::Reload(service.into()), |r| {
            Ok(r.run(&format!("systemctl reload {service}")).map(drop)?)
        })?;
    } else if restart {
        let change = if active {
            Change::Restart(service.into())
        } else {
            Change::Start(service.into())
        };
        // --no-block: etcd members only become ready together, so no start may wait for
        // its own readiness here.
        ex.change(change, |r| {
            Ok(r.run(&format!("systemctl restart --no-block {service}"))
                .map(drop)?)
        })?;
    }
    work.state.services.insert(service.to_string());
    // A dry run started nothing to wait for.
    if ex.effect(|r| wait_healthy(cx, component, r))?.is_some() {
        work.state.pending_restarts.remove(service);
        work.state
            .versions
            .insert(service.to_string(), cx.run.cluster.version().to_string());
        // The LB skips a host for a while after its refused connections: the next host of a
        // rolling restart goes down only once this one is back in the LB's rotation.
        let behind_lb = cx
            .run
            .cluster
            .hosts_with(crate::inventory::Role::Lb)
            .next()
            .is_some();
        if one_at_a_time.is_some() && component.lb_upstream && behind_lb {
            std::thread::sleep(LB_SETTLE);
        }
    }
    Ok(())
}

fn wait_healthy(cx: &HostCtx, component: &Component, r: &dyn Remote) -> Result<(), StepError> {
    let (check, secs) = component.health_command(cx.run.cluster, cx.host);
    match poll_until_ok(r, &check, Duration::from_secs(secs))? {
        None => Ok(()),
        Some(out) => Err(unhealthy(r, component.service, secs, &out)),
    }
}

/// `service` failed its health check for `secs` s: what the check said, and the journal.
fn unhealthy(r: &dyn Remote, service: &str, secs: u64, out: &Output) -> StepError {
    let journal = r
        .exec(&format!(
            "journalctl -u {service} -n 8 --no-pager 2>/dev/null"
        ))
        .map(|o| o.stdout)
        .unwrap_or_default();
    StepError::Unhealthy {
        service: service.to_string(),
        secs,
        output: ssh::tail(&format!("{}{}", out.stdout, out.stderr), 3),
        journal: ssh::tail(&journal, 8),
    }
}

/// How long `verify` gives a service that is not active and healthy at the first look: long
/// enough for systemd's restart of a service that exited a moment ago (`RestartSec=5` and
/// its start). A scheduler that lost its lease while its API server restarted does that.
#[cfg(not(test))]
const VERIFY_GRACE: Duration = Duration::from_secs(30);
#[cfg(test)]
const VERIFY_GRACE: Duration = Duration::from_millis(600);

/// Every service of the host's plan in the selected phases is active and healthy, or
/// becomes so within [`VERIFY_GRACE`].
pub fn verify(cx: &HostCtx, r: &dyn Remote) -> Result<(), StepError> {
    let mut problems = Vec::new();
    for service in &cx.plan.services {
        if phases::of_service(service).is_some_and(|p| !cx.run.selected(p.id)) {
            continue;
        }
        let health = phases::health_command(cx.run.cluster, cx.host, service);
        let deadline = Instant::now() + VERIFY_GRACE;
        loop {
            let active = is(r, "active", service)?;
            let check = match (&health, active) {
                (Some((command, _)), true) => Some(r.exec(command)?).filter(|o| o.code != 0),
                _ => None,
            };
            if active && check.is_none() {
                break;
            }
            if Instant::now() >= deadline {
                let secs = VERIFY_GRACE.as_secs();
                problems.push(match check {
                    Some(out) => unhealthy(r, service, secs, &out).to_string(),
                    None => format!("{service} is not active after {secs} s"),
                });
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StepError::NotVerified(problems))
    }
}
