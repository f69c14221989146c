//! An etcd host that joins a cluster already running: a host added to the inventory, or one
//! removed and added back. Its member is added (`etcdctl member add`, on a running member)
//! before its etcd starts, and that first start reads a one-time configuration with
//! `initial-cluster-state: existing` and the cluster's actual member list; afterwards etcd
//! reads the plan's configuration again (both settings are ignored once the data exists).
//!
//! A host with etcd data, or when no other member answers (the cluster's first start, when
//! every member starts with `new`), needs none of this.

use super::change::Change;
use super::executor::Executor;
use super::remote::Remote;
use super::steps::HostCtx;
use super::StepError;
use crate::catalog::{etcdctl, url_address};
use crate::inventory::{Host, Role};
use crate::ssh::{shell_quote, Source};
use serde::Deserialize;

const CONFIG: &str = "/etc/etcd/etcd.yaml";
const JOIN_CONFIG: &str = "/etc/etcd/etcd-join.yaml";
const DROP_IN_DIR: &str = "/etc/systemd/system/etcd.service.d";
const DROP_IN: &str = "/etc/systemd/system/etcd.service.d/k8s-boot-join.conf";

/// `etcdctl member list -w json`.
#[derive(Debug, Deserialize)]
pub struct MemberList {
    #[serde(default)]
    pub members: Vec<Member>,
}

#[derive(Debug, Deserialize)]
pub struct Member {
    #[serde(rename = "ID", default)]
    pub id: u64,
    /// Empty for a member added but not started yet.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
}

impl MemberList {
    pub fn parse(json: &str) -> Result<MemberList, StepError> {
        serde_json::from_str(json).map_err(|source| StepError::KubectlOutput {
            command: "etcdctl member list".into(),
            source,
        })
    }
}

pub fn peer_url(host: &Host) -> String {
    format!("https://{}:2380", url_address(host.address))
}

/// A running member other than the joining host, and the member list it gave.
struct Running {
    remote: Box<dyn Remote>,
    /// etcdctl on that member's host.
    etcdctl: String,
    list: MemberList,
}

/// The member list as a running member other than `cx.host` answers it; `None` when none
/// answers.
fn running_members(cx: &HostCtx) -> Result<Option<Running>, StepError> {
    let others = cx
        .run
        .cluster
        .inventory
        .hosts
        .iter()
        .filter(|h| h.has(Role::Etcd) && h.name != cx.host.name);
    for other in others {
        let Ok(remote) = cx.run.connector.connect(other) else {
            continue;
        };
        let command = format!("{} member list -w json", etcdctl(other));
        let out = remote.exec(&command)?;
        if out.code != 0 {
            continue;
        }
        let list = MemberList::parse(&out.stdout)?;
        return Ok(Some(Running {
            remote,
            etcdctl: etcdctl(other),
            list,
        }));
    }
    Ok(None)
}

