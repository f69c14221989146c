//! `k8s-boot status`: health of every component on every host.

use super::args::StatusArgs;
use super::console::{outln, StdoutError};
use super::inventory::load;
use super::output::{print_json, yes_no};
use anyhow::Result;
use k8s_boot::install::maintain::HostStatus;
use k8s_boot::inventory::Cluster;
use k8s_boot::pki::Pki;
use k8s_boot::shown::Shown;
use k8s_boot::{install, render};
use std::path::Path;

/// 1 when a host is unreachable or a service is not healthy.
pub fn run(args: &StatusArgs) -> Result<i32> {
    let cluster = load(args.pki.inventory())?;
    let plan = plan_for(
        &cluster,
        &args.pki.dir(),
        args.templates.templates.as_deref(),
    )?;
    let ssh = install::remote::SshConnector::new(&cluster, false, Default::default());
    let hosts = install::maintain::status(&cluster, &plan, &ssh);
    // An expired certificate is a failure; one that expires soon, a warning.
    let bad = hosts.iter().any(|h| {
        h.error.is_some()
            || h.services.iter().any(|s| !s.healthy)
            || h.expiring.iter().any(|c| c.hours_left < 0)
    });
    if args.output.is_json() {
        print_json(
            "status",
            &serde_json::json!({ "healthy": !bad, "hosts": hosts }),
        )?;
    } else {
        print_table(&hosts)?;
    }
    Ok(if bad { 1 } else { 0 })
}

/// `status` reads the PKI as it is and never writes it: a missing or incomplete PKI is
/// refused as invalid input (see `exit`).
fn plan_for(cluster: &Cluster, pki_dir: &Path, templates: Option<&Path>) -> Result<render::Plan> {
    let pki = Pki::new(pki_dir).hold_lock(k8s_boot::fsutil::LockMode::Shared)?;
    pki.require_complete(cluster)?;
    Ok(render::plan(
        cluster,
        &pki,
        &render::Templates::load(templates)?,
    )?)
}

fn print_table(hosts: &[HostStatus]) -> Result<(), StdoutError> {
    outln!(
        "{:<12} {:<24} {:<8} {:<8} version",
        "host",
        "service",
        "active",
        "healthy"
    )?;
    for h in hosts {
        if let Some(e) = &h.error {
            outln!("{:<12} unreachable: {e}", h.host)?;
        }
        for s in &h.services {
            outln!(
                "{:<12} {:<24} {:<8} {:<8} {}",
                h.host,
                s.service,
                yes_no(s.active),
                yes_no(s.healthy),
                s.version
            )?;
        }
    }
    let expiring: Vec<_> = hosts.iter().flat_map(|h| &h.expiring).collect();
    if !expiring.is_empty() {
        outln!(
            "certificates expiring within {} days (`certs renew`, then `install`):",
            k8s_boot::pki::EXPIRY_WARNING_DAYS
        )?;
    }
    for c in expiring {
        let when = if c.hours_left < 0 {
            "EXPIRED".to_string()
        } else {
            format!("{} h left", c.hours_left)
        };
        outln!(
            "{:<12} {:<48} {} ({when}) {}",
            c.host,
            Shown(&c.path).to_string(),
            c.not_after,
            Shown(&c.subject)
        )?;
    }
    Ok(())
}
