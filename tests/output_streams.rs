//! Output that cannot be written, and output that must not act on the terminal, checked on
//! the real binary:
//!
//! - every command that prints a result, with stdout on a full disk (`/dev/full`), on a
//!   pipe whose reader is gone and closed (`>&-`), fails with exit status 1 and `cannot
//!   write to stdout` on stderr, never with a panic (exit 101); what it wrote on disk is
//!   complete;
//! - a failing stderr changes nothing but the messages;
//! - values from certificates and the inventory reach the terminal with their control and
//!   invisible characters escaped, in text and in JSON.

mod common;

use common::require_program;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_k8s-boot");

/// The example inventory with local SSH files, and its PKI.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inventory = k8s_boot::EXAMPLE_INVENTORY
        .replacen("key: ~/.ssh/id_ed25519", "key: id_test", 1)
        .replacen(
            "known_hosts: ~/.ssh/known_hosts",
            "known_hosts: known_hosts",
            1,
        );
    fs::write(d.join("hosts.yaml"), inventory).unwrap();
    fs::write(d.join("id_test"), "not a real key\n").unwrap();
    fs::set_permissions(d.join("id_test"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(d.join("known_hosts"), "").unwrap();
    let out = run(d, &["certs", "-i", "hosts.yaml"], Sink::Captured);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    dir
}

/// Where the child's stdout goes.
#[derive(Debug, Clone, Copy)]
enum Sink {
    Captured,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// A pipe whose reading end is closed before the child starts: EPIPE.
    ClosedPipe,
    /// No stdout at all (`>&-`).
    Closed,
}

fn run(dir: &Path, args: &[&str], sink: Sink) -> Output {
    let mut cmd = match sink {
        Sink::Closed => {
            let mut c = Command::new("bash");
            c.arg("-c")
                .arg("exec \"$0\" \"$@\" >&-")
                .arg(BIN)
                .args(args);
            c
        }
        _ => {
            let mut c = Command::new(BIN);
            c.args(args);
            c
        }
    };
    cmd.current_dir(dir)
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    match sink {
        Sink::Captured => {
            cmd.stdout(Stdio::piped());
        }
        Sink::Full => {
            let full = fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap();
            cmd.stdout(full);
        }
        Sink::ClosedPipe => {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            cmd.stdout(writer);
        }
        Sink::Closed => {}
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Commands that print a result on stdout and succeed when it can be written.
const PRINTING: &[&[&str]] = &[
    &["init"],
    &["check", "-i", "hosts.yaml"],
    &["certs", "-i", "hosts.yaml"],
    &["certs", "check", "-i", "hosts.yaml"],
    &["certs", "check", "-i", "hosts.yaml", "--output", "json"],
    &["render", "-i", "hosts.yaml", "--out", "rendered"],
    &["completions", "bash"],
    &["completions", "zsh"],
    &["completions", "fish"],
    &["man", "--out", "man"],
    &["--help"],
    &["install", "--help"],
    &["--version"],
];

#[test]
fn an_unwritable_stdout_is_an_error_for_every_printing_command() {
    let project = project();
    let d = project.path();
    let mut failures = Vec::new();
    for args in PRINTING {
        let ok = run(d, args, Sink::Captured);
        assert_eq!(ok.status.code(), Some(0), "{args:?}: {}", text(&ok.stderr));
        assert!(!ok.stdout.is_empty(), "{args:?} printed nothing");
        for sink in [Sink::Full, Sink::ClosedPipe, Sink::Closed] {
            let out = run(d, args, sink);
            let err = text(&out.stderr);
            if out.status.code() != Some(1)
                || !err.contains("error: cannot write to stdout: ")
                || err.contains("panicked at")
            {
                failures.push(format!(
                    "{args:?} with stdout {sink:?}: exit {:?}, stderr: {err}",
                    out.status.code()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_causes_are_named() {
    let project = project();
    for (sink, cause) in [
        (Sink::Full, "No space left on device"),
        (Sink::ClosedPipe, "Broken pipe"),
        (Sink::Closed, "stdout is closed"),
    ] {
        let out = run(project.path(), &["init"], sink);
        let err = text(&out.stderr);
        assert!(err.contains(cause), "{sink:?}: {err}");
    }
}

#[test]
fn render_to_a_broken_stdout_leaves_a_complete_output() {
    let project = project();
    let d = project.path();
    let args = ["render", "-i", "hosts.yaml", "--out", "rendered"];
    assert_eq!(run(d, &args, Sink::Captured).status.code(), Some(0));
    let before = fs::read(d.join("rendered/plan.json")).unwrap();
    for sink in [Sink::Full, Sink::ClosedPipe] {
        let out = run(d, &args, sink);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        // The tree was swapped in whole before the summary line failed.
        assert_eq!(fs::read(d.join("rendered/plan.json")).unwrap(), before);
        assert!(d.join("rendered/.k8s-boot-render").is_file());
        let leftovers: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".rendered.new") || n.starts_with(".rendered.old"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn a_failing_command_keeps_its_exit_code_and_a_json_error_with_stdout_broken() {
    let project = project();
    let d = project.path();
    fs::write(d.join("bad.yaml"), "cluster: {name: x}\nhosts: []\n").unwrap();
    for sink in [Sink::Full, Sink::ClosedPipe, Sink::Closed] {
        let out = run(d, &["install", "-i", "bad.yaml", "--output", "json"], sink);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sink:?}: {err}");
        assert!(err.contains("bad.yaml"), "{sink:?}: {err}");
        assert!(!err.contains("panicked at"), "{err}");
    }
}

#[test]
fn a_full_or_closed_stderr_changes_nothing_but_the_messages() {
    let project = project();
    let d = project.path();
    for shell in ["exec \"$0\" \"$@\" 2>/dev/full", "exec \"$0\" \"$@\" 2>&-"] {
        for (args, code) in [
            (&["check", "-i", "nope.yaml"][..], 2),
            (&["check", "-i", "hosts.yaml"], 0),
            (&["render", "-i", "hosts.yaml", "--out", "r2"], 0),
        ] {
            let out = Command::new("bash")
                .arg("-c")
                .arg(shell)
                .arg(BIN)
                .args(args)
                .current_dir(d)
                .env("HOME", d)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(code), "{shell} {args:?}");
        }
    }
    assert!(d.join("r2/plan.json").is_file());
}

/// A certificate whose subject and issuer carry terminal escapes, a carriage return and a
/// right-to-left override, put where `admin.crt` was.
fn plant_hostile_certificate(pki: &Path) {
    require_program("openssl", "openssl");
    let subject = "/CN=\u{1b}[31mevil\u{1b}[0m\r\u{202e}nimda/O=\u{1b}]0;title\u{7}";
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-utf8", "-subj", subject])
        .arg("-keyout")
        .arg(pki.join("admin.key"))
        .arg("-out")
        .arg(pki.join("admin.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    fs::set_permissions(pki.join("admin.key"), fs::Permissions::from_mode(0o600)).unwrap();
}

fn is_hidden_to_a_reader(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[test]
fn certificate_subjects_are_shown_escaped() {
    let project = project();
    let d = project.path();
    plant_hostile_certificate(&d.join("pki"));

    let out = run(d, &["certs", "check", "-i", "hosts.yaml"], Sink::Captured);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("admin.crt"))
        .unwrap_or_else(|| panic!("no admin.crt row in {table}"));
    assert!(
        row.contains("\\u{1b}[31mevil\\u{1b}[0m\\r\\u{202e}nimda"),
        "{row}"
    );
    assert!(row.contains("\\u{1b}]0;title\\u{7}"), "{row}");
    let hidden: Vec<char> = table
        .chars()
        .filter(|c| is_hidden_to_a_reader(*c))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?} in {table:?}");

    let out = run(
        d,
        &["certs", "check", "-i", "hosts.yaml", "--output", "json"],
        Sink::Captured,
    );
    let json = text(&out.stdout);
    let hidden: Vec<char> = json.chars().filter(|c| is_hidden_to_a_reader(*c)).collect();
    assert!(hidden.is_empty(), "{hidden:?} in {json}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let admin = value["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["file"] == "admin.crt")
        .unwrap();
    // JSON escapes only: the value read back is the certificate's own.
    let subject = admin["subject"].as_str().unwrap();
    assert!(
        subject.contains("\u{1b}[31mevil\u{1b}[0m\r\u{202e}nimda"),
        "{subject:?}"
    );
}

#[test]
fn invisible_characters_of_paths_and_the_inventory_are_shown_escaped() {
    let project = project();
    let d = project.path();
    fs::create_dir(d.join("mine")).unwrap();
    fs::write(d.join("mine/notes"), "mine\n").unwrap();
    fs::rename(d.join("mine"), d.join("mi\u{202e}ne")).unwrap();
    let base = fs::read_to_string(d.join("hosts.yaml")).unwrap();
    fs::write(
        d.join("hosts.yaml"),
        base.replacen("name: m2", "name: \"m\\u200b2\\e[8m\"", 1),
    )
    .unwrap();
    fs::write(d.join("ok.yaml"), &base).unwrap();
    for (args, shown) in [
        (
            &["check", "-i", "gone\u{1b}[2J\u{200b}.yaml"][..],
            "gone\\u{1b}[2J\\u{200b}.yaml",
        ),
        (
            &["render", "-i", "ok.yaml", "--out", "mi\u{202e}ne"],
            "--out mi\\u{202e}ne",
        ),
        // The inventory refuses the name; whatever the message says of it is escaped.
        (&["check", "-i", "hosts.yaml"], "hosts[2].name"),
    ] {
        let out = run(d, args, Sink::Captured);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(shown), "{shown} not in {err}");
        let hidden: Vec<char> = err.chars().filter(|c| is_hidden_to_a_reader(*c)).collect();
        assert!(hidden.is_empty(), "{hidden:?} in {err:?}");
    }
}
