//! Local lab hosts: throwaway systemd-nspawn machines with real systemd and sshd, able to
//! run containers (the kubelet, containerd, runc), and the upstream programs and images they
//! install (`build`, `images`, gathered into one binaries directory by `binaries`; or
//! downloaded by `release` through `fetch`; either way holding what `contents` lists).
//!
//! The lab is test infrastructure for the product, not part of it: it depends on the product
//! modules (it writes an inventory that `inventory` validates, uses `fetch`'s archive names
//! and downloads, `versions`' pins and `oci`'s archive writer), and no product module (`inventory`, `pki`,
//! `render`, `ssh`, `install`, `fetch`, `oci`, `versions`) imports anything from `lab`. Only
//! the binary's `cli` layer uses it, for `k8s-boot lab`. What both need lives below both.
//!
//! `up` builds (once, cached) a Debian bookworm rootfs with debootstrap, gives every host an
//! overlay of it, its own ssh host key and a static address on a private bridge, boots the
//! hosts with systemd-nspawn, waits until each answers ssh with `systemctl is-system-running`
//! = `running`, and writes an inventory (`hosts.yaml`) plus a `known_hosts` so the installer
//! can be pointed at the lab with strict host key checking. `down` removes it all again,
//! keeping the rootfs cache and the lab key. See docs/LAB.md.

pub mod binaries;
pub mod build;
pub mod contents;
mod dir;
mod down;
mod error;
mod host;
pub mod images;
mod key;
mod layout;
mod machine;
mod options;
pub mod push;
pub mod registry;
pub mod release;
mod report;
mod rootfs;
mod state;
mod status;
mod sys;
mod tools;
mod up;

pub use down::down;
pub use error::LabError;
pub use layout::{BRIDGE, BRIDGE_ADDRESS, INVENTORY_FILE, KEY_FILE, KNOWN_HOSTS_FILE, MAX_HOSTS};
pub use options::{
    LabOptions, CACHE_ENV, DEFAULT_HOSTS, DEFAULT_KUBERNETES_VERSION, PREVIOUS_KUBERNETES_VERSION,
};
pub use report::{HostStatus, LabHost, LabReport};
pub use rootfs::{MIRROR, PACKAGES, SUITE};
pub use status::{status, status_detailed};
pub use up::up;
