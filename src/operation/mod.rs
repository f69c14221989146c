//! What the day-2 operations (`upgrade`, `remove-node`) share: a plan of steps over hosts,
//! run one after the other until one fails. A step is an install run of a few phases over a
//! few hosts (the same runner, executor, state file and progress as `install`), or kubectl
//! and etcdctl on a control-plane or etcd host ([`node`], [`etcd`]).

pub mod etcd;
pub mod node;
#[cfg(test)]
pub mod testing;

use crate::install::remote::{Connector, Remote};
use crate::install::{self, phases::PhaseId, InstallError, PhaseResult, Purpose};
use crate::inventory::{Cluster, Host, Role};
use crate::render::Plan;
use crate::ssh::{SshError, Timeouts};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Options {
    pub dry_run: bool,
    pub accept_new_host_keys: bool,
    pub timeouts: Timeouts,
    pub parallelism: usize,
    /// How long a step waits for what it restarted (a node: to be Ready again; the add-ons:
    /// to roll out).
    pub ready_timeout: Duration,
    /// How long a node's drain may take before the operation stops, naming what blocks it.
    pub drain_timeout: Duration,
}

/// [`Options::drain_timeout`] unless set.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for Options {
    fn default() -> Self {
        Options {
            dry_run: false,
            accept_new_host_keys: false,
            timeouts: Timeouts::default(),
            parallelism: 10,
            ready_timeout: install::READY_TIMEOUT,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

/// Why a step (or the checks before the first) failed.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(transparent)]
    Ssh(Box<SshError>),
    #[error(
        "{host} cannot be reached ({source}); this needs every etcd, control-plane and \
         load-balancer host (a worker that is down is left for the next run)"
    )]
    Unreachable {
        host: String,
        #[source]
        source: Box<SshError>,
    },
    #[error("{host}: {source}")]
    HostState {
        host: String,
        #[source]
        source: Box<install::StepError>,
    },
    #[error("{command}: {message}")]
    Kubectl { command: String, message: String },
    #[error("drain of {node} stopped: {why}; the node stays cordoned: {}", .blockers.join("; "))]
    Drain {
        node: String,
        /// What ended it: the timeout, or kubectl refusing a pod it would have to lose.
        why: String,
        blockers: Vec<String>,
    },
    #[error("node {node} not Ready on the new version in time (Ready: {ready}, kubelet: `{kubelet}`); it stays cordoned")]
    NodeNotReady {
        node: String,
        ready: bool,
        kubelet: String,
    },
    #[error("etcd not healthy after {secs} s: {output}")]
    EtcdUnhealthy { secs: u64, output: String },
    /// A phase of the step's install run failed on a host.
    #[error("{}", .0.join("; "))]
    StepFailed(Vec<String>),
    /// The operation would break the cluster (quorum, the last API server): the input's.
    #[error("{0}")]
    Refused(String),
}

impl From<SshError> for OperationError {
    fn from(e: SshError) -> Self {
        OperationError::Ssh(Box::new(e))
    }
}

impl OperationError {
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            OperationError::Install(e) => e.fault(),
            OperationError::Refused(_) => Fault::Input,
            _ => Fault::Runtime,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}

/// How a step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    /// `changes`: `host: phase: change` lines (in a dry run: what would change).
    Done {
        changes: Vec<String>,
    },
    Failed {
        error: String,
    },
    /// An earlier step failed.
    NotRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub elapsed_ms: u128,
}

/// Whether every step of `steps` was done.
pub fn all_done(steps: &[StepReport]) -> bool {
    steps
        .iter()
        .all(|s| matches!(s.outcome, Outcome::Done { .. }))
}

/// What the command line shows while an operation runs.
pub trait Observer: install::Progress {
    /// The steps, before the first starts.
    fn planned(&self, what: &str, steps: &[String]);
    fn step_started(&self, index: usize, total: usize, step: &str);
    fn step_done(&self, report: &StepReport);
}

