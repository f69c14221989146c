//! The cluster phases (`cluster`, `workloads`): the cluster manifests or the chat workload,
//! applied with kubectl on one control-plane host, and every node's role labels and taints;
//! each phase ends when what it applied is ready ([`super::ready`]).
//!
//! The manifests are kept on that host (under the state directory), so a dry run compares
//! them by content like any other file. Where the cluster answers, a dry run also asks it:
//! `kubectl apply --dry-run=server` for the objects that would change, the node list for
//! the labels and taints that nodes lack.

use super::change::Change;
use super::executor::Executor;
use super::files::{self, ROOT};
use super::ready;
use super::remote::{FileToPut, Remote};
use super::state::STATE_DIR;
use super::steps::HostCtx;
use super::{HostWork, StepError};
use crate::addons;
use crate::render::{HostPlan, Plan, PlannedFile};
use crate::ssh::Source;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Kinds whose `kubectl apply` patch is never empty, so `configured` every time, even when
/// nothing differs: the PodDisruptionBudget's selector has the `replace` patch strategy, and
/// upstream's CRD files (the Gateway API's) carry a `status` stanza the API server never
/// stores. With none of the manifests of their kubectl run changed, their line is no change
/// of this run.
const ALWAYS_PATCHED: &[&str] = &[
    "poddisruptionbudget.policy/",
    "customresourcedefinition.apiextensions.k8s.io/",
];

/// How long `install` waits for new CustomResourceDefinitions to be established.
const CRD_WAIT_SECS: u64 = 60;

/// Whether a manifest defines CustomResourceDefinitions (its objects of those kinds must wait
/// until they are established).
fn defines_crds(manifest: &[u8]) -> bool {
    String::from_utf8_lossy(manifest)
        .lines()
        .any(|l| l.trim_end() == "kind: CustomResourceDefinition")
}

fn always_patched(line: &str) -> bool {
    ALWAYS_PATCHED.iter().any(|k| line.starts_with(k)) && line.ends_with(" configured")
}

/// How long nodes get to register before their labels are given up on.
const REGISTER_SECS: u64 = 120;

pub fn apply(
    cx: &HostCtx,
    workloads: bool,
    work: &mut HostWork,
    ex: &mut Executor,
) -> Result<(), StepError> {
    let manifests: Vec<&PlannedFile> = cx
        .run
        .plan
        .cluster_files
        .iter()
        .filter(|f| addons::by_manifest(&f.path).is_some_and(|a| a.workload == workloads))
        .collect();
    if manifests.is_empty() {
        // The workloads phase of a cluster without the chat: nothing to apply.
        return Ok(());
    }
    let awaited = ready::awaited(&manifests)?;
    let puts: Vec<FileToPut> = manifests
        .iter()
        .map(|f| FileToPut {
            path: format!("{STATE_DIR}/{}", f.path),
            source: Source::Bytes(&f.bytes),
            sha256: f.sha256.clone(),
            mode: 0o600,
            owner: ROOT,
            check: None,
            restarts: Vec::new(),
        })
        .collect();
    ex.effect(|r| {
        Ok(r.run(&format!("mkdir -p {STATE_DIR}/manifests"))
            .map(drop)?)
    })?;
    let written = files::write_files(&puts, &mut work.state, ex)?;
    let kubectl = super::admin_kubectl();
    if !workloads {
        bind_cluster_admins(cx.run.plan, &cx.host.name, ex, &kubectl)?;
    }
    // One kubectl for all of the phase's manifests (in file-name order): each kubectl run
    // costs its start and an API discovery. Manifests of CustomResourceDefinitions go first,
    // in a run of their own, and the objects of those kinds only once they are established.
    // A dry run asks the API server what it would change (`--dry-run=server`); with no
    // cluster to ask yet it lists only the manifests.
    let (crds, objects): (Vec<_>, Vec<_>) = manifests
        .iter()
        .zip(&puts)
        .partition(|(f, _)| defines_crds(&f.bytes));
    for group in [crds, objects] {
        if group.is_empty() {
            continue;
        }
        let defines = defines_crds(&group[0].0.bytes);
        let files: Vec<String> = group
            .iter()
            .map(|(_, p)| format!("-f {}", p.path))
            .collect();
        let files = files.join(" ");
        let applied = ex.act_or_rehearse(
            |r| Ok(r.run(&format!("{kubectl} apply {files}"))?),
            // What kubectl could check: an object whose kind a CRD of this run would define
            // is refused, the others are listed.
            |r| {
                r.exec(&format!("{kubectl} apply --dry-run=server {files}"))
                    .map(|o| o.stdout)
                    .unwrap_or_default()
            },
        )?;
        let group_written = group.iter().any(|(_, p)| written.contains(&p.path));
        let mut changed = false;
        for line in applied.lines() {
            let line = line.trim_end_matches(" (server dry run)");
            let quirk = !group_written && always_patched(line);
            if !line.is_empty() && !line.ends_with(" unchanged") && !quirk {
                ex.record(Change::Kubectl(line.to_string()));
                changed = true;
            }
        }
        if defines && changed {
            ex.effect(|r| {
                Ok(r.run(&format!(
                    "{kubectl} wait --for=condition=Established --timeout={CRD_WAIT_SECS}s {files}"
                ))
                .map(drop)?)
            })?;
        }
    }
    if !workloads {
        label_and_taint_nodes(cx.run.plan, ex, &kubectl)?;
    }
    // The phase ends when what it applied is ready (a dry run applied nothing to wait for).
    ex.effect(|r| {
        ready::wait(
            r,
            &kubectl,
            &awaited,
            &api_servers(cx.run.cluster),
            cx.run.ready_deadline(),
            cx.run.opts.ready_timeout,
        )
    })?;
    Ok(())
}

