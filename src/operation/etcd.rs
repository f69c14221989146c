//! The etcd cluster during an upgrade: which member leads (it goes last) and whether every
//! member is healthy (before the next one restarts).

use super::OperationError;
use crate::catalog::{etcdctl, url_address};
use crate::install::remote::Remote;
use crate::inventory::{Cluster, Role};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The inventory name of the leading member, asked on `host` (an etcd host).
pub fn leader(
    r: &dyn Remote,
    cluster: &Cluster,
    host: &crate::inventory::Host,
) -> Result<Option<String>, OperationError> {
    let command = format!("{} endpoint status --cluster -w json", etcdctl(host));
    let out = r.run(&command)?;
    let status: Value = serde_json::from_str(&out).map_err(|e| OperationError::Kubectl {
        command: "etcdctl endpoint status".into(),
        message: e.to_string(),
    })?;
    let endpoint = status.as_array().into_iter().flatten().find_map(|e| {
        let s = &e["Status"];
        (s["header"]["member_id"] == s["leader"] && !s["leader"].is_null())
            .then(|| e["Endpoint"].as_str().map(String::from))
            .flatten()
    });
    Ok(endpoint.and_then(|url| {
        cluster
            .inventory
            .hosts
            .iter()
            .filter(|h| h.has(Role::Etcd))
            .find(|h| url == format!("https://{}:2379", url_address(h.address)))
            .map(|h| h.name.clone())
    }))
}

/// Waits until every member answers healthy (`endpoint health --cluster`), until
/// `timeout` has passed.
pub fn wait_healthy(
    r: &dyn Remote,
    host: &crate::inventory::Host,
    timeout: Duration,
) -> Result<(), OperationError> {
    let command = format!("{} endpoint health --cluster 2>&1", etcdctl(host));
    let deadline = Instant::now() + timeout;
    loop {
        let out = r.exec(&command)?;
        if out.code == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(OperationError::EtcdUnhealthy {
                secs: timeout.as_secs(),
                output: crate::ssh::tail(&out.stdout, 4),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
