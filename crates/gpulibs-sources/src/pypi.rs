//! Wheels from the user's Python package index, resolved through `pip`.
//!
//! gpulibs never talks to a package index itself: `pip install --dry-run --report` resolves
//! requirements to wheel URLs and hashes, honouring the user's pip configuration (index,
//! mirrors, credentials, certificates, proxies), and nothing is installed. `--target` with the
//! `--platform` / `--python-version` / `--implementation` tags makes pip pick wheels for the
//! machine gpulibs installs for rather than for the Python that runs pip (pip only accepts
//! those tags together with `--target`; with `--dry-run` the directory is never created).
//!
//! Pieces:
//! - [`WheelTarget`]: the tags; [`pip_arguments`]: the command line, a pure function;
//! - [`parse_report`]: pip's JSON installation report into [`ResolvedWheel`]s;
//! - [`PipResolver`]: the seam between the two: [`Pip`] runs pip, tests use a recorded report.
//!
//! pip's report has no sizes; [`ResolvedWheel::size`] is `None` from pip and filled by the caller
//! from the measured table (`crate::coverage`) when the file name and sha256 match.
//!
//! Cost: pip reads each wheel's metadata to write the report. Where the index serves it
//! separately (PEP 658/714) that is a small request; where it does not, pip downloads the whole
//! wheel into its HTTP cache. Resolution therefore asks for exact `name==version` pins, one
//! wheel per need, never a range to search.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

/// The wheel tags asked for. Any CPython ABI works: gpulibs only takes the native libraries out
/// of the wheels and never imports the Python modules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WheelTarget {
    /// `3.11`.
    pub python_version: String,
    /// `cp`.
    pub implementation: String,
    /// Platform tags, most wanted first.
    pub platforms: Vec<String>,
}

impl Default for WheelTarget {
    /// CPython 3.11 on manylinux x86-64 (glibc 2.28 down to 2.17).
    ///
    /// 3.11 because every `onnxruntime-gpu` release from 1.16 to today (1.31) publishes cp311
    /// wheels, and 3.11 is still supported upstream; a Python version with wheels for all the
    /// measured releases keeps one tag set for the whole table. `scripts/ort-coverage.py` uses
    /// the same values, and a test checks that the table says so.
    fn default() -> Self {
        WheelTarget {
            python_version: "3.11".into(),
            implementation: "cp".into(),
            platforms: [
                "manylinux_2_28_x86_64",
                "manylinux_2_27_x86_64",
                "manylinux_2_17_x86_64",
                "manylinux2014_x86_64",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Why a requirement string is refused before pip sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a requirement gpulibs passes to pip: write `name==version` or a \
     specifier such as `nvidia-cublas~=13.0`"
)]
pub struct RequirementError(pub String);

/// Checks a requirement: a distribution name, optionally a version specifier, nothing that pip
/// would read as an option, a path or a URL.
pub fn check_requirement(req: &str) -> Result<(), RequirementError> {
    let err = || RequirementError(req.to_owned());
    let name_end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    let (name, spec) = req.split_at(name_end);
    let name_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    let spec_ok = spec.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '=' | '<' | '>' | '~' | '!' | '.' | ',' | '*' | ' ')
    });
    let spec_ok =
        spec_ok && (spec.is_empty() || spec.trim_start().starts_with(['=', '<', '>', '~', '!']));
    if name_ok && spec_ok {
        Ok(())
    } else {
        Err(err())
    }
}

/// The arguments after `python3` for a dry-run resolution of `requirements` (no dependencies:
/// gpulibs lists every wheel it needs itself), writing the report to stdout.
///
/// `target_dir` is handed to `--target`; pip does not create it in a dry run.
pub fn pip_arguments(
    target: &WheelTarget,
    requirements: &[String],
    target_dir: &Path,
) -> Result<Vec<OsString>, RequirementError> {
    for r in requirements {
        check_requirement(r)?;
    }
    let mut args: Vec<OsString> = [
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--no-deps",
        "--quiet",
        "--report",
        "-",
        "--only-binary=:all:",
        "--target",
    ]
    .map(OsString::from)
    .to_vec();
    args.push(target_dir.as_os_str().to_owned());
    for p in &target.platforms {
        args.push("--platform".into());
        args.push(p.into());
    }
    args.push("--python-version".into());
    args.push((&target.python_version).into());
    args.push("--implementation".into());
    args.push((&target.implementation).into());
    // `--` ends the options: whatever a requirement says, pip reads it as one.
    args.push("--".into());
    args.extend(requirements.iter().map(OsString::from));
    Ok(args)
}

