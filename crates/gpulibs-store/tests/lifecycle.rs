//! Install, update, rollback, gc, remove, env and the app API, on a real file system.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;
use gpulibs_store::*;

#[test]
fn root_follows_xdg_with_overrides() {
    let env = |g: Option<&str>, d: Option<&str>, h: Option<&str>| RootEnv {
        gpulibs_home: g.map(PathBuf::from),
        gpulibs_store: None,
        xdg_data_home: d.map(PathBuf::from),
        xdg_config_home: None,
        home: h.map(PathBuf::from),
    };
    let cases = [
        (
            env(None, None, Some("/home/u")),
            "gpulibs",
            "/home/u/.local/share/gpulibs/gpu-libs",
        ),
        (
            env(None, Some("/data"), Some("/home/u")),
            "myapp",
            "/data/myapp/gpu-libs",
        ),
        // The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
        (
            env(None, Some("rel"), Some("/home/u")),
            "myapp",
            "/home/u/.local/share/myapp/gpu-libs",
        ),
        (
            env(Some("/opt/g"), Some("/data"), Some("/home/u")),
            "myapp",
            "/opt/g",
        ),
    ];
    for (e, app, want) in cases {
        assert_eq!(install_root(app, &e).unwrap(), Path::new(want), "{e:?}");
    }
    assert!(matches!(
        install_root("x", &env(None, None, None)),
        Err(StoreError::NoRoot)
    ));
    for bad in ["", "..", "../x", "a/b", ".hidden"] {
        assert!(matches!(
            install_root(bad, &env(None, None, Some("/h"))),
            Err(StoreError::BadAppName { .. })
        ));
    }
    // The shared store's home: GPULIBS_STORE, else the GPULIBS_HOME root itself, else
    // `<data>/gpulibs` for every app.
    let with_store = |s: &str, e: RootEnv| RootEnv {
        gpulibs_store: Some(s.into()),
        ..e
    };
    let homes = [
        (
            env(None, None, Some("/home/u")),
            "/home/u/.local/share/gpulibs",
        ),
        (env(None, Some("/data"), Some("/home/u")), "/data/gpulibs"),
        (
            env(None, Some("rel"), Some("/home/u")),
            "/home/u/.local/share/gpulibs",
        ),
        (
            env(Some("/opt/g"), Some("/data"), Some("/home/u")),
            "/opt/g",
        ),
        (
            with_store("/s", env(Some("/opt/g"), None, Some("/home/u"))),
            "/s",
        ),
        (with_store("/s", env(None, Some("/data"), None)), "/s"),
    ];
    for (e, want) in homes {
        assert_eq!(store_home(&e).unwrap(), Path::new(want), "{e:?}");
    }
    assert!(matches!(
        store_home(&env(None, None, None)),
        Err(StoreError::NoRoot)
    ));
    let cfg = RootEnv {
        xdg_config_home: Some("/cfg".into()),
        ..RootEnv::default()
    };
    assert_eq!(
        seed_info_path("swictation", &cfg).unwrap(),
        Path::new("/cfg/swictation/gpu-package-info.json")
    );
}

