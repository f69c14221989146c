//! File names the hosts' names become: a per-host certificate of the PKI table
//! (`kubelet-{host}`, `kubelet-server-{host}`, `etcd/server-{host}`...) must be one file of
//! one host. `server-m1`'s kubelet client certificate and `m1`'s kubelet serving certificate
//! would both be `kubelet-server-m1`: one would overwrite the other.

use super::checker::Checker;
use crate::catalog::NODE_ROLES;
use crate::inventory::schema::Host;
use crate::pki::profiles::{Scope, CAS, LEAVES};
use std::collections::HashMap;

/// Who a PKI file stem belongs to.
#[derive(Clone, Copy)]
enum Owner {
    Cluster,
    /// The host's index and the profile's pattern.
    Host(usize, &'static str),
}

/// Every stem the PKI would write for these hosts, refusing the second owner of a stem.
pub(super) fn check_file_names(c: &mut Checker, hosts: &[Host]) {
    let mut owners: HashMap<String, Owner> = HashMap::new();
    let cluster_stems = CAS.iter().map(|ca| ca.file).chain(
        LEAVES
            .iter()
            .filter(|p| matches!(p.scope, Scope::Cluster))
            .map(|p| p.file),
    );
    for stem in cluster_stems {
        owners.insert(stem.to_string(), Owner::Cluster);
    }
    for (i, h) in hosts.iter().enumerate() {
        if hosts[..i].iter().any(|earlier| earlier.name == h.name) {
            continue; // a duplicate name, reported as such
        }
        for p in LEAVES {
            let applies = match p.scope {
                Scope::Cluster => false,
                Scope::PerHost(role) => h.has(role),
                Scope::PerNode => h.has_any(NODE_ROLES),
            };
            if !applies {
                continue;
            }
            let stem = p.file.replace("{host}", &h.name);
            match owners.get(&stem).copied() {
                None => {
                    owners.insert(stem, Owner::Host(i, p.file));
                }
                Some(Owner::Host(j, _)) if j == i => {}
                Some(owner) => {
                    let other = match owner {
                        Owner::Cluster => "the cluster-wide certificate of that name".to_string(),
                        Owner::Host(j, pattern) => {
                            let field = format!("hosts[{j}].name");
                            format!(
                                "`{pattern}` of hosts[{j}] `{}` ({})",
                                hosts[j].name,
                                c.line_of(&field)
                            )
                        }
                    };
                    c.error(
                        &format!("hosts[{i}].name"),
                        format!(
                            "`{}` makes the PKI file {stem}.crt (`{}`), which is also {other}; rename one host",
                            h.name, p.file
                        ),
                    );
                }
            }
        }
    }
}
