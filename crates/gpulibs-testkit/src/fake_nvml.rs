//! The fake NVML library (`crates/gpulibs-fake-nvml`) and its scenarios, for the detect and CLI
//! tests that load it through the real dlopen path.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds `crates/gpulibs-fake-nvml` once per test binary and returns its `.so`.
///
/// `cargo test` does not build a cdylib that nothing depends on, so the test runs a nested
/// `cargo build` (the `CARGO` of the test process, which cargo sets, else `cargo` from `PATH`).
/// It uses a target directory of its own, `target/fake-nvml`: the outer cargo may still hold the
/// lock on the usual one, and waiting for it would deadlock.
pub fn library() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let root = workspace_root();
        let target = root.join("target/fake-nvml");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let output = Command::new(cargo)
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

/// The scenario file `name` (`crates/gpulibs-fake-nvml/scenarios/<name>.json`), for
/// `GPULIBS_FAKE_NVML`.
pub fn scenario(name: &str) -> PathBuf {
    workspace_root()
        .join("crates/gpulibs-fake-nvml/scenarios")
        .join(format!("{name}.json"))
}
