//! The images of a conformance run, by upstream's names: the conformance image and the test
//! images its `[Conformance]` tests use. `lab build --conformance` makes them and
//! `fetch --conformance` downloads them, both into [`IMAGES_DIR`](super::IMAGES_DIR).

use crate::versions::VersionProfile;

/// The conformance image and the test images its tests use, by upstream's names. The pause
/// image the tests use is the profile's, which every node already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceNames {
    /// `registry.k8s.io/conformance:<kubernetes version>`.
    pub conformance: String,
    pub agnhost: String,
    pub agnhost_prev: String,
    pub busybox: String,
    pub nginx: String,
    pub nginx_new: String,
    /// `registry.k8s.io/etcd:<the profile's etcd>-0`.
    pub etcd: String,
    pub sample_apiserver: String,
    pub kitten: String,
    pub nautilus: String,
    pub nonewprivs: String,
    /// `None` when the minor's tests use none.
    pub glibc_dns_testing: Option<String>,
}

impl ConformanceNames {
    pub fn new(kubernetes_version: &str, profile: &VersionProfile) -> ConformanceNames {
        let e = &profile.e2e_images;
        ConformanceNames {
            conformance: super::image(kubernetes_version),
            agnhost: e.agnhost.into(),
            agnhost_prev: e.agnhost_prev.into(),
            busybox: e.busybox.into(),
            nginx: e.nginx.into(),
            nginx_new: e.nginx_new.into(),
            etcd: format!("registry.k8s.io/etcd:{}-0", profile.etcd),
            sample_apiserver: e.sample_apiserver.into(),
            kitten: e.kitten.into(),
            nautilus: e.nautilus.into(),
            nonewprivs: e.nonewprivs.into(),
            glibc_dns_testing: e.glibc_dns_testing.map(String::from),
        }
    }

    /// Every image, the conformance image first.
    pub fn all(&self) -> Vec<&str> {
        let mut all = vec![
            self.conformance.as_str(),
            &self.agnhost,
            &self.agnhost_prev,
            &self.busybox,
            &self.nginx,
            &self.nginx_new,
            &self.etcd,
            &self.sample_apiserver,
            &self.kitten,
            &self.nautilus,
            &self.nonewprivs,
        ];
        all.extend(self.glibc_dns_testing.as_deref());
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_names_distinct_images_under_upstream_registries() {
        for profile in crate::versions::PROFILES {
            let version = format!("v{}.0", profile.minor);
            let names = ConformanceNames::new(&version, profile);
            let all = names.all();
            assert_eq!(all[0], format!("registry.k8s.io/conformance:{version}"));
            let mut unique = all.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), all.len(), "{all:?}");
            assert!(all.iter().all(|r| r.starts_with("registry.k8s.io/")));
        }
    }
}
