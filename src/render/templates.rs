//! The template set: the embedded templates, optionally overridden from a directory.
//! Errors in an override name its file. Every template is sandboxed (`sandbox`); key
//! material reaches only the templates [`reads_secret`] names, and no error message is made
//! from a context that holds it.

use super::context::{reads_secret, Secret};
use super::error::RenderError;
use super::rules;
use super::sandbox;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Largest override file read, in bytes; the largest built-in template is 20 KiB.
pub const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// What a secret is replaced by when an error message is made.
const WITHHELD: &str = "<secret>";

pub struct Templates {
    tera: tera::Tera,
    /// Overridden template names and the files they came from: errors in those are the
    /// user's input and name the file.
    overridden: BTreeMap<String, PathBuf>,
}

impl Templates {
    pub fn load(overrides: Option<&Path>) -> Result<Templates, RenderError> {
        let mut sources: BTreeMap<String, String> = rules::embedded()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        let overridden = match overrides {
            Some(dir) => read_overrides(dir, &mut sources)?,
            None => BTreeMap::new(),
        };
        let mut templates = Templates {
            tera: tera::Tera::default(),
            overridden,
        };
        // Every template, whatever its name: "" is a suffix of every name.
        templates.tera.autoescape_on(vec![""]);
        templates.tera.set_escape_fn(sandbox::escape_value);
        sandbox::restrict_functions(&mut templates.tera);
        for (name, text) in &sources {
            if let Err(e) = templates.tera.add_raw_template(name, text) {
                return Err(templates.error(name, tera_message(&e)));
            }
        }
        // Includes, imports and parents resolve only once every template is known.
        if let Err(e) = templates.tera.build_inheritance_chains() {
            return Err(RenderError::Override {
                path: overrides.unwrap_or(Path::new("")).to_path_buf(),
                message: tera_message(&e),
            });
        }
        if let Err((name, message)) = sandbox::check_structure(&templates.tera) {
            return Err(templates.error(&name, message));
        }
        Ok(templates)
    }

    /// An error in template `name`: an override's names its file (invalid input), a built-in
    /// one's names the template.
    fn error(&self, name: &str, message: String) -> RenderError {
        match self.overridden.get(name) {
            Some(path) => RenderError::Override {
                path: path.clone(),
                message,
            },
            None => RenderError::Template {
                name: name.to_string(),
                message,
            },
        }
    }

    /// Renders `name` with `ctx` plus those of `secrets` it reads ([`reads_secret`]).
    pub(super) fn render(
        &self,
        name: &str,
        ctx: &tera::Context,
        secrets: &[Secret],
    ) -> Result<Vec<u8>, RenderError> {
        let given: Vec<&Secret> = secrets
            .iter()
            .filter(|s| reads_secret(name, s.key))
            .collect();
        let mut full = ctx.clone();
        for s in &given {
            full.insert(s.key, &s.value);
        }
        let e = match self.tera.render(name, &full) {
            Ok(text) => return Ok(text.into_bytes()),
            Err(e) => e,
        };
        if given.is_empty() {
            return Err(self.error(name, tera_message(&e)));
        }
        // The message is made again from a context without the key material: tera quotes
        // values, and `throw` prints whatever a template computes from them.
        let mut shown = ctx.clone();
        for s in &given {
            shown.insert(s.key, &withheld(&s.value));
        }
        let message = match self.tera.render(name, &shown) {
            Err(e) => tera_message(&e),
            Ok(_) => format!(
                "fails only with the real key material ({}); its message is withheld",
                given.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
            ),
        };
        Err(self.error(name, message))
    }

    pub(super) fn source(&self, name: &str) -> Result<Vec<u8>, RenderError> {
        // Templates without markup (like the chat server code) are rendered with an empty
        // context, which returns them unchanged.
        self.render(name, &tera::Context::new(), &[])
    }
}

