//! The parts of the container registry API (distribution spec, `/v2/`) that pulling a public
//! image needs: image references, the registry endpoint (or its mirror), anonymous bearer
//! tokens, manifests and blobs.
//!
//! Authentication follows the token flow of Docker Hub, GHCR and registry.k8s.io: a request
//! answered with `401` and `WWW-Authenticate: Bearer realm=...,service=...,scope=...` is retried
//! with `Authorization: Bearer <token>`, the token coming anonymously from the realm.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::error::FetchError;
use super::http::{http_error, read_limited, Client, Downloaded, MANIFEST_LIMIT};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

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

/// Where the registry API of `registry` is answered: `(origin, repository prefix)`. A mirror
/// from `mirrors` wins; its URL path, if any, goes in front of the repository name.
pub fn endpoint(
    registry: &str,
    mirrors: &BTreeMap<String, String>,
) -> Result<(String, String), FetchError> {
    let Some(base) = mirrors.get(registry) else {
        let origin = if registry == DOCKER_HUB {
            DOCKER_HUB_API.to_string()
        } else {
            format!("https://{registry}")
        };
        return Ok((origin, String::new()));
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

/// A `WWW-Authenticate: Bearer ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

/// Parses a Bearer challenge: `Bearer realm="https://auth/token",service="reg",scope="a:b:pull"`.
/// Values may be quoted (with `\` escapes) or bare tokens; other schemes give `None`.
pub fn parse_bearer(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut chars = params.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            return None;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        values.insert(key.to_ascii_lowercase(), value);
    }
    Some(Challenge {
        realm: values.remove("realm")?,
        service: values.remove("service"),
        scope: values.remove("scope"),
    })
}

/// Percent-encoding of a query value (RFC 3986 unreserved characters stay).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A descriptor in an index or manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An OCI image index or Docker manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

/// An OCI image manifest or Docker image manifest v2.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageManifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The `os`/`architecture` of an image configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigPlatform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// A manifest or index as the registry sent it.
pub struct Fetched {
    pub url: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// `scheme://authority` of a URL.
fn origin_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            &url[..scheme.len() + 3 + end]
        }
        None => url,
    }
}

/// One repository on one registry, with the tokens obtained for it.
///
/// A registry may redirect its API to another host that asks for a token itself
/// (registry.k8s.io sends clients to Artifact Registry). Tokens are therefore kept per origin
/// and only ever sent to the origin that asked for them; after such a redirect the session
/// talks to the redirected repository directly.
pub struct Session {
    origin: String,
    /// Repository path in URLs (mirror prefix included).
    name: String,
    /// Bearer tokens by the origin (`scheme://host:port`) whose challenge they answer.
    tokens: BTreeMap<String, String>,
}

impl Session {
    pub fn new(image: &ImageRef, mirrors: &BTreeMap<String, String>) -> Result<Self, FetchError> {
        let (origin, prefix) = endpoint(&image.registry, mirrors)?;
        Ok(Session {
            origin,
            name: format!("{prefix}{}", image.repository),
            tokens: BTreeMap::new(),
        })
    }

    pub fn manifest_url(&self, reference: &str) -> String {
        format!("{}/v2/{}/manifests/{reference}", self.origin, self.name)
    }

    pub fn blob_url(&self, digest: &str) -> String {
        format!("{}/v2/{}/blobs/{digest}", self.origin, self.name)
    }

    /// The `Authorization` value for a request to `url`, if its origin gave us a token.
    fn auth_for(&self, url: &str) -> Option<String> {
        self.tokens
            .get(origin_of(url))
            .map(|t| format!("Bearer {t}"))
    }

    /// After a `401` answered at `final_url` (the end of any redirects from `url`): makes
    /// sure a token for `final_url`'s origin is at hand (a new one when `rejected`, i.e. the
    /// request carried that origin's token), and moves the session to the redirected
    /// repository if the redirect kept the registry API layout.
    fn after_401(
        &mut self,
        client: &Client,
        url: &str,
        final_url: &str,
        resp: &ureq::Response,
        rejected: bool,
    ) -> Result<(), FetchError> {
        let origin = origin_of(final_url).to_string();
        if rejected || !self.tokens.contains_key(&origin) {
            let token = self.token(client, final_url, resp)?;
            self.tokens.insert(origin.clone(), token);
        }
        if origin != self.origin {
            let base = format!("{}/v2/{}/", self.origin, self.name);
            let final_path = final_url[origin.len()..]
                .split(['?', '#'])
                .next()
                .unwrap_or("");
            if let Some(rest) = url.strip_prefix(&base) {
                let name = final_path
                    .strip_prefix("/v2/")
                    .and_then(|p| p.strip_suffix(rest))
                    .and_then(|p| p.strip_suffix('/'))
                    .filter(|n| !n.is_empty());
                if let Some(name) = name {
                    self.origin = origin;
                    self.name = name.to_string();
                }
            }
        }
        Ok(())
    }

