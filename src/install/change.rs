//! What a phase changed (or, in a dry run, would change) on a host. Typed, so that restart
//! decisions look at what happened rather than at the wording of a message.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New content written to a file.
    Write(String),
    /// Only a file's mode or owner corrected: restarts nothing.
    Mode(String),
    /// A file k8s-boot wrote earlier and no longer renders, removed.
    Remove(String),
    Enable(String),
    /// A service the plan no longer has, stopped and disabled.
    Stop(String),
    Start(String),
    Restart(String),
    /// A changed configuration applied in place (`systemctl reload`).
    Reload(String),
    /// Image references imported into containerd.
    ImportImages(Vec<String>),
    /// A line of `kubectl apply` output that is not `unchanged`.
    Kubectl(String),
    Label {
        node: String,
        labels: String,
    },
    Taint {
        node: String,
        taints: String,
    },
    /// The host added to the running etcd cluster as a member (before its etcd starts).
    EtcdMemberAdd(String),
    /// A system user a component runs as.
    CreateUser(String),
}

impl Change {
    /// The path whose content this change replaced.
    pub fn written(&self) -> Option<&str> {
        match self {
            Change::Write(path) => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Write(path) => write!(f, "write {path}"),
            Change::Mode(path) => write!(f, "mode {path}"),
            Change::Remove(path) => write!(f, "remove {path}"),
            Change::Enable(service) => write!(f, "enable {service}"),
            Change::Stop(service) => write!(f, "stop and disable {service}"),
            Change::Start(service) => write!(f, "start {service}"),
            Change::Restart(service) => write!(f, "restart {service}"),
            Change::Reload(service) => write!(f, "reload {service}"),
            Change::ImportImages(refs) => write!(f, "import image {}", refs.join(", ")),
            Change::Kubectl(line) => write!(f, "kubectl: {line}"),
            Change::Label { node, labels } => write!(f, "label node {node} {labels}"),
            Change::Taint { node, taints } => write!(f, "taint node {node} {taints}"),
            Change::EtcdMemberAdd(name) => write!(f, "add etcd member {name}"),
            Change::CreateUser(user) => write!(f, "create system user {user}"),
        }
    }
}
