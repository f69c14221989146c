//! One function per subcommand. Each returns an exit status or an error; `main` maps an
//! error to its exit code with [`crate::exit::code`].

use crate::exit::UsageError;
use crate::install;
use crate::inventory::{Cluster, Role};
use crate::pki::{self, Action, Pki};
use crate::render;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The names of a comma-separated selection flag (`--hosts`, `--phases`); absent means all.
/// An empty name (an empty value, `a,,b`, a trailing comma) or a repeated one is a usage
/// error: an empty selection must never widen to everything.
pub fn selection(flag: &str, value: Option<&str>) -> Result<Vec<String>> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = Vec::new();
    for name in value.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(UsageError(format!(
                "{flag} `{value}`: empty name; give comma-separated names, or leave {flag} out for all"
            ))
            .into());
        }
        if names.iter().any(|n| n == name) {
            return Err(UsageError(format!("{flag} `{value}`: `{name}` is given twice")).into());
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// Version of the JSON that `--output json` prints (docs/JSON.md). Raised on any change
/// that removes or renames a field or changes its meaning; new fields keep it.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// Prints `body`'s fields after `schema_version` and `command`, as one JSON object.
pub fn print_json(command: &str, body: &impl serde::Serialize) {
    let mut object = serde_json::Map::new();
    object.insert("schema_version".into(), JSON_SCHEMA_VERSION.into());
    object.insert("command".into(), command.into());
    match serde_json::to_value(body).expect("results serialize") {
        serde_json::Value::Object(fields) => object.extend(fields),
        other => {
            object.insert("result".into(), other);
        }
    }
    let text = serde_json::to_string_pretty(&object).expect("JSON serializes");
    println!("{text}");
}

pub fn init() -> Result<i32> {
    print!("{}", crate::EXAMPLE_INVENTORY);
    Ok(0)
}

fn load(inventory: &Path) -> Result<Cluster> {
    let cluster = Cluster::load(inventory)?;
    for w in &cluster.warnings {
        eprintln!("{}", w.display_in(inventory));
    }
    Ok(cluster)
}

pub fn check(inventory: &Path) -> Result<i32> {
    let c = load(inventory)?;
    let inv = &c.inventory;
    println!(
        "cluster {} - Kubernetes {} (profile v{}, etcd {})",
        inv.cluster.name, inv.cluster.kubernetes_version, c.profile.minor, c.profile.etcd
    );
    println!("  API endpoint     https://{}", c.api_endpoint);
    println!(
        "  pods {}  services {}  (kubernetes {}, DNS {})",
        c.pod_cidr, c.service_cidr, c.kubernetes_service_ip, c.dns_service_ip
    );
    println!(
        "  kube-proxy {}  node ports {}-{}  domain {}",
        inv.cluster.kube_proxy.mode.as_str(),
        c.node_port_range.0,
        c.node_port_range.1,
        inv.cluster.cluster_domain
    );
    if inv.chat.enabled {
        println!(
            "  chat: {} replica(s) of {} on port {} (NodePort {})",
            inv.chat.replicas, inv.chat.image, inv.chat.port, inv.chat.node_port
        );
    } else {
        println!("  chat: disabled");
    }
    println!("  {:<12} {:<40} roles", "host", "address");
    for h in &inv.hosts {
        let roles: Vec<&str> = h.roles.iter().map(|r| r.as_str()).collect();
        println!(
            "  {:<12} {:<40} {}",
            h.name,
            h.address.to_string(),
            roles.join(",")
        );
    }
    let n = |r| c.hosts_with(r).count();
    println!(
        "  {} hosts: {} lb, {} etcd, {} control-plane, {} worker; {} warning(s)",
        inv.hosts.len(),
        n(Role::Lb),
        n(Role::Etcd),
        n(Role::ControlPlane),
        n(Role::Worker),
        c.warnings.len()
    );
    Ok(0)
}

pub fn pki_dir(inventory: &Path, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| pki::default_dir(inventory))
}

