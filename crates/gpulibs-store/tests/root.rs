//! The install root is gpulibs' own: the marker it writes when it creates a root, refusing a
//! directory holding anything else, adopting an earlier gpulibs' root, `remove` and `gc`
//! deleting only what gpulibs put there; and `activate` refusing an install it cannot use.
//! Real directories throughout.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use gpulibs_store::*;
use gpulibs_testkit::tree;

fn marker(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(root.join(ROOT_MARKER)).expect("the root has a marker"))
        .unwrap()
}

/// A user's directory: files at the top and in a sub-directory.
fn user_files(dir: &Path) {
    fs::create_dir_all(dir.join("photos")).unwrap();
    fs::write(dir.join("thesis.txt"), "four years of work").unwrap();
    fs::write(dir.join("photos/a.jpg"), "jpeg").unwrap();
}

#[test]
fn a_new_or_empty_directory_becomes_a_root_with_a_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let new = tmp.path().join("new/gpu-libs");
    Store::open(&new).unwrap();
    let m = marker(&new);
    assert_eq!(m["gpulibs_root"], 1);
    assert_eq!(m["origin"], "created");
    assert!(m["created_by"]
        .as_str()
        .unwrap()
        .starts_with("gpulibs-store "));

    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    Store::open(&empty).unwrap();
    assert_eq!(marker(&empty)["origin"], "created");
    // Opening again keeps the marker as it was.
    let before = fs::read(empty.join(ROOT_MARKER)).unwrap();
    Store::open(&empty).unwrap();
    assert_eq!(fs::read(empty.join(ROOT_MARKER)).unwrap(), before);
}

#[test]
fn a_directory_holding_other_files_is_refused_and_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    user_files(&home);
    let before = tree(&home);
    let e = Store::open(&home).unwrap_err();
    let msg = told(&e);
    assert!(matches!(e, StoreError::NotARoot { .. }), "{msg}");
    assert!(msg.contains(&home.display().to_string()), "{msg}");
    assert!(msg.contains("`photos`, `thesis.txt`"), "{msg}");
    assert!(msg.contains("GPULIBS_HOME"), "{msg}");
    assert_eq!(
        tree(&home),
        before,
        "nothing written into the user's directory"
    );
    // Reading it is refused the same way, and writes nothing either.
    assert!(matches!(
        Store::open_existing(&home),
        Err(StoreError::NotARoot { .. })
    ));
    assert_eq!(tree(&home), before);

    // A directory that merely holds an `installs/` folder is not a root either.
    let projects = tmp.path().join("projects");
    fs::create_dir_all(projects.join("installs/site")).unwrap();
    fs::write(projects.join("installs/site/index.html"), "<html>").unwrap();
    let before = tree(&projects);
    let msg = Store::open(&projects).unwrap_err().to_string();
    assert!(msg.contains("`installs/site`"), "{msg}");
    assert_eq!(tree(&projects), before);
}

#[test]
fn an_earlier_gpulibs_root_is_adopted_and_keeps_its_installs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let (c, o) = (cuda(100), ort("modern", 100));
    let record = install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap();
    // As gpulibs left roots before they had a marker.
    fs::remove_file(root.join(ROOT_MARKER)).unwrap();
    let before = tree(&root);

    // Readers see it as a root, and write nothing.
    let read = Store::open_existing(&root).unwrap().expect("a root");
    assert_eq!(
        read.current_id().unwrap().as_deref(),
        Some(record.id.as_str())
    );
    assert_eq!(tree(&root), before);

    // Opening it to change it adopts it: the marker says so; nothing else changed.
    let store = Store::open(&root).unwrap();
    assert_eq!(marker(&root)["origin"], "adopted");
    let mut after = tree(&root);
    after.retain(|p, _| p != Path::new(ROOT_MARKER));
    assert_eq!(after, before);
    assert!(store.check_install(&record.id).unwrap().is_empty());

    // Not when something else is in it.
    fs::remove_file(root.join(ROOT_MARKER)).unwrap();
    fs::write(root.join("notes.txt"), "mine").unwrap();
    let msg = Store::open(&root).unwrap_err().to_string();
    assert!(msg.contains("`notes.txt`"), "{msg}");
    assert!(!root.join(ROOT_MARKER).exists());
}

