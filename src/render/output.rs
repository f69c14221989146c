//! Writing a plan to disk (`render --out`), and the rule that keeps it from replacing
//! anything it did not write itself.

use super::staging::{self, TreeFile};
use super::{Plan, RenderError};
use crate::fsutil::{self, remove_tree, resolve, swap_in_dir, LockMode};
use crate::inventory::Cluster;
use std::fs;
use std::path::{Path, PathBuf};

/// File at the top of every rendered tree. Its presence marks a directory as an earlier
/// `render` output, which the next render may replace whole.
pub const OUTPUT_MARKER: &str = ".k8s-boot-render";
const MARKER_TEXT: &[u8] =
    b"Written by `k8s-boot render`. The next render replaces this directory whole.\n";

/// Something `render --out` must not replace: the output directory may be neither it, nor
/// contain it, nor (unless `may_hold_out`) lie inside it.
struct Guarded {
    /// What it is, for the message: `the PKI directory`, `ssh.key of the inventory`.
    what: String,
    path: PathBuf,
    may_hold_out: bool,
}

impl Guarded {
    fn new(what: impl Into<String>, path: &Path, may_hold_out: bool) -> Guarded {
        Guarded {
            what: what.into(),
            path: path.to_path_buf(),
            may_hold_out,
        }
    }

    /// The places on disk this stands for: the path with every link resolved and, when the
    /// path is itself a symbolic link, the link (replacing `out` would delete it too).
    fn places(&self) -> Vec<PathBuf> {
        let resolved = resolve(&self.path);
        let link = match (self.path.parent(), self.path.file_name()) {
            (Some(parent), Some(name)) => resolve(parent).join(name),
            _ => resolved.clone(),
        };
        if link == resolved {
            vec![resolved]
        } else {
            vec![resolved, link]
        }
    }
}

/// Everything a render output must keep clear of: the PKI and templates directories, the
/// inventory file and its directory (which the output may lie inside), and every local path
/// the inventory names ([`Cluster::local_paths`]).
fn guarded(cluster: &Cluster, pki_dir: &Path, templates: Option<&Path>) -> Vec<Guarded> {
    let mut all = vec![Guarded::new("the PKI directory", pki_dir, false)];
    if let Some(t) = templates {
        all.push(Guarded::new("the templates directory", t, false));
    }
    let inventory_dir = match cluster.file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    all.push(Guarded::new(
        "the inventory's directory",
        inventory_dir,
        true,
    ));
    all.push(Guarded::new("the inventory file", &cluster.file, false));
    for named in cluster.local_paths() {
        all.push(Guarded::new(
            format!("`{}` of the inventory", named.field),
            &named.path,
            false,
        ));
    }
    all
}

/// Refuses an output directory `render` must not replace: anything but a directory (a file,
/// a symbolic link), a non-empty directory without [`OUTPUT_MARKER`], and any path that is,
/// contains or lies inside the PKI or templates directory, the inventory file or a file or
/// directory the inventory names, or that is or contains the inventory's directory. Paths
/// are compared with symbolic links resolved. Checked before anything is written.
pub fn check_output_dir(
    out: &Path,
    cluster: &Cluster,
    pki_dir: &Path,
    templates: Option<&Path>,
) -> Result<(), RenderError> {
    let refuse = |reason: String| {
        Err(RenderError::Output {
            path: out.to_path_buf(),
            reason,
        })
    };
    let target = resolve(out);
    let guarded = guarded(cluster, pki_dir, templates);
    // An exact match first: `is the inventory's directory` says more than `contains ...`.
    for g in &guarded {
        if g.places().contains(&target) {
            return refuse(format!("is {} ({})", g.what, g.path.display()));
        }
    }
    for g in &guarded {
        for place in g.places() {
            if place.starts_with(&target) {
                return refuse(format!(
                    "contains {} ({}), which render would delete; give a directory that \
                     holds nothing the inventory or the command names",
                    g.what,
                    place.display()
                ));
            }
            if !g.may_hold_out && target.starts_with(&place) {
                return refuse(format!("lies inside {} ({})", g.what, place.display()));
            }
        }
    }
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RenderError::Io {
            path: out.to_path_buf(),
            source,
        }),
        Ok(meta) if meta.file_type().is_symlink() => {
            refuse("is a symbolic link; give the directory itself".into())
        }
        Ok(meta) if !meta.is_dir() => refuse("exists and is not a directory".into()),
        Ok(_) => {
            let io = |source| RenderError::Io {
                path: out.to_path_buf(),
                source,
            };
            let empty = fs::read_dir(out).map_err(io)?.next().is_none();
            let marked = fs::symlink_metadata(out.join(OUTPUT_MARKER))
                .is_ok_and(|m| m.file_type().is_file());
            if empty || marked {
                Ok(())
            } else {
                refuse(format!(
                    "exists and is not an earlier render output (it has no {OUTPUT_MARKER}); \
                     give a new or empty directory"
                ))
            }
        }
    }
}

