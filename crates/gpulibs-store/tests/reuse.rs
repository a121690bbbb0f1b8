//! Libraries reused from the machine (the planner's `Source::System`): recorded by path with
//! size, mtime and sha256; handed to apps by `env` and `activate`; checked by `check_install`;
//! never touched. The "system" is a directory outside the root holding real ELF libraries
//! built by the system compiler, laid out like a PyTorch environment's `site-packages/nvidia`.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::*;
use gpulibs_store::*;
use gpulibs_testkit::build_library as build_so;

/// `site-packages/nvidia/cu13/lib` (CUDA 13 runtime, cuBLAS, cuBLASLt) and
/// `site-packages/nvidia/cudnn/lib` (cuDNN 9), as pip lays them out: versioned files and
/// SONAME links.
struct System {
    cu13: PathBuf,
    cudnn: PathBuf,
}

impl System {
    fn build(base: &Path) -> System {
        let site = base.join("venv/lib/python3.12/site-packages/nvidia");
        let (cu13, cudnn) = (site.join("cu13/lib"), site.join("cudnn/lib"));
        let cudart = cu13.join("libcudart.so.13.0.96");
        build_so(&cudart, "libcudart.so.13", &[]);
        std::os::unix::fs::symlink("libcudart.so.13.0.96", cu13.join("libcudart.so.13")).unwrap();
        let lt = cu13.join("libcublasLt.so.13");
        build_so(&lt, "libcublasLt.so.13", &[&cudart]);
        build_so(
            &cu13.join("libcublas.so.13"),
            "libcublas.so.13",
            &[&lt, &cudart],
        );
        build_so(
            &cudnn.join("libcudnn_graph.so.9"),
            "libcudnn_graph.so.9",
            &[],
        );
        build_so(&cudnn.join("libcudnn.so.9"), "libcudnn.so.9", &[]);
        // A sub-library cuDNN opens from its own directory; not among the SONAMEs the planner
        // hands over, linked into lib/ because its family's entry library is reused.
        build_so(&cudnn.join("libcudnn_ops.so.9"), "libcudnn_ops.so.9", &[]);
        System { cu13, cudnn }
    }

    /// What the planner hands over, in the manifest's order (not load order).
    fn specs(&self) -> Vec<SystemLibrarySpec> {
        let lib = |component: &str, dir: &Path, soname: &str| SystemLibrarySpec {
            component: component.into(),
            soname: soname.into(),
            path: dir.join(soname),
        };
        vec![
            lib("cudnn", &self.cudnn, "libcudnn.so.9"),
            lib("cudnn", &self.cudnn, "libcudnn_graph.so.9"),
            lib("cublas", &self.cu13, "libcublas.so.13"),
            lib("cublas", &self.cu13, "libcublasLt.so.13"),
            lib("cudart", &self.cu13, "libcudart.so.13"),
        ]
    }

    /// (path, inode, link count, size, mtime) of every file and link, to show nothing changed.
    fn snapshot(&self) -> Vec<(PathBuf, u64, u64, u64, i64)> {
        let mut out = Vec::new();
        for dir in [&self.cu13, &self.cudnn] {
            for e in fs::read_dir(dir).unwrap().flatten() {
                let m = fs::symlink_metadata(e.path()).unwrap();
                out.push((e.path(), m.ino(), m.nlink(), m.size(), m.mtime()));
            }
        }
        out.sort();
        out
    }
}

/// An install of ONNX Runtime from the store plus the system's CUDA and cuDNN.
fn install_reusing(store: &Store, system: &System) -> InstallRecord {
    let o = ort("cuda13", 2000);
    let mut s = spec("cuda13", &[&o], &[80, 90]);
    s.system_libraries = system.specs();
    install(store, &[&o], &s).unwrap()
}

