//! Whole-screen snapshots of the failures a user meets first, and of `detect` and `inspect`
//! answering (the fake NVML at the hardware boundary, real ELF libraries): each records the exit code,
//! stdout and stderr in full (`tests/snapshots/`), so a cause printed twice, a hint that points
//! nowhere, a lost hint or a wrong exit code shows as a diff. Paths of the test's temporary
//! directory, times, sizes and the build's commit are filtered.
//!
//! A changed output: `INSTA_UPDATE=always cargo test -p gpulibs-cli --test cli_errors`, then read
//! the `.snap` diffs before committing them.

mod world;

use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;

/// A temporary home and the filters that make its output stable.
struct TestContext {
    tmp: tempfile::TempDir,
}

impl TestContext {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["home", "tmp"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        Self { tmp }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `gpulibs` in a cleared environment: no NVML, no GPU, this context's home and TMPDIR.
    fn gpulibs(&self) -> Command {
        let mut cmd = Command::cargo_bin("gpulibs").unwrap();
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path().join("home"))
            .env("GPULIBS_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1")
            .env("TMPDIR", self.path().join("tmp"));
        cmd
    }

    fn filters(&self) -> Vec<(String, String)> {
        vec![
            (
                world::regex_escape(&self.path().display().to_string()),
                "[TMP]".into(),
            ),
            (r"\b\d+(\.\d+)?(ms|s)\b".into(), "[TIME]".into()),
            // The test HTTP server's port.
            (r"127\.0\.0\.1:\d+".into(), "[HOST]".into()),
            (
                r"\b\d+(\.\d+)? ?([KMGT]i?B|bytes)\b".into(),
                "[SIZE]".into(),
            ),
            // `gpulibs 0.1.0 (3b67376af 2026-12-04)`, or without the commit outside a checkout.
            (
                r"gpulibs \d+\.\d+\.\d+( \([0-9a-f]{7,12} \d{4}-\d{2}-\d{2}\))?".into(),
                "gpulibs [VERSION]".into(),
            ),
        ]
    }

    /// Runs `cmd` and asserts its whole output against the snapshot `name`.
    fn snapshot(&self, name: &str, cmd: &mut Command) {
        let text = world::screen(&cmd.output().unwrap());
        let mut settings = insta::Settings::clone_current();
        for (from, to) in self.filters() {
            settings.add_filter(&from, to);
        }
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!(name, text));
    }
}

/// The issue's example: the file and the step on the `error:` line, the OS's reason once.
#[test]
fn inspect_a_missing_file() {
    let ctx = TestContext::new();
    ctx.snapshot(
        "inspect_missing_file",
        ctx.gpulibs()
            .args(["inspect", "--gpu", "9.0", "/nonexistent/lib.so"]),
    );
}

/// Values that do not parse are usage errors: exit 2, as `--help` says.
#[test]
fn value_errors_exit_2() {
    let ctx = TestContext::new();
    ctx.snapshot(
        "inspect_bad_gpu",
        ctx.gpulibs().args(["inspect", "--gpu", "abc", "/x/lib.so"]),
    );
    ctx.snapshot(
        "verify_bad_shape",
        ctx.gpulibs().args(["verify", "--shape", "x"]),
    );
    ctx.snapshot(
        "verify_bad_value",
        ctx.gpulibs().args(["verify", "--value", "x=abc"]),
    );
    ctx.snapshot(
        "status_bad_app",
        ctx.gpulibs().args(["status", "--app", "../x"]),
    );
    ctx.snapshot(
        "plan_bad_gpu_json",
        ctx.gpulibs().args(["plan", "--json", "--gpu", "abc"]),
    );
}

