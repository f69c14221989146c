//! Source positions of inventory fields, so semantic errors can point at `file:line:col`,
//! and the bounds every inventory document must stay within before serde_yaml sees it.
//!
//! serde_yaml reports positions only for syntax and type errors; this walks the YAML event
//! stream once and remembers where each key (`cluster.pod_cidr`) and list item
//! (`hosts[2]`) starts. The same walk refuses what would make parsing expensive: syntax
//! errors (serde_yaml may report a type error from the events before them instead), nesting
//! deeper than [`MAX_DEPTH`], more than [`MAX_ALIASES`] aliases, and aliases that expand the
//! document beyond [`MAX_EXPANDED_BYTES`] (the "billion laughs" document).

use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// Deepest nesting of mappings and sequences accepted (an inventory needs 4).
pub const MAX_DEPTH: usize = 32;
/// Most aliases (`*name`) a document may use.
pub const MAX_ALIASES: usize = 1024;
/// Largest size of the document with every alias replaced by a copy of its anchored node,
/// counted as the bytes of every scalar plus one per node.
pub const MAX_EXPANDED_BYTES: u64 = 4 << 20;
/// Field paths longer than this are not recorded (no schema path comes close); this keeps
/// the index linear in the size of the file however deep and long the keys are.
const MAX_TRACKED_PATH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Position {
    fn of(mark: &Marker) -> Position {
        Position {
            line: mark.line(),
            col: mark.col() + 1,
        }
    }
}

/// Map from a field path such as `hosts[1].address` to where it appears in the file.
#[derive(Debug, Default)]
pub struct Positions {
    by_path: HashMap<String, Position>,
}

/// Why a document was refused before deserialization: where, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanProblem {
    pub position: Position,
    pub message: String,
    /// A YAML syntax error (rather than a bound exceeded).
    pub syntax: bool,
}

