//! `plan`: inventory + PKI + templates → `Plan`. Per host: the catalog's component files,
//! the host-wide files, the kubeconfigs and the PKI deliveries; then the cluster files
//! (admin kubeconfig, manifests).

use super::context::{self, Secret, Shared, CONTROL_PLANE_TAINT};
use super::error::RenderError;
use super::kubeconfig::{kubeconfig, leaf_of};
use super::model::{HostPlan, Plan, PlannedFile};
use super::pki_files::{pki_deliveries, PkiFiles};
use super::registries::{self, Registry};
use super::rules::{self, Server, FILES, KUBECONFIGS, PKI_DIR};
use super::templates::Templates;
use crate::addons;
use crate::catalog::COMPONENTS;
use crate::inventory::{Cluster, Host, Role};
use crate::pki::{self, profiles, Pki};
use std::collections::BTreeMap;

/// Builds the complete plan. The PKI must exist (`Pki::ensure`).
pub fn plan(cluster: &Cluster, pki: &Pki, templates: &Templates) -> Result<Plan, RenderError> {
    let pki = &PkiFiles::new(pki);
    let planner = Planner::new(cluster, pki, templates)?;
    let hosts = cluster
        .inventory
        .hosts
        .iter()
        .map(|host| planner.host_plan(host))
        .collect::<Result<Vec<_>, _>>()?;
    let cluster_files = planner.cluster_files()?;
    Ok(Plan {
        cluster: planner.shared.cluster.name.clone(),
        kubernetes_version: planner.shared.cluster.version.clone(),
        api_endpoint: cluster.api_endpoint.to_string(),
        hosts,
        cluster_files,
    })
}

/// What every part of the plan draws on.
struct Planner<'a> {
    cluster: &'a Cluster,
    pki: &'a PkiFiles<'a>,
    templates: &'a Templates,
    shared: Shared,
    /// The Kubernetes CA certificate, as kubeconfigs embed it.
    ca_b64: String,
    leaves: Vec<profiles::LeafCert>,
    encryption_key: String,
    /// The registry mirrors every node gets, their files read once.
    registries: Vec<Registry>,
}