/// Binds the admins' group to `cluster-admin` where the admin cannot do everything yet (a
/// new cluster, or one whose admin was still `system:masters`), as the super-admin. Its
/// kubeconfig reaches the host on stdin, lives in a root-only file on tmpfs for the one
/// kubectl command, and is removed when the shell exits, however it exits.
fn bind_cluster_admins(
    plan: &Plan,
    host: &str,
    ex: &mut Executor,
    kubectl: &str,
) -> Result<(), StepError> {
    let can = ex.read().exec(&format!("{kubectl} auth can-i '*' '*'"))?;
    if can.code == 0 && can.stdout.trim() == "yes" {
        return Ok(());
    }
    let Some(super_admin) = plan
        .cluster_files
        .iter()
        .find(|f| f.path == crate::pki::SUPER_ADMIN_KUBECONFIG)
    else {
        return Ok(());
    };
    let group = crate::pki::profiles::CLUSTER_ADMINS_GROUP;
    let bin = crate::catalog::BIN_DIR;
    let command = format!(
        "umask 077; f=$(mktemp /run/k8s-boot-kubeconfig.XXXXXX) || exit 1; \
         trap 'rm -f \"$f\"' EXIT; cat > \"$f\" && \
         {bin}/kubectl --kubeconfig=\"$f\" create clusterrolebinding {group} \
         --clusterrole=cluster-admin --group={group} --dry-run=client -o yaml | \
         {bin}/kubectl --kubeconfig=\"$f\" --server=https://127.0.0.1:{port} apply -f -",
        port = crate::inventory::APISERVER_PORT
    );
    ex.change(
        Change::Kubectl(format!(
            "clusterrolebinding.rbac.authorization.k8s.io/{group} bound (as the super-admin)"
        )),
        |r| {
            let out = r.exec_with_input(&command, &super_admin.bytes)?;
            if out.code != 0 {
                return Err(crate::ssh::SshError::Command {
                    host: host.to_string(),
                    command: format!("kubectl create clusterrolebinding {group}"),
                    code: out.code,
                    stderr_tail: out.stderr,
                }
                .into());
            }
            Ok(())
        },
    )
}

/// Gives every node the role labels and taints of its plan that it lacks (kubelets may
/// not set role labels themselves), waiting for nodes that have not registered yet. A dry
/// run looks at the nodes once and lists everything a node not registered yet would get.
fn label_and_taint_nodes(plan: &Plan, ex: &mut Executor, kubectl: &str) -> Result<(), StepError> {
    let wanted: Vec<&HostPlan> = plan
        .hosts
        .iter()
        .filter(|n| !n.node_labels.is_empty() || !n.node_taints.is_empty())
        .collect();
    let nodes = ex.act_or_rehearse(
        |r| wait_for_nodes(&wanted, r, kubectl),
        |r| registered_nodes(r, kubectl).unwrap_or_default(),
    )?;
    for (change, command) in node_changes(&wanted, &nodes, kubectl) {
        ex.change(change, |r| Ok(r.run(&command).map(drop)?))?;
    }
    Ok(())
}

