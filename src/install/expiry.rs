//! Certificates as the hosts have them, for `status`: each deployed certificate file, each
//! kubeconfig's embedded client certificate and the kubelet's own renewed one, read back from
//! the host and named when it expires within [`crate::pki::EXPIRY_WARNING_DAYS`].

use super::remote::Remote;
use crate::render::HostPlan;
use crate::ssh::SshError;
use base64::Engine;
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The client certificate the kubelet renewed itself (rotateCertificates).
pub const KUBELET_CURRENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

/// A certificate on a host that expires soon (or has expired).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpiringCert {
    pub host: String,
    /// The file on the host (a kubeconfig: its embedded client certificate).
    pub path: String,
    pub subject: String,
    /// UTC, RFC 3339.
    pub not_after: String,
    /// Hours left; negative once expired.
    pub hours_left: i64,
}

/// The files of `plan` that hold a certificate, and the kubelet's own where it runs.
pub fn certificate_files(plan: &HostPlan) -> Vec<String> {
    let mut files: Vec<String> = plan
        .files
        .iter()
        .filter(|f| f.path.ends_with(".crt") || f.path.ends_with(".kubeconfig"))
        .map(|f| f.path.clone())
        .collect();
    if plan.services.iter().any(|s| s == "kubelet") {
        files.push(KUBELET_CURRENT.to_string());
    }
    files
}

/// Marks where one file's content starts in the combined output.
const MARK: &str = "==k8s-boot-file==";

/// Reads `paths` from the host in one command; those (and the certificates in them) that
/// expire before `now` + `within`, soonest first. Files that are missing are skipped.
pub fn expiring(
    remote: &dyn Remote,
    host: &str,
    paths: &[String],
    now: OffsetDateTime,
    within: Duration,
) -> Result<Vec<ExpiringCert>, SshError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let quoted: Vec<String> = paths.iter().map(|p| crate::ssh::shell_quote(p)).collect();
    // Only certificate lines leave the host: never a key of a pair file or a kubeconfig.
    let out = remote.exec(&format!(
        "for f in {}; do echo '{MARK}' \"$f\"; sed -n -e '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' -e '/client-certificate-data:/p' \"$f\" 2>/dev/null; done",
        quoted.join(" ")
    ))?;
    let mut found = Vec::new();
    for section in out.stdout.split(&format!("{MARK} ")).skip(1) {
        let (path, content) = section.split_once('\n').unwrap_or((section, ""));
        for der in certificates_in(content) {
            let Ok((_, cert)) = X509Certificate::from_der(&der) else {
                continue;
            };
            let not_after = cert.validity().not_after.to_datetime();
            if not_after - now < within {
                found.push(ExpiringCert {
                    host: host.to_string(),
                    path: path.trim().to_string(),
                    subject: cert.subject().to_string(),
                    not_after: crate::backup::rfc3339(not_after),
                    hours_left: (not_after - now).whole_hours(),
                });
            }
        }
    }
    found.sort_by_key(|e| e.hours_left);
    Ok(found)
}

/// The first certificate of a PEM file (a CA bundle's first, a pair file's certificate), or
/// a kubeconfig's embedded client certificate.
fn certificates_in(content: &str) -> Vec<Vec<u8>> {
    if let Some(der) = crate::pki::pem_to_der(content) {
        return vec![der];
    }
    content
        .lines()
        .filter_map(|l| l.trim().strip_prefix("client-certificate-data:"))
        .filter_map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .filter_map(|pem| crate::pki::pem_to_der(&String::from_utf8_lossy(&pem)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::fake::{FakeConnector, Shared};
    use crate::install::remote::Connector;

    /// A self-signed certificate valid until `now + left`.
    fn cert(cn: &str, now: OffsetDateTime, left: Duration) -> String {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = now - Duration::hours(1);
        params.not_after = now + left;
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn what_expires_within_the_window_is_named_soonest_first_and_no_key_leaves_the_host() {
        let now = OffsetDateTime::now_utc();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let kubeconfig = format!(
            "    client-certificate-data: {}\n",
            b64(&cert("system:node:w1", now, Duration::days(3)))
        );
        let output = format!(
            "{MARK} /etc/kubernetes/pki/ca.crt\n{}{MARK} /etc/kubernetes/kubelet.kubeconfig\n{kubeconfig}{MARK} {KUBELET_CURRENT}\n{}{MARK} /etc/kubernetes/pki/missing.crt\n",
            cert("kubernetes-ca", now, Duration::days(3650)),
            cert("system:node:w1", now, Duration::hours(-2)),
        );
        let mut fake = FakeConnector::default();
        let host = Shared::default();
        host.lock()
            .unwrap()
            .replies
            .push((MARK.to_string(), output));
        fake.hosts.insert("w1".into(), host.clone());
        let cluster = crate::inventory::Cluster::from_source(
            std::path::Path::new("hosts.yaml"),
            "cluster: {name: t, kubernetes_version: v1.37.2}\nhosts:\n  - {name: w1, address: 10.0.0.21, roles: [etcd, control-plane, worker]}\n",
        )
        .unwrap();
        let r = fake.connect(&cluster.inventory.hosts[0]).unwrap();
        let paths = vec!["/etc/kubernetes/pki/ca.crt".to_string()];
        let found = expiring(r.as_ref(), "w1", &paths, now, Duration::days(30)).unwrap();
        let named: Vec<(&str, bool)> = found
            .iter()
            .map(|c| (c.path.as_str(), c.hours_left < 0))
            .collect();
        assert_eq!(
            named,
            [
                (KUBELET_CURRENT, true),
                ("/etc/kubernetes/kubelet.kubeconfig", false)
            ]
        );
        assert!(found[1].subject.contains("system:node:w1"));
        assert!((71..=72).contains(&found[1].hours_left), "{found:?}");
        // The command sends certificate lines only.
        let command = host.lock().unwrap().log.last().unwrap().clone();
        assert!(
            command.contains("BEGIN CERTIFICATE") && command.contains("client-certificate-data")
        );
        assert!(!command.contains("cat "), "{command}");
    }
}
