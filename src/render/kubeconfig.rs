//! Kubeconfigs: a client certificate of the PKI, its key and the CA, for one server URL.

use super::context::Secret;
use super::error::RenderError;
use super::pki_files::PkiFiles;
use super::templates::Templates;
use crate::pki::profiles::LeafCert;

/// A kubeconfig for `leaf`'s client certificate; the user is its common name.
pub(super) fn kubeconfig(
    templates: &Templates,
    pki: &PkiFiles,
    cluster_name: &str,
    leaf: &LeafCert,
    server: &str,
    ca_b64: &str,
) -> Result<Vec<u8>, RenderError> {
    let mut ctx = tera::Context::new();
    ctx.insert("cluster_name", cluster_name);
    ctx.insert("server", server);
    ctx.insert("user", &leaf.common_name);
    ctx.insert("ca_data", ca_b64);
    ctx.insert("cert_data", &pki.read_b64(&format!("{}.crt", leaf.file))?);
    let key = Secret {
        key: "key_data",
        value: pki.read_b64(&format!("{}.key", leaf.file))?.into(),
    };
    templates.render("kubeconfig.yaml", &ctx, &[key])
}

/// The leaf certificate a kubeconfig rule names, for `host`.
pub(super) fn leaf_of<'a>(leaves: &'a [LeafCert], cert: &str, host: &str) -> &'a LeafCert {
    let stem = cert.replace("{host}", host);
    leaves
        .iter()
        .find(|l| l.file == stem)
        .expect("every kubeconfig rule names a profile of the PKI table")
}
