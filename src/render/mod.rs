//! The plan: every file that lands on every host, rendered deterministically.
//!
//! `plan` turns inventory + PKI into per-host lists of files (path, mode, owner, bytes) and
//! services; `write_tree` writes them under `OUT/hosts/<host>/<path>` with `OUT/plan.json`.
//! The installer applies the same plan, so `render` is its dry run.

pub mod context;
mod output;
pub mod rules;
mod staging;

pub use output::{check_output_dir, write_tree, OUTPUT_MARKER};

use crate::inventory::{Cluster, Host, Role};
use crate::pki::{self, profiles, Pki, PkiError};
use base64::Engine;
use context::{Shared, CONTROL_PLANE_TAINT};
use rules::{
    KubeconfigRule, Server, EMBEDDED, FILES, KUBECONFIGS, MANIFESTS, PKI_DIR, SERVICE_ORDER,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("template override {path}: {message}")]
    Override { path: PathBuf, message: String },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("--out {}: {reason}", path.display())]
    Output { path: PathBuf, reason: String },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One file to install.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    /// Absolute path on the host (relative path for cluster-level files).
    pub path: String,
    #[serde(serialize_with = "octal")]
    pub mode: u32,
    pub owner: &'static str,
    pub sha256: String,
    /// Services to restart when this file changes.
    pub restarts: Vec<String>,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

fn octal<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

impl PlannedFile {
    fn new(
        path: impl Into<String>,
        mode: u32,
        bytes: Vec<u8>,
        restarts: Vec<String>,
    ) -> PlannedFile {
        PlannedFile {
            path: path.into(),
            mode,
            owner: "root:root",
            sha256: hex(&Sha256::digest(&bytes)),
            restarts,
            bytes,
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub name: String,
    pub address: String,
    pub roles: Vec<&'static str>,
    /// Sorted by path.
    pub files: Vec<PlannedFile>,
    /// Services to enable, in start order.
    pub services: Vec<String>,
    /// Node labels and taints the cluster phase applies (kubelets may not set role labels).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_taints: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub kubernetes_version: String,
    pub api_endpoint: String,
    pub hosts: Vec<HostPlan>,
    /// `admin.kubeconfig` and `manifests/*.yaml`.
    pub cluster_files: Vec<PlannedFile>,
}

/// The template set: embedded templates, optionally overridden from a directory.
pub struct Templates {
    tera: tera::Tera,
    /// Overridden template names and the files they came from: errors in those are the
    /// user's input and name the file.
    overridden: BTreeMap<String, PathBuf>,
}

impl Templates {
    pub fn load(overrides: Option<&Path>) -> Result<Templates, RenderError> {
        let mut sources: BTreeMap<String, String> = EMBEDDED
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        let mut overridden = BTreeMap::new();
        if let Some(dir) = overrides {
            if !dir.is_dir() {
                return Err(RenderError::Override {
                    path: dir.to_path_buf(),
                    message: "--templates wants a directory of template overrides; \
                              this is not one"
                        .into(),
                });
            }
            for path in walk(dir)? {
                let name = path
                    .strip_prefix(dir)
                    .expect("walk yields paths under dir")
                    .to_string_lossy()
                    .into_owned();
                if !sources.contains_key(&name) {
                    return Err(RenderError::Override {
                        path,
                        message: format!(
                            "`{name}` is not a template name; overridable names: {}",
                            sources.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
                if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                    return Err(RenderError::Override {
                        path,
                        message: "not a regular file".into(),
                    });
                }
                let text = match fs::read(&path).map(String::from_utf8) {
                    Ok(Ok(text)) => text,
                    Ok(Err(_)) => {
                        return Err(RenderError::Override {
                            path,
                            message: "not UTF-8 text".into(),
                        })
                    }
                    Err(source) => return Err(RenderError::Io { path, source }),
                };
                sources.insert(name.clone(), text);
                overridden.insert(name, path);
            }
        }
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![]);
        let mut templates = Templates {
            tera: tera::Tera::default(),
            overridden,
        };
        for (name, text) in &sources {
            tera.add_raw_template(name, text)
                .map_err(|e| templates.error(name, tera_message(&e)))?;
        }
        templates.tera = tera;
        Ok(templates)
    }

    /// An error in template `name`: an override's names its file (invalid input), a built-in
    /// one's names the template.
    fn error(&self, name: &str, message: String) -> RenderError {
        match self.overridden.get(name) {
            Some(path) => RenderError::Override {
                path: path.clone(),
                message,
            },
            None => RenderError::Template {
                name: name.to_string(),
                message,
            },
        }
    }

    fn render(&self, name: &str, ctx: &tera::Context) -> Result<Vec<u8>, RenderError> {
        self.tera
            .render(name, ctx)
            .map(String::into_bytes)
            // Tera quotes the value a filter choked on: never let that be key material.
            .map_err(|e| self.error(name, redact_secrets(&tera_message(&e), ctx)))
    }

    fn source(&self, name: &str) -> Result<Vec<u8>, RenderError> {
        // Templates without markup (like the chat server code) are rendered with an empty
        // context, which returns them unchanged.
        self.render(name, &tera::Context::new())
    }
}

/// Context keys whose values are secrets (the encryption key, private keys in base64).
const SECRET_KEYS: &[&str] = &["encryption_key", "key_data", "key_b64"];

/// `message` with every secret value of `ctx` replaced by `<redacted>`.
fn redact_secrets(message: &str, ctx: &tera::Context) -> String {
    fn secrets<'a>(value: &'a serde_json::Value, key: &str, out: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::String(s) if SECRET_KEYS.contains(&key) && !s.is_empty() => {
                out.push(s)
            }
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    secrets(v, k, out);
                }
            }
            serde_json::Value::Array(items) => {
                for v in items {
                    secrets(v, key, out);
                }
            }
            _ => {}
        }
    }
    let json = ctx.clone().into_json();
    let mut found = Vec::new();
    secrets(&json, "", &mut found);
    let mut message = message.to_string();
    for secret in found {
        message = message.replace(secret, "<redacted>");
    }
    // A value derived from a secret (a slice, a truncation) matches none of them: values
    // quoted as "got `...` but expected" are never shown.
    const QUOTE: &str = "got `";
    const END: &str = "` but expected";
    let mut shown = String::with_capacity(message.len());
    let mut rest = message.as_str();
    while let Some(start) = rest.find(QUOTE) {
        let Some(len) = rest[start + QUOTE.len()..].find(END) else {
            break;
        };
        shown.push_str(&rest[..start]);
        shown.push_str("got a value (not shown)");
        rest = &rest[start + QUOTE.len() + len + 1..];
    }
    shown.push_str(rest);
    shown
}

