//! Shared by the integration tests: the fake NVML library, its scenarios, and a lock around the
//! process environment.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use gpulibs_detect::{DetectOptions, FsRoots};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds `crates/gpulibs-fake-nvml` once per test binary and returns its `.so`.
///
/// `cargo test` does not build a cdylib that nothing depends on, so the test runs a nested
/// `cargo build`. It uses a target directory of its own: the outer cargo may still hold the lock
/// on the usual one, and waiting for it would deadlock.
pub fn fake_nvml() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let root = workspace_root();
        let target = root.join("target/fake-nvml");
        let output = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "gpulibs-fake-nvml",
                "--target-dir",
            ])
            .arg(&target)
            .current_dir(&root)
            .output()
            .expect("run cargo to build the fake NVML");
        assert!(
            output.status.success(),
            "building gpulibs-fake-nvml failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let library = target.join("debug/libgpulibs_fake_nvml.so");
        assert!(library.is_file(), "{} was not built", library.display());
        library
    })
}

pub fn scenario(name: &str) -> PathBuf {
    workspace_root()
        .join("crates/gpulibs-fake-nvml/scenarios")
        .join(format!("{name}.json"))
}

/// Serialises the tests of one binary: the fake reads `GPULIBS_FAKE_NVML` from the process
/// environment, and a child process forked while another test writes a script could hold that
/// script open ("text file busy").
pub fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // Build first, outside the lock, so no test forks cargo while another holds it.
    fake_nvml();
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `/proc` and `/sys` roots in a temporary directory, so the host's drivers never leak into a
/// test.
pub struct FakeKernel {
    pub dir: tempfile::TempDir,
}

impl FakeKernel {
    /// No NVIDIA module, no nouveau.
    pub fn bare() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("proc")).expect("proc");
        std::fs::create_dir_all(dir.path().join("sys/module")).expect("sys");
        Self { dir }
    }

    pub fn with_nvidia(version: &str) -> Self {
        let kernel = Self::bare();
        let driver = kernel.dir.path().join("proc/driver/nvidia");
        std::fs::create_dir_all(&driver).expect("driver dir");
        std::fs::write(
            driver.join("version"),
            format!("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {version}  Release Build  (dvs-builder@U22)\nGCC version:  gcc version 12.3.0\n"),
        )
        .expect("version file");
        kernel
    }

    pub fn with_nouveau() -> Self {
        let kernel = Self::bare();
        std::fs::create_dir_all(kernel.dir.path().join("sys/module/nouveau")).expect("nouveau");
        kernel
    }

    pub fn roots(&self) -> FsRoots {
        FsRoots {
            proc: self.dir.path().join("proc"),
            sys: self.dir.path().join("sys"),
        }
    }
}

/// Options that load the fake NVML with `scenario` and touch nothing of the host.
/// The caller must hold [`lock`].
pub fn fake_options(scenario_name: &str, kernel: &FakeKernel) -> DetectOptions {
    std::env::set_var("GPULIBS_FAKE_NVML", scenario(scenario_name));
    DetectOptions {
        nvml_library: Some(fake_nvml().to_path_buf()),
        nvidia_smi_fallback: false,
        fs_roots: kernel.roots(),
        ..DetectOptions::isolated()
    }
}

/// Writes an executable `nvidia-smi` shell script into `dir`.
pub fn fake_smi(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("nvidia-smi");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}
