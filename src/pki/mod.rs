//! The cluster PKI on the deploy machine: create, keep, re-issue and check certificates.
//!
//! Layout under the PKI directory (PEM): `ca.crt`/`ca.key`, `etcd/ca.*`, `front-proxy-ca.*`,
//! one `<stem>.crt`/`<stem>.key` per row of [`profiles::LEAVES`], the service-account key pair
//! `sa.key`/`sa.pub`, and `encryption.key` (the secrets-at-rest key). Keys are 0600.
//!
//! Modules, each using only those listed before it: `profiles` (the table), `error`,
//! `report` (`Options`, `Action`), `store` (the directory: lock, reads, crash-safe writes),
//! `pem` (keys and certificates from PEM bytes), `problem` (why a file is not acceptable),
//! `inspect` (a certificate with its key, read), `recover` (what a killed run left),
//! `verify` (a certificate against its row), `issuance`, `ca`, `leaf`, `keys`
//! (service-account pair, encryption key), `ensure` (`Pki::ensure`), `check` (`certs
//! check`).

pub mod profiles;

mod error;
mod report;
mod store;

mod inspect;
mod pem;
mod problem;
mod recover;
mod verify;

mod ca;
mod issuance;
mod keys;
mod leaf;

mod check;
mod ensure;

pub use check::{CheckReport, CheckRow, Status, EXPIRY_WARNING_DAYS};
pub use error::PkiError;
pub use keys::check_encryption_key;
pub use pem::{parse_private_key, pem_to_der, KeyFormatError};
pub use problem::EncryptionKeyError;
pub use report::{Action, Options, Report, Tidied};
pub use store::{
    default_dir, Pki, ADMIN_KUBECONFIG, ENCRYPTION_KEY, ENCRYPTION_KEY_BYTES, KEY_MODE, LOCK_FILE,
    PKI_FILE_CAP, SA_KEY, SA_PUB, SUPER_ADMIN_KUBECONFIG,
};
pub use verify::cert_sans;