impl<'a> Planner<'a> {
    fn new(
        cluster: &'a Cluster,
        pki: &'a PkiFiles<'a>,
        templates: &'a Templates,
    ) -> Result<Planner<'a>, RenderError> {
        let ca = profiles::ca_profile(profiles::CaKind::Kubernetes);
        let ca_b64 = pki.read_b64(&format!("{}.crt", ca.file))?;
        let leaves = profiles::leaf_certs(cluster);
        // Checked here too: a key `certs` kept but secretbox cannot use must stop the plan,
        // not reach the apiservers.
        let key_bytes = pki.read(pki::ENCRYPTION_KEY)?;
        pki::check_encryption_key(&key_bytes).map_err(|why| pki::PkiError::Invalid {
            path: pki.path(pki::ENCRYPTION_KEY),
            message: why.to_string(),
        })?;
        let encryption_key = String::from_utf8_lossy(&key_bytes).trim().to_string();
        Ok(Planner {
            cluster,
            pki,
            templates,
            shared: Shared::new(cluster),
            ca_b64,
            leaves,
            encryption_key,
            registries: registries::registries(cluster)?,
        })
    }

    fn host_plan(&self, host: &Host) -> Result<HostPlan, RenderError> {
        let ctx = self.host_context(host);
        let mut files = self.component_files(host, &ctx)?;
        files.extend(self.host_wide_files(host, &ctx)?);
        files.extend(self.registry_files(host, &ctx)?);
        files.extend(self.host_kubeconfigs(host)?);
        files.extend(self.pki_files(host)?);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let services = services_in_start_order(&files);
        link_restarts(&mut files);
        let (node_labels, node_taints) = node_roles(host);
        Ok(HostPlan {
            name: host.name.clone(),
            address: host.address.to_string(),
            roles: host.roles.iter().map(|r| r.as_str()).collect(),
            files,
            services,
            node_labels,
            node_taints,
        })
    }

    /// The host's context: the shared values and this host's (key material is given only
    /// to the templates that need it, see `host_secrets`).
    fn host_context(&self, host: &Host) -> tera::Context {
        tera::Context::from_serialize(self.shared.context(self.cluster.profile, Some(host)))
            .expect("context serializes")
    }

    fn host_secrets(&self) -> Vec<Secret> {
        vec![Secret {
            key: "encryption_key",
            value: self.encryption_key.clone().into(),
        }]
    }

    /// The templates of every catalog component that runs on `host`; each restarts its
    /// component's service.
    fn component_files(
        &self,
        host: &Host,
        ctx: &tera::Context,
    ) -> Result<Vec<PlannedFile>, RenderError> {
        let mut files = Vec::new();
        let secrets = self.host_secrets();
        for component in COMPONENTS.iter().filter(|c| c.runs_on(self.cluster, host)) {
            for t in component.templates {
                let bytes = self.templates.render(t.template, ctx, &secrets)?;
                let restarts = vec![component.service.to_string()];
                files.push(PlannedFile::new(t.target, t.mode, bytes, restarts));
            }
        }
        Ok(files)
    }

    /// `FILES`: host-wide files of the host's roles.
    fn host_wide_files(
        &self,
        host: &Host,
        ctx: &tera::Context,
    ) -> Result<Vec<PlannedFile>, RenderError> {
        FILES
            .iter()
            .filter(|r| host.has_any(r.roles))
            .map(|rule| {
                let bytes = self
                    .templates
                    .render(rule.template, ctx, &self.host_secrets())?;
                Ok(PlannedFile::new(rule.target, rule.mode, bytes, vec![]))
            })
            .collect()
    }

    /// On a node, each mirrored registry's `hosts.toml` and the CA files it names.
    /// containerd reads them on every pull: no restart.
    fn registry_files(
        &self,
        host: &Host,
        ctx: &tera::Context,
    ) -> Result<Vec<PlannedFile>, RenderError> {
        if !host.has_any(crate::catalog::NODE_ROLES) {
            return Ok(Vec::new());
        }
        let mut files = Vec::new();
        for registry in &self.registries {
            let mut ctx = ctx.clone();
            ctx.insert("registry", registry.view());
            let bytes = self
                .templates
                .render(registries::TEMPLATE, &ctx, &registry.secrets())?;
            files.push(PlannedFile::new(
                registry.hosts_toml_path(),
                registry.hosts_toml_mode(),
                bytes,
                vec![],
            ));
            for (target, bytes) in registry.ca_files() {
                files.push(PlannedFile::new(target, 0o644, bytes.clone(), vec![]));
            }
        }
        Ok(files)
    }

    /// `KUBECONFIGS` of the host's roles, owner-only.
    fn host_kubeconfigs(&self, host: &Host) -> Result<Vec<PlannedFile>, RenderError> {
        let values = &self.shared.cluster;
        KUBECONFIGS
            .iter()
            .filter(|r| host.has_any(r.roles))
            .map(|rule| {
                let server = match rule.server {
                    Server::LocalOnControlPlane => context::api_server_url(values, host),
                    Server::Endpoint => values.api_endpoint_url.clone(),
                };
                let leaf = leaf_of(&self.leaves, rule.cert, &host.name);
                let bytes = kubeconfig(
                    self.templates,
                    self.pki,
                    &values.name,
                    leaf,
                    &server,
                    &self.ca_b64,
                )?;
                let restarts = rule.service.map(String::from).into_iter().collect();
                Ok(PlannedFile::new(rule.target, 0o600, bytes, restarts))
            })
            .collect()
    }

    /// The certificates and keys the host receives, under `PKI_DIR`; owner-only, the
    /// certificates too (only root's processes read them; CIS 4.1.7 asks it of the CA).
    fn pki_files(&self, host: &Host) -> Result<Vec<PlannedFile>, RenderError> {
        pki_deliveries(host, &self.leaves)
            .into_iter()
            .map(|path| {
                let bytes = self.pki.read(&path)?;
                Ok(PlannedFile::new(
                    format!("{PKI_DIR}/{path}"),
                    0o600,
                    bytes,
                    vec![],
                ))
            })
            .collect()
    }

    /// `admin.kubeconfig` and the manifests (the chat's only when it is enabled).
    fn cluster_files(&self) -> Result<Vec<PlannedFile>, RenderError> {
        let ctx = self.cluster_context()?;
        let values = &self.shared.cluster;
        let mut files = Vec::new();
        for (file, cert) in rules::CLUSTER_KUBECONFIGS {
            let bytes = kubeconfig(
                self.templates,
                self.pki,
                &values.name,
                leaf_of(&self.leaves, cert, ""),
                &values.api_endpoint_url,
                &self.ca_b64,
            )?;
            files.push(PlannedFile::new(*file, 0o600, bytes, vec![]));
        }
        let secrets = self.cluster_secrets()?;
        for addon in addons::wanted(Some(&self.cluster.inventory)) {
            let name = addon.manifest.0;
            let bytes = self.templates.render(name, &ctx, &secrets)?;
            // Manifests may carry Secrets (metrics-server's serving key): owner-only, like the
            // admin kubeconfig.
            files.push(PlannedFile::new(name, 0o600, bytes, vec![]));
        }
        Ok(files)
    }

    /// The certificates of the wanted add-ons, each for its own manifest only
    /// ([`crate::addons::AddonCert`]).
    fn cluster_secrets(&self) -> Result<Vec<Secret>, RenderError> {
        let mut secrets = Vec::new();
        for cert in addons::wanted(Some(&self.cluster.inventory)).filter_map(|a| a.cert.as_ref()) {
            let ca = profiles::LEAVES
                .iter()
                .find(|p| p.file == cert.leaf)
                .map(|p| profiles::ca_profile(p.ca))
                .expect("an add-on's certificate is a LEAVES row");
            secrets.push(Secret {
                key: cert.key,
                value: serde_json::json!({
                    "cert_b64": self.pki.read_b64(&format!("{}.crt", cert.leaf))?,
                    "key_b64": self.pki.read_b64(&format!("{}.key", cert.leaf))?,
                    "ca_b64": self.pki.read_b64(&format!("{}.crt", ca.file))?,
                }),
            });
        }
        Ok(secrets)
    }

    /// The cluster-level context: no host, plus the chat server's code.
    fn cluster_context(&self) -> Result<tera::Context, RenderError> {
        let mut ctx =
            tera::Context::from_serialize(self.shared.context(self.cluster.profile, None))
                .expect("context serializes");
        ctx.insert(
            "chat_server_js",
            &String::from_utf8_lossy(&self.templates.source("workloads/chat/server.js")?),
        );
        Ok(ctx)
    }
}

