//! `gpulibs install` and the life-cycle commands, run as a user runs them: the real binary,
//! signed test manifests, a real HTTP server on 127.0.0.1 serving tar.zst archives built here,
//! and install roots in temp directories (`GPULIBS_HOME`, never the real home).

#[path = "../../gpulibs-install/tests/support/mod.rs"]
mod support;
mod world;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use gpulibs_store::{activate_at, Store};
use predicates::prelude::*;
use support::*;

impl World {
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    fn receipt(&self) -> PathBuf {
        self.tmp.path().join("config/testapp/gpu-package-info.json")
    }
    fn gpulibs(&self) -> Command {
        world::isolated_gpulibs(self.tmp.path(), &self.root())
    }
    /// Writes a signed manifest for `components` and returns its path.
    fn manifest(&self, name: &str, version: &str, components: &[TestComponent]) -> PathBuf {
        let path = self.tmp.path().join(name);
        let text = manifest_toml(version, components);
        world::write_signed(&path, &text)
    }
    fn serve(&self, id: &str, version: &str, name: &str, archive: Vec<u8>) -> TestComponent {
        TestComponent::served(&self.server, id, version, name, archive, 4 << 20)
    }
    fn v1(&self) -> PathBuf {
        let ort = self.serve("ort", "1.0", "ort-1.tar.zst", ort_archive(b"ort one"));
        let extra = self.serve(
            "extra",
            "1.0",
            "extra-1.tar.zst",
            lib_archive("libextra.so.1", b"x1"),
        );
        self.manifest("v1.toml", "1.0", &[ort, extra])
    }
    fn v2(&self, extra_payload: &[u8]) -> PathBuf {
        let ort = self.serve("ort", "1.0", "ort-1.tar.zst", ort_archive(b"ort one"));
        let extra = self.serve(
            "extra",
            "2.0",
            "extra-2.tar.zst",
            lib_archive("libextra.so.1", extra_payload),
        );
        self.manifest("v2.toml", "2.0", &[ort, extra])
    }
    /// `gpulibs install` of `manifest` for the CPU, without verification.
    fn install(&self, manifest: &Path) -> Command {
        let mut cmd = self.gpulibs();
        cmd.arg("install")
            .arg("--manifest")
            .arg(manifest)
            .args(["--public-key", &world::key().public_key()])
            .args(["--cpu", "--no-reuse", "--no-verify", "--app", "testapp"]);
        cmd
    }
    fn store(&self) -> Store {
        Store::open(self.root()).unwrap()
    }
    fn current(&self) -> Option<String> {
        self.store().current_id().unwrap()
    }
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn install_update_status_env_rollback_gc_remove() {
    let w = World::new();
    let v1 = w.v1();
    let out = stdout_of(&mut w.install(&v1));
    assert!(out.contains("installed "), "{out}");
    assert!(out.contains("verify: skipped (--no-verify)"), "{out}");
    let first = w.current().expect("active after install");
    assert!(w.receipt().is_file());
    assert_eq!(
        std::fs::read(activate_at(&w.root()).unwrap().ort_library).unwrap(),
        b"ort one"
    );

    // Again: up to date, no request.
    w.server.clear_log();
    let out = stdout_of(&mut w.install(&v1));
    assert!(out.contains("up to date"), "{out}");
    assert!(w.server.log().is_empty());

    // status: the CPU runtime is fine without a GPU.
    w.gpulibs()
        .arg("status")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ok: install"))
        .stdout(predicate::str::contains("CPU runtime"));

    // env in its three formats, naming the generation itself.
    let sh = stdout_of(w.gpulibs().args(["env", "--format", "sh"]));
    assert!(sh.contains("export LD_LIBRARY_PATH="), "{sh}");
    // The root's view: the same text after every update, rollback and gc.
    assert!(
        sh.contains(&format!("export LD_LIBRARY_PATH='{}'", w.root().display())),
        "{sh}"
    );
    assert!(!sh.contains("installs/"), "{sh}");
    let script = format!("{sh}\ntest -f \"$ORT_DYLIB_PATH\" && echo found");
    let run = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "found");
    let systemd = stdout_of(w.gpulibs().args(["env", "--format", "systemd"]));
    assert!(systemd.starts_with("LD_LIBRARY_PATH=/"), "{systemd}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(w.gpulibs().args(["env", "--format", "json"]))).unwrap();
    assert_eq!(json["install_id"], first.as_str());

    // An update downloads only the changed component.
    let v2 = w.v2(b"x2");
    w.server.clear_log();
    let out = stdout_of(&mut w.install(&v2));
    assert!(out.contains("already in the store"), "{out}");
    let paths: Vec<String> = w.server.log().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, vec!["/extra-2.tar.zst"]);
    let second = w.current().unwrap();
    assert_ne!(second, first);

