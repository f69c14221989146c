//! The files and directories on this machine that an inventory names: the one list that
//! commands which delete or replace local directories (`render --out`) check against.

use super::cluster::Cluster;
use std::path::PathBuf;

/// Every inventory field that names a local file or directory, as written in the file
/// (`hosts[].ssh.key` stands for each host's, `registry_mirrors.*` for each registry's). A unit test fails when the schema gains a
/// field that is in neither this list nor the list of fields that are not paths.
pub const PATH_FIELDS: &[&str] = &[
    "binaries.dir",
    "ssh.key",
    "ssh.known_hosts",
    "hosts[].ssh.key",
    "cluster.containerd.registry_mirrors.*[].ca_file",
    "cluster.containerd.registry_mirrors.*[].auth_file",
];

/// One local path the inventory names: the field (`hosts[2].ssh.key`) and the path as the
/// commands use it (relative to the inventory's directory, `~/` expanded where the field
/// allows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPath {
    pub field: String,
    pub path: PathBuf,
}

impl Cluster {
    /// Every local path of [`PATH_FIELDS`] that the inventory sets or defaults, in that
    /// order.
    pub fn local_paths(&self) -> Vec<NamedPath> {
        let inv = &self.inventory;
        let named = |field: String, path: PathBuf| NamedPath { field, path };
        let mut out = vec![named(
            "binaries.dir".into(),
            self.resolve(&inv.binaries.dir),
        )];
        if let Some(key) = &inv.ssh.key {
            out.push(named("ssh.key".into(), self.expand_path(key)));
        }
        out.push(named(
            "ssh.known_hosts".into(),
            self.expand_path(&inv.ssh.known_hosts),
        ));
        for (i, h) in inv.hosts.iter().enumerate() {
            if let Some(key) = &h.ssh.key {
                out.push(named(format!("hosts[{i}].ssh.key"), self.expand_path(key)));
            }
        }
        for (registry, mirrors) in &inv.cluster.containerd.registry_mirrors {
            for (i, m) in mirrors.iter().enumerate() {
                let field = format!("cluster.containerd.registry_mirrors.{registry}[{i}]");
                for (name, file) in [("ca_file", &m.ca_file), ("auth_file", &m.auth_file)] {
                    if let Some(file) = file {
                        out.push(named(format!("{field}.{name}"), self.resolve(file)));
                    }
                }
            }
        }
        out
    }

