//! What an install run reports: per host, each phase's result.

use super::phases::PhaseId;
use super::StepError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Serializes an error as its message (reports are read by people and scripts alike).
fn as_string<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// [`as_string`] of an optional error; `null` when there is none.
pub(super) fn as_optional_string<T: std::fmt::Display, S: serde::Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => as_string(v, s),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PhaseResult {
    /// Something was (or, in a dry run, would be) changed.
    Changed {
        changes: Vec<String>,
    },
    Unchanged,
    Failed {
        #[serde(serialize_with = "as_string")]
        error: Arc<StepError>,
    },
    /// Not run on this host because an earlier phase failed there.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub phases: BTreeMap<PhaseId, PhaseResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub phases: Vec<PhaseId>,
    pub hosts: Vec<HostReport>,
    pub elapsed_ms: u128,
    /// Wall time of each phase across all its hosts (phases run one after the other).
    pub phase_ms: BTreeMap<PhaseId, u128>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.hosts.iter().any(|h| {
            h.phases
                .values()
                .any(|r| matches!(r, PhaseResult::Failed { .. }))
        })
    }
    pub fn changed(&self) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| h.phases.values())
            .filter(|r| matches!(r, PhaseResult::Changed { .. }))
            .count()
    }
}
