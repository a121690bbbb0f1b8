//! The root as the seed's consumers use it: a flat view of the active install
//! (`<root>/<name> -> current/lib/<name>`, `<root>/libonnxruntime.so` always), kept in line
//! by activation, rollback and the next lock holder; `view_env` naming only stable paths;
//! `remove` deleting the links; and the seed's flat directory adopted into a generation.
//! Real directories and real ELF libraries.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use gpulibs_store::*;
use gpulibs_testkit::{build_library, tree};

fn cudnn_next() -> Fixture {
    component(
        "cudnn",
        "9.16.0",
        &[
            ("libcudnn.so.9.16.0", &["libcudnn.so.9"]),
            ("libcudnn_graph.so.9.16.0", &["libcudnn_graph.so.9"]),
            ("libcudnn_ops.so.9.16.0", &["libcudnn_ops.so.9"]),
        ],
        1000,
    )
}

fn ino(p: &Path) -> u64 {
    fs::metadata(p).unwrap().ino()
}

#[test]
fn update_and_rollback_switch_every_name_and_the_env_stays_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let (c, d, d2, o) = (cuda(1000), cudnn(1000), cudnn_next(), ort("modern", 1000));
    let first = install(&store, &[&c, &d, &o], &spec("modern", &[&c, &d, &o], &[86])).unwrap();
    let names = assert_view(&root, false, "first");
    assert!(
        names.contains(&"libcudnn.so.9.15.1".to_string()),
        "{names:?}"
    );
    let env_first = view_env(&store, &first).render(EnvFormat::Systemd);
    assert_eq!(
        env_first,
        format!(
            "LD_LIBRARY_PATH={r}\nORT_DYLIB_PATH={r}/libonnxruntime.so\n",
            r = root.display()
        )
    );
    let cudnn_first = ino(&root.join("libcudnn.so.9"));

    let second = install(
        &store,
        &[&c, &d2, &o],
        &spec("modern", &[&c, &d2, &o], &[86]),
    )
    .unwrap();
    let names = assert_view(&root, false, "update");
    assert!(
        names.contains(&"libcudnn.so.9.16.0".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"libcudnn.so.9.15.1".to_string()),
        "{names:?}"
    );
    assert!(fs::symlink_metadata(root.join("libcudnn.so.9.15.1")).is_err());
    // The same name now reaches the new install's file; the env text is unchanged.
    assert_ne!(ino(&root.join("libcudnn.so.9")), cudnn_first);
    assert_eq!(
        view_env(&store, &second).render(EnvFormat::Systemd),
        env_first
    );
    assert_eq!(activate_at(&root).unwrap().install_id, second.id);

    store.try_lock().unwrap().rollback().unwrap();
    let names = assert_view(&root, false, "rollback");
    assert!(
        names.contains(&"libcudnn.so.9.15.1".to_string()),
        "{names:?}"
    );
    assert!(fs::symlink_metadata(root.join("libcudnn.so.9.16.0")).is_err());
    assert_eq!(ino(&root.join("libcudnn.so.9")), cudnn_first);
    assert_eq!(activate_at(&root).unwrap().install_id, first.id);

    // Two more updates and a gc: the paths printed at the start still load what is current.
    install(
        &store,
        &[&c, &d2, &o],
        &spec("modern", &[&c, &d2, &o], &[80]),
    )
    .unwrap();
    let last = install(&store, &[&c, &d, &o], &spec("modern", &[&c, &d, &o], &[75])).unwrap();
    let gc = store.try_lock().unwrap().gc(0).unwrap();
    assert!(gc.removed_installs.contains(&first.id), "{gc:?}");
    assert_eq!(
        view_env(&store, &last).render(EnvFormat::Systemd),
        env_first
    );
    let a = activate_at(&root).unwrap();
    assert_eq!(a.install_id, last.id);
    assert!(a.ort_library.is_file());
    assert_view(&root, false, "after gc");
}

