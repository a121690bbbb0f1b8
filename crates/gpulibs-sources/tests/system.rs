//! System discovery against real ELF shared objects built with the system C compiler, laid out
//! like a pip environment, a conda environment and a CUDA toolkit under a temporary root.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use gpulibs_inspect::deps::{LdCache, LdCacheEntry};
use gpulibs_sources::system::VersionSource;
use gpulibs_sources::{RejectReason, RootOrigin, SearchEnv, SystemScan, SystemSearch};

/// Builds a shared object at `path` with `-soname` (none when `soname` is `None`).
fn shared_object(path: &Path, soname: Option<&str>, extra: &[&str]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let src = path.with_extension("c");
    fs::write(&src, "int gpulibs_test_symbol(void) { return 42; }\n").unwrap();
    let mut cmd = Command::new("cc");
    cmd.args(["-shared", "-fPIC", "-o"]).arg(path).arg(&src);
    if let Some(s) = soname {
        cmd.arg(format!("-Wl,-soname,{s}"));
    }
    cmd.args(extra);
    let out = cmd.output().expect("cc runs");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::remove_file(src).unwrap();
}

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
}

impl World {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fs");
        let home = root.join("home/user");
        fs::create_dir_all(&home).unwrap();
        World {
            _tmp: tmp,
            root,
            home,
        }
    }

    fn env(&self) -> SearchEnv {
        SearchEnv {
            home: Some(self.home.clone()),
            fs_root: self.root.clone(),
            ..SearchEnv::default()
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// A pyenv Python whose site-packages holds the CUDA 13 pip layout, with pip's RECORD.
fn pip_env(w: &World) -> PathBuf {
    let site = w
        .home
        .join(".pyenv/versions/3.12.4/lib/python3.12/site-packages");
    let lib = site.join("nvidia/cu13/lib");
    shared_object(
        &lib.join("libcublasLt.so.13"),
        Some("libcublasLt.so.13"),
        &[],
    );
    shared_object(&lib.join("libcublas.so.13"), Some("libcublas.so.13"), &[]);
    shared_object(&lib.join("libcudart.so.13"), Some("libcudart.so.13"), &[]);
    let dist = site.join("nvidia_cublas-13.1.0.3.dist-info");
    fs::create_dir_all(&dist).unwrap();
    fs::write(
        dist.join("RECORD"),
        "nvidia/cu13/lib/libcublas.so.13,sha256=x,1\n\
         nvidia/cu13/lib/libcublasLt.so.13,sha256=y,2\n\
         nvidia_cublas-13.1.0.3.dist-info/RECORD,,\n",
    )
    .unwrap();
    site
}

fn names(scan: &SystemScan) -> Vec<&str> {
    scan.found.iter().map(|f| f.soname.as_str()).collect()
}

#[test]
fn finds_pip_conda_and_toolkit_libraries_in_order() {
    let w = World::new();
    let site = pip_env(&w);

    // conda: real file with full version, SONAME link, and a development link that is ignored.
    let conda_lib = w.home.join("miniconda3/envs/ort/lib");
    shared_object(
        &conda_lib.join("libcudnn.so.9.14.0"),
        Some("libcudnn.so.9"),
        &[],
    );
    symlink("libcudnn.so.9.14.0", conda_lib.join("libcudnn.so.9")).unwrap();
    symlink("libcudnn.so.9", conda_lib.join("libcudnn.so")).unwrap();
    shared_object(
        &conda_lib.join("libcudnn_graph.so.9.14.0"),
        Some("libcudnn_graph.so.9"),
        &[],
    );
    symlink(
        "libcudnn_graph.so.9.14.0",
        conda_lib.join("libcudnn_graph.so.9"),
    )
    .unwrap();

    // toolkit: /usr/local/cuda -> cuda-13.0; found once although reachable twice.
    let tk = w.p("usr/local/cuda-13.0/targets/x86_64-linux/lib");
    shared_object(
        &tk.join("libcufft.so.12.0.0.15"),
        Some("libcufft.so.12"),
        &[],
    );
    symlink("libcufft.so.12.0.0.15", tk.join("libcufft.so.12")).unwrap();
    symlink("cuda-13.0", w.p("usr/local/cuda")).unwrap();
    fs::create_dir_all(w.p("usr/local/cuda-13.0/lib64")).unwrap();

    let search = SystemSearch::from_env_with(&w.env());
    let scan = search.scan();
    assert!(scan.rejected.is_empty(), "{:#?}", scan.rejected);
    assert_eq!(
        names(&scan),
        [
            "libcufft.so.12",
            "libcudnn.so.9",
            "libcudnn_graph.so.9",
            "libcublas.so.13",
            "libcublasLt.so.13",
            "libcudart.so.13",
        ]
    );

    let cufft = &scan.found[0];
    assert_eq!(cufft.origin, RootOrigin::CudaToolkit);
    assert_eq!(cufft.version.as_deref(), Some("12.0.0.15"));
    assert_eq!(cufft.version_source, Some(VersionSource::FileName));
    assert!(cufft.soname_link);
    assert_eq!(cufft.path.file_name().unwrap(), "libcufft.so.12");
    assert!(cufft.real_path.ends_with("libcufft.so.12.0.0.15"));

    let cudnn = &scan.found[1];
    assert_eq!(cudnn.origin, RootOrigin::Conda);
    assert_eq!(cudnn.family, "cudnn");
    assert_eq!(cudnn.version.as_deref(), Some("9.14.0"));
    assert_eq!(scan.found[2].family, "cudnn_graph");

    let cublas = scan.by_soname("libcublas.so.13").next().unwrap();
    assert_eq!(cublas.origin, RootOrigin::PythonEnv);
    assert_eq!(cublas.dir, site.join("nvidia/cu13/lib"));
    assert_eq!(cublas.version.as_deref(), Some("13.1.0.3"));
    assert_eq!(cublas.version_source, Some(VersionSource::PipRecord));
    // cudart is not in any RECORD: its major is all that is known.
    let cudart = scan.by_soname("libcudart.so.13").next().unwrap();
    assert_eq!(cudart.version, None);

    let inventory = scan.inventory();
    assert_eq!(inventory.libraries.len(), 6);
    let lt = inventory.find("libcublasLt.so.13").unwrap();
    assert_eq!(lt.path, site.join("nvidia/cu13/lib/libcublasLt.so.13"));
    assert_eq!(lt.version.as_deref(), Some("13.1.0.3"));
}

#[test]
fn untrustworthy_files_are_rejected_with_reasons() {
    let w = World::new();
    let dir = w.p("opt/libs");
    // Wrong SONAME: named for cuRAND 10, says cuRAND 11.
    shared_object(&dir.join("libcurand.so.10"), Some("libcurand.so.11"), &[]);
    // SONAME of another family.
    shared_object(&dir.join("libcufft.so.12"), Some("libcublas.so.12"), &[]);
    // No SONAME at all.
    shared_object(&dir.join("libnvJitLink.so.13"), None, &[]);
    // Not ELF.
    fs::write(dir.join("libnvrtc.so.13"), "INPUT(libnvrtc.so.13.0.1)\n").unwrap();
    // 32-bit i386.
    shared_object(
        &dir.join("libcudart.so.12"),
        Some("libcudart.so.12"),
        &["-m32", "-nostdlib"],
    );
    // A dangling link.
    symlink("libcusolver.so.12.0.0", dir.join("libcusolver.so.12")).unwrap();
    // And one good file, so the directory is known to be read.
    shared_object(
        &dir.join("libcublasLt.so.13"),
        Some("libcublasLt.so.13"),
        &[],
    );

    let scan = SystemSearch::explicit([dir.clone()]).scan();
    assert_eq!(names(&scan), ["libcublasLt.so.13"]);
    let reason = |file: &str| {
        scan.rejected
            .iter()
            .find(|r| r.path == dir.join(file))
            .unwrap_or_else(|| panic!("{file} not rejected: {:#?}", scan.rejected))
            .reason
            .clone()
    };
    assert!(matches!(
        reason("libcurand.so.10"),
        RejectReason::SonameMismatch { ref soname, .. } if soname == "libcurand.so.11"
    ));
    assert!(matches!(
        reason("libcufft.so.12"),
        RejectReason::SonameMismatch { .. }
    ));
    assert_eq!(reason("libnvJitLink.so.13"), RejectReason::NoSoname);
    assert_eq!(reason("libnvrtc.so.13"), RejectReason::NotElf);
    let wrong = reason("libcudart.so.12");
    assert!(
        matches!(wrong, RejectReason::WrongIdentity { ref found, .. } if found == "32-bit i386"),
        "{wrong:?}"
    );
    assert!(wrong.to_string().contains("32-bit i386"), "{wrong}");
    assert!(matches!(
        reason("libcusolver.so.12"),
        RejectReason::Unreadable { .. }
    ));
    assert_eq!(scan.rejected.len(), 6);
}

#[test]
fn version_suffix_must_extend_the_soname() {
    let w = World::new();
    let dir = w.p("opt/cuda");
    // A real file whose name has major 12 but whose SONAME says 13: not the same library.
    shared_object(
        &dir.join("libcublas.so.12.9.1"),
        Some("libcublas.so.13"),
        &[],
    );
    // A real file without the SONAME link next to it: found, but flagged.
    shared_object(
        &dir.join("libcusparse.so.12.5.1"),
        Some("libcusparse.so.12"),
        &[],
    );
    let scan = SystemSearch::explicit([dir.clone()]).scan();
    assert_eq!(names(&scan), ["libcusparse.so.12"]);
    let sparse = &scan.found[0];
    assert!(!sparse.soname_link);
    assert_eq!(sparse.path, dir.join("libcusparse.so.12.5.1"));
    assert_eq!(sparse.version.as_deref(), Some("12.5.1"));
    assert!(matches!(
        scan.rejected[0].reason,
        RejectReason::SonameMismatch { .. }
    ));
}

#[test]
fn ld_library_path_comes_first_and_duplicates_collapse() {
    let w = World::new();
    let site = pip_env(&w);
    let mine = w.p("opt/mine");
    shared_object(
        &mine.join("libcublasLt.so.13"),
        Some("libcublasLt.so.13"),
        &[],
    );
    // The same directory twice (once through a link) and the pip dir named explicitly.
    symlink(&mine, w.p("opt/mine-link")).unwrap();
    let pip_lib = site.join("nvidia/cu13/lib");
    let env = SearchEnv {
        ld_library_path: Some(format!(
            "{}:{}::$ORIGIN/../lib:{}",
            mine.display(),
            w.p("opt/mine-link").display(),
            pip_lib.display()
        )),
        ..w.env()
    };
    let search = SystemSearch::from_env_with(&env);
    assert_eq!(search.roots[0].origin, RootOrigin::LdLibraryPath);
    assert!(search
        .roots
        .iter()
        .all(|r| !r.dir.to_string_lossy().contains("$ORIGIN")));
    let scan = search.scan();
    let lts: Vec<_> = scan.by_soname("libcublasLt.so.13").collect();
    assert_eq!(lts.len(), 2, "{:#?}", scan.found);
    assert_eq!(lts[0].dir, mine);
    assert_eq!(lts[1].origin, RootOrigin::LdLibraryPath);
    // The pip directory was found through LD_LIBRARY_PATH, not again as a Python environment.
    assert!(scan
        .found
        .iter()
        .all(|f| f.origin == RootOrigin::LdLibraryPath));
    assert_eq!(scan.found.len(), 4);
}

#[test]
fn loader_cache_entries_are_candidates_after_the_roots() {
    let w = World::new();
    let sys = w.p("usr/lib/x86_64-linux-gnu");
    shared_object(
        &sys.join("libcurand.so.10.3.5.147"),
        Some("libcurand.so.10"),
        &[],
    );
    symlink("libcurand.so.10.3.5.147", sys.join("libcurand.so.10")).unwrap();
    shared_object(&sys.join("libz.so.1"), Some("libz.so.1"), &[]);
    let entry = |name: &str, flags: u32| LdCacheEntry {
        name: name.into(),
        path: sys.join(name),
        flags,
        hwcap: 0,
    };
    let search = SystemSearch {
        ld_cache: Some(LdCache {
            entries: vec![
                entry("libcurand.so.10", 0x0303),
                entry("libz.so.1", 0x0303),
                // Another ABI's entry is not a candidate at all.
                entry("libcudart.so.12", 0x0003),
            ],
        }),
        ..SystemSearch::explicit([])
    };
    let scan = search.scan();
    assert_eq!(names(&scan), ["libcurand.so.10"]);
    assert_eq!(scan.found[0].origin, RootOrigin::LdCache);
    assert_eq!(scan.found[0].version.as_deref(), Some("10.3.5.147"));
    assert!(scan.rejected.is_empty(), "{:#?}", scan.rejected);
}

#[test]
fn default_search_order_is_documented_order() {
    let w = World::new();
    fs::create_dir_all(w.home.join("miniconda3/envs/a")).unwrap();
    let venv = w.p("srv/venv");
    let site = venv.join("lib/python3.11/site-packages/nvidia/cudnn/lib");
    fs::create_dir_all(&site).unwrap();
    let env = SearchEnv {
        ld_library_path: Some("/x".into()),
        cuda_home: Some(PathBuf::from("/cuda-home")),
        conda_prefix: Some(PathBuf::from("/conda-prefix")),
        virtual_env: Some(venv.clone()),
        ..w.env()
    };
    let search = SystemSearch::from_env_with(&env);
    let origins: Vec<RootOrigin> = search.roots.iter().map(|r| r.origin).collect();
    let first = |o| origins.iter().position(|x| *x == o).unwrap();
    assert!(first(RootOrigin::LdLibraryPath) < first(RootOrigin::CudaHome));
    assert!(first(RootOrigin::CudaHome) < first(RootOrigin::CudaToolkit));
    assert!(first(RootOrigin::CudaToolkit) < first(RootOrigin::Conda));
    assert!(first(RootOrigin::Conda) < first(RootOrigin::PythonEnv));
    let dirs: Vec<&Path> = search.roots.iter().map(|r| r.dir.as_path()).collect();
    assert!(dirs.contains(&Path::new("/cuda-home/lib64")));
    assert!(dirs.contains(&Path::new("/conda-prefix/lib")));
    assert!(dirs.contains(&w.home.join("miniconda3/envs/a/lib").as_path()));
    assert!(dirs.contains(&site.as_path()));
    assert!(search.ld_cache.is_none());
}
