//! In-memory hosts for the runner's unit tests: files, services and every command run,
//! behind the same [`Remote`] and [`Connector`] traits SSH implements.

use super::remote::{Connector, FileToPut, KnownFiles, Remote};
use crate::inventory::Host;
use crate::ssh::{Output, RemoteFile, Source, SshError, Upload};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A host in memory: its files, which services are active and enabled, every command run.
#[derive(Default)]
pub struct FakeHost {
    pub files: BTreeMap<String, (Vec<u8>, u32, String)>,
    pub active: BTreeSet<String>,
    pub enabled: BTreeSet<String>,
    pub log: Vec<String>,
    pub unreachable: bool,
    /// Commands that exit 1.
    pub failing: Vec<String>,
    /// `(part, stdout)`: a command containing `part` prints `stdout` (the first that
    /// matches), e.g. what kubectl says.
    pub replies: Vec<(String, String)>,
    /// `(part, outputs)`: like `replies`, but a command containing `part` prints the next of
    /// `outputs`, the last one from then on (what a poll sees change). Looked at first.
    pub reply_sequences: Vec<(String, VecDeque<String>)>,
    /// `(command, codes)`: the command exits with the next of `codes`, the last one from then
    /// on (a check that fails for a while). Looked at before everything else.
    pub code_sequences: Vec<(String, VecDeque<i32>)>,
    /// `(command, stdin)` of every command given input.
    pub inputs: Vec<(String, Vec<u8>)>,
    /// Whether the admins' group is bound to cluster-admin (what `kubectl auth can-i`
    /// answers for the admin; creating the binding sets it).
    pub admins_bound: bool,
    /// System users (`id -u` answers for them, `useradd` adds one).
    pub users: BTreeSet<String>,
    /// `(paths, known)` of every stat: the files asked for, and of how many the state's
    /// record was offered (those the host need not hash again).
    pub stats: Vec<(Vec<String>, usize)>,
}

pub type Shared = Arc<Mutex<FakeHost>>;

struct FakeRemote(Shared);

fn sha(bytes: &[u8]) -> String {
    crate::digest::sha256_hex(bytes)
}

fn bytes_of(source: Source) -> Vec<u8> {
    match source {
        Source::Bytes(b) => b.to_vec(),
        Source::File(p) => std::fs::read(p).unwrap(),
    }
}

/// The next of a scripted sequence, the last one from then on.
fn next_of<T: Clone>(sequence: &mut VecDeque<T>) -> Option<T> {
    if sequence.len() > 1 {
        sequence.pop_front()
    } else {
        sequence.front().cloned()
    }
}

impl FakeHost {
    fn remote_file(&self, path: &str) -> Option<RemoteFile> {
        self.files.get(path).map(|(bytes, mode, owner)| RemoteFile {
            sha256: sha(bytes),
            meta: format!("{mode:o} {owner}"),
            stamp: format!("{}:0", bytes.len()),
        })
    }

    fn exec(&mut self, command: &str) -> Output {
        self.log.push(command.to_string());
        let ok = |stdout: String| Output {
            code: 0,
            stdout,
            stderr: String::new(),
        };
        if let Some((_, codes)) = self.code_sequences.iter_mut().find(|(c, _)| c == command) {
            return Output {
                code: next_of(codes).unwrap_or(0),
                stdout: String::new(),
                stderr: "scripted".into(),
            };
        }
        if self.failing.iter().any(|f| command == f) {
            return Output {
                code: 1,
                stdout: String::new(),
                stderr: "failed on purpose".into(),
            };
        }
        if let Some((_, outputs)) = self
            .reply_sequences
            .iter_mut()
            .find(|(part, _)| command.contains(part.as_str()))
        {
            return ok(next_of(outputs).unwrap_or_default());
        }
        if let Some((_, stdout)) = self.replies.iter().find(|(part, _)| command.contains(part)) {
            return ok(stdout.clone());
        }
        let words: Vec<&str> = command
            .split_whitespace()
            .map(|w| w.trim_matches('\''))
            .collect();
        match words.as_slice() {
            ["rm", "-f", path]
            | ["rm", "-f", path, "&&", "rmdir", "--ignore-fail-on-non-empty", _] => {
                self.files.remove(*path);
                ok(String::new())
            }
            ["rm", "-rf", dir] => {
                self.files.retain(|p, _| !p.starts_with(&format!("{dir}/")));
                ok(String::new())
            }
            ["cp", "-p", from, to] => {
                let file = self.files[*from].clone();
                self.files.insert(to.to_string(), file);
                ok(String::new())
            }
            ["mv", "-f", from, to] => {
                let file = self.files.remove(*from).expect("mv of a file that exists");
                self.files.insert(to.to_string(), file);
                ok(String::new())
            }
            ["chmod", mode, from, "&&", "mv", "-f", _, to] => {
                let mut file = self.files.remove(*from).expect("mv of a file that exists");
                file.1 = u32::from_str_radix(mode, 8).expect("an octal mode");
                self.files.insert(to.to_string(), file);
                ok(String::new())
            }
            ["systemctl", "disable", "--now", s, ..] => {
                self.enabled.remove(*s);
                self.active.remove(*s);
                ok(String::new())
            }
            ["cat", path, ..] => ok(self
                .files
                .get(*path)
                .map(|f| String::from_utf8_lossy(&f.0).into_owned())
                .unwrap_or_default()),
            ["systemctl", "is-active", "--quiet", s] => Output {
                code: if self.active.contains(*s) { 0 } else { 3 },
                ..ok(String::new())
            },
            ["systemctl", "is-enabled", "--quiet", s] => Output {
                code: if self.enabled.contains(*s) { 0 } else { 1 },
                ..ok(String::new())
            },
            ["systemctl", "enable", s, ..] => {
                self.enabled.insert(s.to_string());
                ok(String::new())
            }
            ["systemctl", "restart", "--no-block", s] => {
                self.active.insert(s.to_string());
                ok(String::new())
            }
            ["id", "-u", user, ..] => Output {
                code: if self.users.contains(*user) { 0 } else { 1 },
                ..ok(String::new())
            },
            ["useradd", .., user] => {
                self.users.insert(user.to_string());
                ok(String::new())
            }
            ["userdel", user, ..] => {
                self.users.remove(*user);
                ok(String::new())
            }
            _ if command.contains(" auth can-i ") => Output {
                code: if self.admins_bound { 0 } else { 1 },
                ..ok(if self.admins_bound { "yes" } else { "no" }.into())
            },
            _ if command.contains(" create clusterrolebinding ") => {
                self.admins_bound = true;
                ok(String::new())
            }
            _ if command.contains("echo TIME") => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                ok(format!("TIME {now}\n"))
            }
            // Health checks and everything else succeed.
            _ => ok(String::new()),
        }
    }
}