/// Before etcd's first start on `cx.host`: when it joins a running cluster, adds its member
/// (unless listed already) and installs the one-time configuration. Returns whether it
/// joins.
pub fn prepare_join(cx: &HostCtx, ex: &mut Executor) -> Result<bool, StepError> {
    let has_data = ex.read().exec("test -d /var/lib/etcd/member")?.code == 0;
    if has_data {
        return Ok(false);
    }
    let Some(Running {
        remote: member,
        etcdctl,
        mut list,
    }) = running_members(cx)?
    else {
        return Ok(false);
    };
    let url = peer_url(cx.host);
    let listed = |l: &MemberList| l.members.iter().any(|m| m.peer_urls.contains(&url));
    if !listed(&list) {
        let name = cx.host.name.clone();
        let add = format!(
            "{etcdctl} member add {} --peer-urls={}",
            shell_quote(&name),
            shell_quote(&url)
        );
        ex.change(Change::EtcdMemberAdd(name), |_| {
            Ok(member.run(&add).map(drop)?)
        })?;
        let relisted = ex.effect(|_| {
            MemberList::parse(&member.run(&format!("{etcdctl} member list -w json"))?)
        })?;
        match relisted {
            Some(l) => list = l,
            // A dry run: the member would be added; nothing else to show.
            None => return Ok(true),
        }
    }
    let mut entries = Vec::new();
    for m in &list.members {
        let name = if m.peer_urls.contains(&url) {
            cx.host.name.as_str()
        } else if m.name.is_empty() {
            return Err(StepError::NotVerified(vec![format!(
                "etcd member {} was added but never started: start it or remove it \
                 (`etcdctl member remove`) before adding {}",
                m.peer_urls.join(","),
                cx.host.name
            )]));
        } else {
            m.name.as_str()
        };
        let peer = m.peer_urls.first().map(String::as_str).unwrap_or_default();
        entries.push(format!("{name}={peer}"));
    }
    let planned = cx
        .plan
        .files
        .iter()
        .find(|f| f.path == CONFIG)
        .ok_or_else(|| StepError::NotVerified(vec![format!("the plan has no {CONFIG}")]))?;
    let join = join_config(&String::from_utf8_lossy(&planned.bytes), &entries.join(","))
        .ok_or_else(|| {
            StepError::NotVerified(vec![format!(
                "{CONFIG} has no `initial-cluster:` and `initial-cluster-state:` lines to \
                 adapt for joining a running cluster"
            )])
        })?;
    // Like the plan's configuration, the one-time one reaches etcd as a credential.
    let drop_in = format!(
        "# Written by k8s-boot for etcd's first start on a host joining a running cluster;\n\
         # removed once the member is healthy.\n[Service]\n\
         LoadCredential=etcd-join.yaml:{JOIN_CONFIG}\nExecStart=\n\
         ExecStart={}/etcd --config-file=%d/etcd-join.yaml\n",
        crate::catalog::BIN_DIR
    );
    ex.effect(|r| {
        r.upload(
            Source::Bytes(join.as_bytes()),
            JOIN_CONFIG,
            0o600,
            "root:root",
        )?;
        r.run(&format!("mkdir -p {DROP_IN_DIR}"))?;
        r.upload(
            Source::Bytes(drop_in.as_bytes()),
            DROP_IN,
            0o600,
            "root:root",
        )?;
        r.run("systemctl daemon-reload")?;
        Ok(())
    })?;
    Ok(true)
}

/// After the joined member is healthy: the one-time configuration goes; the running etcd
/// is not restarted.
pub fn finish_join(ex: &mut Executor) -> Result<(), StepError> {
    ex.effect(|r| {
        r.run(&format!(
            "rm -f {JOIN_CONFIG} {DROP_IN} && rmdir --ignore-fail-on-non-empty {DROP_IN_DIR} \
             && systemctl daemon-reload"
        ))?;
        Ok(())
    })?;
    Ok(())
}

/// `config` with `initial-cluster` set to `members` and `initial-cluster-state` to
/// `existing`; `None` when either line is missing.
fn join_config(config: &str, members: &str) -> Option<String> {
    let (mut cluster, mut state) = (false, false);
    let mut out = String::new();
    for line in config.lines() {
        if line.starts_with("initial-cluster:") {
            cluster = true;
            out.push_str(&format!("initial-cluster: \"{members}\""));
        } else if line.starts_with("initial-cluster-state:") {
            state = true;
            out.push_str("initial-cluster-state: existing");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    (cluster && state).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_configuration_names_the_running_members_and_existing() {
        let config = "name: \"m3\"\ninitial-cluster: \"m1=a,m2=b,m3=c\"\n\
                      initial-cluster-token: \"t-etcd\"\ninitial-cluster-state: new\nlogger: zap\n";
        assert_eq!(
            join_config(config, "m1=a,m3=c").unwrap(),
            "name: \"m3\"\ninitial-cluster: \"m1=a,m3=c\"\n\
             initial-cluster-token: \"t-etcd\"\ninitial-cluster-state: existing\nlogger: zap\n"
        );
        assert_eq!(join_config("name: m3\n", "m1=a"), None);
    }
}
