//! `gpulibs detect` and the command-line conventions, run as a user runs them: the real binary,
//! the real dlopen path, and the fake NVML library at the hardware boundary.

use std::process::Command;

use assert_cmd::prelude::*;
use gpulibs_testkit::fake_nvml;
use predicates::prelude::*;

/// `gpulibs` with the fake NVML answering from `scenario`, and a clean CUDA environment.
fn gpulibs_on(scenario: &str) -> Command {
    let mut cmd = Command::cargo_bin("gpulibs").expect("binary");
    cmd.env("GPULIBS_NVML_LIBRARY", fake_nvml::library())
        .env("GPULIBS_FAKE_NVML", fake_nvml::scenario(scenario))
        .env_remove("CUDA_VISIBLE_DEVICES")
        .env_remove("CUDA_DEVICE_ORDER")
        .env_remove("NO_COLOR");
    cmd
}

#[test]
fn help_teaches_exit_codes_and_environment() {
    Command::cargo_bin("gpulibs")
        .unwrap()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes:"))
        .stdout(predicate::str::contains("CUDA_VISIBLE_DEVICES"))
        .stdout(predicate::str::contains("NO_COLOR"))
        .stdout(predicate::str::contains("detect"))
        .stdout(predicate::str::contains("inspect"));
}

#[test]
fn seed_machine_quadro_m2200_is_a_maxwell_sm_52() {
    gpulibs_on("quadro-m2200")
        .arg("detect")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Quadro M2200"))
        .stdout(predicate::str::is_match(r"5\.2\s+sm_52\s+Maxwell").unwrap());
}

#[test]
fn h100_json_has_the_documented_fields() {
    let output = gpulibs_on("h100")
        .args(["detect", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["source"], "nvml");
    assert_eq!(json["driver"]["version"], "580.159.04");
    assert_eq!(json["driver"]["cuda"], "13.0");
    let gpu = &json["gpus"][0];
    assert_eq!(gpu["compute_capability"], "9.0");
    assert_eq!(gpu["sm"], "sm_90");
    assert_eq!(gpu["family"], "hopper");
    assert_eq!(gpu["memory_total_bytes"], 85_520_809_984u64);
    assert_eq!(gpu["index"], 0);
}

#[test]
fn no_gpu_exits_3_and_says_so() {
    gpulibs_on("no-gpu")
        .arg("detect")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("NVML reports no NVIDIA GPU"));
}

#[test]
fn empty_cuda_visible_devices_hides_the_gpu_and_names_the_variable() {
    gpulibs_on("h100")
        .env("CUDA_VISIBLE_DEVICES", "")
        .args(["detect", "--json"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("\"all_gpus_hidden\""))
        .stdout(predicate::str::contains("CUDA_VISIBLE_DEVICES"));
}

#[test]
fn missing_nvml_names_the_library_and_the_fix() {
    Command::cargo_bin("gpulibs")
        .unwrap()
        .env("GPULIBS_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1")
        .args(["detect", "--no-smi"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("/nonexistent/libnvidia-ml.so.1"))
        .stdout(predicate::str::contains("hint:"));
}

#[test]
fn driver_library_mismatch_is_explained() {
    gpulibs_on("driver-mismatch")
        .args(["detect", "--no-smi"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("mismatch"))
        .stdout(predicate::str::contains("reboot"));
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    // Tests run without a terminal: `auto` must print no escape codes.
    gpulibs_on("h100")
        .arg("detect")
        .assert()
        .stdout(predicate::str::contains("\x1b[").not());
    gpulibs_on("h100")
        .args(["detect", "--color", "always"])
        .assert()
        .stdout(predicate::str::contains("\x1b["));
    // --json is for machines: never coloured.
    gpulibs_on("h100")
        .args(["detect", "--json", "--color", "always"])
        .assert()
        .stdout(predicate::str::contains("\x1b[").not());
}

#[test]
fn usage_errors_exit_2() {
    Command::cargo_bin("gpulibs")
        .unwrap()
        .arg("detcet")
        .assert()
        .code(2);
}

#[test]
fn inspect_errors_name_the_file_and_give_a_hint() {
    Command::cargo_bin("gpulibs")
        .unwrap()
        .args(["inspect", "--gpu", "9.0", "/nonexistent/libfoo.so"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("/nonexistent/libfoo.so"))
        .stderr(predicate::str::contains("hint:"));
    Command::cargo_bin("gpulibs")
        .unwrap()
        .args([
            "inspect",
            "--json",
            "--gpu",
            "9.0",
            "/nonexistent/libfoo.so",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("\"hint\""));
}

#[test]
fn inspect_rejects_a_bad_gpu_with_the_accepted_spellings() {
    Command::cargo_bin("gpulibs")
        .unwrap()
        .args(["inspect", "--gpu", "hopper", "/bin/sh"])
        .assert()
        // A value that does not parse is a wrong command line: exit 2, as `--help` says.
        .code(2)
        .stderr(predicate::str::contains(
            "`hopper` is not a compute capability",
        ))
        .stderr(predicate::str::contains("sm_90"));
}
