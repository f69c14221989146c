//! Exit codes: 2 for invalid input or usage, 1 for a runtime failure.
//!
//! Each library error type knows whose fault it is (`exit_code()`, from
//! [`k8s_boot::fault::Fault`]); [`fail`] asks [`code`] for the first error in a chain whose
//! kind it knows.

use super::console::errln;
use super::docs::ManError;
use super::output::print_json;
use k8s_boot::backup::{restore::RestoreError, BackupError};
use k8s_boot::conformance::ConformanceError;
use k8s_boot::{fault::Fault, lab::LabError, pki::PkiError, render::RenderError};
use k8s_boot::{fetch::FetchError, install::InstallError, inventory::InventoryError};
use k8s_boot::{operation::OperationError, upgrade::UpgradeError};
use std::process::ExitCode;

/// Exit code for invalid input or usage.
pub const INVALID: u8 = Fault::Input.exit_code();
/// Exit code for a failure while doing the work.
pub const FAILED: u8 = Fault::Runtime.exit_code();

/// A usage error found by a command itself (a flag's value, a combination of flags).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code of `e` when its kind is known (the library's errors each say so).
fn known_code(e: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if e.is::<UsageError>() {
        return Some(INVALID);
    }
    if let Some(e) = e.downcast_ref::<ManError>() {
        return Some(e.exit_code());
    }
    macro_rules! library {
        ($($kind:ty),*) => {
            $(if let Some(e) = e.downcast_ref::<$kind>() {
                return Some(e.exit_code());
            })*
        };
    }
    library!(
        InventoryError,
        RenderError,
        PkiError,
        InstallError,
        FetchError,
        LabError,
        ConformanceError,
        UpgradeError,
        OperationError,
        BackupError,
        RestoreError
    );
    None
}

/// The exit code for an error chain: the first error that classifies itself decides.
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(code) = known_code(cause) {
            return code;
        }
    }
    FAILED
}

/// The `error` member of the JSON a failed `--output json` command prints: the message, the
/// exit code and, for an invalid inventory, each problem with its position.
pub fn error_json(err: &anyhow::Error) -> serde_json::Value {
    let mut error = serde_json::json!({
        "message": format!("{err:#}"),
        "exit_code": code(err),
    });
    if let Some(InventoryError::Invalid { file, problems }) =
        err.chain().find_map(|e| e.downcast_ref::<InventoryError>())
    {
        let problems: Vec<serde_json::Value> = problems
            .iter()
            .map(|d| {
                serde_json::json!({
                    "severity": d.severity.as_str(),
                    "file": file,
                    "line": d.position.map(|p| p.line),
                    "column": d.position.map(|p| p.col),
                    "field": d.field,
                    "message": d.message,
                })
            })
            .collect();
        error["problems"] = problems.into();
    }
    error
}

/// Ends a failed command: `error: <context>: <cause>: ...` on stderr, for a command asked for
/// JSON (`json_command`) also the JSON error on stdout, and the exit code of the error.
pub fn fail(err: &anyhow::Error, json_command: Option<&str>) -> ExitCode {
    errln!("error: {err:#}");
    if let Some(command) = json_command {
        // With stdout itself broken there is nowhere to put the JSON; stderr said it all.
        let _ = print_json(command, &serde_json::json!({ "error": error_json(err) }));
    }
    ExitCode::from(code(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn wrappers_defer_to_their_source_and_context_does_not_change_the_code() {
        let usage: anyhow::Error = UsageError("--hosts is empty".into()).into();
        assert_eq!(code(&usage.context("install")), INVALID);
        let pki = RenderError::Pki(PkiError::Refused("ca.key without ca.crt".into()));
        assert_eq!(
            code(&anyhow::Error::from(InstallError::Render(pki))),
            INVALID
        );
        let io = Err::<(), _>(std::io::Error::other("disk full"))
            .context("writing out")
            .unwrap_err();
        assert_eq!(code(&io), FAILED);
        let template = RenderError::Template {
            name: "etcd.service".into(),
            message: "boom".into(),
        };
        assert_eq!(code(&template.into()), FAILED);
    }
}