/// Writes the plan under `out` (replacing an earlier output whole) and returns the number of
/// files. Call [`check_output_dir`] first.
///
/// The tree is built in a sibling directory and swapped in, so an interrupted render never
/// leaves a half-written `out`. Files an earlier output holds unchanged are hard-linked from
/// it rather than written again (see [`staging::build`]).
pub fn write_tree(plan: &Plan, out: &Path) -> Result<usize, RenderError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Io { path, source }
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io(&parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rendered".into());
    // One render into `out` at a time; the lock file lies next to `out`, which is swapped.
    let _lock = lock_output(&parent, &name)?;
    remove_leftovers(&parent, &name);
    let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let mut json = serde_json::to_vec_pretty(plan).expect("plan serializes");
    json.push(b'\n');
    let files = tree_files(plan, &json);
    // check_output_dir accepted `out`: with the marker it is an earlier output.
    let previous = fs::symlink_metadata(out.join(OUTPUT_MARKER))
        .is_ok_and(|m| m.file_type().is_file())
        .then_some(out);
    if let Err(e) = staging::build(&staging, &files, previous) {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    let aside = parent.join(format!(".{name}.old-{}", std::process::id()));
    match swap_in_dir(&staging, out, &aside) {
        Ok(Some(old)) => {
            let _ = remove_tree(&old);
        }
        Ok(None) => {}
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(io(out)(e));
        }
    }
    // The marker is not counted.
    Ok(files.len() - 1)
}

/// The exclusive lock on `.<name>.lock` in `parent`.
fn lock_output(parent: &Path, name: &str) -> Result<fsutil::Lock, RenderError> {
    fsutil::lock(&parent.join(format!(".{name}.lock")), LockMode::Exclusive).map_err(|e| match e {
        fsutil::LockError::Busy { path, holder } => RenderError::Busy { path, holder },
        e => RenderError::Io {
            path: parent.join(format!(".{name}.lock")),
            source: std::io::Error::other(e.to_string()),
        },
    })
}

/// Removes the staging and set-aside trees (`.<name>.new-<pid>`, `.<name>.old-<pid>`) of
/// renders that were killed: under the lock no other render is using them. A link of that
/// name is removed, not followed.
fn remove_leftovers(parent: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let leftover = [".new-", ".old-"].iter().any(|mark| {
            file_name
                .strip_prefix(&format!(".{name}{mark}"))
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        });
        if leftover {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Every file of the output tree, relative to its root: hosts, cluster files, `plan.json`
/// and the marker.
fn tree_files<'a>(plan: &'a Plan, json: &'a [u8]) -> Vec<TreeFile<'a>> {
    let mut files = Vec::new();
    for h in &plan.hosts {
        for f in &h.files {
            let rel = f.path.trim_start_matches('/');
            files.push(TreeFile {
                rel: Path::new("hosts").join(&h.name).join(rel),
                bytes: &f.bytes,
                mode: f.mode,
            });
        }
    }
    for f in &plan.cluster_files {
        files.push(TreeFile {
            rel: Path::new("cluster").join(&f.path),
            bytes: &f.bytes,
            mode: f.mode,
        });
    }
    files.push(TreeFile {
        rel: PathBuf::from("plan.json"),
        bytes: json,
        mode: 0o644,
    });
    files.push(TreeFile {
        rel: PathBuf::from(OUTPUT_MARKER),
        bytes: MARKER_TEXT,
        mode: 0o644,
    });
    files
}
