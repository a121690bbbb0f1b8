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
