//! One component store for every app: two apps (`--app a`, `--app b`) with `XDG_DATA_HOME` in
//! a temp directory, run as a user runs them (the real binary, a real HTTP server on
//! 127.0.0.1 counting requests, signed manifests). The second app downloads nothing; `gc` and
//! `remove` of one app keep the other working; concurrent installs of both succeed; a root
//! laid out by the previous version (its own `store/`) keeps working; sizes count each file on
//! disk once.

#[path = "../../gpulibs-install/tests/support/mod.rs"]
mod support;
mod world;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gpulibs_store::activate_at;
use support::*;

impl World {
    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }
    /// Where app `app`'s root is: `$XDG_DATA_HOME/<app>/gpu-libs`.
    fn root(&self, app: &str) -> PathBuf {
        self.data().join(app).join("gpu-libs")
    }
    /// The shared store's components: `$XDG_DATA_HOME/gpulibs/store`.
    fn store(&self) -> PathBuf {
        self.data().join("gpulibs/store")
    }
    /// `gpulibs` with `XDG_DATA_HOME` (and no `GPULIBS_HOME`/`GPULIBS_STORE`).
    fn gpulibs(&self) -> Command {
        let mut cmd = world::isolated_gpulibs(self.tmp.path(), &self.tmp.path().join("unused"));
        cmd.env_remove("GPULIBS_HOME")
            .env_remove("GPULIBS_STORE")
            .env("XDG_DATA_HOME", self.data());
        cmd
    }
    fn manifest(&self, name: &str, version: &str, components: &[TestComponent]) -> PathBuf {
        let path = self.tmp.path().join(name);
        let text = manifest_toml(version, components);
        world::write_signed(&path, &text)
    }
    fn serve(&self, id: &str, version: &str, name: &str, archive: Vec<u8>) -> TestComponent {
        let c = TestComponent::tar(id, version, self.server.url(name), &archive, 8 << 20);
        self.server.put(name, archive);
        c
    }
    fn ort(&self) -> TestComponent {
        self.serve(
            "ort",
            "1.0",
            "ort-1.tar.zst",
            ort_archive(&noise(1 << 20, 1)),
        )
    }
    fn extra(&self, n: u8) -> TestComponent {
        self.serve(
            "extra",
            &format!("{n}.0"),
            &format!("extra-{n}.tar.zst"),
            lib_archive("libextra.so.1", &noise(256 << 10, 100 + 2 * n as u64)),
        )
    }
    /// ONNX Runtime and `extra` version `n`.
    fn release(&self, n: u8) -> (PathBuf, TestComponent, TestComponent) {
        let (o, e) = (self.ort(), self.extra(n));
        let path = self.manifest(
            &format!("v{n}.toml"),
            &format!("{n}.0"),
            &[o.clone(), e.clone()],
        );
        (path, o, e)
    }
    fn install(&self, app: &str, manifest: &Path) -> Command {
        let mut cmd = self.gpulibs();
        cmd.arg("install")
            .arg("--manifest")
            .arg(manifest)
            .args(["--public-key", &world::key().public_key()])
            .args(["--cpu", "--no-reuse", "--no-verify", "--app", app]);
        cmd
    }
    fn requests(&self) -> Vec<String> {
        self.server.log().into_iter().map(|s| s.path).collect()
    }
}