    /// A path of an SSH field: `~/` is the user's home; anything else as [`Cluster::resolve`].
    pub fn expand_path(&self, p: &str) -> PathBuf {
        match p.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(rest),
            None => self.resolve(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `field` with each list index replaced by `[]` and each registry by `*`:
    /// `hosts[2].ssh.key` -> `hosts[].ssh.key`.
    fn generic(field: &str) -> String {
        const MIRRORS: &str = "cluster.containerd.registry_mirrors.";
        if let Some((_, rest)) = field
            .strip_prefix(MIRRORS)
            .and_then(|rest| rest.split_once('['))
        {
            return generic_indices(&format!("{MIRRORS}*[{rest}"));
        }
        generic_indices(field)
    }

    fn generic_indices(field: &str) -> String {
        let mut out = String::with_capacity(field.len());
        let mut in_index = false;
        for c in field.chars() {
            match c {
                '[' => {
                    in_index = true;
                    out.push('[');
                }
                ']' => {
                    in_index = false;
                    out.push(']');
                }
                _ if in_index => {}
                c => out.push(c),
            }
        }
        out
    }

    /// Fields of the schema that are not local paths. Adding a field to the schema fails
    /// `every_schema_field_is_classified` until it is listed here or in [`PATH_FIELDS`].
    const NOT_PATH_FIELDS: &[&str] = &[
        "cluster.name",
        "cluster.kubernetes_version",
        "cluster.cluster_domain",
        "cluster.pod_cidr",
        "cluster.service_cidr",
        "cluster.node_cidr_mask_size",
        "cluster.node_port_range",
        "cluster.api_endpoint",
        "cluster.api_sans",
        "cluster.kube_proxy.mode",
        "cluster.kube_proxy.ipvs_scheduler",
        "cluster.kube_proxy.conntrack_max_per_core",
        "cluster.dns_upstreams",
        "cluster.kubelet.allow_cgroup_v1",
        "cluster.kubelet.eviction_hard",
        "cluster.kubelet.image_gc_high_threshold_percent",
        "cluster.kubelet.image_gc_low_threshold_percent",
        "cluster.containerd.restrict_oom_score_adj",
        "cluster.containerd.registry_mirrors.*[].url",
        "cluster.allow_loopback_hosts",
        "ssh.user",
        "ssh.port",
        "ssh.sudo",
        "pki.ca_validity_days",
        "pki.cert_validity_days",
        "chat.enabled",
        "chat.replicas",
        "chat.port",
        "chat.node_port",
        "chat.lb_node_port",
        "chat.image",
        "chat.namespace",
        "ingress.enabled",
        "ingress.replicas",
        "ingress.http_port",
        "ingress.https_port",
        "ingress.http_node_port",
        "ingress.https_node_port",
        "pki.cert_validity_minutes",
        "etcd.backup.enabled",
        "etcd.backup.schedule",
        "etcd.backup.keep",
        "hosts[].name",
        "hosts[].address",
        "hosts[].roles",
        "hosts[].ssh.user",
        "hosts[].ssh.port",
        "hosts[].ssh.sudo",
    ];

    /// The leaf fields of a serialized inventory (maps that are values, such as
    /// `eviction_hard`, and lists of scalars count as one leaf).
    fn leaves(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) if !prefix.ends_with("eviction_hard") => {
                for (k, v) in map {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&name, v, out);
                }
            }
            serde_json::Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                for (i, item) in items.iter().enumerate() {
                    leaves(&format!("{prefix}[{i}]"), item, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }

    fn cluster(yaml: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts.yaml");
        std::fs::write(&file, yaml).unwrap();
        Cluster::load(&file).unwrap()
    }

    fn with_every_path() -> String {
        crate::EXAMPLE_INVENTORY
            .replacen("key: ~/.ssh/id_ed25519", "key: keys/id", 1)
            .replacen("roles: [lb]", "roles: [lb]\n    ssh: {key: /srv/lb-key}", 1)
            .replacen(
                "  kubelet:\n",
                "  containerd:\n    registry_mirrors:\n      registry.k8s.io: [{url: \"https://r.corp/k8s\", \
                 ca_file: certs/ca.crt, auth_file: /srv/r.auth}]\n  kubelet:\n",
                1,
            )
    }

    #[test]
    fn every_schema_field_is_classified() {
        let c = cluster(&with_every_path());
        let value = serde_json::to_value(&c.inventory).unwrap();
        let mut all = Vec::new();
        leaves("", &value, &mut all);
        let mut unclassified: Vec<String> = all
            .iter()
            .map(|f| generic(f))
            .filter(|f| {
                !PATH_FIELDS.contains(&f.as_str()) && !NOT_PATH_FIELDS.contains(&f.as_str())
            })
            .collect();
        unclassified.dedup();
        assert!(
            unclassified.is_empty(),
            "inventory fields neither in PATH_FIELDS nor in NOT_PATH_FIELDS: {unclassified:?}"
        );
        for f in PATH_FIELDS {
            assert!(
                all.iter().any(|a| generic(a) == *f),
                "{f} is not a field of the schema"
            );
        }
    }

    #[test]
    fn local_paths_lists_every_path_field_resolved() {
        let c = cluster(&with_every_path());
        let paths = c.local_paths();
        let fields: Vec<String> = paths.iter().map(|p| generic(&p.field)).collect();
        for f in PATH_FIELDS {
            assert!(fields.iter().any(|g| g == f), "{f} missing from {paths:?}");
        }
        let dir = c.dir().to_path_buf();
        let by = |f: &str| paths.iter().find(|p| p.field == f).unwrap().path.clone();
        assert_eq!(by("binaries.dir"), dir.join("binaries"));
        assert_eq!(by("ssh.key"), dir.join("keys/id"));
        assert_eq!(by("hosts[0].ssh.key"), PathBuf::from("/srv/lb-key"));
        assert!(by("ssh.known_hosts").ends_with(".ssh/known_hosts"));
        assert!(!by("ssh.known_hosts").starts_with(&dir));
    }

    #[test]
    fn generic_drops_indexes() {
        assert_eq!(generic("hosts[12].ssh.key"), "hosts[].ssh.key");
        assert_eq!(generic("ssh.key"), "ssh.key");
    }
}
