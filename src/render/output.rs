//! Writing a plan to disk (`render --out`), and the rule that keeps it from replacing
//! anything it did not write itself.

use super::{Plan, RenderError};
use crate::fsutil::resolve;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// File at the top of every rendered tree. Its presence marks a directory as an earlier
/// `render` output, which the next render may replace whole.
pub const OUTPUT_MARKER: &str = ".k8s-boot-render";
const MARKER_TEXT: &[u8] =
    b"Written by `k8s-boot render`. The next render replaces this directory whole.\n";

/// Refuses an output directory `render` must not replace: anything but a directory (a file,
/// a symbolic link), a non-empty directory without [`OUTPUT_MARKER`], and any path that is,
/// contains or lies inside the PKI or templates directory, or that is or contains the
/// inventory's directory. Checked before anything is written.
pub fn check_output_dir(
    out: &Path,
    inventory: &Path,
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
    let inventory_dir = resolve(inventory.parent().unwrap_or(Path::new(".")));
    let mut guarded = vec![("the PKI directory", resolve(pki_dir), true)];
    if let Some(t) = templates {
        guarded.push(("the templates directory", resolve(t), true));
    }
    guarded.push(("the inventory's directory", inventory_dir, false));
    if let Some((what, _, _)) = guarded.iter().find(|(_, dir, _)| target == *dir) {
        return refuse(format!("is {what}"));
    }
    for (what, dir, inside_too) in &guarded {
        if dir.starts_with(&target) {
            return refuse(format!("contains {what} ({})", dir.display()));
        }
        if *inside_too && target.starts_with(dir) {
            return refuse(format!("lies inside {what} ({})", dir.display()));
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
/// leaves a half-written `out`.
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
    let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let mut files: Vec<(PathBuf, &[u8], u32)> = Vec::new();
    for h in &plan.hosts {
        for f in &h.files {
            let rel = f.path.trim_start_matches('/');
            files.push((
                staging.join("hosts").join(&h.name).join(rel),
                &f.bytes,
                f.mode,
            ));
        }
    }
    for f in &plan.cluster_files {
        files.push((staging.join("cluster").join(&f.path), &f.bytes, f.mode));
    }
    let mut json = serde_json::to_vec_pretty(plan).expect("plan serializes");
    json.push(b'\n');
    files.push((staging.join("plan.json"), &json, 0o644));
    let count = files.len();
    files.push((staging.join(OUTPUT_MARKER), MARKER_TEXT, 0o644));
    let result = (|| {
        // Each directory once, parents first (sorted paths): metadata operations
        // dominate the cost of a render.
        let mut dirs: BTreeSet<&Path> = BTreeSet::new();
        for (p, _, _) in &files {
            dirs.extend(
                p.ancestors()
                    .skip(1)
                    .take_while(|a| a.starts_with(&staging)),
            );
        }
        for d in dirs {
            fs::create_dir(d).map_err(io(d))?;
        }
        for (p, bytes, mode) in &files {
            write_file(p, bytes, *mode).map_err(io(p))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let had_old = out.exists();
    if had_old {
        if let Err(e) = fs::rename(out, &old) {
            let _ = fs::remove_dir_all(&staging);
            return Err(io(out)(e));
        }
    }
    if let Err(e) = fs::rename(&staging, out) {
        // Put the previous tree back rather than leave nothing at `out`.
        if had_old {
            let _ = fs::rename(&old, out);
        }
        let _ = fs::remove_dir_all(&staging);
        return Err(io(out)(e));
    }
    let _ = fs::remove_dir_all(&old);
    Ok(count)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    // The umask may have narrowed the mode at creation.
    f.set_permissions(fs::Permissions::from_mode(mode))
}
