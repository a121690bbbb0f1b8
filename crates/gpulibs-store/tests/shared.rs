//! The store shared by app roots: registrations, leases, the store lock, and what `gc` may
//! delete while other apps install, with threads and real processes racing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use gpulibs_store::*;

/// Two app roots `a` and `b` sharing the store at `<tmp>/home`.
fn two_apps(tmp: &Path) -> (Store, Store, PathBuf) {
    let home = tmp.join("home");
    let a = Store::open_in(tmp.join("a"), &home).unwrap();
    let b = Store::open_in(tmp.join("b"), &home).unwrap();
    (a, b, home)
}

fn stage(lock: &InstallLock<'_>, f: &Fixture) {
    let mut stager = lock.stage_component(&f.spec.sha256, f.limits()).unwrap();
    stager.unpack_tar(&f.archive[..], f.format).unwrap();
    stager.commit().unwrap();
}

#[test]
fn components_live_once_in_the_shared_store_for_both_apps() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, home) = two_apps(tmp.path());
    let (c, o) = (cuda(1000), ort("x", 1000));
    install(&a, &[&c, &o], &spec("x", &[&c, &o], &[86])).unwrap();
    assert!(home.join("store").join(&c.spec.sha256).is_dir());
    assert!(b.has_component(&c.spec.sha256), "b sees what a stored");
    assert!(!tmp.path().join("a/store").join(&c.spec.sha256).exists());
    // b builds its generation from the store without staging anything.
    let lock = b.try_lock().unwrap();
    let r = lock.new_install(&spec("x", &[&c, &o], &[86])).unwrap();
    lock.activate(&r.id).unwrap();
    assert!(b.check_install(&r.id).unwrap().is_empty());
}

#[test]
fn without_a_lease_gc_deletes_an_unlinked_component_and_with_one_it_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, _) = two_apps(tmp.path());
    let (c, d) = (cuda(500), cudnn(500));
    // b stored both and has not built its generation yet.
    let lock_b = b.try_lock().unwrap();
    stage(&lock_b, &c);
    stage(&lock_b, &d);
    let lease = lock_b.lease(std::slice::from_ref(&c.spec.sha256)).unwrap();
    assert_eq!(lease.components(), std::slice::from_ref(&c.spec.sha256));

    let gc = a.try_lock().unwrap().gc(0).unwrap();
    assert_eq!(
        gc.removed_components,
        std::slice::from_ref(&d.spec.sha256),
        "{gc:?}"
    );
    assert_eq!(
        gc.kept_for_others,
        std::slice::from_ref(&c.spec.sha256),
        "{gc:?}"
    );
    assert!(b.has_component(&c.spec.sha256));

    drop(lease);
    let gc = a.try_lock().unwrap().gc(0).unwrap();
    assert_eq!(
        gc.removed_components,
        std::slice::from_ref(&c.spec.sha256),
        "{gc:?}"
    );
}

#[test]
fn gc_racing_installs_of_another_app_never_deletes_what_they_link() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, _) = two_apps(tmp.path());
    let o = ort("x", 300);
    let parts: Vec<Fixture> = (0..25)
        .map(|i| {
            component(
                &format!("c{i}"),
                "1",
                &[(&format!("libc{i}.so.1"), &[])],
                300,
            )
        })
        .collect();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let collector = s.spawn(|| {
            let mut runs = 0;
            while !done.load(Ordering::Relaxed) {
                a.lock(|_| {}).unwrap().gc(0).unwrap();
                runs += 1;
            }
            runs
        });
        let installed = parts.iter().try_for_each(|p| {
            let lock = b.lock(|_| {})?;
            let _lease = lock.lease(&[o.spec.sha256.clone(), p.spec.sha256.clone()])?;
            for f in [&o, p] {
                if !b.has_component(&f.spec.sha256) {
                    stage(&lock, f);
                }
            }
            // The window a gc without leases would use.
            std::thread::sleep(Duration::from_millis(2));
            let r = lock.new_install(&spec("x", &[&o, p], &[86]))?;
            lock.activate(&r.id).map(|_| ())
        });
        done.store(true, Ordering::Relaxed);
        assert!(collector.join().unwrap() > 0);
        installed.expect("every install found its components");
    });
    for r in b.installs().unwrap() {
        assert!(b.check_install(&r.id).unwrap().is_empty(), "{}", r.id);
        for c in &r.components {
            assert!(b.has_component(&c.sha256), "{} lost {}", r.id, c.id);
        }
    }
    assert_eq!(b.installs().unwrap().len(), parts.len());
}

