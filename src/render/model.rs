//! What a plan is: `Plan`, one `HostPlan` per host, `PlannedFile`s. Serialized as
//! `plan.json` (bytes left out).

use serde::Serialize;
use std::collections::BTreeMap;

/// One file to install.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    /// Absolute path on the host (relative path for cluster-level files).
    pub path: String,
    #[serde(serialize_with = "octal")]
    pub mode: u32,
    pub owner: &'static str,
    pub sha256: String,
    /// Services to restart when this file changes.
    pub restarts: Vec<String>,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

fn octal<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

impl PlannedFile {
    pub(super) fn new(
        path: impl Into<String>,
        mode: u32,
        bytes: Vec<u8>,
        restarts: Vec<String>,
    ) -> PlannedFile {
        PlannedFile {
            path: path.into(),
            mode,
            owner: "root:root",
            sha256: crate::digest::sha256_hex(&bytes),
            restarts,
            bytes,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub name: String,
    pub address: String,
    pub roles: Vec<&'static str>,
    /// Sorted by path.
    pub files: Vec<PlannedFile>,
    /// Services to enable, in start order.
    pub services: Vec<String>,
    /// Node labels and taints the cluster phase applies (kubelets may not set role labels).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_taints: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub kubernetes_version: String,
    pub api_endpoint: String,
    pub hosts: Vec<HostPlan>,
    /// `admin.kubeconfig` and `manifests/*.yaml`.
    pub cluster_files: Vec<PlannedFile>,
}
