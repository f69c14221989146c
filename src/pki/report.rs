//! What [`Pki::ensure`](super::Pki::ensure) is asked to do ([`Options`]) and what it did
//! ([`Report`]: one [`Action`] per file).

/// What `certs` did with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    Kept,
    Reissued(String),
}

#[derive(Debug, Default)]
pub struct Report {
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