#[test]
fn links_the_manifest_declares_are_made_beside_the_archive_s_own() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("root")).unwrap();
    let (c, mut o) = (cuda(4000), ort("modern", 4000));
    let link = |name: &str, target: &str| DeclaredLink {
        name: name.into(),
        target: target.into(),
    };
    o.spec.links = vec![
        // New: the archive has no `libonnxruntime.so.1`.
        link("libonnxruntime.so.1", "libonnxruntime.so.1.23.2"),
        // The archive's own link, declared too: left as the archive made it.
        link("libonnxruntime.so", "libonnxruntime.so.1.23.2"),
    ];
    let record = install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap();
    let lib = store.install_dir(&record.id).join("lib");
    for name in ["libonnxruntime.so.1", "libonnxruntime.so"] {
        let meta = fs::symlink_metadata(lib.join(name)).unwrap();
        assert!(meta.file_type().is_symlink(), "{name}");
        assert_eq!(
            fs::read_link(lib.join(name)).unwrap(),
            Path::new("libonnxruntime.so.1.23.2")
        );
    }
    let ort_files = &record.components[1].files;
    assert!(
        ort_files.contains(&"libonnxruntime.so.1".to_string()),
        "{ort_files:?}"
    );
    assert!(store.check_install(&record.id).unwrap().is_empty());

    // A link to a library the archive does not have, or to a name another component owns.
    for (bad, want) in [
        (
            link("libonnxruntime.so.1", "libonnxruntime.so.9"),
            "has no library `libonnxruntime.so.9`",
        ),
        (
            link("libcudart.so.12", "libonnxruntime.so.1.23.2"),
            "both provide `libcudart.so.12`",
        ),
    ] {
        let mut o = ort("modern", 4000);
        o.spec.links = vec![bad];
        let e = install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        assert_eq!(
            store.current_id().unwrap().as_deref(),
            Some(record.id.as_str())
        );
    }
}

#[test]
fn an_install_links_libraries_and_keeps_soname_links() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("root")).unwrap();
    let (c, d, o) = (cuda(4000), cudnn(4000), ort("modern", 4000));
    let record = install(
        &store,
        &[&c, &d, &o],
        &spec("modern", &[&c, &d, &o], &[75, 80, 86]),
    )
    .unwrap();

    assert_eq!(
        store.current_id().unwrap().as_deref(),
        Some(record.id.as_str())
    );
    assert!(record.id.contains("-modern-"), "{}", record.id);
    assert_eq!(record.ort_library, "lib/libonnxruntime.so");
    let lib = store.install_dir(&record.id).join("lib");
    // The real file is a hard link to the store's copy: same inode, no second copy.
    let real = fs::metadata(lib.join("libcudart.so.12.9.79")).unwrap();
    let stored = fs::metadata(
        store
            .component_dir(&c.spec.sha256)
            .join("tree/cuda/libs/libcudart.so.12.9.79"),
    )
    .unwrap();
    assert_eq!((real.dev(), real.ino()), (stored.dev(), stored.ino()));
    // The SONAME links are links, as the archive had them.
    for (link, target) in [
        ("libcudart.so.12", "libcudart.so.12.9.79"),
        ("libcudart.so", "libcudart.so.12.9.79"),
        ("libonnxruntime.so", "libonnxruntime.so.1.23.2"),
    ] {
        let meta = fs::symlink_metadata(lib.join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link}");
        assert_eq!(
            fs::read_link(lib.join(link)).unwrap(),
            Path::new(target),
            "{link}"
        );
    }
    let cuda_files = &record.components[0].files;
    assert_eq!(cuda_files.len(), 7, "{cuda_files:?}");
    assert!(store.check_install(&record.id).unwrap().is_empty());

    // The root is the flat view: every name of `lib/` is a link `current/lib/<name>`.
    for name in fs::read_dir(&lib).unwrap() {
        let name = name.unwrap().file_name();
        let text = fs::read_link(store.root().join(&name)).unwrap();
        assert_eq!(text, Path::new("current/lib").join(&name), "{name:?}");
    }
    let a = activate_at(store.root()).unwrap();
    // `activate` names the view, stable across updates.
    assert_eq!(a.ort_library, store.root().join("libonnxruntime.so"));
    assert_eq!(a.lib_dirs, [store.root().to_path_buf()]);
    assert!(a.preload.iter().all(|p| p.parent() == Some(store.root())));
    let names: Vec<String> = a
        .preload
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "libcudart.so.12",
            "libcublasLt.so.12",
            "libcublas.so.12",
            "libcudnn_graph.so.9",
            "libcudnn_ops.so.9",
            "libcudnn.so.9",
        ]
    );
}

