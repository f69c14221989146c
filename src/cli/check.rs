//! `k8s-boot init` and `k8s-boot check`: the inventory file itself.

use super::console::{outln, write_stdout};
use super::exit::UsageError;
use super::inventory::load;
use anyhow::Result;
use k8s_boot::inventory::Role;
use std::path::Path;

/// `k8s-boot init`: the annotated example inventory on stdout.
pub fn init() -> Result<i32> {
    // Ours, and meant to be saved as it is.
    write_stdout(k8s_boot::EXAMPLE_INVENTORY.as_bytes())?;
    Ok(0)
}

/// `k8s-boot check`: the summary of a valid inventory (an invalid one is an error).
pub fn check(inventory: &Path) -> Result<i32> {
    let c = load(inventory)?;
    check_encryption_key(inventory)?;
    let inv = &c.inventory;
    outln!(
        "cluster {} - Kubernetes {} (profile v{}, etcd {})",
        inv.cluster.name,
        inv.cluster.kubernetes_version,
        c.profile.minor,
        c.profile.etcd
    )?;
    outln!("  API endpoint     https://{}", c.api_endpoint)?;
    outln!(
        "  pods {}  services {}  (kubernetes {}, DNS {})",
        c.pod_cidr,
        c.service_cidr,
        c.kubernetes_service_ip,
        c.dns_service_ip
    )?;
    outln!(
        "  kube-proxy {}  node ports {}-{}  domain {}",
        inv.cluster.kube_proxy.mode.as_str(),
        c.node_port_range.0,
        c.node_port_range.1,
        inv.cluster.cluster_domain
    )?;
    if inv.chat.enabled {
        outln!(
            "  chat: {} replica(s) of {} on port {} (NodePort {})",
            inv.chat.replicas,
            inv.chat.image,
            inv.chat.port,
            inv.chat.node_port
        )?;
    } else {
        outln!("  chat: disabled")?;
    }
    outln!("  {:<12} {:<40} roles", "host", "address")?;
    for h in &inv.hosts {
        let roles: Vec<&str> = h.roles.iter().map(|r| r.as_str()).collect();
        outln!(
            "  {:<12} {:<40} {}",
            h.name,
            h.address.to_string(),
            roles.join(",")
        )?;
    }
    let n = |r| c.hosts_with(r).count();
    outln!(
        "  {} hosts: {} lb, {} etcd, {} control-plane, {} worker; {} warning(s)",
        inv.hosts.len(),
        n(Role::Lb),
        n(Role::Etcd),
        n(Role::ControlPlane),
        n(Role::Worker),
        c.warnings.len()
    )?;
    Ok(0)
}

/// An `encryption.key` that cannot work fails here, not at `install`: the one in the PKI
/// directory beside the inventory, when there is one (`certs` makes it). Never quoted.
fn check_encryption_key(inventory: &Path) -> Result<()> {
    use k8s_boot::fsutil::{read_regular, ReadError};
    use k8s_boot::pki::{self, PKI_FILE_CAP};
    let path = pki::default_dir(inventory).join(pki::ENCRYPTION_KEY);
    let problem = match read_regular(&path, PKI_FILE_CAP) {
        Err(ReadError::NotFound) => return Ok(()),
        Err(e) => e.to_string(),
        Ok(bytes) => match pki::check_encryption_key(&bytes) {
            Ok(()) => return Ok(()),
            Err(e) => e.to_string(),
        },
    };
    Err(UsageError(format!("{}: {problem}", path.display())).into())
}
