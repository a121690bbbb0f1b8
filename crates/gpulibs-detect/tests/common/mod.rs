//! Shared by the integration tests: the fake NVML library, its scenarios, and a lock around the
//! process environment.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use gpulibs_detect::{DetectOptions, FsRoots};

pub use gpulibs_testkit::fake_nvml::{library as fake_nvml, scenario};

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
