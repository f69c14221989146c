//! `k8s-boot conformance`: upstream's Kubernetes conformance suite run against the cluster,
//! the way hydrophone runs it: upstream's conformance image (`e2e.test` under ginkgo, started
//! by its `go-runner`) in a pod of its own namespace, with a ServiceAccount bound to
//! `cluster-admin` for the run, all of it removed afterwards.
//!
//! The images come from `binaries.dir/images/conformance/` (`fetch --conformance` downloads
//! them, `lab build --conformance` makes them) and are imported into the nodes' containerd
//! only now: production nodes do not carry test images. kubectl runs as the admin on the
//! first control-plane host, as `install` does; the progress is read from the runner's
//! `e2e.log` as it grows. See docs/CONFORMANCE.md.

mod images;
pub mod progress;
mod run;

pub use images::ConformanceNames;
pub use progress::{Counts, Event};
pub use run::{run, Outcome, RunEvent};

use crate::install::StepError;
use crate::ssh::SshError;
use std::path::PathBuf;
use std::time::Duration;

/// Where the conformance images are, under the binaries directory.
pub const IMAGES_DIR: &str = "images/conformance";
/// The namespace of a run; the ClusterRoleBinding has the same name.
pub const NAMESPACE: &str = "k8s-boot-conformance";
/// The default focus: every conformance test.
pub const CONFORMANCE_FOCUS: &str = r"\[Conformance\]";
/// `--quick`: one short conformance test, the one sonobuoy's quick mode runs.
pub const QUICK_FOCUS: &str = r"Pods should be submitted and removed \[Conformance\]";

/// The conformance image for a Kubernetes version, as upstream names it.
pub fn image(kubernetes_version: &str) -> String {
    format!("registry.k8s.io/conformance:{kubernetes_version}")
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Regular expression of the tests to run (ginkgo `--focus`).
    pub focus: String,
    /// Regular expression of the tests not to run; `None`: none with one process, the
    /// `[Serial]` ones with more (they cannot share the cluster).
    pub skip: Option<String>,
    /// ginkgo processes.
    pub parallel: u32,
    /// `e2e.log` and the JUnit report go here.
    pub results_dir: PathBuf,
    /// The whole run is stopped (and removed) after this long.
    pub timeout: Duration,
    /// How often the log is read.
    pub poll: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    #[error(
        "no conformance image for {version} in {}: `k8s-boot fetch --conformance` downloads \
         the conformance images, `k8s-boot lab build --conformance` makes them for a lab \
         (docs/CONFORMANCE.md)",
        .dir.display()
    )]
    NoImage { version: String, dir: PathBuf },
    #[error("the inventory has no control-plane host to run kubectl on")]
    NoControlPlane,
    #[error("{host}: {source}")]
    Host {
        host: String,
        #[source]
        source: Box<StepError>,
    },
    #[error("{host}: {source}")]
    Ssh {
        host: String,
        #[source]
        source: Box<SshError>,
    },
    #[error(
        "a conformance run is in progress (pod {NAMESPACE}/conformance is running); wait for \
         it, or remove it with `kubectl delete namespace {NAMESPACE}`"
    )]
    InProgress,
    #[error("the conformance pod did not start (waited {secs} s): {reason}")]
    NotStarted { secs: u64, reason: String },
    #[error("the run did not finish within {secs} s (stopped and removed); results so far in {}", .results.display())]
    Timeout { secs: u64, results: PathBuf },
    #[error(
        "the conformance runner ended (exit {code}) without ginkgo's summary; last output:\n{tail}"
    )]
    NoSummary { code: i32, tail: String },
    #[error("{what}: {message}")]
    Output { what: String, message: String },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ConformanceError {
    fn ssh(host: &str, source: SshError) -> ConformanceError {
        ConformanceError::Ssh {
            host: host.to_string(),
            source: Box::new(source),
        }
    }

    /// Missing images or a cluster without a control plane are the input's; the rest happened
    /// while running.
    pub fn fault(&self) -> crate::fault::Fault {
        match self {
            ConformanceError::NoImage { .. } | ConformanceError::NoControlPlane => {
                crate::fault::Fault::Input
            }
            _ => crate::fault::Fault::Runtime,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}
