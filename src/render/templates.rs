//! The template set: the embedded templates, optionally overridden from a directory.
//! Errors in an override name its file; no template error shows a secret value.

use super::error::RenderError;
use super::rules::EMBEDDED;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

pub struct Templates {
    tera: tera::Tera,
    /// Overridden template names and the files they came from: errors in those are the
    /// user's input and name the file.
    overridden: BTreeMap<String, PathBuf>,
}

impl Templates {
    pub fn load(overrides: Option<&Path>) -> Result<Templates, RenderError> {
        let mut sources: BTreeMap<String, String> = EMBEDDED
            .iter()
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
        templates.tera.autoescape_on(vec![]);
        for (name, text) in &sources {
            if let Err(e) = templates.tera.add_raw_template(name, text) {
                return Err(templates.error(name, tera_message(&e)));
            }
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

    pub(super) fn render(&self, name: &str, ctx: &tera::Context) -> Result<Vec<u8>, RenderError> {
        self.tera
            .render(name, ctx)
            .map(String::into_bytes)
            // Tera quotes the value a filter choked on: never let that be key material.
            .map_err(|e| self.error(name, redact_secrets(&tera_message(&e), ctx)))
    }

    pub(super) fn source(&self, name: &str) -> Result<Vec<u8>, RenderError> {
        // Templates without markup (like the chat server code) are rendered with an empty
        // context, which returns them unchanged.
        self.render(name, &tera::Context::new())
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
    let mut overridden = BTreeMap::new();
    for path in walk(dir)? {
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
        let text = read_override(&path)?;
        sources.insert(name.clone(), text);
        overridden.insert(name, path);
    }
    Ok(overridden)
}

/// The text of one override file: a regular file of UTF-8.
fn read_override(path: &Path) -> Result<String, RenderError> {
    let refuse = |message: &str| RenderError::Override {
        path: path.to_path_buf(),
        message: message.into(),
    };
    if !fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Err(refuse("not a regular file"));
    }
    match fs::read(path).map(String::from_utf8) {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(_)) => Err(refuse("not UTF-8 text")),
        Err(source) => Err(RenderError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Every file under `dir`, sorted.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, RenderError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Io { path, source }
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn tera_message(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

/// Context keys whose values are secrets (the encryption key, private keys in base64).
const SECRET_KEYS: &[&str] = &["encryption_key", "key_data", "key_b64"];

/// `message` with every secret value of `ctx` replaced by `<redacted>`, and every value
/// Tera quotes left out.
fn redact_secrets(message: &str, ctx: &tera::Context) -> String {
    let json = ctx.clone().into_json();
    let mut found = Vec::new();
    secret_values(&json, "", &mut found);
    let mut message = message.to_string();
    for secret in found {
        message = message.replace(secret, "<redacted>");
    }
    hide_quoted_values(&message)
}

/// The non-empty strings under a key of [`SECRET_KEYS`], at any depth.
fn secret_values<'a>(value: &'a serde_json::Value, key: &str, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) if SECRET_KEYS.contains(&key) && !s.is_empty() => out.push(s),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                secret_values(v, k, out);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                secret_values(v, key, out);
            }
        }
        _ => {}
    }
}

/// A value derived from a secret (a slice, a truncation) matches none of them: values
/// quoted as "got `...` but expected" are never shown.
fn hide_quoted_values(message: &str) -> String {
    const QUOTE: &str = "got `";
    const END: &str = "` but expected";
    let mut shown = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(QUOTE) {
        let Some(len) = rest[start + QUOTE.len()..].find(END) else {
            break;
        };
        shown.push_str(&rest[..start]);
        shown.push_str("got a value (not shown)");
        rest = &rest[start + QUOTE.len() + len + 1..];
    }
    shown.push_str(rest);
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_errors_never_show_secret_values_or_quoted_values() {
        let mut ctx = tera::Context::new();
        ctx.insert("encryption_key", "c2VjcmV0LWtleS1ieXRlcw==");
        ctx.insert(
            "metrics_server",
            &serde_json::json!({"key_b64": "S0VZREFUQQ=="}),
        );
        ctx.insert("name", "t");
        let message = "a `c2VjcmV0LWtleS1ieXRlcw==` b {\"key_b64\":\"S0VZREFUQQ==\"} \
                       c got `\"c2Vj\"` but expected a f64; `name` not found";
        let shown = redact_secrets(message, &ctx);
        assert!(
            !shown.contains("c2Vj") && !shown.contains("S0VZ"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(
            shown.ends_with("c got a value (not shown) but expected a f64; `name` not found"),
            "{shown}"
        );
    }
}
