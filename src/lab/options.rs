//! What `lab up` is asked for: [`LabOptions`] and their defaults.

use std::path::PathBuf;

/// Environment variable naming a rootfs cache directory shared between labs (and tests).
pub const CACHE_ENV: &str = "K8S_BOOT_LAB_CACHE";
pub const DEFAULT_HOSTS: usize = 4;
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.37.2";
/// The previous minor's release the upgrade test starts from (tests/run-all.sh builds it).
pub const PREVIOUS_KUBERNETES_VERSION: &str = "v1.36.3";

#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The lab directory, e.g. `lab`: key, known_hosts, inventory, per-host overlays.
    pub dir: PathBuf,
    /// Number of hosts, 1 to 20 (default 4).
    pub hosts: usize,
    /// Written into the inventory, e.g. `v1.36.0`.
    pub kubernetes_version: String,
    /// Where the rootfs is cached. `None`: `$K8S_BOOT_LAB_CACHE` if set, else `<dir>/.cache`.
    pub cache_dir: Option<PathBuf>,
}

impl Default for LabOptions {
    /// `lab`, 4 hosts, Kubernetes v1.36.0, the default cache.
    fn default() -> LabOptions {
        LabOptions::new("lab")
    }
}

impl LabOptions {
    /// Defaults: 4 hosts, Kubernetes v1.36.0, the default cache.
    pub fn new(dir: impl Into<PathBuf>) -> LabOptions {
        LabOptions {
            dir: dir.into(),
            hosts: DEFAULT_HOSTS,
            kubernetes_version: DEFAULT_KUBERNETES_VERSION.into(),
            cache_dir: None,
        }
    }

    /// The rootfs cache directory these options use.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(c) = &self.cache_dir {
            return c.clone();
        }
        match std::env::var_os(CACHE_ENV) {
            Some(c) if !c.is_empty() => crate::fsutil::resolve(std::path::Path::new(&c)),
            _ => self.dir.join(".cache"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn cache_dir_precedence() {
        let mut o = LabOptions::new("/l");
        o.cache_dir = Some("/c".into());
        assert_eq!(o.cache_dir(), Path::new("/c"));
        o.cache_dir = None;
        if std::env::var_os(CACHE_ENV).is_none() {
            assert_eq!(o.cache_dir(), Path::new("/l/.cache"));
        }
    }
}

#[cfg(test)]
mod previous_version_tests {
    use super::*;

    #[test]
    fn the_previous_version_is_the_minor_before_and_the_test_script_builds_it() {
        let minor = |v: &str| crate::versions::profile_for(v).unwrap().minor;
        let (prev, cur) = (
            minor(PREVIOUS_KUBERNETES_VERSION),
            minor(DEFAULT_KUBERNETES_VERSION),
        );
        let n = |m: &str| m.split('.').nth(1).unwrap().parse::<u32>().unwrap();
        assert_eq!(n(prev) + 1, n(cur));
        let script = include_str!("../../tests/run-all.sh");
        assert!(script.contains(&format!("--version {PREVIOUS_KUBERNETES_VERSION}\n")));
    }
}
