//! Host-key verification against an OpenSSH known_hosts file.

use super::error::SshError;
use super::target::Target;
use ssh2::{CheckResult, HostKeyType, KnownHostFileKind, MethodType, Session};
use std::io::Write;
use std::path::PathBuf;

/// What to do with host keys.
#[derive(Debug, Clone)]
pub struct HostKeyPolicy {
    pub known_hosts: PathBuf,
    /// Trust and record keys of hosts not yet in the file (never a changed key).
    pub accept_new: bool,
    /// Whether an accepted new key is written to the file; false in a dry run, which trusts
    /// it for that run only.
    pub record_new: bool,
}

fn type_name(t: HostKeyType) -> Option<&'static str> {
    Some(match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => return None,
    })
}

/// The host pattern known_hosts uses for this target.
fn pattern(target: &Target) -> String {
    if target.port == 22 {
        target.address.to_string()
    } else {
        format!("[{}]:{}", target.address, target.port)
    }
}

impl HostKeyPolicy {
    /// Asks the server for a key type the file already holds for this host, so that a
    /// host with several keys is checked against the one recorded.
    pub(super) fn prefer_known_types(
        &self,
        session: &Session,
        target: &Target,
    ) -> Result<(), SshError> {
        let Ok(text) = std::fs::read_to_string(&self.known_hosts) else {
            return Ok(());
        };
        let want = pattern(target);
        let mut types: Vec<&str> = Vec::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(hosts), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            if hosts.split(',').any(|h| h == want) && !types.contains(&kind) {
                types.push(kind);
            }
        }
        if !types.is_empty() {
            let _ = session.method_pref(MethodType::HostKey, &types.join(","));
        }
        Ok(())
    }

    pub(super) fn verify(&self, session: &Session, target: &Target) -> Result<(), SshError> {
        let refuse = |message: String| SshError::HostKey {
            host: target.name.clone(),
            message,
        };
        let (key, kind) = session
            .host_key()
            .ok_or_else(|| refuse("the server sent no host key".into()))?;
        let fingerprint = session
            .host_key_hash(ssh2::HashType::Sha256)
            .map(|h| base64::Engine::encode(&base64::engine::general_purpose::STANDARD_NO_PAD, h))
            .unwrap_or_default();
        let mut known = session.known_hosts().map_err(|e| refuse(e.to_string()))?;
        if self.known_hosts.exists() {
            known
                .read_file(&self.known_hosts, KnownHostFileKind::OpenSSH)
                .map_err(|e| refuse(format!("cannot read {}: {e}", self.known_hosts.display())))?;
        }
        match known.check_port(&target.address.to_string(), target.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => Err(refuse(format!(
                "the key of {} (SHA256:{fingerprint}) differs from the one in {}: possible man-in-the-middle; if the host was reinstalled, remove its old line from that file",
                pattern(target),
                self.known_hosts.display()
            ))),
            CheckResult::Failure => Err(refuse(format!("cannot check against {}", self.known_hosts.display()))),
            CheckResult::NotFound if !self.accept_new => Err(refuse(format!(
                "{} (SHA256:{fingerprint}) is not in {}; add it (e.g. from the host's console), or rerun with --accept-new-host-keys to trust it on first use",
                pattern(target),
                self.known_hosts.display()
            ))),
            CheckResult::NotFound if !self.record_new => {
                notice(&format!(
                    "{}: trusting new host key SHA256:{fingerprint} for this dry run only; the real run records it in {}",
                    target.name,
                    self.known_hosts.display()
                ));
                Ok(())
            }
            CheckResult::NotFound => {
                let kind = type_name(kind).ok_or_else(|| refuse("unknown host key type".into()))?;
                let line = format!(
                    "{} {kind} {}\n",
                    pattern(target),
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key)
                );
                if let Some(dir) = self.known_hosts.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.known_hosts)
                    .and_then(|mut f| f.write_all(line.as_bytes()))
                    .map_err(|e| refuse(format!("cannot record the key in {}: {e}", self.known_hosts.display())))?;
                notice(&format!(
                    "{}: trusted new host key SHA256:{fingerprint}, recorded in {}",
                    target.name,
                    self.known_hosts.display()
                ));
                Ok(())
            }
        }
    }
}

/// A notice on stderr, best effort: a closed or full stderr must not stop the connection.
fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "{}", crate::shown::escape_message(text));
}
