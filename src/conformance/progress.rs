//! Progress of a run, read from ginkgo's console output (the `e2e.log` the conformance
//! image's runner tees it into) as it grows.
//!
//! Ginkgo (v2, `--no-color`, not verbose; its `reporters/default_reporter.go`) writes, in
//! this order: `Will run N of M specs`; one mark per spec without line breaks (`•` passed,
//! `S` skipped: also every spec the focus leaves out, so `S` is not progress); for a spec with something to show (a failure, or output
//! of a parallel process) a block after a delimiter line, whose first line is the spec's mark
//! and state (`• [FAILED] [12.3 seconds]`, `• [4.1 seconds]` for a pass) and whose second
//! its full name; and at the end `Ran N of M Specs` and `SUCCESS!`/`FAIL!` with the counts.
//! Two blocks in a row share one delimiter, so a header is known by following a delimiter.

/// Something the output said, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `Will run N of M specs`.
    Total(u32),
    /// One more spec finished; `done` so far.
    Done(u32),
    /// A spec failed (or panicked, or timed out): its state and full name.
    Failed { state: String, name: String },
}

/// The counts of ginkgo's last line.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub passed: u32,
    pub failed: u32,
    pub pending: u32,
    pub skipped: u32,
}

/// Ginkgo's delimiter: 30 dashes on a line of their own.
const DELIMITER: &str = "------------------------------";
/// Spec states that are not a pass or a skip.
const FAILED_STATES: &[&str] = &["FAILED", "PANICKED", "TIMEDOUT", "INTERRUPTED", "ABORTED"];
/// What a spec's mark can be: passed, skipped, passed after a retry.
const MARKS: &[char] = &['•', 'S', '↺'];
/// The marks of a spec that ran.
const RAN: &[char] = &['•', '↺'];

/// Reads ginkgo's output in pieces as it arrives.
#[derive(Debug, Default)]
pub struct Progress {
    /// The end of the last piece, without a line break yet.
    partial: String,
    /// The last whole line was a delimiter: a block header may come.
    after_delimiter: bool,
    /// A header was read: its state, until the spec's name on the next line.
    header_state: Option<String>,
    pub total: Option<u32>,
    pub done: u32,
    pub counts: Option<Counts>,
}

impl Progress {
    /// Takes the next piece of output; returns what it said.
    pub fn feed(&mut self, text: &str) -> Vec<Event> {
        self.partial.push_str(text);
        let mut events = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.line(line.trim_end_matches(['\n', '\r']), &mut events);
        }
        // Marks come without a line break: count them as they come, up to the last mark of
        // a spec that ran (a trailing `S` may be the start of `SUCCESS!`; skips are no
        // progress). Right after a delimiter a last `•` may start a header (`• [FAILED]`): it
        // waits for the next character.
        if is_marks(&self.partial) && self.header_state.is_none() {
            let mut end = self.partial.rfind(RAN).map_or(0, |i| {
                i + self.partial[i..].chars().next().map_or(0, char::len_utf8)
            });
            if self.after_delimiter && end == self.partial.len() {
                end = self.partial.rfind(RAN).unwrap_or(0);
            }
            let counted: String = self.partial.drain(..end).collect();
            if !counted.is_empty() {
                self.after_delimiter = false;
                self.marks(&counted, &mut events);
            }
        }
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<Event>) {
        if let Some(state) = self.header_state.take() {
            // The line after a header: the spec's name.
            if FAILED_STATES.contains(&state.as_str()) {
                events.push(Event::Failed {
                    state,
                    name: line.trim().to_string(),
                });
            }
            return;
        }
        let after_delimiter = std::mem::replace(&mut self.after_delimiter, false);
        if line == DELIMITER {
            self.after_delimiter = true;
        } else if let Some(state) = after_delimiter.then(|| header_state(line)).flatten() {
            self.done += 1;
            events.push(Event::Done(self.done));
            self.header_state = Some(state);
        } else if let Some(total) = number_after(line, "Will run ") {
            self.total = Some(total);
            events.push(Event::Total(total));
        } else if let Some(counts) = parse_counts(line) {
            self.counts = Some(counts);
        } else if is_marks(line) {
            self.marks(line, events);
        }
    }

    fn marks(&mut self, marks: &str, events: &mut Vec<Event>) {
        for _ in marks.chars().filter(|c| RAN.contains(c)) {
            self.done += 1;
            events.push(Event::Done(self.done));
        }
    }
}

/// The state of a block header such as `• [FAILED] [12.3 seconds]` (`PASSED` for
/// `• [4.1 seconds]`); `None` when `line` is not one.
fn header_state(line: &str) -> Option<String> {
    let rest = line.strip_prefix(RAN)?.strip_prefix(" [")?;
    let state = rest.split(']').next().unwrap_or_default();
    Some(
        if !state.is_empty() && state.chars().all(|c| c.is_ascii_uppercase()) {
            state.to_string()
        } else {
            "PASSED".to_string()
        },
    )
}

/// A line (or the start of one) of nothing but spec marks.
fn is_marks(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| MARKS.contains(&c))
}