impl Positions {
    /// The positions of every field of the first document (as far as it parses).
    pub fn index(source: &str) -> Positions {
        scan(source).0
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

/// Walks the first document of `source`: its field positions, and the first reason to refuse
/// it (a syntax error or a bound exceeded), if any. Never recursive and never expands an
/// alias, so time and memory stay linear in the size of `source`.
pub fn scan(source: &str) -> (Positions, Option<ScanProblem>) {
    let mut walker = Walker::default();
    let mut parser = Parser::new_from_str(source);
    let problem = loop {
        match parser.next_token() {
            Ok((Event::StreamEnd | Event::DocumentEnd, _)) => break None,
            Ok((ev, mark)) => {
                if let Err(message) = walker.on_event(ev, mark) {
                    break Some(ScanProblem {
                        position: Position::of(&mark),
                        message,
                        syntax: false,
                    });
                }
            }
            Err(e) => {
                break Some(ScanProblem {
                    position: Position::of(e.marker()),
                    message: format!("YAML syntax error: {}", e.info()),
                    syntax: true,
                })
            }
        }
    };
    (
        Positions {
            by_path: walker.by_path,
        },
        problem,
    )
}

enum Frame {
    /// `path` is None below a path too long to record.
    Map {
        path: Option<String>,
        key: Option<Option<String>>,
        anchor: usize,
        expanded_at_start: u64,
    },
    Seq {
        path: Option<String>,
        next: usize,
        anchor: usize,
        expanded_at_start: u64,
    },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    by_path: HashMap<String, Position>,
    /// Expanded size of every closed anchored node, by anchor id.
    anchors: HashMap<usize, u64>,
    /// Expanded size of the document so far.
    expanded: u64,
    aliases: usize,
}

impl Walker {
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

    fn grow(&mut self, bytes: u64) -> Result<(), String> {
        self.expanded = self.expanded.saturating_add(bytes);
        if self.expanded > MAX_EXPANDED_BYTES {
            return Err(format!(
                "aliases expand the document to more than {MAX_EXPANDED_BYTES} bytes ({} MiB); expected a document that stays below that when every alias is replaced by its anchored node",
                MAX_EXPANDED_BYTES >> 20
            ));
        }
        Ok(())
    }

    fn remember_anchor(&mut self, anchor: usize, expanded_at_start: u64) {
        if anchor != 0 {
            self.anchors
                .insert(anchor, self.expanded - expanded_at_start);
        }
    }

    fn on_event(&mut self, ev: Event, mark: Marker) -> Result<(), String> {
        match ev {
            Event::Scalar(value, _, anchor, _) => {
                let start = self.expanded;
                self.grow(1 + value.len() as u64)?;
                self.remember_anchor(anchor, start);
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                    ..
                }) = self.stack.last_mut()
                {
                    // A key: remember it; its value comes next.
                    let full = path.as_deref().and_then(|p| join(p, &value));
                    *key = Some(full.is_some().then_some(value));
                    self.record(full, mark);
                } else {
                    let p = self.child_path();
                    self.record(p, mark);
                }
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(format!(
                        "mappings and sequences nested more than {MAX_DEPTH} levels deep; an inventory needs at most 4"
                    ));
                }
                let expanded_at_start = self.expanded;
                self.grow(1)?;
                let path = if self.stack.is_empty() {
                    Some(String::new())
                } else {
                    let p = self.child_path();
                    if p.is_some() {
                        self.record(p.clone(), mark);
                    }
                    p
                };
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        path,
                        key: None,
                        anchor,
                        expanded_at_start,
                    }
                } else {
                    Frame::Seq {
                        path,
                        next: 0,
                        anchor,
                        expanded_at_start,
                    }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(
                    Frame::Map {
                        anchor,
                        expanded_at_start,
                        ..
                    }
                    | Frame::Seq {
                        anchor,
                        expanded_at_start,
                        ..
                    },
                ) = self.stack.pop()
                {
                    self.remember_anchor(anchor, expanded_at_start);
                }
            }
            Event::Alias(id) => {
                self.aliases += 1;
                if self.aliases > MAX_ALIASES {
                    return Err(format!(
                        "more than {MAX_ALIASES} aliases; expected at most {MAX_ALIASES}"
                    ));
                }
                let Some(&size) = self.anchors.get(&id) else {
                    return Err(
                        "alias of a node that contains it; expected an alias of a complete node"
                            .to_string(),
                    );
                };
                self.grow(size)?;
                // A key that is an alias is not tracked; its value is not either.
                match self.stack.last_mut() {
                    Some(Frame::Map {
                        key: key @ None, ..
                    }) => *key = Some(None),
                    _ => {
                        self.child_path();
                    }
                }
            }
            _ => {}
        }
        Ok(())
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

    fn problem(src: &str) -> String {
        scan(src).1.expect("a problem").message
    }

    #[test]
    fn accepts_a_few_aliases_and_keeps_positions_after_them() {
        let src = "x: &r [etcd, worker]\nhosts:\n  - roles: *r\n    name: a\n";
        let (pos, problem) = scan(src);
        assert_eq!(problem, None);
        assert_eq!(
            pos.find("hosts[0].name"),
            Some(Position { line: 4, col: 5 })
        );
    }

    #[test]
    fn refuses_what_expands_too_far() {
        // Ten aliases of a 500 kB scalar: 5 MB expanded.
        let src = format!(
            "a: &a {}\nb: [{}]\n",
            "x".repeat(500_000),
            ["*a"; 10].join(", ")
        );
        assert!(problem(&src).starts_with("aliases expand the document to more than 4194304 bytes"));
        // The same with nine stays below.
        let src = format!(
            "a: &a {}\nb: [{}]\n",
            "x".repeat(400_000),
            ["*a"; 9].join(", ")
        );
        assert_eq!(scan(&src).1, None);
    }

    #[test]
    fn refuses_too_many_aliases_and_aliases_of_open_nodes() {
        let src = format!("a: &a x\nb: [{}]\n", ["*a"; MAX_ALIASES + 1].join(","));
        assert_eq!(
            problem(&src),
            "more than 1024 aliases; expected at most 1024"
        );
        let src = format!("a: &a x\nb: [{}]\n", ["*a"; MAX_ALIASES].join(","));
        assert_eq!(scan(&src).1, None);
        let p = scan("a: &a [b, *a]\n").1.unwrap();
        assert_eq!(p.position, Position { line: 1, col: 11 });
        assert!(p.message.starts_with("alias of a node that contains it"));
    }

    #[test]
    fn refuses_deep_nesting_without_recursing() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(scan(&ok).1, None);
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let p = scan(&deep).1.unwrap();
        assert_eq!(
            p.position,
            Position {
                line: 1,
                col: MAX_DEPTH + 1
            }
        );
        assert!(p
            .message
            .starts_with("mappings and sequences nested more than 32 levels deep"));
        // Far deeper than a recursive walk could survive: refused (here by the scanner's own
        // limit, which it reaches while looking ahead), without a stack overflow.
        let deeper = format!("{}{}", "[".repeat(500_000), "]".repeat(500_000));
        assert!(scan(&deeper).1.is_some());
    }

    #[test]
    fn syntax_errors_are_problems_with_their_position() {
        let p = scan("a: [b, c\nd: e\n").1.unwrap();
        assert!(p.syntax);
        assert!(
            p.message.starts_with("YAML syntax error: "),
            "{}",
            p.message
        );
        assert_eq!(p.position.line, 2);
    }

    #[test]
    fn long_keys_are_not_tracked_and_cost_no_more_than_their_bytes() {
        let key = "k".repeat(MAX_TRACKED_PATH + 1);
        let src = format!("{key}:\n  inner: [{}]\nb: 1\n", ["x"; 1000].join(","));
        let (pos, problem) = scan(&src);
        assert_eq!(problem, None);
        assert!(pos.by_path.keys().all(|k| k.len() <= MAX_TRACKED_PATH));
        assert_eq!(pos.find("b"), Some(Position { line: 3, col: 1 }));
    }
}
