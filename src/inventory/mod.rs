//! The inventory: what the user wrote (`schema`), where it is in the file (`locate`), what
//! is wrong with it (`diagnostic`, `validate`), and the validated cluster model every other
//! module works from (`cluster`, read by `load`). This file only declares and re-exports.

mod cluster;
mod diagnostic;
mod load;
mod locate;
pub mod net;
mod paths;
mod schema;
mod validate;

pub use cluster::{Cluster, Endpoint, APISERVER_PORT};
pub use diagnostic::{Diagnostic, InventoryError, Severity, MAX_INVENTORY_BYTES};
pub use locate::{Position, Positions, MAX_ALIASES, MAX_DEPTH, MAX_EXPANDED_BYTES};
pub use net::Cidr;
pub use paths::{NamedPath, PATH_FIELDS};
pub use schema::*;
pub use validate::mirror_url;
