//! Image references (`[registry/]repository:tag`, normalized like containerd) and the
//! endpoint that answers a registry's API, upstream or a configured mirror.

use std::collections::BTreeMap;

use crate::fetch::error::FetchError;

/// Docker Hub's name in image references, and the host that answers its registry API.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API: &str = "https://registry-1.docker.io";

/// A parsed `[registry/]repository:tag`, normalized the way containerd names images
/// (`node:24` is `docker.io/library/node:24`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl ImageRef {
    pub fn parse(reference: &str) -> Result<ImageRef, FetchError> {
        let bad = |message: &str| FetchError::Reference {
            reference: reference.to_string(),
            message: message.to_string(),
        };
        if reference.contains('@') {
            return Err(bad(
                "a digest in the reference is not supported; give NAME:TAG (expected digests belong in the pin table)",
            ));
        }
        let (name, tag) = match reference.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => return Err(bad("a tag is required (NAME:TAG)")),
        };
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(bad("the tag may hold letters, digits, `_`, `.` and `-`"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_ascii_lowercase(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if !is_registry_host(&registry) {
            return Err(bad(
                "the registry may hold letters, digits, `.` and `-`, then an optional `:PORT`",
            ));
        }
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
                    && c.as_bytes()[0].is_ascii_alphanumeric()
            });
        if !repo_ok {
            return Err(bad(
                "the repository name may hold lowercase letters, digits and `._-/`",
            ));
        }
        Ok(ImageRef {
            registry,
            repository,
            tag: tag.to_string(),
        })
    }

    /// `registry.k8s.io/pause:3.10.2`, `docker.io/library/node:24-bookworm-slim`.
    pub fn full(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// `HOST[:PORT]` of a registry: DNS labels or `[IPv6]`, and a decimal port.
fn is_registry_host(registry: &str) -> bool {
    let (host_ok, port) = match registry.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) => (v6.parse::<std::net::Ipv6Addr>().is_ok(), port),
            None => return false,
        },
        None => {
            let end = registry.find(':').unwrap_or(registry.len());
            let (host, port) = registry.split_at(end);
            let label_ok = |label: &str| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            };
            (host.split('.').all(label_ok), port)
        }
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
        });
    host_ok && port_ok
}

/// The registry API's own base URL of a registry host: Docker Hub answers on
/// `registry-1.docker.io`, every other registry on its name.
pub fn origin(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API.to_string()
    } else {
        format!("https://{registry}")
    }
}

/// Where the registry API of `registry` is answered: `(origin, repository prefix)`. A mirror
/// from `mirrors` wins; its URL path, if any, goes in front of the repository name.
pub fn endpoint(
    registry: &str,
    mirrors: &BTreeMap<String, String>,
) -> Result<(String, String), FetchError> {
    let Some(base) = mirrors.get(registry) else {
        return Ok((origin(registry), String::new()));
    };
    let bad = || FetchError::Mirror {
        component: format!("registry {registry}"),
        url: base.clone(),
    };
    let (scheme, rest) = base.split_once("://").ok_or_else(bad)?;
    if !(scheme == "http" || scheme == "https") {
        return Err(bad());
    }
    let rest = rest.trim_end_matches('/');
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() || authority.contains(['?', '#', '@']) || path.contains(['?', '#']) {
        return Err(bad());
    }
    let prefix = path.trim_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    Ok((format!("{scheme}://{authority}"), prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalized_like_containerd() {
        let r = |s: &str| ImageRef::parse(s).unwrap().full();
        assert_eq!(
            r("registry.k8s.io/pause:3.10.2"),
            "registry.k8s.io/pause:3.10.2"
        );
        assert_eq!(
            r("node:24-bookworm-slim"),
            "docker.io/library/node:24-bookworm-slim"
        );
        assert_eq!(r("docker.io/library/node:24"), "docker.io/library/node:24");
        assert_eq!(
            r("index.docker.io/bitnami/redis:7"),
            "docker.io/bitnami/redis:7"
        );
        assert_eq!(r("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(r("localhost:5000/x/y:1"), "localhost:5000/x/y:1");
        assert_eq!(r("[fd00::1]:5000/x:1"), "[fd00::1]:5000/x:1");
        assert_eq!(
            r("ghcr.io/flannel-io/flannel:v0.28.10"),
            "ghcr.io/flannel-io/flannel:v0.28.10"
        );
        let p = ImageRef::parse("registry.k8s.io/coredns/coredns:v1.14.2").unwrap();
        assert_eq!(
            (p.registry.as_str(), p.repository.as_str(), p.tag.as_str()),
            ("registry.k8s.io", "coredns/coredns", "v1.14.2")
        );
        for bad in [
            "registry.k8s.io/pause",
            "localhost:5000/pause",
            "node@sha256:abcd",
            "node:24@sha256:abcd",
            "Node:24",
            "node:",
            "node:-x",
            "/node:1",
            "a//b:1",
            "evil\n.io/x:1",
            "reg istry.io/x:1",
            "-reg.io/x:1",
            "reg.io:port/x:1",
            "reg.io:/x:1",
            "a..b.io/x:1",
        ] {
            assert!(
                matches!(ImageRef::parse(bad), Err(FetchError::Reference { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn endpoints_and_mirrors() {
        let none = BTreeMap::new();
        assert_eq!(
            endpoint("docker.io", &none).unwrap(),
            ("https://registry-1.docker.io".into(), String::new())
        );
        assert_eq!(
            endpoint("ghcr.io", &none).unwrap(),
            ("https://ghcr.io".into(), String::new())
        );
        let mut m = BTreeMap::new();
        m.insert(
            "docker.io".to_string(),
            "https://harbor.corp/hub/".to_string(),
        );
        m.insert("ghcr.io".to_string(), "http://10.0.0.5:5000".to_string());
        m.insert("quay.io".to_string(), "ftp://x".to_string());
        assert_eq!(
            endpoint("docker.io", &m).unwrap(),
            ("https://harbor.corp".into(), "hub/".into())
        );
        assert_eq!(
            endpoint("ghcr.io", &m).unwrap(),
            ("http://10.0.0.5:5000".into(), String::new())
        );
        let err = endpoint("quay.io", &m).unwrap_err().to_string();
        assert!(
            err.contains("registry quay.io") && err.contains("ftp://x"),
            "{err}"
        );
    }
}
