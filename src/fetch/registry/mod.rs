//! The parts of the container registry API (distribution spec, `/v2/`) that pulling a public
//! image needs: image references, the registry endpoint (or its mirror), anonymous bearer
//! tokens, manifests and blobs.
//!
//! Authentication follows the token flow of Docker Hub, GHCR and registry.k8s.io: a request
//! answered with `401` and `WWW-Authenticate: Bearer realm=...,service=...,scope=...` is retried
//! with `Authorization: Bearer <token>`, the token coming anonymously from the realm.
//!
//! `reference` parses image names and finds the registry endpoint, `auth` answers the token
//! challenge, `media` holds the manifest and index types, and `session` resolves manifests and
//! streams blobs with the tokens it obtained.

mod auth;
mod media;
mod reference;
mod session;

pub use media::{
    is_index, is_manifest, platforms, select_platform, ConfigPlatform, Descriptor, ImageManifest,
    Index,
};
pub use reference::{endpoint, origin, ImageRef};
pub use session::Session;