/// Runs `act` for each step in order, reporting each; after a failure the rest are not
/// run.
pub fn run_steps<S: ToString>(
    observer: &dyn Observer,
    what: &str,
    steps: &[S],
    act: impl Fn(&S) -> Result<Vec<String>, OperationError>,
) -> Vec<StepReport> {
    let names: Vec<String> = steps.iter().map(ToString::to_string).collect();
    observer.planned(what, &names);
    let mut reports = Vec::new();
    let mut failed = false;
    for (i, (step, name)) in steps.iter().zip(&names).enumerate() {
        let started = Instant::now();
        let outcome = if failed {
            Outcome::NotRun
        } else {
            observer.step_started(i + 1, steps.len(), name);
            match act(step) {
                Ok(changes) => Outcome::Done { changes },
                Err(e) => Outcome::Failed {
                    error: e.to_string(),
                },
            }
        };
        failed |= matches!(outcome, Outcome::Failed { .. });
        let report = StepReport {
            step: name.clone(),
            outcome,
            elapsed_ms: started.elapsed().as_millis(),
        };
        if !matches!(report.outcome, Outcome::NotRun) {
            observer.step_done(&report);
        }
        reports.push(report);
    }
    reports
}

/// One operation's run over the cluster.
pub struct Operation<'a> {
    pub cluster: &'a Cluster,
    pub plan: &'a Plan,
    pub opts: &'a Options,
    pub observer: &'a dyn Observer,
    pub connector: &'a dyn Connector,
}

impl Operation<'_> {
    /// [`run_steps`] with this operation's observer.
    pub fn run_steps<S: ToString>(
        &self,
        what: &str,
        steps: &[S],
        act: impl Fn(&S) -> Result<Vec<String>, OperationError>,
    ) -> Vec<StepReport> {
        run_steps(self.observer, what, steps, act)
    }

    pub fn host(&self, name: &str) -> &Host {
        self.cluster
            .inventory
            .hosts
            .iter()
            .find(|h| h.name == name)
            .expect("steps name inventory hosts")
    }

    /// `phases` over `hosts` as an install run of this operation's plan; the changes as
    /// `host: phase: change` lines, or every failure.
    pub fn install(
        &self,
        hosts: &[String],
        phases: &[PhaseId],
        purpose: Purpose,
    ) -> Result<Vec<String>, OperationError> {
        let opts = install::Options {
            phases: phases.to_vec(),
            hosts: hosts.to_vec(),
            dry_run: self.opts.dry_run,
            parallelism: self.opts.parallelism,
            accept_new_host_keys: self.opts.accept_new_host_keys,
            timeouts: self.opts.timeouts,
            ready_timeout: self.opts.ready_timeout,
            purpose,
        };
        let report = install::install_with(
            self.cluster,
            self.plan,
            &opts,
            self.observer,
            self.connector,
        )?;
        let mut changes = Vec::new();
        let mut failures = Vec::new();
        for h in &report.hosts {
            for (phase, result) in &h.phases {
                let name = install::phases::get(*phase).name;
                match result {
                    PhaseResult::Changed { changes: c } => {
                        changes.extend(c.iter().map(|c| format!("{}: {name}: {c}", h.host)))
                    }
                    PhaseResult::Failed { error } => {
                        failures.push(format!("{}: {name} failed: {error}", h.host))
                    }
                    _ => {}
                }
            }
        }
        if failures.is_empty() {
            Ok(changes)
        } else {
            Err(OperationError::StepFailed(failures))
        }
    }

    /// A host with `role`, other than `avoid` where there is one, that answers.
    pub fn remote_with(&self, role: Role, avoid: &str) -> Result<Box<dyn Remote>, OperationError> {
        Ok(self.connect_with(role, avoid)?.1)
    }

    /// [`Operation::remote_with`], with the host.
    pub fn connect_with(
        &self,
        role: Role,
        avoid: &str,
    ) -> Result<(&Host, Box<dyn Remote>), OperationError> {
        let mut hosts: Vec<&Host> = self
            .cluster
            .inventory
            .hosts
            .iter()
            .filter(|h| h.has(role))
            .collect();
        hosts.sort_by_key(|h| h.name == avoid);
        let mut last = None;
        for host in hosts {
            match self.connector.connect(host) {
                Ok(r) => return Ok((host, r)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(
            || OperationError::Refused(format!("no {} host in the inventory", role.as_str())),
            OperationError::from,
        ))
    }
}

/// The runner's tests' silent progress, for the operations' tests too.
#[cfg(test)]
impl Observer for crate::install::tests::Quiet {
    fn planned(&self, _: &str, _: &[String]) {}
    fn step_started(&self, _: usize, _: usize, _: &str) {}
    fn step_done(&self, _: &StepReport) {}
}
