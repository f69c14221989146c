//! `k8s-boot render`: every file for every host into a directory.

use super::args::RenderArgs;
use super::certs::ensure_pki;
use super::console::outln;
use super::inventory::load;
use anyhow::{Context, Result};
use k8s_boot::render;

pub fn run(args: &RenderArgs, quiet: bool) -> Result<i32> {
    let (inventory, pki_dir, out) = (args.pki.inventory(), args.pki.dir(), &args.out);
    let templates = args.templates.templates.as_deref();
    let cluster = load(inventory)?;
    // Bad input (an output directory, an override name) is refused before the PKI step
    // writes anything.
    render::check_output_dir(out, &cluster, &pki_dir, templates)?;
    let templates = render::Templates::load(templates)?;
    let pki = ensure_pki(&cluster, &pki_dir, quiet)?;
    let plan = render::plan(&cluster, &pki, &templates)?;
    let count =
        render::write_tree(&plan, out).with_context(|| format!("writing {}", out.display()))?;
    outln!(
        "rendered {count} file(s) for {} host(s) into {}",
        plan.hosts.len(),
        out.display()
    )?;
    Ok(0)
}