/// The label and taint changes `wanted` needs on `nodes` (a node missing from `nodes` needs
/// all of its own), each with the kubectl command that makes it.
fn node_changes(
    wanted: &[&HostPlan],
    nodes: &[serde_json::Value],
    kubectl: &str,
) -> Vec<(Change, String)> {
    let mut changes = Vec::new();
    for node_plan in wanted {
        let node = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == node_plan.name.as_str())
            .unwrap_or(&serde_json::Value::Null);
        let name = &node_plan.name;
        let labels = missing_labels(node_plan, node).join(" ");
        if !labels.is_empty() {
            let command = format!("{kubectl} label node {name} {labels} --overwrite");
            let node = name.clone();
            changes.push((Change::Label { node, labels }, command));
        }
        let taints = missing_taints(node_plan, node).join(" ");
        if !taints.is_empty() {
            let command = format!("{kubectl} taint node {name} {taints} --overwrite");
            let node = name.clone();
            changes.push((Change::Taint { node, taints }, command));
        }
    }
    changes
}

/// The API's node objects as they are now.
fn registered_nodes(r: &dyn Remote, kubectl: &str) -> Result<Vec<serde_json::Value>, StepError> {
    let text = r.run(&format!("{kubectl} get nodes -o json"))?;
    let list: serde_json::Value = serde_json::from_str(&text).map_err(StepError::NodeList)?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// The API's node objects once every node of `wanted` has registered.
fn wait_for_nodes(
    wanted: &[&HostPlan],
    r: &dyn Remote,
    kubectl: &str,
) -> Result<Vec<serde_json::Value>, StepError> {
    let deadline = Instant::now() + Duration::from_secs(REGISTER_SECS);
    loop {
        let nodes = registered_nodes(r, kubectl)?;
        let registered: BTreeSet<&str> = nodes
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str())
            .collect();
        let missing: Vec<String> = wanted
            .iter()
            .map(|n| n.name.clone())
            .filter(|n| !registered.contains(n.as_str()))
            .collect();
        if missing.is_empty() {
            return Ok(nodes);
        }
        if Instant::now() >= deadline {
            return Err(StepError::NodesNotRegistered {
                missing,
                secs: REGISTER_SECS,
            });
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `key=value` of the plan's labels the node does not carry with that value.
fn missing_labels(plan: &HostPlan, node: &serde_json::Value) -> Vec<String> {
    plan.node_labels
        .iter()
        .filter(|(k, v)| node["metadata"]["labels"][k.as_str()] != v.as_str())
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// `key:effect` of the plan's taints the node does not carry.
fn missing_taints<'p>(plan: &'p HostPlan, node: &serde_json::Value) -> Vec<&'p str> {
    let has = |taint: &str| {
        let (key, effect) = taint.split_once(':').unwrap_or((taint, ""));
        node["spec"]["taints"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["key"] == key && t["effect"] == effect))
    };
    plan.node_taints
        .iter()
        .map(String::as_str)
        .filter(|t| !has(t))
        .collect()
}

/// The URL of every control-plane host's API server, as the admin kubectl on one of them
/// reaches it (its certificate names every control-plane address).
fn api_servers(cluster: &crate::inventory::Cluster) -> Vec<String> {
    cluster
        .hosts_with(crate::inventory::Role::ControlPlane)
        .map(|h| {
            let server = std::net::SocketAddr::new(h.address, crate::inventory::APISERVER_PORT);
            // `[v6]:port` for an IPv6 address.
            format!("https://{server}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn only_labels_and_taints_the_node_lacks_are_given() {
        let plan = HostPlan {
            name: "m1".into(),
            address: "10.0.0.11".into(),
            roles: vec!["control-plane"],
            files: vec![],
            services: vec![],
            node_labels: BTreeMap::from([
                (
                    "node-role.kubernetes.io/control-plane".into(),
                    String::new(),
                ),
                ("zone".into(), "a".into()),
            ]),
            node_taints: vec![
                "node-role.kubernetes.io/control-plane:NoSchedule".into(),
                "dedicated:NoExecute".into(),
            ],
        };
        let node = serde_json::json!({
            "metadata": {"name": "m1", "labels": {
                "node-role.kubernetes.io/control-plane": "", "zone": "b"}},
            "spec": {"taints": [
                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                {"key": "dedicated", "effect": "NoSchedule"}]}
        });
        assert_eq!(missing_labels(&plan, &node), vec!["zone=a".to_string()]);
        assert_eq!(missing_taints(&plan, &node), vec!["dedicated:NoExecute"]);
    }
}
