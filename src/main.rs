//! Command-line entry point: argument parsing and dispatch only.

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use k8s_boot::cli_docs::{self, examples};
use k8s_boot::{commands, install, pki};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "k8s-boot",
    version,
    about = "Bootstrap a highly-available Kubernetes cluster from the official release binaries",
    after_help = examples::TOP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print only errors and the final summary (no progress)
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Args)]
struct InventoryArg {
    /// Inventory file (see `k8s-boot init`)
    #[arg(long, short = 'i', value_name = "FILE")]
    inventory: PathBuf,
}

#[derive(Args)]
struct PkiArgs {
    #[command(flatten)]
    inv: InventoryArg,
    /// PKI directory [default: pki/ next to the inventory]
    #[arg(long, value_name = "DIR")]
    pki_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Print an annotated example inventory
    Init,
    /// Validate an inventory and summarise the cluster
    Check(InventoryArg),
    /// Render every file for every host into a directory (CI dry run; touches no host)
    #[command(after_help = examples::RENDER)]
    Render {
        #[command(flatten)]
        pki: PkiArgs,
        /// Output directory (replaced as a whole)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Directory of templates overriding the built-in ones by name
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
    },
    /// Install the cluster onto the hosts over SSH (only what differs; idempotent)
    #[command(after_help = examples::INSTALL)]
    Install {
        #[command(flatten)]
        pki: PkiArgs,
        /// Directory of templates overriding the built-in ones by name
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
        /// Run only these phases (comma-separated): connect, preflight, prepare, pki,
        /// binaries, etcd, lb, control-plane, runtime, node, cluster, workloads, verify
        #[arg(long, value_name = "LIST")]
        phases: Option<String>,
        /// Touch only these hosts (comma-separated names)
        #[arg(long, value_name = "LIST")]
        hosts: Option<String>,
        /// Show what would change without changing anything
        #[arg(long)]
        dry_run: bool,
        /// Hosts worked on at the same time (at least 1)
        #[arg(long, default_value_t = 10, value_name = "N",
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        parallelism: usize,
        /// Trust and record host keys not yet in known_hosts (never a changed key)
        #[arg(long)]
        accept_new_host_keys: bool,
        /// Result format
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Apply the cluster manifests and the chat workload, update the LB upstreams
    Deploy {
        #[command(flatten)]
        pki: PkiArgs,
        /// Trust and record host keys not yet in known_hosts (never a changed key)
        #[arg(long)]
        accept_new_host_keys: bool,
    },
    /// Health of every component on every host
    #[command(after_help = examples::STATUS)]
    Status {
        #[command(flatten)]
        pki: PkiArgs,
        /// Result format
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Stop and remove what install made (etcd data kept unless --purge-data)
    #[command(after_help = examples::RESET)]
    Reset {
        #[command(flatten)]
        inv: InventoryArg,
        /// Reset only these hosts (comma-separated names)
        #[arg(long, value_name = "LIST")]
        hosts: Option<String>,
        /// Also delete etcd's data directory
        #[arg(long)]
        purge_data: bool,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
    /// Download the official release binaries, verified against the published checksums,
    /// and the images the cluster runs as OCI archives (into DIR/images/)
    #[command(after_help = examples::FETCH)]
    Fetch {
        /// Kubernetes release, e.g. v1.37.2 [default: the inventory's]
        #[arg(long, value_name = "VERSION")]
        version: Option<String>,
        /// Take the version and binaries.dir from this inventory
        #[arg(long, short = 'i', value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// Binaries directory [default: the inventory's binaries.dir, else binaries/]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// CPU architecture of the hosts
        #[arg(long, default_value = "amd64", value_parser = ["amd64", "arm64"])]
        arch: String,
        /// Base URL of a mirror with the upstream layouts under kubernetes/, etcd/,
        /// containerd/, runc/, crictl/, cni-plugins/, cni-flannel/
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
        /// Use this registry API endpoint for images of registry HOST, e.g.
        /// docker.io=https://harbor.corp/hub (repeatable)
        #[arg(long = "registry-mirror", value_name = "HOST=URL")]
        registry_mirrors: Vec<String>,
        /// Do not fetch the container images
        #[arg(long)]
        no_images: bool,
    },
    /// Throwaway local test hosts (systemd-nspawn, needs root)
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Create or update the cluster PKI (idempotent)
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = examples::CERTS
    )]
    Certs {
        #[command(subcommand)]
        action: Option<CertsAction>,
        /// Inventory file (see `k8s-boot init`)
        #[arg(long, short = 'i', value_name = "FILE", required = true)]
        inventory: Option<PathBuf>,
        /// PKI directory [default: pki/ next to the inventory]
        #[arg(long, value_name = "DIR")]
        pki_dir: Option<PathBuf>,
        /// Replace every CA; every leaf certificate is re-issued
        #[arg(long)]
        rotate_cas: bool,
    },
    /// Print a shell completion script to stdout
    Completions {
        #[arg(value_enum)]
        shell: cli_docs::Shell,
    },
    /// Write a man page for every command and subcommand into a directory
    Man {
        /// Directory for the pages (created if missing): k8s-boot.1, k8s-boot-install.1, ...
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Start lab hosts and write DIR/hosts.yaml for them
    #[command(after_help = examples::LAB_UP)]
    Up {
        #[arg(long, default_value_t = 4, value_name = "N")]
        hosts: usize,
        #[arg(long, default_value = "lab", value_name = "DIR")]
        dir: PathBuf,
        /// Kubernetes version written into the lab inventory (and built)
        #[arg(long, default_value = k8s_boot::lab::DEFAULT_KUBERNETES_VERSION, value_name = "VERSION")]
        version: String,
        /// Where upstream builds are cached [default: $K8S_BOOT_BUILD_CACHE, else /var/cache/k8s-boot/build]
        #[arg(long, value_name = "DIR")]
        build_cache: Option<PathBuf>,
    },
    /// Build the lab's binaries and images from the upstream Go modules into DIR/binaries
    /// (what `up` does first; cold builds take tens of minutes)
    Build {
        #[arg(long, default_value = "lab", value_name = "DIR")]
        dir: PathBuf,
        /// Kubernetes version to build
        #[arg(long, default_value = k8s_boot::lab::DEFAULT_KUBERNETES_VERSION, value_name = "VERSION")]
        version: String,
        /// Where upstream builds are cached [default: $K8S_BOOT_BUILD_CACHE, else /var/cache/k8s-boot/build]
        #[arg(long, value_name = "DIR")]
        build_cache: Option<PathBuf>,
    },
    /// Stop and remove the lab hosts (the cached root file system is kept)
    Down {
        #[arg(long, default_value = "lab", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Show whether each lab host runs and answers SSH
    Status {
        #[arg(long, default_value = "lab", value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum CertsAction {
    /// Print an expiry table; exit non-zero on any missing, expired, foreign or outdated cert
    Check {
        #[command(flatten)]
        pki: PkiArgs,
        /// Result format
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Re-issue every leaf certificate (CAs are kept)
    Renew(PkiArgs),
}

/// The command's name when it was asked for JSON: a failure then prints a JSON error too.
fn json_command(cli: &Cli) -> Option<&'static str> {
    let json = |o: &OutputFormat| matches!(o, OutputFormat::Json);
    match &cli.command {
        Command::Install { output, .. } if json(output) => Some("install"),
        Command::Status { output, .. } if json(output) => Some("status"),
        Command::Certs {
            action: Some(CertsAction::Check { output, .. }),
            ..
        } if json(output) => Some("certs check"),
        _ => None,
    }
}

/// `k8s-boot completions SHELL`.
fn completions(shell: cli_docs::Shell) -> anyhow::Result<i32> {
    cli_docs::completions(shell, &mut Cli::command(), &mut std::io::stdout().lock())
        .context("writing the completion script to stdout")?;
    Ok(0)
}

/// `k8s-boot man --out DIR`.
fn man_pages(out: &Path) -> anyhow::Result<i32> {
    let pages = cli_docs::write_man_pages(Cli::command(), out)?;
    println!("{} man page(s) in {}", pages.len(), out.display());
    Ok(0)
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let quiet = cli.quiet;
    let pki_dir = |a: &PkiArgs| commands::pki_dir(&a.inv.inventory, a.pki_dir.clone());
    match cli.command {
        Command::Init => commands::init(),
        Command::Check(a) => commands::check(&a.inventory),
        Command::Install {
            pki,
            templates,
            phases,
            hosts,
            dry_run,
            parallelism,
            accept_new_host_keys,
            output,
        } => {
            let options = install::Options {
                phases: install::parse_phases(&commands::selection(
                    "--phases",
                    phases.as_deref(),
                )?)?,
                hosts: commands::selection("--hosts", hosts.as_deref())?,
                dry_run,
                parallelism,
                accept_new_host_keys,
                ..Default::default()
            };
            commands::install(
                &pki.inv.inventory,
                commands::InstallArgs {
                    pki_dir: pki_dir(&pki),
                    templates,
                    options,
                    quiet,
                    json: matches!(output, OutputFormat::Json),
                },
            )
        }
        Command::Deploy {
            pki,
            accept_new_host_keys,
        } => commands::install(
            &pki.inv.inventory,
            commands::InstallArgs {
                pki_dir: pki_dir(&pki),
                templates: None,
                options: install::Options {
                    phases: install::parse_phases(&["lb", "cluster", "workloads"])?,
                    accept_new_host_keys,
                    ..Default::default()
                },
                quiet,
                json: false,
            },
        ),
        Command::Status { pki, output } => commands::status(
            &pki.inv.inventory,
            &pki_dir(&pki),
            matches!(output, OutputFormat::Json),
        ),
        Command::Reset {
            inv,
            hosts,
            purge_data,
            yes,
        } => commands::reset(
            &inv.inventory,
            &commands::selection("--hosts", hosts.as_deref())?,
            purge_data,
            yes,
            quiet,
        ),
        Command::Fetch {
            version,
            inventory,
            dir,
            arch,
            mirror,
            registry_mirrors,
            no_images,
        } => commands::fetch(commands::FetchArgs {
            version,
            inventory,
            dir,
            arch,
            mirror,
            registry_mirrors,
            no_images,
            quiet,
        }),
        Command::Lab { action } => match action {
            LabAction::Up {
                hosts,
                dir,
                version,
                build_cache,
            } => commands::lab_up(&dir, hosts, version, build_cache),
            LabAction::Build {
                dir,
                version,
                build_cache,
            } => commands::lab_build(&dir, &version, build_cache).map(|_| 0),
            LabAction::Down { dir } => commands::lab_down(&dir),
            LabAction::Status { dir } => commands::lab_status(&dir),
        },
        Command::Render {
            pki,
            out,
            templates,
        } => commands::render(
            &pki.inv.inventory,
            &pki_dir(&pki),
            templates.as_deref(),
            &out,
            quiet,
        ),
        Command::Certs {
            action,
            inventory,
            pki_dir: dir,
            rotate_cas,
        } => match (action, inventory) {
            (Some(CertsAction::Check { pki: a, output }), _) => commands::certs_check(
                &a.inv.inventory,
                &pki_dir(&a),
                matches!(output, OutputFormat::Json),
            ),
            (Some(CertsAction::Renew(a)), _) => commands::certs(
                &a.inv.inventory,
                &pki_dir(&a),
                pki::Options {
                    renew_leaves: true,
                    rotate_cas: false,
                },
                quiet,
            ),
            (None, Some(inventory)) => commands::certs(
                &inventory,
                &commands::pki_dir(&inventory, dir),
                pki::Options {
                    rotate_cas,
                    renew_leaves: false,
                },
                quiet,
            ),
            (None, None) => unreachable!("clap requires --inventory"),
        },
        Command::Completions { shell } => completions(shell),
        Command::Man { out } => man_pages(&out),
    }
}

fn main() -> ExitCode {
    // Behave like other command-line tools when output is piped into `head`: end quietly
    // instead of panicking on a closed pipe.
    // SAFETY: called before any other thread exists; restores the default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap uses 0 for --help/--version and 2 for usage errors.
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let json = json_command(&cli);
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("error: {err:#}");
            if let Some(command) = json {
                commands::print_json(
                    command,
                    &serde_json::json!({ "error": k8s_boot::exit::error_json(&err) }),
                );
            }
            ExitCode::from(k8s_boot::exit::code(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example of `--help` is a command line this parser accepts.
    #[test]
    fn every_help_example_parses() {
        Cli::command().debug_assert();
        let mut count = 0;
        for section in examples::ALL {
            for words in examples::command_lines(section) {
                assert_eq!(words[0], "k8s-boot", "{words:?}");
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("example `{}` is refused: {e}", words.join(" "));
                }
                count += 1;
            }
        }
        assert!(count >= 25, "{count} examples");
    }

    #[test]
    fn quiet_is_accepted_by_every_command() {
        for args in [
            &["k8s-boot", "-q", "install", "-i", "h.yaml"][..],
            &["k8s-boot", "install", "-q", "-i", "h.yaml"],
            &["k8s-boot", "deploy", "-i", "h.yaml", "--quiet"],
            &["k8s-boot", "render", "-i", "h.yaml", "--out", "o", "-q"],
            &["k8s-boot", "certs", "-i", "h.yaml", "-q"],
            &["k8s-boot", "certs", "check", "-i", "h.yaml", "-q"],
            &["k8s-boot", "fetch", "--version", "v1.37.2", "-q"],
            &["k8s-boot", "reset", "-i", "h.yaml", "--yes", "-q"],
            &["k8s-boot", "lab", "up", "-q"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(cli.quiet, "{args:?}");
        }
        assert!(
            !Cli::try_parse_from(["k8s-boot", "install", "-i", "h"])
                .unwrap()
                .quiet
        );
    }
}
