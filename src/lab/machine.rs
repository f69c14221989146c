//! What the lab needs of the machine itself: root, no IP forwarding (lab hosts reach
//! nothing but their bridge), and the bridge.

use super::error::{io_err, LabError};
use super::layout::{self, BRIDGE, BRIDGE_ADDRESS};
use super::sys;
use super::tools::Tools;
use std::fs;
use std::path::Path;
use std::process::Command;

pub(crate) fn check_root() -> Result<(), LabError> {
    match sys::effective_uid() {
        Ok(0) => Ok(()),
        Ok(_) => Err(LabError::NotRoot),
        Err(source) => Err(LabError::Io {
            action: "cannot read the effective uid from".into(),
            path: "/proc/self/status".into(),
            source,
        }),
    }
}

pub(crate) fn check_forwarding() -> Result<(), LabError> {
    let p = Path::new("/proc/sys/net/ipv4/ip_forward");
    let v = fs::read_to_string(p).map_err(io_err("cannot read", p))?;
    if v.trim() == "0" {
        Ok(())
    } else {
        Err(LabError::Forwarding)
    }
}

/// The bridge with its address, up. Left as is when already there.
pub(crate) fn ensure_bridge(tools: &Tools) -> Result<(), LabError> {
    let ip = |args: &[&str]| {
        let mut cmd = Command::new(&tools.ip);
        cmd.args(args);
        sys::run(&mut cmd)
    };
    if !Path::new("/sys/class/net").join(BRIDGE).exists() {
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    }
    let want = format!("{BRIDGE_ADDRESS}/{}", layout::PREFIX_LEN);
    let addrs = ip(&["-o", "-4", "addr", "show", "dev", BRIDGE])?;
    if !String::from_utf8_lossy(&addrs.stdout).contains(&format!("inet {want} ")) {
        ip(&["addr", "add", &want, "dev", BRIDGE])?;
    }
    ip(&["link", "set", BRIDGE, "up"])?;
    Ok(())
}

/// Deletes the bridge, if there.
pub(crate) fn delete_bridge(tools: &Tools) -> Result<(), LabError> {
    if Path::new("/sys/class/net").join(BRIDGE).exists() {
        let mut cmd = Command::new(&tools.ip);
        cmd.args(["link", "del", BRIDGE]);
        sys::run(&mut cmd)?;
    }
    Ok(())
}
