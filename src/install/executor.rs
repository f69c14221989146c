//! Every side effect on a host goes through an [`Executor`]: a wet one does it and records
//! what changed, a dry one only records what would change. Reads go to the host either way,
//! so a dry run compares with what the host really has.

use super::change::Change;
use super::remote::Remote;
use super::StepError;

pub struct Executor<'r> {
    remote: &'r dyn Remote,
    dry: bool,
    changes: Vec<Change>,
}

impl<'r> Executor<'r> {
    pub fn wet(remote: &'r dyn Remote) -> Self {
        Executor {
            remote,
            dry: false,
            changes: Vec::new(),
        }
    }

    pub fn dry(remote: &'r dyn Remote) -> Self {
        Executor {
            remote,
            dry: true,
            changes: Vec::new(),
        }
    }

    pub fn is_dry(&self) -> bool {
        self.dry
    }

    /// The host, for reads (they change nothing, so a dry run makes them too).
    pub fn read(&self) -> &'r dyn Remote {
        self.remote
    }

    /// Does `act` (wet) and records `change`; a dry run records it only.
    pub fn change(
        &mut self,
        change: Change,
        act: impl FnOnce(&dyn Remote) -> Result<(), StepError>,
    ) -> Result<(), StepError> {
        if !self.dry {
            act(self.remote)?;
        }
        self.changes.push(change);
        Ok(())
    }

    /// A side effect that is no change of its own (a directory, a reload, the state file):
    /// done when wet, skipped when dry. Returns `act`'s result when it ran.
    pub fn effect<T>(
        &mut self,
        act: impl FnOnce(&dyn Remote) -> Result<T, StepError>,
    ) -> Result<Option<T>, StepError> {
        if self.dry {
            return Ok(None);
        }
        act(self.remote).map(Some)
    }

    /// A side effect with a read-only rehearsal: wet runs `act`, dry runs `rehearse`, which
    /// must change nothing (e.g. `kubectl apply --dry-run=server`), so that a dry run can
    /// report what the host itself says would change.
    pub fn act_or_rehearse<T>(
        &mut self,
        act: impl FnOnce(&dyn Remote) -> Result<T, StepError>,
        rehearse: impl FnOnce(&dyn Remote) -> T,
    ) -> Result<T, StepError> {
        if self.dry {
            Ok(rehearse(self.remote))
        } else {
            act(self.remote)
        }
    }

    /// Records a change an effect reported (e.g. kubectl's output).
    pub fn record(&mut self, change: Change) {
        self.changes.push(change);
    }

    pub fn into_changes(self) -> Vec<Change> {
        self.changes
    }
}
