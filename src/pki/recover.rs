//! What a run killed part-way left in the PKI directory: the temporary files of
//! [`Pki::write_together`]. Files are renamed into place key first, so a leftover
//! certificate whose public key is that of the key now in place is the second half of a
//! pair whose first half was committed: it is completed. Every other leftover is removed
//! (the files it was for still hold their old content).

use super::error::PkiError;
use super::inspect::key_matches;
use super::report::Tidied;
use super::store::{Pki, SUBDIRS};
use crate::fsutil::{leftover_temp_files, sync_dir, temp_target};
use std::fs;

impl Pki {
    /// The leftover temporary files, relative to the directory, sorted.
    pub(super) fn leftovers(&self) -> Result<Vec<String>, PkiError> {
        let mut found = Vec::new();
        for sub in std::iter::once("").chain(SUBDIRS) {
            let dir = self.path(sub);
            let files = leftover_temp_files(&dir).map_err(|source| PkiError::Io {
                path: dir.clone(),
                source,
            })?;
            for path in files {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                found.push(match sub {
                    "" => name.into_owned(),
                    sub => format!("{sub}/{name}"),
                });
            }
        }
        Ok(found)
    }

    /// Completes or removes each leftover; only under the exclusive lock (no other run
    /// can be writing them).
    pub(super) fn recover(&self) -> Result<Vec<(String, Tidied)>, PkiError> {
        let mut tidied = Vec::new();
        for rel in self.leftovers()? {
            let (sub, name) = rel.rsplit_once('/').unwrap_or(("", &rel));
            let target = match (sub, temp_target(name)) {
                (_, None) => continue,
                ("", Some(t)) => t.to_string(),
                (sub, Some(t)) => format!("{sub}/{t}"),
            };
            let io = |path, source| PkiError::Io { path, source };
            let (from, to) = (self.path(&rel), self.path(&target));
            if self.completes_pair(&rel, &target) {
                fs::rename(&from, &to).map_err(|e| io(from.clone(), e))?;
                let dir = to.parent().unwrap_or(&self.dir).to_path_buf();
                sync_dir(&dir).map_err(|e| io(dir, e))?;
                tidied.push((target, Tidied::Completed));
            } else {
                // A link is removed, not followed.
                fs::remove_file(&from).map_err(|e| io(from.clone(), e))?;
                tidied.push((rel, Tidied::Removed));
            }
        }
        Ok(tidied)
    }

    /// Whether the temporary file `tmp` is the certificate `target` of a pair whose key
    /// was renamed into place: it belongs to the key, and the certificate in place does not.
    fn completes_pair(&self, tmp: &str, target: &str) -> bool {
        let Some(stem) = target.strip_suffix(".crt") else {
            return false;
        };
        let Ok(key) = self.read_key(&format!("{stem}.key")) else {
            return false;
        };
        let in_place = self.read_certificate(target);
        if in_place.is_ok_and(|der| key_matches(&der, &key)) {
            return false;
        }
        self.read_certificate(tmp)
            .is_ok_and(|der| key_matches(&der, &key))
    }
}