/// `N` in `<prefix>N ...`.
fn number_after(line: &str, prefix: &str) -> Option<u32> {
    line.strip_prefix(prefix)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `FAIL! -- 1 Passed | 2 Failed | 0 Pending | 3 Skipped` (also `SUCCESS!`, and with
/// ginkgo's `--` or ` - ` separators).
fn parse_counts(line: &str) -> Option<Counts> {
    let rest = line
        .strip_prefix("SUCCESS!")
        .or_else(|| line.strip_prefix("FAIL!"))?;
    let mut counts = Counts::default();
    for part in rest.trim_start_matches([' ', '-']).split('|') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse() else { continue };
        match what {
            "Passed" => counts.passed = n,
            "Failed" => counts.failed = n,
            "Pending" => counts.pending = n,
            "Skipped" => counts.skipped = n,
            _ => {}
        }
    }
    Some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `e2e.log`s of `k8s-boot conformance` on the lab: `--quick` (one process) and the
    /// CI subset (three processes, serial tests at the end).
    const RUNS: [&str; 2] = [
        include_str!("../../tests/data/conformance/quick-run-e2e.log"),
        include_str!("../../tests/data/conformance/subset-run-e2e.log"),
    ];

    #[test]
    fn a_whole_run_in_one_piece() {
        for run in RUNS {
            let mut p = Progress::default();
            let events = p.feed(run);
            let c = p.counts.clone().expect("counts");
            assert_eq!(Some(c.passed + c.failed), p.total);
            assert_eq!(p.done, c.passed + c.failed, "{events:?}");
            let failed: Vec<_> = events
                .iter()
                .filter(|e| matches!(e, Event::Failed { .. }))
                .collect();
            assert_eq!(failed.len() as u32, c.failed, "{failed:?}");
        }
    }

    #[test]
    fn pieces_of_any_size_say_the_same() {
        for run in RUNS {
            let mut whole = Progress::default();
            let expected = whole.feed(run);
            for size in [1, 2, 3, 7, 64, 1000] {
                let mut p = Progress::default();
                let mut events = Vec::new();
                let chars: Vec<char> = run.chars().collect();
                for piece in chars.chunks(size) {
                    events.extend(p.feed(&piece.iter().collect::<String>()));
                }
                assert_eq!(events, expected, "pieces of {size}");
                assert_eq!(p.counts, whole.counts);
            }
        }
    }

    #[test]
    fn counts_lines() {
        assert_eq!(
            parse_counts("FAIL! -- 426 Passed | 7 Failed | 0 Pending | 6699 Skipped"),
            Some(Counts {
                passed: 426,
                failed: 7,
                pending: 0,
                skipped: 6699
            })
        );
        assert_eq!(
            parse_counts("SUCCESS! - 1 Passed | 0 Failed | 0 Pending | 7131 Skipped")
                .map(|c| (c.passed, c.skipped)),
            Some((1, 7131))
        );
        assert_eq!(parse_counts("Ran 1 of 7132 Specs in 20.1 seconds"), None);
    }

    #[test]
    fn blocks_in_a_row_share_a_delimiter_and_name_their_spec() {
        let out = "Will run 4 of 9 specs\n•\n------------------------------\n\
                   • [FAILED] [3.5 seconds]\n[sig-node] Pods [It] should work [Conformance]\n\
                   /go/file.go:10\n\n  [FAILED] boom\n------------------------------\n\
                   • [2.0 seconds]\n[sig-apps] Job [It] should pass [Conformance]\n\
                   /go/job.go:1\n------------------------------\n\
                   • [TIMEDOUT] [600.0 seconds]\n[sig-cli] Kubectl [It] waits [Conformance]\n\
                   /go/k.go:2\n------------------------------\n";
        let expected = vec![
            Event::Total(4),
            Event::Done(1),
            Event::Done(2),
            Event::Failed {
                state: "FAILED".into(),
                name: "[sig-node] Pods [It] should work [Conformance]".into(),
            },
            Event::Done(3),
            Event::Done(4),
            Event::Failed {
                state: "TIMEDOUT".into(),
                name: "[sig-cli] Kubectl [It] waits [Conformance]".into(),
            },
        ];
        // Whole, and a character at a time (a header split after its mark).
        assert_eq!(Progress::default().feed(out), expected);
        let mut p = Progress::default();
        let events: Vec<Event> = out.chars().flat_map(|c| p.feed(&c.to_string())).collect();
        assert_eq!(events, expected);
    }

    #[test]
    fn marks_are_counted_before_their_line_ends() {
        let mut p = Progress::default();
        assert_eq!(
            p.feed("Will run 3 of 3 specs\n••"),
            vec![Event::Total(3), Event::Done(1), Event::Done(2)]
        );
        // A skipped spec (also one the focus leaves out) is no progress.
        assert_eq!(p.feed("SSS"), vec![]);
        assert_eq!(p.feed("S•"), vec![Event::Done(3)]);
        // Right after a delimiter the last mark waits: it may start a header.
        let mut p = Progress::default();
        p.feed("------------------------------\n");
        assert_eq!(p.feed("•"), vec![]);
        assert_eq!(p.feed("•"), vec![Event::Done(1)]);
        assert_eq!(p.feed("\n"), vec![Event::Done(2)]);
    }
}