#[test]
fn a_root_without_the_view_gets_it_from_the_next_lock_holder_and_stale_links_go() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let (c, o) = (cuda(500), ort("modern", 500));
    install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap();
    // As an earlier gpulibs left it: no links in the root; plus one stale link an
    // interrupted activation left.
    for e in fs::read_dir(&root).unwrap().flatten() {
        if is_library_name(&e.file_name().to_string_lossy()) {
            fs::remove_file(e.path()).unwrap();
        }
    }
    std::os::unix::fs::symlink("current/lib/libgone.so.1", root.join("libgone.so.1")).unwrap();
    assert!(activate_at(&root).is_err(), "no view yet: env refuses");
    // status (check_install) says what is missing and how it gets repaired.
    let id = store.current_id().unwrap().unwrap();
    let problems = store.check_install(&id).unwrap();
    let ort = problems
        .iter()
        .find(|p| p.contains(&root.join("libonnxruntime.so").display().to_string()))
        .unwrap_or_else(|| panic!("{problems:?}"));
    assert!(
        ort.contains("missing from the root's library view"),
        "{ort}"
    );
    assert!(ort.contains("`gpulibs gc`"), "{ort}");
    drop(store.try_lock().unwrap());
    assert_view(&root, false, "repaired");
    assert!(fs::symlink_metadata(root.join("libgone.so.1")).is_err());
    activate_at(&root).unwrap();
}

#[test]
fn a_file_in_the_way_of_a_name_stops_the_switch_and_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let (c, d, d2, o) = (cuda(500), cudnn(500), cudnn_next(), ort("modern", 500));
    let first = install(&store, &[&c, &d, &o], &spec("modern", &[&c, &d, &o], &[86])).unwrap();
    fs::write(root.join("libcudnn.so.9.16.0"), "mine").unwrap();
    let err = install(
        &store,
        &[&c, &d2, &o],
        &spec("modern", &[&c, &d2, &o], &[86]),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::ViewBlocked { .. }), "{msg}");
    assert!(msg.contains("libcudnn.so.9.16.0"), "{msg}");
    assert!(msg.contains("nothing was switched"), "{msg}");
    assert_eq!(store.current_id().unwrap(), Some(first.id));
    assert_eq!(fs::read(root.join("libcudnn.so.9.16.0")).unwrap(), b"mine");
    assert_view(&root, true, "blocked");
    // The old install still active: its own names are all in the view, nothing reported.
    assert!(store
        .check_install(&store.current_id().unwrap().unwrap())
        .unwrap()
        .is_empty());
}

#[test]
fn remove_deletes_the_view_links() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let (c, o) = (cuda(500), ort("modern", 500));
    install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap();
    let report = store.try_lock().unwrap().remove().unwrap();
    assert!(report.kept.is_empty(), "{:?}", report.kept);
    assert!(report.root_removed);
    assert!(!root.exists());
}

/// The seed's installer's result: real libraries copied flat into gpu-libs.
fn seed_dir(root: &Path) -> Vec<&'static str> {
    let names = [
        "libcudart.so.12",
        "libcudnn.so.9",
        "libcudnn_ops.so.9",
        "libonnxruntime.so",
        "libonnxruntime_providers_cuda.so",
    ];
    for n in names {
        build_library(&root.join(n), n, &[]);
        let _ = fs::remove_file(root.join(format!(".{n}.c")));
    }
    names.to_vec()
}

