//! One lab host: its overlay, its identity (hostname, address, ssh host key), the supervised
//! systemd-nspawn that boots it, and how it is stopped and cleaned up.

mod create;
mod paths;
mod processes;
mod ready;
mod supervisor;

pub use create::create;
pub use paths::HostPaths;
pub use processes::{
    is_running, kill_leftovers, processes, release, remove_cgroup_parents, terminate,
};
pub use ready::wait_ready;
pub use supervisor::start;

/// Programs at made-up paths, for tests of command lines.
#[cfg(test)]
fn test_tools() -> crate::lab::tools::Tools {
    let t = |name: &str| std::path::PathBuf::from(format!("/bin/{name}"));
    crate::lab::tools::Tools {
        debootstrap: t("debootstrap"),
        nspawn: t("systemd-nspawn"),
        systemctl: t("systemctl"),
        ip: t("ip"),
        ssh_keygen: t("ssh-keygen"),
        ssh: t("ssh"),
        mount: t("mount"),
        setsid: t("setsid"),
        sh: t("sh"),
    }
}
