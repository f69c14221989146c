//! The command line as clap types: every command, flag and help text.
//!
//! The argument structs carry no doc comments of their own: a subcommand's help text is the
//! doc comment of its `Command` variant.

use super::docs::{examples, Shell};
use super::exit::UsageError;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "k8s-boot",
    version,
    about = "Bootstrap a highly-available Kubernetes cluster from the official release binaries",
    after_help = examples::TOP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print only errors and the final summary (no progress)
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct InventoryArg {
    /// Inventory file (see `k8s-boot init`)
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: PathBuf,
}

#[derive(Args)]
pub struct PkiArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// PKI directory [default: pki/ next to the inventory]
    #[arg(long, value_name = "DIR")]
    pub pki_dir: Option<PathBuf>,
}

impl PkiArgs {
    pub fn inventory(&self) -> &std::path::Path {
        &self.inv.inventory
    }

    /// `--pki-dir`, else `pki/` next to the inventory.
    pub fn dir(&self) -> PathBuf {
        pki_dir(&self.inv.inventory, self.pki_dir.clone())
    }
}

/// `given`, else the PKI directory next to `inventory`.
pub fn pki_dir(inventory: &std::path::Path, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| k8s_boot::pki::default_dir(inventory))
}

#[derive(Subcommand)]
pub enum Command {
    /// Print an annotated example inventory
    Init,
    /// Validate an inventory and summarise the cluster
    Check(InventoryArg),
    /// Render every file for every host into a directory (CI dry run; touches no host)
    #[command(after_help = examples::RENDER)]
    Render(RenderArgs),
    /// Install the cluster onto the hosts over SSH (only what differs; idempotent)
    #[command(after_help = examples::INSTALL)]
    Install(InstallArgs),
    /// Apply the cluster manifests and the chat workload, update the LB upstreams
    Deploy(DeployArgs),
    /// Upgrade the cluster to the inventory's kubernetes_version: one minor at a time, one
    /// host at a time, nodes drained (resumable; docs/UPGRADE.md)
    #[command(after_help = examples::UPGRADE)]
    Upgrade(UpgradeArgs),
    /// Health of every component on every host
    #[command(after_help = examples::STATUS)]
    Status(StatusArgs),
    /// Take a host out of the cluster: drain, delete its Node, remove its etcd member,
    /// update the LB upstreams and the other members, reset it (docs/OPERATIONS.md)
    #[command(name = "remove-node", after_help = examples::REMOVE_NODE)]
    RemoveNode(RemoveNodeArgs),
    /// Snapshot etcd from a healthy member into backups/ on this machine, with a manifest
    /// (docs/OPERATIONS.md)
    #[command(after_help = examples::BACKUP)]
    Backup(BackupArgs),
    /// Put the cluster's etcd back to a backup: stop the control planes and etcd, restore
    /// every member, start them again (docs/OPERATIONS.md)
    #[command(after_help = examples::RESTORE)]
    Restore(RestoreArgs),
    /// Stop and remove what install made (etcd data kept unless --purge-data)
    #[command(after_help = examples::RESET)]
    Reset(ResetArgs),
    /// Download the official release binaries, verified against the published checksums,
    /// and the images the cluster runs as OCI archives (into DIR/images/)
    #[command(after_help = examples::FETCH)]
    Fetch(FetchArgs),
    /// Run upstream's Kubernetes conformance suite (e2e.test) in the cluster; exit 1 on any
    /// failure
    #[command(after_help = examples::CONFORMANCE)]
    Conformance(ConformanceArgs),
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
    Certs(CertsArgs),
    /// Print a shell completion script to stdout
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write a man page for every command and subcommand into a directory
    Man {
        /// Directory for the pages (created if missing): k8s-boot.1, k8s-boot-install.1, ...
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `--templates`, for every command that renders the plan.
#[derive(Args)]
pub struct TemplatesArg {
    /// Directory of templates overriding the built-in ones by name
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

/// What `lab build` and `lab up` (which builds first) take.
#[derive(Args)]
pub struct LabBuildArgs {
    #[arg(long, default_value = "lab", value_name = "DIR")]
    pub dir: PathBuf,
    /// Kubernetes version to build or fetch (`up` also writes it into the lab inventory)
    #[arg(long, default_value = k8s_boot::lab::DEFAULT_KUBERNETES_VERSION, value_name = "VERSION")]
    pub version: String,
    /// Where upstream builds are cached [default: $K8S_BOOT_BUILD_CACHE, else /var/cache/k8s-boot/build]
    #[arg(long, value_name = "DIR")]
    pub build_cache: Option<PathBuf>,
    /// Download the official release binaries and images, as `k8s-boot fetch` does, instead
    /// of building them from the Go modules: minutes instead of half an hour, but needs the
    /// release sites and registries (or --mirror and --registry-mirror)
    #[arg(long)]
    pub fetch: bool,
    /// Also build the conformance suite (e2e.test, ginkgo) and its images (with --fetch:
    /// download the images) into DIR/binaries/images/conformance/, for `k8s-boot conformance`
    #[arg(long)]
    pub conformance: bool,
    #[command(flatten)]
    pub sources: FetchSources,
}

// `k8s-boot render`.
#[derive(Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub pki: PkiArgs,
    /// Output directory: a new or empty one, or an earlier render output (replaced whole)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub templates: TemplatesArg,
}

// `k8s-boot install`.
#[derive(Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub pki: PkiArgs,
    #[command(flatten)]
    pub templates: TemplatesArg,
    /// Run only these phases (comma-separated): connect, preflight, prepare, pki,
    /// binaries, etcd, lb, control-plane, runtime, node, cluster, workloads, verify
    #[arg(long, value_name = "LIST")]
    pub phases: Option<String>,
    /// Touch only these hosts (comma-separated names)
    #[arg(long, value_name = "LIST")]
    pub hosts: Option<String>,
    /// Show what would change without changing anything
    #[arg(long)]
    pub dry_run: bool,
    /// Hosts worked on at the same time (at least 1)
    #[arg(long, default_value_t = 10, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub parallelism: usize,
    /// Trust and record host keys not yet in known_hosts (never a changed key)
    #[arg(long)]
    pub accept_new_host_keys: bool,
    #[command(flatten)]
    pub ready: ReadyTimeoutArg,
    /// Result format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `--ready-timeout`, for the commands that apply the cluster's manifests.
#[derive(Args)]
pub struct ReadyTimeoutArg {
    /// Seconds the cluster phases wait, in all, for what they applied to be rolled out
    /// (and the metrics API to answer) before they fail naming what is not ready
    #[arg(long = "ready-timeout", value_name = "SECONDS",
          default_value_t = k8s_boot::install::READY_TIMEOUT.as_secs(),
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    pub seconds: u64,
}

impl ReadyTimeoutArg {
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds)
    }
}

