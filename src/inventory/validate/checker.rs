//! `Checker`: where every check records its problems, each located by its field path.

use crate::inventory::diagnostic::{Diagnostic, Severity};
use crate::inventory::locate::Positions;
use std::collections::HashSet;

pub(super) struct Checker<'a> {
    positions: &'a Positions,
    problems: Vec<Diagnostic>,
    /// Fields refused for their length or their characters: no other check reports on them
    /// (their messages would quote a long or unprintable value).
    refused: HashSet<String>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(positions: &'a Positions) -> Checker<'a> {
        Checker {
            positions,
            problems: Vec::new(),
            refused: HashSet::new(),
        }
    }

    fn push(&mut self, severity: Severity, field: &str, message: impl Into<String>) {
        if self.refused.contains(field) {
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

    /// Reports `field`'s value as unusable as text (too long, unprintable) and silences
    /// every later check of it.
    pub(super) fn refuse_value(&mut self, field: String, message: String) {
        self.error(&field, message);
        self.refused.insert(field);
    }

    /// `line L` of `field` in the file, for a message that names a second field.
    pub(super) fn line_of(&self, field: &str) -> String {
        match self.positions.find(field) {
            Some(p) => format!("line {}", p.line),
            None => "not in the file".into(),
        }
    }

    pub(super) fn has_errors(&self) -> bool {
        self.problems.iter().any(|d| d.severity == Severity::Error)
    }

    /// Every problem, in the order the checks found them.
    pub(super) fn into_problems(self) -> Vec<Diagnostic> {
        self.problems
    }
}
