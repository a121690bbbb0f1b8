//! Errors as people and scripts see them: the message, every cause in the chain, and a hint.

use std::error::Error;
use std::fmt::Write as _;
use std::process::ExitCode;

use crate::style::Style;

/// Exit codes, documented in `gpulibs --help` and the README. Scripts rely on them.
pub mod exit {
    /// The command did what was asked and the answer is positive.
    pub const OK: u8 = 0;
    /// The command failed; the message says why.
    pub const FAILURE: u8 = 1;
    /// The command line was wrong. clap exits with this code itself; named here for the docs.
    #[allow(dead_code)]
    pub const USAGE: u8 = 2;
    /// The command worked but the answer is negative: no usable GPU (`detect`), or a library
    /// that cannot run on the GPU asked about (`inspect`).
    pub const NEGATIVE: u8 = 3;
}

/// An error on its way to the user, with an optional hint on what to do about it.
pub struct CliError {
    pub error: Box<dyn Error + Send + Sync>,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self {
            error: error.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn causes(&self) -> Vec<String> {
        let mut causes = Vec::new();
        let mut next = self.error.source();
        while let Some(cause) = next {
            causes.push(cause.to_string());
            next = cause.source();
        }
        causes
    }

    /// `error: …`, one `caused by: …` line per cause, then `hint: …`.
    pub fn render(&self, style: Style) -> String {
        let mut out = format!("{} {}\n", style.bad(&style.bold("error:")), self.error);
        for cause in self.causes() {
            let _ = writeln!(out, "  {} {cause}", style.dim("caused by:"));
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  {} {hint}", style.good("hint:"));
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.error.to_string(),
                "causes": self.causes(),
                "hint": self.hint,
            }
        })
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(exit::FAILURE)
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for CliError {
    fn from(error: E) -> Self {
        Self::new(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read /x/lib.so")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn renders_chain_and_hint() {
        let err = CliError::new(Outer(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        )))
        .with_hint("check the path");
        assert_eq!(
            err.render(Style::plain()),
            "error: cannot read /x/lib.so\n  caused by: no such file\n  hint: check the path\n"
        );
        let json = err.to_json();
        assert_eq!(json["error"]["causes"][0], "no such file");
        assert_eq!(json["error"]["hint"], "check the path");
    }
}
