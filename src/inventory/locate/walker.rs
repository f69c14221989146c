//! The walk over the YAML events of one document: field paths with their positions, and
//! the bounds counted as it goes. Never recursive: the open nodes are a stack.

use super::bounds::{Bounds, Exceeded, Opened};
use super::position::{Position, Positions};
use std::collections::HashMap;
use yaml_rust2::parser::Event;
use yaml_rust2::scanner::Marker;

/// Field paths longer than this are not recorded (no schema path comes close); this keeps
/// the index linear in the size of the file however deep and long the keys are.
pub(super) const MAX_TRACKED_PATH: usize = 128;

/// An open mapping or sequence. `path` is None below a path too long to record.
enum Frame {
    Map {
        path: Option<String>,
        /// The key whose value comes next: `Some(None)` for a key that is not tracked.
        key: Option<Option<String>>,
        opened: Opened,
    },
    Seq {
        path: Option<String>,
        next: usize,
        opened: Opened,
    },
}

#[derive(Default)]
pub(super) struct Walker {
    stack: Vec<Frame>,
    by_path: HashMap<String, Position>,
    bounds: Bounds,
}

impl Walker {
    pub(super) fn on_event(&mut self, ev: Event, mark: Marker) -> Result<(), Exceeded> {
        match ev {
            Event::Scalar(value, _, anchor, _) => self.on_scalar(value, anchor, mark),
            Event::MappingStart(anchor, _) => self.on_open(anchor, mark, true),
            Event::SequenceStart(anchor, _) => self.on_open(anchor, mark, false),
            Event::MappingEnd | Event::SequenceEnd => {
                self.on_close();
                Ok(())
            }
            Event::Alias(id) => self.on_alias(id),
            _ => Ok(()),
        }
    }

    pub(super) fn into_positions(self) -> Positions {
        Positions {
            by_path: self.by_path,
        }
    }

    /// A key (its value comes next) or a value.
    fn on_scalar(&mut self, value: String, anchor: usize, mark: Marker) -> Result<(), Exceeded> {
        self.bounds.scalar(value.len(), anchor)?;
        if let Some(Frame::Map {
            path,
            key: key @ None,
            ..
        }) = self.stack.last_mut()
        {
            let full = path.as_deref().and_then(|p| join(p, &value));
            *key = Some(full.is_some().then_some(value));
            self.record(full, mark);
        } else {
            let p = self.child_path();
            self.record(p, mark);
        }
        Ok(())
    }

    fn on_open(&mut self, anchor: usize, mark: Marker, mapping: bool) -> Result<(), Exceeded> {
        let opened = self.bounds.open(self.stack.len(), anchor)?;
        let path = if self.stack.is_empty() {
            Some(String::new())
        } else {
            let p = self.child_path();
            if p.is_some() {
                self.record(p.clone(), mark);
            }
            p
        };
        self.stack.push(if mapping {
            Frame::Map {
                path,
                key: None,
                opened,
            }
        } else {
            Frame::Seq {
                path,
                next: 0,
                opened,
            }
        });
        Ok(())
    }

    fn on_close(&mut self) {
        if let Some(Frame::Map { opened, .. } | Frame::Seq { opened, .. }) = self.stack.pop() {
            self.bounds.close(opened);
        }
    }

    /// A key that is an alias is not tracked; its value is not either.
    fn on_alias(&mut self, id: usize) -> Result<(), Exceeded> {
        self.bounds.alias(id)?;
        match self.stack.last_mut() {
            Some(Frame::Map {
                key: key @ None, ..
            }) => *key = Some(None),
            _ => {
                self.child_path();
            }
        }
        Ok(())
    }

    fn record(&mut self, path: Option<String>, mark: Marker) {
        if let Some(path) = path {
            self.by_path.entry(path).or_insert(Position::of(&mark));
        }
    }

    /// Path of the node that starts now (a value, or a list item), advancing the parent.
    /// `None` at the top level or where paths are not tracked.
    fn child_path(&mut self) -> Option<String> {
        match self.stack.last_mut()? {
            Frame::Map { path, key, .. } => {
                let k = key.take().flatten()?;
                join(path.as_deref()?, &k)
            }
            Frame::Seq { path, next, .. } => {
                let i = *next;
                *next += 1;
                let p = format!("{}[{i}]", path.as_deref()?);
                (p.len() <= MAX_TRACKED_PATH).then_some(p)
            }
        }
    }
}

/// `parent.key`, or `None` when that is longer than the paths worth recording.
fn join(parent: &str, key: &str) -> Option<String> {
    let p = if parent.is_empty() {
        key.to_string()
    } else {
        if parent.len() + 1 + key.len() > MAX_TRACKED_PATH {
            return None;
        }
        format!("{parent}.{key}")
    };
    (p.len() <= MAX_TRACKED_PATH).then_some(p)
}
