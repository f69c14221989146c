//! A kubelet node's turn in an upgrade, through kubectl on a control-plane host: cordon
//! (remembering who cordoned it), drain with PodDisruptionBudgets respected, wait for the
//! node to be Ready on the new version, uncordon.

use super::OperationError;
use crate::install::admin_kubectl;
use crate::install::remote::Remote;
use crate::ssh::{shell_quote, tail};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Set on a node the upgrade cordoned; a node cordoned by its operator has none and stays
/// cordoned afterwards.
pub const CORDONED_BY: &str = "k8s-boot.io/cordoned-by";
const CORDONED_BY_UPGRADE: &str = "upgrade";

fn kubectl(r: &dyn Remote, args: &str) -> Result<String, OperationError> {
    Ok(r.run(&format!("{} {args}", admin_kubectl()))?)
}

fn node_json(r: &dyn Remote, node: &str) -> Result<Value, OperationError> {
    let out = kubectl(r, &format!("get node {} -o json", shell_quote(node)))?;
    serde_json::from_str(&out).map_err(|e| OperationError::Kubectl {
        command: format!("kubectl get node {node}"),
        message: e.to_string(),
    })
}

/// Whether the node is cordoned, and whether by an upgrade.
fn cordon_state(node: &Value) -> (bool, bool) {
    let cordoned = node["spec"]["unschedulable"].as_bool().unwrap_or(false);
    let ours = node["metadata"]["annotations"][CORDONED_BY].as_str() == Some(CORDONED_BY_UPGRADE);
    (cordoned, ours)
}

/// Cordons `node` (marked as the upgrade's), unless its operator had cordoned it already.
pub fn cordon(r: &dyn Remote, node: &str) -> Result<(), OperationError> {
    let (cordoned, ours) = cordon_state(&node_json(r, node)?);
    if cordoned && !ours {
        return Ok(());
    }
    let n = shell_quote(node);
    kubectl(
        r,
        &format!("annotate --overwrite node {n} {CORDONED_BY}={CORDONED_BY_UPGRADE}"),
    )?;
    kubectl(r, &format!("cordon {n}"))?;
    Ok(())
}

/// Uncordons `node` if the upgrade cordoned it.
pub fn uncordon(r: &dyn Remote, node: &str) -> Result<bool, OperationError> {
    let (_, ours) = cordon_state(&node_json(r, node)?);
    if !ours {
        return Ok(false);
    }
    let n = shell_quote(node);
    kubectl(r, &format!("uncordon {n}"))?;
    kubectl(r, &format!("annotate node {n} {CORDONED_BY}-"))?;
    Ok(true)
}

/// The nodes an earlier, interrupted upgrade cordoned.
pub fn cordoned_by_upgrade(r: &dyn Remote) -> Result<Vec<String>, OperationError> {
    let out = kubectl(r, "get nodes -o json")?;
    let list: Value = serde_json::from_str(&out).map_err(|e| OperationError::Kubectl {
        command: "kubectl get nodes".into(),
        message: e.to_string(),
    })?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| cordon_state(n).1)
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect())
}

/// Evicts every pod of `node` but DaemonSet ones, PodDisruptionBudgets respected, within
/// `timeout`; when it runs out, the error names each pod that could not go and why.
pub fn drain(r: &dyn Remote, node: &str, timeout: Duration) -> Result<(), OperationError> {
    let command = format!(
        "{} drain {} --ignore-daemonsets --delete-emptydir-data --timeout={}s 2>&1",
        admin_kubectl(),
        shell_quote(node),
        timeout.as_secs()
    );
    let out = r.exec(&command)?;
    if out.code == 0 {
        return Ok(());
    }
    Err(OperationError::Drain {
        node: node.to_string(),
        why: drain_stop_reason(&out.stdout, timeout),
        blockers: drain_blockers(&out.stdout),
    })
}

/// Why kubectl drain gave up: it refuses at once a pod that would be lost for good (no
/// controller to recreate it elsewhere); only evictions it retries run into the timeout.
fn drain_stop_reason(output: &str, timeout: Duration) -> String {
    if output.contains("cannot delete Pods that declare no controller") {
        "pods without a controller would be lost (nothing recreates them on another node); \
         delete them, or run them under a Deployment, StatefulSet or Job"
            .to_string()
    } else if output.contains("cannot delete") {
        "kubectl drain refused to delete a pod".to_string()
    } else if output.contains("global timeout reached") {
        format!("not finished in {} s", timeout.as_secs())
    } else {
        "kubectl drain failed".to_string()
    }
}