    /// An anonymous token for the challenge of a `401` answer at `url`.
    fn token(
        &self,
        client: &Client,
        url: &str,
        resp: &ureq::Response,
    ) -> Result<String, FetchError> {
        let refused = |message: String| FetchError::Registry {
            url: url.to_string(),
            message,
        };
        let header = resp.header("WWW-Authenticate").unwrap_or("").to_string();
        let Some(challenge) = parse_bearer(&header) else {
            return Err(refused(if header.is_empty() {
                "HTTP 401 without a WWW-Authenticate challenge".into()
            } else {
                format!("HTTP 401, and the challenge `{header}` is not a Bearer token challenge; anonymous pulls are not possible")
            }));
        };
        if !(challenge.realm.starts_with("https://") || challenge.realm.starts_with("http://")) {
            return Err(refused(format!(
                "token realm `{}` is not an http(s) URL",
                challenge.realm
            )));
        }
        let mut query = Vec::new();
        if let Some(service) = &challenge.service {
            query.push(format!("service={}", query_escape(service)));
        }
        let scope = challenge
            .scope
            .clone()
            .unwrap_or_else(|| format!("repository:{}:pull", self.name));
        query.push(format!("scope={}", query_escape(&scope)));
        let sep = if challenge.realm.contains('?') {
            '&'
        } else {
            '?'
        };
        let token_url = format!("{}{sep}{}", challenge.realm, query.join("&"));
        let resp = client.send(&token_url, &[("Accept", "application/json")], None)?;
        if resp.status() >= 400 {
            return Err(http_error(&token_url, &resp));
        }
        let body = read_limited(&token_url, resp, MANIFEST_LIMIT, || FetchError::Registry {
            url: token_url.clone(),
            message: format!("token answer larger than {MANIFEST_LIMIT} bytes"),
        })?;
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_slice(&body).map_err(|e| FetchError::Registry {
            url: token_url.clone(),
            message: format!("not a token answer: {e}"),
        })?;
        match token.token.or(token.access_token) {
            Some(t) if !t.is_empty() => Ok(t),
            _ => Err(FetchError::Registry {
                url: token_url,
                message: "the token answer holds no token".into(),
            }),
        }
    }

    /// GET with the token of the URL's origin; after a `401` the request is repeated once,
    /// with a token, at the URL that answered it.
    fn get(
        &mut self,
        client: &Client,
        url: &str,
        accept: &str,
    ) -> Result<ureq::Response, FetchError> {
        let mut target = url.to_string();
        let mut retried = false;
        loop {
            let auth = self.auth_for(&target);
            let mut headers = vec![("Accept", accept)];
            if let Some(a) = &auth {
                headers.push(("Authorization", a.as_str()));
            }
            let resp = client.send(&target, &headers, None)?;
            if resp.status() == 401 && !retried {
                let final_url = resp.get_url().to_string();
                let rejected = auth.is_some() && origin_of(&final_url) == origin_of(&target);
                self.after_401(client, &target, &final_url, &resp, rejected)?;
                target = final_url;
                retried = true;
                continue;
            }
            if resp.status() >= 400 {
                return Err(http_error(&target, &resp));
            }
            return Ok(resp);
        }
    }

    /// The manifest or index `reference` (a tag or a digest) names.
    pub fn manifest(&mut self, client: &Client, reference: &str) -> Result<Fetched, FetchError> {
        let url = self.manifest_url(reference);
        let accept = [
            OCI_INDEX,
            OCI_MANIFEST,
            DOCKER_MANIFEST_LIST,
            DOCKER_MANIFEST,
        ]
        .join(", ");
        let resp = self.get(client, &url, &accept)?;
        let content_type = resp
            .header("Content-Type")
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
        let bytes = read_limited(&url, resp, MANIFEST_LIMIT, || FetchError::Registry {
            url: url.clone(),
            message: format!("manifest larger than {MANIFEST_LIMIT} bytes"),
        })?;
        #[derive(Deserialize)]
        struct Typed {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
        }
        let typed: Typed = serde_json::from_slice(&bytes).map_err(|e| FetchError::Registry {
            url: url.clone(),
            message: format!("not a JSON manifest: {e}"),
        })?;
        let media_type = typed.media_type.or(content_type).unwrap_or_default();
        Ok(Fetched {
            url,
            media_type,
            bytes,
        })
    }

