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
    use gpulibs_package::{PackageError, ThinError};
    let path = PathBuf::from("/x/libonnxruntime_providers_cuda.so");
    check(
        "ThinError::Io",
        &ThinError::Io {
            path: path.clone(),
            source: io_error(),
        },
    );
    check(
        "PackageError::Io",
        &PackageError::Io {
            path: path.clone(),
            source: io_error(),
        },
    );
    check(
        "PackageError::ReadInput",
        &PackageError::ReadInput {
            path: path.clone(),
            source: io_error(),
        },
    );
    check(
        "PackageError::ReadManifest",
        &PackageError::ReadManifest {
            path: path.clone(),
            source: io_error(),
        },
    );
    check(
        "PackageError::Thin",
        &PackageError::Thin {
            library: "libonnxruntime_providers_cuda.so".into(),
            target: "sm_90".into(),
            source: Box::new(ThinError::Io {
                path,
                source: io_error(),
            }),
        },
    );
}

/// What to do is the error's hint, never its message: the CLI prints the hint once, as
/// `hint:`, after the message and its causes.
#[test]
fn the_step_is_the_hint_not_the_message() {
    use gpulibs_hint::Hint;
    use gpulibs_package::PackageError;
    let path = PathBuf::from("/x/build");
    let rows: Vec<(PackageError, &str)> = vec![
        (
            PackageError::ReadInput {
                path: path.clone(),
                source: io_error(),
            },
            "--from",
        ),
        (
            PackageError::UnknownInput { path: path.clone() },
            "build output directory",
        ),
        (
            PackageError::NoLibraries {
                inputs: vec![path.clone()],
            },
            "point --from",
        ),
        (
            PackageError::OutNotEmpty { path: path.clone() },
            "another --out",
        ),
        (
            PackageError::Closure {
                missing: vec![("libcublas.so.13".into(), "libx.so".into())],
            },
            "--system",
        ),
        (PackageError::UnknownCuda, "--cuda"),
        (PackageError::NothingToThin, "leave out --per-arch"),
        (
            PackageError::NvidiaUnverified {
                name: "libcudart.so.13".into(),
                source_name: "build".into(),
            },
            "official wheel",
        ),
    ];
    for (e, step) in rows {
        let hint = e.hint().unwrap_or_else(|| panic!("{e}: no hint"));
        assert!(hint.contains(step), "{e}: hint {hint:?} lacks {step:?}");
        let message = e.to_string();
        assert!(
            !message.contains(step),
            "{message:?} repeats the step {step:?}"
        );
    }
}