#[test]
fn an_update_fetches_only_what_changed_and_rollback_swaps() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (c, d) = (cuda(1000), cudnn(1000));
    let (modern, latest) = (ort("modern", 1000), ort("latest", 1000));
    let a = install(
        &store,
        &[&c, &d, &modern],
        &spec("modern", &[&c, &d, &modern], &[86]),
    )
    .unwrap();

    // The update shares CUDA and cuDNN: only the new ORT component is staged.
    let staged = std::sync::Arc::new(std::sync::Mutex::new(0));
    let counter = staged.clone();
    let hooked = Store::open(tmp.path())
        .unwrap()
        .with_step_hook(std::sync::Arc::new(move |p| {
            if p == FaultPoint::ComponentCommitted {
                *counter.lock().unwrap() += 1;
            }
            Ok(())
        }));
    let b = install(
        &hooked,
        &[&c, &d, &latest],
        &spec("latest", &[&c, &d, &latest], &[89, 90]),
    )
    .unwrap();
    assert_eq!(*staged.lock().unwrap(), 1);
    assert_eq!(store.current_id().unwrap().as_deref(), Some(b.id.as_str()));
    assert_eq!(store.previous_id().unwrap().as_deref(), Some(a.id.as_str()));

    let lock = store.try_lock().unwrap();
    assert_eq!(lock.rollback().unwrap().id, a.id);
    assert_eq!(store.current_id().unwrap().as_deref(), Some(a.id.as_str()));
    assert_eq!(store.previous_id().unwrap().as_deref(), Some(b.id.as_str()));
    assert_eq!(
        lock.rollback().unwrap().id,
        b.id,
        "a second rollback undoes the first"
    );
    drop(lock);
    assert_eq!(store.installs().unwrap().len(), 2);
}

#[test]
fn rollback_without_history_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let lock = store.try_lock().unwrap();
    let e = lock.rollback().unwrap_err();
    assert!(matches!(e, StoreError::NoPrevious { .. }));
    assert!(e.to_string().contains("no earlier install to roll back to"));
}

#[test]
fn gc_keeps_current_previous_and_shared_components() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (c, d) = (cuda(1000), cudnn(1000));
    let tiers: Vec<Fixture> = ["legacy", "modern", "latest"]
        .iter()
        .map(|t| ort(t, 1000))
        .collect();
    let mut ids = Vec::new();
    for (t, o) in ["legacy", "modern", "latest"].iter().zip(&tiers) {
        ids.push(
            install(&store, &[&c, &d, o], &spec(t, &[&c, &d, o], &[86]))
                .unwrap()
                .id,
        );
    }
    // Leftovers of a crashed run are cleaned when the lock is taken and reported by gc.
    fs::create_dir_all(tmp.path().join("store/.tmp-abc-1/tree")).unwrap();
    let lock = store.try_lock().unwrap();
    let report = lock.gc(0).unwrap();
    drop(lock);
    assert_eq!(report.removed_installs, [ids[0].clone()]);
    assert_eq!(report.removed_components, [tiers[0].spec.sha256.clone()]);
    assert_eq!(report.removed_temporaries.len(), 1);
    assert!(report.freed_bytes >= 3000, "{report:?}");
    assert!(store.has_component(&c.spec.sha256) && store.has_component(&tiers[1].spec.sha256));
    for id in &ids[1..] {
        assert!(
            store.check_install(id).unwrap().is_empty(),
            "{id} survives intact"
        );
    }
    assert!(temporaries(store.root()).is_empty());

    let lock = store.try_lock().unwrap();
    assert_eq!(
        lock.gc(0).unwrap(),
        GcReport {
            store: tmp.path().join("store"),
            ..GcReport::default()
        },
        "nothing more to collect"
    );
}

