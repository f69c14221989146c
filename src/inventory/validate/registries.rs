//! `cluster.containerd.registry_mirrors`: registry hosts, mirror URLs, and which mirror may
//! carry a CA or credentials. The files they name are read when the plan is rendered.

use super::checker::Checker;
use super::names::is_dns_name;
use crate::inventory::schema::{self, RegistryMirror};
use std::net::Ipv4Addr;

const FIELD: &str = "cluster.containerd.registry_mirrors";

pub(super) fn check_registry_mirrors(c: &mut Checker, cl: &schema::Cluster) {
    for (registry, mirrors) in &cl.containerd.registry_mirrors {
        let field = format!("{FIELD}.{registry}");
        if !is_registry_host(registry) {
            c.error(
                &field,
                format!(
                    "`{registry}` must be a registry host as image names carry it, in lower \
                     case, with an optional port: registry.k8s.io, docker.io, \
                     registry.corp:5000"
                ),
            );
        }
        if mirrors.is_empty() {
            c.error(
                &field,
                "lists no mirror; give at least one `url`, or remove the entry",
            );
        }
        for (i, mirror) in mirrors.iter().enumerate() {
            check_mirror(c, &format!("{field}[{i}]"), mirror);
        }
    }
}

/// `name[:port]` or `a.b.c.d[:port]`, as containerd names the directory of its hosts.toml.
pub(crate) fn is_registry_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0) && !p.starts_with('0'));
    let host_ok = (is_dns_name(host) && host == host.to_ascii_lowercase())
        || host.parse::<Ipv4Addr>().is_ok();
    port_ok && host_ok
}

fn check_mirror(c: &mut Checker, field: &str, mirror: &RegistryMirror) {
    let url_field = format!("{field}.url");
    let https = match mirror_url(&mirror.url) {
        Ok(url) => url.scheme() == "https",
        Err(why) => {
            c.error(&url_field, format!("`{}` {why}", shown(&mirror.url)));
            return;
        }
    };
    if https {
        return;
    }
    if mirror.ca_file.is_some() {
        c.error(
            &format!("{field}.ca_file"),
            "is for an https:// mirror; this one is plain http://",
        );
    }
    if mirror.auth_file.is_some() {
        c.error(
            &format!("{field}.auth_file"),
            "would send the credentials in clear text to a plain http:// mirror; use https://",
        );
    }
}

/// The mirror URL, or why it cannot be one: http(s), a host, no credentials, query or
/// fragment.
pub fn mirror_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text)
        .map_err(|e| format!("is not a URL ({e}); expected https://host[:port][/path]"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must start with https:// (or http:// for a mirror without TLS)".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host; expected https://host[:port][/path]".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "carries credentials; put `user:password` into a file named by auth_file".into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("has a query or fragment; expected https://host[:port][/path]".into());
    }
    Ok(url)
}

/// A URL as an error may quote it: without what stands before an `@` (credentials).
fn shown(text: &str) -> String {
    crate::fetch::RedactedUrl::new(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        for ok in [
            "registry.k8s.io",
            "docker.io",
            "quay.io",
            "registry.corp:5000",
            "10.0.0.5:5000",
            "localhost",
        ] {
            assert!(is_registry_host(ok), "{ok}");
        }
        for bad in [
            "",
            "Docker.io",
            "https://docker.io",
            "docker.io/library",
            "registry.corp:0",
            "registry.corp:99999",
            "registry.corp:05000",
            "registry.corp:",
            "[::1]:5000",
            "a b",
        ] {
            assert!(!is_registry_host(bad), "{bad}");
        }
    }

    #[test]
    fn mirror_urls() {
        for ok in [
            "https://registry.corp",
            "https://registry.corp:5000/",
            "https://harbor.corp/hub",
            "http://10.0.0.5:5000",
        ] {
            assert!(mirror_url(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("registry.corp:5000", "must start with https://"),
            ("ftp://registry.corp", "must start with https://"),
            ("https://user:pw@registry.corp", "auth_file"),
            ("https://registry.corp/?x=1", "query"),
            ("https://", "not a URL"),
        ] {
            let why = mirror_url(bad).unwrap_err();
            assert!(why.contains(says), "{bad}: {why}");
        }
    }
}
