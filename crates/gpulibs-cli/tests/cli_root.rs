//! The install root is gpulibs' own, and trust is always said, as a user meets them: the real
//! binary, a real HTTP server on 127.0.0.1, roots and users' directories in temp directories.

#[path = "../../gpulibs-install/tests/support/mod.rs"]
mod support;
mod world;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gpulibs_plan::sign_manifest;
use gpulibs_store::{Store, ROOT_MARKER};
use gpulibs_testkit::tree;
use support::*;

impl World {
    /// `gpulibs` with `root` as `GPULIBS_HOME`.
    fn gpulibs(&self, root: &Path) -> Command {
        world::isolated_gpulibs(self.tmp.path(), root)
    }
    /// A manifest of an ONNX Runtime and one more library, `signature` written next to it.
    fn manifest(&self, name: &str, extra: &[u8], signature: impl Fn(&str) -> String) -> PathBuf {
        let path = self.tmp.path().join(format!("{name}.toml"));
        let text = ort_and_extra_release(&self.server, name, extra);
        fs::write(&path, &text).unwrap();
        fs::write(
            self.tmp.path().join(format!("{name}.toml.minisig")),
            signature(&text),
        )
        .unwrap();
        path
    }
    fn signed(&self, name: &str, extra: &[u8]) -> PathBuf {
        self.manifest(name, extra, |text| {
            sign_manifest(text.as_bytes(), &world::key())
        })
    }
    /// `gpulibs install` of `manifest` into `root`, for the CPU, without verification.
    fn install(&self, root: &Path, manifest: &Path) -> Command {
        let mut cmd = self.gpulibs(root);
        cmd.arg("install")
            .arg("--manifest")
            .arg(manifest)
            .args(["--public-key", &world::key().public_key()])
            .args(["--cpu", "--no-reuse", "--no-verify"]);
        cmd
    }
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn ok(cmd: &mut Command) -> String {
    let (out, stdout, stderr) = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

#[test]
fn install_and_remove_leave_a_user_s_directory_alone() {
    let w = World::new();
    let manifest = w.signed("v1", b"x1");

    // GPULIBS_HOME naming a directory of the user's: install refuses, says why and what to
    // do, and writes nothing into it.
    let home = w.tmp.path().join("documents");
    fs::create_dir_all(home.join("photos")).unwrap();
    fs::write(home.join("thesis.txt"), "four years").unwrap();
    fs::write(home.join("photos/a.jpg"), "jpeg").unwrap();
    let before = tree(&home);
    let (out, _, stderr) = run(&mut w.install(&home, &manifest));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "`{}` is not a gpulibs install root",
            home.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("`thesis.txt`"), "{stderr}");
    assert!(
        stderr.contains("set GPULIBS_HOME to a new or empty directory"),
        "{stderr}"
    );
    assert_eq!(tree(&home), before, "nothing written");

    // A directory that merely holds an `installs/` folder: remove --yes refuses, deletes
    // nothing.
    fs::create_dir(home.join("installs")).unwrap();
    fs::write(home.join("installs/list.txt"), "mine").unwrap();
    let before = tree(&home);
    let (out, _, stderr) = run(w.gpulibs(&home).args(["remove", "--yes"]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a gpulibs install root"), "{stderr}");
    assert_eq!(tree(&home), before, "nothing deleted");
    for cmd in [&["gc"][..], &["rollback"], &["status"], &["env"]] {
        let (out, _, stderr) = run(w.gpulibs(&home).args(cmd));
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {stderr}");
        assert!(
            stderr.contains("not a gpulibs install root"),
            "{cmd:?}: {stderr}"
        );
    }
    assert_eq!(
        tree(&home),
        before,
        "nothing changed by gc, rollback, status or env"
    );

    // A root gpulibs made, into which the user later put a file: remove deletes gpulibs'
    // files, keeps the user's, says so, and keeps the directory.
    let root = w.tmp.path().join("root");
    ok(&mut w.install(&root, &manifest));
    assert!(root.join(ROOT_MARKER).is_file());
    fs::write(root.join("notes.txt"), "mine").unwrap();
    let stdout = ok(w.gpulibs(&root).args(["remove", "--yes"]));
    assert!(
        stdout.contains(&format!("kept {}", root.join("notes.txt").display())),
        "{stdout}"
    );
    let left: Vec<PathBuf> = tree(&root).into_keys().collect();
    assert_eq!(left, [PathBuf::from("notes.txt")]);

    // Without the user's file the root goes entirely, as before.
    fs::remove_file(root.join("notes.txt")).unwrap();
    ok(&mut w.install(&root, &manifest));
    let json: serde_json::Value =
        serde_json::from_str(&ok(w.gpulibs(&root).args(["--json", "remove", "--yes"]))).unwrap();
    assert_eq!(json["root_removed"], true, "{json}");
    assert_eq!(json["kept"], serde_json::json!([]));
    assert!(!root.exists());
}

#[test]
fn a_root_an_earlier_gpulibs_made_is_adopted() {
    let w = World::new();
    let root = w.tmp.path().join("root");
    ok(&mut w.install(&root, &w.signed("v1", b"x1")));
    // Roots made before the marker existed have none.
    fs::remove_file(root.join(ROOT_MARKER)).unwrap();
    // Reading writes nothing.
    ok(w.gpulibs(&root).args(["env"]));
    assert!(!root.join(ROOT_MARKER).exists());
    // The next install adopts it and updates it as usual.
    let stdout = ok(&mut w.install(&root, &w.signed("v2", b"x2")));
    assert!(stdout.contains("previous:"), "{stdout}");
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join(ROOT_MARKER)).unwrap()).unwrap();
    assert_eq!(m["origin"], "adopted");
}

const UNVERIFIED: &str = "warning: the manifest's signature was not verified (";

#[test]
fn install_says_when_the_signature_was_not_checked() {
    let w = World::new();
    // A pinned key, and a `.minisig` that is garbage: only --allow-unsigned gets past it.
    let manifest = w.manifest("garbage", b"x1", |_| "not a signature\n".to_string());
    let root = w.tmp.path().join("root");
    let (out, _, stderr) = run(&mut w.install(&root, &manifest));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let stdout = ok(w.install(&root, &manifest).arg("--allow-unsigned"));
    let line = stdout
        .lines()
        .find(|l| l.starts_with(UNVERIFIED))
        .unwrap_or_else(|| panic!("no signature warning in:\n{stdout}"));
    assert!(
        line.ends_with("; used because of --allow-unsigned"),
        "{line}"
    );

    // The same words as `plan`'s.
    let plan = ok(w
        .gpulibs(&root)
        .args([
            "plan",
            "--cpu",
            "--no-reuse",
            "--allow-unsigned",
            "--manifest",
        ])
        .arg(&manifest)
        .args(["--public-key", &world::key().public_key()]));
    assert!(
        plan.lines().any(|l| l == line),
        "plan says:\n{plan}\ninstall says: {line}"
    );

    // And in the JSON: the trust and the warning, as plan gives them.
    let json: serde_json::Value = serde_json::from_str(&ok(w
        .install(&root, &manifest)
        .arg("--allow-unsigned")
        .arg("--json")))
    .unwrap();
    assert_eq!(json["trust"]["trust"], "unverified_allowed", "{json}");
    assert_eq!(
        json["warnings"][0]["warning"], "unverified_manifest",
        "{json}"
    );
    assert!(
        json["warnings"][0]["why"].as_str().unwrap().len() > 5,
        "{json}"
    );

    // A signed manifest: no warning.
    let signed = w.signed("signed", b"x2");
    let stdout = ok(&mut w.install(&root, &signed));
    assert!(!stdout.contains("warning:"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(w.install(&root, &signed).arg("--json"))).unwrap();
    assert_eq!(json["trust"]["trust"], "signed", "{json}");
    assert_eq!(json["warnings"], serde_json::json!([]));
}

#[test]
fn env_and_status_fail_when_the_active_install_cannot_be_used() {
    let w = World::new();
    let root = w.tmp.path().join("root");
    ok(&mut w.install(&root, &w.signed("v1", b"x1")));
    ok(&mut w.install(&root, &w.signed("v2", b"x2")));
    let store = Store::open(&root).unwrap();
    let id = store.current_id().unwrap().unwrap();

    // The ONNX Runtime file the env would name is deleted.
    let ort = store.install_dir(&id).join("lib/libonnxruntime.so.1.2.3");
    fs::remove_file(&ort).unwrap();
    let (out, stdout, stderr) = run(w.gpulibs(&root).arg("env"));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "", "nothing for eval to pick up");
    assert!(
        stderr.contains(&format!("install `{id}` cannot be used")),
        "{stderr}"
    );
    // Named as the app sees it: through the root's view.
    assert!(
        stderr.contains(&format!(
            "`{}` is missing",
            root.join("libonnxruntime.so").display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("gpulibs rollback"), "{stderr}");
    let (out, stdout, _) = run(w.gpulibs(&root).arg("status"));
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains(&ort.display().to_string()), "{stdout}");

    // The active install's directory is gone: `current` dangles.
    fs::remove_dir_all(store.install_dir(&id)).unwrap();
    for cmd in ["env", "status"] {
        let (out, stdout, stderr) = run(w.gpulibs(&root).arg(cmd));
        assert_eq!(out.status.code(), Some(1), "{cmd}: {stdout}{stderr}");
        assert_eq!(stdout, "", "{cmd}");
        assert!(
            stderr.contains("the active install is gone"),
            "{cmd}: {stderr}"
        );
        assert!(
            stderr.contains(&store.install_dir(&id).display().to_string()),
            "{cmd}: {stderr}"
        );
        assert!(stderr.contains("gpulibs rollback"), "{cmd}: {stderr}");
    }
    // The fix it names works.
    ok(w.gpulibs(&root).arg("rollback"));
    ok(w.gpulibs(&root).arg("env"));
}
