//! Readiness of what a cluster phase applied: every Deployment and DaemonSet its manifests
//! define rolled out, every APIService they define Available. The list comes from the
//! rendered manifests themselves, so an add-on whose manifest is rendered is waited for
//! without naming it anywhere else; a kind with its own notion of ready is a row of [`KINDS`].
//!
//! Everything ready costs one `kubectl get`. Only when the deadline runs out are the pods
//! that hold a workload back looked up, with their node and their last event, for the error.

use super::remote::Remote;
use super::StepError;
use crate::render::PlannedFile;
use crate::ssh::shell_quote;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// How often the objects are looked at again while one is not ready.
const POLL: Duration = Duration::from_secs(1);

/// A kind of object that becomes ready some time after it is applied.
struct Kind {
    kind: &'static str,
    /// Its resource for `kubectl get`, group-qualified so that no other group's kind of the
    /// same name answers.
    resource: &'static str,
    namespaced: bool,
    /// Why an object of this kind, as the API returns it, is not ready yet; `None` when it is.
    pending: fn(&Value) -> Option<String>,
    /// Its pods can be named when it is not ready (`spec.selector.matchLabels`).
    has_pods: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        kind: "Deployment",
        resource: "deployments.apps",
        namespaced: true,
        pending: deployment_pending,
        has_pods: true,
    },
    Kind {
        kind: "DaemonSet",
        resource: "daemonsets.apps",
        namespaced: true,
        pending: daemon_set_pending,
        has_pods: true,
    },
    Kind {
        kind: "APIService",
        resource: "apiservices.apiregistration.k8s.io",
        namespaced: false,
        pending: api_service_pending,
        has_pods: false,
    },
];

/// An object of the applied manifests to wait for.
pub struct Awaited {
    kind: &'static Kind,
    /// `None` for a cluster-scoped kind.
    namespace: Option<String>,
    name: String,
}

