//! HTTP GET with streaming to disk, resume by `Range` and timeouts (ureq, blocking).
//!
//! Used for release downloads and for the container registry API alike: requests may carry
//! extra headers (`Accept`, `Authorization`). Redirects are followed here, not by ureq, so
//! each one is checked first ([`redirect_target`]): only to http(s), never from https down
//! to http, at most [`MAX_REDIRECTS`]; an `Authorization` header is never sent on after a
//! redirect, so a registry token does not reach the blob storage a registry redirects to.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::FetchError;
use super::proxy::proxy_for;
use super::shown_url::RedactedUrl;
use crate::digest::{finish_hex, hash_reader};

/// Establishing a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence while reading a response; a large download may take as long as it needs
/// as long as bytes keep arriving.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Checksum files are tiny; anything bigger is not a checksum file.
pub const CHECKSUM_FILE_LIMIT: u64 = 1024 * 1024;
/// Largest image manifest, index or token answer read into memory.
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;
/// Redirects followed for one request (GitHub release downloads take one, to their CDN).
pub const MAX_REDIRECTS: usize = 10;

pub struct Client {
    /// One agent per proxy choice (`None` = direct), built on first use.
    agents: RefCell<HashMap<Option<String>, ureq::Agent>>,
}

/// How a download into a `.part` file went.
pub struct Downloaded {
    /// The `.part` file continued from earlier bytes (HTTP 206).
    pub resumed: bool,
    /// Bytes already on disk before this request.
    pub resumed_from: u64,
    /// Bytes received in this request.
    pub transferred: u64,
    /// Total size of the file.
    pub size: u64,
    /// sha256 of the whole file (earlier bytes included).
    pub sha256: String,
}

impl Client {
    pub fn new() -> Self {
        Client {
            agents: RefCell::new(HashMap::new()),
        }
    }