#[test]
fn reused_libraries_are_recorded_handed_to_apps_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let system = System::build(&tmp.path().join("home"));
    let before = system.snapshot();
    let store = Store::open(tmp.path().join("root")).unwrap();
    let record = install_reusing(&store, &system);
    let lib = store.install_dir(&record.id).join("lib");

    // The record: path as found, the file it resolves to, size, mtime, sha256.
    assert_eq!(record.system_libraries.len(), 5);
    let cudart = record
        .system_libraries
        .iter()
        .find(|l| l.soname == "libcudart.so.13")
        .unwrap();
    assert_eq!(cudart.component, "cudart");
    assert_eq!(cudart.path, system.cu13.join("libcudart.so.13"));
    assert_eq!(
        cudart.real_path,
        system
            .cu13
            .join("libcudart.so.13.0.96")
            .canonicalize()
            .unwrap()
    );
    let bytes = fs::read(&cudart.real_path).unwrap();
    assert_eq!(cudart.size, bytes.len() as u64);
    assert_eq!(cudart.sha256, sha256(&bytes));
    assert!(cudart.mtime_ns > 0);
    // ... kept in install.json under stable names, and read back the same.
    let json: serde_json::Value = serde_json::from_slice(
        &fs::read(store.install_dir(&record.id).join("install.json")).unwrap(),
    )
    .unwrap();
    let first = &json["system_libraries"][0];
    for key in [
        "component",
        "soname",
        "path",
        "real_path",
        "size",
        "mtime_ns",
        "sha256",
    ] {
        assert!(!first[key].is_null(), "{key} missing in {first}");
    }
    assert_eq!(store.install_record(&record.id).unwrap(), record);

    // Linked by absolute path into lib/ (each SONAME, and cuDNN's whole family from its
    // directory), never copied: nothing of the system changed.
    for (name, dir) in [
        ("libcudart.so.13", &system.cu13),
        ("libcublasLt.so.13", &system.cu13),
        ("libcudnn.so.9", &system.cudnn),
        ("libcudnn_ops.so.9", &system.cudnn),
    ] {
        assert_eq!(
            fs::read_link(lib.join(name)).unwrap(),
            dir.join(name),
            "{name}"
        );
    }
    assert!(record
        .reused_links
        .iter()
        .any(|l| l.name == "libcudnn_ops.so.9"));
    assert_eq!(system.snapshot(), before);
    // So the root alone (the seed's LD_LIBRARY_PATH) reaches them: root -> current/lib -> venv.
    for name in ["libcudart.so.13", "libcudnn_ops.so.9"] {
        let through_root = store.root().join(name).canonicalize().unwrap();
        let direct = system
            .cudnn
            .join(name)
            .canonicalize()
            .or_else(|_| system.cu13.join(name).canonicalize())
            .unwrap();
        assert_eq!(through_root, direct, "{name}");
    }

    // env: the install's lib/ first, then each system directory once, in load order (the
    // record lists cuDNN first); preload in load order, the system's libraries by their
    // recorded paths.
    let env = env_for(&store, &record);
    assert_eq!(
        env.lib_dirs,
        [lib.clone(), system.cu13.clone(), system.cudnn.clone()]
    );
    assert_eq!(
        env.preload,
        [
            system.cu13.join("libcudart.so.13"),
            system.cu13.join("libcublasLt.so.13"),
            system.cu13.join("libcublas.so.13"),
            system.cudnn.join("libcudnn_graph.so.9"),
            system.cudnn.join("libcudnn.so.9"),
        ]
    );
    let sh = env.render(EnvFormat::Sh);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "LD_LIBRARY_PATH=/old\n{sh}printf '%s' \"$LD_LIBRARY_PATH\""
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{}:{}:{}:/old",
            lib.display(),
            system.cu13.display(),
            system.cudnn.display()
        )
    );
    let json: serde_json::Value = serde_json::from_str(&env.render(EnvFormat::Json)).unwrap();
    assert_eq!(
        json["lib_dirs"],
        serde_json::to_value(&env.lib_dirs).unwrap()
    );
    assert_eq!(json["preload"], serde_json::to_value(&env.preload).unwrap());
    assert_eq!(json["ld_library_path"], env.ld_library_path());

    // activate(): the root's view, whose names reach the same files.
    let a = activate_at(store.root()).unwrap();
    assert_eq!(a.lib_dirs, [store.root().to_path_buf()]);
    let root = store.root();
    assert_eq!(
        a.preload,
        [
            root.join("libcudart.so.13"),
            root.join("libcublasLt.so.13"),
            root.join("libcublas.so.13"),
            root.join("libcudnn_graph.so.9"),
            root.join("libcudnn_ops.so.9"),
            root.join("libcudnn.so.9"),
        ]
    );
    // Each resolves to the file the install's own environment names.
    for p in &a.preload {
        let name = p.file_name().unwrap();
        let direct = [&system.cu13, &system.cudnn]
            .iter()
            .map(|d| d.join(name))
            .find(|d| d.exists())
            .unwrap();
        assert_eq!(
            p.canonicalize().unwrap(),
            direct.canonicalize().unwrap(),
            "{p:?}"
        );
    }
    assert_eq!(a.record.system_libraries, record.system_libraries);
    assert!(store.check_install(&record.id).unwrap().is_empty());

    // A library rewritten in place (pip upgrade, another wheel): reported, naming file and fix.
    let lt = system.cu13.join("libcublasLt.so.13");
    let mut grown = fs::read(&lt).unwrap();
    grown.extend_from_slice(b"patched");
    fs::write(&lt, &grown).unwrap();
    let problems = store.check_install(&record.id).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains(&lt.display().to_string()),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].contains("changed since it was installed"),
        "{}",
        problems[0]
    );
    assert!(problems[0].contains("--no-reuse"), "{}", problems[0]);

    // Same size, newer mtime: still reported (status compares size and mtime only).
    let cublas = system.cu13.join("libcublas.so.13");
    let f = fs::File::options().write(true).open(&cublas).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    drop(f);
    let problems = store.check_install(&record.id).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&cublas.display().to_string()) && p.contains("modified")),
        "{problems:?}"
    );

    // The SONAME link now names another file.
    let cudart_link = system.cu13.join("libcudart.so.13");
    build_so(
        &system.cu13.join("libcudart.so.13.1.0"),
        "libcudart.so.13",
        &[],
    );
    fs::remove_file(&cudart_link).unwrap();
    std::os::unix::fs::symlink("libcudart.so.13.1.0", &cudart_link).unwrap();
    let problems = store.check_install(&record.id).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("libcudart.so.13") && p.contains("now resolves to")),
        "{problems:?}"
    );

    // Deleted: reported as gone; env and activate still name it (the app's dlopen will say so).
    fs::remove_file(system.cudnn.join("libcudnn.so.9")).unwrap();
    let problems = store.check_install(&record.id).unwrap();
    let gone = problems
        .iter()
        .find(|p| p.contains("libcudnn.so.9"))
        .expect("the deleted library is reported");
    assert!(gone.contains("is gone"), "{gone}");
    assert!(gone.contains("component cudnn"), "{gone}");
    assert!(gone.contains("`gpulibs install`"), "{gone}");
    assert_eq!(problems.len(), 4, "{problems:?}");
    // `activate` (and `gpulibs env`) refuse, naming the link and where it pointed.
    let err = activate_at(store.root()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unusable { .. }), "{msg}");
    assert!(
        msg.contains("reused from this machine, which is gone"),
        "{msg}"
    );
    assert!(
        msg.contains(&system.cudnn.join("libcudnn.so.9").display().to_string()),
        "{msg}"
    );
    // The whole environment deleted: the family member's link is reported too.
    fs::remove_dir_all(&system.cudnn).unwrap();
    let problems = store.check_install(&record.id).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("libcudnn_ops.so.9") && p.contains("which is gone")),
        "{problems:?}"
    );
}