#[test]
fn the_lock_refuses_or_waits_and_names_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let held = store.try_lock().unwrap();
    let other = Store::open(tmp.path()).unwrap();
    let e = other.try_lock().unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "another gpulibs install (pid {}) holds the lock",
            std::process::id()
        )),
        "{msg}"
    );

    let (tx, rx) = std::sync::mpsc::channel();
    let root = tmp.path().to_path_buf();
    let waiter = std::thread::spawn(move || {
        let store = Store::open(root).unwrap();
        let _lock = store.lock(|pid| tx.send(pid).unwrap()).unwrap();
    });
    assert_eq!(rx.recv().unwrap(), Some(std::process::id()));
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(!waiter.is_finished(), "the second install waits");
    drop(held);
    waiter.join().unwrap();
}

#[test]
fn env_renders_for_shells_systemd_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("it's a root");
    let store = Store::open(&root).unwrap();
    let (c, o) = (cuda(100), ort("modern", 100));
    let record = install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap();
    let env = env_for(&store, &record);
    let lib = store.install_dir(&record.id).join("lib");
    let lib_s = lib.to_string_lossy().into_owned();

    let sh = env.render(EnvFormat::Sh);
    // Run it through a real shell and read the variables back.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "LD_LIBRARY_PATH=/old\n{sh}printf '%s\\n%s' \"$LD_LIBRARY_PATH\" \"$ORT_DYLIB_PATH\""
        ))
        .output()
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out, format!("{lib_s}:/old\n{lib_s}/libonnxruntime.so"));

    let systemd = env.render(EnvFormat::Systemd);
    let quoted = lib_s.replace('"', "\\\"");
    assert_eq!(
        systemd,
        format!("LD_LIBRARY_PATH=\"{quoted}\"\nORT_DYLIB_PATH=\"{quoted}/libonnxruntime.so\"\n")
    );

    let json: serde_json::Value = serde_json::from_str(&env.render(EnvFormat::Json)).unwrap();
    assert_eq!(json["ld_library_path"], lib_s.as_str());
    assert_eq!(json["install_id"], record.id.as_str());
    assert_eq!(
        json["preload"][0],
        format!("{lib_s}/libcudart.so.12").as_str()
    );
}

#[test]
fn seed_compatible_receipt_is_written_kept_current_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data/swictation/gpu-libs");
    let receipt = tmp.path().join("config/swictation/gpu-package-info.json");
    let store = Store::open(&root).unwrap();
    let (c, m, l) = (cuda(100), ort("modern", 100), ort("latest", 100));
    install(&store, &[&c, &m], &spec("modern", &[&c, &m], &[75, 80, 86])).unwrap();
    store.try_lock().unwrap().write_seed_info(&receipt).unwrap();

    let text = fs::read_to_string(&receipt).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let seed_order = [
        "variant",
        "architectures",
        "smVersion",
        "computeCap",
        "gpuName",
        "version",
        "libsPath",
        "installedAt",
    ];
    let at: Vec<usize> = seed_order
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "fields in the seed's order: {text}"
    );
    assert_eq!(
        v.as_object().unwrap().len(),
        seed_order.len(),
        "no extra fields: {text}"
    );
    assert_eq!(v["variant"], "modern");
    assert_eq!(v["architectures"], "sm_75-86");
    assert_eq!(v["smVersion"], 86);
    assert_eq!(v["computeCap"], "8.6");
    assert_eq!(v["gpuName"], "NVIDIA RTX A4000");
    assert_eq!(v["version"], "1.1.1");
    assert_eq!(
        v["libsPath"],
        root.join("current/lib").to_string_lossy().as_ref()
    );
    let at = v["installedAt"].as_str().unwrap();
    assert!(at.len() == 24 && at.ends_with(".000Z"), "{at}");
    assert!(
        root.join("current/lib/libcudart.so.12").is_file(),
        "libsPath holds the libraries"
    );

    // An update rewrites it; a rollback too.
    install(
        &store,
        &[&c, &l],
        &spec("latest", &[&c, &l], &[89, 90, 120]),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(
        (v["variant"].as_str(), v["architectures"].as_str()),
        (Some("latest"), Some("sm_89-120"))
    );
    store.try_lock().unwrap().rollback().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(v["variant"], "modern");

    // Unchanged: remove deletes it with the root.
    let report = store.try_lock().unwrap().remove().unwrap();
    assert_eq!(report.seed_info_removed.as_deref(), Some(receipt.as_path()));
    assert!(!root.exists() && !receipt.exists());
    assert!(
        tmp.path().join("config/swictation").is_dir(),
        "only the file goes"
    );
}

