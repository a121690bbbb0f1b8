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
    use gpulibs_fetch::FetchError;
    check(
        "FetchError::File",
        &FetchError::File {
            artifact: "x.whl".into(),
            action: "writing",
            path: PathBuf::from("/x/x.whl.partial"),
            source: io_error(),
        },
    );
    check(
        "FetchError::Sink",
        &FetchError::Sink {
            artifact: "x.whl".into(),
            source: io_error(),
        },
    );
}
