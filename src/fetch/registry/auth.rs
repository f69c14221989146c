//! Anonymous bearer tokens: the `WWW-Authenticate: Bearer realm=...,service=...,scope=...`
//! challenge of a `401`, and the token request to its realm.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::fetch::error::FetchError;
use crate::fetch::http::{http_error, read_limited, Client, MANIFEST_LIMIT};

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

/// `scheme://authority` of a URL.
pub(super) fn origin_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            &url[..scheme.len() + 3 + end]
        }
        None => url,
    }
}

/// An anonymous pull token for `repository`, answering the challenge of a `401` at `url`.
pub(super) fn anonymous_token(
    client: &Client,
    url: &str,
    resp: &ureq::Response,
    repository: &str,
) -> Result<String, FetchError> {
    let challenge = challenge_of(url, resp)?;
    let mut query = Vec::new();
    if let Some(service) = &challenge.service {
        query.push(format!("service={}", query_escape(service)));
    }
    let scope = challenge
        .scope
        .clone()
        .unwrap_or_else(|| format!("repository:{repository}:pull"));
    query.push(format!("scope={}", query_escape(&scope)));
    let sep = if challenge.realm.contains('?') {
        '&'
    } else {
        '?'
    };
    let token_url = format!("{}{sep}{}", challenge.realm, query.join("&"));
    request_token(client, &token_url)
}

/// The usable Bearer challenge of a `401` answer at `url`.
fn challenge_of(url: &str, resp: &ureq::Response) -> Result<Challenge, FetchError> {
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
    Ok(challenge)
}

/// The token the realm hands out at `token_url` (`token` or `access_token` of its JSON).
fn request_token(client: &Client, token_url: &str) -> Result<String, FetchError> {
    let resp = client.send(token_url, &[("Accept", "application/json")], None)?;
    if resp.status() >= 400 {
        return Err(http_error(token_url, &resp));
    }
    let body = read_limited(token_url, resp, MANIFEST_LIMIT, || FetchError::Registry {
        url: token_url.to_string(),
        message: format!("token answer larger than {MANIFEST_LIMIT} bytes"),
    })?;
    #[derive(Deserialize)]
    struct Token {
        token: Option<String>,
        access_token: Option<String>,
    }
    let token: Token = serde_json::from_slice(&body).map_err(|e| FetchError::Registry {
        url: token_url.to_string(),
        message: format!("not a token answer: {e}"),
    })?;
    match token.token.or(token.access_token) {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(FetchError::Registry {
            url: token_url.to_string(),
            message: "the token answer holds no token".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
