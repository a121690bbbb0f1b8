//! The documented JSON of `detect` (`docs/detect-json.md`), `inspect` (`docs/inspect-json.md`),
//! `verify` (`docs/verify.md`), `version`, `completions` and the error object (`docs/output.md`,
//! `docs/json.md`): the real
//! binary's `--json` output decoded into structs that refuse unknown fields, so a field the docs
//! do not list fails here. `cli_json.rs` does the same for the other commands.
//!
//! GPUs come from the test-only NVML library (`gpulibs-fake-nvml`), kernels from an ELF library
//! built with `cc`, ONNX Runtime from the official wheels.

#[path = "../../gpulibs-verify/tests/common/mod.rs"]
mod ort_wheels;

use std::collections::BTreeMap;
use std::process::Command;

use assert_cmd::prelude::*;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// The binary with no GPU but the scenario's (`None`: no NVML at all).
fn gpulibs(scenario: Option<&str>) -> Command {
    let mut cmd = Command::cargo_bin("gpulibs").unwrap();
    cmd.env_remove("CUDA_VISIBLE_DEVICES")
        .env_remove("CUDA_DEVICE_ORDER");
    match scenario {
        Some(s) => cmd
            .env(
                "GPULIBS_NVML_LIBRARY",
                gpulibs_testkit::fake_nvml::library(),
            )
            .env("GPULIBS_FAKE_NVML", gpulibs_testkit::fake_nvml::scenario(s)),
        None => cmd.env("GPULIBS_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"),
    };
    cmd
}

