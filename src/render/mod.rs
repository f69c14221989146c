//! The plan: every file that lands on every host, rendered deterministically.
//!
//! `plan` turns inventory + PKI into per-host lists of files (path, mode, owner, bytes) and
//! services; `write_tree` writes them under `OUT/hosts/<host>/<path>` with `OUT/plan.json`.
//! The installer applies the same plan, so `render` is its dry run. This file only
//! declares and re-exports.

pub mod context;
mod error;
mod kubeconfig;
mod model;
mod output;
mod pki_files;
mod plan;
pub mod registries;
pub mod rules;
mod sandbox;
mod staging;
mod templates;

pub use error::RenderError;
pub use model::{HostPlan, Plan, PlannedFile};
pub use output::{check_output_dir, write_tree, OUTPUT_MARKER};
pub use plan::plan;
pub use templates::Templates;
