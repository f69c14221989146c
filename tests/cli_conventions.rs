//! The command-line conventions, checked on the built binary: shell completions, man pages,
//! the EXAMPLES of `--help`, progress lines off a terminal and `--quiet`.
//!
//! Progress is observed on an install against hosts that cannot be reached (loopback
//! addresses with an SSH port nothing listens on), as a `--dry-run`: no host is touched and
//! nothing is written.

mod common;

use common::require_program;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_k8s-boot");

fn k8s_boot(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The command names of the `Commands:` section of `k8s-boot [ARGS] --help`.
fn subcommands(args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.push("--help");
    let help = text(&k8s_boot(&all).stdout);
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect()
}

/// Every command path: `[]`, `["install"]`, `["certs", "check"]`, ...
fn command_paths() -> Vec<Vec<String>> {
    let mut out = vec![vec![]];
    let mut todo = vec![vec![]];
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        for sub in subcommands(&args) {
            let mut p: Vec<String> = path.clone();
            p.push(sub);
            out.push(p.clone());
            todo.push(p);
        }
    }
    out
}

#[test]
fn command_tree_is_what_the_man_pages_and_completions_are_checked_against() {
    let paths: Vec<String> = command_paths().iter().map(|p| p.join(" ")).collect();
    for p in [
        "install",
        "certs check",
        "certs renew",
        "lab up",
        "completions",
        "man",
    ] {
        assert!(paths.contains(&p.to_string()), "{p} missing from {paths:?}");
    }
}

