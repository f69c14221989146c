//! One function per subcommand. Each returns an exit status or an error; `main` maps
//! inventory and usage errors to exit code 2 and everything else to 1.

use crate::inventory::{Cluster, Role};
use crate::pki::{self, Action, Pki};
use crate::render;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Exit code for invalid input or usage.
pub const EXIT_INVALID: i32 = 2;

pub fn init() -> Result<i32> {
    print!("{}", crate::EXAMPLE_INVENTORY);
    Ok(0)
}

fn load(inventory: &Path) -> Result<Cluster> {
    let cluster = Cluster::load(inventory)?;
    for w in &cluster.warnings {
        eprintln!("{}", w.display_in(inventory));
    }
    Ok(cluster)
}

pub fn check(inventory: &Path) -> Result<i32> {
    let c = load(inventory)?;
    let inv = &c.inventory;
    println!(
        "cluster {} - Kubernetes {} (profile v{}, etcd {})",
        inv.cluster.name, inv.cluster.kubernetes_version, c.profile.minor, c.profile.etcd
    );
    println!("  API endpoint     https://{}", c.api_endpoint);
    println!(
        "  pods {}  services {}  (kubernetes {}, DNS {})",
        c.pod_cidr, c.service_cidr, c.kubernetes_service_ip, c.dns_service_ip
    );
    println!(
        "  kube-proxy {}  node ports {}-{}  domain {}",
        inv.cluster.kube_proxy.mode.as_str(),
        c.node_port_range.0,
        c.node_port_range.1,
        inv.cluster.cluster_domain
    );
    if inv.chat.enabled {
        println!(
            "  chat: {} replica(s) of {} on port {} (NodePort {})",
            inv.chat.replicas, inv.chat.image, inv.chat.port, inv.chat.node_port
        );
    } else {
        println!("  chat: disabled");
    }
    println!("  {:<12} {:<40} roles", "host", "address");
    for h in &inv.hosts {
        let roles: Vec<&str> = h.roles.iter().map(|r| r.as_str()).collect();
        println!(
            "  {:<12} {:<40} {}",
            h.name,
            h.address.to_string(),
            roles.join(",")
        );
    }
    let n = |r| c.hosts_with(r).count();
    println!(
        "  {} hosts: {} lb, {} etcd, {} control-plane, {} worker; {} warning(s)",
        inv.hosts.len(),
        n(Role::Lb),
        n(Role::Etcd),
        n(Role::ControlPlane),
        n(Role::Worker),
        c.warnings.len()
    );
    Ok(0)
}

pub fn pki_dir(inventory: &Path, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| pki::default_dir(inventory))
}

pub fn certs(inventory: &Path, pki_dir: &Path, opts: pki::Options) -> Result<i32> {
    let cluster = load(inventory)?;
    if opts.rotate_cas {
        eprintln!(
            "warning: replacing every CA in {}: every leaf certificate is re-issued and every host must receive the new files",
            pki_dir.display()
        );
    }
    let report = Pki::new(pki_dir)
        .ensure(&cluster, opts)
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    for (file, action) in &report.actions {
        match action {
            Action::Kept => {}
            Action::Created => println!("created  {file}"),
            Action::Reissued(why) => println!("reissued {file} ({why})"),
        }
    }
    println!(
        "{} file(s) in {}: {} changed, {} kept",
        report.actions.len(),
        pki_dir.display(),
        report.changed(),
        report.actions.len() - report.changed()
    );
    Ok(0)
}

pub fn certs_check(inventory: &Path, pki_dir: &Path) -> Result<i32> {
    let cluster = load(inventory)?;
    let rows = Pki::new(pki_dir).check(&cluster);
    let width = rows.iter().map(|r| r.file.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:<10}  {:>9}  {:<28}  subject / issuer",
        "file", "not-after", "days-left", "status"
    );
    for r in &rows {
        let days = r
            .days_left
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<width$}  {:<10}  {:>9}  {:<28}  {} / {}",
            r.file,
            r.not_after,
            days,
            r.status.to_string(),
            r.subject,
            r.issuer
        );
    }
    let failures = rows.iter().filter(|r| r.status.is_failure()).count();
    if failures > 0 {
        eprintln!(
            "{failures} problem(s) in {}; run `k8s-boot certs` to fix",
            pki_dir.display()
        );
        return Ok(1);
    }
    Ok(0)
}

pub fn render(
    inventory: &Path,
    pki_dir: &Path,
    templates: Option<&Path>,
    out: &Path,
) -> Result<i32> {
    let cluster = load(inventory)?;
    let pki = Pki::new(pki_dir);
    let report = pki
        .ensure(&cluster, pki::Options::default())
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    if report.changed() > 0 {
        eprintln!(
            "pki: {} file(s) created or re-issued in {}",
            report.changed(),
            pki_dir.display()
        );
    }
    let templates = render::Templates::load(templates)?;
    let plan = render::plan(&cluster, &pki, &templates)?;
    let count =
        render::write_tree(&plan, out).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "rendered {count} file(s) for {} host(s) into {}",
        plan.hosts.len(),
        out.display()
    );
    Ok(0)
}
