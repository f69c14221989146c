//! What the command line tells about itself: the examples of `--help`, shell completion
//! scripts (`k8s-boot completions SHELL`) and man pages (`k8s-boot man --out DIR`).
//!
//! Completions and man pages are generated from the `clap::Command` of [`super::args::Cli`],
//! so they always list the commands and flags the binary accepts.

use super::console::{outln, write_stdout};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The EXAMPLES sections of `--help` (clap `after_help`). Each example is one command line,
/// optionally followed by `# comment`; the man pages show them in their EXAMPLES section.
pub mod examples {
    pub const TOP: &str = "\
Examples:
  k8s-boot init > hosts.yaml                            # annotated example inventory to edit
  k8s-boot check -i hosts.yaml                          # validate it and summarise the cluster
  k8s-boot fetch -i hosts.yaml                          # release binaries and images, verified
  k8s-boot install -i hosts.yaml --dry-run              # what would change; nothing is written
  k8s-boot install -i hosts.yaml --accept-new-host-keys # first contact: record the host keys
  k8s-boot status -i hosts.yaml --output json           # every component on every host
  k8s-boot completions bash > ~/.local/share/bash-completion/completions/k8s-boot
  k8s-boot man --out ~/.local/share/man/man1            # one man page per command";

    pub const INSTALL: &str = "\
Examples:
  k8s-boot install -i hosts.yaml --accept-new-host-keys   # first contact: trust and record new host keys
  k8s-boot install -i hosts.yaml --dry-run                # what would change on each host; writes nothing
  k8s-boot install -i hosts.yaml                          # push what differs, (re)start, verify
  k8s-boot install -i hosts.yaml --hosts w3               # a new host only (then `k8s-boot deploy`)
  k8s-boot install -i hosts.yaml --hosts lb1 --phases lb  # only the load balancer's nginx
  k8s-boot install -i hosts.yaml --output json > report.json   # the result as JSON on stdout
  k8s-boot install -i hosts.yaml -q                       # print only failures and the summary";

    pub const UPGRADE: &str = "\
Examples:
  k8s-boot upgrade -i hosts.yaml --dry-run     # after raising cluster.kubernetes_version: the steps, what each changes
  k8s-boot upgrade -i hosts.yaml               # stage, etcd, load balancers, control planes, drained nodes, add-ons
  k8s-boot upgrade -i hosts.yaml               # again after a failure: continues with the first step not done
  k8s-boot upgrade -i hosts.yaml --drain-timeout 600 --output json > upgrade.json";

    pub const REMOVE_NODE: &str = "\
Examples:
  k8s-boot remove-node -i hosts.yaml w2 --dry-run   # the steps: drain, delete the Node, LB upstreams, reset
  k8s-boot remove-node -i hosts.yaml m3             # an etcd member too: refused if etcd would lose quorum
  k8s-boot remove-node -i hosts.yaml w2 --yes       # no prompt (scripts); then delete w2 from hosts.yaml";

    pub const BACKUP: &str = "\
Examples:
  k8s-boot backup -i hosts.yaml                  # backups/<cluster>-<UTC time>.db and .json (0600)
  k8s-boot backup -i hosts.yaml --dir /srv/etcd-backups --output json";

    pub const RESTORE: &str = "\
Examples:
  k8s-boot restore -i hosts.yaml --snapshot backups/lab-20261207T120000Z.db --dry-run
  k8s-boot restore -i hosts.yaml --snapshot backups/lab-20261207T120000Z.db   # asks; --yes in scripts";

    pub const RENDER: &str = "\
Examples:
  k8s-boot render -i hosts.yaml --out out/                # every file for every host, plus out/plan.json
  k8s-boot render -i hosts.yaml --out out/ --templates my-templates/   # with overriding templates
  k8s-boot render -i hosts.yaml --out out/ --pki-dir /secure/pki";

    pub const CERTS: &str = "\
Examples:
  k8s-boot certs -i hosts.yaml                            # create what is missing, in pki/ next to hosts.yaml
  k8s-boot certs check -i hosts.yaml                      # expiry table; exit 1 on any problem
  k8s-boot certs check -i hosts.yaml --output json
  k8s-boot certs renew -i hosts.yaml                      # re-issue every leaf, keep the CAs
  k8s-boot certs -i hosts.yaml --rotate-cas               # new CAs and leaves: install them everywhere";

    pub const STATUS: &str = "\
Examples:
  k8s-boot status -i hosts.yaml                           # table of every service on every host
  k8s-boot status -i hosts.yaml --output json             # the same as JSON; exit 1 if anything is unhealthy";

    pub const CONFORMANCE: &str = "\
Examples:
  k8s-boot conformance -i hosts.yaml --quick              # one short test: the run works, the cluster answers
  k8s-boot conformance -i hosts.yaml --parallel 3         # every non-serial conformance test, 3 at a time
  k8s-boot conformance -i hosts.yaml                      # the whole suite, one test at a time (serial ones too)
  k8s-boot conformance -i hosts.yaml --focus 'sig-network.*\\[Conformance\\]' --results out/  # a subset
  k8s-boot conformance -i hosts.yaml --quick --output json   # the summary as JSON on stdout";

