//! The inventory as every command reads it: loaded and validated, its warnings on stderr.

use super::console::errln;
use k8s_boot::inventory::Cluster;
use std::path::Path;

/// The validated inventory; each warning is printed to stderr (with its position) first.
pub fn load(inventory: &Path) -> anyhow::Result<Cluster> {
    let cluster = Cluster::load(inventory)?;
    for w in &cluster.warnings {
        errln!("{}", w.display_in(inventory));
    }
    Ok(cluster)
}