    // rollback, twice.
    let out = stdout_of(w.gpulibs().arg("rollback"));
    assert!(
        out.contains(&format!("{first} (cpu) is active again")),
        "{out}"
    );
    assert_eq!(w.current(), Some(first.clone()));
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.receipt()).unwrap()).unwrap();
    assert_eq!(receipt["version"], "1.0");
    stdout_of(w.gpulibs().arg("rollback"));
    assert_eq!(w.current(), Some(second.clone()));

    // A third generation (v1 again, whose components are stored): nothing downloaded; then gc
    // removes the one install that is neither current nor previous.
    w.server.clear_log();
    stdout_of(&mut w.install(&v1));
    assert!(w.server.log().is_empty());
    let third = w.current().unwrap();
    let gc: serde_json::Value =
        serde_json::from_str(&stdout_of(w.gpulibs().args(["--json", "gc"]))).unwrap();
    assert_eq!(gc["removed_installs"], serde_json::json!([first]));
    assert_eq!(gc["removed_components"], serde_json::json!([]));
    assert_eq!(w.current(), Some(third));

    // remove: refused without --yes; then the root and the unchanged receipt go.
    w.gpulibs()
        .arg("remove")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--yes"));
    assert!(w.root().join("store").is_dir());
    let out = stdout_of(w.gpulibs().args(["remove", "--yes"]));
    assert!(out.contains("removed"), "{out}");
    assert!(!w.root().exists());
    assert!(!w.receipt().exists());
    w.gpulibs()
        .arg("status")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("nothing is installed"));
    w.gpulibs()
        .arg("env")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("gpulibs install"));
}