/// One wheel pip chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedWheel {
    /// The name as the metadata spells it: `onnxruntime-gpu`.
    pub name: String,
    pub version: String,
    /// Where to download it from (the user's index or mirror).
    pub url: String,
    /// The last path segment of `url`.
    pub filename: String,
    /// Lowercase hex; `None` when the index gave no sha256.
    pub sha256: Option<String>,
    /// Bytes to download; pip's report does not say, so `None` unless filled from elsewhere.
    pub size: Option<u64>,
    /// Its `Requires-Dist`.
    pub requires_dist: Vec<String>,
}

/// The name compared as PEP 503 does: lowercase, runs of `-`, `_`, `.` as one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Errors of pip resolution, each naming what to do.
#[derive(Debug, thiserror::Error)]
pub enum PipError {
    #[error("{python} was not found")]
    PythonNotFound {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{python} could not be run")]
    Spawn {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pip was not found for {python}")]
    PipMissing { python: PathBuf },
    #[error("pip is too old to write an installation report (pip 22.2 or newer needed)")]
    PipTooOld { python: PathBuf },
    #[error("pip could not resolve {requirements}: {stderr}")]
    Resolution {
        requirements: String,
        platform: String,
        stderr: String,
    },
    #[error("pip's installation report could not be read: {0}")]
    Report(String),
    #[error(transparent)]
    Requirement(#[from] RequirementError),
}

impl gpulibs_hint::Hint for PipError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            PipError::PythonNotFound { .. } => {
                "install Python 3 with pip (python3-pip), set GPULIBS_PYTHON, or pass --manifest"
                    .into()
            }
            PipError::Spawn { .. } => {
                "set GPULIBS_PYTHON to a Python 3 this user can run, or pass --manifest".into()
            }
            PipError::PipMissing { python } => format!(
                "install python3-pip (or `{} -m ensurepip`), or pass --manifest",
                python.display()
            ),
            PipError::PipTooOld { python } => format!(
                "upgrade it with `{} -m pip install --upgrade pip`, or pass --manifest",
                python.display()
            ),
            PipError::Resolution { platform, .. } => format!(
                "check the index pip uses (`pip config list`) and that these releases exist for \
                 {platform}"
            ),
            PipError::Report(_) | PipError::Requirement(_) => return None,
        })
    }
}

/// pip's JSON report (`--report`), the fields gpulibs uses.
#[derive(Deserialize)]
struct Report {
    version: String,
    #[serde(default)]
    install: Vec<ReportItem>,
}

#[derive(Deserialize)]
struct ReportItem {
    download_info: DownloadInfo,
    metadata: ReportMetadata,
}

#[derive(Deserialize)]
struct DownloadInfo {
    url: String,
    #[serde(default)]
    archive_info: Option<ArchiveInfo>,
}