// `k8s-boot deploy`.
#[derive(Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub pki: PkiArgs,
    #[command(flatten)]
    pub templates: TemplatesArg,
    /// Trust and record host keys not yet in known_hosts (never a changed key)
    #[arg(long)]
    pub accept_new_host_keys: bool,
    #[command(flatten)]
    pub ready: ReadyTimeoutArg,
}

// `k8s-boot upgrade`.
#[derive(Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub pki: PkiArgs,
    #[command(flatten)]
    pub templates: TemplatesArg,
    /// Show the steps and what each would change on each host, without changing anything
    #[arg(long)]
    pub dry_run: bool,
    /// Trust and record host keys not yet in known_hosts (never a changed key)
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Seconds a node's drain may take (PodDisruptionBudgets respected) before the upgrade
    /// stops, naming the pods that block it
    #[arg(long = "drain-timeout", value_name = "SECONDS",
          default_value_t = k8s_boot::upgrade::DRAIN_TIMEOUT.as_secs(),
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    pub drain_timeout: u64,
    #[command(flatten)]
    pub ready: ReadyTimeoutArg,
    /// Result format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

// `k8s-boot remove-node`.
#[derive(Args)]
pub struct RemoveNodeArgs {
    #[command(flatten)]
    pub pki: PkiArgs,
    #[command(flatten)]
    pub templates: TemplatesArg,
    /// The host to remove, as the inventory names it (delete it from the inventory after)
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Show the steps and what each would change, without changing anything
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (the host is reset, its etcd data deleted)
    #[arg(long)]
    pub yes: bool,
    /// Trust and record host keys not yet in known_hosts (never a changed key)
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Seconds the node's drain may take (PodDisruptionBudgets respected) before the
    /// removal stops, naming the pods that block it
    #[arg(long = "drain-timeout", value_name = "SECONDS",
          default_value_t = k8s_boot::operation::DRAIN_TIMEOUT.as_secs(),
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    pub drain_timeout: u64,
    /// Result format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

// `k8s-boot backup`.
#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub pki: PkiArgs,
    /// Backup directory [default: backups/ next to the inventory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Trust and record host keys not yet in known_hosts (never a changed key)
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Result format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

// `k8s-boot restore`.
#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub pki: PkiArgs,
    /// The snapshot (`backups/<cluster>-<time>.db`), with its manifest `.json` beside it
    #[arg(long, value_name = "FILE")]
    pub snapshot: PathBuf,
    /// Restore a snapshot of another cluster (other CAs), or one whose encryption key is not
    /// the PKI's (its Secrets then cannot be read)
    #[arg(long)]
    pub force: bool,
    /// Show the steps without changing anything (the checks of the snapshot still run)
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (every write since the snapshot is lost)
    #[arg(long)]
    pub yes: bool,
    /// Trust and record host keys not yet in known_hosts (never a changed key)
    #[arg(long)]
    pub accept_new_host_keys: bool,
    #[command(flatten)]
    pub ready: ReadyTimeoutArg,
    /// Result format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

// `k8s-boot status`.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub pki: PkiArgs,
    #[command(flatten)]
    pub templates: TemplatesArg,
    /// Result format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

// `k8s-boot conformance`.
#[derive(Args)]
pub struct ConformanceArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Regular expression of the tests to run [default: every `[Conformance]` test]
    #[arg(long, value_name = "RE", conflicts_with = "quick")]
    pub focus: Option<String>,
    /// Regular expression of the tests not to run [default: none with one process, the
    /// `[Serial]` ones with more]
    #[arg(long, value_name = "RE")]
    pub skip: Option<String>,
    /// Only one short conformance test, as a smoke check of the cluster and of the run
    #[arg(long)]
    pub quick: bool,
    /// ginkgo processes running tests at once (more than 1 skips the `[Serial]` tests unless
    /// --skip says otherwise)
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<u32>::new().range(1..=64))]
    pub parallel: u32,
    /// Where e2e.log and the JUnit report are written (created)
    #[arg(long, default_value = "conformance-results", value_name = "DIR")]
    pub results: PathBuf,
    /// Stop (and remove) the run after this many seconds
    #[arg(long, default_value_t = 24 * 3600, value_name = "SECONDS",
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    pub timeout: u64,
    /// Trust and record host keys not yet in known_hosts (never a changed key)
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Result format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

