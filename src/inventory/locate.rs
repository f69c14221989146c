//! Source positions of inventory fields, so semantic errors can point at `file:line:col`.
//!
//! serde_yaml reports positions only for syntax and type errors; this walks the YAML event
//! stream once and remembers where each key (`cluster.pod_cidr`) and list item
//! (`hosts[2]`) starts.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// Map from a field path such as `hosts[1].address` to where it appears in the file.
#[derive(Debug, Default)]
pub struct Positions {
    by_path: HashMap<String, Position>,
}

impl Positions {
    pub fn index(source: &str) -> Positions {
        let mut walker = Walker::default();
        // A syntax error is reported by serde_yaml with its own position; positions
        // gathered up to the error are still useful.
        let _ = Parser::new_from_str(source).load(&mut walker, false);
        Positions {
            by_path: walker.by_path,
        }
    }

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

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    by_path: HashMap<String, Position>,
}

impl Walker {
    fn record(&mut self, path: String, mark: Marker) {
        self.by_path.entry(path).or_insert(Position {
            line: mark.line(),
            col: mark.col() + 1,
        });
    }

    /// Path of the node that starts now (a value, or a list item), advancing the parent.
    fn child_path(&mut self) -> Option<String> {
        match self.stack.last_mut()? {
            Frame::Map { path, key } => key.take().map(|k| join(path, &k)),
            Frame::Seq { path, next } => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                }) = self.stack.last_mut()
                {
                    // A key: remember it; its value comes next.
                    let full = join(path, &value);
                    *key = Some(value);
                    self.record(full, mark);
                } else if let Some(p) = self.child_path() {
                    self.record(p, mark);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = self.child_path().unwrap_or_default();
                if !path.is_empty() {
                    self.record(path.clone(), mark);
                }
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map { path, key: None }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                self.child_path();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_list_items() {
        let src = "cluster:\n  name: a\nhosts:\n  - name: m1\n    address: 10.0.0.1\n  - name: m2\n    roles: [lb, etcd]\n";
        let pos = Positions::index(src);
        assert_eq!(pos.find("cluster.name"), Some(Position { line: 2, col: 3 }));
        assert_eq!(
            pos.find("hosts[0].address"),
            Some(Position { line: 5, col: 5 })
        );
        assert_eq!(
            pos.find("hosts[1].name"),
            Some(Position { line: 6, col: 5 })
        );
        assert_eq!(
            pos.find("hosts[1].roles[1]"),
            Some(Position { line: 7, col: 17 })
        );
        // Unknown paths fall back to the closest ancestor.
        assert_eq!(pos.find("hosts[1].ssh.port").map(|p| p.line), Some(6));
    }
}
