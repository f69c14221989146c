//! Inputs for the images' unit tests.

use super::pause::PAUSE_SOURCE;
use super::spec::{ImageInputs, ImageNames};
use crate::versions;
use std::fs;
use std::path::Path;

pub(super) fn inputs(dir: &Path) -> ImageInputs {
    let profile = versions::profile_for("v1.37.2").unwrap();
    ImageInputs {
        binaries_dir: dir.join("binaries"),
        cache_dir: dir.join("cache"),
        kubernetes_src: dir.join("k8s.io/kubernetes@v1.37.2"),
        coredns: dir.join("coredns"),
        addon_programs: crate::addons::images()
            .map(|i| (i.key, dir.join(i.recipe.build_component())))
            .collect(),
        names: ImageNames::new(profile, "docker.io/library/node:24-bookworm-slim"),
        conformance: None,
    }
}

/// A stand-in for upstream's pause.c that prints its VERSION define.
pub(super) fn fake_pause_source(opts: &ImageInputs, body: &str) {
    let src = opts.kubernetes_src.join(PAUSE_SOURCE);
    fs::create_dir_all(src.parent().unwrap()).unwrap();
    fs::write(
        &src,
        format!(
            "#include <stdio.h>\n#define S(x) #x\n#define STR(x) S(x)\n\
                 int main(void) {{ printf(\"%s {body}\\n\", STR(VERSION)); return 0; }}\n"
        ),
    )
    .unwrap();
}