// `k8s-boot reset`.
#[derive(Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// Reset only these hosts (comma-separated names)
    #[arg(long, value_name = "LIST")]
    pub hosts: Option<String>,
    /// Also delete etcd's data directory
    #[arg(long)]
    pub purge_data: bool,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
}

// `k8s-boot fetch`.
#[derive(Args)]
pub struct FetchArgs {
    /// Kubernetes release, e.g. v1.37.2 [default: the inventory's]
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Take the version and binaries.dir from this inventory
    #[arg(long, short = 'i', value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Binaries directory [default: the inventory's binaries.dir, else binaries/]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// CPU architecture of the hosts
    #[arg(long, default_value = "amd64", value_parser = ["amd64", "arm64"])]
    pub arch: String,
    #[command(flatten)]
    pub sources: FetchSources,
    /// Do not fetch the container images
    #[arg(long)]
    pub no_images: bool,
    /// Also fetch the conformance image and the test images of the conformance tests into
    /// images/conformance/ (nodes import them only for `k8s-boot conformance`)
    #[arg(long, conflicts_with = "no_images")]
    pub conformance: bool,
}

// Where `fetch` and `lab build --fetch` download from, and which image digests they expect.
#[derive(Args)]
pub struct FetchSources {
    /// Base URL of a mirror with the upstream layouts under kubernetes/, etcd/,
    /// containerd/, runc/, crictl/, cni-plugins/, cni-flannel/
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Use this registry API endpoint for images of registry HOST, e.g.
    /// docker.io=https://harbor.corp/hub (repeatable)
    #[arg(long = "registry-mirror", value_name = "HOST=URL")]
    pub registry_mirrors: Vec<String>,
    /// The tag of image REF must resolve to DIGEST (sha256:...), instead of the pinned digest
    /// of docs/FETCH.md or none (repeatable)
    #[arg(long = "image-digest", value_name = "REF=DIGEST")]
    pub image_digests: Vec<String>,
}

