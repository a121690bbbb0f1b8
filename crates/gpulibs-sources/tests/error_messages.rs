//! No error message repeats its source: the renderer prints each link of the cause chain on its
//! own line, so a message that interpolates its source would be read twice. Each variant that has
//! a source is built here with a source whose text is distinctive.

use std::io;
use std::path::PathBuf;

use gpulibs_hint::assert_cause_told_once as check;

fn io_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file (test)")
}

#[test]
fn no_message_repeats_its_source() {
    use gpulibs_sources::{CoverageError, PipError};
    let json = serde_json::from_str::<u8>("not json (test)").unwrap_err();
    check("CoverageError::Json", &CoverageError::Json(json));
    check(
        "PipError::PythonNotFound",
        &PipError::PythonNotFound {
            python: PathBuf::from("/x/python3"),
            source: io_error(),
        },
    );
    check(
        "PipError::Spawn",
        &PipError::Spawn {
            python: PathBuf::from("/x/python3"),
            source: io_error(),
        },
    );
}

/// Hints are not baked into messages: each pip failure says what failed, and its hint (through
/// the one `Hint` trait) what to do.
#[test]
fn pip_errors_carry_their_next_step_as_a_hint() {
    use gpulibs_hint::Hint;
    use gpulibs_sources::{EmbeddedError, PipError};
    let python = PathBuf::from("/x/python3");
    let cases: Vec<(PipError, &str, &str)> = vec![
        (
            PipError::PythonNotFound {
                python: python.clone(),
                source: io_error(),
            },
            "/x/python3 was not found",
            "install Python 3 with pip (python3-pip), set GPULIBS_PYTHON, or pass --manifest",
        ),
        (
            PipError::PipMissing {
                python: python.clone(),
            },
            "pip was not found for /x/python3",
            "install python3-pip (or `/x/python3 -m ensurepip`), or pass --manifest",
        ),
        (
            PipError::PipTooOld {
                python: python.clone(),
            },
            "pip is too old to write an installation report (pip 22.2 or newer needed)",
            "upgrade it with `/x/python3 -m pip install --upgrade pip`, or pass --manifest",
        ),
        (
            PipError::Resolution {
                requirements: "onnxruntime-gpu==1.31.1".into(),
                platform: "manylinux_2_28_x86_64".into(),
                stderr: "ERROR: No matching distribution".into(),
            },
            "pip could not resolve onnxruntime-gpu==1.31.1: ERROR: No matching distribution",
            "check the index pip uses (`pip config list`) and that these releases exist for \
             manylinux_2_28_x86_64",
        ),
    ];
    for (error, message, hint) in cases {
        assert_eq!(error.to_string(), message);
        assert_eq!(error.hint().as_deref(), Some(hint), "{message}");
        // Wrapped in the embedded flow's error (transparently), the hint is still there.
        let wrapped = EmbeddedError::from(error);
        assert_eq!(wrapped.hint().as_deref(), Some(hint), "{message}");
    }
}

#[test]
fn manifest_load_errors_do_not_repeat_their_source() {
    use gpulibs_sources::{Document, ManifestLoadError};
    check(
        "ManifestLoadError::Read",
        &ManifestLoadError::Read {
            what: Document::Manifest,
            path: PathBuf::from("/x/manifest.toml"),
            source: io_error(),
        },
    );
    let bad = gpulibs_plan::load_manifest(b"not = [toml (test)").unwrap_err();
    check(
        "ManifestLoadError::Manifest",
        &ManifestLoadError::Manifest {
            manifest: "/x/manifest.toml".into(),
            source: bad,
        },
    );
    let untrusted =
        gpulibs_plan::check_signature(b"x", None, Some("RWQ (test)"), false).unwrap_err();
    check(
        "ManifestLoadError::Untrusted",
        &ManifestLoadError::Untrusted {
            manifest: "/x/manifest.toml".into(),
            no_signature_at: Some("/x/manifest.toml.minisig".into()),
            source: untrusted,
        },
    );
}
