//! Inventory validation: every problem found at once, each with file position and field.
//!
//! `validate` parses the document (`parse`), then runs every check in the order its
//! diagnostics are reported: string lengths and characters (`limits`), the cluster's settings
//! (`settings`), its ranges (`network`), the hosts (`hosts`), the API endpoint, the chat
//! workload (`chat`), PKI validity, SSH (`ssh`), the binaries directory. Checks record into
//! a `Checker`; only an inventory without errors becomes a `Cluster`.

mod addresses;
mod chat;
mod checker;
mod files;
mod hosts;
mod ingress;
mod limits;
mod names;
mod network;
mod parse;
mod ports;
mod registries;
mod settings;
mod ssh;

use super::cluster::{Cluster, Endpoint};
use super::diagnostic::InventoryError;
use super::net::Cidr;
use super::schema::Inventory;
use crate::versions::VersionProfile;
use checker::Checker;
pub use registries::mirror_url;
use std::path::Path;

pub(super) fn validate(file: &Path, source: &str) -> Result<Cluster, InventoryError> {
    let invalid = |problems| InventoryError::Invalid {
        file: file.to_path_buf(),
        problems,
    };
    let (inventory, positions) = parse::parse(source).map_err(|d| invalid(vec![d]))?;
    let mut c = Checker::new(&positions);
    let derived = check(&mut c, &inventory);
    if c.has_errors() {
        return Err(invalid(c.into_problems()));
    }
    let derived = derived.expect("an inventory without errors derives every value");
    Ok(Cluster {
        file: file.to_path_buf(),
        profile: derived.profile,
        pod_cidr: derived.pod_cidr,
        service_cidr: derived.service_cidr,
        kubernetes_service_ip: derived.service_cidr.nth(1).expect("checked above"),
        dns_service_ip: derived.service_cidr.nth(10).expect("checked above"),
        node_port_range: derived.node_port_range,
        api_endpoint: derived.api_endpoint,
        warnings: c.into_problems(),
        inventory,
    })
}

/// What the checks derive from a valid inventory.
struct Derived {
    profile: &'static VersionProfile,
    pod_cidr: Cidr,
    service_cidr: Cidr,
    node_port_range: (u16, u16),
    api_endpoint: Endpoint,
}

/// Every check, in report order; the derived values where each could be derived.
fn check(c: &mut Checker, inventory: &Inventory) -> Option<Derived> {
    let cl = &inventory.cluster;
    limits::check_strings(c, inventory);
    let profile = settings::check_identity(c, cl);
    let ranges = network::check_ranges(c, cl);
    settings::check_kube_proxy(c, cl, profile);
    network::check_dns_upstreams(c, cl, &ranges);
    settings::check_kubelet(c, cl);
    registries::check_registry_mirrors(c, cl);
    let roles = hosts::check_hosts(c, inventory, &ranges);
    files::check_file_names(c, &inventory.hosts);
    let api_endpoint = network::api_endpoint(c, cl, &ranges, &inventory.hosts);
    chat::check_chat(c, inventory, &roles, ranges.node_port_range);
    ingress::check_ingress(c, inventory, &roles, ranges.node_port_range);
    settings::check_pki(c, &inventory.pki);
    settings::check_etcd_backup(c, &inventory.etcd.backup);
    ssh::check_ssh(c, &inventory.ssh);
    settings::check_binaries(c, inventory);
    Some(Derived {
        profile: profile?,
        pod_cidr: ranges.pod_cidr?,
        service_cidr: ranges.service_cidr?,
        node_port_range: ranges.node_port_range?,
        api_endpoint: api_endpoint?,
    })
}
