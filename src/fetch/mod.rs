//! Download of the official release binaries with checksum verification.
