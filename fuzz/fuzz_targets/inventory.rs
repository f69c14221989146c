//! Arbitrary bytes through the inventory loader, exactly as `Cluster::load` feeds a file's
//! bytes: size cap, UTF-8, YAML scan and bounds, serde, validation. Any panic, hang or
//! out-of-memory is a bug.
#![no_main]

use k8s_boot::inventory::Cluster;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    match Cluster::from_bytes(Path::new("fuzz.yaml"), data) {
        Ok(cluster) => {
            // The derived values every later phase relies on.
            let _ = cluster.api_endpoint.to_string();
            let _ = cluster.nodes().count();
        }
        Err(e) => {
            // Rendering the message must not panic either.
            let _ = e.to_string();
        }
    }
});
