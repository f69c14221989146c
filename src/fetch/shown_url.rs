//! How a download URL is shown and recorded: without the credentials it may carry.
//!
//! A mirror may be given as `https://user:password@mirror/` (ureq sends the user info as
//! basic authentication), and a CDN's redirect target may carry a signed query
//! (`?X-Amz-Signature=...`). [`RedactedUrl`] is the form every progress line, error and
//! `versions.json` entry uses: the user info replaced by `***`, each query value by `***`
//! (except the token request's `service` and `scope`, which k8s-boot writes itself), the
//! fragment dropped. A URL without any of these stays exactly as it is.

use std::fmt;

/// Query parameters whose values are shown: the ones k8s-boot puts in a token request.
const SHOWN_QUERY_KEYS: &[&str] = &["service", "scope"];

/// A URL as it may be shown: see the module documentation. Holds only the redacted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    pub fn new(url: &str) -> RedactedUrl {
        let (url, _fragment) = url.split_once('#').unwrap_or((url, ""));
        let (before_query, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let mut out = String::with_capacity(url.len());
        match before_query.split_once("://") {
            Some((scheme, rest)) => {
                let authority_end = rest.find('/').unwrap_or(rest.len());
                let (authority, path) = rest.split_at(authority_end);
                out.push_str(scheme);
                out.push_str("://");
                match authority.rsplit_once('@') {
                    Some((_userinfo, host)) => {
                        out.push_str("***@");
                        out.push_str(host);
                    }
                    None => out.push_str(authority),
                }
                out.push_str(path);
            }
            None => out.push_str(before_query),
        }
        if let Some(query) = query {
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if SHOWN_QUERY_KEYS.contains(&k) => format!("{k}={v}"),
                    Some((k, _)) => format!("{k}=***"),
                    None => pair.to_string(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        RedactedUrl(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_never_shown() {
        for (url, shown) in [
            (
                "https://user:s3cret@mirror.corp/k8s/kubelet",
                "https://***@mirror.corp/k8s/kubelet",
            ),
            ("http://t0ken@127.0.0.1:8080/x", "http://***@127.0.0.1:8080/x"),
            ("https://a:b@c@host/x", "https://***@host/x"),
            (
                "https://cdn/x?X-Amz-Signature=abc&X-Amz-Expires=300#frag",
                "https://cdn/x?X-Amz-Signature=***&X-Amz-Expires=***",
            ),
            (
                "https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/node:pull",
                "https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/node:pull",
            ),
            ("https://u:p@host", "https://***@host"),
        ] {
            assert_eq!(RedactedUrl::new(url).to_string(), shown, "{url}");
        }
        // An `@` in the path is not user info.
        for plain in [
            "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet",
            "http://127.0.0.1:40123/kubernetes",
            "https://registry/v2/x/manifests/sha256:ab@cd",
            "not a url",
        ] {
            assert_eq!(RedactedUrl::new(plain).as_str(), plain);
        }
    }
}
