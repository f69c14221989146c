//! Source positions of inventory fields, so semantic errors can point at `file:line:col`,
//! and the bounds every inventory document must stay within before serde_yaml sees it.
//!
//! serde_yaml reports positions only for syntax and type errors; `scan` walks the YAML
//! event stream once (`walker`) and remembers where each key (`cluster.pod_cidr`) and list
//! item (`hosts[2]`) starts (`position`). The same walk refuses what would make parsing
//! expensive (`bounds`): nesting deeper than [`MAX_DEPTH`], more than [`MAX_ALIASES`]
//! aliases, and aliases that expand the document beyond [`MAX_EXPANDED_BYTES`] (the
//! "billion laughs" document); and syntax errors (serde_yaml may report a type error from
//! the events before them instead).

mod bounds;
mod position;
mod walker;

pub use bounds::{MAX_ALIASES, MAX_DEPTH, MAX_EXPANDED_BYTES};
pub use position::{Position, Positions};

use walker::Walker;
use yaml_rust2::parser::{Event, Parser};

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
                if let Err(exceeded) = walker.on_event(ev, mark) {
                    break Some(ScanProblem {
                        position: Position::of(&mark),
                        message: exceeded.to_string(),
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
    (walker.into_positions(), problem)
}

#[cfg(test)]
mod tests {
    use super::walker::MAX_TRACKED_PATH;
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