#[test]
fn bash_completion_is_valid_and_completes_every_subcommand() {
    let out = k8s_boot(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("k8s-boot.bash");
    fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", text(&check.stderr));
    for sub in subcommands(&[]) {
        assert!(script.contains(&sub), "{sub} not in the bash completion");
    }

    // The completion function really completes: `k8s-boot <TAB>` offers every subcommand,
    // `k8s-boot certs <TAB>` its own, and `install --dr<TAB>` the flag.
    let complete = |words: &str, cword: usize| -> Vec<String> {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; \
                 COMP_POINT=${{#COMP_LINE}}; _k8s__boot k8s-boot \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                file.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).lines().map(String::from).collect()
    };
    let top = complete("k8s-boot ''", 1);
    for sub in subcommands(&[]) {
        assert!(top.contains(&sub), "{sub} not offered: {top:?}");
    }
    let certs = complete("k8s-boot certs ''", 2);
    assert!(certs.contains(&"check".to_string()), "{certs:?}");
    assert!(certs.contains(&"renew".to_string()), "{certs:?}");
    let flag = complete("k8s-boot install --dr", 2);
    assert_eq!(flag, vec!["--dry-run".to_string()]);
}

#[test]
fn zsh_and_fish_completions_are_produced() {
    for (shell, marker) in [
        ("zsh", "#compdef k8s-boot"),
        ("fish", "complete -c k8s-boot"),
    ] {
        let out = k8s_boot(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("accept-new-host-keys"), "{shell}");
        let tmp = tempfile::NamedTempFile::new().unwrap();
        fs::write(tmp.path(), &script).unwrap();
        let check = Command::new(require_program(shell, shell))
            .arg("-n")
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{shell} -n: {}",
            text(&check.stderr)
        );
    }
    // Only the documented shells.
    let out = k8s_boot(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("bash, zsh, fish"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn man_writes_a_page_per_command_that_renders() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("share/man/man1");
    let out = k8s_boot(&["man", "--out", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let mut expected: Vec<String> = command_paths()
        .iter()
        .map(|p| {
            let mut name = vec!["k8s-boot".to_string()];
            name.extend(p.iter().cloned());
            format!("{}.1", name.join("-"))
        })
        .collect();
    expected.sort();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, expected, "one page per command, nothing else");
    for n in ["k8s-boot.1", "k8s-boot-install.1", "k8s-boot-certs-check.1"] {
        assert!(names.contains(&n.to_string()), "{n}");
    }
    assert!(
        text(&out.stdout).contains(&format!("{} man page(s) in", expected.len())),
        "{}",
        text(&out.stdout)
    );

    for name in &names {
        let page = dir.join(name);
        let roff = fs::read_to_string(&page).unwrap();
        let title = name.trim_end_matches(".1");
        assert!(
            roff.contains(&format!("\n.TH {title} 1 ")),
            "{name}: {roff}"
        );
        assert!(roff.contains(".SH NAME\n"), "{name}");
        assert!(roff.contains(".SH SYNOPSIS\n"), "{name}");
        // -ww: every warning; -z: parse only. A broken page warns or fails.
        let out = Command::new(require_program("groff", "groff-base"))
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{name}");
        let out = Command::new(require_program("man", "man-db"))
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "120")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let shown = text(&out.stdout);
        assert!(shown.contains("NAME"), "{name}: {shown}");
        assert!(shown.contains(title), "{name}: {shown}");
    }

    // The install page shows the --help examples, flags intact (not eaten as roff).
    let install = dir.join("k8s-boot-install.1");
    let roff = fs::read_to_string(&install).unwrap();
    assert!(roff.contains(".SH EXAMPLES\n.nf\n"), "{roff}");
    let out = Command::new(require_program("man", "man-db"))
        .arg("-l")
        .arg(&install)
        .env("MANWIDTH", "160")
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    let shown = text(&out.stdout).replace(['\u{2010}', '\u{2212}'], "-");
    assert!(shown.contains("EXAMPLES"), "{shown}");
    assert!(
        shown.contains("k8s-boot install -i hosts.yaml --accept-new-host-keys"),
        "{shown}"
    );

    // A second run replaces the pages in place and leaves no temporary file.
    let before = names.len();
    let out = k8s_boot(&["man", "--out", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fs::read_dir(&dir).unwrap().count(), before);
}

#[test]
fn man_refuses_an_out_that_is_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("pages");
    fs::write(&file, "not a directory").unwrap();
    let out = k8s_boot(&["man", "--out", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("--out"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "not a directory");
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "nothing else written"
    );
}

#[test]
fn help_shows_examples_for_the_main_commands() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "k8s-boot init > hosts.yaml",
                "--accept-new-host-keys",
                "--dry-run",
            ],
        ),
        (
            &["install"],
            &[
                "k8s-boot install -i hosts.yaml --accept-new-host-keys",
                "k8s-boot install -i hosts.yaml --dry-run",
                "--hosts w3",
                "--output json",
            ],
        ),
        (&["render"], &["k8s-boot render -i hosts.yaml --out out/"]),
        (
            &["certs"],
            &["k8s-boot certs check -i hosts.yaml", "--rotate-cas"],
        ),
        (
            &["status"],
            &["k8s-boot status -i hosts.yaml --output json"],
        ),
        (
            &["reset"],
            &["k8s-boot reset -i hosts.yaml --hosts w3 --yes"],
        ),
        (
            &["fetch"],
            &["k8s-boot fetch -i hosts.yaml", "--registry-mirror"],
        ),
        (&["lab", "up"], &["sudo k8s-boot lab up --hosts 6"]),
    ];
    for (cmd, wanted) in cases {
        // Both the short and the long help show them.
        for flag in ["-h", "--help"] {
            let mut args = cmd.to_vec();
            args.push(flag);
            let out = k8s_boot(&args);
            assert_eq!(out.status.code(), Some(0));
            let help = text(&out.stdout);
            let examples = help
                .split_once("\nExamples:\n")
                .unwrap_or_else(|| panic!("{cmd:?} {flag}: no Examples section: {help}"))
                .1;
            for w in *wanted {
                assert!(
                    examples.contains(w),
                    "{cmd:?} {flag}: `{w}` missing: {examples}"
                );
            }
            // Every example line is a k8s-boot command line.
            for line in examples.lines().filter(|l| !l.trim().is_empty()) {
                let line = line.trim_start().trim_start_matches("sudo ");
                assert!(line.starts_with("k8s-boot "), "{cmd:?}: {line}");
            }
        }
    }
}

/// A local port nothing listens on (bound once, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An inventory of three unreachable hosts in a fresh directory.
fn unreachable_cluster() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let inventory = tmp.path().join("hosts.yaml");
    fs::write(
        &inventory,
        format!(
            "\
cluster: {{name: t, kubernetes_version: v1.36.0, allow_loopback_hosts: true}}
ssh: {{key: id_test, known_hosts: known_hosts, port: {}}}
binaries: {{dir: bin}}
hosts:
  - {{name: lb1, address: 127.0.0.1, roles: [lb]}}
  - {{name: m1, address: 127.0.0.2, roles: [etcd, control-plane]}}
  - {{name: w1, address: 127.0.0.3, roles: [worker]}}
",
            closed_port()
        ),
    )
    .unwrap();
    (tmp, inventory)
}

const HOSTS: [&str; 3] = ["lb1", "m1", "w1"];

/// `install --dry-run --phases connect` against the unreachable hosts, stderr piped.
fn dry_run_connect(inventory: &Path, term: Option<&str>, extra: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["install", "--dry-run", "--phases", "connect", "-i"])
        .arg(inventory)
        .args(extra)
        .stdin(Stdio::null());
    match term {
        Some(t) => cmd.env("TERM", t),
        None => cmd.env_remove("TERM"),
    };
    cmd.output().unwrap()
}

/// The progress lines `HOST: connect ...` of `stderr`.
fn connect_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            HOSTS
                .iter()
                .any(|h| l.starts_with(&format!("{h}: connect ")))
        })
        .collect()
}