#[derive(Deserialize)]
struct ArchiveInfo {
    /// `sha256=<hex>` (the older, single form).
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    hashes: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct ReportMetadata {
    name: String,
    version: String,
    #[serde(default)]
    requires_dist: Vec<String>,
}

/// Reads pip's installation report (format version 1).
pub fn parse_report(json: &str) -> Result<Vec<ResolvedWheel>, PipError> {
    let report: Report = serde_json::from_str(json).map_err(|e| PipError::Report(e.to_string()))?;
    if report.version.split('.').next() != Some("1") {
        return Err(PipError::Report(format!(
            "report format version {} is not 1; this gpulibs reads version 1",
            report.version
        )));
    }
    report
        .install
        .into_iter()
        .map(|item| {
            let url = item.download_info.url;
            let filename = url
                .split(['#', '?'])
                .next()
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or_default()
                .to_owned();
            if !filename.ends_with(".whl") {
                return Err(PipError::Report(format!(
                    "{} {} resolved to `{url}`, not a wheel",
                    item.metadata.name, item.metadata.version
                )));
            }
            let archive = item.download_info.archive_info;
            let sha256 = archive
                .as_ref()
                .and_then(|a| a.hashes.as_ref()?.get("sha256").cloned())
                .or_else(|| {
                    archive
                        .as_ref()?
                        .hash
                        .as_deref()?
                        .strip_prefix("sha256=")
                        .map(str::to_owned)
                })
                .map(|h| h.to_ascii_lowercase());
            Ok(ResolvedWheel {
                name: item.metadata.name,
                version: item.metadata.version,
                url,
                filename,
                sha256,
                size: None,
                requires_dist: item.metadata.requires_dist,
            })
        })
        .collect()
}

/// Resolves requirements to wheels. [`Pip`] in production; tests answer from a recorded report.
pub trait PipResolver {
    /// One [`ResolvedWheel`] per requirement (pip's order), for `target`.
    fn resolve(
        &self,
        requirements: &[String],
        target: &WheelTarget,
    ) -> Result<Vec<ResolvedWheel>, PipError>;
}

/// Runs `python3 -m pip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pip {
    /// The interpreter whose pip is used (and whose pip configuration applies).
    pub python: PathBuf,
}

/// The environment variable naming the Python interpreter to run pip with.
pub const PYTHON_ENV: &str = "GPULIBS_PYTHON";

impl Pip {
    /// `$GPULIBS_PYTHON`, else `python3` from `PATH`.
    pub fn from_env() -> Self {
        Pip {
            python: std::env::var_os(PYTHON_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("python3")),
        }
    }
}

impl PipResolver for Pip {
    fn resolve(
        &self,
        requirements: &[String],
        target: &WheelTarget,
    ) -> Result<Vec<ResolvedWheel>, PipError> {
        let target_dir =
            std::env::temp_dir().join(format!("gpulibs-pip-dry-run-{}", std::process::id()));
        let args = pip_arguments(target, requirements, &target_dir)?;
        let output = Command::new(&self.python)
            .args(&args)
            .env("PIP_NO_INPUT", "1")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .output()
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => PipError::PythonNotFound {
                    python: self.python.clone(),
                    source,
                },
                _ => PipError::Spawn {
                    python: self.python.clone(),
                    source,
                },
            })?;
        let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if stderr.trim().is_empty() {
            stderr = format!("pip printed nothing and {}", output.status);
        }
        if !output.status.success() {
            return Err(classify_failure(
                &self.python,
                requirements,
                target,
                &stderr,
            ));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        parse_report(&stdout)
    }
}