#[test]
fn json_report_and_signature_rules() {
    let w = World::new();
    let v1 = w.v1();
    // An unsigned manifest is refused, and accepted with --allow-unsigned.
    let unsigned = w.tmp.path().join("unsigned.toml");
    std::fs::copy(&v1, &unsigned).unwrap();
    w.gpulibs()
        .args([
            "install",
            "--cpu",
            "--no-reuse",
            "--no-verify",
            "--manifest",
        ])
        .arg(&unsigned)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not trusted"));
    assert!(w.current().is_none());
    let out = stdout_of(
        w.gpulibs()
            .args([
                "--json",
                "install",
                "--cpu",
                "--no-reuse",
                "--no-verify",
                "--allow-unsigned",
                "--manifest",
            ])
            .arg(&unsigned),
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["variant"], "cpu");
    assert_eq!(report["components"].as_array().unwrap().len(), 2);
    assert_eq!(report["install_id"], w.current().unwrap().as_str());
    // Planning the same release again: its archives are in the store, nothing to download,
    // and the plan says so per component (docs/reuse.md, `in_store`).
    let plan: serde_json::Value = serde_json::from_str(&stdout_of(
        w.gpulibs()
            .args([
                "--json",
                "plan",
                "--cpu",
                "--no-reuse",
                "--allow-unsigned",
                "--manifest",
            ])
            .arg(&unsigned),
    ))
    .unwrap();
    let planned = plan["plan"]["chosen"]["components"].as_array().unwrap();
    assert_eq!(planned.len(), 2, "{plan}");
    assert!(
        planned
            .iter()
            .all(|c| c["in_store"] == true && c["download_bytes"] == 0),
        "{plan}"
    );
    assert_eq!(plan["plan"]["totals"]["download_bytes"], 0);
    w.gpulibs()
        .args([
            "plan",
            "--cpu",
            "--no-reuse",
            "--allow-unsigned",
            "--manifest",
        ])
        .arg(&unsigned)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "manifest archive, already in the store",
        ));
    assert!(report["downloaded_bytes"].as_u64().unwrap() > 0);
    // Without --app no receipt is written.
    assert!(!w.receipt().exists());

    // Reuse: cuBLAS 13 is in a PyTorch-like environment the scan finds (through
    // LD_LIBRARY_PATH, searched first); the install records it, `env` hands its directory and
    // files over, `status` notices when it goes.
    let cu13 = fake_cu13(&w.tmp.path().join("venv"));
    let ort = w.serve("ort", "1.0", "ort-1.tar.zst", ort_archive(b"ort one"));
    let cublas = w
        .serve(
            "cublas",
            "13.0",
            "cublas.tar.zst",
            lib_archive("libcublas.so.13", b"never"),
        )
        .providing(&["libcublasLt.so.13", "libcublas.so.13"]);
    let reuse = w.manifest("reuse.toml", "1.1", &[ort, cublas]);
    let with_system = |cmd: &mut Command| {
        cmd.env("LD_LIBRARY_PATH", &cu13);
    };
    let mut cmd = w.gpulibs();
    with_system(&mut cmd);
    cmd.args(["--json", "install", "--cpu", "--no-verify", "--manifest"])
        .arg(&reuse)
        .args(["--public-key", &world::key().public_key()]);
    let report: serde_json::Value = serde_json::from_str(&stdout_of(&mut cmd)).unwrap();
    let served = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cublas")
        .unwrap();
    assert_eq!(served["action"], "system", "{report}");
    // Every component says why it comes from where it does; the reused one, from where and
    // by which rules (docs/reuse.md).
    assert_eq!(served["why"]["kind"], "reused", "{report}");
    assert_eq!(served["why"]["dir"], cu13.to_str().unwrap(), "{report}");
    assert!(
        !served["why"]["accepted_by"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(
        report["components"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["why"]["kind"].is_string()),
        "{report}"
    );
    assert!(w.server.requests("cublas.tar.zst").is_empty());
    let id = w.current().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(w.gpulibs().args(["env", "--format", "json"]))).unwrap();
    assert_eq!(json["install_id"], id.as_str());
    // The root's view reaches the reused libraries (the install's lib/ links them by SONAME):
    // the root alone is the library path, and the preload names resolve into the venv.
    let root = w.root();
    assert_eq!(json["lib_dirs"], serde_json::json!([root]));
    assert_eq!(
        json["preload"],
        serde_json::json!([root.join("libcublasLt.so.13"), root.join("libcublas.so.13")])
    );
    assert_eq!(json["ld_library_path"], root.display().to_string());
    for name in ["libcublasLt.so.13", "libcublas.so.13"] {
        assert_eq!(
            root.join(name).canonicalize().unwrap(),
            cu13.join(name).canonicalize().unwrap(),
            "{name}"
        );
    }
    std::fs::remove_file(cu13.join("libcublas.so.13")).unwrap();
    w.gpulibs()
        .arg("status")
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            cu13.join("libcublas.so.13").display().to_string(),
        ))
        .stdout(predicate::str::contains("--no-reuse"));
}

#[test]
fn digest_mismatch_keeps_the_previous_install_and_names_both_digests() {
    let w = World::new();
    stdout_of(&mut w.install(&w.v1()));
    let first = w.current().unwrap();
    let v2 = w.v2(b"x2");
    w.server.set_default("extra-2.tar.zst", Reply::WrongBytes);
    let expected = sha256_hex(&lib_archive("libextra.so.1", b"x2"));
    w.install(&v2)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "expected {expected}, got "
        )))
        .stderr(predicate::str::contains(format!(
            "install {first} stays active"
        )))
        .stderr(predicate::str::contains("hint:"));
    assert_eq!(w.current(), Some(first));
    assert!(std::fs::read_dir(w.root().join("downloads"))
        .map(|d| d.count() == 0)
        .unwrap_or(true));
}