/// With `quiet`, only the summary line is printed (not each created or re-issued file).
pub fn certs(inventory: &Path, pki_dir: &Path, opts: pki::Options, quiet: bool) -> Result<i32> {
    let cluster = load(inventory)?;
    if opts.rotate_cas {
        eprintln!(
            "warning: replacing every CA in {}: every leaf certificate is re-issued and every host must receive the new files",
            pki_dir.display()
        );
    }
    let report = Pki::new(pki_dir)
        .ensure(&cluster, opts)
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    for (file, action) in report.actions.iter().filter(|_| !quiet) {
        match action {
            Action::Kept => {}
            Action::Created => println!("created  {file}"),
            Action::Reissued(why) => println!("reissued {file} ({why})"),
        }
    }
    println!(
        "{} file(s) in {}: {} changed, {} kept",
        report.actions.len(),
        pki_dir.display(),
        report.changed(),
        report.actions.len() - report.changed()
    );
    Ok(0)
}

pub fn certs_check(inventory: &Path, pki_dir: &Path, json: bool) -> Result<i32> {
    let cluster = load(inventory)?;
    let rows = Pki::new(pki_dir)
        .check(&cluster)
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    let report = pki::CheckReport::new(pki_dir, &rows);
    let failures = report.problems;
    if json {
        print_json("certs check", &report);
        return Ok(if failures > 0 { 1 } else { 0 });
    }
    let dash = |v: Option<&str>| v.unwrap_or("-").to_string();
    let width = rows.iter().map(|r| r.file.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:<10}  {:>9}  {:<28}  subject / issuer",
        "file", "not-after", "days-left", "status"
    );
    for r in &rows {
        let days = r
            .days_left
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<width$}  {:<10}  {:>9}  {:<28}  {} / {}",
            r.file,
            dash(r.not_after.as_deref()),
            days,
            r.status.to_string(),
            dash(r.subject.as_deref()),
            dash(r.issuer.as_deref())
        );
    }
    if failures > 0 {
        eprintln!(
            "{failures} problem(s) in {}; run `k8s-boot certs` to create or re-issue certificates (it does not change key modes or an existing encryption.key)",
            pki_dir.display()
        );
        return Ok(1);
    }
    Ok(0)
}

pub fn render(
    inventory: &Path,
    pki_dir: &Path,
    templates: Option<&Path>,
    out: &Path,
    quiet: bool,
) -> Result<i32> {
    let cluster = load(inventory)?;
    // Bad input (an output directory, an override name) is refused before the PKI step
    // writes anything.
    render::check_output_dir(out, inventory, pki_dir, templates)?;
    let templates = render::Templates::load(templates)?;
    let pki = ensure_pki(&cluster, pki_dir, quiet)?;
    let plan = render::plan(&cluster, &pki, &templates)?;
    let count =
        render::write_tree(&plan, out).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "rendered {count} file(s) for {} host(s) into {}",
        plan.hosts.len(),
        out.display()
    );
    Ok(0)
}

/// `install` arguments beyond the inventory.
pub struct InstallArgs {
    pub pki_dir: PathBuf,
    pub templates: Option<PathBuf>,
    pub options: install::Options,
    pub quiet: bool,
    pub json: bool,
}

/// The admin kubeconfig, in the plan's cluster files and in the PKI directory after `install`.
pub const ADMIN_KUBECONFIG: &str = "admin.kubeconfig";