impl FetchSources {
    /// Whether any of these flags was given.
    pub fn given(&self) -> bool {
        self.mirror.is_some() || !self.registry_mirrors.is_empty() || !self.image_digests.is_empty()
    }
}

#[derive(Subcommand)]
pub enum LabAction {
    /// Start lab hosts and write DIR/hosts.yaml for them
    #[command(after_help = examples::LAB_UP)]
    Up {
        #[arg(long, default_value_t = 4, value_name = "N")]
        hosts: usize,
        #[command(flatten)]
        build: LabBuildArgs,
    },
    /// Build the lab's binaries and images from the upstream Go modules into DIR/binaries
    /// (what `up` does first; cold builds take tens of minutes), or download them (--fetch)
    #[command(after_help = examples::LAB_BUILD)]
    Build(LabBuildArgs),
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
pub enum OutputFormat {
    Text,
    Json,
}

impl OutputFormat {
    pub fn is_json(self) -> bool {
        matches!(self, OutputFormat::Json)
    }
}

// `k8s-boot certs` and its subcommands.
#[derive(Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub action: Option<CertsAction>,
    /// Inventory file (see `k8s-boot init`)
    #[arg(long, short = 'i', value_name = "FILE", required = true)]
    pub inventory: Option<PathBuf>,
    /// PKI directory [default: pki/ next to the inventory]
    #[arg(long, value_name = "DIR")]
    pub pki_dir: Option<PathBuf>,
    /// Replace every CA; every leaf certificate is re-issued
    #[arg(long)]
    pub rotate_cas: bool,
}

#[derive(Subcommand)]
pub enum CertsAction {
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

impl Cli {
    /// The command's name when it was asked for JSON: a failure then prints a JSON error too.
    pub fn json_command(&self) -> Option<&'static str> {
        match &self.command {
            Command::Install(a) if a.output.is_json() => Some("install"),
            Command::Upgrade(a) if a.output.is_json() => Some("upgrade"),
            Command::RemoveNode(a) if a.output.is_json() => Some("remove-node"),
            Command::Backup(a) if a.output.is_json() => Some("backup"),
            Command::Restore(a) if a.output.is_json() => Some("restore"),
            Command::Status(a) if a.output.is_json() => Some("status"),
            Command::Conformance(a) if a.output.is_json() => Some("conformance"),
            Command::Certs(CertsArgs {
                action: Some(CertsAction::Check { output, .. }),
                ..
            }) if output.is_json() => Some("certs check"),
            _ => None,
        }
    }
}

/// The names of a comma-separated selection flag (`--hosts`, `--phases`); absent means all.
/// An empty name (an empty value, `a,,b`, a trailing comma) or a repeated one is a usage
/// error: an empty selection must never widen to everything.
pub fn selection(flag: &str, value: Option<&str>) -> Result<Vec<String>, UsageError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = Vec::new();
    for name in value.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(UsageError(format!(
                "{flag} `{value}`: empty name; give comma-separated names, or leave {flag} out for all"
            )));
        }
        if names.iter().any(|n| n == name) {
            return Err(UsageError(format!(
                "{flag} `{value}`: `{name}` is given twice"
            )));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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

    #[test]
    fn json_is_named_only_for_commands_asked_for_it() {
        let command = |args: &[&str]| Cli::try_parse_from(args).unwrap().json_command();
        assert_eq!(
            command(&["k8s-boot", "install", "-i", "h", "--output", "json"]),
            Some("install")
        );
        assert_eq!(
            command(&["k8s-boot", "certs", "check", "-i", "h", "--output", "json"]),
            Some("certs check")
        );
        assert_eq!(command(&["k8s-boot", "status", "-i", "h"]), None);
        assert_eq!(command(&["k8s-boot", "certs", "-i", "h"]), None);
    }

    #[test]
    fn a_selection_never_widens_to_everything() {
        assert_eq!(selection("--hosts", None).unwrap(), Vec::<String>::new());
        assert_eq!(selection("--hosts", Some(" m1, w1")).unwrap(), ["m1", "w1"]);
        for bad in ["", "m1,", "m1,,w1", " , "] {
            let err = selection("--hosts", Some(bad)).unwrap_err();
            assert!(err.0.contains("empty name"), "{bad:?}: {err}");
        }
        let err = selection("--phases", Some("lb,lb")).unwrap_err();
        assert_eq!(err.to_string(), "--phases `lb,lb`: `lb` is given twice");
    }
}