#[test]
fn offline_directory_install() {
    let w = World::new();
    let v1 = w.v1();
    let dir = w.tmp.path().join("usb");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("ort-1.tar.zst"), ort_archive(b"ort one")).unwrap();
    std::fs::write(
        dir.join("extra-1.tar.zst"),
        lib_archive("libextra.so.1", b"x1"),
    )
    .unwrap();
    w.server.clear_log();
    let out = stdout_of(w.install(&v1).arg("--offline").arg(&dir));
    assert!(out.contains("offline file"), "{out}");
    assert!(w.server.log().is_empty());
    assert!(w.current().is_some());
}

#[test]
fn verification_failure_activates_nothing() {
    let w = World::new();
    // The test's ONNX Runtime is not a library: verify must fail and nothing become active.
    let v1 = w.v1();
    let mut cmd2 = w.gpulibs();
    cmd2.arg("install")
        .arg("--manifest")
        .arg(&v1)
        .args(["--public-key", &world::key().public_key()])
        .args(["--cpu", "--no-reuse"]);
    cmd2.assert()
        .code(1)
        .stderr(predicate::str::contains("verification of install"))
        .stderr(predicate::str::contains("it was not activated"));
    assert!(w.current().is_none());
}

#[test]
fn a_second_install_waits_for_the_lock_or_refuses_with_no_wait() {
    let w = World::new();
    let v1 = w.v1();
    let store = w.store();
    let held = store.try_lock().unwrap();
    let refused =
        w.install(&v1)
            .arg("--no-wait")
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "another gpulibs install (pid {}) holds the lock",
                std::process::id()
            )));
    // The store's step and the command's flag, each once, as hints after the causes.
    world::snapshot(
        "install_locked_no_wait",
        refused.get_output(),
        &[(w.tmp.path(), "[TMP]")],
    );
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert_eq!(
        stderr
            .matches("\n  hint: wait for the other install to finish\n")
            .count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("\n  hint: run again without --no-wait to queue behind the other install\n")
            .count(),
        1,
        "{stderr}"
    );
    let mut child = w
        .install(&v1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "did not wait for the lock"
    );
    assert!(w.current().is_none());
    drop(held);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("waiting for another gpulibs install"),
        "{stderr}"
    );
    assert!(w.current().is_some());
}

/// The current install is the old one or the new one, and complete.
fn assert_invariant(w: &World, old: &str, new_extra: &[u8]) {
    let store = w.store();
    let current = store.current_id().unwrap().expect("something stays active");
    assert!(store.check_install(&current).unwrap().is_empty());
    let a = activate_at(&w.root()).unwrap();
    assert_eq!(a.install_id, current);
    let extra = std::fs::read(store.install_dir(&current).join("lib/libextra.so.1")).unwrap();
    if current == old {
        assert_eq!(extra, b"x1");
    } else {
        assert_eq!(extra, new_extra);
    }
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.receipt()).unwrap()).unwrap();
    assert!(receipt["libsPath"]
        .as_str()
        .unwrap()
        .ends_with("current/lib"));
}

