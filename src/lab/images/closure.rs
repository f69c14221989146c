//! The files a program needs from extracted Debian packages: its ELF interpreter and
//! libraries, found the way the dynamic loader finds them, transitively.

use super::elf;
use crate::lab::error::{io_err, LabError};
use crate::oci::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `x86_64-linux-gnu`: Debian's multiarch directory name for this machine.
pub(super) fn multiarch() -> String {
    format!("{}-linux-gnu", std::env::consts::ARCH)
}

/// Files of an extracted package root plus every library they need, transitively.
pub(super) struct Closure<'a> {
    root: &'a Path,
    /// `the flannel image`, for messages.
    what: &'a str,
    entries: BTreeMap<String, Entry>,
    /// Resolved files already analysed.
    seen: BTreeSet<String>,
}

impl<'a> Closure<'a> {
    pub(super) fn new(root: &'a Path, what: &'a str) -> Closure<'a> {
        Closure {
            root,
            what,
            entries: BTreeMap::new(),
            seen: BTreeSet::new(),
        }
    }

    pub(super) fn into_entries(self) -> Vec<Entry> {
        self.entries.into_values().collect()
    }

    /// The directories the dynamic loader searches by default, in its order.
    fn library_dirs() -> Vec<String> {
        let m = multiarch();
        vec![
            format!("lib/{m}"),
            format!("usr/lib/{m}"),
            "lib".into(),
            "usr/lib".into(),
        ]
    }

    fn missing(&self, rel: &str, needed_by: &str) -> LabError {
        LabError::State {
            path: self.root.join(rel),
            message: format!(
                "{} needs {rel} (for {needed_by}), which none of its Debian packages holds: add the package that ships it to the image's package list",
                self.what
            ),
        }
    }

    /// Adds `rel` (a path in the root, also its path in the image) as it is there: each
    /// symlink of a chain as a symlink, then the file, then what that file needs.
    pub(super) fn add(&mut self, rel: &str) -> Result<(), LabError> {
        self.add_needed_by(rel, rel)
    }

    fn add_needed_by(&mut self, rel: &str, needed_by: &str) -> Result<(), LabError> {
        let mut rel = rel.trim_start_matches('/').to_string();
        for _ in 0..40 {
            let path = self.root.join(&rel);
            let meta = fs::symlink_metadata(&path).map_err(|_| self.missing(&rel, needed_by))?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map_err(io_err("cannot read", &path))?;
                let target = target.to_string_lossy().into_owned();
                self.entries
                    .insert(rel.clone(), Entry::symlink(&rel, &target));
                rel = resolve_link(&rel, &target);
                continue;
            }
            if !meta.is_file() {
                return Err(LabError::State {
                    path,
                    message: format!("{} needs it as a file", self.what),
                });
            }
            if !self.seen.insert(rel.clone()) {
                return Ok(());
            }
            let mode = meta.permissions().mode() & 0o7777;
            self.entries
                .insert(rel.clone(), Entry::file(&rel, &path, mode));
            return self.needs_of(&path, &rel);
        }
        Err(LabError::State {
            path: self.root.join(rel),
            message: "too many levels of symbolic links".into(),
        })
    }

    /// Adds the interpreter and the libraries the ELF file `file` (`name` in the image) needs.
    pub(super) fn needs_of(&mut self, file: &Path, name: &str) -> Result<(), LabError> {
        let linking = elf::linking(file).map_err(io_err("cannot read", file))?;
        let Some(linking) = linking else {
            return Ok(());
        };
        if let Some(interp) = &linking.interpreter {
            self.add_needed_by(interp, name)?;
        }
        for lib in &linking.needed {
            let found = Self::library_dirs()
                .into_iter()
                .map(|d| format!("{d}/{lib}"))
                .find(|rel| fs::symlink_metadata(self.root.join(rel)).is_ok());
            match found {
                Some(rel) => self.add_needed_by(&rel, name)?,
                None => return Err(self.missing(lib, name)),
            }
        }
        Ok(())
    }
}

/// Where the link `rel` -> `target` points, as a path relative to the root.
fn resolve_link(rel: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = rel.split('/').collect();
        p.pop();
        p
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::oci;
    use crate::oci::tests::{gunzip, read_tar};
    use std::path::PathBuf;

    /// A package root made of this machine's `true` and the libraries it links, laid out as
    /// Debian's packages lay them out (real files under lib/<multiarch>, the loader linked
    /// from lib64).
    fn fake_root(dir: &Path) -> PathBuf {
        let root = dir.join("root");
        let true_bin = ["/usr/bin/true", "/bin/true"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap();
        let linking = elf::linking(&true_bin).unwrap().unwrap();
        let libdir = root.join(format!("lib/{}", multiarch()));
        fs::create_dir_all(&libdir).unwrap();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::copy(&true_bin, root.join("usr/bin/true")).unwrap();
        for lib in &linking.needed {
            let real = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
                .iter()
                .flat_map(|d| [format!("{d}/{}/{lib}", multiarch()), format!("{d}/{lib}")])
                .map(PathBuf::from)
                .find(|p| p.exists())
                .unwrap();
            fs::copy(fs::canonicalize(real).unwrap(), libdir.join(lib)).unwrap();
        }
        let interp = linking.interpreter.unwrap();
        let base = Path::new(&interp).file_name().unwrap();
        fs::copy(fs::canonicalize(&interp).unwrap(), libdir.join(base)).unwrap();
        let link = root.join(interp.trim_start_matches('/'));
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(
            format!("/lib/{}/{}", multiarch(), base.to_string_lossy()),
            &link,
        )
        .unwrap();
        root
    }

    #[test]
    fn libraries_are_found_by_elf_needed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = fake_root(dir.path());
        let mut c = Closure::new(&root, "the test image");
        c.add("usr/bin/true").unwrap();
        let entries = c.into_entries();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let m = multiarch();
        assert!(paths.contains(&"usr/bin/true"), "{paths:?}");
        assert!(
            paths.contains(&format!("lib/{m}/libc.so.6").as_str()),
            "{paths:?}"
        );
        let interp = entries
            .iter()
            .find(|e| matches!(e.content, oci::Content::Symlink(_)))
            .expect("the loader's link");
        let oci::Content::Symlink(target) = &interp.content else {
            unreachable!()
        };
        assert!(paths.contains(&target.trim_start_matches('/')), "{paths:?}");

        // The layer of these entries: files keep the package's modes.
        let layer = oci::build_layer(&entries).unwrap();
        let files = read_tar(&gunzip(&layer.blob));
        assert_eq!(files[&format!("lib/{m}/")].1, 0o755);
        assert_eq!(
            files["usr/bin/true"].1,
            fs::metadata(root.join("usr/bin/true"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        );

        fs::remove_file(root.join(format!("lib/{m}/libc.so.6"))).unwrap();
        let mut c = Closure::new(&root, "the test image");
        let e = c.add("usr/bin/true").unwrap_err().to_string();
        assert!(e.contains("libc.so.6") && e.contains("usr/bin/true"), "{e}");
        assert!(e.contains("the test image"), "{e}");
    }

    #[test]
    fn links_resolve_inside_the_root() {
        assert_eq!(
            resolve_link("usr/sbin/iptables", "xtables-nft-multi"),
            "usr/sbin/xtables-nft-multi"
        );
        assert_eq!(
            resolve_link(
                "lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
            ),
            "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        );
        assert_eq!(resolve_link("usr/bin/a", "../../../../etc/x"), "etc/x");
    }
}