fn assert_one_failed_connect_line_per_host(err: &str) {
    let lines = connect_lines(err);
    assert_eq!(lines.len(), HOSTS.len(), "{err}");
    for h in HOSTS {
        let mine: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{h}: ")))
            .collect();
        assert_eq!(mine.len(), 1, "{h}: {err}");
        let line = mine[0];
        assert!(
            line.starts_with(&format!("{h}: connect FAILED: cannot connect to ")),
            "{line}"
        );
        assert!(line.ends_with(" s)"), "duration: {line}");
    }
}

#[test]
fn progress_off_a_terminal_is_one_plain_line_per_host_and_phase() {
    let (_tmp, inventory) = unreachable_cluster();
    for term in [Some("dumb"), Some("xterm-256color"), None] {
        let out = dry_run_connect(&inventory, term, &[]);
        // The hosts cannot be reached: a runtime failure.
        assert_eq!(out.status.code(), Some(1), "{term:?}");
        let err = text(&out.stderr);
        assert!(
            !out.stderr.contains(&0x1b),
            "escape sequence with TERM={term:?}: {err:?}"
        );
        assert_one_failed_connect_line_per_host(&err);
        // The result table still goes to stdout, after the progress.
        assert!(text(&out.stdout).contains("dry run in "), "{term:?}");
    }
}

#[test]
fn quiet_prints_no_progress_only_failures_and_the_summary() {
    let (_tmp, inventory) = unreachable_cluster();
    for flag in ["-q", "--quiet"] {
        let out = dry_run_connect(&inventory, Some("dumb"), &[flag]);
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert_eq!(connect_lines(&err), Vec::<&str>::new(), "{flag}: {err}");
        assert!(!err.contains("pki: would create"), "{flag}: {err}");
        let stdout = text(&out.stdout);
        for h in HOSTS {
            assert!(
                stdout.contains(&format!("{h}: connect failed: ")),
                "{stdout}"
            );
        }
        assert!(stdout.contains("dry run in "), "{stdout}");
    }
    // The flag is global: before the command too.
    let out = Command::new(BIN)
        .args(["-q", "install", "--dry-run", "--phases", "connect", "-i"])
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(connect_lines(&text(&out.stderr)), Vec::<&str>::new());
    assert!(text(&out.stdout).contains("dry run in "));
}

#[test]
fn quiet_render_certs_and_reset_print_only_their_summary() {
    let (tmp, inventory) = unreachable_cluster();
    let inv = inventory.to_str().unwrap();
    let out_dir = tmp.path().join("out");
    let out = k8s_boot(&[
        "render",
        "-i",
        inv,
        "--out",
        out_dir.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "the PKI step's report is progress");
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("rendered "), "{stdout}");

    // The PKI exists now: `certs renew` re-issues leaves and lists each unless quiet.
    let loud = k8s_boot(&["certs", "renew", "-i", inv]);
    assert_eq!(loud.status.code(), Some(0), "{}", text(&loud.stderr));
    assert!(
        text(&loud.stdout).lines().count() > 1,
        "{}",
        text(&loud.stdout)
    );
    let quiet = k8s_boot(&["certs", "renew", "-i", inv, "-q"]);
    assert_eq!(quiet.status.code(), Some(0), "{}", text(&quiet.stderr));
    let stdout = text(&quiet.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains(" changed, "), "{stdout}");

    // `reset -q`: the failed hosts (unreachable) and one summary line.
    let out = k8s_boot(&["reset", "-i", inv, "--yes", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), HOSTS.len() + 1, "{stdout}");
    for h in HOSTS {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{h}: reset failed: "))),
            "{stdout}"
        );
    }
    assert_eq!(
        lines[HOSTS.len()],
        "reset 3 host(s): 0 item(s) removed, 3 failed"
    );
}

/// On a real terminal (a pseudo-terminal from util-linux `script`), bars are drawn unless
/// `TERM=dumb`.
#[test]
fn on_a_terminal_bars_unless_term_is_dumb() {
    let script = require_program("script", "bsdutils");
    let (_tmp, inventory) = unreachable_cluster();
    let run = |term: &str| -> Vec<u8> {
        // stdout to /dev/null: only stderr reaches the terminal's output.
        let out = Command::new(&script)
            .args(["-qec"])
            .arg(format!(
                "{BIN} install --dry-run --phases connect -i {} 2>&1 >/dev/null",
                inventory.display()
            ))
            .arg("/dev/null")
            .env("TERM", term)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        out.stdout
    };
    let dumb = run("dumb");
    assert!(!dumb.contains(&0x1b), "{:?}", text(&dumb));
    assert_one_failed_connect_line_per_host(&text(&dumb).replace('\r', ""));
    let xterm = run("xterm");
    assert!(
        xterm.contains(&0x1b),
        "bars on a terminal: {:?}",
        text(&xterm)
    );
}