pub fn install(inventory: &Path, args: InstallArgs) -> Result<i32> {
    let cluster = load(inventory)?;
    // Bad input (a host or override name) is refused before the PKI step writes anything.
    install::require_known_hosts(&cluster, &args.options.hosts)?;
    let templates = render::Templates::load(args.templates.as_deref())?;
    let pki = if args.options.dry_run {
        dry_run_pki(&cluster, &args.pki_dir, args.quiet)?
    } else {
        ensure_pki(&cluster, &args.pki_dir, args.quiet)?
    };
    let progress = crate::progress::InstallProgress::new(
        &cluster,
        &args.options,
        crate::progress::Mode::detect(args.quiet || args.json),
    );
    let plan = render::plan(&cluster, &pki, &templates)?;
    let report = install::install(&cluster, &plan, &args.options, &progress)?;
    progress.finish();
    if !args.options.dry_run {
        // kubectl on this machine: the admin kubeconfig (via the API endpoint), owner-only,
        // next to the certificates it is made of.
        if let Some(admin) = plan
            .cluster_files
            .iter()
            .find(|f| f.path == ADMIN_KUBECONFIG)
        {
            let path = args.pki_dir.join(ADMIN_KUBECONFIG);
            crate::fsutil::write_atomic(&path, &admin.bytes, 0o600)
                .with_context(|| format!("writing {}", path.display()))?;
            if !args.quiet && !args.json {
                eprintln!("admin kubeconfig: {}", path.display());
            }
        }
    }
    if args.json {
        print_json("install", &report);
    } else if !args.quiet || report.failed() {
        print_install_report(&report);
    } else {
        println!("{}", install_summary(&report));
    }
    Ok(if report.failed() { 1 } else { 0 })
}