fn run_ok(cmd: &mut Command) -> String {
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

fn json_of(cmd: &mut Command) -> serde_json::Value {
    serde_json::from_str(&run_ok(cmd.arg("--json"))).unwrap()
}

/// The app's active install loads: its ONNX Runtime library reads as served.
fn assert_works(w: &World, app: &str, ort_payload: &[u8]) {
    let a = activate_at(&w.root(app)).unwrap_or_else(|e| panic!("{app}: {e}"));
    assert_eq!(std::fs::read(&a.ort_library).unwrap(), ort_payload, "{app}");
}

fn ino(path: &Path) -> (u64, u64) {
    let m = std::fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

/// What is in the shared store, by name (components, temporaries, leases).
fn store_names(w: &World) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(w.store())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn a_second_app_downloads_nothing_and_gc_or_remove_of_one_keeps_the_other() {
    let w = World::new();
    let (v1, ort, extra1) = w.release(1);
    let ort_payload = noise(1 << 20, 1);

    // App a downloads both archives into the shared store.
    run_ok(&mut w.install("a", &v1));
    assert_eq!(sorted(w.requests()), ["/extra-1.tar.zst", "/ort-1.tar.zst"]);
    assert_eq!(
        store_names(&w),
        sorted(vec![ort.sha256.clone(), extra1.sha256.clone()])
    );
    assert!(
        !w.root("a").join("store").exists(),
        "components live in the shared store, not in the app's root"
    );

    // App b: nothing downloaded, both components from the store; and one copy on disk.
    w.server.clear_log();
    let report = json_of(&mut w.install("b", &v1));
    assert_eq!(w.requests(), Vec::<String>::new(), "b downloaded nothing");
    assert_eq!(report["downloaded_bytes"], 0, "{report}");
    assert_works(&w, "a", &ort_payload);
    assert_works(&w, "b", &ort_payload);
    let (la, lb) = (
        activate_at(&w.root("a")).unwrap().ort_library,
        activate_at(&w.root("b")).unwrap().ort_library,
    );
    assert_eq!(
        ino(&la),
        ino(&lb),
        "both apps hard-link the store's one file"
    );
    assert_eq!(
        ino(&la),
        ino(&w
            .store()
            .join(&ort.sha256)
            .join("tree/lib/libonnxruntime.so.1.2.3"))
    );

    // App a moves on twice (extra 2, then 3): its first generation is neither current nor
    // previous. gc of a deletes that generation but keeps extra 1, which b uses.
    let (v2, _, _) = w.release(2);
    let (v3, _, extra3) = w.release(3);
    run_ok(&mut w.install("a", &v2));
    run_ok(&mut w.install("a", &v3));
    let ids: Vec<String> = std::fs::read_dir(w.root("a").join("installs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let gc = json_of(w.gpulibs().args(["gc", "--app", "a"]));
    assert_eq!(gc["removed_installs"].as_array().unwrap().len(), 1, "{gc}");
    assert_eq!(gc["removed_components"], serde_json::json!([]), "{gc}");
    assert_eq!(
        gc["kept_for_others"],
        serde_json::json!([extra1.sha256]),
        "{gc}"
    );
    assert_eq!(
        gc["other_roots"],
        serde_json::json!([std::fs::canonicalize(w.root("b")).unwrap()]),
        "{gc}"
    );
    assert!(w.store().join(&extra1.sha256).is_dir());
    assert_works(&w, "b", &ort_payload);
    // The human report says why something stayed.
    let human = run_ok(w.gpulibs().args(["gc", "--app", "a"]));
    assert!(
        human.contains("kept 1 component(s) another app's install still uses"),
        "{human}"
    );

    // remove of b: the root goes, extra 1 (nobody else's) goes, ONNX Runtime (a's) stays.
    let removed = json_of(w.gpulibs().args(["remove", "--yes", "--app", "b"]));
    assert_eq!(removed["root_removed"], true, "{removed}");
    assert_eq!(
        removed["removed_components"],
        serde_json::json!([extra1.sha256]),
        "{removed}"
    );
    assert_eq!(
        removed["kept_for_others"],
        serde_json::json!([ort.sha256]),
        "{removed}"
    );
    assert!(!w.root("b").exists());
    assert!(!w.store().join(&extra1.sha256).exists());
    assert_works(&w, "a", &ort_payload);
    // a's current (extra 3) and previous (extra 2) are all that is left.
    assert!(w.store().join(&extra3.sha256).is_dir());
    assert_eq!(store_names(&w).len(), 3, "{:?}", store_names(&w));

    // The last app's remove empties the store.
    let removed = json_of(w.gpulibs().args(["remove", "--yes", "--app", "a"]));
    assert_eq!(removed["removed_components"].as_array().unwrap().len(), 3);
    assert_eq!(store_names(&w), Vec::<String>::new());
    let registry = w.data().join("gpulibs/roots");
    assert_eq!(std::fs::read_dir(registry).unwrap().count(), 0);
}

#[test]
fn a_registered_root_that_is_gone_is_forgotten_and_its_components_collected() {
    let w = World::new();
    let (v1, ort, extra1) = w.release(1);
    run_ok(&mut w.install("a", &v1));
    run_ok(&mut w.install("b", &v1));
    // Someone deletes b's root by hand: its generations no longer exist.
    std::fs::remove_dir_all(w.data().join("b")).unwrap();
    let (v2, _, _) = w.release(2);
    let (v3, _, _) = w.release(3);
    run_ok(&mut w.install("a", &v2));
    run_ok(&mut w.install("a", &v3));
    let gc = json_of(w.gpulibs().args(["gc", "--app", "a"]));
    assert_eq!(
        gc["dropped_roots"],
        serde_json::json!([w.root("b")]),
        "{gc}"
    );
    assert_eq!(
        gc["removed_components"],
        serde_json::json!([extra1.sha256]),
        "{gc}"
    );
    assert!(w.store().join(&ort.sha256).is_dir());
}

#[test]
fn concurrent_installs_of_two_apps_both_succeed_and_download_each_archive_once() {
    let w = World::new();
    let (v1, ort, extra1) = w.release(1);
    let spawn = |app: &str| {
        w.install(app, &v1)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    for (app, child) in [("a", a), ("b", b)] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{app}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        sorted(w.requests()),
        ["/extra-1.tar.zst", "/ort-1.tar.zst"],
        "the app that waited for the other's downloads found them stored"
    );
    assert_works(&w, "a", &noise(1 << 20, 1));
    assert_works(&w, "b", &noise(1 << 20, 1));
    // Consistent: the two components, whole, and no temporaries, leases or partials.
    assert_eq!(
        store_names(&w),
        sorted(vec![ort.sha256.clone(), extra1.sha256.clone()])
    );
    for sha in [&ort.sha256, &extra1.sha256] {
        assert!(w.store().join(sha).join("component.json").is_file());
    }
    let home = w.data().join("gpulibs");
    assert_eq!(std::fs::read_dir(home.join("leases")).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(home.join("downloads")).unwrap().count(),
        0
    );
    assert_eq!(std::fs::read_dir(home.join("roots")).unwrap().count(), 2);
}

/// Bytes of the regular files under `dir`, each inode once (what `du` counts, by size).
fn bytes_once(dir: &Path) -> (u64, u64) {
    let (mut once, mut naive) = (0, 0);
    let mut seen = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        } else if m.is_file() {
            naive += m.len();
            if seen.insert((m.dev(), m.ino())) {
                once += m.len();
            }
        }
    }
    (once, naive)
}

#[test]
fn remove_and_gc_count_each_file_on_disk_once() {
    let w = World::new();
    // A self-contained root (GPULIBS_HOME): its generations hard-link into its own store.
    let root = w.tmp.path().join("home-root");
    let gpulibs = || world::isolated_gpulibs(w.tmp.path(), &root);
    let (v1, _, _) = w.release(1);
    let (v2, _, _) = w.release(2);
    let (v3, _, extra3) = w.release(3);
    for v in [&v1, &v2, &v3] {
        let mut cmd = gpulibs();
        cmd.arg("install")
            .arg("--manifest")
            .arg(v)
            .args(["--public-key", &world::key().public_key()])
            .args(["--cpu", "--no-reuse", "--no-verify"]);
        run_ok(&mut cmd);
    }
    // gc removes the first generation and its extra 1: the generation's hard links and the
    // component's files are the same bytes, counted once.
    let first = std::fs::read_dir(root.join("installs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .min()
        .unwrap();
    let store = root.join("store");
    let extra1 = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.join("tree/lib/libextra.so.1").is_file()
                && std::fs::read(p.join("tree/lib/libextra.so.1")).unwrap() == noise(256 << 10, 102)
        })
        .unwrap();
    let (gen_once, _) = bytes_once(&first);
    let (comp_once, _) = bytes_once(&extra1);
    let record = std::fs::metadata(first.join("install.json")).unwrap().len();
    let gc = json_of(gpulibs().arg("gc"));
    assert_eq!(gc["removed_installs"].as_array().unwrap().len(), 1, "{gc}");
    assert_eq!(
        gc["removed_components"].as_array().unwrap().len(),
        1,
        "{gc}"
    );
    // The library shared by both is counted once; the generation's ONNX Runtime links into a
    // component that stays, so it frees nothing.
    assert_eq!(gc["freed_bytes"], comp_once + record, "{gc}");
    assert!(gen_once + comp_once > comp_once + record);

    // remove: every file under the root once, though each library has two or three names.
    let (once, naive) = bytes_once(&root);
    assert!(naive > once, "the test needs hard links: {naive} vs {once}");
    let removed = json_of(gpulibs().args(["remove", "--yes"]));
    assert_eq!(removed["freed_bytes"], once, "{removed}");
    assert!(!root.exists());
    let _ = extra3;
}

/// A root as the previous version made it: its own `store/`, generations hard-linked into it,
/// no store home entries.
fn previous_version_root(w: &World, app: &str, manifest: &Path) {
    let root = w.root(app);
    let mut cmd = world::isolated_gpulibs(w.tmp.path(), &root);
    cmd.arg("install")
        .arg("--manifest")
        .arg(manifest)
        .args(["--public-key", &world::key().public_key()])
        .args(["--cpu", "--no-reuse", "--no-verify", "--app", app]);
    run_ok(&mut cmd);
    for name in ["roots", "leases", "store.lock", "fetch.lock"] {
        let p = root.join(name);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else if p.exists() {
            std::fs::remove_file(&p).unwrap();
        }
    }
    assert!(root.join("store").is_dir() && root.join("downloads").is_dir());
}

#[test]
fn a_root_with_its_own_store_keeps_working_and_its_store_is_collected_locally() {
    let w = World::new();
    let (v1, ort, extra1) = w.release(1);
    previous_version_root(&w, "a", &v1);
    let ort_payload = noise(1 << 20, 1);
    w.server.clear_log();

    // The same release again: up to date, nothing downloaded.
    let out = run_ok(&mut w.install("a", &v1));
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(w.requests(), Vec::<String>::new());
    // An update: ONNX Runtime comes from the root's own store, only extra 2 is downloaded,
    // into the shared store.
    let (v2, _, extra2) = w.release(2);
    run_ok(&mut w.install("a", &v2));
    assert_eq!(w.requests(), ["/extra-2.tar.zst"]);
    assert!(w.store().join(&extra2.sha256).is_dir());
    assert!(w.root("a").join("store").join(&ort.sha256).is_dir());
    assert_works(&w, "a", &ort_payload);
    // Another app installs v1: the old root's store is its own, so b downloads.
    w.server.clear_log();
    run_ok(&mut w.install("b", &v1));
    assert_eq!(sorted(w.requests()), ["/extra-1.tar.zst", "/ort-1.tar.zst"]);

    // Generations past: extra 1 in a's own store goes when a no longer uses it.
    let (v3, _, _) = w.release(3);
    run_ok(&mut w.install("a", &v3));
    let gc = json_of(w.gpulibs().args(["gc", "--app", "a"]));
    assert_eq!(
        gc["removed_components"],
        serde_json::json!([extra1.sha256]),
        "{gc}"
    );
    assert!(!w.root("a").join("store").join(&extra1.sha256).exists());
    assert!(
        w.store().join(&extra1.sha256).is_dir(),
        "b's copy in the shared store stays"
    );
    assert_works(&w, "a", &ort_payload);
    assert_works(&w, "b", &ort_payload);

    // remove of a: its own store goes with it; b keeps working.
    let removed = json_of(w.gpulibs().args(["remove", "--yes", "--app", "a"]));
    assert_eq!(removed["root_removed"], true, "{removed}");
    assert_works(&w, "b", &ort_payload);
}

#[test]
fn an_interrupted_download_of_one_app_is_resumed_by_another() {
    let w = World::new();
    let (v1, _, _) = w.release(1);
    run_ok(&mut w.install("a", &v1));
    // extra 4: 1.5 MB, served slowly.
    let payload = noise(1_500_000, 7);
    let extra = w.serve(
        "extra",
        "4.0",
        "extra-4.tar.zst",
        lib_archive("libextra.so.1", &payload),
    );
    let v4 = w.manifest("v4.toml", "4.0", &[w.ort(), extra.clone()]);
    w.server.set_default(
        "extra-4.tar.zst",
        Reply::trickle(16 * 1024, std::time::Duration::from_millis(10)),
    );
    let home = w.data().join("gpulibs");
    let partial = home
        .join("downloads")
        .join(format!("{}.partial", extra.sha256));
    let staging = || -> Vec<String> {
        std::fs::read_dir(w.store())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    };
    let mut child = w
        .install("a", &v4)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let in_progress =
        || std::fs::metadata(&partial).is_ok_and(|m| m.len() > 100_000) && !staging().is_empty();
    while !in_progress() {
        assert!(child.try_wait().unwrap().is_none(), "install ended early");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: kill(2) on the child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    // Its staging directory and its lease are gone from the shared store; the partial stays.
    assert_eq!(staging(), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(home.join("leases")).unwrap().count(), 0);
    assert!(std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0));

    // App b installs the same release: it resumes a's download with a range request.
    w.server.set_default("extra-4.tar.zst", Reply::Serve);
    w.server.clear_log();
    run_ok(&mut w.install("b", &v4));
    let requests = w.server.requests("extra-4.tar.zst");
    assert!(
        requests
            .iter()
            .any(|r| r.range_start.is_some_and(|s| s > 0)),
        "b resumed the partial a left"
    );
    assert_works(&w, "b", &noise(1 << 20, 1));
}

#[test]
fn status_names_the_shared_store() {
    let w = World::new();
    let (v1, _, _) = w.release(1);
    run_ok(&mut w.install("a", &v1));
    let human = run_ok(w.gpulibs().args(["status", "--app", "a"]));
    assert!(
        human.contains(&format!("store   {}", w.store().display())),
        "{human}"
    );
    let json = json_of(w.gpulibs().args(["status", "--app", "a"]));
    assert_eq!(json["store"], serde_json::json!(w.store()), "{json}");
}