#[test]
fn sigkill_during_a_trickled_download_then_the_next_run_resumes_with_range() {
    let w = World::new();
    stdout_of(&mut w.install(&w.v1()));
    let old = w.current().unwrap();
    // About 1.5 MB that does not compress, trickled at about 1.6 MB/s.
    let payload = noise(1_500_000, 42);
    let v2 = w.v2(&payload);
    w.server.set_default(
        "extra-2.tar.zst",
        Reply::trickle(16 * 1024, Duration::from_millis(10)),
    );
    let mut partial_seen = false;
    for delay_ms in [150u64, 400, 700, 1000] {
        let mut child = w
            .install(&v2)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(delay_ms) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_invariant(&w, &old, &payload);
        let partial = w.root().join("downloads").join(format!(
            "{}.partial",
            sha256_hex(&lib_archive("libextra.so.1", &payload))
        ));
        if std::fs::metadata(&partial)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
        {
            partial_seen = true;
        }
        if w.current() != Some(old.clone()) {
            break; // it finished before the kill
        }
    }
    assert!(partial_seen, "no kill landed during the download");
    w.server.set_default("extra-2.tar.zst", Reply::Serve);
    let out = stdout_of(&mut w.install(&v2));
    assert!(
        out.contains("resumed") || w.current() != Some(old.clone()),
        "{out}"
    );
    assert_invariant(&w, &old, &payload);
    assert_ne!(w.current(), Some(old));
    let ranges: Vec<u64> = w
        .server
        .requests("extra-2.tar.zst")
        .into_iter()
        .filter_map(|s| s.range_start)
        .collect();
    assert!(
        ranges.iter().any(|&r| r > 0),
        "no request resumed with Range: {:?}",
        w.server.requests("extra-2.tar.zst")
    );
    // Nothing left behind: no partial, no archive, no temporaries.
    assert_eq!(
        std::fs::read_dir(w.root().join("downloads"))
            .unwrap()
            .count(),
        0
    );
    for dir in ["store", "installs"] {
        for e in std::fs::read_dir(w.root().join(dir)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with('.'), "left behind: {dir}/{name}");
        }
    }
}

/// SIGTERM while an update is downloading and unpacking (issue #16: nothing left behind when
/// interrupted): exit 143, v1 still active, the store's and the installs' temporaries gone at
/// once (not only at the next run), the `.partial` kept so the next run resumes; then the next
/// run completes.
#[test]
fn sigterm_during_an_install_exits_143_removing_its_temporaries_and_keeping_the_partial() {
    let w = World::new();
    stdout_of(&mut w.install(&w.v1()));
    let old = w.current().unwrap();
    let payload = noise(1_500_000, 7);
    let v2 = w.v2(&payload);
    w.server.set_default(
        "extra-2.tar.zst",
        Reply::trickle(16 * 1024, Duration::from_millis(10)),
    );
    let partial = w.root().join("downloads").join(format!(
        "{}.partial",
        sha256_hex(&lib_archive("libextra.so.1", &payload))
    ));
    let temporaries = |w: &World| -> Vec<String> {
        ["store", "installs"]
            .iter()
            .flat_map(|dir| {
                std::fs::read_dir(w.root().join(dir))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(move |e| format!("{dir}/{}", e.file_name().to_string_lossy()))
            })
            .filter(|p| p.contains("/."))
            .collect()
    };
    let mut child = w
        .install(&v2)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Mid-transfer: bytes in the .partial and the unpacker's temporary in the store.
    let in_progress = |w: &World| {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 100_000) && !temporaries(w).is_empty()
    };
    while !in_progress(&w) {
        assert!(child.try_wait().unwrap().is_none(), "install ended early");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no download in progress after 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on the child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert_eq!(w.current(), Some(old.clone()), "v1 stays active");
    assert_eq!(temporaries(&w), Vec::<String>::new(), "{stderr}");
    assert!(
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0),
        "the .partial is kept for the next run"
    );
    w.server.set_default("extra-2.tar.zst", Reply::Serve);
    stdout_of(&mut w.install(&v2));
    assert_ne!(w.current(), Some(old));
    assert!(w
        .server
        .requests("extra-2.tar.zst")
        .iter()
        .any(|r| r.range_start.is_some_and(|s| s > 0)));
}

