//! `gpulibs --version` (one line) and `gpulibs version` (every fact of the build), as uv does:
//! `uv --version` is `uv 0.5.0 (abc1234 2024-11-07)`, `uv self version --output-format json`
//! the whole record. The facts come from `build.rs`; a build outside a git checkout has no
//! commit and says so.

use std::sync::LazyLock;

use serde::Serialize;

use crate::Outcome;

/// The build's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    pub version: &'static str,
    /// Short hash of the commit built, `None` when not built from a git checkout.
    pub commit: Option<&'static str>,
    /// The commit's date, `YYYY-MM-DD`.
    pub commit_date: Option<&'static str>,
    /// The target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub target: &'static str,
    /// `debug` or `release`.
    pub profile: &'static str,
    /// Cargo features enabled in the gpulibs binary.
    pub features: Vec<&'static str>,
    /// `rustc --version` of the compiler that built it.
    pub rustc: &'static str,
}

fn non_empty(s: &'static str) -> Option<&'static str> {
    (!s.is_empty()).then_some(s)
}

pub static BUILD: LazyLock<BuildInfo> = LazyLock::new(|| BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    commit: non_empty(env!("GPULIBS_BUILD_COMMIT")),
    commit_date: non_empty(env!("GPULIBS_BUILD_COMMIT_DATE")),
    target: env!("GPULIBS_BUILD_TARGET"),
    profile: env!("GPULIBS_BUILD_PROFILE"),
    features: env!("GPULIBS_BUILD_FEATURES")
        .split(',')
        .filter(|f| !f.is_empty())
        .collect(),
    rustc: env!("GPULIBS_BUILD_RUSTC"),
});

/// What `--version` prints after `gpulibs `: `0.1.0 (3b67376ab 2026-12-04)`, or `0.1.0`.
pub static SHORT: LazyLock<String> = LazyLock::new(|| short(&BUILD));

fn short(b: &BuildInfo) -> String {
    match (b.commit, b.commit_date) {
        (Some(c), Some(d)) => format!("{} ({c} {d})", b.version),
        (Some(c), None) => format!("{} ({c})", b.version),
        _ => b.version.to_string(),
    }
}

fn long(b: &BuildInfo) -> String {
    let features = if b.features.is_empty() {
        "none".to_string()
    } else {
        b.features.join(", ")
    };
    format!(
        "gpulibs {}\ncommit   {}\ntarget   {}\nprofile  {}\nfeatures {features}\nrustc    {}\n",
        b.version,
        match (b.commit, b.commit_date) {
            (Some(c), Some(d)) => format!("{c} ({d})"),
            (Some(c), None) => c.to_string(),
            _ => "unknown (not built from a git checkout)".to_string(),
        },
        b.target,
        b.profile,
        if b.rustc.is_empty() {
            "unknown"
        } else {
            b.rustc
        },
    )
}

/// Print the build's facts: version, commit, target, features and compiler
///
/// `gpulibs --version` prints the short form.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// `gpulibs version --json`: the build's facts and the document's `schema_version`.
#[derive(Serialize)]
struct VersionOutput<'a> {
    schema_version: u32,
    #[serde(flatten)]
    build: &'a BuildInfo,
}

pub fn run(_args: &Args) -> Outcome {
    let output = VersionOutput {
        schema_version: crate::output::SCHEMA_VERSION,
        build: &BUILD,
    };
    Outcome {
        json: crate::output::to_json(&output),
        human: long(&BUILD),
        code: crate::error::exit::OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(commit: Option<&'static str>, date: Option<&'static str>) -> BuildInfo {
        BuildInfo {
            version: "0.1.0",
            commit,
            commit_date: date,
            target: "x86_64-unknown-linux-gnu",
            profile: "release",
            features: vec![],
            rustc: "rustc 1.91.0 (f8297e351 2025-10-28)",
        }
    }

    #[test]
    fn short_form_names_the_commit_when_known() {
        let cases = [
            (None, None, "0.1.0"),
            (Some("3b67376ab"), None, "0.1.0 (3b67376ab)"),
            (
                Some("3b67376ab"),
                Some("2026-12-04"),
                "0.1.0 (3b67376ab 2026-12-04)",
            ),
        ];
        for (commit, date, want) in cases {
            assert_eq!(short(&info(commit, date)), want);
        }
    }

    #[test]
    fn long_form_has_every_fact() {
        assert_eq!(
            long(&info(None, None)),
            "gpulibs 0.1.0\ncommit   unknown (not built from a git checkout)\ntarget   \
             x86_64-unknown-linux-gnu\nprofile  release\nfeatures none\nrustc    rustc 1.91.0 \
             (f8297e351 2025-10-28)\n"
        );
    }
}
