//! The fetch run: lock the cache, then for each release artifact take the published
//! checksum, keep what already matches it, download (or resume) what does not, verify, and
//! install it (rename a binary into place, or extract an archive); then the images.
//!
//! Nothing reaches `{dir}/{name}` before its checksum was verified; files are written to a
//! temporary name and renamed, and `versions.json` is rewritten after each one.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::artifacts::{Artifact, Install};
use super::checksum::find_digest;
use super::disk::{lock_binaries_dir, remove_if_exists, remove_leftovers, set_mode, sync_dir};
use super::error::FetchError;
use super::extract::{self, Extract, Staged};
use super::http::{Client, Downloaded};
use super::images;
use super::manifest::{read_manifest, Manifest, ManifestEntry, MANIFEST_FILE};
use super::options::{artifacts, FetchOptions};
use super::report::{human, FetchReport, Outcome};
use super::run::Run;
use super::shown_url::RedactedUrl;
use crate::digest::sha256_file;

/// Downloaded archives and partial downloads, under the binaries directory.
pub const CACHE_DIR: &str = ".cache";

/// Downloads, verifies and installs the artifacts of `opts` into `opts.dir`, reporting one
/// line per step to `progress` (e.g. `kube-apiserver: downloaded 120.3 MB`).
///
/// Stops at the first error; what was completed before stays installed and recorded in
/// `versions.json`, and an interrupted download stays in `.cache` to be resumed.
pub fn fetch(
    opts: &FetchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<FetchReport, FetchError> {
    let list = artifacts(opts)?;
    let images = images::plan(&opts.images, &opts.mirror.registries)?;
    let dir = opts.dir.clone();
    let cache = dir.join(CACHE_DIR);
    let _lock = lock_binaries_dir(&dir)?;
    for sub in [Path::new(""), Path::new(super::artifacts::CNI_DIR)] {
        for left in remove_leftovers(&dir.join(sub))? {
            progress(&format!(
                "removed {}, a temporary file of an interrupted run",
                left.display()
            ));
        }
    }
    let manifest = match read_manifest(&dir) {
        Ok(m) => m,
        Err(e) => {
            progress(&format!(
                "{e}; starting a new {MANIFEST_FILE} (every file is verified again)"
            ));
            Manifest::default()
        }
    };
    let mut run = Run {
        client: Client::new(),
        dir,
        cache,
        arch: opts.arch.clone(),
        manifest,
        report: FetchReport::default(),
        progress,
    };
    for a in &list {
        match &a.install {
            Install::Binary { name } => run.binary(a, name)?,
            Install::Archive(what) => run.archive(a, what)?,
        }
    }
    for image in &images {
        run.image(image, &opts.mirror.registries)?;
    }
    Ok(run.report)
}

impl Run<'_> {
    fn expected_digest(&self, a: &Artifact) -> Result<String, FetchError> {
        let text = self.client.get_text(&a.checksum_url)?;
        find_digest(&text, &a.checksum_name).ok_or_else(|| FetchError::ChecksumMissing {
            url: a.checksum_url.clone(),
            file: a.checksum_name.clone(),
        })
    }

    fn entry(&self, a: &Artifact, sha256: &str, artifact_sha256: &str) -> ManifestEntry {
        ManifestEntry {
            component: a.component.name().into(),
            version: a.version.clone(),
            arch: self.arch.clone(),
            sha256: sha256.into(),
            url: RedactedUrl::new(&a.url).to_string(),
            artifact_sha256: artifact_sha256.into(),
        }
    }

    /// Downloads into `part` and checks the digest. A mismatch deletes the download; when it
    /// was a resumed one (the earlier bytes may be stale), it is downloaded once more from the
    /// start before giving up.
    fn download_verified(
        &mut self,
        a: &Artifact,
        part: &Path,
        expected: &str,
        label: &str,
    ) -> Result<Downloaded, FetchError> {
        match fs::metadata(part) {
            Ok(m) if m.len() > 0 => self.say(format!(
                "{label}: resuming {} from {}",
                RedactedUrl::new(&a.url),
                human(m.len())
            )),
            _ => self.say(format!("{label}: downloading {}", RedactedUrl::new(&a.url))),
        }
        let first = self.client.download(&a.url, part)?;
        self.report.transferred += first.transferred;
        if first.sha256 == expected {
            return Ok(first);
        }
        remove_if_exists(part)?;
        let last = if first.resumed {
            self.say(format!(
                "{label}: the resumed download does not match the published checksum; downloading it again from the start"
            ));
            let again = self.client.download(&a.url, part)?;
            self.report.transferred += again.transferred;
            if again.sha256 == expected {
                return Ok(again);
            }
            remove_if_exists(part)?;
            again
        } else {
            first
        };
        Err(FetchError::ChecksumMismatch {
            url: a.url.clone(),
            expected: expected.into(),
            actual: last.sha256,
        })
    }

    /// An artifact that is the executable itself, installed as `{dir}/{name}`.
    fn binary(&mut self, a: &Artifact, name: &str) -> Result<(), FetchError> {
        let expected = self.expected_digest(a)?;
        let target = self.dir.join(name);
        let have = sha256_file(&target).map_err(|e| FetchError::io(&target, e))?;
        let part = self.cache.join(format!("{}.part", a.cache_name));
        let (outcome, size) = if have.as_deref() == Some(expected.as_str()) {
            // A leftover partial download of what is already here is of no use.
            remove_if_exists(&part)?;
            set_mode(&target, 0o755)?;
            self.say(format!("{name}: cached ({})", a.version));
            let size = fs::metadata(&target)
                .map_err(|e| FetchError::io(&target, e))?
                .len();
            (Outcome::Cached, size)
        } else {
            let dl = self.download_verified(a, &part, &expected, name)?;
            set_mode(&part, 0o755)?;
            fs::rename(&part, &target).map_err(|e| FetchError::io(&target, e))?;
            sync_dir(&self.dir)?;
            let outcome = if dl.resumed {
                self.say(format!(
                    "{name}: resumed at {}, downloaded {} more ({})",
                    human(dl.resumed_from),
                    human(dl.transferred),
                    a.version
                ));
                Outcome::Resumed
            } else {
                self.say(format!(
                    "{name}: downloaded {} ({})",
                    human(dl.transferred),
                    a.version
                ));
                Outcome::Downloaded
            };
            (outcome, dl.size)
        };
        let entry = self.entry(a, &expected, &expected);
        self.manifest.files.insert(name.to_string(), entry);
        self.save_manifest()?;
        self.report.files.push((name.to_string(), outcome, size));
        Ok(())
    }

    /// An archive artifact: kept verified in `.cache/`, its executables extracted unless an
    /// earlier run extracted this very archive and the files are unchanged.
    fn archive(&mut self, a: &Artifact, what: &Extract) -> Result<(), FetchError> {
        let expected = self.expected_digest(a)?;
        let label = a.cache_name.clone();
        let archive = self.cache.join(&a.cache_name);
        let outcome = self.cached_or_downloaded_archive(a, &archive, &expected, &label)?;

        let component = a.component.name();
        let previous: Vec<(String, ManifestEntry)> = self
            .manifest
            .files
            .iter()
            .filter(|(_, e)| e.component == component)
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect();
        if self.extracted_and_intact(&previous, what, &expected)? {
            return self.keep_extracted(&previous, outcome, &label);
        }

        let staged = extract::stage(&archive, &label, what, &self.dir)?;
        self.move_into_place(&staged)?;
        // Files an older release of this component had and this one does not.
        for (name, _) in &previous {
            if !staged.iter().any(|s| &s.name == name) {
                remove_if_exists(&self.dir.join(name))?;
                self.manifest.files.remove(name);
            }
        }
        let mut names = Vec::new();
        for s in &staged {
            let entry = self.entry(a, &s.sha256, &expected);
            self.manifest.files.insert(s.name.clone(), entry);
            self.report.files.push((s.name.clone(), outcome, s.size));
            names.push(s.name.as_str());
        }
        self.save_manifest()?;
        let line = format!("{label}: extracted {} ({})", names.join(", "), a.version);
        self.say(line);
        Ok(())
    }

    /// The verified archive at `archive`: the one already there, or a download of it.
    fn cached_or_downloaded_archive(
        &mut self,
        a: &Artifact,
        archive: &Path,
        expected: &str,
        label: &str,
    ) -> Result<Outcome, FetchError> {
        let have = sha256_file(archive).map_err(|e| FetchError::io(archive, e))?;
        let part = self.cache.join(format!("{}.part", a.cache_name));
        if have.as_deref() == Some(expected) {
            remove_if_exists(&part)?;
            self.say(format!("{label}: cached"));
            return Ok(Outcome::Cached);
        }
        let dl = self.download_verified(a, &part, expected, label)?;
        fs::rename(&part, archive).map_err(|e| FetchError::io(archive, e))?;
        sync_dir(&self.cache)?;
        if dl.resumed {
            self.say(format!(
                "{label}: resumed at {}, downloaded {} more",
                human(dl.resumed_from),
                human(dl.transferred)
            ));
            Ok(Outcome::Resumed)
        } else {
            self.say(format!("{label}: downloaded {}", human(dl.transferred)));
            Ok(Outcome::Downloaded)
        }
    }

    /// Reports the files an earlier run extracted, their modes made exact again.
    fn keep_extracted(
        &mut self,
        previous: &[(String, ManifestEntry)],
        outcome: Outcome,
        label: &str,
    ) -> Result<(), FetchError> {
        let mut names = Vec::new();
        for (name, _) in previous {
            let path = self.dir.join(name);
            set_mode(&path, 0o755)?;
            let size = fs::metadata(&path)
                .map_err(|e| FetchError::io(&path, e))?
                .len();
            self.report.files.push((name.clone(), outcome, size));
            names.push(name.as_str());
        }
        self.say(format!("{label}: {} up to date", names.join(", ")));
        Ok(())
    }

    /// Renames every staged file to its target (the rest are discarded after a failure) and
    /// fsyncs the directories.
    fn move_into_place(&self, staged: &[Staged]) -> Result<(), FetchError> {
        let mut dirs = BTreeSet::new();
        for (i, s) in staged.iter().enumerate() {
            if let Err(e) = fs::rename(&s.tmp, &s.target) {
                for rest in &staged[i..] {
                    rest.discard();
                }
                return Err(FetchError::io(&s.target, e));
            }
            dirs.insert(s.target.parent().unwrap_or(&self.dir).to_path_buf());
        }
        for d in dirs {
            sync_dir(&d)?;
        }
        Ok(())
    }

    /// Whether an earlier run extracted everything of this exact archive and the files are
    /// unchanged since (by sha256).
    fn extracted_and_intact(
        &self,
        previous: &[(String, ManifestEntry)],
        what: &Extract,
        archive_sha256: &str,
    ) -> Result<bool, FetchError> {
        if !what
            .guaranteed_names()
            .iter()
            .all(|r| previous.iter().any(|(n, _)| n == r))
        {
            return Ok(false);
        }
        for (name, e) in previous {
            if e.artifact_sha256 != archive_sha256 || e.arch != self.arch {
                return Ok(false);
            }
            let path = self.dir.join(name);
            let have = sha256_file(&path).map_err(|err| FetchError::io(&path, err))?;
            if have.as_deref() != Some(e.sha256.as_str()) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