/// clap's own refusals: exit 2, and with `--json` a JSON error object on stdout.
#[test]
fn usage_errors_exit_2_also_with_json() {
    let ctx = TestContext::new();
    ctx.snapshot("unknown_flag", ctx.gpulibs().args(["detect", "--bogus"]));
    ctx.snapshot(
        "unknown_flag_json",
        ctx.gpulibs().args(["--json", "detect", "--bogus"]),
    );
    ctx.snapshot(
        "missing_value_json",
        ctx.gpulibs().args(["inspect", "--json", "--gpu"]),
    );
}

/// A bad `--ort` is answered with a step about `--ort`, not about the active install.
#[test]
fn verify_a_bad_ort_path() {
    let ctx = TestContext::new();
    ctx.snapshot(
        "verify_bad_ort",
        ctx.gpulibs()
            .args(["verify", "--ort", "/nonexistent/libonnxruntime.so"]),
    );
}

/// Nothing installed: the message says so, and the hint is the command that installs.
#[test]
fn verify_with_nothing_installed() {
    let ctx = TestContext::new();
    ctx.snapshot("verify_nothing_installed", ctx.gpulibs().args(["verify"]));
}

/// `--version` is one line; `version --json` is decoded field by field in `cli_json_core.rs`.
#[test]
fn version_short() {
    let ctx = TestContext::new();
    ctx.snapshot("version_short", ctx.gpulibs().arg("--version"));
}

/// `--quiet`: the table goes, the exit code stays; an error is still printed in full.
#[test]
fn quiet_prints_errors_only() {
    let ctx = TestContext::new();
    ctx.snapshot("quiet_version", ctx.gpulibs().args(["-q", "version"]));
    ctx.snapshot(
        "quiet_error",
        ctx.gpulibs()
            .args(["-q", "inspect", "--gpu", "9.0", "/nonexistent/lib.so"]),
    );
}

#[test]
fn completions_for_each_shell() {
    let ctx = TestContext::new();
    for (shell, marker) in [
        ("bash", "complete -F _gpulibs"),
        ("zsh", "#compdef gpulibs"),
        ("fish", "complete -c gpulibs"),
    ] {
        let out = ctx.gpulibs().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        // Every command is offered.
        for command in ["install", "inspect", "verify", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
}

/// `--help` names the environment variables gpulibs reads.
#[test]
fn help_lists_the_environment() {
    let ctx = TestContext::new();
    let out = ctx.gpulibs().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "GPULIBS_HOME",
        "GPULIBS_STORE",
        "GPULIBS_PYTHON",
        "HTTPS_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "NO_COLOR",
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
    ] {
        assert!(help.contains(var), "--help lacks {var}");
    }
}

/// Errors go to stderr, coloured only when asked or when stderr is a terminal; `NO_COLOR` and a
/// pipe (as here) leave them plain.
#[test]
fn error_colour_follows_the_rules() {
    let ctx = TestContext::new();
    let args = ["inspect", "--gpu", "9.0", "/nonexistent/lib.so"];
    let stderr = |cmd: &mut Command| String::from_utf8(cmd.output().unwrap().stderr).unwrap();
    let always = stderr(ctx.gpulibs().args(["--color", "always"]).args(args));
    assert!(always.starts_with("\x1b["), "{always:?}");
    let plain = stderr(ctx.gpulibs().env("NO_COLOR", "1").args(args));
    assert!(
        plain.starts_with("error: ") && !plain.contains('\x1b'),
        "{plain:?}"
    );
    let piped = stderr(ctx.gpulibs().args(args));
    assert!(!piped.contains('\x1b'), "{piped:?}");
}

/// The store's own errors: what failed on the `error:` line, the reason as `caused by:`, and
/// the store's step once, as `hint:` (from `gpulibs_hint::Hint`, not from the message).
#[test]
fn store_failures_print_the_store_s_hint_once() {
    let ctx = TestContext::new();
    // A directory gpulibs did not make: refused, nothing changed, the step is the hint.
    let docs = ctx.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("thesis.txt"), "keep").unwrap();
    ctx.snapshot(
        "status_not_a_root",
        ctx.gpulibs().args(["status"]).env("GPULIBS_HOME", &docs),
    );
    // A root marker that does not parse: the parser's reason is the cause.
    let root = ctx.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("gpulibs-root.json"), "{ not json").unwrap();
    let mut cmd = ctx.gpulibs();
    cmd.args(["rollback"]).env("GPULIBS_HOME", &root);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    ctx.snapshot("rollback_bad_root_marker", &mut cmd);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.matches("\n  caused by: ").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("\n  hint: ").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("delete the marker").count(), 1, "{stderr}");
}

