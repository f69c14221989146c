//! One repository on one registry: manifest resolution and blob downloads, each request
//! retried once with a token after a `401`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::auth::{anonymous_token, origin_of};
use super::media::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use super::reference::{endpoint, ImageRef};
use crate::fetch::error::FetchError;
use crate::fetch::http::{http_error, read_limited, Client, Downloaded, MANIFEST_LIMIT};

/// A manifest or index as the registry sent it.
pub struct Fetched {
    pub url: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
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
            let token = anonymous_token(client, final_url, resp, &self.name)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_mirror_prefix() {
        let mut m = BTreeMap::new();
        m.insert(
            "docker.io".to_string(),
            "https://harbor.corp/hub/".to_string(),
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
}
