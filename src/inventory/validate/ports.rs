//! Ports that processes on the hosts already listen on, by role, and the ports the cluster
//! publishes (the chat's, the ingress's) that must not take them: kube-proxy captures a NodePort on every node, nginx listens on
//! `chat.port` on every `lb` host. Either would take the port from its owner (SSH, the
//! kubelet, etcd...), or lose it.

use super::checker::Checker;
use crate::catalog::NODE_ROLES;
use crate::inventory::cluster::APISERVER_PORT;
use crate::inventory::schema::{Host, Inventory, Role};

/// A TCP port a process of k8s-boot's components listens on, on every host with one of
/// `roles` (loopback-only ones included: a NodePort captures those too).
pub(super) struct HostPort {
    pub port: u16,
    pub owner: &'static str,
    pub roles: &'static [Role],
}

const fn port(port: u16, owner: &'static str, roles: &'static [Role]) -> HostPort {
    HostPort { port, owner, roles }
}

pub(super) const HOST_PORTS: &[HostPort] = &[
    port(2379, "etcd's client port", &[Role::Etcd]),
    port(2380, "etcd's peer port", &[Role::Etcd]),
    port(APISERVER_PORT, "kube-apiserver", &[Role::ControlPlane]),
    port(APISERVER_PORT, "the apiserver proxy (nginx)", &[Role::Lb]),
    port(10248, "the kubelet's health port", NODE_ROLES),
    port(10249, "kube-proxy's metrics port", NODE_ROLES),
    port(10250, "the kubelet's API", NODE_ROLES),
    port(10256, "kube-proxy's health port", NODE_ROLES),
    port(10257, "kube-controller-manager", &[Role::ControlPlane]),
    port(10259, "kube-scheduler", &[Role::ControlPlane]),
];

/// A port the cluster publishes (the chat's, the ingress's) and the hosts it binds on.
pub(super) struct PublishedPort {
    pub field: &'static str,
    pub port: u16,
    pub on: BindsOn,
}

/// Where a published port binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BindsOn {
    /// A NodePort: every node.
    Nodes,
    /// nginx's: the `lb` hosts.
    Lbs,
}

impl BindsOn {
    fn binds(self, h: &Host) -> bool {
        match self {
            BindsOn::Nodes => h.has_any(NODE_ROLES),
            BindsOn::Lbs => h.has(Role::Lb),
        }
    }
}

/// The chat's ports: the plain NodePort, nginx's port and, behind an LB, the PROXY protocol
/// NodePort.
pub(super) fn chat_ports(inventory: &Inventory, behind_lb: bool) -> Vec<PublishedPort> {
    let chat = &inventory.chat;
    let mut ports = vec![
        PublishedPort {
            field: "chat.node_port",
            port: chat.node_port,
            on: BindsOn::Nodes,
        },
        PublishedPort {
            field: "chat.port",
            port: chat.port,
            on: BindsOn::Lbs,
        },
    ];
    if behind_lb {
        ports.push(PublishedPort {
            field: "chat.lb_node_port",
            port: chat.lb_node_port,
            on: BindsOn::Nodes,
        });
    }
    ports
}

/// Every published port against every port already taken on the hosts it binds on; one
/// error per field and owner, naming the first host.
pub(super) fn check_published_ports(
    c: &mut Checker,
    inventory: &Inventory,
    ports: &[PublishedPort],
) {
    for p in ports {
        let mut reported: Vec<&str> = Vec::new();
        for (i, h) in inventory.hosts.iter().enumerate() {
            if !p.on.binds(h) {
                continue;
            }
            let ssh_port = h.ssh.port.unwrap_or(inventory.ssh.port);
            let owners = HOST_PORTS
                .iter()
                .filter(|t| t.port == p.port && h.has_any(t.roles))
                .map(|t| t.owner)
                .chain((ssh_port == p.port).then_some("sshd (the host's ssh.port)"));
            for owner in owners {
                if reported.contains(&owner) {
                    continue;
                }
                reported.push(owner);
                c.error(
                    p.field,
                    format!(
                        "{} is taken by {owner} on hosts[{i}] `{}`; expected a port no host process listens on",
                        p.port, h.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::COMPONENTS;
    use crate::inventory::Cluster;

    /// The table names every port the catalog's components listen on, for their roles.
    #[test]
    fn every_component_port_is_in_the_table() {
        let cluster =
            Cluster::from_source(std::path::Path::new("hosts.yaml"), crate::EXAMPLE_INVENTORY)
                .unwrap();
        for component in COMPONENTS {
            for port in (component.ports)(&cluster) {
                let ingress = &cluster.inventory.ingress;
                let published = [
                    cluster.inventory.chat.port,
                    ingress.http_port,
                    ingress.https_port,
                ];
                if component.service == "nginx" && published.contains(&port) {
                    continue; // the chat's and the ingress's ports themselves
                }
                for role in component.roles {
                    assert!(
                        HOST_PORTS
                            .iter()
                            .any(|t| t.port == port && t.roles.contains(role)),
                        "{} listens on {port} on {} hosts: add it to HOST_PORTS",
                        component.service,
                        role.as_str()
                    );
                }
            }
        }
    }
}