#[test]
fn remove_deletes_only_what_gpulibs_put_there() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let (c, o) = (cuda(100), ort("modern", 100));
    install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap();
    // Things a user put into gpulibs' root later.
    fs::write(root.join("notes.txt"), "mine").unwrap();
    fs::write(root.join("notes.tmp.txt"), "mine too").unwrap();
    fs::create_dir_all(root.join("installs/mine/lib")).unwrap();
    fs::write(root.join("installs/mine/lib/x"), "mine").unwrap();
    fs::write(root.join("store/keep.txt"), "mine").unwrap();

    // Taking the lock cleans gpulibs' temporaries, not a file whose name contains `.tmp`;
    // gc deletes no directory under installs/ that is not an install.
    let report = store.try_lock().unwrap().gc(0).unwrap();
    assert!(report.removed_temporaries.is_empty(), "{report:?}");
    assert!(report.removed_installs.is_empty(), "{report:?}");
    assert!(root.join("notes.tmp.txt").exists() && root.join("installs/mine/lib/x").exists());

    let report = store.try_lock().unwrap().remove().unwrap();
    let kept: Vec<_> = [
        "installs/mine",
        "notes.tmp.txt",
        "notes.txt",
        "store/keep.txt",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    assert_eq!(report.kept, kept);
    assert!(!report.root_removed);
    assert!(report.freed_bytes > 0);
    // What is left is exactly the user's.
    let left: Vec<_> = tree(&root).into_keys().collect();
    let want: Vec<_> = [
        "installs",
        "installs/mine",
        "installs/mine/lib",
        "installs/mine/lib/x",
        "notes.tmp.txt",
        "notes.txt",
        "store",
        "store/keep.txt",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .collect();
    assert_eq!(left, want);
    // The directory is no longer gpulibs': the next install refuses it.
    assert!(matches!(
        Store::open(&root),
        Err(StoreError::NotARoot { .. })
    ));
}

#[test]
fn remove_and_gc_refuse_a_directory_without_the_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let (c, o) = (cuda(100), ort("modern", 100));
    install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap();
    fs::remove_file(root.join(ROOT_MARKER)).unwrap();
    fs::write(root.join("thesis.txt"), "mine").unwrap();
    let lock = store.try_lock().unwrap();
    let before = tree(&root);
    let e = lock.gc(0).unwrap_err();
    assert!(matches!(e, StoreError::NotARoot { .. }), "{e}");
    let e = lock.remove().unwrap_err();
    assert!(matches!(e, StoreError::NotARoot { .. }), "{e}");
    assert!(e.to_string().contains("`thesis.txt`"), "{e}");
    assert_eq!(tree(&root), before, "nothing deleted");
}

#[test]
fn activate_refuses_an_install_it_cannot_use_and_names_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let (c, o) = (cuda(100), ort("modern", 100));
    let first = install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap();
    let l = ort("latest", 100);
    let second = install(&store, &[&c, &l], &spec("latest", &[&c, &l], &[90])).unwrap();

    // A library of the active install deleted: activate names it, and rollback as a fix.
    let lib = store
        .install_dir(&second.id)
        .join("lib/libcudart.so.12.9.79");
    fs::remove_file(&lib).unwrap();
    // What an app would preload is the SONAME link, which now dangles (named as the app sees
    // it: through the root's view).
    let soname = lib.with_file_name("libcudart.so.12");
    let e = activate_at(&root).unwrap_err();
    let msg = told(&e);
    assert!(matches!(e, StoreError::Unusable { .. }), "{msg}");
    assert!(
        msg.contains(&format!(
            "`{}` is missing",
            root.join("libcudart.so.12").display()
        )),
        "{msg}"
    );
    assert!(msg.contains("gpulibs rollback"), "{msg}");
    let env = env_for(&store, &store.current().unwrap().unwrap());
    assert!(
        env.missing_paths().contains(&soname),
        "{:?}",
        env.missing_paths()
    );

    // The active install's directory gone: `current` dangles.
    fs::remove_dir_all(store.install_dir(&second.id)).unwrap();
    let e = activate_at(&root).unwrap_err();
    let msg = told(&e);
    assert!(matches!(e, StoreError::CurrentGone { .. }), "{msg}");
    assert!(
        msg.contains(&store.install_dir(&second.id).display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("gpulibs rollback"), "{msg}");
    assert!(matches!(
        store.current(),
        Err(StoreError::CurrentGone { .. })
    ));

    // After the rollback everything is usable again.
    store.try_lock().unwrap().rollback().unwrap();
    assert_eq!(activate_at(&root).unwrap().install_id, first.id);
}
