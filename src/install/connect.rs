//! The `connect` phase: open the host, read what an earlier run left there, and note which
//! directories this run may create (those are the ones `reset` may remove again).

use super::remote::Remote;
use super::state::{HostState, STATE_FILE};
use super::{files, HostRun, Run, StepError};
use crate::ssh;
use std::collections::BTreeSet;
use std::path::Path;

/// What an earlier run left on the host (empty when nothing).
pub fn read_state(remote: &dyn Remote) -> Result<HostState, StepError> {
    let out = remote.exec(&format!("cat {STATE_FILE} 2>/dev/null || true"))?;
    Ok(HostState::parse(&out.stdout)?)
}

pub fn connect(run: &Run, h: &mut HostRun) -> Result<(), StepError> {
    let remote = run.connector.connect(h.host)?;
    let mut state = read_state(remote.as_ref())?;
    let cluster = &run.cluster.inventory.cluster.name;
    if state.cluster.is_empty() {
        state.cluster = cluster.clone();
    } else if state.cluster != *cluster {
        return Err(StepError::ForeignCluster {
            found: state.cluster,
            expected: cluster.clone(),
        });
    }
    // Which directories of what this run may write are missing now: those are ours.
    let mut dirs = BTreeSet::new();
    let targets = h
        .plan
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(files::host_binaries(run.cluster, h.host).map(|(_, b)| b.target));
    for t in targets {
        let mut d = Path::new(t).parent();
        while let Some(dir) = d.filter(|d| *d != Path::new("/")) {
            dirs.insert(dir.to_string_lossy().into_owned());
            d = dir.parent();
        }
    }
    if !dirs.is_empty() {
        let list: Vec<String> = dirs.iter().map(|d| ssh::shell_quote(d)).collect();
        let out = remote.exec(&format!(
            "for d in {}; do [ -d \"$d\" ] || echo \"$d\"; done",
            list.join(" ")
        ))?;
        state
            .created_dirs
            .extend(out.stdout.lines().map(str::to_string));
    }
    h.work.state = state;
    h.remote = Some(remote);
    Ok(())
}
