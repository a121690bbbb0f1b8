//! The resolver on the CUDA provider of real `onnxruntime-gpu` wheels.
//!
//! Needs the unpacked wheels, so it is ignored by default:
//! `GPULIBS_ORT_UNPACKED=DIR cargo test -p gpulibs-inspect --test deps_real_wheels -- --ignored --nocapture`
//! where `DIR/onnxruntime_gpu-<version>/onnxruntime/capi/libonnxruntime_providers_cuda.so` exist.

// A test: says what it measured and why it is skipped.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use gpulibs_inspect::deps::{inspect_file, DependencyKind, DependencyReport, SearchContext};

/// Panics when `GPULIBS_ORT_UNPACKED` is not set: these tests run only when asked for
/// (`--ignored`), and then they must check something.
fn report(version: &str) -> DependencyReport {
    let root = std::env::var("GPULIBS_ORT_UNPACKED")
        .expect("set GPULIBS_ORT_UNPACKED to the directory of the unpacked wheels");
    let file = PathBuf::from(root).join(format!(
        "onnxruntime_gpu-{version}/onnxruntime/capi/libonnxruntime_providers_cuda.so"
    ));
    let report = inspect_file(&file, &SearchContext::from_system()).unwrap();
    println!("== {version}");
    for d in &report.dependencies {
        println!(
            "{:>1} {:<8} {:<28} {:?} {} {}",
            d.depth,
            format!("{:?}", d.kind).to_lowercase(),
            d.name,
            d.source.map(|s| format!("{s:?}")).unwrap_or_default(),
            d.path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("{:?}", d.status)),
            d.hint.as_deref().unwrap_or(""),
        );
    }
    report
}

fn names(report: &DependencyReport, kind: DependencyKind) -> Vec<&str> {
    report
        .dependencies
        .iter()
        .filter(|d| d.kind == kind && d.depth == 1)
        .map(|d| d.name.as_str())
        .collect()
}

#[test]
#[ignore = "needs unpacked onnxruntime-gpu wheels (GPULIBS_ORT_UNPACKED)"]
fn onnxruntime_gpu_1_31_1() {
    let report = report("1.31.1");
    let needed = names(&report, DependencyKind::Needed);
    for lib in [
        "libcublasLt.so.13",
        "libcublas.so.13",
        "libcurand.so.10",
        "libcudart.so.13",
        "libcuda.so.1",
    ] {
        assert!(needed.contains(&lib), "{lib} not in {needed:?}");
    }
    let runtime = names(&report, DependencyKind::Runtime);
    for lib in ["libcudnn.so.9", "libcufft.so.12", "libnvrtc.so.13"] {
        assert!(runtime.contains(&lib), "{lib} not in {runtime:?}");
    }
}

#[test]
#[ignore = "needs unpacked onnxruntime-gpu wheels (GPULIBS_ORT_UNPACKED)"]
fn onnxruntime_gpu_1_23_2() {
    let report = report("1.23.2");
    let needed = names(&report, DependencyKind::Needed);
    for lib in [
        "libcublasLt.so.12",
        "libcublas.so.12",
        "libcurand.so.10",
        "libcufft.so.11",
        "libcudart.so.12",
        "libcudnn.so.9",
    ] {
        assert!(needed.contains(&lib), "{lib} not in {needed:?}");
    }
    assert!(names(&report, DependencyKind::Runtime).contains(&"libcuda.so.1"));
}
