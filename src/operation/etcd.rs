//! The etcd cluster during an upgrade: which member leads (it goes last) and whether every
//! member is healthy (before the next one restarts).

use super::OperationError;
use crate::catalog::{etcd_client_url, etcdctl};
use crate::install::remote::{poll_until_ok, Remote};
use crate::inventory::{Cluster, Role};
use serde_json::Value;
use std::time::Duration;

/// The inventory name of the leading member, asked on `host` (an etcd host).
pub fn leader(
    r: &dyn Remote,
    cluster: &Cluster,
    host: &crate::inventory::Host,
) -> Result<Option<String>, OperationError> {
    Ok(leader_endpoint(r, host)?.and_then(|url| {
        cluster
            .inventory
            .hosts
            .iter()
            .filter(|h| h.has(Role::Etcd))
            .find(|h| url == etcd_client_url(h))
            .map(|h| h.name.clone())
    }))
}

/// The client URL of the leading member, asked on `host` (an etcd host).
pub fn leader_endpoint(
    r: &dyn Remote,
    host: &crate::inventory::Host,
) -> Result<Option<String>, OperationError> {
    let command = format!("{} endpoint status --cluster -w json", etcdctl(host));
    let out = r.run(&command)?;
    let status: Value = serde_json::from_str(&out).map_err(|e| OperationError::Kubectl {
        command: "etcdctl endpoint status".into(),
        message: e.to_string(),
    })?;
    Ok(status.as_array().into_iter().flatten().find_map(|e| {
        let s = &e["Status"];
        (s["header"]["member_id"] == s["leader"] && !s["leader"].is_null())
            .then(|| e["Endpoint"].as_str().map(String::from))
            .flatten()
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
    match poll_until_ok(r, &command, timeout)? {
        None => Ok(()),
        Some(out) => Err(OperationError::EtcdUnhealthy {
            secs: timeout.as_secs(),
            output: crate::ssh::tail(&out.stdout, 4),
        }),
    }
}

/// The members as the etcd host `host` lists them.
pub fn members(
    r: &dyn Remote,
    host: &crate::inventory::Host,
) -> Result<Vec<crate::install::EtcdMember>, OperationError> {
    let out = r.run(&format!("{} member list -w json", etcdctl(host)))?;
    crate::install::EtcdMemberList::parse(&out)
        .map(|l| l.members)
        .map_err(|e| OperationError::Kubectl {
            command: "etcdctl member list".into(),
            message: e.to_string(),
        })
}

/// The client URLs of the members that answer healthy (`endpoint health --cluster`).
pub fn healthy_endpoints(
    r: &dyn Remote,
    host: &crate::inventory::Host,
) -> Result<Vec<String>, OperationError> {
    // Exits non-zero when a member is unhealthy; the JSON lists every member either way.
    let out = r.exec(&format!(
        "{} endpoint health --cluster -w json",
        etcdctl(host)
    ))?;
    let list: Value = serde_json::from_str(&out.stdout).map_err(|e| OperationError::Kubectl {
        command: "etcdctl endpoint health".into(),
        message: format!("{e}: {}", crate::ssh::tail(&out.stderr, 2)),
    })?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["health"] == true)
        .filter_map(|e| e["endpoint"].as_str().map(String::from))
        .collect())
}

/// Hands the leadership from `leader` (the host of the leading member, asked there) to the
/// member `to`: a leader that leaves or restarts would otherwise make the others elect a new
/// one first, and writes wait for that.
pub fn move_leader(
    r: &dyn Remote,
    leader: &crate::inventory::Host,
    to: u64,
) -> Result<(), OperationError> {
    r.run(&format!("{} move-leader {to:x}", etcdctl(leader)))?;
    Ok(())
}

/// `etcdctl member remove` of the member `id`, on the etcd host `host`.
pub fn remove_member(
    r: &dyn Remote,
    host: &crate::inventory::Host,
    id: u64,
) -> Result<(), OperationError> {
    r.run(&format!("{} member remove {id:x}", etcdctl(host)))?;
    Ok(())
}

/// Whether removing the member of `peer_url` keeps a quorum of healthy members: `Err` with
/// the reason when it would not.
pub fn removal_keeps_quorum(
    members: &[crate::install::EtcdMember],
    healthy: &[String],
    peer_url: &str,
) -> Result<(), String> {
    let is_healthy =
        |m: &crate::install::EtcdMember| m.client_urls.iter().any(|u| healthy.contains(u));
    let remaining: Vec<_> = members
        .iter()
        .filter(|m| !m.peer_urls.iter().any(|u| u == peer_url))
        .collect();
    if remaining.is_empty() {
        return Err("it is the last etcd member".into());
    }
    let quorum = remaining.len() / 2 + 1;
    let healthy_left = remaining.iter().filter(|m| is_healthy(m)).count();
    if healthy_left < quorum {
        return Err(format!(
            "{healthy_left} of the {} remaining etcd members are healthy and a quorum needs \
             {quorum}: bring the others back first",
            remaining.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::EtcdMember;

    fn member(name: &str, ip: &str) -> EtcdMember {
        EtcdMember {
            id: 1,
            name: name.into(),
            peer_urls: vec![format!("https://{ip}:2380")],
            client_urls: vec![format!("https://{ip}:2379")],
        }
    }

    #[test]
    fn a_removal_that_would_lose_quorum_is_refused() {
        let three = [
            member("m1", "10.0.0.1"),
            member("m2", "10.0.0.2"),
            member("m3", "10.0.0.3"),
        ];
        let all: Vec<String> = three.iter().map(|m| m.client_urls[0].clone()).collect();
        // 3 -> 2, both healthy: quorum 2 kept.
        assert_eq!(
            removal_keeps_quorum(&three, &all, "https://10.0.0.3:2380"),
            Ok(())
        );
        // 3 -> 2 with m2 down: 1 of 2 healthy, quorum 2 lost.
        let m2_down = vec![all[0].clone(), all[2].clone()];
        let e = removal_keeps_quorum(&three, &m2_down, "https://10.0.0.3:2380").unwrap_err();
        assert!(
            e.starts_with("1 of the 2 remaining etcd members are healthy"),
            "{e}"
        );
        // Removing the member that is down instead keeps it.
        assert_eq!(
            removal_keeps_quorum(&three, &m2_down, "https://10.0.0.2:2380"),
            Ok(())
        );
        let one = [member("m1", "10.0.0.1")];
        assert_eq!(
            removal_keeps_quorum(&one, &all, "https://10.0.0.1:2380").unwrap_err(),
            "it is the last etcd member"
        );
    }
}