impl Remote for FakeRemote {
    fn exec(&self, command: &str) -> Result<Output, SshError> {
        Ok(self.0.lock().unwrap().exec(command))
    }
    fn run(&self, command: &str) -> Result<String, SshError> {
        let out = self.exec(command)?;
        if out.code != 0 {
            return Err(SshError::Command {
                host: "fake".into(),
                command: command.into(),
                code: out.code,
                stderr_tail: out.stderr,
            });
        }
        Ok(out.stdout)
    }
    fn exec_with_input(&self, command: &str, input: &[u8]) -> Result<Output, SshError> {
        let mut host = self.0.lock().unwrap();
        host.inputs.push((command.to_string(), input.to_vec()));
        Ok(host.exec(command))
    }
    fn stat_files_known(
        &self,
        paths: &[&str],
        known: &KnownFiles,
    ) -> Result<HashMap<String, RemoteFile>, SshError> {
        let mut host = self.0.lock().unwrap();
        host.stats
            .push((paths.iter().map(|p| p.to_string()).collect(), known.len()));
        Ok(paths
            .iter()
            .filter_map(|p| Some((p.to_string(), host.remote_file(p)?)))
            .collect())
    }
    fn stamps(&self, paths: &[&str]) -> Result<HashMap<String, String>, SshError> {
        let host = self.0.lock().unwrap();
        Ok(paths
            .iter()
            .filter_map(|p| Some((p.to_string(), host.remote_file(p)?.stamp)))
            .collect())
    }
    fn put(&self, f: &FileToPut, _: Option<&RemoteFile>) -> Result<Upload, SshError> {
        self.upload(f.source, &f.path, f.mode, f.owner)
    }
    fn upload(
        &self,
        source: Source,
        dest: &str,
        mode: u32,
        owner: &str,
    ) -> Result<Upload, SshError> {
        let mut host = self.0.lock().unwrap();
        host.log.push(format!("put {dest}"));
        host.files.insert(
            dest.to_string(),
            (bytes_of(source), mode, owner.to_string()),
        );
        Ok(Upload::Written)
    }
    fn download(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64, SshError> {
        let mut host = self.0.lock().unwrap();
        host.log.push(format!("get {path}"));
        let Some((bytes, _, _)) = host.files.get(path) else {
            return Err(SshError::Command {
                host: "fake".into(),
                command: format!("cat -- {path}"),
                code: 1,
                stderr_tail: "No such file or directory".into(),
            });
        };
        out.write_all(bytes).unwrap();
        Ok(bytes.len() as u64)
    }
}

#[derive(Default)]
pub struct FakeConnector {
    pub hosts: BTreeMap<String, Shared>,
}

impl FakeConnector {
    pub fn host(&self, name: &str) -> std::sync::MutexGuard<'_, FakeHost> {
        self.hosts[name].lock().unwrap()
    }
}

impl Connector for FakeConnector {
    fn connect(&self, host: &Host) -> Result<Box<dyn Remote>, SshError> {
        let shared = self.hosts[&host.name].clone();
        if shared.lock().unwrap().unreachable {
            return Err(SshError::Connect {
                host: host.name.clone(),
                addr: "192.0.2.1:22".parse().unwrap(),
                message: "Connection refused".into(),
            });
        }
        Ok(Box::new(FakeRemote(shared)))
    }
}
