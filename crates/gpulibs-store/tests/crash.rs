//! Crash safety. An install of "latest" over an active "modern" install is interrupted at every
//! named step (an injected failure) and at many moments (a real SIGKILL of a child process).
//! Each time, the invariant: `current` is the old install or the new one, complete and
//! loadable, never a mix; then the next run resumes (components already in the store are not
//! unpacked again) and completes, leaving no temporaries behind.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gpulibs_store::*;

const CHILD_ENV: &str = "GPULIBS_STORE_CRASH_CHILD_ROOT";
const FILE_LEN: usize = 64 * 1024;

struct World {
    old: Vec<Fixture>,
    new: Vec<Fixture>,
}

impl World {
    fn new() -> Self {
        let cudnn_next = component(
            "cudnn",
            "9.16.0",
            &[
                ("libcudnn.so.9.16.0", &["libcudnn.so.9"]),
                ("libcudnn_graph.so.9.16.0", &["libcudnn_graph.so.9"]),
                ("libcudnn_ops.so.9.16.0", &["libcudnn_ops.so.9"]),
            ],
            FILE_LEN,
        );
        Self {
            old: vec![cuda(FILE_LEN), cudnn(FILE_LEN), ort("modern", FILE_LEN)],
            new: vec![cuda(FILE_LEN), cudnn_next, ort("latest", FILE_LEN)],
        }
    }

    fn old_spec(&self) -> InstallSpec {
        spec(
            "modern",
            &self.old.iter().collect::<Vec<_>>(),
            &[75, 80, 86],
        )
    }

    fn new_spec(&self) -> InstallSpec {
        spec(
            "latest",
            &self.new.iter().collect::<Vec<_>>(),
            &[89, 90, 120],
        )
    }

    fn install_new(&self, store: &Store) -> Result<InstallRecord> {
        install(
            store,
            &self.new.iter().collect::<Vec<_>>(),
            &self.new_spec(),
        )
    }

    /// A root with "modern" active and the seed-compatible receipt written; returns its id.
    fn prepare(&self, root: &Path) -> String {
        let store = Store::open(root).unwrap();
        let record = install(
            &store,
            &self.old.iter().collect::<Vec<_>>(),
            &self.old_spec(),
        )
        .unwrap();
        store
            .try_lock()
            .unwrap()
            .write_seed_info(&receipt(root))
            .unwrap();
        record.id
    }
}

fn receipt(root: &Path) -> PathBuf {
    root.parent()
        .unwrap()
        .join("config/app/gpu-package-info.json")
}

/// The invariant, plus what the receipt says (it must always parse).
fn check(root: &Path, old: &str, context: &str) -> &'static str {
    let store = Store::open(root).unwrap();
    let id = store
        .current_id()
        .unwrap()
        .expect("an install stays active");
    let record = store.install_record(&id).unwrap();
    let which = if id == old {
        "old"
    } else {
        assert_eq!(
            record.variant, "latest",
            "{context}: current is neither old nor new"
        );
        "new"
    };
    assert_whole(root, &[Some(id.as_str())], context);
    assert_view(root, true, context);
    let text = fs::read_to_string(receipt(root)).unwrap();
    let seed: SeedPackageInfo = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{context}: receipt unreadable: {e}: {text}"));
    assert!(
        ["modern", "latest"].contains(&seed.variant.as_str()),
        "{context}"
    );
    which
}

