//! What every command prints the same way: the JSON envelope of `--output json`
//! (docs/JSON.md) and the cells of the text tables.

use super::console::{stdout_json, StdoutError};

/// Version of the JSON that `--output json` prints (docs/JSON.md). Raised on any change
/// that removes or renames a field or changes its meaning; new fields keep it.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// Prints `body`'s fields with `schema_version` and `command`, as one JSON object (keys in
/// alphabetical order).
pub fn print_json(command: &str, body: &impl serde::Serialize) -> Result<(), StdoutError> {
    stdout_json(&json_envelope(command, body))
}

/// The text [`print_json`] prints (without the final line break).
fn json_envelope(command: &str, body: &impl serde::Serialize) -> String {
    let mut object = serde_json::Map::new();
    object.insert("schema_version".into(), JSON_SCHEMA_VERSION.into());
    object.insert("command".into(), command.into());
    match serde_json::to_value(body).expect("results serialize") {
        serde_json::Value::Object(fields) => object.extend(fields),
        other => {
            object.insert("result".into(), other);
        }
    }
    serde_json::to_string_pretty(&object).expect("JSON serializes")
}

/// A yes/no table cell; the bad answer is in capitals so it stands out.
pub fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "NO"
    }
}

/// A table cell for a value that may be missing: `-` then.
pub fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_joins_the_body_and_a_non_object_body_is_the_result() {
        let text = json_envelope("status", &serde_json::json!({ "healthy": true }));
        assert_eq!(
            text,
            "{\n  \"command\": \"status\",\n  \"healthy\": true,\n  \"schema_version\": 1\n}"
        );
        let text = json_envelope("x", &vec![1, 2]);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["result"], serde_json::json!([1, 2]));
        assert_eq!(value["schema_version"], JSON_SCHEMA_VERSION);
    }
}
