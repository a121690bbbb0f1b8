//! `gpulibs verify`, `recommend` and `package` as a user runs them: the real binary, real ONNX
//! Runtime libraries from the official wheels (fetched once by pip, shared with the verify
//! crate's tests), real ELF libraries built with `cc`.

#[path = "../../gpulibs-verify/tests/common/mod.rs"]
mod ort_wheels;
mod world;

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use gpulibs_testkit::tree;
use predicates::prelude::*;

fn verify_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../gpulibs-verify/tests/fixtures")
}

fn gpulibs() -> Command {
    let mut cmd = Command::cargo_bin("gpulibs").unwrap();
    cmd.env_remove("CUDA_VISIBLE_DEVICES")
        .env("GPULIBS_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
    cmd
}

#[test]
fn verify_on_the_cpu_exits_4_and_says_so() {
    gpulibs()
        .args(["verify", "--device", "cpu", "--runs", "2", "--ort"])
        .arg(ort_wheels::cpu_ort())
        .assert()
        .code(4)
        .stdout(predicate::str::contains("CPU only"))
        .stdout(predicate::str::contains("CPUExecutionProvider"));
}

/// The whole text of a CPU verify of the built-in probe model: exit 4 (CPU only, as asked),
/// the outcome and reason first, then the runtime, the device and where every node ran. The
/// runtime's path and version and the times are filtered.
#[test]
fn verify_on_the_cpu_whole_output() {
    let ort = ort_wheels::cpu_ort();
    let out = gpulibs()
        .args(["verify", "--device", "cpu", "--runs", "2", "--ort"])
        .arg(&ort)
        .output()
        .unwrap();
    let text = world::screen(&out);
    let mut settings = insta::Settings::clone_current();
    let path = world::regex_escape(&ort.display().to_string());
    settings.add_filter(&path, "[ORT]");
    settings.add_filter(r"(ort: +)\d+\.\d+\.\d+", "${1}[VERSION]");
    settings.add_filter(r"\b\d+(\.\d+)? ms\b", "[TIME]");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("verify_cpu_probe", text));
}

#[test]
fn a_model_that_rejects_its_inputs_exits_2_and_names_the_option() {
    gpulibs()
        .args(["verify", "--device", "cpu", "--runs", "1", "--ort"])
        .arg(ort_wheels::cpu_ort())
        .arg("--model")
        .arg(verify_fixtures().join("rejects.onnx"))
        .assert()
        .code(2)
        .stdout(predicate::str::contains("--shape"));
}

/// What `gpulibs verify` left in a fresh home and temporary directory, run with `extra`
/// arguments and ONNX Runtime's telemetry variable as given (`None`: unset).
fn left_behind(extra: &[&str], telemetry: Option<&str>, code: i32) -> Vec<String> {
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // A cleared environment: ONNX Runtime also skips telemetry when it sees a CI variable (`CI`,
    // `GITHUB_ACTIONS`, ...), which would make the first test pass without gpulibs' opt-out
    // and the second fail under CI.
    let mut cmd = Command::cargo_bin("gpulibs").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GPULIBS_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1")
        .env("HOME", home.path())
        .env("TMPDIR", tmp.path());
    if let Some(value) = telemetry {
        cmd.env("ORT_DISABLE_TELEMETRY", value);
    }
    // The GPU wheel's 1.31.1 on the CPU: the first release that keeps telemetry files.
    cmd.args(["verify", "--device", "cpu", "--runs", "2", "--ort"])
        .arg(ort_wheels::gpu_ort())
        .args(extra)
        .assert()
        .code(code);
    [home.path(), tmp.path()]
        .into_iter()
        .flat_map(|dir| tree(dir).into_keys())
        .map(|path| path.display().to_string())
        .collect()
}

#[test]
fn verify_leaves_nothing_in_home_or_tmpdir_passing_or_failing() {
    // ONNX Runtime writes a profile per session, also when a rejected input ends it early.
    let rejects = verify_fixtures().join("rejects.onnx");
    for (extra, code) in [(vec![], 4), (vec!["--model", rejects.to_str().unwrap()], 2)] {
        let left = left_behind(&extra, None, code);
        assert!(left.is_empty(), "verify {extra:?} left {left:?}");
    }
}

#[test]
fn a_user_who_allows_ort_telemetry_keeps_that_choice() {
    // The check above can see ONNX Runtime's files: with telemetry allowed, they appear.
    let left = left_behind(&[], Some("0"), 4);
    assert!(
        left.iter().any(|p| p.contains("DeveloperTools")),
        "expected ONNX Runtime's telemetry store, found {left:?}"
    );
}

#[test]
fn an_unwritable_temporary_directory_is_named_with_the_fix() {
    gpulibs()
        .env("TMPDIR", "/nonexistent/tmp")
        .args(["verify", "--device", "cpu", "--ort"])
        .arg(ort_wheels::cpu_ort())
        .assert()
        .code(2)
        .stdout(predicate::str::contains("/nonexistent/tmp"))
        .stdout(predicate::str::contains("TMPDIR"));
}

#[test]
fn cuda_without_its_libraries_fails_with_the_loader_s_words_never_passes() {
    let output = gpulibs()
        .args(["verify", "--json", "--device", "cuda:0", "--ort"])
        .arg(ort_wheels::gpu_ort())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["outcome"]["status"], "failed", "{json}");
    let text = json.to_string();
    assert!(text.contains("libcublasLt.so.13"), "{text}");
    assert!(!text.contains("verified_gpu"));
}

#[test]
fn recommend_picks_the_model_that_fits_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        verify_fixtures().join("dynamic.onnx"),
        dir.path().join("small.onnx"),
    )
    .unwrap();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        "schema_version = 1\n\n\
         [[model]]\nname = \"big-gpu\"\nquality_rank = 1\ndevice = \"gpu\"\nvram_mib = 6000\nram_mib = 100\nfiles = [\"small.onnx\"]\n\n\
         [[model]]\nname = \"small-cpu\"\nquality_rank = 2\ndevice = \"cpu\"\nvram_mib = 0\nram_mib = 100\nfiles = [\"small.onnx\"]\n",
    )
    .unwrap();
    gpulibs()
        .env("GPULIBS_HOME", dir.path().join("home"))
        .args(["recommend", "--catalog"])
        .arg(&catalog)
        .arg("--ort")
        .arg(ort_wheels::cpu_ort())
        .assert()
        .code(0)
        .stdout(predicate::str::contains("recommended small-cpu"))
        .stdout(predicate::str::contains("big-gpu: "));
}

#[test]
fn package_per_arch_writes_measured_coverage_and_refuses_a_used_directory() {
    let dir = tempfile::tempdir().unwrap();
    let build = dir.path().join("build");
    std::fs::create_dir_all(&build).unwrap();
    gpulibs_testkit::vendor_cuda_library(&build);
    let out = dir.path().join("release");
    gpulibs()
        .args([
            "package",
            "--release",
            "1.0.0",
            "--per-arch",
            "sm_86,sm_90",
            "--zstd-level",
            "3",
            "--cuda",
            "12.9",
            "--from",
        ])
        .arg(&build)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("manifest"));
    let manifest = std::fs::read_to_string(out.join("manifest.toml")).unwrap();
    // Coverage is what inspect measured in each thinned file, never a typed range.
    assert!(manifest.contains("sass = [\"sm_86\"]"), "{manifest}");
    assert!(manifest.contains("sass = [\"sm_90a\"]"), "{manifest}");
    gpulibs()
        .args(["package", "--release", "1.0.1", "--from"])
        .arg(&build)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not empty"));
}
