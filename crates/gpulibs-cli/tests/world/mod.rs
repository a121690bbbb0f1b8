//! What the CLI's end-to-end tests (`cli_install`, `cli_plan`, `cli_root`, `cli_mirror`) share:
//! the vendor key their manifests are signed with, and the binary as a user on a machine with no
//! GPU runs it, isolated in a temp directory.
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;
use gpulibs_plan::SecretKey;

/// The vendor's signing key of the test manifests.
pub fn key() -> SecretKey {
    SecretKey::from_seed([7; 32], [1, 2, 3, 4, 5, 6, 7, 8])
}

/// `gpulibs` with `root` as `GPULIBS_HOME`, config and home under `tmp`, no NVML (so no GPU),
/// no colour, and none of the runner's CUDA device, pinned key or proxy settings.
pub fn isolated_gpulibs(tmp: &Path, root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("gpulibs").unwrap();
    cmd.env("GPULIBS_HOME", root)
        .env("XDG_CONFIG_HOME", tmp.join("config"))
        .env("HOME", tmp.join("home"))
        .env("GPULIBS_NVML_LIBRARY", tmp.join("no-nvml.so"))
        .env("NO_COLOR", "1")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .env_remove("GPULIBS_PUBLIC_KEY")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy");
    cmd
}
