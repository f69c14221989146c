//! k8s-boot: a highly-available Kubernetes cluster from the official release binaries.
//!
//! Everything is a plan first: [`inventory`] + [`pki`] -> [`render`] (a deterministic list of
//! files per host) -> the installer applies the difference. The library returns data; the
//! binary's `cli` module (one file per command) prints it.

// Printing goes through the binary's console (errors returned, values escaped), never
// through the panicking print macros.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod addons;
pub mod backup;
pub mod catalog;
pub mod conformance;
pub mod digest;
pub mod fault;
pub mod fetch;
pub mod fsutil;
pub mod install;
pub mod inventory;
pub mod lab;
pub mod oci;
pub mod operation;
pub mod pki;
pub mod remove_node;
pub mod render;
pub mod shown;
pub mod ssh;
pub mod upgrade;
pub mod versions;

/// The annotated example inventory (`k8s-boot init`), the same as `inventory/hosts.yaml`.
pub const EXAMPLE_INVENTORY: &str = include_str!("../inventory/hosts.yaml");
