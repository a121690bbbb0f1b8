//! Errors as people and scripts see them: the message, every cause in the chain, and the hints.
//!
//! One walker ([`CliError::render`], [`CliError::to_json`]) goes down the cause chain once: each
//! error's message on its own line (`error:`, then `caused by:`), then every hint any error in
//! the chain gives through [`gpulibs_hint::Hint`] (the library types are downcast here, the only
//! place that knows them all), then the hint the command added with [`CliError::with_hint`].
//! So a library's hint reaches the user however many times its error was wrapped.

use std::error::Error;
use std::fmt::Write as _;
use std::process::ExitCode;

use gpulibs_hint::Hint;

use crate::style::Style;

/// Exit codes, documented in `gpulibs --help` and the README. Scripts rely on them.
pub mod exit {
    /// The command did what was asked and the answer is positive.
    pub const OK: u8 = 0;
    /// The command failed; the message says why.
    pub const FAILURE: u8 = 1;
    /// The command line was wrong: an unknown flag, or a value that does not parse (`--gpu abc`,
    /// `--shape x`, `--app ../x`).
    pub const USAGE: u8 = 2;
    /// The command worked but the answer is negative: no usable GPU (`detect`), or a library
    /// that cannot run on the GPU asked about (`inspect`).
    pub const NEGATIVE: u8 = 3;
}

type BoxError = Box<dyn Error + Send + Sync>;

