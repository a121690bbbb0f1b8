//! `gpulibs verify` and `ORT_DYLIB_PATH` (issue 11, item 6): without `--ort` it loads the library
//! the variable names, as the `ort` crate's own convention has it, and says so; with `--ort` it
//! says plainly that it ignored the variable. The real binary, the real CPU ONNX Runtime.

#[path = "../../gpulibs-verify/tests/common/mod.rs"]
mod ort_wheels;

use std::process::Command;

use assert_cmd::prelude::*;

/// The binary with no active install anywhere (an empty `GPULIBS_HOME`) and no GPU.
fn gpulibs(home: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("gpulibs").unwrap();
    cmd.env_remove("CUDA_VISIBLE_DEVICES")
        .env_remove("ORT_DYLIB_PATH")
        .env("GPULIBS_HOME", home)
        .env("GPULIBS_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
    cmd
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn without_ort_the_library_named_by_ort_dylib_path_is_verified_and_named() {
    let home = tempfile::tempdir().unwrap();
    let lib = ort_wheels::cpu_ort();
    let out = gpulibs(home.path())
        .args(["verify", "--json", "--device", "cpu", "--runs", "1"])
        .env("ORT_DYLIB_PATH", &lib)
        .output()
        .unwrap();
    let r = json(&out);
    assert_eq!(out.status.code(), Some(4), "{r:#}");
    assert_eq!(r["outcome"]["status"], "cpu_only");
    assert_eq!(r["ort_library"], lib.display().to_string());
    let from = r["ort_library_source"].as_str().unwrap();
    assert!(from.starts_with("ORT_DYLIB_PATH="), "{from}");
    assert!(from.contains(&lib.display().to_string()), "{from}");

    // The human output says it too.
    gpulibs(home.path())
        .args(["verify", "--device", "cpu", "--runs", "1"])
        .env("ORT_DYLIB_PATH", &lib)
        .assert()
        .code(4)
        .stdout(predicates::str::contains("ort from:  ORT_DYLIB_PATH="));
}

#[test]
fn with_ort_a_set_ort_dylib_path_is_ignored_and_the_report_says_so() {
    let home = tempfile::tempdir().unwrap();
    let out = gpulibs(home.path())
        .args([
            "verify", "--json", "--device", "cpu", "--runs", "1", "--ort",
        ])
        .arg(ort_wheels::cpu_ort())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    let r = json(&out);
    assert_eq!(out.status.code(), Some(4), "{r:#}");
    let from = r["ort_library_source"].as_str().unwrap();
    assert_eq!(
        from,
        "--ort (ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so ignored: --ort comes first)"
    );
}

#[test]
fn an_ort_dylib_path_that_is_not_there_fails_naming_the_variable() {
    let home = tempfile::tempdir().unwrap();
    let out = gpulibs(home.path())
        .args(["verify", "--json", "--device", "cpu", "--runs", "1"])
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    let r = json(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["outcome"]["status"], "failed");
    assert_eq!(r["outcome"]["stage"], "load");
    let hint = r["outcome"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so") && hint.contains("unset it"),
        "{hint}"
    );
}

#[test]
fn an_empty_ort_dylib_path_counts_as_unset() {
    let home = tempfile::tempdir().unwrap();
    // No install and no --ort: the active-install error, not a load of "".
    gpulibs(home.path())
        .args(["verify", "--device", "cpu", "--runs", "1"])
        .env("ORT_DYLIB_PATH", "")
        .assert()
        .failure()
        .stderr(predicates::str::contains("gpulibs install"));
}
