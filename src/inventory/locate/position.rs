//! `Position` (line and column) and `Positions`, the index from field paths to positions.

use std::collections::HashMap;
use yaml_rust2::scanner::Marker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Position {
    pub(super) fn of(mark: &Marker) -> Position {
        Position {
            line: mark.line(),
            col: mark.col() + 1,
        }
    }
}

/// Map from a field path such as `hosts[1].address` to where it appears in the file.
#[derive(Debug, Default)]
pub struct Positions {
    pub(super) by_path: HashMap<String, Position>,
}

impl Positions {
    /// Position of `path`, or of its closest recorded ancestor.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.by_path.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}
