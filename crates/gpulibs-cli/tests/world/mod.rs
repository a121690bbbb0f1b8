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

/// Asserts the whole output of `out` (exit code, stdout, stderr) against the snapshot `name`
/// in `tests/snapshots/`, with each of `paths` replaced by its placeholder and install ids,
/// times, sizes, durations and process ids filtered.
pub fn snapshot(name: &str, out: &Output, paths: &[(&Path, &str)]) {
    let text = screen(out);
    let mut settings = insta::Settings::clone_current();
    for (path, to) in paths {
        settings.add_filter(&regex_escape(&path.display().to_string()), *to);
    }
    // Install ids and times: `20261204T160312Z-cpu`, `2026-12-04T16:03:12Z`.
    settings.add_filter(r"\b\d{8}T\d{6}Z[\w.-]*", "[ID]");
    settings.add_filter(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]");
    settings.add_filter(r"\b\d+(\.\d+)? ?([KMGT]i?B|bytes)\b", "[SIZE]");
    settings.add_filter(r"\b\d+(\.\d+)? s\b", "[SECS]");
    settings.add_filter(r"\bpid \d+", "pid [PID]");
    // A table pads a size to its column: the padding follows the size.
    settings.add_filter(r"\[SIZE\] {2,}", "[SIZE]  ");
    // The snapshots of every test file are in one folder, whichever file asks.
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}
