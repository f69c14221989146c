//! Waiting for a host to boot: ssh answers with the host's known key and systemd reports
//! `running`.

use super::paths::console_tail;
use super::processes::is_running;
use crate::lab::error::LabError;
use crate::lab::layout::{PlannedHost, KEY_FILE, KNOWN_HOSTS_FILE};
use crate::lab::state::HostState;
use crate::lab::sys;
use crate::lab::tools::Tools;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `ssh` as root to a lab host with the lab key, verifying the host key strictly against the
/// lab's known_hosts; no user or system ssh configuration is read.
pub fn ssh_command(tools: &Tools, key: &Path, known_hosts: &Path, host: &str) -> Command {
    let mut cmd = Command::new(&tools.ssh);
    cmd.args(["-F", "/dev/null", "-i"])
        .arg(key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("root@{host}"));
    cmd
}

/// Waits until the host answers ssh with its known key and systemd reports `running`.
pub fn wait_ready(
    lab: &Path,
    host: &PlannedHost,
    pid: u32,
    tools: &Tools,
    deadline: Instant,
    started: Instant,
) -> Result<(), LabError> {
    let ssh = Ssh {
        tools,
        key: lab.join(KEY_FILE),
        known_hosts: lab.join(KNOWN_HOSTS_FILE),
        addr: host.address.to_string(),
    };
    let mut last = String::from("port 22 never answered");
    let recorded = HostState {
        name: host.name.clone(),
        address: host.address,
        pid,
    };
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(LabError::Timeout {
                what: format!(
                    "lab host {} ({}) to accept ssh and finish booting",
                    host.name, ssh.addr
                ),
                waited: now - started,
                detail: format!("{last}\n{}", console_tail(lab, &host.name)),
            });
        }
        if !is_running(lab, &recorded) {
            return Err(LabError::HostExited {
                name: host.name.clone(),
                console_tail: console_tail(lab, &host.name),
            });
        }
        if sys::ssh_banner(host.address, 22, Duration::from_secs(1)).is_none() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        match system_state(&ssh, host, deadline - now)? {
            Boot::Running => return Ok(()),
            Boot::NotYet { why, retry_after } => {
                last = why;
                if let Some(pause) = retry_after {
                    std::thread::sleep(pause);
                }
            }
        }
    }
}

/// How to reach one host over ssh.
struct Ssh<'a> {
    tools: &'a Tools,
    key: PathBuf,
    known_hosts: PathBuf,
    addr: String,
}

impl Ssh<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = ssh_command(self.tools, &self.key, &self.known_hosts, &self.addr);
        cmd.args(args);
        cmd
    }
}

/// One look at a booting host.
enum Boot {
    Running,
    /// Not yet, for the reason `why`; ask again (after `retry_after`).
    NotYet {
        why: String,
        retry_after: Option<Duration>,
    },
}

/// `systemctl is-system-running --wait` over ssh, within `limit`. A refused key and a failed
/// boot are errors; anything else may be sshd or systemd still starting.
fn system_state(ssh: &Ssh, host: &PlannedHost, limit: Duration) -> Result<Boot, LabError> {
    let mut cmd = ssh.command(&["systemctl", "is-system-running", "--wait"]);
    let Some(out) = sys::run_with_timeout(&mut cmd, limit)? else {
        return Ok(Boot::NotYet {
            why: "`systemctl is-system-running --wait` did not return".into(),
            retry_after: None,
        });
    };
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(255) {
        // ssh itself failed. A refused key is final; anything else may be sshd starting.
        if stderr.contains("Host key verification failed")
            || stderr.contains("Permission denied")
            || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        {
            return Err(sys::command_failed(&cmd, &out));
        }
        return Ok(Boot::NotYet {
            why: format!("ssh: {}", sys::tail(&stderr, 3)),
            retry_after: Some(Duration::from_millis(200)),
        });
    }
    match state.as_str() {
        "running" => Ok(Boot::Running),
        "initializing" | "starting" | "" => Ok(Boot::NotYet {
            why: format!("system state `{state}`"),
            retry_after: Some(Duration::from_millis(200)),
        }),
        _ => {
            // The failed units and the last lines each logged: why, without a second look.
            // (ssh hands the one string to the host's shell.)
            let mut failed = ssh.command(&["systemctl --failed --no-legend --plain; \
                 for u in $(systemctl --failed --no-legend --plain | cut -d' ' -f1); do \
                 echo \"--- journal of $u:\"; journalctl -u \"$u\" -n 15 --no-pager -o cat; done"]);
            let detail = match sys::run_with_timeout(&mut failed, Duration::from_secs(10)) {
                Ok(Some(o)) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
                _ => String::new(),
            };
            Err(LabError::Unhealthy {
                name: host.name.clone(),
                state,
                failed_units: detail,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_tools as tools;
    use super::*;

    #[test]
    fn ssh_reads_no_configuration_and_checks_host_keys_strictly() {
        let cmd = ssh_command(
            &tools(),
            Path::new("/lab/id_ed25519"),
            Path::new("/lab/known_hosts"),
            "10.77.0.12",
        );
        assert_eq!(
            sys::describe(&cmd),
            "/bin/ssh -F /dev/null -i /lab/id_ed25519 -o UserKnownHostsFile=/lab/known_hosts \
             -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
             -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR \
             root@10.77.0.12"
        );
    }
}