/// `gpulibs` of `ctx` with the fake NVML answering from `scenario`.
fn on_scenario(ctx: &TestContext, scenario: &str) -> Command {
    let mut cmd = ctx.gpulibs();
    cmd.env(
        "GPULIBS_NVML_LIBRARY",
        gpulibs_testkit::fake_nvml::library(),
    )
    .env(
        "GPULIBS_FAKE_NVML",
        gpulibs_testkit::fake_nvml::scenario(scenario),
    );
    cmd
}

/// `detect` on a machine with two different GPUs, on the seed's Quadro, and on one with none.
#[test]
fn detect_answers() {
    let ctx = TestContext::new();
    ctx.snapshot(
        "detect_two_gpus",
        on_scenario(&ctx, "two-gpu-mixed").arg("detect"),
    );
    ctx.snapshot(
        "detect_quadro_m2200",
        on_scenario(&ctx, "quadro-m2200").arg("detect"),
    );
    ctx.snapshot(
        "detect_no_gpu",
        on_scenario(&ctx, "no-gpu").args(["detect", "--no-smi"]),
    );
}

/// No NVML library and no `nvidia-smi` asked for: exit 3, the library named, the fix given.
/// The diagnosis also reads `/proc/driver/nvidia`, so the snapshot is of a machine without the
/// NVIDIA kernel module; on one with it the test checks nothing.
#[test]
fn detect_without_nvml() {
    if Path::new("/proc/driver/nvidia").exists() {
        eprintln!("skipped: the NVIDIA kernel module is loaded here");
        return;
    }
    let ctx = TestContext::new();
    ctx.snapshot("detect_no_nvml", ctx.gpulibs().args(["detect", "--no-smi"]));
}

/// `inspect` on a real ELF library carrying SASS for sm_75, sm_86, sm_90a and PTX 9.0: native
/// for sm_86, and what an sm_120 GPU would get.
#[test]
fn inspect_a_fatbin_library() {
    let ctx = TestContext::new();
    let lib = gpulibs_testkit::vendor_cuda_library(ctx.path());
    ctx.snapshot(
        "inspect_fatbin_sm86",
        ctx.gpulibs().args(["inspect", "--gpu", "8.6"]).arg(&lib),
    );
    ctx.snapshot(
        "inspect_fatbin_sm120",
        ctx.gpulibs().args(["inspect", "--gpu", "12.0"]).arg(&lib),
    );
}

/// A manifest URL that keeps answering 503: the download's failure once as the cause, the flag
/// to check and the server's step each once as hints (the manifest's hint used to repeat the
/// proxy variables the download's own hint names, and a failing server was blamed on the
/// network).
#[test]
fn a_manifest_that_keeps_failing_names_each_step_once() {
    use gpulibs_testkit::http::{Reply, Server};
    let ctx = TestContext::new();
    let server = Server::start();
    server.set_default("/x.toml", Reply::Status(503));
    let url = server.url("/x.toml");
    ctx.snapshot(
        "plan_manifest_unavailable",
        ctx.gpulibs()
            .env("GPULIBS_HOME", ctx.path().join("root"))
            .args(["plan", "--manifest", &url]),
    );
}

/// pip failing without a word (`GPULIBS_PYTHON=/bin/false`): the failure says so instead of an
/// empty reason, and pip's step is given once (the command used to add its own pip hint too).
#[test]
fn pip_failing_silently_is_named_with_one_pip_hint() {
    let ctx = TestContext::new();
    ctx.snapshot(
        "mirror_embedded_pip_fails",
        ctx.gpulibs()
            .env("GPULIBS_PYTHON", "/bin/false")
            .arg("mirror")
            .arg("--embedded")
            .arg(ctx.path().join("mirror")),
    );
}

