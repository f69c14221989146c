//! Showing text that came from a file, the inventory, a certificate or a host on a
//! terminal, so that it cannot act on the terminal or hide what it is.
//!
//! A certificate subject with `ESC [ 31m` would recolour the screen, one with a carriage
//! return could overwrite the line before it, and a right-to-left override or a zero-width
//! space makes two different names look alike. Every such character is written as an escape
//! (`\u{1b}`) instead: [`Shown`] for one value, [`escape_message`] for a whole message whose
//! line breaks are its own, [`escape_json`] for JSON text.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether a terminal would act on `c` or a reader would not see it: control characters
/// (C0, DEL, C1), and the format and invisible characters of Unicode: zero-width spaces and
/// joiners, bidirectional marks, embeddings, overrides and isolates, invisible operators,
/// the byte order mark, tag characters, fillers and every space other than ` `.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{ad}'                     // soft hyphen
                | '\u{34f}'              // combining grapheme joiner
                | '\u{61c}'              // Arabic letter mark
                | '\u{115f}' | '\u{1160}' // Hangul fillers
                | '\u{17b4}' | '\u{17b5}'
                | '\u{180b}'..='\u{180f}' // Mongolian selectors, vowel separator
                | '\u{200b}'..='\u{200f}' // zero-width space, joiners, LRM, RLM
                | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
                | '\u{2060}'..='\u{206f}' // word joiner, invisible operators, isolates
                | '\u{3164}'             // Hangul filler
                | '\u{fe00}'..='\u{fe0f}' // variation selectors
                | '\u{feff}'             // byte order mark, zero-width no-break space
                | '\u{ffa0}'             // halfwidth Hangul filler
                | '\u{fff0}'..='\u{fffb}' // interlinear annotation, specials
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e0fff}' // tags, variation selectors supplement
        )
}

/// One value as it is safe to show: every [hidden](is_hidden) character escaped, line
/// breaks included (`\n`, `\r`, `\t`, else `\u{hex}`).
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if is_hidden(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A message as it is safe to print: its line breaks and tabs kept, every other
/// [hidden](is_hidden) character escaped as `\u{hex}`. Borrowed when nothing needs it.
pub fn escape_message(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && c != '\t' && is_hidden(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text with every [hidden](is_hidden) character other than the line breaks, tabs
/// and spaces between tokens written as a `\uXXXX` escape (a UTF-16 pair beyond the BMP).
/// Outside strings JSON has only those, so the result is the same JSON value; serde_json
/// itself escapes only C0 controls, not DEL, C1 or bidirectional overrides.
pub fn escape_json(text: &str) -> Cow<'_, str> {
    let hidden = |c: char| is_hidden(c) && !matches!(c, '\n' | '\t' | '\r');
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hidden(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_and_invisible_characters_are_escaped() {
        let subject = "CN=\u{1b}[31madmin\u{1b}[0m\r\nO=\u{9b}2J";
        assert_eq!(
            Shown(subject).to_string(),
            "CN=\\u{1b}[31madmin\\u{1b}[0m\\r\\nO=\\u{9b}2J"
        );
        for (name, shown) in [
            ("m\u{200b}1", "m\\u{200b}1"),
            ("m1\u{202e}2m", "m1\\u{202e}2m"),
            ("\u{2066}w1\u{2069}", "\\u{2066}w1\\u{2069}"),
            ("w\u{feff}1", "w\\u{feff}1"),
            ("w\u{a0}1", "w\\u{a0}1"),
            ("w\u{e0041}1", "w\\u{e0041}1"),
        ] {
            assert_eq!(Shown(name).to_string(), shown);
        }
        // What people write stays as it is.
        for plain in [
            "m1",
            "Grüße, 東京 — ok",
            "CN=system:node:w1, O=system:nodes",
        ] {
            assert_eq!(Shown(plain).to_string(), plain);
            assert!(matches!(escape_message(plain), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn a_message_keeps_its_lines() {
        assert_eq!(
            escape_message("error: a\n  b\t\u{1b}]0;title\u{7}"),
            "error: a\n  b\t\\u{1b}]0;title\\u{7}"
        );
    }

    #[test]
    fn json_stays_the_same_value() {
        let value = serde_json::json!({
            "subject": "CN=\u{1b}[31mx\u{9b}\u{7f}\u{202e}\u{e0041}",
            "plain": "a\nb",
        });
        let text = serde_json::to_string_pretty(&value).unwrap();
        let escaped = escape_json(&text);
        assert!(escaped.chars().all(|c| !is_hidden(c) || matches!(c, '\n')));
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
        assert!(escaped.contains("\\udb40\\udc41"), "{escaped}");
    }
}
