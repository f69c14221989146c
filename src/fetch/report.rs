//! What a fetch run did, file by file and image by image, and the sizes its progress lines
//! print.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a file came to be in the binaries directory in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Its artifact was already there and matched the published checksum: nothing downloaded.
    Cached,
    /// Its artifact was downloaded from the start.
    Downloaded,
    /// Its artifact was completed from an earlier partial download.
    Resumed,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Cached => "cached",
            Outcome::Downloaded => "downloaded",
            Outcome::Resumed => "resumed",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// One row per installed file: name relative to the binaries directory (`kubelet`,
    /// `cni/bridge`), how its artifact was obtained, and the installed file's size in bytes.
    /// Files extracted from one archive share the archive's outcome.
    pub files: Vec<(String, Outcome, u64)>,
    /// One row per image: its reference, how its blobs were obtained (`Cached` also when the
    /// archive was rebuilt from cached blobs) and the archive's size in bytes.
    pub images: Vec<(String, Outcome, u64)>,
    /// Bytes received over the network for artifacts and image blobs (checksum files,
    /// manifests and tokens not counted).
    pub transferred: u64,
}

/// `999 B`, `12.3 kB`, `120.3 MB`, `1.2 GB` (decimal units).
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, size) in UNITS {
        if bytes as f64 >= size {
            return format!("{:.1} {unit}", bytes as f64 / size);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_500), "1.5 kB");
        assert_eq!(human(120_300_000), "120.3 MB");
        assert_eq!(human(2_000_000_000), "2.0 GB");
    }
}
