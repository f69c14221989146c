//! What k8s-boot installed on a host, kept on the host itself so that `reset` removes
//! exactly that and a re-run knows which services and files are its own.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const STATE_DIR: &str = "/var/lib/k8s-boot";
pub const STATE_FILE: &str = "/var/lib/k8s-boot/state.json";
/// Suffix of the copy kept of a file that existed before k8s-boot replaced it.
pub const BACKUP_SUFFIX: &str = ".k8s-boot-orig";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub cluster: String,
    /// Files written by k8s-boot: path -> sha256.
    pub files: BTreeMap<String, String>,
    /// Files that existed before and were replaced: path -> backup path.
    #[serde(default)]
    pub backups: BTreeMap<String, String>,
    /// Services enabled by k8s-boot.
    pub services: BTreeSet<String>,
    /// Data directories (kept by `reset` unless --purge-data).
    #[serde(default)]
    pub data_dirs: BTreeSet<String>,
    /// Directories that did not exist before k8s-boot wrote into them; `reset` removes them
    /// once empty (and no other directory).
    #[serde(default)]
    pub created_dirs: BTreeSet<String>,
    /// System users k8s-boot created (a component runs as one); `reset` removes them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub created_users: BTreeSet<String>,
    /// `size:mtime` of each file of `files` when its sha256 was last established: a file that
    /// still matches is not hashed again on the next run.
    #[serde(default)]
    pub stamps: BTreeMap<String, String>,
    /// Services whose files or binaries changed and that have not restarted since: kept
    /// across runs, so that a run stopped between writing a file and restarting its service
    /// still restarts it next time.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub pending_restarts: BTreeSet<String>,
    /// The Kubernetes version whose plan each service last started (or was found running)
    /// with: service -> `v1.37.2`. `install` refuses another version; `upgrade` reads it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
}

/// The state file on a host cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("{STATE_FILE} is unreadable: {0}")]
pub struct StateError(#[from] serde_json::Error);

impl HostState {
    pub fn parse(text: &str) -> Result<HostState, StateError> {
        if text.trim().is_empty() {
            return Ok(HostState::default());
        }
        Ok(serde_json::from_str(text)?)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("state serializes");
        v.push(b'\n');
        v
    }
}
