//! The JSON the CLI prints with `--json`: field names and enum values are part of the interface.

mod deps_support;

use std::path::PathBuf;

use deps_support::{craft_elf, elf_header, Crafted, MemFs};
use gpulibs_inspect::deps::{dynamic_info, resolve_with, Limits, SearchContext};

#[test]
fn report_json_shape() {
    let bytes = craft_elf(&Crafted {
        class64: true,
        big_endian: false,
        machine: 62,
        soname: Some("libonnxruntime_providers_cuda.so"),
        needed: &["libcublasLt.so.13", "libcudart.so.13"],
        rpath: None,
        runpath: Some("$ORIGIN"),
    });
    let info = dynamic_info(&bytes).unwrap();
    let mut fs = MemFs::default();
    fs.add("/ort/capi/libcudart.so.13", elf_header(2, 1, 3, 62));
    fs.add("/ort/capi/libcudart.so.13.x", elf_header(2, 1, 3, 62));
    let root = PathBuf::from("/ort/capi/libonnxruntime_providers_cuda.so");
    let report = resolve_with(&fs, &root, &info, &SearchContext::default(), Limits::DIRECT);
    let json = serde_json::to_value(&report).unwrap();
    let expected = serde_json::json!({
        "file": "/ort/capi/libonnxruntime_providers_cuda.so",
        "dynamic": {
            "identity": { "class": "elf64", "byte_order": "little", "machine": 62 },
            "is_dynamic": true,
            "soname": "libonnxruntime_providers_cuda.so",
            "needed": ["libcublasLt.so.13", "libcudart.so.13"],
            "rpath": null,
            "runpath": "$ORIGIN",
            "runtime_names": []
        },
        "dependencies": [
            {
                "name": "libcublasLt.so.13",
                "kind": "needed",
                "source": null,
                "depth": 1,
                "required_by": "/ort/capi/libonnxruntime_providers_cuda.so",
                "status": "missing",
                "path": null,
                "via": null,
                "skipped": [],
                "problem": null,
                "hint": "libcublasLt.so.13 not found: this library needs the CUDA 13 cuBLAS (pip: nvidia-cublas 13.x; or the CUDA 13 toolkit)"
            },
            {
                "name": "libcudart.so.13",
                "kind": "needed",
                "source": null,
                "depth": 1,
                "required_by": "/ort/capi/libonnxruntime_providers_cuda.so",
                "status": "found",
                "path": "/ort/capi/libcudart.so.13",
                "via": "runpath",
                "skipped": [],
                "problem": null,
                "hint": null
            }
        ],
        "truncated": false
    });
    assert_eq!(
        json,
        expected,
        "{}",
        serde_json::to_string_pretty(&json).unwrap()
    );
    // Round trip: the CLI or a later stage can read it back.
    let back: gpulibs_inspect::deps::DependencyReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn enum_values_are_snake_case() {
    use gpulibs_inspect::deps::{DependencyStatus, FoundVia, RuntimeNameSource, SkipReason};
    let s = |v: serde_json::Value| v.as_str().unwrap().to_owned();
    assert_eq!(
        s(serde_json::to_value(FoundVia::LdLibraryPath).unwrap()),
        "ld_library_path"
    );
    assert_eq!(
        s(serde_json::to_value(FoundVia::LdCache).unwrap()),
        "ld_cache"
    );
    assert_eq!(
        s(serde_json::to_value(FoundVia::DefaultDir).unwrap()),
        "default_dir"
    );
    assert_eq!(s(serde_json::to_value(FoundVia::Rpath).unwrap()), "rpath");
    assert_eq!(s(serde_json::to_value(FoundVia::Path).unwrap()), "path");
    assert_eq!(
        s(serde_json::to_value(RuntimeNameSource::CodeImmediate).unwrap()),
        "code_immediate"
    );
    assert_eq!(
        s(serde_json::to_value(RuntimeNameSource::String).unwrap()),
        "string"
    );
    assert_eq!(
        s(serde_json::to_value(SkipReason::WrongClass).unwrap()),
        "wrong_class"
    );
    assert_eq!(
        s(serde_json::to_value(DependencyStatus::Invalid).unwrap()),
        "invalid"
    );
}