#[test]
fn remove_keeps_a_receipt_someone_changed_and_refuses_foreign_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let receipt = tmp.path().join("cfg/app/gpu-package-info.json");
    let store = Store::open(&root).unwrap();
    let (c, o) = (cuda(100), ort("modern", 100));
    install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[86])).unwrap();
    store.try_lock().unwrap().write_seed_info(&receipt).unwrap();
    fs::write(&receipt, "{\"edited\": true}").unwrap();
    let report = store.try_lock().unwrap().remove().unwrap();
    assert_eq!(report.seed_info_kept.as_deref(), Some(receipt.as_path()));
    assert!(receipt.exists() && !root.exists());

    // A directory that is not a root is not opened, so nothing in it is removed, whatever
    // GPULIBS_HOME says (more in tests/root.rs).
    let foreign = tmp.path().join("home");
    fs::create_dir_all(foreign.join("documents")).unwrap();
    fs::write(foreign.join("documents/thesis.txt"), "keep").unwrap();
    let e = Store::open(&foreign).unwrap_err();
    assert!(matches!(e, StoreError::NotARoot { .. }), "{e}");
    assert!(foreign.join("documents/thesis.txt").exists());
    assert!(!foreign.join("store").exists() && !foreign.join("installs").exists());
}

#[test]
fn activation_without_an_install_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let e = activate_at(&tmp.path().join("nothing")).unwrap_err();
    assert!(told(&e).contains("hint: run `gpulibs install`"), "{e}");
}

#[test]
fn an_install_needs_its_components_and_onnx_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (c, o) = (cuda(100), ort("modern", 100));
    let lock = store.try_lock().unwrap();
    let e = lock
        .new_install(&spec("modern", &[&c, &o], &[86]))
        .unwrap_err();
    assert!(matches!(e, StoreError::MissingComponent { .. }), "{e}");
    drop(lock);
    let e = install(&store, &[&c], &spec("modern", &[&c], &[86])).unwrap_err();
    assert!(matches!(e, StoreError::NoOrtLibrary { .. }), "{e}");
    // The same library from two components is ambiguous.
    let twin = component("twin", "1", &[("libcudart.so.12.9.79", &[])], 10);
    let e = install(
        &store,
        &[&c, &twin, &o],
        &spec("modern", &[&c, &twin, &o], &[86]),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("both provide `libcudart.so.12.9.79`"),
        "{e}"
    );
    assert_eq!(store.current_id().unwrap(), None);
}

#[test]
fn status_reads_the_active_record() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (c, o) = (cuda(100), ort("modern", 100));
    let host = HostSummary {
        gpus: vec![HostGpu {
            index: 0,
            name: Some("NVIDIA H100 80GB HBM3".into()),
            compute_capability: gpulibs_detect::ComputeCapability::new(9, 0),
        }],
        driver_cuda: Some(gpulibs_detect::CudaVersion::new(13, 0)),
    };
    assert_eq!(
        status(store.current().unwrap().as_ref(), &host),
        Status::NothingInstalled
    );
    install(&store, &[&c, &o], &spec("modern", &[&c, &o], &[75, 80, 86])).unwrap();
    let s = status(store.current().unwrap().as_ref(), &host);
    assert!(matches!(s, Status::NotCovered { .. }), "{}", s.message());
}
