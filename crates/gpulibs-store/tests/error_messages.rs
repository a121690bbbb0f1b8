//! No error message repeats its source: the renderer prints each link of the cause chain on its
//! own line, so a message that interpolates its source would be read twice. Each variant that has
//! a source is built here with a source whose text is distinctive. And the advice the messages
//! used to end with is each variant's hint now, never part of the message.

use std::io;
use std::path::PathBuf;

use gpulibs_hint::{assert_cause_told_once as check, Hint};
use gpulibs_store::{StoreError, UnpackError};

fn io_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file (test)")
}

fn json_error() -> serde_json::Error {
    serde_json::from_str::<serde_json::Value>("{ not json (test)").unwrap_err()
}

#[test]
fn no_message_repeats_its_source() {
    check(
        "StoreError::Io",
        &StoreError::Io {
            action: "reading",
            path: PathBuf::from("/x/install.json"),
            source: io_error(),
        },
    );
    for (name, unpack) in [
        ("UnpackError::Read", UnpackError::Read(io_error())),
        (
            "UnpackError::Write",
            UnpackError::Write {
                path: PathBuf::from("/x/lib/libx.so"),
                source: io_error(),
            },
        ),
        (
            "UnpackError::NoRoom",
            UnpackError::NoRoom {
                path: PathBuf::from("/x/lib/libx.so"),
                free: None,
                source: io::Error::from_raw_os_error(28),
            },
        ),
        (
            "UnpackError::Zip",
            UnpackError::Zip(zip::result::ZipError::Io(io_error())),
        ),
    ] {
        check(name, &unpack);
        check(
            &format!("StoreError::Unpack({name})"),
            &StoreError::Unpack {
                sha256: "ab".repeat(32),
                path: PathBuf::from("/x/store/ab"),
                source: unpack,
            },
        );
    }
    check(
        "StoreError::BadRecord",
        &StoreError::BadRecord {
            path: PathBuf::from("/x/installs/a/install.json"),
            source: json_error(),
        },
    );
    check(
        "StoreError::BadRootMarker",
        &StoreError::BadRootMarker {
            path: PathBuf::from("/x/gpulibs-root.json"),
            source: Some(json_error()),
        },
    );
    check(
        "StoreError::SystemLibrary",
        &StoreError::SystemLibrary {
            soname: "libcudart.so.12".into(),
            path: PathBuf::from("/usr/lib/libcudart.so.12"),
            why: "cannot be opened".into(),
            source: Some(io_error()),
        },
    );
}

/// Every variant whose message used to end with what to do: the message now says only what
/// failed, and the step is the hint.
#[test]
fn the_advice_is_the_hint_not_the_message() {
    let path = || PathBuf::from("/x");
    let cases: Vec<(StoreError, &str)> = vec![
        (StoreError::NoRoot, "set GPULIBS_HOME"),
        (
            StoreError::BadAppName { app: ".x".into() },
            "use letters, digits",
        ),
        (
            StoreError::Locked {
                path: path(),
                pid: Some(7),
            },
            "wait for the other install to finish",
        ),
        (
            StoreError::InsufficientSpace {
                path: path(),
                needed: 2,
                available: 1,
            },
            "free some space or set GPULIBS_HOME",
        ),
        (
            StoreError::MissingComponent {
                sha256: "ab".repeat(32),
                path: path(),
            },
            "stage it before installing",
        ),
        (
            StoreError::LinkTarget {
                component: "c".into(),
                name: "libx.so.1".into(),
                target: "libx.so.1.2".into(),
            },
            "files[].soname_links",
        ),
        (
            StoreError::ListedFileMissing {
                component: "c".into(),
                path: "c/libx.so".into(),
            },
            "fix the manifest's files[]",
        ),
        (
            StoreError::NothingInstalled { root: path() },
            "run `gpulibs install`",
        ),
        (
            StoreError::NoPrevious { root: path() },
            "`gpulibs status` shows what is active",
        ),
        (
            StoreError::BadRecord {
                path: path(),
                source: json_error(),
            },
            "writes a fresh one",
        ),
        (
            StoreError::NotARoot {
                path: path(),
                strangers: "`thesis.txt`".into(),
                fix: "move those files elsewhere".into(),
            },
            "move those files elsewhere",
        ),
        (
            StoreError::BadRootMarker {
                path: path(),
                source: None,
            },
            "delete the marker and run again",
        ),
        (
            StoreError::NewerRoot {
                path: path(),
                format: 2,
            },
            "use the newer gpulibs",
        ),
        (
            StoreError::CurrentGone {
                link: path(),
                target: path(),
                previous_usable: true,
            },
            "run `gpulibs rollback`",
        ),
        (
            StoreError::CurrentGone {
                link: path(),
                target: path(),
                previous_usable: false,
            },
            "run `gpulibs install` to install again",
        ),
        (
            StoreError::Unusable {
                id: "a".into(),
                missing: path(),
                detail: String::new(),
                more: 1,
                previous_usable: true,
            },
            "run `gpulibs install` to repair it, or `gpulibs rollback`",
        ),
        (
            StoreError::SystemLibrary {
                soname: "libcudart.so.12".into(),
                path: path(),
                why: "is not a regular file".into(),
                source: None,
            },
            "`gpulibs install --no-reuse`",
        ),
        (
            StoreError::ViewBlocked { path: path() },
            "move it out of the root and run again",
        ),
        (
            StoreError::SeedAdoption {
                path: path(),
                id: "seed-1".into(),
                lib: path(),
                why: "moving `libx.so` failed".into(),
            },
            "run the command again to finish",
        ),
    ];
    for (e, step) in cases {
        let hint = e.hint().unwrap_or_else(|| panic!("{e:?}: no hint"));
        assert!(hint.contains(step), "{e:?}: {hint}");
        let message = e.to_string();
        assert!(
            !message.contains(step),
            "{e:?}: the message tells the step: {message}"
        );
        assert!(!message.contains(&hint), "{e:?}: {message}");
    }
    // A fact needs no step.
    assert_eq!(
        StoreError::HashMismatch {
            expected: "ab".repeat(32),
            actual: "cd".repeat(32),
        }
        .hint(),
        None
    );
}
