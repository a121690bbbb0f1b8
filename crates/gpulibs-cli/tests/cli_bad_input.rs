//! Bad input and interruptions, as a user meets them with the real binary: a shape too large
//! for memory, a FIFO where a file belongs, SIGINT/SIGTERM in the middle of a run. Each ends
//! with the documented exit code and a clear message, and leaves nothing in the temporary
//! directory.

#[path = "../../gpulibs-verify/tests/common/mod.rs"]
mod ort_wheels;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use gpulibs_testkit::tree;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../gpulibs-verify/tests/fixtures")
        .join(name)
}

/// `gpulibs` in a cleared environment whose temporary directory is `tmp`.
fn gpulibs(tmp: &Path) -> Command {
    let mut cmd = Command::cargo_bin("gpulibs").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", tmp.join("home"))
        .env("GPULIBS_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1")
        .env("TMPDIR", tmp.join("tmp"));
    std::fs::create_dir_all(tmp.join("home")).unwrap();
    std::fs::create_dir_all(tmp.join("tmp")).unwrap();
    cmd
}

/// Runs `cmd`, failing the test (rather than hanging it) after 60 s.
fn output_within_a_minute(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{cmd:?} did not end within 60 s (it blocks)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn left_in(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_keys()
        .map(|p| p.display().to_string())
        .collect()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn a_shape_over_the_input_budget_is_refused_with_the_json_report() {
    let dir = tempfile::tempdir().unwrap();
    // x float32 [batch, time, 8] with time = 10^10: 320 GB, which used to abort the process
    // ("memory allocation of ... bytes failed", exit 134, no report, its temp dir left).
    let out = output_within_a_minute(
        gpulibs(dir.path())
            .args([
                "--json", "verify", "--device", "cpu", "--runs", "1", "--ort",
            ])
            .arg(ort_wheels::cpu_ort())
            .arg("--model")
            .arg(fixture("dynamic.onnx"))
            .args(["--shape", "time=10000000000"]),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"]["status"], "failed", "{json}");
    assert_eq!(json["outcome"]["stage"], "request", "{json}");
    let reason = json["outcome"]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        "input `x` (float32 [1x10000000000x8]) would take 320000000000 bytes (298.0 GiB), over \
         the input budget of 4294967296 bytes (4.0 GiB)"
    );
    assert!(
        json["outcome"]["hint"]
            .as_str()
            .unwrap()
            .contains("--max-input-bytes"),
        "{json}"
    );
    assert_eq!(left_in(&dir.path().join("tmp")), Vec::<String>::new());

    // The budget is the user's to set.
    let out = output_within_a_minute(
        gpulibs(dir.path())
            .args([
                "--json", "verify", "--device", "cpu", "--runs", "1", "--ort",
            ])
            .arg(ort_wheels::cpu_ort())
            .arg("--model")
            .arg(fixture("dynamic.onnx"))
            .args(["--shape", "time=4", "--max-input-bytes", "100"]),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("over the input budget of 100 bytes"),
        "{out:?}"
    );
}

#[test]
fn a_fifo_is_refused_by_verify_and_inspect_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.onnx");
    mkfifo(&fifo);
    let out = output_within_a_minute(
        gpulibs(dir.path())
            .args(["verify", "--device", "cpu", "--ort"])
            .arg(ort_wheels::cpu_ort())
            .arg("--model")
            .arg(&fifo),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("is a FIFO (named pipe), not a regular file"),
        "{stdout}"
    );

    let out = output_within_a_minute(
        gpulibs(dir.path())
            .args(["inspect", "--gpu", "9.0"])
            .arg(&fifo),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is a FIFO (named pipe), not a regular file"),
        "{stderr}"
    );

    // As the ONNX Runtime library too.
    let out = output_within_a_minute(
        gpulibs(dir.path())
            .args(["verify", "--device", "cpu", "--ort"])
            .arg(&fifo),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is a FIFO"),
        "{out:?}"
    );
    assert_eq!(left_in(&dir.path().join("tmp")), Vec::<String>::new());
}

/// Starts a long `gpulibs verify`, waits until its profiler directory exists, sends `signal`
/// and returns the exit code and what was left in the temporary directory.
fn interrupt_verify(signal: i32) -> (Option<i32>, Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    let mut child = gpulibs(dir.path())
        .args(["verify", "--device", "cpu", "--runs", "100000000", "--ort"])
        .arg(ort_wheels::cpu_ort())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !left_in(&tmp).iter().any(|p| p.contains("gpulibs-verify-")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "verify made no profiler directory in 60 s: {:?}",
            left_in(&tmp)
        );
        assert!(child.try_wait().unwrap().is_none(), "verify ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // into the runs
                                                    // SAFETY: kill(2) on the child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("verify did not end within 30 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        left_in(&tmp),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sigterm_during_verify_exits_143_and_leaves_nothing() {
    let (code, left, stderr) = interrupt_verify(libc::SIGTERM);
    assert_eq!(code, Some(143), "{stderr}");
    assert_eq!(left, Vec::<String>::new());
    assert!(stderr.contains("interrupted (SIGTERM)"), "{stderr}");
}

#[test]
fn sigint_during_verify_exits_130_and_leaves_nothing() {
    let (code, left, stderr) = interrupt_verify(libc::SIGINT);
    assert_eq!(code, Some(130), "{stderr}");
    assert_eq!(left, Vec::<String>::new());
}

/// SIGKILL leaves the private temporary directory behind (nothing can catch it); the next run
/// removes it, and leaves alone one whose process is alive and anything not named like it.
#[test]
fn a_killed_run_s_private_temporary_directory_goes_with_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    let mut child = gpulibs(dir.path())
        .args(["verify", "--device", "cpu", "--runs", "100000000", "--ort"])
        .arg(ort_wheels::cpu_ort())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while left_in(&tmp).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no private directory"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = format!("gpulibs-{}-", child.id());
    assert!(
        left_in(&tmp).iter().any(|p| p.starts_with(&killed)),
        "SIGKILL left nothing to sweep: {:?}",
        left_in(&tmp)
    );
    // Alive: this test's own pid. Not ours to judge: a name without a pid.
    let alive = tmp.join(format!("gpulibs-{}-alive", std::process::id()));
    let other = tmp.join("gpulibs-notapid");
    std::fs::create_dir_all(&alive).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let out = gpulibs(dir.path())
        .args(["inspect", "/nonexistent/lib.so"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        left_in(&tmp),
        vec![
            format!("gpulibs-{}-alive", std::process::id()),
            "gpulibs-notapid".to_string()
        ]
    );
}
