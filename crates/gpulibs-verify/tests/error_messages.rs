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
    use gpulibs_verify::{parse_catalog, CatalogError, MeasurementsError, VerifyError};
    let json = serde_json::from_str::<u8>("not json (test)").unwrap_err();
    let toml = parse_catalog("[[[not toml (test)", "/x").unwrap_err();
    assert!(matches!(toml, CatalogError::Toml(_)), "{toml:?}");
    check("CatalogError::Toml", &toml);
    check(
        "MeasurementsError::Io",
        &MeasurementsError::Io {
            path: PathBuf::from("/x/m.json"),
            source: io_error(),
        },
    );
    check(
        "MeasurementsError::Json",
        &MeasurementsError::Json {
            path: PathBuf::from("/x/m.json"),
            source: json,
        },
    );
    check(
        "VerifyError::ModelUnreadable",
        &VerifyError::ModelUnreadable {
            path: PathBuf::from("/x/model.onnx"),
            source: io_error(),
        },
    );
    check(
        "VerifyError::ScratchDir",
        &VerifyError::ScratchDir {
            parent: PathBuf::from("/x"),
            source: io_error(),
        },
    );
}
