//! From text to `Inventory`: the bounds and syntax check of `locate::scan` first, then
//! serde_yaml, with its errors turned into located diagnostics.

use crate::inventory::diagnostic::{Diagnostic, Severity};
use crate::inventory::locate::{self, Position, Positions};
use crate::inventory::schema::Inventory;

/// The inventory and the positions of its fields, or the one problem that stops parsing.
pub(super) fn parse(source: &str) -> Result<(Inventory, Positions), Diagnostic> {
    // Syntax errors and documents beyond the bounds are refused before serde_yaml sees them:
    // it would expand every alias, and it reports a type error found in the events before a
    // syntax error rather than the syntax error.
    let (positions, problem) = locate::scan(source);
    if let Some(p) = problem {
        let mut d = Diagnostic::document_error(Some(p.position), p.message);
        if p.syntax {
            reword_syntax_error(&mut d, source);
        }
        return Err(d);
    }
    let inventory: Inventory =
        serde_yaml::from_str(source).map_err(|e| from_serde_error(&e, &positions))?;
    Ok((inventory, positions))
}

/// serde_yaml's own parser (libyaml) usually words a syntax error better; ask it without
/// deserializing anything, which follows no alias.
fn reword_syntax_error(d: &mut Diagnostic, source: &str) {
    if let Err(e) = serde_yaml::from_str::<serde::de::IgnoredAny>(source) {
        if let Some(l) = e.location() {
            d.position = Some(Position {
                line: l.line(),
                col: l.column(),
            });
            d.message = format!("YAML syntax error: {}", syntax_message(&e.to_string()));
        }
    }
}

/// libyaml's `PROBLEM at line L column C, CONTEXT at line L2 column C2` without the first
/// location (the diagnostic carries it) and with the second one said as where CONTEXT starts.
fn syntax_message(text: &str) -> String {
    let Some(i) = text.find(" at line ") else {
        return text.to_string();
    };
    let (problem, rest) = text.split_at(i);
    match rest.find(", ") {
        Some(j) => {
            let context = &rest[j..];
            match context.find(" at line ") {
                Some(k) => format!("{problem}{} that starts{}", &context[..k], &context[k..]),
                None => format!("{problem}{context}"),
            }
        }
        None => problem.to_string(),
    }
}

/// Turns a serde_yaml error into a diagnostic, adding a "did you mean" for unknown keys.
fn from_serde_error(e: &serde_yaml::Error, positions: &Positions) -> Diagnostic {
    let text = e.to_string();
    // serde_yaml appends " at line L column C"; the location is kept separately.
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let (field, mut message) = match text.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path.to_string(), rest.to_string()),
        _ => ("(document)".to_string(), text.clone()),
    };
    let mut position = e.location().map(|l| Position {
        line: l.line(),
        col: l.column(),
    });
    if let Some((unknown, known)) = unknown_key(&message) {
        // serde_yaml points at the enclosing mapping; point at the key itself.
        let key_path = if field == "(document)" {
            unknown.to_string()
        } else {
            format!("{field}.{unknown}")
        };
        position = positions.find(&key_path).or(position);
        message = unknown_key_message(unknown, &known);
    }
    Diagnostic {
        severity: Severity::Error,
        field,
        position,
        message,
    }
}

/// The unknown key and the known ones of serde's "unknown field `x`, expected one of ...".
fn unknown_key(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    Some((unknown, expected.split('`').skip(1).step_by(2).collect()))
}

fn unknown_key_message(unknown: &str, known: &[&str]) -> String {
    match closest(unknown, known) {
        Some(best) => format!(
            "unknown key `{unknown}`; did you mean `{best}`? (known keys: {})",
            known.join(", ")
        ),
        None => format!("unknown key `{unknown}`; known keys: {}", known.join(", ")),
    }
}

fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
