//! Real ONNX Runtime libraries for the tests, from the official wheels.
//!
//! Each is located by an environment variable, or fetched once with `pip download` (which uses
//! the user's pip configuration: index, mirrors, proxies) and unpacked into `target/ort-wheels/`.
//! `GPULIBS_TEST_WHEEL_DIR` may name a directory of already downloaded wheels.
//!
//! Also [`failure`], to read a failed report.

// Test support: says what it fetched and why a test is skipped.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use gpulibs_verify::{Outcome, Stage, VerifyReport};

/// The CPU `onnxruntime` wheel the tests use by default.
pub const CPU_VERSION: &str = "1.23.2";
/// The oldest release verify supports.
pub const OLDEST_VERSION: &str = "1.20.1";
/// A CUDA 13 `onnxruntime-gpu` release.
pub const GPU_VERSION: &str = "1.31.1";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    // target/<profile>/deps/<test binary>
    std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// `libonnxruntime.so.<version>` of the CPU wheel (`GPULIBS_TEST_ORT_LIB` overrides it).
pub fn cpu_ort() -> PathBuf {
    if let Some(p) = std::env::var_os("GPULIBS_TEST_ORT_LIB").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    wheel_library("onnxruntime", CPU_VERSION)
}

/// `libonnxruntime.so.1.20.1` (`GPULIBS_TEST_ORT_LIB_1_20` overrides it).
pub fn oldest_ort() -> PathBuf {
    if let Some(p) = std::env::var_os("GPULIBS_TEST_ORT_LIB_1_20").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    wheel_library("onnxruntime", OLDEST_VERSION)
}

/// `libonnxruntime.so.1.31.1` of the GPU wheel, with its CUDA provider next to it
/// (`GPULIBS_TEST_ORT_GPU_LIB` overrides it).
pub fn gpu_ort() -> PathBuf {
    if let Some(p) = std::env::var_os("GPULIBS_TEST_ORT_GPU_LIB").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    wheel_library("onnxruntime-gpu", GPU_VERSION)
}

fn wheel_library(package: &str, version: &str) -> PathBuf {
    // Tests of one binary run in parallel threads; one of them unpacks, the others wait.
    static UNPACK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = UNPACK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = target_dir()
        .join("ort-wheels")
        .join(format!("{package}-{version}"));
    let lib = dir.join(format!("libonnxruntime.so.{version}"));
    if lib.is_file() {
        return lib;
    }
    let wheel = find_wheel(package, version).unwrap_or_else(|| download(package, version));
    // Unpack the ONNX Runtime libraries (not the Python module) into a temporary directory,
    // then rename it into place, so that concurrent tests never see half a directory.
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let script = "import sys, zipfile, os\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        for n in z.namelist():\n\
        \x20   b = os.path.basename(n)\n\
        \x20   if n.startswith('onnxruntime/capi/') and b.startswith('libonnxruntime') and '.so' in b \
        and 'tensorrt' not in b:\n\
        \x20       open(os.path.join(sys.argv[2], b), 'wb').write(z.read(n))\n";
    let status = Command::new(python())
        .args(["-c", script])
        .arg(&wheel)
        .arg(&tmp)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "unpacking {} failed", wheel.display());
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp); // another test won the race
    }
    assert!(
        lib.is_file(),
        "{} has no {}",
        wheel.display(),
        lib.display()
    );
    lib
}

/// The official wheel of `package` `version` for CPython 3.11 on manylinux_2_28 x86_64: from
/// `GPULIBS_TEST_WHEEL_DIR`, `target/ort-wheels/download`, or fetched there with pip.
pub fn wheel(package: &str, version: &str) -> PathBuf {
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = FETCH.lock().unwrap_or_else(|p| p.into_inner());
    let downloaded = wheel_in(
        &target_dir().join("ort-wheels").join("download"),
        package,
        version,
    );
    find_wheel(package, version)
        .or(downloaded)
        .unwrap_or_else(|| download(package, version))
}

/// The wheel of `package` `version` in `dir`, if there is one.
fn wheel_in(dir: &Path, package: &str, version: &str) -> Option<PathBuf> {
    let prefix = format!("{}-{version}-", package.replace('-', "_"));
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&prefix) && n.contains("x86_64") && n.ends_with(".whl")
            })
        })
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn find_wheel(package: &str, version: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("GPULIBS_TEST_WHEEL_DIR")?;
    wheel_in(Path::new(&dir), package, version)
}

fn download(package: &str, version: &str) -> PathBuf {
    let dest = target_dir().join("ort-wheels").join("download");
    std::fs::create_dir_all(&dest).unwrap();
    let spec = format!("{package}=={version}");
    eprintln!("downloading {spec} with pip into {}", dest.display());
    let out = Command::new(python())
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args([
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
        ])
        .arg(&spec)
        .arg("-d")
        .arg(&dest)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need ONNX Runtime {version}: `python3 -m pip` could not be run \
                 ({e}); install Python with pip, or set GPULIBS_TEST_ORT_LIB / \
                 GPULIBS_TEST_WHEEL_DIR"
            )
        });
    assert!(
        out.status.success(),
        "`pip download {spec}` failed; set GPULIBS_TEST_ORT_LIB / GPULIBS_TEST_WHEEL_DIR to \
         use a local copy:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wheel_in(&dest, package, version).expect("pip downloaded the wheel")
}

/// The stage, reason and hint of a failed verification; any other outcome panics with the
/// report.
pub fn failure(report: &VerifyReport) -> (Stage, &str, Option<&str>) {
    let Outcome::Failed {
        stage,
        reason,
        hint,
    } = &report.outcome
    else {
        panic!("expected a failure: {}", report.render_text())
    };
    (*stage, reason, hint.as_deref())
}