#[test]
fn the_seed_s_flat_directory_is_adopted_into_a_generation_and_rollback_returns_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data/swictation/gpu-libs");
    let names = seed_dir(&root);
    let inodes: Vec<u64> = names.iter().map(|n| ino(&root.join(n))).collect();
    let bytes: Vec<Vec<u8>> = names
        .iter()
        .map(|n| fs::read(root.join(n)).unwrap())
        .collect();

    // Plain `open` (a GPULIBS_HOME root) still refuses it, naming the libraries.
    let e = Store::open(&root).unwrap_err();
    assert!(told(&e).contains("shared libraries"), "{e}");

    let (store, adopted) = Store::open_adopting_seed(&root, &root).unwrap();
    let adopted = adopted.expect("adopted");
    assert!(adopted.id.starts_with("seed-"), "{}", adopted.id);
    assert_eq!(adopted.files, names);
    // Moved, not copied: same inodes, same bytes, now in the generation.
    for ((n, i), b) in names.iter().zip(&inodes).zip(&bytes) {
        let moved = adopted.lib.join(n);
        assert_eq!(ino(&moved), *i, "{n}");
        assert_eq!(&fs::read(&moved).unwrap(), b, "{n}");
        // ... and still where the app looks, through the view.
        assert_eq!(ino(&root.join(n)), *i, "{n}");
    }
    assert_eq!(store.current_id().unwrap(), Some(adopted.id.clone()));
    let record = store.current().unwrap().unwrap();
    let v = record.verification.as_ref().unwrap();
    assert_eq!(v.state, VerificationState::Skipped);
    assert!(v.summary.contains("adopted"), "{}", v.summary);
    let marker: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join(ROOT_MARKER)).unwrap()).unwrap();
    assert_eq!(marker["origin"], SEED_ORIGIN);
    assert_view(&root, false, "adopted");
    let a = activate_at(&root).unwrap();
    assert_eq!(a.ort_library, root.join("libonnxruntime.so"));
    // Nothing was written outside the root.
    let rel = root.strip_prefix(tmp.path()).unwrap();
    let outside: Vec<_> = tree(tmp.path())
        .into_keys()
        .filter(|p| !p.starts_with(rel) && !rel.starts_with(p))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");

    // A second open finds nothing more to adopt.
    let (_, again) = Store::open_adopting_seed(&root, &root).unwrap();
    assert_eq!(again, None);

    // An update by gpulibs, then rollback returns to the seed's libraries.
    let (c, o) = (cuda(500), ort("modern", 500));
    install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap();
    assert_ne!(ino(&root.join("libonnxruntime.so")), inodes[3]);
    assert!(fs::symlink_metadata(root.join("libcudnn_ops.so.9")).is_err());
    store.try_lock().unwrap().rollback().unwrap();
    assert_eq!(ino(&root.join("libonnxruntime.so")), inodes[3]);
    assert_eq!(ino(&root.join("libcudnn_ops.so.9")), inodes[2]);
    assert_view(&root, false, "rolled back to the seed");
}

#[test]
fn an_interrupted_adoption_is_finished_and_a_thesis_is_still_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("gpu-libs");
    let names = seed_dir(&root);
    let (store, adopted) = Store::open_adopting_seed(&root, &root).unwrap();
    let adopted = adopted.unwrap();
    // As if killed after the marker, one library moved and the rest not: put them back.
    fs::remove_file(root.join("current")).unwrap();
    for n in &names[1..] {
        fs::remove_file(root.join(n)).unwrap();
        fs::rename(adopted.lib.join(n), root.join(n)).unwrap();
    }
    let (_, finished) = Store::open_adopting_seed(&root, &root).unwrap();
    assert_eq!(finished.map(|a| a.id), Some(adopted.id.clone()));
    for n in &names {
        assert!(adopted.lib.join(n).is_file(), "{n}");
    }
    assert_eq!(store.current_id().unwrap(), Some(adopted.id));
    assert_view(&root, false, "finished");

    // Not only libraries: refused with the usual message, nothing changed.
    let other = tmp.path().join("other");
    seed_dir(&other);
    fs::write(other.join("thesis.txt"), "four years").unwrap();
    let before = tree(&other);
    let e = Store::open_adopting_seed(&other, &other).unwrap_err();
    let msg = told(&e);
    assert!(matches!(e, StoreError::NotARoot { .. }), "{msg}");
    assert!(msg.contains("move those files elsewhere"), "{msg}");
    assert!(!msg.contains("shared libraries"), "{msg}");
    assert_eq!(tree(&other), before);
}