fn print_install_report(report: &install::Report) {
    use install::PhaseResult;
    let width = report
        .hosts
        .iter()
        .map(|h| h.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let names: Vec<&str> = report
        .phases
        .iter()
        .map(|p| install::phases::get(*p).name)
        .collect();
    print!("{:width$}", "host");
    for n in &names {
        print!("  {n:<w$}", w = n.len().max(7));
    }
    println!();
    for h in &report.hosts {
        print!("{:width$}", h.host);
        for (p, n) in report.phases.iter().zip(&names) {
            let cell = match h.phases.get(p) {
                None => "-",
                Some(PhaseResult::Changed { .. }) => "changed",
                Some(PhaseResult::Unchanged) => "ok",
                Some(PhaseResult::Failed { .. }) => "FAILED",
                Some(PhaseResult::Skipped) => "skipped",
            };
            print!("  {cell:<w$}", w = n.len().max(7));
        }
        println!();
    }
    for h in &report.hosts {
        for (p, r) in &h.phases {
            let phase = install::phases::get(*p).name;
            match r {
                PhaseResult::Failed { error } => println!("{}: {phase} failed: {error}", h.host),
                PhaseResult::Changed { changes } if report.dry_run => {
                    for c in changes {
                        println!("{}: {phase}: would {c}", h.host);
                    }
                }
                _ => {}
            }
        }
    }
    println!("{}", install_summary(report));
}

/// The last line of the install report: `install in 12.3 s: 4 host phase(s) changed`.
fn install_summary(report: &install::Report) -> String {
    format!(
        "{} in {:.1} s: {} host phase(s) {}{}",
        if report.dry_run { "dry run" } else { "install" },
        report.elapsed_ms as f64 / 1000.0,
        report.changed(),
        if report.dry_run {
            "would change"
        } else {
            "changed"
        },
        if report.failed() {
            "; some hosts FAILED"
        } else {
            ""
        }
    )
}

/// The PKI every plan needs, created or brought up to date first (as `certs` does).
fn ensure_pki(cluster: &Cluster, pki_dir: &Path, quiet: bool) -> Result<Pki> {
    let pki = Pki::new(pki_dir);
    let report = pki
        .ensure(cluster, pki::Options::default())
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    if report.changed() > 0 && !quiet {
        eprintln!(
            "pki: {} file(s) created or re-issued in {}",
            report.changed(),
            pki_dir.display()
        );
    }
    Ok(pki)
}

/// The PKI of a dry run: what the real run's PKI step would create or re-issue is computed
/// in memory and listed on stderr; nothing is written (the directory is not even created).
fn dry_run_pki(cluster: &Cluster, pki_dir: &Path, quiet: bool) -> Result<Pki> {
    let pki = Pki::dry_run(pki_dir);
    let report = pki
        .ensure(cluster, pki::Options::default())
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    if report.changed() > 0 && !quiet {
        for (file, action) in &report.actions {
            match action {
                Action::Kept => {}
                Action::Created => eprintln!("pki: would create  {file}"),
                Action::Reissued(why) => eprintln!("pki: would reissue {file} ({why})"),
            }
        }
        let created = report
            .actions
            .iter()
            .filter(|(_, a)| *a == Action::Created)
            .count();
        eprintln!(
            "pki: dry run, nothing written: the real run would create {created} and re-issue {} file(s) in {}",
            report.changed() - created,
            pki_dir.display()
        );
    }
    Ok(pki)
}

/// `status` reads the PKI as it is and never writes it: a missing or incomplete PKI is
/// refused as invalid input (see `main`).
fn plan_for(cluster: &Cluster, pki_dir: &Path) -> Result<render::Plan> {
    let pki = Pki::new(pki_dir);
    pki.require_complete(cluster)?;
    Ok(render::plan(
        cluster,
        &pki,
        &render::Templates::load(None)?,
    )?)
}

pub fn status(inventory: &Path, pki_dir: &Path, json: bool) -> Result<i32> {
    let cluster = load(inventory)?;
    let plan = plan_for(&cluster, pki_dir)?;
    let hosts = install::maintain::status(&cluster, &plan, Default::default());
    let bad = hosts
        .iter()
        .any(|h| h.error.is_some() || h.services.iter().any(|s| !s.healthy));
    if json {
        print_json(
            "status",
            &serde_json::json!({ "healthy": !bad, "hosts": hosts }),
        );
    } else {
        println!(
            "{:<12} {:<24} {:<8} {:<8} version",
            "host", "service", "active", "healthy"
        );
        for h in &hosts {
            if let Some(e) = &h.error {
                println!("{:<12} unreachable: {e}", h.host);
            }
            for s in &h.services {
                let yn = |b: bool| if b { "yes" } else { "NO" };
                println!(
                    "{:<12} {:<24} {:<8} {:<8} {}",
                    h.host,
                    s.service,
                    yn(s.active),
                    yn(s.healthy),
                    s.version
                );
            }
        }
    }
    Ok(if bad { 1 } else { 0 })
}

/// With `quiet`, only failed hosts and one summary line are printed.
pub fn reset(
    inventory: &Path,
    hosts: &[String],
    purge_data: bool,
    yes: bool,
    quiet: bool,
) -> Result<i32> {
    use std::io::IsTerminal;
    let cluster = load(inventory)?;
    let selected: Vec<&crate::inventory::Host> = cluster
        .inventory
        .hosts
        .iter()
        .filter(|h| hosts.is_empty() || hosts.contains(&h.name))
        .collect();
    install::require_known_hosts(&cluster, hosts)?;
    let names: Vec<&str> = selected.iter().map(|h| h.name.as_str()).collect();
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(UsageError(format!(
                "reset removes what install made on {}: confirm with --yes",
                names.join(", ")
            ))
            .into());
        }
        eprint!(
            "Stop and remove everything k8s-boot installed on {}{}? Type `yes`: ",
            names.join(", "),
            if purge_data {
                ", including etcd data"
            } else {
                ""
            }
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            eprintln!("nothing changed");
            return Ok(1);
        }
    }
    let results = install::maintain::reset(&cluster, &selected, purge_data, Default::default());
    let mut failed = false;
    for r in &results {
        match &r.error {
            Some(e) => {
                failed = true;
                println!("{}: reset failed: {e}", r.host);
            }
            None if quiet => {}
            None => println!("{}: removed {} item(s)", r.host, r.removed.len()),
        }
    }
    if quiet {
        let failures = results.iter().filter(|r| r.error.is_some()).count();
        println!(
            "reset {} host(s): {} item(s) removed, {failures} failed",
            results.len(),
            results.iter().map(|r| r.removed.len()).sum::<usize>()
        );
    }
    Ok(if failed { 1 } else { 0 })
}