/// Hostile manifests through the binary (issue #16, items 3 and 4): with v1 active, `plan` and
/// `install` refuse each one with its problem and a hint, nothing is made outside the root
/// (where a link to `<tmp>/escape` would land), and v1 stays current.
#[test]
fn hostile_manifests_are_refused_by_plan_and_install() {
    let w = World::new();
    stdout_of(&mut w.install(&w.v1()));
    let first = w.current().unwrap();
    let v2 = std::fs::read_to_string(w.v2(b"x2")).unwrap();
    let escape = w.tmp.path().join("escape");
    let listed = |path: &str, sha256: &str, links: &str| {
        v2.replacen(
            "format = \"tar.zst\"\n\n[[variants]]",
            &format!(
                "format = \"tar.zst\"\n\n[[components.files]]\npath = \"{path}\"\n\
                 sha256 = \"{sha256}\"\nsize = 2\nsoname_links = [{links}]\n\n[[variants]]"
            ),
            1,
        )
    };
    let right = sha256_hex(b"x2");
    let wrong = sha256_hex(b"not x2");
    let rows: Vec<(&str, String, bool, Vec<String>)> = vec![
        (
            "link to an absolute path",
            listed(
                "lib/libextra.so.1",
                &right,
                &format!("\"{}\"", escape.display()),
            ),
            true,
            vec![format!(
                "declares the SONAME link `{}`, which is not a bare file name",
                escape.display()
            )],
        ),
        (
            "link climbing out",
            listed("lib/libextra.so.1", &right, "\"../../escape\""),
            true,
            vec!["the SONAME link `../../escape`, which is not a bare file name".into()],
        ),
        (
            "absolute path",
            listed("/etc/passwd", &right, ""),
            true,
            vec!["path `/etc/passwd` is not a relative path inside the install root".into()],
        ),
        (
            "duplicate ids",
            v2.replacen("id = \"extra\"", "id = \"ort\"", 1),
            true,
            vec!["component id `ort` is used 2 times".into()],
        ),
        (
            "a listed file with another sha256",
            listed("lib/libextra.so.1", &wrong, ""),
            false,
            vec![
                format!("install {first} stays active"),
                format!("archive entry `lib/libextra.so.1` has sha256 {right}; the manifest lists {wrong}"),
            ],
        ),
    ];
    for (name, text, invalid, says) in rows {
        assert_ne!(text, v2, "{name}");
        let path = w.tmp.path().join("hostile.toml");
        world::write_signed(&path, &text);

        let mut runs = vec![("install", w.install(&path))];
        if invalid {
            let mut plan = w.gpulibs();
            plan.args(["plan", "--cpu", "--no-reuse", "--manifest"])
                .arg(&path)
                .args(["--public-key", &world::key().public_key()]);
            runs.push(("plan", plan));
        }
        for (command, mut cmd) in runs {
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name}, {command}: {stderr}");
            let mut wants = says.clone();
            wants.push("hint:".into());
            if invalid {
                wants.push("the manifest is invalid".into());
            }
            for want in wants {
                assert!(
                    stderr.contains(&want),
                    "{name}, {command}: {want:?} not in: {stderr}"
                );
            }
            assert!(
                escape.symlink_metadata().is_err(),
                "{name}: {} made",
                escape.display()
            );
            assert_eq!(w.current().as_ref(), Some(&first), "{name}, {command}");
        }
    }
}

/// A signed manifest with a GPU variant `gpu` (ONNX Runtime with sm_86 kernels) and `cpu`.
fn gpu_and_cpu_manifest(w: &World) -> PathBuf {
    let gpu = w.serve("ort-gpu", "1.0", "ort-gpu.tar.zst", ort_archive(b"ort gpu"));
    let cpu = w.serve("ort-cpu", "1.0", "ort-cpu.tar.zst", ort_archive(b"ort cpu"));
    let mut text = String::from("schema_version = 1\napp = \"testapp\"\nversion = \"1.0\"\n\n");
    for (c, cuda, coverage) in [
        (
            &gpu,
            "cuda = \"12.8\"\n",
            "[components.coverage]\nsass = [\"sm_86\"]\n",
        ),
        (&cpu, "", ""),
    ] {
        text.push_str(&format!(
            "[[components]]\nid = \"{}\"\nkind = \"onnxruntime\"\nversion = \"1.0\"\n{cuda}\
             [components.archive]\nurl = \"{}\"\nsha256 = \"{}\"\nsize = {}\nunpacked_size = {}\n\
             format = \"tar.zst\"\n{coverage}\n",
            c.id, c.url, c.sha256, c.size, c.unpacked
        ));
    }
    text.push_str(
        "[[variants]]\nname = \"gpu\"\ncomponents = [\"ort-gpu\"]\n\n\
         [[variants]]\nname = \"cpu\"\ndevice = \"cpu\"\ncomponents = [\"ort-cpu\"]\n",
    );
    let path = w.tmp.path().join("gpu.toml");
    world::write_signed(&path, &text)
}

