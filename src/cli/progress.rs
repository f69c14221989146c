//! How `install` (and `deploy`) show progress on stderr.
//!
//! On a terminal (stderr is a TTY and `TERM` is not `dumb`) indicatif bars are drawn: one
//! spinner line per host and an overall bar. Anywhere else (a CI log, a pipe, `TERM=dumb`)
//! plain lines are printed instead, one per host and phase when the phase ends, without any
//! escape sequence:
//!
//! ```text
//! m1: etcd changed (2.1 s)
//! w1: node FAILED: kubelet not healthy after 60 s (2.0 s)
//! w1: verify skipped
//! lb1: lb ok (0.3 s)
//! ```
//!
//! With `--quiet` (or a machine-readable result format) nothing is shown.

use k8s_boot::install::{self, phases::PhaseId, PhaseResult};
use k8s_boot::inventory::{Cluster, Host};
use k8s_boot::shown::Shown;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which progress display a run gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Animated bars (stderr is an interactive terminal).
    Bars,
    /// One plain line per host and phase (logs, pipes, `TERM=dumb`).
    Lines,
    /// Nothing (`--quiet`, `--output json`).
    Hidden,
}

impl Mode {
    /// The display for this process: hidden when `quiet`, else bars or lines depending on
    /// stderr and `TERM`.
    pub fn detect(quiet: bool) -> Mode {
        let term = std::env::var("TERM").ok();
        Mode::choose(quiet, std::io::stderr().is_terminal(), term.as_deref())
    }

    /// The decision behind [`Mode::detect`]: bars only on a terminal whose `TERM` is not
    /// `dumb`.
    pub fn choose(quiet: bool, stderr_is_tty: bool, term: Option<&str>) -> Mode {
        if quiet {
            Mode::Hidden
        } else if stderr_is_tty && term != Some("dumb") {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// The progress display of one `install` run; see the module documentation.
pub enum InstallProgress {
    Bars(Bars),
    Lines(Lines),
    Hidden,
}

impl InstallProgress {
    pub fn new(cluster: &Cluster, opts: &install::Options, mode: Mode) -> InstallProgress {
        match mode {
            Mode::Bars => InstallProgress::Bars(Bars::new(cluster, opts)),
            Mode::Lines => InstallProgress::Lines(Lines::new(opts.dry_run, std::io::stderr())),
            Mode::Hidden => InstallProgress::Hidden,
        }
    }

    /// Ends the display (the bars stop spinning and stay as they are).
    pub fn finish(&self) {
        if let InstallProgress::Bars(b) = self {
            b.finish();
        }
    }
}

impl install::Progress for InstallProgress {
    fn host(&self, host: &str, message: &str) {
        match self {
            InstallProgress::Bars(b) => b.host(host, message),
            InstallProgress::Lines(l) => l.host(host, message),
            InstallProgress::Hidden => {}
        }
    }
    fn phase_done(&self, host: &str, phase: PhaseId, result: &PhaseResult) {
        match self {
            InstallProgress::Bars(b) => b.phase_done(host, phase, result),
            InstallProgress::Lines(l) => l.phase_done(host, phase, result),
            InstallProgress::Hidden => {}
        }
    }
}

/// Plain progress lines: `HOST: PHASE RESULT (SECONDS s)`, written when a phase ends on a
/// host. The installer announces each phase on a host (`Progress::host`) before running it,
/// which starts that host's clock.
pub struct Lines {
    dry_run: bool,
    started: Mutex<HashMap<String, Instant>>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Lines {
    pub fn new(dry_run: bool, out: impl Write + Send + 'static) -> Lines {
        Lines {
            dry_run,
            started: Mutex::new(HashMap::new()),
            out: Mutex::new(Box::new(out)),
        }
    }

    /// The line for `result` of `phase` on `host`, run for `took` (none when it did not run).
    pub fn line(
        &self,
        host: &str,
        phase: &str,
        result: &PhaseResult,
        took: Option<Duration>,
    ) -> String {
        let what = match result {
            PhaseResult::Changed { .. } if self.dry_run => "would change".to_string(),
            PhaseResult::Changed { .. } => "changed".to_string(),
            PhaseResult::Unchanged => "ok".to_string(),
            PhaseResult::Failed { error } => format!("FAILED: {}", one_line(&error.to_string())),
            PhaseResult::Skipped => "skipped".to_string(),
        };
        match took {
            Some(t) => format!("{host}: {phase} {what} ({:.1} s)", t.as_secs_f64()),
            None => format!("{host}: {phase} {what}"),
        }
    }
}

impl install::Progress for Lines {
    fn host(&self, host: &str, _message: &str) {
        self.started
            .lock()
            .expect("progress lock")
            .insert(host.to_string(), Instant::now());
    }
    fn phase_done(&self, host: &str, phase: PhaseId, result: &PhaseResult) {
        // A skipped phase was never announced: it did not run, so it has no duration.
        let took = match result {
            PhaseResult::Skipped => None,
            _ => self
                .started
                .lock()
                .expect("progress lock")
                .remove(host)
                .map(|t| t.elapsed()),
        };
        let line =
            Shown(&self.line(host, install::phases::get(phase).name, result, took)).to_string();
        let mut out = self.out.lock().expect("progress lock");
        // Progress is best effort: a closed stderr must not fail the install.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// `text` on one line with nothing a terminal acts on (an error may carry a remote
/// command's multi-line output, even escape sequences): line breaks become ` | `, tabs
/// spaces, other hidden characters escapes ([`Shown`]).
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for l in text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
    {
        if !out.is_empty() {
            out.push_str(" | ");
        }
        out.push_str(&Shown(&l.replace('\t', " ")).to_string());
    }
    out
}

/// Progress bars: one line per host and an overall bar (drawn only on a terminal).
pub struct Bars {
    hosts: HashMap<String, indicatif::ProgressBar>,
    overall: indicatif::ProgressBar,
    _multi: indicatif::MultiProgress,
}

impl Bars {
    fn new(cluster: &Cluster, opts: &install::Options) -> Bars {
        use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let hosts: Vec<&Host> = cluster
            .inventory
            .hosts
            .iter()
            .filter(|h| opts.selects(h))
            .collect();
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        // One step per phase and host it applies to; cluster phases run on one host.
        let steps: usize = opts
            .phases_to_run()
            .into_iter()
            .map(install::phases::get)
            .map(|p| {
                let on = hosts.iter().filter(|h| p.applies_to(h)).count();
                if p.cluster_level {
                    on.min(1)
                } else {
                    on
                }
            })
            .sum();
        let overall = multi.add(ProgressBar::new(steps as u64));
        overall.set_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} host phases")
                .expect("template")
                .progress_chars("=> "),
        );
        let width = names.iter().map(|n| n.len()).max().unwrap_or(4);
        let hosts = names
            .iter()
            .map(|n| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "{{prefix:{width}}} {{spinner}} {{wide_msg}}"
                    ))
                    .expect("template"),
                );
                bar.set_prefix(Shown(n).to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                (n.to_string(), bar)
            })
            .collect();
        Bars {
            hosts,
            overall,
            _multi: multi,
        }
    }