    /// Downloads a blob into `part` (resuming it). After a `401`, the URL that answered it is
    /// asked once more with a token.
    pub fn download_blob(
        &mut self,
        client: &Client,
        url: &str,
        part: &Path,
    ) -> Result<Downloaded, FetchError> {
        let auth = self.auth_for(url);
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        match client.download_with(url, &headers, part) {
            Err(FetchError::Http { status: 401, .. }) => {
                // Where the 401 came from (after redirects), and its challenge.
                let probe = client.send(url, &headers, None)?;
                if probe.status() != 401 {
                    return Err(http_error(url, &probe));
                }
                let final_url = probe.get_url().to_string();
                let rejected = auth.is_some() && origin_of(&final_url) == origin_of(url);
                self.after_401(client, url, &final_url, &probe, rejected)?;
                drop(probe);
                let auth = self.auth_for(&final_url);
                let headers: Vec<(&str, &str)> =
                    auth.iter().map(|a| ("Authorization", a.as_str())).collect();
                client.download_with(&final_url, &headers, part)
            }
            other => other,
        }
    }
}

/// The descriptor for `linux/{arch}` in an index (for arm64 the `v8` variant, or none).
pub fn select_platform<'a>(index: &'a Index, arch: &str) -> Option<&'a Descriptor> {
    let linux = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    };
    let variant_ok = |d: &&Descriptor| {
        let v = d.platform.as_ref().and_then(|p| p.variant.as_deref());
        arch != "arm64" || matches!(v, None | Some("v8"))
    };
    index
        .manifests
        .iter()
        .filter(linux)
        .find(variant_ok)
        .or_else(|| index.manifests.iter().find(linux))
}

/// `linux/amd64, linux/arm64/v8, ...` of an index, for error messages.
pub fn platforms(index: &Index) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
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
        let image = ImageRef::parse("node:24").unwrap();
        let s = Session::new(&image, &m).unwrap();
        assert_eq!(
            s.manifest_url("24"),
            "https://harbor.corp/v2/hub/library/node/manifests/24"
        );
        assert_eq!(
            s.blob_url("sha256:ab"),
            "https://harbor.corp/v2/hub/library/node/blobs/sha256:ab"
        );
    }

    #[test]
    fn bearer_challenges() {
        let c = parse_bearer(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/node:pull""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://auth.docker.io/token");
        assert_eq!(c.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(c.scope.as_deref(), Some("repository:library/node:pull"));
        // Commas inside quotes, bare values, odd spacing, escapes, case of the scheme.
        let c = parse_bearer(
            r#"bearer  realm = "https://ghcr.io/token" , scope="repository:a/b:pull,push",service=ghcr.io,x="q\"uote""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://ghcr.io/token");
        assert_eq!(c.scope.as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(c.service.as_deref(), Some("ghcr.io"));
        assert!(parse_bearer(r#"Basic realm="registry""#).is_none());
        assert!(parse_bearer(r#"Bearer service="x""#).is_none(), "no realm");
        assert!(parse_bearer(r#"Bearer realm="unterminated"#).is_none());
        assert!(parse_bearer("Bearer").is_none());
        assert_eq!(
            query_escape("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }

    #[test]
    fn platform_selection() {
        let index: Index = serde_json::from_str(
            r#"{"manifests":[
              {"digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
              {"digest":"sha256:b","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v7"}},
              {"digest":"sha256:c","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
              {"digest":"sha256:d","size":1,"platform":{"os":"windows","architecture":"amd64"}},
              {"digest":"sha256:e","size":1,"platform":{"os":"unknown","architecture":"unknown"}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(select_platform(&index, "amd64").unwrap().digest, "sha256:a");
        assert_eq!(select_platform(&index, "arm64").unwrap().digest, "sha256:c");
        assert!(select_platform(&index, "s390x").is_none());
        assert!(platforms(&index).starts_with("linux/amd64, linux/arm64/v7"));
    }
}
