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
    use gpulibs_inspect::deps::{DepsError, LdCacheError, ParseError};
    use gpulibs_inspect::InspectError;
    let path = PathBuf::from("/x/lib.so");
    check(
        "InspectError::Io",
        &InspectError::Io {
            path: path.clone(),
            action: "open the file",
            source: io_error(),
        },
    );
    check(
        "DepsError::Io",
        &DepsError::Io {
            path: path.clone(),
            source: io_error(),
        },
    );
    check(
        "DepsError::Parse",
        &DepsError::Parse {
            path: path.clone(),
            source: ParseError::Truncated("section headers (test)".into()),
        },
    );
    check(
        "DepsError::LdCache",
        &DepsError::LdCache {
            path,
            source: LdCacheError::Truncated("entries (test)"),
        },
    );
}

/// What `gpulibs inspect /nonexistent/lib.so` reads: the file and the step, then the OS's
/// reason once.
#[test]
fn a_missing_file_names_the_step_and_leaves_the_reason_to_the_cause() {
    let report = gpulibs_inspect::inspect_file(
        std::path::Path::new("/nonexistent/lib.so"),
        &Default::default(),
    );
    let error = report.unwrap_err();
    assert_eq!(
        error.to_string(),
        "/nonexistent/lib.so: cannot open the file"
    );
    assert_eq!(
        std::error::Error::source(&error).map(|s| s.to_string()),
        Some(io::Error::from_raw_os_error(2).to_string())
    );
}
