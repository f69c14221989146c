//! `k8s-boot fetch`: the flags turned into fetch options, progress lines, the summary.

use super::args::{FetchArgs, FetchSources};
use super::console::{errln, outln};
use super::exit::UsageError;
use super::inventory::load;
use anyhow::{Context, Result};
use k8s_boot::fetch::{self, FetchOptions, ImageSpec, Mirrors, RedactedUrl};
use k8s_boot::inventory::Cluster;
use std::path::PathBuf;

/// With `quiet`, only warnings and the summary are printed.
pub fn run(args: FetchArgs, quiet: bool) -> Result<i32> {
    let cluster = args.inventory.as_deref().map(load).transpose()?;
    let opts = options(args, cluster.as_ref())?;
    let report = fetch::fetch(&opts, &mut |line| {
        // Quiet keeps the warnings (an image verified by its blob digests only).
        if !quiet || line.starts_with("warning:") {
            errln!("{line}")
        }
    })?;
    outln!(
        "{} file(s) and {} image(s) in {}, {} transferred",
        report.files.len(),
        report.images.len(),
        opts.dir.display(),
        fetch::human(report.transferred)
    )?;
    Ok(0)
}

/// The options of the flags, each flag's value checked; the inventory (if given) supplies
/// the version, the directory and the chat image.
fn options(args: FetchArgs, cluster: Option<&Cluster>) -> Result<FetchOptions> {
    let version = match (args.version, cluster) {
        (Some(v), _) => {
            k8s_boot::versions::profile_for(&v)
                .map_err(|m| UsageError(format!("--version {v}: {m}")))?;
            v
        }
        (None, Some(c)) => c.version().to_string(),
        (None, None) => {
            return Err(UsageError("give --version vX.Y.Z or --inventory FILE".into()).into())
        }
    };
    let dir = match (args.dir, cluster) {
        (Some(d), _) => d,
        (None, Some(c)) => c.resolve(&c.inventory.binaries.dir),
        (None, None) => PathBuf::from("binaries"),
    };
    let mut opts = FetchOptions::new(version, dir);
    opts.arch = args.arch;
    opts.images = if args.no_images {
        Vec::new()
    } else {
        images(&opts.kubernetes_version, cluster)
    };
    if args.conformance {
        // An unsupported version gives none here; fetch() reports it before anything.
        opts.images
            .extend(fetch::conformance_images(&opts.kubernetes_version).unwrap_or_default());
    }
    apply_sources(&args.sources, &mut opts)?;
    Ok(opts)
}

/// `--mirror`, `--registry-mirror` and `--image-digest` applied to `opts`, whose images are
/// already chosen (an `--image-digest` must name one of them).
pub fn apply_sources(sources: &FetchSources, opts: &mut FetchOptions) -> Result<()> {
    if let Some(base) = &sources.mirror {
        if !is_http_url(base) {
            return Err(UsageError(format!(
                "--mirror wants an http:// or https:// base URL, got `{}`",
                RedactedUrl::new(base)
            ))
            .into());
        }
        opts.mirror = Mirrors::under(base);
    }
    for m in &sources.registry_mirrors {
        let (host, url) = registry_mirror(m)?;
        opts.mirror.registries.insert(host, url);
    }
    for value in &sources.image_digests {
        let Some((reference, digest)) = value.split_once('=') else {
            return Err(UsageError(format!(
                "--image-digest wants REF=sha256:<hex>, got `{value}`"
            ))
            .into());
        };
        opts.set_image_digest(reference.trim(), digest.trim())
            .with_context(|| format!("--image-digest {value}"))?;
    }
    Ok(())
}

/// `HOST=URL` of `--registry-mirror`, the host in lower case.
fn registry_mirror(value: &str) -> Result<(String, String), UsageError> {
    match value.split_once('=') {
        Some((host, url)) if !host.trim().is_empty() && is_http_url(url.trim()) => {
            Ok((host.trim().to_ascii_lowercase(), url.trim().to_string()))
        }
        _ => Err(UsageError(format!(
            "--registry-mirror wants HOST=URL with an http:// or https:// URL, got `{}`",
            RedactedUrl::new(value)
        ))),
    }
}

/// The cluster's images: those of the inventory's add-ons and chat; with --version alone,
/// every add-on's and the default chat image.
fn images(version: &str, cluster: Option<&Cluster>) -> Vec<ImageSpec> {
    // An unsupported version gives no images here; fetch() reports it before anything.
    fetch::cluster_images(version, cluster.map(|c| &c.inventory)).unwrap_or_default()
}

fn is_http_url(url: &str) -> bool {
    ["http://", "https://"]
        .iter()
        .any(|p| url.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_mirror_is_host_equals_http_url() {
        assert_eq!(
            registry_mirror(" Docker.IO = https://harbor.corp/hub ").unwrap(),
            (
                "docker.io".to_string(),
                "https://harbor.corp/hub".to_string()
            )
        );
        for bad in [
            "docker.io",
            "=https://x",
            "docker.io=ftp://x",
            "docker.io=https://",
        ] {
            let err = registry_mirror(bad).unwrap_err();
            assert!(err.0.contains(&format!("got `{bad}`")), "{err}");
        }
    }

    #[test]
    fn sources_set_mirrors_and_image_digests() {
        let digest = format!("sha256:{}", "0a".repeat(32));
        let sources = |mirror: Option<&str>, digests: &[String]| FetchSources {
            mirror: mirror.map(String::from),
            registry_mirrors: vec!["ghcr.io=http://127.0.0.1:5000".into()],
            image_digests: digests.to_vec(),
        };
        let mut opts = FetchOptions::new("v1.37.2", "b");
        let given = sources(
            Some("http://mirror/k8s/"),
            &[format!("node:24-bookworm-slim = {digest}")],
        );
        apply_sources(&given, &mut opts).unwrap();
        assert_eq!(opts.mirror.runc, "http://mirror/k8s/runc");
        assert_eq!(opts.mirror.registries["ghcr.io"], "http://127.0.0.1:5000");
        let chat = opts.images.last().unwrap();
        assert_eq!(chat.digest.as_deref(), Some(digest.as_str()));

        for (bad, says) in [
            (sources(Some("mirror"), &[]), "--mirror wants"),
            (
                sources(None, &["node:24".into()]),
                "--image-digest wants REF=",
            ),
            (
                sources(None, &[format!("node:1={digest}")]),
                "not one of the images fetched",
            ),
        ] {
            let err = apply_sources(&bad, &mut FetchOptions::new("v1.37.2", "b")).unwrap_err();
            assert!(format!("{err:#}").contains(says), "{err:#}");
            assert_eq!(super::super::exit::code(&err), super::super::exit::INVALID);
        }
    }
}
