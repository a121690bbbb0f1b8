//! Reading manifests: the example parses and round-trips; unknown fields and newer schemas are
//! refused with messages that name the field, the declared schema and the fix.

use gpulibs_plan::{parse_manifest, to_toml, ManifestError, VariantDevice, SCHEMA_VERSION};

const EXAMPLE: &str = include_str!("../fixtures/example.toml");

#[test]
fn example_parses_and_round_trips() {
    let m = parse_manifest(EXAMPLE).unwrap();
    assert_eq!(m.schema_version, SCHEMA_VERSION);
    assert_eq!(m.components.len(), 4);
    assert_eq!(m.variants.len(), 2);
    assert_eq!(m.variants[1].device, VariantDevice::Cpu);
    let ort = &m.components[0];
    assert_eq!(ort.cuda.unwrap().to_string(), "12.9");
    assert_eq!(ort.kernel_entries().len(), 7);
    assert_eq!(
        ort.files[0].soname_links,
        ["libonnxruntime.so.1", "libonnxruntime.so"]
    );
    let again = parse_manifest(&to_toml(&m)).unwrap();
    assert_eq!(again, m);
}

#[test]
fn unknown_field_names_field_place_schema_and_fix() {
    let text = EXAMPLE.replace(
        "format = \"tar.zst\"\n\n[[components.files]]",
        "format = \"tar.zst\"\ncompression_level = 19\n\n[[components.files]]",
    );
    let err = parse_manifest(&text).unwrap_err();
    match &err {
        ManifestError::UnknownField {
            field,
            context,
            declared,
            ..
        } => {
            assert_eq!(field, "compression_level");
            assert_eq!(context, "components[0].archive");
            assert_eq!(*declared, 1);
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("unknown field `compression_level`"), "{msg}");
    assert!(msg.contains("declares schema_version 1"), "{msg}");
    let hint = gpulibs_hint::Hint::hint(&err).expect("the fix");
    assert!(hint.contains("check the spelling"), "{hint}");
    assert!(!msg.contains("check the spelling"), "{msg}");

    // The same field in a file from a newer schema: the fix is to upgrade.
    let newer = text.replacen("schema_version = 1", "schema_version = 2", 1);
    let err = parse_manifest(&newer).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("declares schema_version 2"), "{msg}");
    assert!(msg.contains("this gpulibs reads schema_version 1"), "{msg}");
    let hint = gpulibs_hint::Hint::hint(&err).expect("the fix");
    assert!(hint.contains("upgrade gpulibs"), "{hint}");

    // A top-level unknown key.
    let top = EXAMPLE.replacen("app = ", "channel = \"stable\"\napp = ", 1);
    match parse_manifest(&top).unwrap_err() {
        ManifestError::UnknownField {
            field,
            context,
            line,
            ..
        } => {
            assert_eq!(
                (field.as_str(), context.as_str(), line),
                ("channel", "the top level", 4)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn newer_schema_without_new_fields_is_still_refused() {
    let newer = EXAMPLE.replacen("schema_version = 1", "schema_version = 7", 1);
    let err = parse_manifest(&newer).unwrap_err();
    assert_eq!(
        err,
        ManifestError::NewerSchema {
            declared: 7,
            supported: 1
        }
    );
    assert_eq!(
        gpulibs_hint::Hint::hint(&err).as_deref(),
        Some("upgrade gpulibs")
    );
}

#[test]
fn malformed_values_are_refused_with_the_line() {
    let cases = [
        ("sm_90a", "sm_90q", "`sm_90q` is not a kernel target"),
        (
            "\"sm_75\", \"sm_80\", \"sm_86\", \"sm_89\"",
            "\"compute_75\"",
            "is a PTX (`compute_`) target where a SASS (`sm_`) target is expected",
        ),
        (
            "isa = \"8.8\" }]\n\n[[components]]\nid = \"cuda-12.9\"",
            "isa = \"eight\" }]\n\n[[components]]\nid = \"cuda-12.9\"",
            "not a PTX ISA",
        ),
        ("cuda = \"12.9\"", "cuda = \"12\"", "write major.minor"),
        (
            "format = \"tar.zst\"",
            "format = \"rar\"",
            "unknown variant `rar`",
        ),
        (
            "kind = \"cudnn\"",
            "kind = \"tensorrt\"",
            "unknown variant `tensorrt`",
        ),
    ];
    for (from, to, want) in cases {
        let text = EXAMPLE.replacen(from, to, 1);
        assert_ne!(text, EXAMPLE, "{from}");
        let err = parse_manifest(&text).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ManifestError::Syntax { line, .. } if line > 1),
            "{msg}"
        );
        assert!(msg.contains(want), "{to}: {msg}");
    }
    let no_version = EXAMPLE.replacen("schema_version = 1\n", "", 1);
    assert_eq!(
        parse_manifest(&no_version).unwrap_err(),
        ManifestError::MissingSchemaVersion
    );
    let with_driver = EXAMPLE.replacen(
        "cuda = \"12.9\"",
        "cuda = \"12.9\"\nmin_driver = \"575.x\"",
        1,
    );
    assert!(parse_manifest(&with_driver)
        .unwrap_err()
        .to_string()
        .contains("not a driver version"));
}