fn tera_message(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>, RenderError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Io { path, source }
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Reads PKI files once: every host's plan needs the same CA and certificates again.
struct PkiFiles<'a> {
    pki: &'a Pki,
    read: std::cell::RefCell<BTreeMap<String, Vec<u8>>>,
}

impl PkiFiles<'_> {
    fn read(&self, name: &str) -> Result<Vec<u8>, PkiError> {
        if let Some(bytes) = self.read.borrow().get(name) {
            return Ok(bytes.clone());
        }
        let bytes = self.pki.read(name)?;
        self.read
            .borrow_mut()
            .insert(name.to_string(), bytes.clone());
        Ok(bytes)
    }
}

/// Builds the complete plan. The PKI must exist (`Pki::ensure`).
pub fn plan(cluster: &Cluster, pki: &Pki, templates: &Templates) -> Result<Plan, RenderError> {
    let pki = &PkiFiles {
        pki,
        read: Default::default(),
    };
    let shared = Shared::new(cluster);
    let ca_b64 = b64(&pki.read(&format!(
        "{}.crt",
        profiles::ca_profile(profiles::CaKind::Kubernetes).file
    ))?);
    let leaves = profiles::leaf_certs(cluster);
    let encryption_key = String::from_utf8_lossy(&pki.read(pki::ENCRYPTION_KEY)?)
        .trim()
        .to_string();

    let mut hosts = Vec::new();
    for host in &cluster.inventory.hosts {
        let mut ctx = tera::Context::from_serialize(shared.context(cluster.profile, Some(host)))
            .expect("context serializes");
        ctx.insert("encryption_key", &encryption_key);
        let mut files: Vec<PlannedFile> = Vec::new();
        for rule in FILES.iter().filter(|r| has_any(host, r.roles)) {
            let bytes = templates.render(rule.template, &ctx)?;
            files.push(PlannedFile::new(
                rule.target,
                rule.mode,
                bytes,
                rule.service.map(String::from).into_iter().collect(),
            ));
        }
        for rule in KUBECONFIGS.iter().filter(|r| has_any(host, r.roles)) {
            let server = match rule.server {
                Server::LocalOnControlPlane => context::api_server_url(&shared.cluster, host),
                Server::Endpoint => shared.cluster.api_endpoint_url.clone(),
            };
            let leaf = leaf_of(&leaves, rule, &host.name);
            let bytes = kubeconfig(templates, pki, &shared.cluster.name, leaf, &server, &ca_b64)?;
            files.push(PlannedFile::new(
                rule.target,
                0o600,
                bytes,
                rule.service.map(String::from).into_iter().collect(),
            ));
        }
        for path in pki_deliveries(host, &leaves) {
            let bytes = pki.read(&path)?;
            let mode = if path.ends_with(".key") { 0o600 } else { 0o644 };
            files.push(PlannedFile::new(
                format!("{PKI_DIR}/{path}"),
                mode,
                bytes,
                vec![],
            ));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));

        let services: Vec<String> = SERVICE_ORDER
            .iter()
            .filter(|s| files.iter().any(|f| f.restarts.iter().any(|r| r == *s)))
            .map(|s| s.to_string())
            .collect();
        link_restarts(&mut files);
        let (node_labels, node_taints) = node_roles(host);
        hosts.push(HostPlan {
            name: host.name.clone(),
            address: host.address.to_string(),
            roles: host.roles.iter().map(|r| r.as_str()).collect(),
            files,
            services,
            node_labels,
            node_taints,
        });
    }

    let mut cluster_ctx = tera::Context::from_serialize(shared.context(cluster.profile, None))
        .expect("context serializes");
    let metrics_server = profiles::METRICS_SERVER_CERT;
    cluster_ctx.insert(
        "metrics_server",
        &serde_json::json!({
            "cert_b64": b64(&pki.read(&format!("{metrics_server}.crt"))?),
            "key_b64": b64(&pki.read(&format!("{metrics_server}.key"))?),
            "ca_b64": ca_b64,
        }),
    );
    cluster_ctx.insert(
        "chat_server_js",
        &String::from_utf8_lossy(&templates.source("workloads/chat/server.js")?),
    );
    let mut cluster_files = Vec::new();
    let admin = KUBECONFIGS
        .iter()
        .find(|k| k.cert == "admin")
        .expect("admin kubeconfig rule");
    cluster_files.push(PlannedFile::new(
        "admin.kubeconfig",
        0o600,
        kubeconfig(
            templates,
            pki,
            &shared.cluster.name,
            leaf_of(&leaves, admin, ""),
            &shared.cluster.api_endpoint_url,
            &ca_b64,
        )?,
        vec![],
    ));
    for name in MANIFESTS {
        if *name == rules::CHAT_MANIFEST && !cluster.inventory.chat.enabled {
            continue;
        }
        let bytes = templates.render(name, &cluster_ctx)?;
        // Manifests may carry Secrets (metrics-server's serving key): owner-only, like the
        // admin kubeconfig.
        cluster_files.push(PlannedFile::new(*name, 0o600, bytes, vec![]));
    }

    Ok(Plan {
        cluster: shared.cluster.name.clone(),
        kubernetes_version: shared.cluster.version.clone(),
        api_endpoint: cluster.api_endpoint.to_string(),
        hosts,
        cluster_files,
    })
}

