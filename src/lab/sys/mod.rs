//! Small operating-system helpers for the lab: running commands with useful errors, finding
//! programs, processes, signals, mounts and cgroups. Linux only, std only.

mod cgroup;
mod command;
mod mount;
mod net;
mod process;
mod text;

pub(crate) use cgroup::{
    cgroup_roots, cgroup_tree_pids, controller_bases, create_cgroup, remove_cgroup_tree,
};
pub(crate) use command::{
    command_failed, describe, find_program, run, run_with_timeout, status_text,
};
pub(crate) use mount::{overlay_uses, remove_tree};
pub(crate) use net::ssh_banner;
pub(crate) use process::{cmdline, comm, effective_uid, pid_alive, signal, SIGKILL, SIGTERM};
pub(crate) use text::{strip_ansi, tail};
