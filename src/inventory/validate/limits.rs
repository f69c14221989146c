//! The central checks of every string in the inventory, before anything else so that no
//! other message quotes an oversized or unprintable value: a length cap, and no control or
//! invisible characters (a line break in a value must never reach a rendered file, where
//! it could start a new YAML key or unit directive).

use super::checker::Checker;
use crate::inventory::schema::{self, Inventory};

/// Longest name accepted (host and cluster names, domains, users, versions, CIDRs...): the
/// length limit of a DNS name.
pub const MAX_NAME_BYTES: usize = 253;
/// Longest path (or image reference) accepted: Linux's PATH_MAX.
pub const MAX_PATH_BYTES: usize = 4096;

enum Kind {
    Name,
    Path,
}

/// Names at most [`MAX_NAME_BYTES`], paths and image references at most
/// [`MAX_PATH_BYTES`]; none with a control or invisible character. A field refused here
/// gets this error only.
pub(super) fn check_strings(c: &mut Checker, inv: &Inventory) {
    for (field, value, kind) in capped_fields(inv) {
        let (max, what) = match kind {
            Kind::Name => (MAX_NAME_BYTES, "a name (the DNS name limit)"),
            Kind::Path => (MAX_PATH_BYTES, "a path (PATH_MAX)"),
        };
        if value.len() > max {
            let message = format!(
                "is {} bytes long; expected at most {max} bytes for {what}",
                value.len()
            );
            c.refuse_value(field, message);
        } else if let Some((at, ch)) = value.char_indices().find(|(_, ch)| is_hidden(*ch)) {
            let message = format!(
                "contains {} (U+{:04X}) at byte {at}; expected printable text without line breaks, tabs or invisible characters",
                hidden_name(ch),
                u32::from(ch)
            );
            c.refuse_value(field, message);
        }
    }
}

/// Characters no inventory value may hold: they end lines in rendered files, or hide what a
/// value says (zero-width and direction overrides).
fn is_hidden(ch: char) -> bool {
    ch.is_control()
        || matches!(ch,
            '\u{200B}'..='\u{200F}' // zero-width space, joiners, direction marks
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202A}'..='\u{202E}' // direction embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // direction isolates
            | '\u{FEFF}' // zero-width no-break space
        )
}

fn hidden_name(ch: char) -> &'static str {
    match ch {
        '\n' | '\r' | '\u{2028}' | '\u{2029}' | '\u{85}' | '\u{0B}' | '\u{0C}' => "a line break",
        '\t' => "a tab",
        _ if ch.is_control() => "a control character",
        _ => "an invisible character",
    }
}

/// Every free-form string of the inventory, with its field path and its kind of cap.
fn capped_fields(inv: &Inventory) -> Vec<(String, &str, Kind)> {
    let cl = &inv.cluster;
    let mut fields: Vec<(String, &str, Kind)> = vec![
        ("cluster.name".into(), &cl.name, Kind::Name),
        (
            "cluster.kubernetes_version".into(),
            &cl.kubernetes_version,
            Kind::Name,
        ),
        (
            "cluster.cluster_domain".into(),
            &cl.cluster_domain,
            Kind::Name,
        ),
        ("cluster.pod_cidr".into(), &cl.pod_cidr, Kind::Name),
        ("cluster.service_cidr".into(), &cl.service_cidr, Kind::Name),
        (
            "cluster.node_port_range".into(),
            &cl.node_port_range,
            Kind::Name,
        ),
        (
            "cluster.kube_proxy.ipvs_scheduler".into(),
            &cl.kube_proxy.ipvs_scheduler,
            Kind::Name,
        ),
        ("ssh.user".into(), &inv.ssh.user, Kind::Name),
        ("ssh.known_hosts".into(), &inv.ssh.known_hosts, Kind::Path),
        ("binaries.dir".into(), &inv.binaries.dir, Kind::Path),
        ("chat.image".into(), &inv.chat.image, Kind::Path),
        ("chat.namespace".into(), &inv.chat.namespace, Kind::Name),
    ];
    if let Some(e) = &cl.api_endpoint {
        // NAME:PORT, with brackets around an IPv6 address.
        fields.push(("cluster.api_endpoint".into(), e, Kind::Name));
    }
    if let Some(k) = &inv.ssh.key {
        fields.push(("ssh.key".into(), k, Kind::Path));
    }
    for (i, san) in cl.api_sans.iter().enumerate() {
        fields.push((format!("cluster.api_sans[{i}]"), san, Kind::Name));
    }
    for (i, server) in cl.dns_upstreams.iter().flatten().enumerate() {
        fields.push((format!("cluster.dns_upstreams[{i}]"), server, Kind::Name));
    }
    for (registry, mirrors) in &cl.containerd.registry_mirrors {
        let field = format!("cluster.containerd.registry_mirrors.{registry}");
        fields.push((field.clone(), registry, Kind::Name));
        for (i, m) in mirrors.iter().enumerate() {
            fields.push((format!("{field}[{i}].url"), &m.url, Kind::Path));
            if let Some(f) = &m.ca_file {
                fields.push((format!("{field}[{i}].ca_file"), f, Kind::Path));
            }
            if let Some(f) = &m.auth_file {
                fields.push((format!("{field}[{i}].auth_file"), f, Kind::Path));
            }
        }
    }
    for (signal, value) in &cl.kubelet.eviction_hard {
        // An unknown signal (the key) is refused by the kubelet check, escaped.
        if schema::EVICTION_SIGNALS.contains(&signal.as_str()) {
            fields.push((
                format!("cluster.kubelet.eviction_hard.{signal}"),
                value,
                Kind::Name,
            ));
        }
    }
    for (i, h) in inv.hosts.iter().enumerate() {
        fields.push((format!("hosts[{i}].name"), &h.name, Kind::Name));
        if let Some(u) = &h.ssh.user {
            fields.push((format!("hosts[{i}].ssh.user"), u, Kind::Name));
        }
        if let Some(k) = &h.ssh.key {
            fields.push((format!("hosts[{i}].ssh.key"), k, Kind::Path));
        }
    }
    fields
}