/// Run by `a_lease_held_by_another_process_...` as a child process: takes a lease on the
/// component named in `LEASE_SHA` in the store at `LEASE_HOME` for the root `LEASE_ROOT`,
/// says so in `LEASE_READY`, and sleeps until killed.
#[test]
#[ignore = "a child process of the lease test"]
fn child_holds_a_lease() {
    let (Ok(home), Ok(root), Ok(sha), Ok(ready)) = (
        std::env::var("LEASE_HOME"),
        std::env::var("LEASE_ROOT"),
        std::env::var("LEASE_SHA"),
        std::env::var("LEASE_READY"),
    ) else {
        return;
    };
    let store = Store::open_in(root, home).unwrap();
    let lock = store.try_lock().unwrap();
    let _lease = lock.lease(&[sha]).unwrap();
    fs::write(ready, "ready").unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_lease_held_by_another_process_keeps_its_component_until_that_process_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, home) = two_apps(tmp.path());
    let c = cuda(500);
    stage(&b.try_lock().unwrap(), &c);
    let ready = tmp.path().join("ready");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_holds_a_lease", "--ignored", "--nocapture"])
        .env("LEASE_HOME", &home)
        .env("LEASE_ROOT", b.root())
        .env("LEASE_SHA", &c.spec.sha256)
        .env("LEASE_READY", &ready)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ready.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "child never ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let gc = a.try_lock().unwrap().gc(0).unwrap();
    assert!(gc.removed_components.is_empty(), "{gc:?}");
    assert!(b.has_component(&c.spec.sha256));

    // kill -9: the kernel drops its flock, the next gc finds the lease stale.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(fs::read_dir(home.join("leases")).unwrap().count(), 1);
    let gc = a.try_lock().unwrap().gc(0).unwrap();
    assert_eq!(
        gc.removed_components,
        std::slice::from_ref(&c.spec.sha256),
        "{gc:?}"
    );
    assert_eq!(fs::read_dir(home.join("leases")).unwrap().count(), 0);
}

#[test]
fn an_unreadable_registered_root_keeps_every_shared_component() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, _) = two_apps(tmp.path());
    let (c, o) = (cuda(500), ort("x", 500));
    install(&b, &[&c, &o], &spec("x", &[&c, &o], &[86])).unwrap();
    let id = b.current_id().unwrap().unwrap();
    // b's record no longer parses: which components it uses is unknown.
    fs::write(b.install_dir(&id).join("install.json"), b"{ not json").unwrap();
    let lock = a.try_lock().unwrap();
    let gc = lock.gc(0).unwrap();
    assert!(gc.removed_components.is_empty(), "{gc:?}");
    assert_eq!(gc.unreadable_roots, [fs::canonicalize(b.root()).unwrap()]);
    assert!(a.has_component(&c.spec.sha256) && a.has_component(&o.spec.sha256));
}

#[test]
fn staging_leftovers_are_cleaned_only_when_their_process_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b, home) = two_apps(tmp.path());
    let sha = "e".repeat(64);
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let mut alive = Command::new("sleep").arg("30").spawn().unwrap();
    let store = home.join("store");
    let gone = store.join(format!(".tmp-{sha}-{dead_pid}-0"));
    let busy = store.join(format!(".tmp-{sha}-{}-0", alive.id()));
    fs::create_dir_all(gone.join("tree")).unwrap();
    fs::create_dir_all(busy.join("tree")).unwrap();
    let lock = a.try_lock().unwrap();
    let gc = lock.gc(0).unwrap();
    assert!(gc.removed_temporaries.contains(&gone), "{gc:?}");
    assert!(!gone.exists());
    assert!(busy.is_dir(), "another process is still unpacking into it");
    alive.kill().unwrap();
    alive.wait().unwrap();
}

#[test]
fn remove_of_a_self_contained_root_keeps_its_store_while_another_root_uses_it() {
    let tmp = tempfile::tempdir().unwrap();
    // `a` is self-contained (its store's home is itself); `b` uses a's store
    // (`GPULIBS_STORE=<a>`).
    let a_root = tmp.path().join("a");
    let a = Store::open(&a_root).unwrap();
    let b = Store::open_in(tmp.path().join("b"), &a_root).unwrap();
    let (c, o) = (cuda(500), ort("x", 500));
    install(&b, &[&c, &o], &spec("x", &[&c, &o], &[86])).unwrap();
    let report = a.try_lock().unwrap().remove().unwrap();
    assert!(!report.root_removed, "{report:?}");
    assert!(report.kept.contains(&a_root.join("store")), "{report:?}");
    assert!(b
        .check_install(&b.current_id().unwrap().unwrap())
        .unwrap()
        .is_empty());
    assert!(b.has_component(&c.spec.sha256));
}

#[test]
fn a_store_on_another_file_system_is_linked_by_absolute_symlinks_and_kept_for_them() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let other_fs = match tempfile::tempdir_in("/dev/shm") {
        Ok(d)
            if fs::metadata(d.path()).unwrap().dev() != fs::metadata(tmp.path()).unwrap().dev() =>
        {
            d
        }
        _ => {
            eprintln!("skipped: /dev/shm is not another file system here");
            return;
        }
    };
    let home = other_fs.path().join("home");
    let a = Store::open_in(tmp.path().join("a"), &home).unwrap();
    let (c, o) = (cuda(500), ort("x", 500));
    let r = install(&a, &[&c, &o], &spec("x", &[&c, &o], &[86])).unwrap();
    let lib = a.install_dir(&r.id).join("lib/libcudart.so.12.9.79");
    let target = fs::read_link(&lib).expect("EXDEV: a symlink, not a hard link");
    assert!(target.is_absolute(), "{target:?}");
    assert!(target.starts_with(home.join("store").join(&c.spec.sha256)));
    assert!(a.check_install(&r.id).unwrap().is_empty());
    assert!(activate_at(a.root()).is_ok());
    // The generation needs the store's files: gc keeps them while it exists.
    let gc = a.try_lock().unwrap().gc(0).unwrap();
    assert!(gc.removed_components.is_empty(), "{gc:?}");
    assert!(fs::read(&lib).is_ok());
}
