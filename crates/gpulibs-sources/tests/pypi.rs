//! pip's installation report, and resolution through pip, against a recorded real report.
//!
//! `fixtures/pip-report-1.31.1.json` is what `pip install --dry-run --ignore-installed --no-deps
//! --report ...` wrote for the pins of the embedded `ort-1.31.1-cuda13` variant plus the CPU
//! wheel. The index host in the URLs is replaced by `index.invalid` (gpulibs never names an
//! index) and pip's `environment` section (the recording machine's) is dropped; nothing else is
//! changed.

use gpulibs_hint::Hint;
use std::path::PathBuf;

use gpulibs_sources::pypi::{classify_failure, normalize_name};
use gpulibs_sources::{parse_report, Pip, PipError, PipResolver, WheelTarget};

const REPORT: &str = include_str!("fixtures/pip-report-1.31.1.json");

#[test]
fn recorded_report_parses_into_wheels() {
    let wheels = parse_report(REPORT).unwrap();
    assert_eq!(wheels.len(), 9);
    let ort = &wheels[0];
    assert_eq!(ort.name, "onnxruntime-gpu");
    assert_eq!(ort.version, "1.31.1");
    assert_eq!(
        ort.filename,
        "onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl"
    );
    assert!(ort.url.starts_with("https://index.invalid/"));
    assert!(ort.url.ends_with(&ort.filename));
    assert_eq!(
        ort.sha256.as_deref(),
        Some("e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6")
    );
    assert_eq!(ort.size, None, "pip's report carries no sizes");
    assert!(ort
        .requires_dist
        .iter()
        .any(|r| r.starts_with("nvidia-cudnn-cu13~=9.0") && r.contains("extra == \"cudnn\"")));
    for w in &wheels {
        let sha = w.sha256.as_deref().unwrap();
        assert_eq!(sha.len(), 64, "{}", w.filename);
        assert!(w.filename.ends_with(".whl"));
        assert!(w
            .filename
            .starts_with(&normalize_name(&w.name).replace('-', "_")));
    }
    let cudnn = wheels
        .iter()
        .find(|w| w.name == "nvidia-cudnn-cu13")
        .unwrap();
    assert_eq!(cudnn.requires_dist, ["nvidia-cublas"]);
}

/// A fake `python3`: a shell script that records its arguments and answers like pip.
fn fake_python(dir: &std::path::Path, body: &str) -> PathBuf {
    let path = dir.join("python3");
    // Written by a child process, not by this one: a file this process holds open for writing
    // is inherited by whatever another test thread forks meanwhile, and exec'ing it then fails
    // with ETXTBSY ("Text file busy") until that child has exec'd.
    let status = std::process::Command::new("sh")
        .args([
            "-c",
            "printf '%s\\n' \"$1\" > \"$2\" && chmod 755 \"$2\"",
            "sh",
        ])
        .arg(format!("#!/bin/sh\n{body}"))
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

#[test]
fn pip_runner_passes_the_command_line_and_reads_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = tmp.path().join("report.json");
    std::fs::write(&fixture, REPORT).unwrap();
    let args_file = tmp.path().join("args");
    let python = fake_python(
        tmp.path(),
        &format!(
            "printf '%s\\n' \"$@\" > '{}'\ncat '{}'",
            args_file.display(),
            fixture.display()
        ),
    );
    let pip = Pip { python };
    let wheels = pip
        .resolve(&["onnxruntime-gpu==1.31.1".into()], &WheelTarget::default())
        .unwrap();
    assert_eq!(wheels.len(), 9);
    let args = std::fs::read_to_string(args_file).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        &args[..5],
        ["-m", "pip", "install", "--dry-run", "--ignore-installed"]
    );
    assert!(args.contains(&"--no-deps"));
    assert_eq!(args.last(), Some(&"onnxruntime-gpu==1.31.1"));
}

#[test]
fn pip_failures_name_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = Pip {
        python: tmp.path().join("no-such-python"),
    };
    let e = missing
        .resolve(&["onnxruntime==1.31.1".into()], &WheelTarget::default())
        .unwrap_err();
    assert!(matches!(e, PipError::PythonNotFound { .. }), "{e:?}");
    assert!(e.hint().unwrap().contains("--manifest"), "{e}");

    let no_pip = Pip {
        python: fake_python(tmp.path(), "echo \"$0: No module named pip\" >&2; exit 1"),
    };
    let e = no_pip
        .resolve(&["onnxruntime==1.31.1".into()], &WheelTarget::default())
        .unwrap_err();
    assert!(matches!(e, PipError::PipMissing { .. }), "{e:?}");
    assert!(e.hint().unwrap().contains("install python3-pip"), "{e}");

    let e = classify_failure(
        std::path::Path::new("python3"),
        &["x==1".into()],
        &WheelTarget::default(),
        "ERROR: No matching distribution found for x==1",
    );
    assert!(e.hint().unwrap().contains("pip config list"), "{e}");
    assert!(
        !e.to_string().contains("hint"),
        "the hint is not baked in: {e}"
    );
}

/// The real pip, when asked for: `GPULIBS_TEST_PIP=1 cargo test -p gpulibs-sources`. It reaches
/// the index pip is configured with, so it does not run by default.
#[test]
fn real_pip_resolves_the_cpu_wheel() {
    if std::env::var_os("GPULIBS_TEST_PIP").is_none() {
        eprintln!("skipped: set GPULIBS_TEST_PIP=1 to resolve through the real pip");
        return;
    }
    let wheels = Pip::from_env()
        .resolve(&["onnxruntime==1.31.1".into()], &WheelTarget::default())
        .unwrap();
    let recorded = parse_report(REPORT).unwrap();
    let cpu = recorded.iter().find(|w| w.name == "onnxruntime").unwrap();
    assert_eq!(wheels[0].filename, cpu.filename);
    assert_eq!(wheels[0].sha256, cpu.sha256);
}
