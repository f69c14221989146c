//! Registry mirrors onto the nodes (`cluster.containerd.registry_mirrors`): containerd 2.x
//! reads `/etc/containerd/certs.d/<registry>/hosts.toml` (its `config_path`) on every pull,
//! so these files need no restart. Each registry gets its `hosts.toml` and one CA file per
//! mirror that names one; credentials go into the `hosts.toml` as a basic-auth header,
//! which makes that file owner-only.
//!
//! The CA and credential files are read here, once for every node, each checked: a bad
//! one is an error naming the inventory file, the field and what is expected.

use super::context::Secret;
use super::error::RenderError;
use crate::fsutil::read_regular;
use crate::inventory::{mirror_url, Cluster, RegistryMirror};
use base64::Engine;
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// containerd's `config_path` (set in `containerd.toml`).
pub const CERTS_DIR: &str = "/etc/containerd/certs.d";
/// The template of each registry's `hosts.toml`.
pub const TEMPLATE: &str = "node/hosts.toml";
/// Larger CA bundles or credential files are refused unread.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// One registry's rendering inputs.
pub struct Registry {
    /// The template's `registry` value.
    view: RegistryView,
    /// Per mirror, the `authorization` header value (`Basic …`) or null.
    auth: Vec<Option<String>>,
    /// CA files: target path and bytes.
    cas: Vec<(String, Vec<u8>)>,
}

#[derive(Serialize)]
struct RegistryView {
    /// `docker.io`
    host: String,
    /// The registry itself, tried after every mirror.
    server: String,
    mirrors: Vec<MirrorView>,
}

#[derive(Serialize)]
struct MirrorView {
    /// containerd's host URL: the mirror's, with `/v2` before its path when it has one.
    host: String,
    override_path: bool,
    /// The CA file on the host.
    ca: Option<String>,
}

impl Registry {
    /// The template's context additions: `registry`.
    pub fn view(&self) -> &impl Serialize {
        &self.view
    }

    /// The credentials, which only [`TEMPLATE`] is given.
    pub fn secrets(&self) -> Vec<Secret> {
        vec![Secret {
            key: "registry_auth",
            value: serde_json::to_value(&self.auth).expect("strings serialize"),
        }]
    }

    pub fn hosts_toml_path(&self) -> String {
        format!("{CERTS_DIR}/{}/hosts.toml", self.view.host)
    }

    /// 0600 when it holds credentials.
    pub fn hosts_toml_mode(&self) -> u32 {
        if self.auth.iter().any(Option::is_some) {
            0o600
        } else {
            0o644
        }
    }

    pub fn ca_files(&self) -> &[(String, Vec<u8>)] {
        &self.cas
    }
}

/// Every registry of the inventory, its files read and checked.
pub fn registries(cluster: &Cluster) -> Result<Vec<Registry>, RenderError> {
    cluster
        .inventory
        .cluster
        .containerd
        .registry_mirrors
        .iter()
        .map(|(host, mirrors)| registry(cluster, host, mirrors))
        .collect()
}

fn registry(
    cluster: &Cluster,
    host: &str,
    mirrors: &[RegistryMirror],
) -> Result<Registry, RenderError> {
    let mut out = Registry {
        view: RegistryView {
            host: host.to_string(),
            server: crate::fetch::registry_origin(host),
            mirrors: Vec::new(),
        },
        auth: Vec::new(),
        cas: Vec::new(),
    };
    for (i, m) in mirrors.iter().enumerate() {
        let field = format!("cluster.containerd.registry_mirrors.{host}[{i}]");
        let url = mirror_url(&m.url).map_err(|message| input(cluster, &field, message))?;
        let path = url.path().trim_end_matches('/');
        let base = url.as_str()[..url.as_str().len() - url.path().len()].to_string();
        let ca = match &m.ca_file {
            Some(file) => {
                let field = format!("{field}.ca_file");
                let bytes = read_input(cluster, &field, file)?;
                check_ca_bundle(&bytes).map_err(|why| {
                    input(
                        cluster,
                        &field,
                        format!("{}: {why}", cluster.resolve(file).display()),
                    )
                })?;
                let target = format!("{CERTS_DIR}/{host}/ca-{i}.crt");
                out.cas.push((target.clone(), bytes));
                Some(target)
            }
            None => None,
        };
        let auth = match &m.auth_file {
            Some(file) => {
                let field = format!("{field}.auth_file");
                let bytes = read_input(cluster, &field, file)?;
                let secret = cluster.resolve(file);
                check_private(&secret).map_err(|why| input(cluster, &field, why))?;
                Some(basic_auth(&bytes).map_err(|why| input(cluster, &field, why.into()))?)
            }
            None => None,
        };
        out.view.mirrors.push(MirrorView {
            host: if path.is_empty() {
                base
            } else {
                format!("{base}/v2{path}")
            },
            override_path: !path.is_empty(),
            ca,
        });
        out.auth.push(auth);
    }
    Ok(out)
}

fn input(cluster: &Cluster, field: &str, message: String) -> RenderError {
    RenderError::Input {
        file: cluster.file.clone(),
        field: field.to_string(),
        message,
    }
}

/// The bytes of an inventory-named file, refused by name when it is not a regular file.
fn read_input(cluster: &Cluster, field: &str, file: &str) -> Result<Vec<u8>, RenderError> {
    let path = cluster.resolve(file);
    read_regular(&path, MAX_FILE_BYTES)
        .map_err(|e| input(cluster, field, format!("{}: {e}", path.display())))
}

/// At least one PEM certificate, every PEM block a parseable certificate.
fn check_ca_bundle(bytes: &[u8]) -> Result<(), String> {
    let mut count = 0;
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| format!("is not a PEM file ({e}); expected CA certificates"))?;
        if pem.label != "CERTIFICATE" {
            return Err(format!(
                "holds a `{}` PEM block; expected only CERTIFICATE blocks (the CA, never its key)",
                pem.label
            ));
        }
        pem.parse_x509()
            .map_err(|e| format!("holds a certificate that does not parse ({e})"))?;
        count += 1;
    }
    if count == 0 {
        return Err("holds no PEM certificate; expected the mirror's CA certificate(s)".into());
    }
    Ok(())
}

/// A credentials file readable by others is refused, as ssh refuses such a key.
fn check_private(path: &Path) -> Result<(), String> {
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is accessible to others (mode {:o}); it holds credentials: chmod 600 it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// `user:password` on one line (a final newline allowed) as a basic-auth header value.
fn basic_auth(bytes: &[u8]) -> Result<String, &'static str> {
    const EXPECTED: &str = "expected one line `user:password`";
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "is not UTF-8 text; expected one line `user:password`")?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let Some((user, password)) = line.split_once(':') else {
        return Err(EXPECTED);
    };
    if user.is_empty() || password.is_empty() || line.chars().any(char::is_control) {
        return Err(EXPECTED);
    }
    Ok(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(line)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_one_user_password_line() {
        assert_eq!(
            basic_auth(b"bob:s3cr:et\n").unwrap(),
            "Basic Ym9iOnMzY3I6ZXQ="
        );
        for bad in [
            &b""[..],
            b"bob",
            b":pw",
            b"bob:",
            b"bob:pw\nsecond:line",
            b"bob:p\tw",
            b"\xff:pw",
        ] {
            assert!(basic_auth(bad).is_err(), "{bad:?}");
        }
    }
}
