//! `Checker`: where every check records its problems, each located by its field path.

use crate::inventory::diagnostic::{Diagnostic, Severity};
use crate::inventory::locate::Positions;
use std::collections::HashSet;

pub(super) struct Checker<'a> {
    positions: &'a Positions,
    problems: Vec<Diagnostic>,
    /// Fields refused for their length: no other check reports on them (their messages
    /// would quote the whole value).
    too_long: HashSet<String>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(positions: &'a Positions) -> Checker<'a> {
        Checker {
            positions,
            problems: Vec::new(),
            too_long: HashSet::new(),
        }
    }

    fn push(&mut self, severity: Severity, field: &str, message: impl Into<String>) {
        if self.too_long.contains(field) {
            return;
        }
        self.problems.push(Diagnostic {
            severity,
            field: field.to_string(),
            position: self.positions.find(field),
            message: message.into(),
        });
    }

    pub(super) fn error(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Error, field, message);
    }

    pub(super) fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Warning, field, message);
    }

    /// Reports `field` as too long and silences every later check of it.
    pub(super) fn too_long(&mut self, field: String, message: String) {
        self.error(&field, message);
        self.too_long.insert(field);
    }

    pub(super) fn has_errors(&self) -> bool {
        self.problems.iter().any(|d| d.severity == Severity::Error)
    }

    /// Every problem, in the order the checks found them.
    pub(super) fn into_problems(self) -> Vec<Diagnostic> {
        self.problems
    }
}