/// The distinct reasons kubectl drain gave for the pods it could not evict or delete.
fn drain_blockers(output: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for line in output.lines() {
        let reason = if let Some(rest) = line.strip_prefix("error when evicting pods/") {
            // `"chat-5d9" -n "chat" (will retry after 5s): Cannot evict pod as it would
            // violate the pod's disruption budget.`
            let pod = rest.split_whitespace().collect::<Vec<_>>();
            let (name, ns) = (
                pod.first().map(|s| s.trim_matches('"')).unwrap_or(""),
                pod.get(2).map(|s| s.trim_matches('"')).unwrap_or(""),
            );
            let why = rest.split_once(": ").map(|(_, w)| w).unwrap_or(rest).trim();
            format!("{ns}/{name}: {why}")
        } else if line.starts_with("cannot delete ") || line.contains("global timeout reached") {
            line.trim().trim_start_matches("error: ").to_string()
        } else {
            continue;
        };
        if !found.contains(&reason) {
            found.push(reason);
        }
    }
    if found.is_empty() {
        found.push(tail(output, 3));
    }
    found
}

/// `Some(ready)` for a registered node, `None` for one the API does not know.
pub fn registered(r: &dyn Remote, node: &str) -> Result<Option<bool>, OperationError> {
    let out = kubectl(
        r,
        &format!("get node {} --ignore-not-found -o json", shell_quote(node)),
    )?;
    if out.trim().is_empty() {
        return Ok(None);
    }
    let json: Value = serde_json::from_str(&out).map_err(|e| OperationError::Kubectl {
        command: format!("kubectl get node {node}"),
        message: e.to_string(),
    })?;
    Ok(Some(is_ready(&json)))
}

fn is_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Deletes the Node object (its pods go with it).
pub fn delete(r: &dyn Remote, node: &str) -> Result<(), OperationError> {
    kubectl(
        r,
        &format!("delete node {} --ignore-not-found", shell_quote(node)),
    )
    .map(drop)
}

/// Waits until `node` is Ready and its kubelet reports `version`, until `deadline`.
pub fn wait_ready(
    r: &dyn Remote,
    node: &str,
    version: &str,
    deadline: Instant,
) -> Result<(), OperationError> {
    loop {
        let json = node_json(r, node)?;
        let ready = is_ready(&json);
        let kubelet = json["status"]["nodeInfo"]["kubeletVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if ready && kubelet == version {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(OperationError::NodeNotReady {
                node: node.to_string(),
                ready,
                kubelet,
            });
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_drain_names_each_pod_and_its_reason_once() {
        let out = "node/w1 cordoned\n\
            Warning: ignoring DaemonSet-managed Pods: kube-system/kube-flannel-x\n\
            evicting pod chat/chat-5d9\n\
            error when evicting pods/\"chat-5d9\" -n \"chat\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n\
            error when evicting pods/\"chat-5d9\" -n \"chat\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n\
            There are pending pods in node \"w1\" when an error occurred: error when evicting pods/\"chat-5d9\" -n \"chat\": global timeout reached: 20s\n\
            error: unable to drain node \"w1\" due to error: [error when evicting pods/\"chat-5d9\" -n \"chat\": global timeout reached: 20s], continuing command...\n";
        let blockers = drain_blockers(out);
        assert_eq!(
            blockers[0],
            "chat/chat-5d9: Cannot evict pod as it would violate the pod's disruption budget."
        );
        assert_eq!(blockers.len(), 3, "{blockers:#?}");
        let bare = "error: unable to drain node \"w1\" due to error: cannot delete Pods that declare no controller (use --force to override): default/bare\n\
                    cannot delete Pods that declare no controller (use --force to override): default/bare\n";
        assert!(drain_blockers(bare)
            .iter()
            .any(|b| b.ends_with("default/bare")));
        // A refusal is not a timeout: it came at once, and waiting longer would not help.
        let minute = Duration::from_secs(60);
        assert!(drain_stop_reason(bare, minute).starts_with("pods without a controller"));
        assert_eq!(drain_stop_reason(out, minute), "not finished in 60 s");
        assert_eq!(drain_stop_reason("", minute), "kubectl drain failed");
    }

    #[test]
    fn only_a_node_the_upgrade_cordoned_counts_as_its_own() {
        let node = |unschedulable: bool, annotation: Option<&str>| {
            let mut n = serde_json::json!({"spec": {"unschedulable": unschedulable}, "metadata": {"annotations": {}}});
            if let Some(a) = annotation {
                n["metadata"]["annotations"][CORDONED_BY] = a.into();
            }
            n
        };
        assert_eq!(cordon_state(&node(true, Some("upgrade"))), (true, true));
        assert_eq!(cordon_state(&node(true, None)), (true, false));
        assert_eq!(cordon_state(&node(false, None)), (false, false));
    }
}