/// `value` with every string replaced by [`WITHHELD`], its shape kept (so that an error about
/// a missing key or a wrong type is the same).
fn withheld(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(_) => Value::String(WITHHELD.into()),
        Value::Array(items) => Value::Array(items.iter().map(withheld).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), withheld(v))).collect())
        }
        other => other.clone(),
    }
}

/// Replaces `sources` entries with the files under `dir` of the same relative name; the
/// overridden names and their files.
fn read_overrides(
    dir: &Path,
    sources: &mut BTreeMap<String, String>,
) -> Result<BTreeMap<String, PathBuf>, RenderError> {
    if !dir.is_dir() {
        return Err(RenderError::Override {
            path: dir.to_path_buf(),
            message: "--templates wants a directory of template overrides; \
                      this is not one"
                .into(),
        });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Io { path, source }
    };
    let root = dir.canonicalize().map_err(io(dir))?;
    let mut overridden = BTreeMap::new();
    for path in walk(dir, 0)? {
        let name = path
            .strip_prefix(dir)
            .expect("walk yields paths under dir")
            .to_string_lossy()
            .into_owned();
        if !sources.contains_key(&name) {
            return Err(RenderError::Override {
                path,
                message: format!(
                    "`{name}` is not a template name; overridable names: {}",
                    sources.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        let text = read_override(&path, &root)?;
        sources.insert(name.clone(), text);
        overridden.insert(name, path);
    }
    Ok(overridden)
}

/// The text of one override file: a regular file of UTF-8 of at most
/// [`MAX_TEMPLATE_BYTES`] inside `root` (the templates directory, resolved). A symbolic link
/// may point at another file inside it, never outside (`/proc/self/environ`, a key).
fn read_override(path: &Path, root: &Path) -> Result<String, RenderError> {
    let refuse = |message: String| RenderError::Override {
        path: path.to_path_buf(),
        message,
    };
    let io = |source| RenderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let target = path.canonicalize().map_err(io)?;
    if !target.starts_with(root) {
        return Err(refuse(format!(
            "a symbolic link to {}, outside the templates directory; expected a file inside it",
            target.display()
        )));
    }
    // Opened without following a link swapped in since, and without blocking on a FIFO.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&target)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if let Some(kind) = crate::fsutil::FileKind::of(meta.file_type()) {
        return Err(refuse(format!(
            "{kind}, not a regular file; expected a template file"
        )));
    }
    if meta.len() > MAX_TEMPLATE_BYTES {
        return Err(refuse(format!(
            "{} bytes; expected a template of at most {MAX_TEMPLATE_BYTES} bytes (1 MiB)",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_TEMPLATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(refuse(format!(
            "larger than {MAX_TEMPLATE_BYTES} bytes; expected a template of at most 1 MiB"
        )));
    }
    String::from_utf8(bytes).map_err(|_| refuse("not UTF-8 text".into()))
}

/// Deepest directory under `--templates` walked: template names have at most two parts.
const MAX_DIR_DEPTH: usize = 8;

/// Every entry under `dir` that is not a directory, sorted. Directories are entered only as
/// themselves, never through a symbolic link (which could lead outside, or in a loop).
fn walk(dir: &Path, depth: usize) -> Result<Vec<PathBuf>, RenderError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Io { path, source }
    };
    if depth > MAX_DIR_DEPTH {
        return Err(RenderError::Override {
            path: dir.to_path_buf(),
            message: format!(
                "directories nest more than {MAX_DIR_DEPTH} deep; no template name is that long"
            ),
        });
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(io(&path))?;
        if file_type.is_dir() {
            out.extend(walk(&path, depth + 1)?);
        } else if file_type.is_symlink() && path.is_dir() {
            return Err(RenderError::Override {
                path,
                message:
                    "a symbolic link to a directory; expected template files and plain directories"
                        .into(),
            });
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Longest error message shown: a parse error quotes the template's line, which an override
/// can make 1 MiB long.
const MAX_MESSAGE_CHARS: usize = 2000;

fn tera_message(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    match msg.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}... ({} more bytes)", &msg[..cut], msg.len() - cut),
        None => msg,
    }
}