/// A vendor's first mistakes: `--from` naming nothing, and a manifest to mirror that is not
/// there: what failed, the system's reason as the cause, the step as the hint.
#[test]
fn package_and_mirror_name_the_path_and_the_flag() {
    let ctx = TestContext::new();
    ctx.snapshot(
        "package_from_missing",
        ctx.gpulibs()
            .args(["package", "--release", "1.0", "--from"])
            .arg(ctx.path().join("build"))
            .arg("--out")
            .arg(ctx.path().join("out")),
    );
    ctx.snapshot(
        "mirror_manifest_missing",
        ctx.gpulibs()
            .arg("mirror")
            .arg(ctx.path().join("manifest.toml"))
            .arg(ctx.path().join("mirror")),
    );
}

/// A manifest from a newer gpulibs and one with a misspelt key: the manifest's own fix is the
/// hint (it used to be the end of the message, with a second, vaguer hint after it).
#[test]
fn a_manifest_this_gpulibs_cannot_read_says_the_fix_once() {
    let ctx = TestContext::new();
    for (name, text) in [
        (
            "plan_manifest_newer_schema",
            "schema_version = 9\napp = \"x\"\nversion = \"1\"\n",
        ),
        (
            "plan_manifest_unknown_key",
            "schema_version = 1\napp = \"x\"\nversion = \"1\"\ncolour = \"blue\"\n",
        ),
    ] {
        let manifest = ctx.path().join(format!("{name}.toml"));
        std::fs::write(&manifest, text).unwrap();
        ctx.snapshot(
            name,
            ctx.gpulibs()
                .env("GPULIBS_HOME", ctx.path().join("root"))
                .args(["plan", "--allow-unsigned", "--manifest"])
                .arg(&manifest),
        );
    }
}

/// `--ort` naming nothing, with the GPU asked for: the library is what is missing (it used to
/// be reported as "a CPU-only ONNX Runtime" whose CUDA provider was missing from `/`).
#[test]
fn verify_with_an_ort_path_that_names_nothing() {
    let ctx = TestContext::new();
    ctx.snapshot(
        "verify_ort_missing_cuda",
        ctx.gpulibs()
            .args(["verify", "--device", "cuda:0", "--ort"])
            .arg(ctx.path().join("nothing/libonnxruntime.so")),
    );
}

/// Inputs that hold nothing the command reads: a directory with no ELF file for `inspect` (it
/// printed nothing and exited 0), a model directory with no `.onnx` for `verify` (the device
/// line was blank), a catalog that is not one for `recommend` (no hint).
#[test]
fn inputs_holding_nothing_usable_say_so() {
    let ctx = TestContext::new();
    let empty = ctx.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("README"), "no libraries here").unwrap();
    ctx.snapshot(
        "inspect_nothing_to_read",
        ctx.gpulibs().args(["inspect", "--gpu", "9.0"]).arg(&empty),
    );
    ctx.snapshot(
        "verify_no_models",
        ctx.gpulibs()
            .args(["verify", "--device", "cpu", "--ort"])
            .arg(ctx.path().join("libonnxruntime.so"))
            .arg("--model")
            .arg(&empty),
    );
    ctx.snapshot(
        "recommend_not_a_catalog",
        ctx.gpulibs()
            .args(["recommend", "--catalog"])
            .arg(empty.join("README"))
            .arg("--ort")
            .arg(ctx.path().join("libonnxruntime.so")),
    );
}

/// The first screen a new user reads: every command in one line, the options, the exit codes
/// and the environment.
#[test]
fn top_level_help() {
    let ctx = TestContext::new();
    ctx.snapshot("help", ctx.gpulibs().arg("--help"));
}
