//! The CUDA path on a machine without the CUDA libraries, with the real `onnxruntime-gpu`
//! 1.31.1 (CUDA 13) library: verification fails at the preload, with the loader's own error
//! and the explanation, and is never a pass.

mod common;

use std::collections::HashMap;

use gpulibs_verify::*;

#[test]
fn missing_cuda_libraries_fail_with_the_loader_error_explained() {
    let ort = common::gpu_ort();
    // Nothing CUDA on the loader's path (a developer's GPU machine may have it in the cache or
    // the default directories: then this scenario cannot be staged there).
    let probe = unsafe {
        libloading::os::unix::Library::open(
            Some("libcublasLt.so.13"),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    };
    if probe.is_ok() {
        eprintln!("libcublasLt.so.13 is loadable here; the missing-library scenario needs a machine without it");
        return;
    }
    let empty = tempfile::tempdir().unwrap();
    let req = VerifyRequest {
        ort_library: ort.clone(),
        preload_dirs: vec![empty.path().to_path_buf()],
        models: ModelSource::Probe,
        device: Device::Cuda(0),
        shapes: HashMap::new(),
        values: HashMap::new(),
        runs: 3,
        max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
    };
    let report = verify(&req);
    println!("{}", report.render_text());
    assert_ne!(report.outcome, Outcome::VerifiedGpu);
    let (stage, reason, hint) = common::failure(&report);
    assert_eq!(stage, Stage::Preload);
    // The loader's own words ...
    assert!(
        reason.contains(
            "libcublasLt.so.13: cannot open shared object file: No such file or directory"
        ),
        "{reason}"
    );
    // ... explained.
    let hint = hint.unwrap();
    assert!(
        hint.contains("libcublasLt.so.13 not found: this library needs the CUDA 13 cuBLAS"),
        "{hint}"
    );
    assert_eq!(report.outcome.exit_code(), 1);

    // inspect said so before anything was loaded.
    let provider = ort.parent().unwrap().join(CUDA_PROVIDER_LIBRARY);
    assert_eq!(report.provider_library.as_deref(), Some(provider.as_path()));
    let missing: Vec<&str> = report
        .missing_libraries
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert!(missing.contains(&"libcublasLt.so.13"), "{missing:?}");
    assert!(missing.contains(&"libcudart.so.13"), "{missing:?}");
    // Every required CUDA library was tried, in dependency order, each with its error.
    let tried: Vec<&str> = report.preloaded.iter().map(|p| p.name.as_str()).collect();
    let pos = |n: &str| {
        tried
            .iter()
            .position(|t| *t == n)
            .unwrap_or_else(|| panic!("{n} not tried: {tried:?}"))
    };
    assert!(pos("libcudart.so.13") < pos("libcublasLt.so.13"));
    assert!(pos("libcublasLt.so.13") < pos("libcublas.so.13"));
    assert!(pos("libcublas.so.13") < pos("libcudnn.so.9"));
    for p in &report.preloaded {
        assert_eq!(p.status, PreloadStatus::Failed, "{p:?}");
        assert!(p.error.as_deref().unwrap().contains(&p.name), "{p:?}");
    }
    assert!(report
        .preloaded
        .iter()
        .any(|p| p.name == "libcudnn.so.9" && p.required));
    // Nothing ran, so nothing can pass.
    assert!(report.models.is_empty());
    assert_eq!(report.ort_version, None);
    let json: serde_json::Value = serde_json::from_str(&report.to_json_pretty()).unwrap();
    assert_eq!(json["outcome"]["status"], "failed");
    assert_eq!(json["outcome"]["stage"], "preload");
}