#[test]
fn an_install_that_ends_on_the_cpu_runtime_says_why_and_the_fix() {
    let w = World::new();
    let m = gpu_and_cpu_manifest(&w);
    // NVML cannot be loaded here (the World points it at a missing file): no usable GPU.
    let mut cmd = w.gpulibs();
    cmd.arg("install").arg("--manifest").arg(&m).args([
        "--public-key",
        &world::key().public_key(),
        "--no-verify",
    ]);
    let out = stdout_of(&mut cmd);
    assert!(out.contains("(variant cpu,"), "{out}");
    assert!(
        out.contains("not GPU: CPU runtime: no usable GPU: "),
        "{out}"
    );
    assert!(out.contains("fix: "), "{out}");
    let json = stdout_of(
        w.gpulibs()
            .args(["--json", "install", "--manifest"])
            .arg(&m)
            .args(["--public-key", &world::key().public_key(), "--no-verify"]),
    );
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(report["why_cpu"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("no usable GPU"));
    assert!(report["why_cpu"]["fix"].is_string());
}

#[test]
fn install_for_a_gpu_this_machine_lacks_is_deferred_and_status_shows_it() {
    let w = World::new();
    let m = gpu_and_cpu_manifest(&w);
    let mut cmd = w.gpulibs();
    cmd.arg("install")
        .arg("--manifest")
        .arg(&m)
        .args(["--public-key", &world::key().public_key()])
        .args(["--gpu", "8.6", "--driver-cuda", "13.0"]);
    let out = stdout_of(&mut cmd);
    assert!(out.contains("(variant gpu,"), "{out}");
    assert!(
        out.contains("verify: deferred: installed for sm_86 (--gpu)"),
        "{out}"
    );
    assert!(out.contains("gpulibs status --verify"), "{out}");
    let record = w.store().current().unwrap().unwrap();
    assert_eq!(
        record.verification.unwrap().state,
        gpulibs_store::VerificationState::Deferred
    );
    // This machine has no GPU: status says so, and that the install is not yet verified.
    let out = w.gpulibs().args(["--json", "status"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["health"]["verification"], "deferred");
    assert!(status["health"]["message"]
        .as_str()
        .unwrap()
        .contains("not yet verified"));
    assert_eq!(status["install"]["verification"]["state"], "deferred");
}

#[test]
fn status_verify_runs_the_probe_on_the_active_install_and_records_the_result() {
    let w = World::new();
    let v1 = w.v1();
    let out = stdout_of(&mut w.install(&v1));
    assert!(out.contains("verify: skipped (--no-verify)"), "{out}");
    let record = w.store().current().unwrap().unwrap();
    assert_eq!(
        record.verification.unwrap().state,
        gpulibs_store::VerificationState::Skipped
    );
    // The test's ONNX Runtime is not a library: the probe, run by `gpulibs verify` in a child
    // process, fails; the failure is recorded and status is not ok.
    let out = w
        .gpulibs()
        .args(["--json", "status", "--app", "testapp", "--verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["verified"]["passed"], false, "{status}");
    assert!(status["verified"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("failed ("));
    assert_eq!(status["health"]["verification"], "failed");
    assert!(status["health"]["message"]
        .as_str()
        .unwrap()
        .contains("last verification failed"));
    let record = w.store().current().unwrap().unwrap();
    assert_eq!(
        record.verification.unwrap().state,
        gpulibs_store::VerificationState::Failed
    );
}