    fn agent(&self, url: &str) -> Result<ureq::Agent, FetchError> {
        let proxy = proxy_for(url, &|name| std::env::var(name).ok());
        if let Some(agent) = self.agents.borrow().get(&proxy) {
            return Ok(agent.clone());
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .timeout_write(READ_TIMEOUT)
            // Redirects are followed by `send`, which checks each target first: ureq would
            // follow one to `file:` into a panic.
            .redirects(0)
            .user_agent(concat!("k8s-boot/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = &proxy {
            let parsed = ureq::Proxy::new(p).map_err(|e| FetchError::Network {
                url: url.to_string(),
                message: format!(
                    "unusable proxy `{}` from the environment: {e}",
                    RedactedUrl::new(p)
                ),
            })?;
            builder = builder.proxy(parsed);
        }
        let agent = builder.build();
        self.agents.borrow_mut().insert(proxy, agent.clone());
        Ok(agent)
    }

    /// Any answer of the server, error statuses included (`ureq` turns those into errors),
    /// after following redirects (see the module documentation); only a failed transport
    /// or a refused redirect is an error here. The answer's `get_url()` is where it came
    /// from.
    pub fn send(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        range_from: Option<u64>,
    ) -> Result<ureq::Response, FetchError> {
        let mut target = url.to_string();
        let mut headers = headers.to_vec();
        for _ in 0..=MAX_REDIRECTS {
            let resp = self.send_once(&target, &headers, range_from)?;
            let Some(location) = redirect_location(&resp) else {
                return Ok(resp);
            };
            target = redirect_target(url, &target, location)?;
            // Never pass credentials on to wherever a redirect points (registries send blob
            // downloads to storage on other hosts, and a port is part of the origin).
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
        }
        Err(FetchError::Redirect {
            url: url.to_string(),
            location: target,
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// One request, no redirect followed.
    fn send_once(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        range_from: Option<u64>,
    ) -> Result<ureq::Response, FetchError> {
        // Identity encoding: a transparently decompressed body would not match the checksum,
        // and byte ranges only make sense on the bytes as published.
        let mut req = self.agent(url)?.get(url).set("Accept-Encoding", "identity");
        for (name, value) in headers {
            req = req.set(name, value);
        }
        if let Some(from) = range_from {
            req = req.set("Range", &format!("bytes={from}-"));
        }
        match req.call() {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => Ok(resp),
            Err(ureq::Error::Transport(t)) => Err(FetchError::Network {
                url: url.to_string(),
                message: t.to_string(),
            }),
        }
    }

    fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        range_from: Option<u64>,
    ) -> Result<ureq::Response, FetchError> {
        let resp = self.send(url, headers, range_from)?;
        if resp.status() >= 400 {
            return Err(http_error(url, &resp));
        }
        Ok(resp)
    }

    /// A small text body (a checksum file), capped at [`CHECKSUM_FILE_LIMIT`].
    pub fn get_text(&self, url: &str) -> Result<String, FetchError> {
        let resp = self.get(url, &[], None)?;
        let body = read_limited(url, resp, CHECKSUM_FILE_LIMIT, || {
            FetchError::ChecksumTooLarge {
                url: url.to_string(),
                limit: CHECKSUM_FILE_LIMIT,
            }
        })?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Downloads `url` into `part`. An existing `part` is continued with a `Range` request
    /// when the server answers 206 for exactly that offset; otherwise it is started over.
    /// A failure while receiving the body keeps `part` for the next attempt.
    pub fn download(&self, url: &str, part: &Path) -> Result<Downloaded, FetchError> {
        self.download_with(url, &[], part)
    }

    /// [`Client::download`] with extra request headers (on the first request only, in the
    /// case of `Authorization`: see the module documentation).
    pub fn download_with(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        part: &Path,
    ) -> Result<Downloaded, FetchError> {
        let existing = match fs::metadata(part) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => 0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(FetchError::io(part, e)),
        };
        if existing == 0 {
            return self.fresh(url, headers, part);
        }
        let resp = match self.get(url, headers, Some(existing)) {
            Ok(resp) => resp,
            // The part already holds the whole file (or more): let the checksum decide.
            Err(FetchError::Http { status: 416, .. }) => {
                let mut hasher = Sha256::new();
                let mut f = File::open(part).map_err(|e| FetchError::io(part, e))?;
                hash_reader(&mut f, &mut hasher).map_err(|e| FetchError::io(part, e))?;
                return Ok(Downloaded {
                    resumed: true,
                    resumed_from: existing,
                    transferred: 0,
                    size: existing,
                    sha256: finish_hex(hasher),
                });
            }
            Err(e) => return Err(e),
        };
        match resp.status() {
            206 if content_range_starts_at(&resp, existing) => {
                let mut hasher = Sha256::new();
                let mut f = File::open(part).map_err(|e| FetchError::io(part, e))?;
                let have = hash_reader(&mut f, &mut hasher).map_err(|e| FetchError::io(part, e))?;
                drop(f);
                let out = OpenOptions::new()
                    .append(true)
                    .open(part)
                    .map_err(|e| FetchError::io(part, e))?;
                let transferred = stream(url, resp, out, part, &mut hasher)?;
                Ok(Downloaded {
                    resumed: true,
                    resumed_from: have,
                    transferred,
                    size: have + transferred,
                    sha256: finish_hex(hasher),
                })
            }
            // 200: the server ignored the range and sends everything; any other range answer
            // is not one we can append safely. Start over.
            200 => self.write_fresh(url, resp, part),
            _ => self.fresh(url, headers, part),
        }
    }

    fn fresh(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        part: &Path,
    ) -> Result<Downloaded, FetchError> {
        let resp = self.get(url, headers, None)?;
        if resp.status() != 200 {
            return Err(FetchError::Http {
                url: url.to_string(),
                status: resp.status(),
                reason: format!("{} (expected 200)", resp.status_text()),
            });
        }
        self.write_fresh(url, resp, part)
    }

    fn write_fresh(
        &self,
        url: &str,
        resp: ureq::Response,
        part: &Path,
    ) -> Result<Downloaded, FetchError> {
        let out = File::create(part).map_err(|e| FetchError::io(part, e))?;
        let mut hasher = Sha256::new();
        let transferred = stream(url, resp, out, part, &mut hasher)?;
        Ok(Downloaded {
            resumed: false,
            resumed_from: 0,
            transferred,
            size: transferred,
            sha256: finish_hex(hasher),
        })
    }
}

/// The `Location` of an answer that redirects a GET (301, 302, 303, 307, 308).
fn redirect_location(resp: &ureq::Response) -> Option<&str> {
    match resp.status() {
        301 | 302 | 303 | 307 | 308 => resp.header("Location"),
        _ => None,
    }
}

/// Where a redirect from `current` to `location` (absolute or relative) leads, if it may be
/// followed: an http(s) URL with a host, and not http after https. `url` is the request's
/// first URL, for the error.
pub fn redirect_target(url: &str, current: &str, location: &str) -> Result<String, FetchError> {
    let refuse = |reason: &str| FetchError::Redirect {
        url: url.to_string(),
        location: location.to_string(),
        reason: reason.to_string(),
    };
    let base = url::Url::parse(current).map_err(|_| refuse("the current URL does not parse"))?;
    let next = base
        .join(location)
        .map_err(|e| refuse(&format!("not a URL ({e})")))?;
    match (base.scheme(), next.scheme()) {
        (_, "http" | "https") if next.host_str().is_none_or(str::is_empty) => {
            Err(refuse("it names no host"))
        }
        ("https", "http") => Err(refuse(
            "a downgrade from https to http (the mirror or server must stay on https)",
        )),
        (_, "http" | "https") => Ok(next.to_string()),
        (_, other) => Err(refuse(&format!(
            "`{other}:` is not http or https; only http(s) downloads are followed"
        ))),
    }
}

/// `FetchError::Http` for an error answer.
pub fn http_error(url: &str, resp: &ureq::Response) -> FetchError {
    FetchError::Http {
        url: url.to_string(),
        status: resp.status(),
        reason: resp.status_text().to_string(),
    }
}

/// The whole body of `resp`; beyond `limit` bytes it is refused with `too_large()`.
pub fn read_limited(
    url: &str,
    resp: ureq::Response,
    limit: u64,
    too_large: impl FnOnce() -> FetchError,
) -> Result<Vec<u8>, FetchError> {
    let mut body = Vec::new();
    resp.into_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| FetchError::Network {
            url: url.to_string(),
            message: format!("reading the response: {e}"),
        })?;
    if body.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(body)
}

fn content_range_starts_at(resp: &ureq::Response, offset: u64) -> bool {
    // `Content-Range: bytes 1000-1999/2000`
    resp.header("Content-Range")
        .and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|start| start.trim().parse::<u64>().ok())
        == Some(offset)
}

/// Copies the body to `out` chunk by chunk, hashing as it goes; fsyncs at the end.
fn stream(
    url: &str,
    resp: ureq::Response,
    mut out: File,
    part: &Path,
    hasher: &mut Sha256,
) -> Result<u64, FetchError> {
    let expected_len = resp
        .header("Content-Length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut body = resp.into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = out.sync_all();
                return Err(FetchError::Network {
                    url: url.to_string(),
                    message: format!(
                        "download interrupted after {total} bytes ({e}); the partial file {} is kept and the next run resumes it",
                        part.display()
                    ),
                });
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| FetchError::io(part, e))?;
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    out.sync_all().map_err(|e| FetchError::io(part, e))?;
    if let Some(len) = expected_len {
        if len != total {
            return Err(FetchError::Network {
                url: url.to_string(),
                message: format!(
                    "received {total} of {len} bytes; the partial file {} is kept and the next run resumes it",
                    part.display()
                ),
            });
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets_stay_on_http_and_never_go_down_from_https() {
        let from = "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet";
        let ok = |current: &str, location: &str| redirect_target(from, current, location);
        assert_eq!(
            ok(from, "https://cdn.dl.k8s.io/x/kubelet").unwrap(),
            "https://cdn.dl.k8s.io/x/kubelet"
        );
        assert_eq!(ok(from, "/other").unwrap(), "https://dl.k8s.io/other");
        assert_eq!(
            ok("http://mirror:8080/a/b", "c").unwrap(),
            "http://mirror:8080/a/c"
        );
        assert_eq!(
            ok("http://mirror/a", "https://mirror/a").unwrap(),
            "https://mirror/a"
        );
        for (current, location, says) in [
            (from, "http://dl.k8s.io/kubelet", "downgrade"),
            (from, "file:///etc/passwd", "`file:` is not http or https"),
            ("http://mirror/a", "FILE:///etc/passwd", "`file:`"),
            ("http://mirror/a", "ftp://mirror/a", "`ftp:`"),
            ("http://mirror/a", "http://", "not a URL"),
            ("http://mirror/a", "http://[::1", "not a URL"),
        ] {
            let err = ok(current, location).unwrap_err().to_string();
            assert!(err.contains(says), "{location}: {err}");
            assert!(
                err.starts_with(&format!("GET {from}: not following")),
                "{err}"
            );
        }
    }
}
