//! `k8s-boot fetch`: the flags turned into fetch options, progress lines, the summary.

use super::args::FetchArgs;
use super::exit::UsageError;
use super::inventory::load;
use anyhow::Result;
use k8s_boot::fetch::{self, FetchOptions, ImageSpec, Mirrors};
use k8s_boot::inventory::Cluster;
use std::path::PathBuf;

/// With `quiet`, only warnings and the summary are printed.
pub fn run(args: FetchArgs, quiet: bool) -> Result<i32> {
    let cluster = args.inventory.as_deref().map(load).transpose()?;
    let opts = options(args, cluster.as_ref())?;
    let report = fetch::fetch(&opts, &mut |line| {
        // Quiet keeps the warnings (an image verified by its blob digests only).
        if !quiet || line.starts_with("warning:") {
            eprintln!("{line}")
        }
    })?;
    println!(
        "{} file(s) and {} image(s) in {}, {} transferred",
        report.files.len(),
        report.images.len(),
        opts.dir.display(),
        fetch::human(report.transferred)
    );
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
    if let Some(base) = args.mirror {
        if !is_http_url(&base) {
            return Err(UsageError(format!(
                "--mirror wants an http:// or https:// base URL, got `{base}`"
            ))
            .into());
        }
        opts.mirror = Mirrors::under(&base);
    }
    for m in &args.registry_mirrors {
        let (host, url) = registry_mirror(m)?;
        opts.mirror.registries.insert(host, url);
    }
    opts.images = if args.no_images {
        Vec::new()
    } else {
        images(&opts.kubernetes_version, cluster)
    };
    Ok(opts)
}

/// `HOST=URL` of `--registry-mirror`, the host in lower case.
fn registry_mirror(value: &str) -> Result<(String, String), UsageError> {
    match value.split_once('=') {
        Some((host, url)) if !host.trim().is_empty() && is_http_url(url.trim()) => {
            Ok((host.trim().to_ascii_lowercase(), url.trim().to_string()))
        }
        _ => Err(UsageError(format!(
            "--registry-mirror wants HOST=URL with an http:// or https:// URL, got `{value}`"
        ))),
    }
}

/// The cluster's images. The chat image is the inventory's (none if the chat is disabled);
/// with --version alone, the default one.
fn images(version: &str, cluster: Option<&Cluster>) -> Vec<ImageSpec> {
    let chat = match cluster {
        Some(c) if !c.inventory.chat.enabled => None,
        Some(c) => Some(c.inventory.chat.image.clone()),
        None => Some(fetch::default_chat_image()),
    };
    // An unsupported version gives no images here; fetch() reports it before anything.
    fetch::cluster_images(version, chat.as_deref()).unwrap_or_default()
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
}