/// Runs `cmd`, checks its exit code and decodes its stdout as `T`.
fn decode<T: DeserializeOwned>(cmd: &mut Command, code: i32) -> T {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

// ---------------------------------------------------------------------------------------------
// detect

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DetectJson {
    schema_version: u32,
    source: String,
    driver: Option<DriverJson>,
    gpus: Vec<GpuJson>,
    hidden: Vec<HiddenJson>,
    visibility: VisibilityJson,
    problems: Vec<ProblemJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DriverJson {
    version: Option<String>,
    cuda: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct GpuJson {
    index: u32,
    nvml_index: u32,
    name: Option<String>,
    uuid: Option<String>,
    pci_bus_id: Option<String>,
    compute_capability: Option<String>,
    sm: Option<String>,
    family: Option<String>,
    memory_total_bytes: Option<u64>,
    memory_free_bytes: Option<u64>,
    mig: Option<MigJson>,
    mig_device: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct MigJson {
    current: bool,
    pending: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct HiddenJson {
    nvml_index: u32,
    name: Option<String>,
    uuid: Option<String>,
    pci_bus_id: Option<String>,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct VisibilityJson {
    cuda_visible_devices: Option<String>,
    cuda_device_order: String,
    order_exact: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ProblemJson {
    code: String,
    severity: String,
    message: String,
    hint: Option<String>,
    nvml_index: Option<u32>,
}

/// Two GPUs with one hidden by `CUDA_VISIBLE_DEVICES`, a MIG GPU, and a machine whose NVML
/// library and kernel module disagree: every documented part of the document appears.
#[test]
fn detect_json_is_documented() {
    let two: DetectJson = decode(
        gpulibs(Some("two-gpu-mixed"))
            .env("CUDA_VISIBLE_DEVICES", "1")
            .args(["detect", "--json", "--no-smi"]),
        0,
    );
    assert_eq!(two.schema_version, 1);
    assert_eq!(two.source, "nvml");
    assert_eq!(two.gpus.len(), 1);
    assert_eq!(two.gpus[0].index, 0);
    assert_eq!(two.hidden.len(), 1, "{two:?}");
    assert_eq!(two.visibility.cuda_visible_devices.as_deref(), Some("1"));
    let driver = two.driver.expect("NVML answered");
    assert!(driver.version.is_some() && driver.cuda.is_some());

    let mig: DetectJson = decode(gpulibs(Some("mig-a100")).args(["detect", "--json"]), 0);
    assert!(mig.gpus.iter().any(|g| g.mig.is_some()), "{mig:?}");

    let none: DetectJson = decode(
        gpulibs(Some("driver-mismatch")).args(["detect", "--json", "--no-smi"]),
        3,
    );
    assert!(none.gpus.is_empty());
    assert!(!none.problems.is_empty(), "{none:?}");
}

// ---------------------------------------------------------------------------------------------
// inspect

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct InspectJson {
    schema_version: u32,
    gpus: Vec<String>,
    driver_cuda: Option<String>,
    note: Option<String>,
    files: Vec<InspectedFile>,
    failures: Vec<FailureJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct InspectedFile {
    path: String,
    size: u64,
    format: String,
    containers: u64,
    entries: u64,
    sections: Vec<SectionJson>,
    kernels: Vec<KernelJson>,
    sass_targets: Vec<String>,
    ptx_targets: Vec<String>,
    warnings: Vec<String>,
    verdicts: Vec<VerdictJson>,
    dependencies: Option<DependenciesJson>,
    dependency_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SectionJson {
    name: String,
    containers: u64,
    bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct KernelJson {
    target: String,
    kind: String,
    arch: Option<u32>,
    ptx_isa: Option<String>,
    entries: u64,
    bytes: u64,
    uncompressed_bytes: u64,
    compression: Vec<String>,
}

/// A verdict; the fields after `message` belong to some verdicts only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct VerdictJson {
    gpu: String,
    compute_capability: String,
    driver_cuda: Option<String>,
    max_ptx_isa: Option<String>,
    verdict: String,
    tally: BTreeMap<String, Value>,
    loaded: Vec<LoadedJson>,
    message: String,
    #[serde(default)]
    containers: Option<u64>,
    #[serde(default)]
    needed_targets: Option<Value>,
    #[serde(default)]
    ptx_needs_newer_driver: Option<Value>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default)]
    needs_cuda: Option<String>,
    #[serde(default)]
    needs_driver: Option<String>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct LoadedJson {
    target: String,
    mode: String,
    containers: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DependenciesJson {
    file: String,
    dynamic: Value,
    dependencies: Vec<Value>,
    truncated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FailureJson {
    path: String,
    error: String,
}

/// The tally's documented counters; `unreadable_compression` and `ptx_too_new_isa` appear
/// only when they have something to say.
const TALLY: [&str; 11] = [
    "native",
    "jit",
    "failing",
    "failing_ptx_too_new",
    "failing_compression",
    "unreadable_compression",
    "ptx_too_new_isa",
    "skipped_arch_specific",
    "skipped_newer_only",
    "skipped_per_target_variant",
    "skipped_other_architectures",
];

/// A real ELF library with SASS for sm_75 and sm_86 and PTX: a native verdict, a JIT one, a
/// failing one with what it needs, and a file that cannot be read, in one document.
#[test]
fn inspect_json_is_documented() {
    use gpulibs_testkit::{build_so, container, Entry, Place};
    let dir = tempfile::tempdir().unwrap();
    let kernels = [Entry::sass(75), Entry::sass(86), Entry::ptx(86, (8, 1))];
    let lib = build_so(
        dir.path(),
        "libvendor_cuda.so",
        &[(Place::Section(".nv_fatbin"), container(&kernels))],
    );
    let doc: InspectJson = decode(
        gpulibs(None)
            .args(["inspect", "--json", "--gpu", "8.6,9.0,7.0"])
            .args(["--driver-cuda", "12.2"])
            .arg(&lib)
            .arg(dir.path().join("missing.so")),
        1,
    );
    assert_eq!(doc.schema_version, 1);
    assert_eq!(doc.gpus, ["sm_86", "sm_90", "sm_70"]);
    assert_eq!(doc.driver_cuda.as_deref(), Some("12.2"));
    assert_eq!(doc.failures.len(), 1, "{doc:?}");
    let file = &doc.files[0];
    assert_eq!(file.format, "elf");
    assert_eq!(file.sass_targets, ["sm_75", "sm_86"]);
    assert!(file.dependencies.is_some(), "{file:?}");
    let verdicts: Vec<&str> = file.verdicts.iter().map(|v| v.verdict.as_str()).collect();
    assert_eq!(verdicts, ["native", "jit", "no_kernel_image"]);
    assert!(file.verdicts[2].needed_targets.is_some());
    for v in &file.verdicts {
        for key in v.tally.keys() {
            assert!(TALLY.contains(&key.as_str()), "undocumented tally {key}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// verify

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct VerifyJson {
    schema_version: u32,
    outcome: OutcomeJson,
    ort_version: Option<String>,
    ort_library: String,
    ort_library_source: Option<String>,
    provider_library: Option<String>,
    device: DeviceJson,
    kernel_verdict: Option<VerdictJson>,
    missing_libraries: Vec<MissingJson>,
    preloaded: Vec<PreloadedJson>,
    models: Vec<ModelJson>,
    total_ms: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct OutcomeJson {
    status: String,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    hint: Option<String>,
    #[serde(default)]
    cpu_nodes: Option<u64>,
    #[serde(default)]
    warning: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DeviceJson {
    requested: String,
    used: Option<String>,
    gpu: Option<VerifyGpuJson>,
    detection_problems: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct VerifyGpuJson {
    index: u32,
    name: Option<String>,
    compute_capability: String,
    driver_cuda: Option<String>,
    driver_version: Option<String>,
    memory_total_bytes: Option<u64>,
    memory_free_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct MissingJson {
    name: String,
    required_by: String,
    kind: String,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PreloadedJson {
    name: String,
    path: Option<String>,
    required: bool,
    status: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ModelJson {
    path: String,
    inputs: Vec<InputJson>,
    session_create_ms: Option<f64>,
    first_run_ms: Option<f64>,
    median_run_ms: Option<f64>,
    runs: u32,
    cpu_run_ms: Option<f64>,
    peak_vram_bytes: Option<u64>,
    nodes_by_provider: BTreeMap<String, u64>,
    placement: Option<Value>,
    nodes: Vec<NodeJson>,
    ort_log: Vec<String>,
    max_rel_error: Option<f64>,
    threshold: Option<f64>,
    outputs_compared: Vec<Value>,
    notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct InputJson {
    name: String,
    dtype: String,
    declared_shape: Value,
    shape: Vec<i64>,
    data: String,
    value: Option<Value>,
    defaulted_dims: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct NodeJson {
    name: String,
    op_type: String,
    provider: String,
}

/// The probe model on the CPU (exit 4, every node named), and the CUDA provider on a scripted
/// H100 with no CUDA libraries (exit 1 at the preload, with the GPU, the kernel verdict and
/// what is missing).
#[test]
fn verify_json_is_documented() {
    let cpu: VerifyJson = decode(
        gpulibs(None)
            .args([
                "verify", "--json", "--device", "cpu", "--runs", "1", "--ort",
            ])
            .arg(ort_wheels::cpu_ort()),
        4,
    );
    assert_eq!(cpu.schema_version, 2);
    assert_eq!(cpu.outcome.status, "cpu_only");
    assert_eq!(cpu.models.len(), 1);
    assert!(!cpu.models[0].nodes.is_empty());

    let gpu: VerifyJson = decode(
        gpulibs(Some("h100"))
            .args(["verify", "--json", "--device", "cuda:0", "--ort"])
            .arg(ort_wheels::gpu_ort()),
        1,
    );
    assert_eq!(gpu.outcome.stage.as_deref(), Some("preload"), "{gpu:?}");
    assert_eq!(
        gpu.device
            .gpu
            .as_ref()
            .map(|g| g.compute_capability.as_str()),
        Some("9.0")
    );
    assert!(gpu.kernel_verdict.is_some());
    assert!(!gpu.missing_libraries.is_empty());
    assert!(!gpu.preloaded.is_empty());
}

// ---------------------------------------------------------------------------------------------
// version and errors

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct VersionJson {
    schema_version: u32,
    version: String,
    commit: Option<String>,
    commit_date: Option<String>,
    target: String,
    profile: String,
    features: Vec<String>,
    rustc: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletionsJson {
    schema_version: u32,
    shell: String,
    script: String,
}

/// `completions --json` is one object holding the script; `-q` still prints the script (it is
/// what the user asked for, not chatter).
#[test]
fn completions_json_is_documented() {
    let c: CompletionsJson = decode(gpulibs(None).args(["completions", "zsh", "--json"]), 0);
    assert_eq!((c.schema_version, c.shell.as_str()), (1, "zsh"));
    let plain = gpulibs(None).args(["completions", "zsh"]).output().unwrap();
    assert_eq!(c.script.as_bytes(), plain.stdout.as_slice());
    assert!(
        c.script.contains("#compdef gpulibs"),
        "{}",
        &c.script[..200]
    );
    let quiet = gpulibs(None)
        .args(["-q", "completions", "zsh"])
        .output()
        .unwrap();
    assert_eq!(quiet.stdout, plain.stdout);
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorJson {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorBody {
    message: String,
    causes: Vec<String>,
    hint: Option<String>,
    hints: Vec<String>,
    exit_code: i32,
}

#[test]
fn version_json_is_documented() {
    let v: VersionJson = decode(gpulibs(None).args(["version", "--json"]), 0);
    assert_eq!(v.schema_version, 1);
    assert_eq!(v.version, env!("CARGO_PKG_VERSION"));
    assert!(v.target.contains("linux"), "{v:?}");
}

/// A failure in a command, and a command line clap refuses: the same object, its exit code
/// inside and outside.
#[test]
fn the_error_object_is_documented() {
    let failed: ErrorJson = decode(
        gpulibs(None).args(["inspect", "--json", "/nonexistent/lib.so"]),
        1,
    );
    let e = failed.error;
    assert_eq!(e.exit_code, 1);
    assert_eq!(e.message, "/nonexistent/lib.so: cannot open the file");
    assert_eq!(e.causes, ["No such file or directory (os error 2)"]);
    assert_eq!(e.hint.as_ref(), e.hints.first());

    let usage: ErrorJson = decode(gpulibs(None).args(["--json", "plan", "--bogus"]), 2);
    assert_eq!(usage.error.exit_code, 2);
    assert!(usage.error.causes.is_empty());
    assert!(usage.error.message.contains("--bogus"), "{usage:?}");
}
