//! The build's facts for `gpulibs --version` and `gpulibs version`: the git commit and its date
//! when built from a checkout (git on PATH; nothing when built from a source archive), the
//! target triple, the enabled features, the profile and the compiler. No network.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let commit = git(&["rev-parse", "--short=9", "HEAD"]);
    let date = git(&["log", "-1", "--date=short", "--format=%cd"]);
    // Rebuild when HEAD moves (a commit, a checkout): HEAD itself, the branch it names, and
    // packed-refs; git finds them, in a worktree too.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for path in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        // A path that does not exist would make cargo run this script on every build.
        let found = git(&["rev-parse", "--git-path", path]).filter(|p| Path::new(p).exists());
        if let Some(p) = found {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| {
            k.strip_prefix("CARGO_FEATURE_")
                .map(|f| f.to_ascii_lowercase().replace('_', "-"))
        })
        .collect();
    features.sort();
    let set = |k: &str, v: &str| println!("cargo:rustc-env={k}={v}");
    set("GPULIBS_BUILD_COMMIT", &commit.unwrap_or_default());
    set("GPULIBS_BUILD_COMMIT_DATE", &date.unwrap_or_default());
    set(
        "GPULIBS_BUILD_TARGET",
        &std::env::var("TARGET").unwrap_or_default(),
    );
    set(
        "GPULIBS_BUILD_PROFILE",
        &std::env::var("PROFILE").unwrap_or_default(),
    );
    set("GPULIBS_BUILD_FEATURES", &features.join(","));
    set("GPULIBS_BUILD_RUSTC", &rustc_version);
}
