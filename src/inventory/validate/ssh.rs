//! SSH settings: the login of `ssh` and of each `hosts[i].ssh`, the known_hosts file.

use super::checker::Checker;
use crate::inventory::schema::Ssh;

/// The cluster-wide `ssh` section.
pub(super) fn check_ssh(c: &mut Checker, ssh: &Ssh) {
    check_login(
        c,
        "ssh",
        Some(ssh.port),
        Some(&ssh.user),
        ssh.key.as_deref(),
    );
    if ssh.known_hosts.trim().is_empty() {
        c.error(
            "ssh.known_hosts",
            "must be the path of an OpenSSH known_hosts file, e.g. ~/.ssh/known_hosts",
        );
    }
}

/// The login settings of `ssh` or `hosts[i].ssh` (`prefix`), where given.
pub(super) fn check_login(
    c: &mut Checker,
    prefix: &str,
    port: Option<u16>,
    user: Option<&str>,
    key: Option<&str>,
) {
    if port == Some(0) {
        c.error(
            &format!("{prefix}.port"),
            "must be a TCP port between 1 and 65535 (22 by default)",
        );
    }
    if let Some(user) = user {
        if user.is_empty() || user.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            c.error(
                &format!("{prefix}.user"),
                format!(
                    "`{}` must be a login user name without spaces or control characters, e.g. root",
                    user.escape_debug()
                ),
            );
        }
    }
    if let Some(key) = key {
        if key.trim().is_empty() {
            c.error(
                &format!("{prefix}.key"),
                "must be a path to a private key file, or left out to use the SSH agent",
            );
        }
    }
}
