//! An image's archive: built from its recipe unless the recorded inputs match, written
//! atomically with `oci`'s writer, and pruned when no longer wanted.

use super::recipe::{contents, recipe};
use super::scratch::WorkDir;
use super::spec::{archive_file_name, normalize, Image, ImageInputs, ImageNames};
use crate::fetch;
use crate::fsutil::write_atomic;
use crate::lab::error::{io_err, LabError};
use crate::oci::{self, OciError};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn inputs_file(images: &Path, archive: &str) -> PathBuf {
    images.join(format!(".{archive}.inputs"))
}

/// Removes archives this module built for images that are no longer in `opts.names` (those
/// with an inputs record; archives from `fetch` are left alone). A directory none of whose
/// images is wanted (the conformance images when they are not asked for) is left as it is.
/// Removes the archives under `binaries_dir` (and their inputs records) of images no longer
/// wanted: another tag, another version. Not for the build cache, which every lab directory
/// and version shares.
pub fn prune(
    binaries_dir: &Path,
    names: &ImageNames,
    progress: &mut dyn FnMut(String),
) -> Result<(), LabError> {
    let mut wanted: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for image in Image::all() {
        if let Some(reference) = image.reference(names) {
            wanted
                .entry(image.dir())
                .or_default()
                .insert(archive_file_name(reference)?);
        }
    }
    for dir in [super::IMAGES_DIR, crate::conformance::IMAGES_DIR] {
        let wanted = wanted.remove(dir).unwrap_or_default();
        prune_dir(&binaries_dir.join(dir), &wanted, progress)?;
    }
    Ok(())
}

fn prune_dir(
    images: &Path,
    wanted: &BTreeSet<String>,
    progress: &mut dyn FnMut(String),
) -> Result<(), LabError> {
    let Ok(rd) = fs::read_dir(images) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // An archive, or the record of what one was built from.
        let archive = match name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".inputs"))
        {
            Some(archive) => archive.to_string(),
            None if name.ends_with(".tar") => name.clone(),
            None => continue,
        };
        if wanted.contains(&archive) {
            continue;
        }
        fs::remove_file(e.path()).map_err(io_err("cannot remove", &e.path()))?;
        if archive == name {
            progress(format!("image archive {archive}: removed (no longer used)"));
        }
    }
    Ok(())
}

/// Builds one image's archive unless its recorded inputs match; returns its path. The
/// archive names the image normalized (see [`normalize`]).
pub fn build(
    image: Image,
    opts: &ImageInputs,
    progress: &mut dyn FnMut(String),
) -> Result<PathBuf, LabError> {
    let started = Instant::now();
    let Some(wanted) = image.reference(&opts.names) else {
        return Err(LabError::Options(format!(
            "no image name for {image:?} (the chat is disabled)"
        )));
    };
    let image_ref = normalize(wanted)?;
    let reference = image_ref.full();
    let dir = image.dir();
    let images = opts.binaries_dir.join(dir);
    let file = fetch::archive_name(&image_ref);
    let archive = images.join(&file);
    let record = inputs_file(&images, &file);
    let recipe = recipe(image, &reference, opts)?;
    if archive.is_file() && fs::read_to_string(&record).is_ok_and(|r| r == recipe) {
        progress(format!("image {reference}: cached ({dir}/{file})"));
        return Ok(archive);
    }
    fs::create_dir_all(&images).map_err(io_err("cannot create", &images))?;
    let work = WorkDir(images.join(format!(".work-{file}-{}", std::process::id())));
    fs::create_dir_all(work.path()).map_err(io_err("cannot create", work.path()))?;
    let (entries, config) = contents(image, opts, work.path())?;
    let layer = oci::build_layer(&entries).map_err(oci_err(&archive))?;
    // The old record goes first: after a crash before the new one is written there is no
    // record, so the next run rebuilds (the archive itself is replaced atomically).
    let _ = fs::remove_file(&record);
    oci::write_image(&archive, &reference, &config, &[layer]).map_err(oci_err(&archive))?;
    write_atomic(&record, recipe.as_bytes(), 0o644).map_err(io_err("cannot write", &record))?;
    let size = fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    progress(format!(
        "image {reference}: built in {:.1} s ({dir}/{file}, {:.1} MB)",
        started.elapsed().as_secs_f64(),
        size as f64 / 1e6
    ));
    Ok(archive)
}

