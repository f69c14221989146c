//! k8s-boot: a highly-available Kubernetes cluster from the official release binaries.
//!
//! Everything is a plan first: [`inventory`] + [`pki`] -> [`render`] (a deterministic list of
//! files per host) -> the installer applies the difference. The `commands` module holds one
//! function per subcommand; `main.rs` only parses arguments.

pub mod catalog;
pub mod cli_docs;
pub mod commands;
pub mod digest;
pub mod exit;
pub mod fetch;
pub mod fsutil;
pub mod install;
pub mod inventory;
pub mod lab;
pub mod oci;
pub mod pki;
pub mod progress;
pub mod render;
pub mod ssh;
pub mod versions;

/// The annotated example inventory (`k8s-boot init`), the same as `inventory/hosts.yaml`.
pub const EXAMPLE_INVENTORY: &str = include_str!("../inventory/hosts.yaml");
