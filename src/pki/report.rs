//! What [`Pki::ensure`](super::Pki::ensure) is asked to do ([`Options`]) and what it did
//! ([`Report`]: one [`Action`] per file).

/// What `certs` did with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    Kept,
    Reissued(String),
}

/// What `certs` did with a temporary file a killed run left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tidied {
    /// The certificate of a pair whose key was already in place, renamed into place: the
    /// file named is the certificate.
    Completed,
    /// Removed: the file it was for keeps its content.
    Removed,
}

#[derive(Debug, Default)]
pub struct Report {
    /// Temporary files of an interrupted run, by name relative to the directory, and what
    /// was done with them (before anything else).
    pub tidied: Vec<(String, Tidied)>,
    pub actions: Vec<(String, Action)>,
}

impl Report {
    pub fn changed(&self) -> usize {
        self.actions
            .iter()
            .filter(|(_, a)| *a != Action::Kept)
            .count()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Replace every CA (and so re-issue every leaf).
    pub rotate_cas: bool,
    /// Re-issue every leaf certificate even if it is still valid.
    pub renew_leaves: bool,
}