    pub const RESET: &str = "\
Examples:
  k8s-boot reset -i hosts.yaml                            # asks for `yes` on a terminal; etcd data kept
  k8s-boot reset -i hosts.yaml --hosts w3 --yes           # one host, no question (scripts, CI)
  k8s-boot reset -i hosts.yaml --purge-data --yes         # everything, etcd data included";

    pub const FETCH: &str = "\
Examples:
  k8s-boot fetch -i hosts.yaml                            # the inventory's version into its binaries.dir
  k8s-boot fetch --version v1.37.2 --dir binaries --arch arm64 --no-images
  k8s-boot fetch -i hosts.yaml --mirror https://mirror.corp/k8s --registry-mirror docker.io=https://harbor.corp/hub
  k8s-boot fetch -i hosts.yaml --image-digest docker.io/library/node:24-bookworm-slim=sha256:HEX   # pin the chat image";

    pub const LAB_UP: &str = "\
Examples:
  sudo k8s-boot lab up --hosts 6                          # lb1, m1-m3, w1-w2 and lab/hosts.yaml
  sudo k8s-boot install -i lab/hosts.yaml --accept-new-host-keys
  sudo k8s-boot lab up --dir /tmp/lab --hosts 4 --version v1.36.0
  sudo k8s-boot lab up --hosts 6 --fetch                  # official releases instead of a half-hour build";

    pub const LAB_BUILD: &str = "\
Examples:
  sudo k8s-boot lab build                                 # from the Go modules (cached; cold: about 30 minutes)
  k8s-boot lab build --fetch                              # the official releases and images (needs their sites)
  k8s-boot lab build --fetch --mirror https://mirror.corp/k8s --registry-mirror docker.io=https://harbor.corp/hub";

    /// Every section, to check each example line against the parser.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        TOP, INSTALL, RENDER, CERTS, STATUS, RESET, FETCH, LAB_UP, LAB_BUILD,
    ];

    /// The command lines of an EXAMPLES section: `sudo`, the comment and any redirection
    /// removed, split into words (examples use no quoting).
    #[cfg(test)]
    pub fn command_lines(section: &str) -> Vec<Vec<&str>> {
        section
            .lines()
            .skip(1)
            .map(|l| l.split(" #").next().unwrap_or(l))
            .map(|l| l.split(" > ").next().unwrap_or(l))
            .map(|l| {
                l.split_whitespace()
                    .skip_while(|w| *w == "sudo")
                    .collect::<Vec<_>>()
            })
            .filter(|words| !words.is_empty())
            .collect()
    }
}

/// Shells `k8s-boot completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `k8s-boot completions SHELL`: the script on stdout.
pub fn print_completions(shell: Shell, cmd: &mut clap::Command) -> anyhow::Result<i32> {
    let mut script = Vec::new();
    completions(shell, cmd, &mut script).context("generating the completion script")?;
    // The script goes out as it is: it is ours, and escaping would change it.
    write_stdout(&script)?;
    Ok(0)
}

/// `k8s-boot man --out DIR`.
pub fn man(cmd: clap::Command, out: &Path) -> anyhow::Result<i32> {
    let pages = write_man_pages(cmd, out)?;
    outln!("{} man page(s) in {}", pages.len(), out.display())?;
    Ok(0)
}

/// Writes the completion script for `shell` of the command line `cmd` to `out`.
pub fn completions(
    shell: Shell,
    cmd: &mut clap::Command,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(generator, cmd, name.clone(), &mut script);
    let mut script = String::from_utf8(script).expect("completion scripts are text");
    if shell == Shell::Bash && name.contains('-') {
        // clap_complete's bash script spells the state of a subcommand of a hyphenated
        // program two ways: the word loop sets `k8s__boot__subcmd__install`, the case arm
        // expects `k8s__subcmd__boot__subcmd__install`, so no subcommand's options would
        // complete (clap-rs/clap#6421). Spell the arms as the loop does.
        let broken = format!("{}__subcmd__", name.replace('-', "__subcmd__"));
        let fixed = format!("{}__subcmd__", name.replace('-', "__"));
        script = script.replace(&broken, &fixed);
    }
    out.write_all(script.as_bytes())?;
    out.flush()
}

#[derive(Debug, thiserror::Error)]
pub enum ManError {
    #[error("--out {}: is not a directory (expected a directory for the man pages, created if missing)", path.display())]
    NotADirectory { path: PathBuf },
    #[error("--out {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ManError {
    pub fn exit_code(&self) -> u8 {
        use k8s_boot::fault::Fault;
        match self {
            ManError::NotADirectory { .. } => Fault::Input,
            ManError::Io { .. } => Fault::Runtime,
        }
        .exit_code()
    }
}