/// Runs the install again without faults: it must complete, unpack only what is still
/// missing, and leave nothing temporary.
fn resume_and_complete(world: &World, root: &Path, context: &str) {
    let store = Store::open(root).unwrap();
    let missing = world
        .new
        .iter()
        .filter(|f| !store.has_component(&f.spec.sha256))
        .count();
    let commits = Arc::new(AtomicUsize::new(0));
    let counter = commits.clone();
    let hooked = Store::open(root)
        .unwrap()
        .with_step_hook(Arc::new(move |p| {
            if p == FaultPoint::ComponentCommitted {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }));
    let record = world
        .install_new(&hooked)
        .unwrap_or_else(|e| panic!("{context}: the next run fails: {e}"));
    assert_eq!(
        commits.load(Ordering::SeqCst),
        missing,
        "{context}: only missing components are unpacked"
    );
    assert_eq!(
        store.current_id().unwrap().as_deref(),
        Some(record.id.as_str())
    );
    assert_whole(root, &[Some(record.id.as_str())], context);
    // The next run leaves no stale view link (cuDNN 9.16's names replaced 9.15's).
    let linked = assert_view(root, false, context);
    assert!(
        linked.iter().any(|n| n == "libcudnn.so.9.16.0"),
        "{context}: {linked:?}"
    );
    assert!(
        !linked.iter().any(|n| n.starts_with("libcudnn.so.9.15")),
        "{context}: {linked:?}"
    );
    assert!(
        temporaries(root).is_empty(),
        "{context}: left {:?}",
        temporaries(root)
    );
    let seed: SeedPackageInfo = serde_json::from_slice(&fs::read(receipt(root)).unwrap()).unwrap();
    assert_eq!(
        seed.variant, "latest",
        "{context}: the receipt follows the install"
    );
}

#[test]
fn a_failure_at_every_step_leaves_old_or_new_and_the_next_run_completes() {
    let world = World::new();
    let mut outcomes = BTreeMap::new();
    for point in FaultPoint::ALL {
        // Steps seen many times are also failed at a later occurrence.
        let nths: &[usize] = match point {
            FaultPoint::EntryUnpacked | FaultPoint::FileLinked => &[1, 4, 9],
            FaultPoint::StagingStarted
            | FaultPoint::ComponentUnpacked
            | FaultPoint::ComponentCommitted => &[1, 2],
            _ => &[1],
        };
        for &nth in nths {
            let context = format!("failure at {point:?} #{nth}");
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("root");
            let old = world.prepare(&root);
            let hits = Arc::new(AtomicUsize::new(0));
            let seen = hits.clone();
            let hooked = Store::open(&root)
                .unwrap()
                .with_step_hook(Arc::new(move |p| {
                    if p == point && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth {
                        return Err(StoreError::Injected(p));
                    }
                    Ok(())
                }));
            let err = world.install_new(&hooked).unwrap_err();
            assert!(
                matches!(err, StoreError::Injected(p) if p == point),
                "{context}: {err}"
            );

            let which = check(&root, &old, &context);
            let want = if point >= FaultPoint::CurrentSwitched {
                "new"
            } else {
                "old"
            };
            assert_eq!(which, want, "{context}");
            outcomes.insert(context.clone(), which);
            resume_and_complete(&world, &root, &context);
        }
    }
    assert_eq!(outcomes.len(), 22);
}

/// The child side of the SIGKILL test: runs only when the parent sets the variable, installs
/// slowly, logging each step before pausing on it.
#[test]
fn crash_child() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let log = Mutex::new(
        fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(root.with_extension("steps"))
            .unwrap(),
    );
    let store = Store::open(&root)
        .unwrap()
        .with_step_hook(Arc::new(move |p| {
            writeln!(log.lock().unwrap(), "{p:?}").unwrap();
            std::thread::sleep(Duration::from_millis(2));
            Ok(())
        }));
    World::new().install_new(&store).unwrap();
}

#[test]
fn sigkill_at_any_moment_leaves_old_or_new_and_the_next_run_completes() {
    let world = World::new();
    let exe = std::env::current_exe().unwrap();
    let mut last_steps: BTreeMap<String, usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    // One whole child run gives the number of steps; then each run is killed once the child
    // has logged its k-th step, plus 0-2 ms, for k spread over the whole install.
    let total = {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        world.prepare(&root);
        let status = child(&exe, &root).wait().unwrap();
        assert!(status.success(), "the child installs when left alone");
        fs::read_to_string(root.with_extension("steps"))
            .unwrap()
            .lines()
            .count()
    };
    assert!(total > 30, "{total} steps");
    let stride = (total / 24).max(1);
    for k in (0..=total).step_by(stride) {
        let jitter = Duration::from_micros(700 * (k % 4) as u64);
        let context = format!("SIGKILL after step {k} of {total} + {jitter:?}");
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let old = world.prepare(&root);
        let log = root.with_extension("steps");
        let mut c = child(&exe, &root);
        loop {
            let seen = fs::read_to_string(&log)
                .map(|s| s.lines().count())
                .unwrap_or(0);
            if seen >= k || c.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(jitter);
        c.kill().unwrap(); // SIGKILL on Unix
        c.wait().unwrap();
        let steps = fs::read_to_string(&log).unwrap_or_default();
        let last = steps
            .lines()
            .last()
            .unwrap_or("(before any step)")
            .to_string();
        *last_steps.entry(last).or_default() += 1;
        let which = check(&root, &old, &context);
        *outcomes.entry(which).or_default() += 1;
        resume_and_complete(&world, &root, &context);
    }
    eprintln!("killed at: {last_steps:?}; outcomes: {outcomes:?}");
    assert!(
        last_steps.len() >= 8,
        "kills landed at too few distinct steps to mean much: {last_steps:?}"
    );
    assert!(
        outcomes.contains_key("old") && outcomes.contains_key("new"),
        "kills both before and after the switch: {outcomes:?}"
    );
}

fn child(exe: &Path, root: &Path) -> std::process::Child {
    Command::new(exe)
        .args(["crash_child", "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