fn oci_err(archive: &Path) -> impl FnOnce(OciError) -> LabError + '_ {
    move |e| match e {
        OciError::Io {
            action,
            path,
            source,
        } => LabError::Io {
            action: action.into(),
            path,
            source,
        },
        e => LabError::State {
            path: archive.to_path_buf(),
            message: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::elf;
    use super::super::testing::{fake_pause_source, inputs};
    use super::*;
    use crate::oci::tests::{open_archive, python_check, read_tar};
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    #[test]
    fn pause_image_is_built_cached_and_rebuilt_when_its_source_changes() {
        let dir = tempfile::tempdir().unwrap();
        let opts = inputs(dir.path());
        fake_pause_source(&opts, "one");
        let mut lines = Vec::new();
        let archive = build(Image::Pause, &opts, &mut |l| lines.push(l)).unwrap();
        assert_eq!(
            archive,
            opts.binaries_dir
                .join("images/registry.k8s.io_pause_3.10.2.tar")
        );
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("image registry.k8s.io/pause:3.10.2: built in "),
            "{lines:?}"
        );
        let bytes = fs::read(&archive).unwrap();
        let (index, _, config, layers) = open_archive(&bytes);
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "registry.k8s.io/pause:3.10.2"
        );
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "3.10.2"
        );
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/pause"])
        );
        assert_eq!(config["config"]["User"], "65535:65535");
        let files = read_tar(&layers[0]);
        assert_eq!(files.keys().collect::<Vec<_>>(), ["pause"]);
        assert_eq!(files["pause"].1, 0o755);

        // The program in the image is the compiled source, static, with upstream's define.
        let bin = dir.path().join("pause-out");
        fs::write(&bin, &files["pause"].5).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(&bin).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "v3.10.2-v1.37.2 one\n"
        );
        let linking = elf::linking(&bin).unwrap().unwrap();
        assert_eq!(linking, elf::Linking::default(), "statically linked");
        assert!(python_check(&archive).starts_with("registry.k8s.io/pause:3.10.2 3.10.2\n"));

        // Same inputs: kept as is.
        let modified = fs::metadata(&archive).unwrap().modified().unwrap();
        lines.clear();
        build(Image::Pause, &opts, &mut |l| lines.push(l)).unwrap();
        assert_eq!(
            lines,
            ["image registry.k8s.io/pause:3.10.2: cached (images/registry.k8s.io_pause_3.10.2.tar)"]
        );
        assert_eq!(
            fs::metadata(&archive).unwrap().modified().unwrap(),
            modified
        );

        // Deterministic: the same inputs elsewhere give the same bytes.
        let mut other = opts.clone();
        other.binaries_dir = dir.path().join("other");
        let again = build(Image::Pause, &other, &mut |_| {}).unwrap();
        assert_eq!(fs::read(again).unwrap(), bytes);

        // Another source: rebuilt. Another tag: another archive, the old one pruned.
        fake_pause_source(&opts, "two");
        lines.clear();
        build(Image::Pause, &opts, &mut |l| lines.push(l)).unwrap();
        assert!(lines[0].contains(": built in "), "{lines:?}");
        assert_ne!(fs::read(&archive).unwrap(), bytes);
        let mut older = opts.clone();
        older.names.pause = "registry.k8s.io/pause:3.10.1".into();
        build(Image::Pause, &older, &mut |_| {}).unwrap();
        lines.clear();
        prune(&opts.binaries_dir, &opts.names, &mut |l| lines.push(l)).unwrap();
        assert_eq!(
            lines,
            ["image archive registry.k8s.io_pause_3.10.1.tar: removed (no longer used)"]
        );
        let mut left: Vec<String> = fs::read_dir(opts.binaries_dir.join("images"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".registry.k8s.io_pause_3.10.2.tar.inputs",
                "registry.k8s.io_pause_3.10.2.tar"
            ]
        );
    }

    #[test]
    fn missing_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let opts = inputs(dir.path());
        let e = build(Image::Pause, &opts, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("build/pause/linux/pause.c"), "{e}");
        let e = build(Image::Coredns, &opts, &mut |_| {}).unwrap_err();
        assert!(
            e.to_string().contains("cannot read the CoreDNS program"),
            "{e}"
        );
        assert!(e.to_string().contains("coredns"), "{e}");
        let mut bad = opts.clone();
        bad.names.chat = Some("docker.io/library/node".into());
        let e = build(Image::Chat, &bad, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("NAME:TAG"), "{e}");
        bad.names.chat = None;
        let e = build(Image::Chat, &bad, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("chat is disabled"), "{e}");
    }
}