    fn finish(&self) {
        for bar in self.hosts.values() {
            if !bar.message().contains("FAILED") {
                bar.set_message("done");
            }
            bar.finish();
        }
        self.overall.finish();
    }
}

impl install::Progress for Bars {
    fn host(&self, host: &str, message: &str) {
        if let Some(bar) = self.hosts.get(host) {
            bar.set_message(Shown(message).to_string());
        }
    }
    fn phase_done(&self, host: &str, phase: PhaseId, result: &PhaseResult) {
        self.overall.inc(1);
        if let (Some(bar), PhaseResult::Failed { .. }) = (self.hosts.get(host), result) {
            bar.set_message(format!("{} FAILED", install::phases::get(phase).name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_boot::install::Progress;
    use std::sync::Arc;

    #[test]
    fn bars_only_on_a_terminal_that_is_not_dumb() {
        assert_eq!(
            Mode::choose(false, true, Some("xterm-256color")),
            Mode::Bars
        );
        assert_eq!(Mode::choose(false, true, None), Mode::Bars);
        assert_eq!(Mode::choose(false, true, Some("dumb")), Mode::Lines);
        assert_eq!(Mode::choose(false, false, Some("xterm")), Mode::Lines);
        assert_eq!(Mode::choose(true, true, Some("xterm")), Mode::Hidden);
        assert_eq!(Mode::choose(true, false, None), Mode::Hidden);
    }

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_plain_line_per_host_and_phase() {
        let buf = Shared::default();
        let lines = Lines::new(false, buf.clone());
        lines.host("m1", "etcd");
        lines.phase_done(
            "m1",
            PhaseId::Etcd,
            &PhaseResult::Changed {
                changes: vec!["write /etc/etcd/etcd.yaml".into()],
            },
        );
        lines.host("lb1", "lb");
        lines.host("w\u{202e}2", "node");
        lines.phase_done("w\u{202e}2", PhaseId::Node, &PhaseResult::Unchanged);
        lines.phase_done("lb1", PhaseId::Lb, &PhaseResult::Unchanged);
        lines.host("w1", "node");
        lines.phase_done(
            "w1",
            PhaseId::Node,
            &PhaseResult::Failed {
                error: std::sync::Arc::new(install::StepError::Preflight(vec![
                    "kubelet not healthy\n\x1b[31mjournal\x1b[0m: line two\n".into(),
                ])),
            },
        );
        lines.phase_done("w1", PhaseId::Verify, &PhaseResult::Skipped);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got.len(), 5, "{text}");
        assert!(got[1].starts_with("w\\u{202e}2: node ok ("), "{text}");
        let got: Vec<&str> = got.into_iter().filter(|l| !l.starts_with("w\\u")).collect();
        assert!(got[0].starts_with("m1: etcd changed ("), "{text}");
        assert!(got[0].ends_with(" s)"), "{text}");
        assert!(got[1].starts_with("lb1: lb ok ("), "{text}");
        assert!(
            got[2].starts_with(
                "w1: node FAILED: kubelet not healthy | \\u{1b}[31mjournal\\u{1b}[0m: line two ("
            ),
            "{text}"
        );
        assert_eq!(got[3], "w1: verify skipped");
        assert!(!text.contains('\x1b'), "{text:?}");
    }

    #[test]
    fn a_dry_run_says_would_change() {
        let lines = Lines::new(true, std::io::sink());
        let changed = PhaseResult::Changed { changes: vec![] };
        assert_eq!(
            lines.line("m1", "pki", &changed, Some(Duration::from_millis(2100))),
            "m1: pki would change (2.1 s)"
        );
        assert_eq!(
            lines.line("m1", "pki", &PhaseResult::Skipped, None),
            "m1: pki skipped"
        );
    }
}