/// The man pages of `cmd` and of every subcommand, nested ones included, as
/// `(file name, roff source)`, the top-level page first: `k8s-boot.1`, `k8s-boot-install.1`,
/// `k8s-boot-certs-check.1`, ...
pub fn man_pages(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
    fn walk(cmd: &clap::Command, source: &str, pages: &mut Vec<(String, Vec<u8>)>) {
        pages.push(man_page(cmd, source));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, source, pages);
        }
    }
    // Building sets each subcommand's display name (`k8s-boot-certs-check`) and propagates
    // the global flags.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    // Every page's footer names the program and its version, not the subcommand.
    let source = format!(
        "{} {}",
        cmd.get_name(),
        cmd.get_version().unwrap_or_default()
    );
    let mut pages = Vec::new();
    walk(&cmd, source.trim_end(), &mut pages);
    pages
}

/// One page: clap_mangen's, with the `--help` examples as an EXAMPLES section (in place of
/// its EXTRA section, before VERSION).
fn man_page(cmd: &clap::Command, source: &str) -> (String, Vec<u8>) {
    let examples = cmd.get_after_help().map(|s| s.to_string());
    let man = clap_mangen::Man::new(cmd.clone().after_help(None::<&str>)).source(source);
    let mut out = Vec::new();
    man.render(&mut out)
        .expect("rendering into memory cannot fail");
    let mut page = String::from_utf8(out).expect("roff is text");
    if let Some(text) = examples {
        let at = page.find(".SH VERSION\n").unwrap_or(page.len());
        page.insert_str(at, &examples_section(&text));
    }
    (man.get_filename(), page.into_bytes())
}

/// The EXAMPLES section in roff: the lines after the `Examples:` heading, unfilled, with
/// backslashes, hyphens and leading dots escaped.
fn examples_section(text: &str) -> String {
    let mut out = String::from(".SH EXAMPLES\n.nf\n");
    for line in text.lines().skip_while(|l| l.trim_end().ends_with(':')) {
        let line = line
            .strip_prefix("  ")
            .unwrap_or(line)
            .replace('\\', "\\e")
            .replace('-', "\\-");
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}

/// Writes [`man_pages`] into `dir` (created if missing), each file atomically, and returns
/// their paths. Every page is rendered before the first is written.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, ManError> {
    if dir.exists() && !dir.is_dir() {
        return Err(ManError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let io = |source| ManError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut written = Vec::new();
    for (name, bytes) in man_pages(cmd) {
        let path = dir.join(name);
        k8s_boot::fsutil::write_atomic(&path, &bytes, 0o644).map_err(|source| ManError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        clap::Command::new("tool")
            .version("1.0")
            .after_help("Examples:\n  tool sub --flag x   # a comment\n  .hidden \\n")
            .subcommand(
                clap::Command::new("sub")
                    .about("A subcommand")
                    .arg(clap::Arg::new("flag").long("flag"))
                    .subcommand(clap::Command::new("leaf").about("Nested")),
            )
    }

    #[test]
    fn one_page_per_command_with_escaped_examples() {
        let pages = man_pages(cli());
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["tool.1", "tool-sub.1", "tool-sub-leaf.1"]);
        let top = String::from_utf8(pages[0].1.clone()).unwrap();
        assert!(top.contains("\n.TH tool 1 "), "{top}");
        assert!(
            top.contains(
                ".SH EXAMPLES\n.nf\ntool sub \\-\\-flag x   # a comment\n\\&.hidden \\en\n.fi\n"
            ),
            "{top}"
        );
        // The examples are not repeated as clap_mangen's EXTRA section.
        assert!(!top.contains("EXTRA"), "{top}");
        let leaf = String::from_utf8(pages[2].1.clone()).unwrap();
        assert!(leaf.contains(".TH tool-sub-leaf 1  \"tool 1.0\""), "{leaf}");
        assert!(!leaf.contains("EXAMPLES"), "{leaf}");
    }

    #[test]
    fn refuses_an_out_that_is_a_file_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("man");
        std::fs::write(&file, "keep").unwrap();
        let err = write_man_pages(cli(), &file).unwrap_err();
        assert!(matches!(err, ManError::NotADirectory { .. }), "{err}");
        assert!(err.to_string().starts_with("--out "), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");

        let dir = tmp.path().join("new/man1");
        let written = write_man_pages(cli(), &dir).unwrap();
        assert_eq!(written.len(), 3);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            3,
            "no temp files left"
        );
    }

    #[test]
    fn example_command_lines_drop_sudo_comments_and_redirections() {
        let lines = examples::command_lines(
            "Examples:\n  sudo tool up --hosts 6   # c\n  tool init > x.yaml\n  tool a -q",
        );
        assert_eq!(
            lines,
            vec![
                vec!["tool", "up", "--hosts", "6"],
                vec!["tool", "init"],
                vec!["tool", "a", "-q"]
            ]
        );
    }
}
