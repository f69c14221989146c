//! The chat workload: replicas, ports and NodePorts (against nginx on `lb` hosts and the
//! node-port range), image and namespace.

use super::checker::Checker;
use super::hosts::RoleCounts;
use super::names::is_dns_label;
use super::ports;
use crate::fetch::{FetchError, ImageRef};
use crate::inventory::schema::{Chat, Inventory, Role};

/// Nothing is checked while `chat.enabled` is false.
pub(super) fn check_chat(
    c: &mut Checker,
    inventory: &Inventory,
    roles: &RoleCounts,
    node_port_range: Option<(u16, u16)>,
) {
    let chat = &inventory.chat;
    if !chat.enabled {
        return;
    }
    check_replicas(c, chat);
    check_ports(c, chat, roles.lbs > 0, node_port_range);
    ports::check_published_ports(c, inventory, &ports::chat_ports(inventory, roles.lbs > 0));
    if chat.image.trim().is_empty() {
        c.error(
            "chat.image",
            "must name a Node.js image, e.g. docker.io/library/node:24-bookworm-slim",
        );
    } else if let Err(FetchError::Reference { message, .. }) = ImageRef::parse(&chat.image) {
        // The parser `fetch` pulls the image with: what it refuses cannot be installed.
        c.error(
            "chat.image",
            format!(
                "`{}` is not an image reference: {message}; expected NAME:TAG, e.g. docker.io/library/node:24-bookworm-slim",
                chat.image
            ),
        );
    }
    if !is_dns_label(&chat.namespace) {
        c.error(
            "chat.namespace",
            format!("`{}` must be a DNS label", chat.namespace),
        );
    }
    // kube-proxy captures NodePort traffic on every node before nginx sees it.
    if let Some(i) = inventory
        .hosts
        .iter()
        .position(|h| h.has(Role::Lb) && h.has(Role::Worker))
    {
        if chat.port == chat.node_port {
            c.error(
                &format!("hosts[{i}].roles"),
                format!("an `lb` host that is also a `worker` needs chat.port different from chat.node_port ({}): kube-proxy would take the port from nginx", chat.node_port),
            );
        }
    }
    if roles.workers == 0 && !inventory.hosts.is_empty() {
        c.warn(
            "hosts",
            "no host has the `worker` role: the chat workload has nowhere to run",
        );
    }
}

fn check_replicas(c: &mut Checker, chat: &Chat) {
    if chat.replicas == 0 {
        c.error(
            "chat.replicas",
            "must be at least 1 when chat.enabled is true",
        );
    } else if chat.replicas > 1 {
        c.warn(
            "chat.replicas",
            format!("{} replicas share no message bus: a client sees only clients connected to the same pod", chat.replicas),
        );
    }
}

fn check_ports(c: &mut Checker, chat: &Chat, behind_lb: bool, range: Option<(u16, u16)>) {
    if chat.port == 0 {
        c.error("chat.port", "must be a TCP port between 1 and 65535");
    }
    if let Some((lo, hi)) = range {
        if chat.node_port < lo || chat.node_port > hi {
            c.error(
                "chat.node_port",
                format!(
                    "{} is outside cluster.node_port_range {lo}-{hi}",
                    chat.node_port
                ),
            );
        }
    }
    if behind_lb {
        check_lb_node_port(c, chat, range);
    }
}

/// Behind nginx the pod has a second, PROXY protocol port, published as its own NodePort
/// and also used as the pod's and the Service's port number.
fn check_lb_node_port(c: &mut Checker, chat: &Chat, range: Option<(u16, u16)>) {
    let lb_node_port = chat.lb_node_port;
    if let Some((lo, hi)) = range {
        if lb_node_port < lo || lb_node_port > hi {
            c.error(
                "chat.lb_node_port",
                format!("{lb_node_port} is outside cluster.node_port_range {lo}-{hi}"),
            );
        }
    }
    if lb_node_port == chat.node_port {
        c.error(
            "chat.lb_node_port",
            format!("{lb_node_port} is also chat.node_port: the LB's PROXY protocol port and the plain port need their own NodePorts"),
        );
    } else if lb_node_port == chat.port {
        c.error(
            "chat.lb_node_port",
            format!("{lb_node_port} is also chat.port: the pod listens on both, plain on chat.port and PROXY protocol on chat.lb_node_port"),
        );
    }
}