/// The catalog's services that some file of the host restarts, in start order.
fn services_in_start_order(files: &[PlannedFile]) -> Vec<String> {
    COMPONENTS
        .iter()
        .map(|c| c.service)
        .filter(|s| files.iter().any(|f| f.restarts.iter().any(|r| r == s)))
        .map(String::from)
        .collect()
}

/// A file without its own service restarts every service whose files mention its path
/// (a certificate referenced by a unit or config file).
fn link_restarts(files: &mut [PlannedFile]) {
    let mut by_service: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        for s in &f.restarts {
            by_service.entry(s.clone()).or_default().push(i);
        }
    }
    let mut extra: Vec<(usize, String)> = Vec::new();
    for (i, f) in files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.restarts.is_empty())
    {
        for (service, owners) in &by_service {
            let mentioned = owners
                .iter()
                .any(|&o| String::from_utf8_lossy(&files[o].bytes).contains(&f.path));
            if mentioned {
                extra.push((i, service.clone()));
            }
        }
    }
    for (i, s) in extra {
        files[i].restarts.push(s);
    }
}

fn node_roles(host: &Host) -> (BTreeMap<String, String>, Vec<String>) {
    let mut labels = BTreeMap::new();
    let mut taints = Vec::new();
    if !(host.has(Role::ControlPlane) || host.has(Role::Worker)) {
        return (labels, taints);
    }
    if host.has(Role::ControlPlane) {
        labels.insert(CONTROL_PLANE_TAINT.to_string(), String::new());
        if !host.has(Role::Worker) {
            taints.push(format!("{CONTROL_PLANE_TAINT}:NoSchedule"));
        }
    }
    if host.has(Role::Worker) {
        labels.insert("node-role.kubernetes.io/worker".into(), String::new());
    }
    (labels, taints)
}