/// An error on its way to the user, with an optional hint of the command's own.
pub struct CliError {
    pub error: BoxError,
    /// A hint only the command can give (what it was called with); library hints come from the
    /// chain.
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self {
            error: error.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The error and each cause, outermost first.
    fn chain(&self) -> impl Iterator<Item = &(dyn Error + 'static)> {
        let top: &(dyn Error + 'static) = &*self.error;
        gpulibs_hint::chain(top)
    }

    fn causes(&self) -> Vec<String> {
        // Some errors (TOML's) end with a newline; the line structure is the renderer's.
        self.chain()
            .skip(1)
            .map(|e| e.to_string().trim_end().to_string())
            .collect()
    }

    /// Every hint of the chain, outermost first, then the command's; each once.
    pub fn hints(&self) -> Vec<String> {
        let mut hints: Vec<String> = Vec::new();
        let found = self.chain().filter_map(library_hint);
        for hint in found.chain(self.hint.clone()) {
            if !hints.contains(&hint) {
                hints.push(hint);
            }
        }
        hints
    }

    /// `error: …`, one `caused by: …` line per cause, then one `hint: …` line per hint.
    pub fn render(&self, style: Style) -> String {
        let mut out = format!("{} {}\n", style.bad(&style.bold("error:")), self.error);
        for cause in self.causes() {
            let _ = writeln!(out, "  {} {cause}", style.dim("caused by:"));
        }
        for hint in self.hints() {
            let _ = writeln!(out, "  {} {hint}", style.good("hint:"));
        }
        out
    }

    /// `{"error": {"message", "causes", "hint", "hints", "exit_code"}}`; `hint` is the first of
    /// `hints` (or null), kept for scripts written before there could be several.
    pub fn to_json(&self) -> serde_json::Value {
        let hints = self.hints();
        serde_json::json!({
            "error": {
                "message": self.error.to_string(),
                "causes": self.causes(),
                "hint": hints.first(),
                "hints": hints,
                "exit_code": self.code(),
            }
        })
    }

    /// [`exit::USAGE`] for a value on the command line that does not parse, else
    /// [`exit::FAILURE`].
    pub fn code(&self) -> u8 {
        if is_value_error(&*self.error)
            || self.chain().any(|e| {
                matches!(
                    e.downcast_ref::<gpulibs_store::StoreError>(),
                    Some(gpulibs_store::StoreError::BadAppName { .. })
                )
            })
        {
            exit::USAGE
        } else {
            exit::FAILURE
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

/// Whether the error is one of the parsers of values people type (`--gpu`, `--driver-cuda`,
/// `--driver`, `--shape`, `--value`, `--device`): a wrong command line, exit 2. Only the top
/// error counts: the same parsers also read manifests, where a bad value is a failure.
fn is_value_error(e: &(dyn Error + Send + Sync + 'static)) -> bool {
    e.is::<gpulibs_detect::ParseError>()
        || e.is::<gpulibs_plan::DriverVersionError>()
        || e.is::<gpulibs_verify::OptionError>()
}

/// The hint of one error of the chain, when its type is one of the libraries' errors that
/// implement [`Hint`]. A boxed source (`#[source] Box<EmbeddedError>`) is a link of type
/// `Box<EmbeddedError>` in the chain, so each type is also tried boxed.
fn library_hint(e: &(dyn Error + 'static)) -> Option<String> {
    fn as_hint<'a, T: Hint + 'static>(e: &'a (dyn Error + 'static)) -> Option<&'a dyn Hint> {
        e.downcast_ref::<T>()
            .map(|t| t as &dyn Hint)
            .or_else(|| e.downcast_ref::<Box<T>>().map(|t| &**t as &dyn Hint))
    }
    let hint = as_hint::<gpulibs_install::InstallError>(e)
        .or_else(|| as_hint::<gpulibs_verify::VerifyError>(e))
        .or_else(|| as_hint::<gpulibs_verify::CatalogError>(e))
        .or_else(|| as_hint::<gpulibs_sources::EmbeddedError>(e))
        .or_else(|| as_hint::<gpulibs_sources::PipError>(e))
        .or_else(|| as_hint::<gpulibs_sources::ManifestLoadError>(e))
        .or_else(|| as_hint::<gpulibs_store::StoreError>(e))
        .or_else(|| as_hint::<gpulibs_fetch::FetchError>(e))
        .or_else(|| as_hint::<gpulibs_package::PackageError>(e))
        .or_else(|| as_hint::<gpulibs_package::ThinError>(e))
        .or_else(|| as_hint::<gpulibs_plan::ManifestError>(e))?;
    hint.hint()
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

    #[derive(Debug, thiserror::Error)]
    #[error("the install failed")]
    struct Wrapper(#[source] gpulibs_sources::EmbeddedError);

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
        assert_eq!(
            json,
            serde_json::json!({"error": {
                "message": "cannot read /x/lib.so",
                "causes": ["no such file"],
                "hint": "check the path",
                "hints": ["check the path"],
                "exit_code": 1,
            }})
        );
    }

    /// A library hint deep in the chain is found through a wrapper that knows nothing of it,
    /// and comes before the command's own.
    #[test]
    fn a_wrapped_library_hint_is_not_dropped() {
        let pip = gpulibs_sources::PipError::PipMissing {
            python: "/usr/bin/python3".into(),
        };
        let err = CliError::new(Wrapper(pip.into())).with_hint("or pass --offline");
        assert_eq!(
            err.render(Style::plain()),
            "error: the install failed\n  caused by: pip was not found for /usr/bin/python3\n  \
             hint: install python3-pip (or `/usr/bin/python3 -m ensurepip`), or pass --manifest\n  \
             hint: or pass --offline\n"
        );
    }

    /// An install that failed in pip: the message chain once, pip's own step as the one hint
    /// (the install's general hint gives way to it).
    #[test]
    fn an_install_failed_in_pip_shows_pips_step() {
        let pip = gpulibs_sources::PipError::PipTooOld {
            python: "/usr/bin/python3".into(),
        };
        let err = CliError::new(gpulibs_install::InstallError::Resolve(Box::new(pip.into())));
        assert_eq!(
            err.render(Style::plain()),
            "error: resolving the chosen wheels through pip failed\n  caused by: pip is too old \
             to write an installation report (pip 22.2 or newer needed)\n  hint: upgrade it with \
             `/usr/bin/python3 -m pip install --upgrade pip`, or pass --manifest\n"
        );
    }

    /// The store's and fetch's errors give their steps through the chain: a boxed `StoreError`
    /// under an `InstallError`, and a `FetchError` under a wrapper that knows nothing of it.
    #[test]
    fn store_and_fetch_hints_come_from_the_chain() {
        let locked = gpulibs_install::InstallError::Store {
            what: "taking the install lock failed".into(),
            source: Box::new(gpulibs_store::StoreError::Locked {
                path: "/x/.lock".into(),
                pid: Some(7),
            }),
        };
        let err = CliError::new(locked)
            .with_hint("run again without --no-wait to queue behind the other install");
        assert_eq!(
            err.render(Style::plain()),
            "error: taking the install lock failed\n  caused by: another gpulibs install (pid 7) \
             holds the lock on `/x/.lock`\n  hint: run again without --no-wait to queue behind \
             the other install\n  hint: wait for the other install to finish\n"
        );

        #[derive(Debug, thiserror::Error)]
        #[error("the download failed")]
        struct Download(#[source] gpulibs_fetch::FetchError);
        let proxy = gpulibs_fetch::FetchError::Proxy {
            variable: "ALL_PROXY",
            value: "socks5://x".into(),
            detail: "socks5:// proxies are not supported".into(),
        };
        assert_eq!(
            CliError::new(Download(proxy)).render(Style::plain()),
            "error: the download failed\n  caused by: proxy \"socks5://x\" from ALL_PROXY cannot be \
             used: socks5:// proxies are not supported\n  hint: fix or unset ALL_PROXY\n"
        );
    }

    #[test]
    fn value_errors_are_usage_errors() {
        let gpu = "abc"
            .parse::<gpulibs_detect::ComputeCapability>()
            .unwrap_err();
        assert_eq!(CliError::new(gpu).code(), exit::USAGE);
        let shape = gpulibs_verify::parse_shape_option("x").unwrap_err();
        assert_eq!(CliError::new(shape).code(), exit::USAGE);
        let app = gpulibs_store::check_app_name("../x").unwrap_err();
        assert_eq!(CliError::new(app).code(), exit::USAGE);
        let io = std::io::Error::other("disk on fire");
        assert_eq!(CliError::new(io).code(), exit::FAILURE);
    }
}