/// `namespace/name`, or `name` when cluster-scoped.
fn qualified(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// The objects of `manifests` (multi-document YAML, as rendered) whose kind is in [`KINDS`].
pub fn awaited(manifests: &[&PlannedFile]) -> Result<Vec<Awaited>, StepError> {
    let mut objects = Vec::new();
    for file in manifests {
        for document in serde_yaml::Deserializer::from_slice(&file.bytes) {
            let object = Value::deserialize(document).map_err(|source| StepError::Manifest {
                path: file.path.clone(),
                source,
            })?;
            let Some(kind) = KINDS.iter().find(|k| object["kind"] == k.kind) else {
                continue;
            };
            let metadata = &object["metadata"];
            objects.push(Awaited {
                kind,
                // kubectl puts a namespaced object without one into the context's: `default`.
                namespace: kind.namespaced.then(|| {
                    metadata["namespace"]
                        .as_str()
                        .unwrap_or("default")
                        .to_string()
                }),
                name: metadata["name"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    Ok(objects)
}

/// Waits until every object of `awaited` is ready, or fails at `deadline` naming what is
/// not (`bound` is how long the whole wait may take, for the message).
///
/// An APIService is ready only once every API server in `servers` (their URLs) also lists its
/// group version in its discovery as clients read it: each server's aggregator marks it fresh
/// a moment after the APIService turns Available, and a client that reads discovery before
/// (`kubectl top` filling its cache) finds no such API.
pub fn wait(
    r: &dyn Remote,
    kubectl: &str,
    awaited: &[Awaited],
    servers: &[String],
    deadline: Instant,
    bound: Duration,
) -> Result<(), StepError> {
    if awaited.is_empty() {
        return Ok(());
    }
    loop {
        let objects = current(r, kubectl, awaited)?;
        let mut pending: Vec<(&Awaited, Option<&Value>, String)> = awaited
            .iter()
            .filter_map(|a| {
                let object = find(&objects, a);
                let why = match object {
                    Some(o) => (a.kind.pending)(o)?,
                    None => "not found".to_string(),
                };
                Some((a, object, why))
            })
            .collect();
        if pending.is_empty() {
            pending = undiscovered(r, kubectl, awaited, servers)?
                .into_iter()
                .map(|(a, why)| (a, find(&objects, a), why))
                .collect();
        }
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let mut events = Events::default();
            let blockers = pending
                .into_iter()
                .flat_map(|(a, object, why)| blockers(r, kubectl, a, object, why, &mut events))
                .collect();
            return Err(StepError::NotReady {
                secs: bound.as_secs(),
                blockers,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// The awaited APIServices some API server of `servers` does not list in its discovery yet
/// (an APIService is named `<version>.<group>`), with why.
fn undiscovered<'a>(
    r: &dyn Remote,
    kubectl: &str,
    awaited: &'a [Awaited],
    servers: &[String],
) -> Result<Vec<(&'a Awaited, String)>, StepError> {
    let services: Vec<&Awaited> = awaited
        .iter()
        .filter(|a| a.kind.kind == "APIService")
        .collect();
    let mut missing = Vec::new();
    if services.is_empty() {
        return Ok(missing);
    }
    for server in servers {
        // Discovery as clients read it (aggregated, a version the aggregator has not fetched
        // from its service yet left out), from a cache of its own: never an old answer.
        let command = format!(
            "d=$(mktemp -d) && {kubectl} --cache-dir \"$d\" --server {} api-versions; \
             rc=$?; rm -rf \"$d\"; exit $rc",
            shell_quote(server)
        );
        let versions = r.run(&command)?;
        for a in &services {
            if !discovered(&versions, &a.name) {
                missing.push((*a, format!("not yet in the discovery of {server}")));
            }
        }
    }
    Ok(missing)
}

/// Whether `kubectl api-versions` output lists the group version of the APIService `name`
/// (`<version>.<group>`).
fn discovered(versions: &str, name: &str) -> bool {
    let Some((version, group)) = name.split_once('.') else {
        return false;
    };
    let wanted = format!("{group}/{version}");
    versions.lines().any(|l| l.trim() == wanted)
}

/// The awaited kinds' objects as the API has them now, in one call.
fn current(r: &dyn Remote, kubectl: &str, awaited: &[Awaited]) -> Result<Vec<Value>, StepError> {
    let mut resources: Vec<&str> = awaited.iter().map(|a| a.kind.resource).collect();
    resources.sort_unstable();
    resources.dedup();
    let command = format!(
        "{kubectl} get {} --all-namespaces -o json",
        resources.join(",")
    );
    items(r, &command)
}

/// The `items` of a kubectl list.
fn items(r: &dyn Remote, command: &str) -> Result<Vec<Value>, StepError> {
    let text = r.run(command)?;
    let list: Value = serde_json::from_str(&text).map_err(|source| StepError::KubectlOutput {
        command: command.to_string(),
        source,
    })?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

fn find<'v>(objects: &'v [Value], a: &Awaited) -> Option<&'v Value> {
    objects.iter().find(|o| {
        o["kind"] == a.kind.kind
            && o["metadata"]["name"] == a.name.as_str()
            && o["metadata"]["namespace"].as_str() == a.namespace.as_deref()
    })
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The controller has not looked at the object's latest spec yet, so its status is stale.
fn generation_pending(object: &Value) -> Option<String> {
    let generation = int(&object["metadata"]["generation"]);
    let observed = int(&object["status"]["observedGeneration"]);
    (observed < generation).then(|| format!("generation {generation} not yet observed"))
}

/// As `kubectl rollout status` decides: every replica updated, no old one left, every
/// updated one available.
fn deployment_pending(d: &Value) -> Option<String> {
    if let Some(why) = generation_pending(d) {
        return Some(why);
    }
    let status = &d["status"];
    let wanted = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let updated = int(&status["updatedReplicas"]);
    let replicas = int(&status["replicas"]);
    let available = int(&status["availableReplicas"]);
    if updated < wanted {
        Some(format!("{updated} of {wanted} replica(s) updated"))
    } else if replicas > updated {
        Some(format!("{} old replica(s) left", replicas - updated))
    } else if available < updated {
        Some(format!("{available} of {updated} replica(s) available"))
    } else {
        None
    }
}

/// As `kubectl rollout status` decides: every node's pod updated and available.
fn daemon_set_pending(ds: &Value) -> Option<String> {
    if let Some(why) = generation_pending(ds) {
        return Some(why);
    }
    let status = &ds["status"];
    let desired = int(&status["desiredNumberScheduled"]);
    let updated = int(&status["updatedNumberScheduled"]);
    let available = int(&status["numberAvailable"]);
    if updated < desired {
        Some(format!("{updated} of {desired} pod(s) updated"))
    } else if available < desired {
        Some(format!("{available} of {desired} pod(s) available"))
    } else {
        None
    }
}

/// The API server reaches the service behind it: condition `Available` is `True`.
fn api_service_pending(s: &Value) -> Option<String> {
    let conditions = s["status"]["conditions"].as_array();
    let available = conditions.and_then(|cs| cs.iter().find(|c| c["type"] == "Available"));
    match available {
        Some(c) if c["status"] == "True" => None,
        Some(c) => Some(format!(
            "not Available ({}: {})",
            c["reason"].as_str().unwrap_or("no reason"),
            one_line(c["message"].as_str().unwrap_or_default())
        )),
        None => Some("not Available (no condition yet)".to_string()),
    }
}

/// What holds an awaited object back, as the error names it.
#[derive(Debug, Clone)]
pub enum Blocker {
    /// A pod of the object that is not Ready.
    Pod {
        namespace: String,
        name: String,
        node: Option<String>,
        /// Why, as `kubectl get pods` shows it: `ContainerCreating`, `CrashLoopBackOff`, ...
        state: String,
        /// `Reason: message` of the pod's latest event.
        last_event: Option<String>,
    },
    /// The object itself, when no pod of it can be blamed.
    Object {
        kind: &'static str,
        name: String,
        why: String,
    },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Pod {
                namespace,
                name,
                node,
                state,
                last_event,
            } => {
                write!(f, "{namespace}/{name}: not ready ")?;
                match node {
                    Some(node) => write!(f, "on {node} ({state})")?,
                    None => write!(f, "and not scheduled ({state})")?,
                }
                match last_event {
                    Some(event) => write!(f, "; last event: {event}"),
                    None => write!(f, "; no event"),
                }
            }
            Blocker::Object { kind, name, why } => write!(f, "{kind} {name}: {why}"),
        }
    }
}

/// The blockers, one after the other, for a one-line message.
pub fn list(blockers: &[Blocker]) -> String {
    let texts: Vec<String> = blockers.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

/// Events by namespace, each namespace asked once.
#[derive(Default)]
struct Events(HashMap<String, Vec<Value>>);

impl Events {
    /// `Reason: message` of the latest event about pod `name` in `namespace`.
    fn last_of_pod(
        &mut self,
        r: &dyn Remote,
        kubectl: &str,
        namespace: &str,
        name: &str,
    ) -> Option<String> {
        let events = self.0.entry(namespace.to_string()).or_insert_with(|| {
            let command = format!("{kubectl} get events -n {} -o json", shell_quote(namespace));
            items(r, &command).unwrap_or_default()
        });
        // Later in the list wins a tie: events of the same second come in the order made.
        let last = events
            .iter()
            .filter(|e| e["involvedObject"]["kind"] == "Pod" && e["involvedObject"]["name"] == name)
            .max_by_key(|e| event_time(e))?;
        Some(format!(
            "{}: {}",
            last["reason"].as_str().unwrap_or("no reason"),
            one_line(last["message"].as_str().unwrap_or_default())
        ))
    }
}

/// When an event last happened, to the second (`eventTime` has microseconds, `lastTimestamp`
/// none; the second is common to both).
fn event_time(event: &Value) -> String {
    [
        &event["series"]["lastObservedTime"],
        &event["lastTimestamp"],
        &event["eventTime"],
        &event["firstTimestamp"],
        &event["metadata"]["creationTimestamp"],
    ]
    .iter()
    .filter_map(|t| t.as_str())
    .map(|t| {
        t.chars()
            .take("YYYY-MM-DDTHH:MM:SS".len())
            .collect::<String>()
    })
    .max()
    .unwrap_or_default()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What holds `a` back: its pods that are not Ready, or else the object itself. Lookups that
/// fail here leave the object as the blocker: the deadline has passed, and the error must
/// say what is not ready rather than why a diagnosis failed.
fn blockers(
    r: &dyn Remote,
    kubectl: &str,
    a: &Awaited,
    object: Option<&Value>,
    why: String,
    events: &mut Events,
) -> Vec<Blocker> {
    let object_itself = || {
        vec![Blocker::Object {
            kind: a.kind.kind,
            name: qualified(a.namespace.as_deref(), &a.name),
            why: why.clone(),
        }]
    };
    let (Some(object), Some(namespace), true) = (object, &a.namespace, a.kind.has_pods) else {
        return object_itself();
    };
    let Some(labels) = object["spec"]["selector"]["matchLabels"].as_object() else {
        return object_itself();
    };
    let selector: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let command = format!(
        "{kubectl} get pods -n {} -l {} -o json",
        shell_quote(namespace),
        shell_quote(&selector.join(","))
    );
    let Ok(pods) = items(r, &command) else {
        return object_itself();
    };
    let unready: Vec<Blocker> = pods
        .iter()
        .filter(|p| !pod_ready(p))
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or_default();
            Blocker::Pod {
                namespace: namespace.clone(),
                name: name.to_string(),
                node: p["spec"]["nodeName"].as_str().map(str::to_string),
                state: pod_state(p),
                last_event: events.last_of_pod(r, kubectl, namespace, name),
            }
        })
        .collect();
    if unready.is_empty() {
        object_itself()
    } else {
        unready
    }
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// A pod's state as `kubectl get pods` shows it: a container's waiting or terminated reason
/// (an init container's first, `Init:` before it), else the pod's phase.
fn pod_state(pod: &Value) -> String {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".to_string();
    }
    let status = &pod["status"];
    let reason_of = |statuses: &Value| {
        statuses.as_array().into_iter().flatten().find_map(|s| {
            let state = &s["state"];
            state["waiting"]["reason"]
                .as_str()
                .or_else(|| state["terminated"]["reason"].as_str())
                .map(str::to_string)
        })
    };
    if let Some(reason) = reason_of(&status["initContainerStatuses"]) {
        return format!("Init:{reason}");
    }
    if let Some(reason) = reason_of(&status["containerStatuses"]) {
        return reason;
    }
    match status["phase"].as_str() {
        Some("Running") => "Running, not Ready".to_string(),
        Some(phase) => phase.to_string(),
        None => "no status yet".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, status: Value) -> Value {
        json!({"kind": "Deployment", "metadata": {"generation": generation},
               "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn a_deployment_is_ready_when_every_replica_is_updated_and_available() {
        let ready = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                           "availableReplicas": 2});
        assert_eq!(deployment_pending(&deployment(2, ready.clone())), None);
        // Status written before the latest change: stale, whatever it says.
        assert_eq!(
            deployment_pending(&deployment(3, ready)).as_deref(),
            Some("generation 3 not yet observed")
        );
        let rolling = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2,
                             "availableReplicas": 2});
        assert_eq!(
            deployment_pending(&deployment(2, rolling)).as_deref(),
            Some("1 old replica(s) left")
        );
        let starting = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                              "availableReplicas": 1});
        assert_eq!(
            deployment_pending(&deployment(2, starting)).as_deref(),
            Some("1 of 2 replica(s) available")
        );
    }

    #[test]
    fn a_daemon_set_is_ready_when_every_nodes_pod_is_available() {
        let ds = |available: i64| {
            json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
                   "desiredNumberScheduled": 5, "updatedNumberScheduled": 5,
                   "numberAvailable": available}})
        };
        assert_eq!(daemon_set_pending(&ds(5)), None);
        assert_eq!(
            daemon_set_pending(&ds(4)).as_deref(),
            Some("4 of 5 pod(s) available")
        );
        // Just created: the controller has not counted the nodes yet.
        let new = json!({"metadata": {"generation": 1}, "status": {}});
        assert!(daemon_set_pending(&new).is_some());
    }

    #[test]
    fn an_api_service_is_ready_when_available() {
        let with = |status: &str| {
            json!({"status": {"conditions": [{"type": "Available", "status": status,
                   "reason": "MissingEndpoints", "message": "endpoints for service\n not found"}]}})
        };
        assert_eq!(api_service_pending(&with("True")), None);
        assert_eq!(
            api_service_pending(&with("False")).as_deref(),
            Some("not Available (MissingEndpoints: endpoints for service not found)")
        );
        assert!(api_service_pending(&json!({})).is_some());
    }

    #[test]
    fn what_to_wait_for_comes_from_the_manifests() {
        let yaml = "\
# a comment before the first document
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: a}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: a}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
";
        let file = PlannedFile {
            path: "manifests/x.yaml".into(),
            mode: 0o600,
            owner: "root:root",
            sha256: String::new(),
            restarts: vec![],
            bytes: yaml.as_bytes().to_vec(),
        };
        let got: Vec<(&str, Option<String>, String)> = awaited(&[&file])
            .unwrap()
            .into_iter()
            .map(|a| (a.kind.kind, a.namespace, a.name))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Deployment", Some("a".into()), "web".into()),
                ("DaemonSet", Some("default".into()), "agent".into()),
                ("APIService", None, "v1beta1.metrics.k8s.io".into()),
            ]
        );
    }

    #[test]
    fn a_pods_state_is_what_kubectl_shows() {
        let waiting = |reason: &str| json!({"state": {"waiting": {"reason": reason}}});
        let pod = json!({"status": {"phase": "Pending",
                         "containerStatuses": [waiting("ContainerCreating")]}});
        assert_eq!(pod_state(&pod), "ContainerCreating");
        let init = json!({"status": {"phase": "Pending",
                          "initContainerStatuses": [waiting("CrashLoopBackOff")],
                          "containerStatuses": [waiting("PodInitializing")]}});
        assert_eq!(pod_state(&init), "Init:CrashLoopBackOff");
        assert_eq!(
            pod_state(&json!({"status": {"phase": "Pending"}})),
            "Pending"
        );
    }
}
