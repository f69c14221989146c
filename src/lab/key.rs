//! The lab's ssh key, with which the installer (and the lab itself) logs in to every host.

use super::error::{io_err, LabError};
use super::layout::KEY_FILE;
use super::sys;
use super::tools::Tools;
use crate::fsutil::write_atomic;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The lab's ssh key: generated once, kept by `down`. Returns the public key line.
pub(crate) fn ensure_key(dir: &Path, tools: &Tools) -> Result<String, LabError> {
    let key = dir.join(KEY_FILE);
    let public = dir.join(format!("{KEY_FILE}.pub"));
    if !key.exists() {
        // Generate under a temporary name so an interrupted run leaves no half key pair.
        let tmp = dir.join(format!(".{KEY_FILE}.tmp"));
        let tmp_pub = dir.join(format!(".{KEY_FILE}.tmp.pub"));
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(&tmp_pub);
        let mut keygen = Command::new(&tools.ssh_keygen);
        keygen
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "k8s-boot-lab", "-f"])
            .arg(&tmp);
        sys::run(&mut keygen)?;
        fs::rename(&tmp_pub, &public).map_err(io_err("cannot rename to", &public))?;
        fs::rename(&tmp, &key).map_err(io_err("cannot rename to", &key))?;
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
        .map_err(io_err("cannot chmod", &key))?;
    if !public.exists() {
        let mut derive = Command::new(&tools.ssh_keygen);
        derive.arg("-y").arg("-f").arg(&key);
        let out = sys::run(&mut derive)?;
        write_atomic(&public, &out.stdout, 0o644).map_err(io_err("cannot write", &public))?;
    }
    let text = fs::read_to_string(&public).map_err(io_err("cannot read", &public))?;
    Ok(text.trim().to_string())
}