/// Arguments of `k8s-boot fetch`.
pub struct FetchArgs {
    pub version: Option<String>,
    pub inventory: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub arch: String,
    pub mirror: Option<String>,
    /// `HOST=URL` each.
    pub registry_mirrors: Vec<String>,
    pub no_images: bool,
    /// Print no progress lines, only the summary.
    pub quiet: bool,
}

pub fn fetch(args: FetchArgs) -> Result<i32> {
    let cluster = args.inventory.as_deref().map(load).transpose()?;
    let version = match (args.version, &cluster) {
        (Some(v), _) => {
            crate::versions::profile_for(&v)
                .map_err(|m| UsageError(format!("--version {v}: {m}")))?;
            v
        }
        (None, Some(c)) => c.version().to_string(),
        (None, None) => {
            return Err(UsageError("give --version vX.Y.Z or --inventory FILE".into()).into())
        }
    };
    let dir = match (args.dir, &cluster) {
        (Some(d), _) => d,
        (None, Some(c)) => c.resolve(&c.inventory.binaries.dir),
        (None, None) => PathBuf::from("binaries"),
    };
    let mut opts = crate::fetch::FetchOptions::new(version, dir.clone());
    opts.arch = args.arch;
    if let Some(base) = args.mirror {
        if !is_http_url(&base) {
            return Err(UsageError(format!(
                "--mirror wants an http:// or https:// base URL, got `{base}`"
            ))
            .into());
        }
        opts.mirror = crate::fetch::Mirrors::under(&base);
    }
    for m in &args.registry_mirrors {
        match m.split_once('=') {
            Some((host, url)) if !host.trim().is_empty() && is_http_url(url.trim()) => {
                opts.mirror
                    .registries
                    .insert(host.trim().to_ascii_lowercase(), url.trim().to_string());
            }
            _ => {
                return Err(UsageError(format!(
                    "--registry-mirror wants HOST=URL with an http:// or https:// URL, got `{m}`"
                ))
                .into())
            }
        }
    }
    opts.images = if args.no_images {
        Vec::new()
    } else {
        // The chat image is the inventory's (none if the chat is disabled); with --version
        // alone, the default one.
        let chat = match &cluster {
            Some(c) if !c.inventory.chat.enabled => None,
            Some(c) => Some(c.inventory.chat.image.clone()),
            None => Some(crate::fetch::default_chat_image()),
        };
        // An unsupported version gives no images here; fetch() reports it before anything.
        crate::fetch::cluster_images(&opts.kubernetes_version, chat.as_deref()).unwrap_or_default()
    };
    let report = crate::fetch::fetch(&opts, &mut |line| {
        // Quiet keeps the warnings (an image verified by its blob digests only).
        if !args.quiet || line.starts_with("warning:") {
            eprintln!("{line}")
        }
    })?;
    println!(
        "{} file(s) and {} image(s) in {}, {} transferred",
        report.files.len(),
        report.images.len(),
        dir.display(),
        crate::fetch::human(report.transferred)
    );
    Ok(0)
}

