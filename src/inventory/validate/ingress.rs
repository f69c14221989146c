//! The ingress add-on: replicas, and its ports on the `lb` hosts and NodePorts against the
//! hosts' own ports, the node-port range and the chat's ports.

use super::checker::Checker;
use super::hosts::RoleCounts;
use super::ports::{self, BindsOn, PublishedPort};
use crate::inventory::schema::Inventory;

/// Nothing is checked while `ingress.enabled` is false.
pub(super) fn check_ingress(
    c: &mut Checker,
    inventory: &Inventory,
    roles: &RoleCounts,
    node_port_range: Option<(u16, u16)>,
) {
    let ingress = &inventory.ingress;
    if !ingress.enabled {
        return;
    }
    if ingress.replicas == 0 {
        c.error(
            "ingress.replicas",
            "must be at least 1 when ingress.enabled is true",
        );
    }
    let published = [
        PublishedPort {
            field: "ingress.http_port",
            port: ingress.http_port,
            on: BindsOn::Lbs,
        },
        PublishedPort {
            field: "ingress.https_port",
            port: ingress.https_port,
            on: BindsOn::Lbs,
        },
        PublishedPort {
            field: "ingress.http_node_port",
            port: ingress.http_node_port,
            on: BindsOn::Nodes,
        },
        PublishedPort {
            field: "ingress.https_node_port",
            port: ingress.https_node_port,
            on: BindsOn::Nodes,
        },
    ];
    for p in &published {
        if p.port == 0 {
            c.error(p.field, "must be a TCP port between 1 and 65535");
        }
    }
    for p in published.iter().filter(|p| p.on == BindsOn::Nodes) {
        if let Some((lo, hi)) = node_port_range {
            if p.port < lo || p.port > hi {
                c.error(
                    p.field,
                    format!("{} is outside cluster.node_port_range {lo}-{hi}", p.port),
                );
            }
        }
    }
    ports::check_published_ports(c, inventory, &published);
    // Two ports of one kind (both nginx's, or both NodePorts) cannot share a number.
    let chat = if inventory.chat.enabled {
        ports::chat_ports(inventory, roles.lbs > 0)
    } else {
        Vec::new()
    };
    for (i, p) in published.iter().enumerate() {
        let earlier = published[..i].iter().chain(&chat);
        if let Some(other) = earlier
            .into_iter()
            .find(|o| o.port == p.port && o.on == p.on)
        {
            c.error(
                p.field,
                format!(
                    "{} is also {}: each needs a port of its own",
                    p.port, other.field
                ),
            );
        }
    }
    if roles.lbs == 0 && !inventory.hosts.is_empty() {
        c.warn(
            "ingress.enabled",
            "no host has the `lb` role: nothing forwards ingress.http_port and \
             ingress.https_port to the ingress controller, whose NodePorts answer only the \
             lb hosts; add an lb host or set ingress.enabled: false",
        );
    }
    if roles.workers == 0 && !inventory.hosts.is_empty() {
        c.warn(
            "ingress.enabled",
            "no host has the `worker` role: the ingress controller has nowhere to run",
        );
    }
}