#[test]
fn a_reused_library_must_be_absolute_and_readable_and_gc_leaves_it_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let system = System::build(&tmp.path().join("home"));
    let store = Store::open(tmp.path().join("root")).unwrap();
    let o = ort("cuda13", 2000);

    for (path, why) in [
        (
            PathBuf::from("lib/libcudart.so.13"),
            "is not an absolute path",
        ),
        (system.cu13.join("libnothere.so.1"), "cannot be resolved"),
    ] {
        let mut s = spec("cuda13", &[&o], &[80]);
        s.system_libraries = vec![SystemLibrarySpec {
            component: "cudart".into(),
            soname: "libcudart.so.13".into(),
            path: path.clone(),
        }];
        let err = install(&store, &[&o], &s).unwrap_err();
        assert!(matches!(err, StoreError::SystemLibrary { .. }), "{err:?}");
        let text = told(&err);
        assert!(text.contains(why), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("--no-reuse"), "{text}");
        assert!(store.installs().unwrap().is_empty());
        assert!(temporaries(store.root()).is_empty());
    }

    // Two generations reusing the system, then one without: gc and remove never reach out.
    let before = system.snapshot();
    let first = install_reusing(&store, &system);
    let second = install_reusing(&store, &system);
    assert_ne!(first.id, second.id);
    let plain = spec("cuda13", &[&o], &[80]);
    let third = install(&store, &[&o], &plain).unwrap();
    assert!(third.system_libraries.is_empty());
    assert_eq!(env_for(&store, &third).lib_dirs.len(), 1);
    let lock = store.try_lock().unwrap();
    let gc = lock.gc(0).unwrap();
    assert_eq!(gc.removed_installs, [first.id]);
    lock.remove().unwrap();
    assert_eq!(system.snapshot(), before);
}

#[test]
fn records_written_before_reuse_was_recorded_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("root")).unwrap();
    let o = ort("modern", 1000);
    let record = install(&store, &[&o], &spec("modern", &[&o], &[86])).unwrap();
    let path = store.install_dir(&record.id).join("install.json");
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("system_libraries");
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let read = store.install_record(&record.id).unwrap();
    assert!(read.system_libraries.is_empty());
    assert_eq!(read, record);
    assert!(store.check_install(&record.id).unwrap().is_empty());
}