fn is_http_url(url: &str) -> bool {
    ["http://", "https://"]
        .iter()
        .any(|p| url.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

/// Builds (or takes from the cache) every binary and image the lab needs into
/// `<dir>/binaries`, printing progress per component.
pub fn lab_build(dir: &Path, version: &str, build_cache: Option<PathBuf>) -> Result<PathBuf> {
    let builds = crate::lab::build::builds(version)?;
    let cache = build_cache.unwrap_or_else(crate::lab::build::default_cache);
    let binaries = dir.join("binaries");
    std::fs::create_dir_all(&binaries)
        .with_context(|| format!("creating {}", binaries.display()))?;
    eprintln!(
        "lab binaries: {} upstream builds from their Go modules, cached in {} \
         (a cold build of everything takes about 30 minutes on 2 cores; cached ones take seconds)",
        builds.len(),
        cache.display()
    );
    let started = std::time::Instant::now();
    let built = crate::lab::build::build_all(&builds, &binaries, &cache, &mut |line| {
        eprintln!("  {line}")
    })?;
    // The images are built from three of those programs, pause.c and Debian's packages, under
    // the names the rendered manifests use (the lab inventory keeps the default chat image).
    let program = |component: &str, name: &str| -> Result<PathBuf> {
        built
            .iter()
            .find(|b| b.build.component == component)
            .map(|b| b.dir.join(name))
            .with_context(|| format!("no {component} build"))
    };
    let profile = crate::versions::profile_for(version).map_err(anyhow::Error::msg)?;
    // Archives are built in the build cache (shared by every lab directory) and copied.
    let inputs = crate::lab::images::ImageInputs {
        binaries_dir: cache.clone(),
        cache_dir: cache.clone(),
        kubernetes_src: crate::lab::images::kubernetes_module_dir(version)?,
        coredns: program("coredns", "coredns")?,
        metrics_server: program("metrics-server", "metrics-server")?,
        flanneld: program("flannel", "flannel")?,
        names: crate::lab::images::ImageNames::new(
            profile,
            &crate::inventory::Chat::default().image,
        ),
    };
    let archives = crate::lab::images::build_all(&inputs, &mut |line| eprintln!("  {line}"))?;
    let images = binaries.join(crate::install::IMAGES_DIR);
    std::fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
    for archive in archives {
        let name = archive.file_name().expect("archives have file names");
        copy_if_changed(&archive, &images.join(name))?;
    }
    eprintln!(
        "lab binaries and images ready in {} ({:.0} s)",
        binaries.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(binaries)
}

/// Copies `from` to `to` (temp file, then rename) unless `to` already has the same bytes.
fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let same = std::fs::metadata(to)
        .ok()
        .zip(std::fs::metadata(from).ok())
        .is_some_and(|(a, b)| a.len() == b.len())
        && std::fs::read(to).ok() == std::fs::read(from).ok();
    if same {
        return Ok(());
    }
    let tmp = to.with_extension("tar.tmp");
    std::fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to)
        .with_context(|| format!("renaming {} to {}", tmp.display(), to.display()))?;
    Ok(())
}

pub fn lab_up(
    dir: &Path,
    hosts: usize,
    version: String,
    build_cache: Option<PathBuf>,
) -> Result<i32> {
    lab_build(dir, &version, build_cache)?;
    let report = crate::lab::up(&crate::lab::LabOptions {
        dir: dir.to_path_buf(),
        hosts,
        kubernetes_version: version,
        cache_dir: None,
    })?;
    for h in &report.hosts {
        let note = if report.already_running.contains(&h.name) {
            " (already running)"
        } else {
            ""
        };
        println!("{:<6} {}{note}", h.name, h.address);
    }
    println!(
        "{} lab host(s) up in {:.1} s; inventory: {}",
        report.hosts.len(),
        report.elapsed.as_secs_f64(),
        report.inventory.display()
    );
    Ok(0)
}

pub fn lab_down(dir: &Path) -> Result<i32> {
    let stopped = crate::lab::down(dir)?;
    println!("{stopped} lab host(s) stopped and removed");
    Ok(0)
}

pub fn lab_status(dir: &Path) -> Result<i32> {
    let hosts = crate::lab::status_detailed(dir)?;
    if hosts.is_empty() {
        println!("no lab in {}", dir.display());
        return Ok(1);
    }
    let mut all = true;
    for h in &hosts {
        let yn = |b: bool| if b { "yes" } else { "NO" };
        println!(
            "{:<6} {:<15} running {:<3} ssh {}",
            h.host.name,
            h.host.address,
            yn(h.running),
            yn(h.ssh)
        );
        all &= h.running && h.ssh;
    }
    Ok(if all { 0 } else { 1 })
}
