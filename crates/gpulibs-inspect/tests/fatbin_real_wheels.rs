//! Known truths about real NVIDIA-built libraries (cuda-facts.md §6 "Measured wheels" [E3]).
//!
//! The libraries are hundreds of MB and not in the repository, so each test takes its file from an
//! environment variable and is skipped, saying so, when the variable is unset:
//!
//! - `GPULIBS_ORT_131_PROVIDER`: `onnxruntime/capi/libonnxruntime_providers_cuda.so` from the
//!   `onnxruntime-gpu` 1.31.1 wheel;
//! - `GPULIBS_ORT_1232_PROVIDER`: the same file from 1.23.2;
//! - `GPULIBS_INSPECT_FILES`: any files, `:`-separated, whose reports are printed (no assertions).

// A test: says what it measured and why it is skipped.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_inspect::{inspect_file, FileReport, InspectOptions, Verdict};

fn gpus() -> Vec<ComputeCapability> {
    ["5.2", "8.6", "9.0", "10.0", "12.0"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

fn inspect_env(var: &str) -> Option<FileReport> {
    let Some(path) = std::env::var_os(var) else {
        eprintln!("skipped: set {var} to run this test");
        return None;
    };
    let opts = InspectOptions {
        gpus: gpus(),
        driver: Some(CudaVersion::new(13, 0)),
        check_payloads: false,
    };
    let t = Instant::now();
    let r = inspect_file(&PathBuf::from(path), &opts).expect("inspect");
    eprintln!("inspected in {:.3} s", t.elapsed().as_secs_f64());
    eprint!("{}", r.render_text());
    eprintln!("{}", r.summary_line());
    Some(r)
}

fn verdict<'a>(r: &'a FileReport, gpu: &str) -> &'a Verdict {
    &r.verdicts
        .iter()
        .find(|v| v.gpu == gpu)
        .expect("verdict asked for")
        .verdict
}

#[test]
fn ort_1_31_1_cuda_provider() {
    let Some(r) = inspect_env("GPULIBS_ORT_131_PROVIDER") else {
        return;
    };
    assert_eq!(
        r.sass_targets,
        ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90a", "sm_120a"]
    );
    assert!(r.ptx_targets.is_empty(), "{:?}", r.ptx_targets);
    assert!(r.containers >= 609, "{}", r.containers);
    assert!(r
        .kernels
        .iter()
        .all(|k| k.compression == [gpulibs_inspect::Compression::Zstd]));
    assert_eq!(verdict(&r, "sm_90"), &Verdict::Native);
    assert_eq!(verdict(&r, "sm_86"), &Verdict::Native);
    assert!(matches!(
        verdict(&r, "sm_100"),
        Verdict::NoKernelImage { .. }
    ));
    assert!(matches!(
        verdict(&r, "sm_52"),
        Verdict::NoKernelImage { .. }
    ));
    assert_eq!(verdict(&r, "sm_120"), &Verdict::Native);
    // Rule fatbin-zstd: the same kernels on an R535 driver (CUDA 12.2) cannot be read; R550
    // (12.4) reads them.
    let r535 = r.verdict_for("8.6".parse().unwrap(), Some(CudaVersion::new(12, 2)));
    assert!(
        matches!(
            &r535.verdict,
            Verdict::DriverCannotLoad { rule, needs_driver: Some(d), .. }
                if rule == "fatbin-zstd" && d == "550.54.14"
        ),
        "{:?}",
        r535.verdict
    );
    eprintln!("R535: {}", r535.message);
    let r550 = r.verdict_for("8.6".parse().unwrap(), Some(CudaVersion::new(12, 4)));
    assert_eq!(r550.verdict, Verdict::Native);
}

#[test]
fn ort_1_23_2_cuda_provider() {
    let Some(r) = inspect_env("GPULIBS_ORT_1232_PROVIDER") else {
        return;
    };
    assert!(
        r.ptx_targets.contains(&"compute_90".to_string()),
        "{:?}",
        r.ptx_targets
    );
    assert!(matches!(verdict(&r, "sm_120"), Verdict::Jit { .. }));
    assert_eq!(verdict(&r, "sm_90"), &Verdict::Native);
    // LZ4 kernels (and the CUDA 12.2 build's PTX ISA 8.2): an R535 driver (12.2) loads them.
    assert!(r
        .kernels
        .iter()
        .filter(|k| k.kind != "other")
        .all(|k| k.compression == [gpulibs_inspect::Compression::Lz4]));
    let r535 = r.verdict_for("8.6".parse().unwrap(), Some(CudaVersion::new(12, 2)));
    assert_eq!(r535.verdict, Verdict::Native, "{}", r535.message);
    // On sm_120 its compute_90 PTX (ISA 8.2) JIT-compiles on R535 too.
    let jit = r.verdict_for("12.0".parse().unwrap(), Some(CudaVersion::new(12, 2)));
    assert!(
        matches!(jit.verdict, Verdict::Jit { .. }),
        "{}",
        jit.message
    );
    assert!(matches!(
        verdict(&r, "sm_52"),
        Verdict::NoKernelImage { .. }
    ));
}

#[test]
fn print_reports() {
    let Some(files) = std::env::var_os("GPULIBS_INSPECT_FILES") else {
        eprintln!("skipped: set GPULIBS_INSPECT_FILES to print reports");
        return;
    };
    for f in std::env::split_paths(&files) {
        let t = Instant::now();
        let opts = InspectOptions {
            gpus: gpus(),
            driver: Some(CudaVersion::new(13, 0)),
            check_payloads: std::env::var_os("GPULIBS_CHECK_PAYLOADS").is_some(),
        };
        let r = inspect_file(&f, &opts).expect("inspect");
        eprintln!("inspected in {:.3} s", t.elapsed().as_secs_f64());
        eprint!("{}", r.render_text());
        eprintln!("{}", serde_json::to_string(&r.sass_targets).unwrap());
        eprintln!("{}", serde_json::to_string(&r.ptx_targets).unwrap());
    }
}