/// Turns pip's failure output into the error that says what to do.
pub fn classify_failure(
    python: &Path,
    requirements: &[String],
    target: &WheelTarget,
    stderr: &str,
) -> PipError {
    if stderr.contains("No module named pip") {
        return PipError::PipMissing {
            python: python.to_owned(),
        };
    }
    if stderr.contains("no such option: --report") || stderr.contains("no such option: --dry-run") {
        return PipError::PipTooOld {
            python: python.to_owned(),
        };
    }
    // The last lines carry pip's own explanation ("No matching distribution found ...").
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(6)..].join("\n");
    PipError::Resolution {
        requirements: requirements.join(" "),
        platform: format!(
            "CPython {} on {}",
            target.python_version,
            target.platforms.first().map(String::as_str).unwrap_or("?")
        ),
        stderr: tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_as_pep_503() {
        assert_eq!(normalize_name("onnxruntime_gpu"), "onnxruntime-gpu");
        assert_eq!(normalize_name("Nvidia.CUDNN--cu13"), "nvidia-cudnn-cu13");
        assert_eq!(normalize_name("nvidia-cublas"), "nvidia-cublas");
    }

    #[test]
    fn requirements_are_checked() {
        for ok in [
            "onnxruntime-gpu==1.31.1",
            "nvidia-cudnn-cu13~=9.0",
            "onnxruntime>=1.20.0,<=1.20.2",
            "numpy",
        ] {
            assert!(check_requirement(ok).is_ok(), "{ok}");
        }
        for bad in [
            "--index-url=x",
            "-r",
            "/tmp/x.whl",
            "pkg @ file:///x",
            "pkg[extra]",
            "",
            "pkg; python_version<'3'",
            "==1.0",
        ] {
            assert!(check_requirement(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_line_pins_the_target_tags() {
        let args = pip_arguments(
            &WheelTarget::default(),
            &["onnxruntime-gpu==1.31.1".into()],
            Path::new("/tmp/none"),
        )
        .unwrap();
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--ignore-installed",
                "--no-deps",
                "--quiet",
                "--report",
                "-",
                "--only-binary=:all:",
                "--target",
                "/tmp/none",
                "--platform",
                "manylinux_2_28_x86_64",
                "--platform",
                "manylinux_2_27_x86_64",
                "--platform",
                "manylinux_2_17_x86_64",
                "--platform",
                "manylinux2014_x86_64",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--",
                "onnxruntime-gpu==1.31.1",
            ]
        );
        assert!(pip_arguments(
            &WheelTarget::default(),
            &["--extra-index-url=http://x".into()],
            Path::new("/tmp/none")
        )
        .is_err());
    }

    #[test]
    fn failures_are_classified() {
        let t = WheelTarget::default();
        let py = Path::new("python3");
        assert!(matches!(
            classify_failure(py, &[], &t, "/usr/bin/python3: No module named pip\n"),
            PipError::PipMissing { .. }
        ));
        assert!(matches!(
            classify_failure(py, &[], &t, "Usage: ...\n\nno such option: --report\n"),
            PipError::PipTooOld { .. }
        ));
        let e = classify_failure(
            py,
            &["onnxruntime-gpu==0.0.1".into()],
            &t,
            "ERROR: Could not find a version that satisfies the requirement onnxruntime-gpu==0.0.1\nERROR: No matching distribution found for onnxruntime-gpu==0.0.1\n",
        );
        let text = e.to_string();
        assert!(text.contains("onnxruntime-gpu==0.0.1"), "{text}");
        assert!(text.contains("No matching distribution"), "{text}");
        // The platform is named in the hint (the step), not baked into the message.
        let hint = gpulibs_hint::Hint::hint(&e).unwrap_or_default();
        assert!(hint.contains("manylinux_2_28_x86_64"), "{hint}");
    }

    #[test]
    fn report_hash_forms_and_bad_reports() {
        let one = |archive: &str| {
            format!(
                r#"{{"version":"1","install":[{{"download_info":{{"url":"https://index.invalid/p/x-1.0-py3-none-any.whl#sha256=ab",{archive}}},"metadata":{{"name":"x","version":"1.0"}}}}]}}"#
            )
        };
        let w = parse_report(&one(r#""archive_info":{"hash":"sha256=ABCD"}"#)).unwrap();
        assert_eq!(w[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(w[0].filename, "x-1.0-py3-none-any.whl");
        let w = parse_report(&one(
            r#""archive_info":{"hashes":{"sha256":"ef01"},"hash":"sha256=00"}"#,
        ))
        .unwrap();
        assert_eq!(w[0].sha256.as_deref(), Some("ef01"));
        let w = parse_report(&one(r#""archive_info":{}"#)).unwrap();
        assert_eq!(w[0].sha256, None);
        assert!(matches!(
            parse_report(r#"{"version":"2","install":[]}"#),
            Err(PipError::Report(_))
        ));
        assert!(matches!(parse_report("not json"), Err(PipError::Report(_))));
        let sdist = one(r#""archive_info":{}"#).replace("x-1.0-py3-none-any.whl", "x-1.0.tar.gz");
        assert!(matches!(parse_report(&sdist), Err(PipError::Report(_))));
    }
}