fn has_any(host: &Host, roles: &[Role]) -> bool {
    roles.iter().any(|r| host.has(*r))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A kubeconfig for `leaf`'s client certificate; the user is its common name.
fn kubeconfig(
    templates: &Templates,
    pki: &PkiFiles,
    cluster_name: &str,
    leaf: &profiles::LeafCert,
    server: &str,
    ca_b64: &str,
) -> Result<Vec<u8>, RenderError> {
    let mut ctx = tera::Context::new();
    ctx.insert("cluster_name", cluster_name);
    ctx.insert("server", server);
    ctx.insert("user", &leaf.common_name);
    ctx.insert("ca_data", ca_b64);
    ctx.insert("cert_data", &b64(&pki.read(&format!("{}.crt", leaf.file))?));
    ctx.insert("key_data", &b64(&pki.read(&format!("{}.key", leaf.file))?));
    templates.render("kubeconfig.yaml", &ctx)
}

/// The leaf certificate a kubeconfig rule names, for `host`.
fn leaf_of<'a>(
    leaves: &'a [profiles::LeafCert],
    rule: &KubeconfigRule,
    host: &str,
) -> &'a profiles::LeafCert {
    let stem = rule.cert.replace("{host}", host);
    leaves
        .iter()
        .find(|l| l.file == stem)
        .expect("every kubeconfig rule names a profile of the PKI table")
}

/// PKI files (relative to the PKI directory) a host receives.
fn pki_deliveries(host: &Host, leaves: &[profiles::LeafCert]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ca in profiles::CAS {
        if has_any(host, ca.cert_to) {
            out.insert(format!("{}.crt", ca.file));
        }
        if has_any(host, ca.key_to) {
            out.insert(format!("{}.key", ca.file));
        }
    }
    for leaf in leaves.iter().filter(|l| l.hosts.contains(&host.name)) {
        out.insert(format!("{}.crt", leaf.file));
        out.insert(format!("{}.key", leaf.file));
    }
    if host.has(Role::ControlPlane) {
        out.insert(pki::SA_KEY.into());
        out.insert(pki::SA_PUB.into());
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_errors_never_show_secret_values_or_quoted_values() {
        let mut ctx = tera::Context::new();
        ctx.insert("encryption_key", "c2VjcmV0LWtleS1ieXRlcw==");
        ctx.insert(
            "metrics_server",
            &serde_json::json!({"key_b64": "S0VZREFUQQ=="}),
        );
        ctx.insert("name", "t");
        let message = "a `c2VjcmV0LWtleS1ieXRlcw==` b {\"key_b64\":\"S0VZREFUQQ==\"} \
                       c got `\"c2Vj\"` but expected a f64; `name` not found";
        let shown = redact_secrets(message, &ctx);
        assert!(
            !shown.contains("c2Vj") && !shown.contains("S0VZ"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(
            shown.ends_with("c got a value (not shown) but expected a f64; `name` not found"),
            "{shown}"
        );
    }
}
