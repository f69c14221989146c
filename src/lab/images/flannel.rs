//! The flannel image: the built program as `/opt/bin/flanneld`, plus Debian's `iptables` (nft
//! backend) and `nft` with their extensions and libraries.

use super::base::{ca_bundle, program_config, NSSWITCH};
use super::closure::{multiarch, Closure};
use super::inputs_digest::sha256_file;
use crate::lab::error::{io_err, LabError};
use crate::oci::{Entry, ImageConfig};
use std::fs;
use std::path::Path;

/// The flannel image's Debian packages: iptables (nft backend) and nftables, their libraries,
/// netbase (`/etc/protocols`, `/etc/services`, `/etc/ethertypes`) and the CA bundle.
pub(super) const PACKAGES: &[&str] = &[
    "iptables",
    "libip4tc2",
    "libip6tc2",
    "libxtables12",
    "libmnl0",
    "libnetfilter-conntrack3",
    "libnfnetlink0",
    "libnftnl11",
    "nftables",
    "libnftables1",
    "libedit2",
    "libbsd0",
    "libmd0",
    "libtinfo6",
    "libjansson4",
    "libgmp10",
    "libc6",
    "libgcc-s1",
    "netbase",
    "ca-certificates",
];
/// What flanneld v0.28 runs: go-iptables and its iptables-restore wrapper look these up in
/// PATH (iptables mode, the default); knftables runs `nft` (nftables mode, and the clean-up
/// of nftables rules at every start).
pub(super) const TOOLS: &[&str] = &[
    "usr/sbin/iptables-nft",
    "usr/sbin/iptables-nft-save",
    "usr/sbin/iptables-nft-restore",
    "usr/sbin/ip6tables-nft",
    "usr/sbin/ip6tables-nft-save",
    "usr/sbin/ip6tables-nft-restore",
    "usr/sbin/nft",
];

/// The inputs record's line: the program's digest.
pub(super) fn inputs(flanneld: &Path) -> Result<Vec<String>, LabError> {
    Ok(vec![format!(
        "program /opt/bin/flanneld {}",
        sha256_file(flanneld, "the flanneld program")?
    )])
}

/// The layer and config, from `root`, the extracted [`PACKAGES`].
pub(super) fn contents(
    flanneld: &Path,
    root: &Path,
) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    Ok((
        flannel_entries(root, flanneld)?,
        program_config(&["/opt/bin/flanneld"], ""),
    ))
}

fn flannel_entries(root: &Path, flanneld: &Path) -> Result<Vec<Entry>, LabError> {
    let mut c = Closure::new(root, "the flannel image");
    for tool in TOOLS {
        c.add(tool)?;
    }
    // iptables loads its matches and targets from here by path.
    let xtables = format!("usr/lib/{}/xtables", multiarch());
    let dir = root.join(&xtables);
    let mut extensions: Vec<String> = fs::read_dir(&dir)
        .map_err(io_err("cannot read", &dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".so"))
        .collect();
    extensions.sort();
    for x in extensions {
        c.add(&format!("{xtables}/{x}"))?;
    }
    // glibc loads libgcc_s when a thread is cancelled.
    c.add(&format!("lib/{}/libgcc_s.so.1", multiarch()))?;
    for f in ["etc/protocols", "etc/services", "etc/ethertypes"] {
        c.add(f)?;
    }
    c.needs_of(flanneld, "/opt/bin/flanneld")?;
    let mut entries = c.into_entries();
    // Debian points these at iptables-nft through update-alternatives; here they are links.
    for name in ["iptables", "ip6tables"] {
        for suffix in ["", "-save", "-restore"] {
            entries.push(Entry::symlink(
                &format!("/usr/sbin/{name}{suffix}"),
                &format!("{name}-nft{suffix}"),
            ));
        }
    }
    entries.extend([
        Entry::file("/opt/bin/flanneld", flanneld, 0o755),
        Entry::bytes(
            "/etc/passwd",
            "root:x:0:0:root:/root:/sbin/nologin\n",
            0o644,
        ),
        Entry::bytes("/etc/group", "root:x:0:\n", 0o644),
        Entry::bytes("/etc/nsswitch.conf", NSSWITCH, 0o644),
        Entry::bytes(
            "/etc/ssl/certs/ca-certificates.crt",
            ca_bundle(root)?,
            0o644,
        ),
        Entry::dir("/tmp", 0o1777),
        Entry::dir("/run", 0o755),
    ]);
    Ok(entries)
}
