//! What the CLI's end-to-end tests share: the vendor key their manifests are signed with, the
//! binary as a user on a machine with no GPU runs it (isolated in a temp directory), and the
//! text a whole-output snapshot records.
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;
use std::process::{Command, Output};

use assert_cmd::prelude::*;
use gpulibs_plan::SecretKey;

/// The vendor's signing key of the test manifests.
pub fn key() -> SecretKey {
    SecretKey::from_seed([7; 32], [1, 2, 3, 4, 5, 6, 7, 8])
}

/// Writes the manifest `text` to `path` and its signature by [`key`] to `path.minisig` (where
/// gpulibs looks for it); returns `path`.
pub fn write_signed(path: &Path, text: &str) -> std::path::PathBuf {
    std::fs::write(path, text).unwrap();
    let mut sig = path.as_os_str().to_owned();
    sig.push(".minisig");
    std::fs::write(sig, gpulibs_plan::sign_manifest(text.as_bytes(), &key())).unwrap();
    path.to_path_buf()
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

/// What a whole-output snapshot records of a run: its exit code, stdout and stderr, in full.
pub fn screen(out: &Output) -> String {
    format!(
        "exit_code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
        out.status.code().map_or("signal".into(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    )
}

/// `s` as a regex matching itself (a path to filter out of a snapshot).
pub fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}
