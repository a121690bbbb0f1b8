//! Resolution of real shared objects built at test time with `cc`.

mod deps_support;

use std::path::{Path, PathBuf};

use deps_support::{build_leaf, build_so, read_info, try_build_so_32, MemFs};
use gpulibs_inspect::deps::{
    resolve, resolve_with, Dependency, DependencyKind, DependencyStatus, FoundVia, LdCache,
    LdCacheEntry, Limits, RealFileSystem, SearchContext, SkipReason,
};

fn find<'a>(deps: &'a [Dependency], name: &str) -> &'a Dependency {
    deps.iter().find(|d| d.name == name).unwrap_or_else(|| {
        panic!(
            "{name} not among {:?}",
            deps.iter().map(|d| &d.name).collect::<Vec<_>>()
        )
    })
}

/// An empty context: nothing but what the test adds.
fn isolated() -> SearchContext {
    SearchContext::default()
}

/// dir/libA.so needs libB.so.1, which lives in dir/sub; libA has `$ORIGIN/sub` as DT_RPATH
/// (`new_dtags` false) or DT_RUNPATH (true).
fn build_a_needs_b(dir: &Path, new_dtags: bool) -> PathBuf {
    let b = dir.join("sub/libB.so.1");
    build_leaf(&b, "libB.so.1", "b");
    build_a_calling_b(dir, &b, &[dtags(new_dtags), "-Wl,-rpath,$ORIGIN/sub"])
}

/// dir/libA.so, whose `a()` calls `b()` of `b`: linked against `b`, with `flags` for the linker.
fn build_a_calling_b(dir: &Path, b: &Path, flags: &[&str]) -> PathBuf {
    let a = dir.join("libA.so");
    build_so(
        &a,
        "libA.so",
        "int b(void); int a(void) { return b(); }\n",
        &[&[b.to_str().unwrap()], flags].concat(),
    );
    a
}

/// The linker flag for DT_RUNPATH (`new_dtags`) or DT_RPATH.
fn dtags(new_dtags: bool) -> &'static str {
    if new_dtags {
        "-Wl,--enable-new-dtags"
    } else {
        "-Wl,--disable-new-dtags"
    }
}

#[test]
fn rpath_with_origin_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let a = build_a_needs_b(dir.path(), false);
    let info = read_info(&a);
    assert_eq!(info.soname.as_deref(), Some("libA.so"));
    assert_eq!(info.rpath.as_deref(), Some("$ORIGIN/sub"));
    assert_eq!(info.runpath, None);
    assert!(
        info.needed.contains(&"libB.so.1".to_owned()),
        "{:?}",
        info.needed
    );

    let deps = resolve(&a, &info, &isolated());
    let b = find(&deps, "libB.so.1");
    assert_eq!(b.status, DependencyStatus::Found);
    assert_eq!(b.via, Some(FoundVia::Rpath));
    assert_eq!(
        b.path.as_deref(),
        Some(dir.path().join("sub/libB.so.1").as_path())
    );
    assert_eq!(b.kind, DependencyKind::Needed);
    assert_eq!(b.depth, 1);
    assert_eq!(b.required_by, a);
}

#[test]
fn runpath_with_origin_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let a = build_a_needs_b(dir.path(), true);
    let info = read_info(&a);
    assert_eq!(info.runpath.as_deref(), Some("$ORIGIN/sub"));
    assert_eq!(info.rpath, None);
    let b = find(&resolve(&a, &info, &isolated()), "libB.so.1").clone();
    assert_eq!(
        (b.status, b.via),
        (DependencyStatus::Found, Some(FoundVia::Runpath))
    );
    assert_eq!(b.path, Some(dir.path().join("sub/libB.so.1")));
}

#[test]
fn rpath_beats_ld_library_path_which_beats_runpath() {
    for new_dtags in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let a = build_a_needs_b(dir.path(), new_dtags);
        let ldp = dir.path().join("ldp");
        build_leaf(&ldp.join("libB.so.1"), "libB.so.1", "b");
        let ctx = SearchContext {
            ld_library_path: Some(format!("/nonexistent:{}", ldp.display())),
            ..isolated()
        };
        let deps = resolve(&a, &read_info(&a), &ctx);
        let b = find(&deps, "libB.so.1");
        if new_dtags {
            assert_eq!(
                b.via,
                Some(FoundVia::LdLibraryPath),
                "LD_LIBRARY_PATH beats DT_RUNPATH"
            );
            assert_eq!(b.path, Some(ldp.join("libB.so.1")));
        } else {
            assert_eq!(
                b.via,
                Some(FoundVia::Rpath),
                "DT_RPATH beats LD_LIBRARY_PATH"
            );
            assert_eq!(b.path, Some(dir.path().join("sub/libB.so.1")));
        }
    }
}

#[test]
fn search_order_runpath_then_cache_then_default_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let a = build_a_needs_b(dir.path(), true);
    let info = read_info(&a);
    let cached = dir.path().join("cached/libB.so.1");
    let default = dir.path().join("default/libB.so.1");
    build_leaf(&cached, "libB.so.1", "b");
    build_leaf(&default, "libB.so.1", "b");
    let ctx = SearchContext {
        ld_cache: Some(LdCache {
            entries: vec![LdCacheEntry {
                name: "libB.so.1".into(),
                path: cached.clone(),
                flags: 0x0303,
                hwcap: 0,
            }],
        }),
        default_dirs: vec![PathBuf::from("/nonexistent"), dir.path().join("default")],
        ..isolated()
    };
    let step = |ctx: &SearchContext| {
        let b = find(&resolve(&a, &info, ctx), "libB.so.1").clone();
        (b.status, b.via, b.path)
    };
    assert_eq!(step(&ctx).1, Some(FoundVia::Runpath));
    std::fs::remove_file(dir.path().join("sub/libB.so.1")).unwrap();
    if cfg!(target_arch = "x86_64") {
        assert_eq!(
            step(&ctx),
            (
                DependencyStatus::Found,
                Some(FoundVia::LdCache),
                Some(cached.clone())
            )
        );
    }
    std::fs::remove_file(&cached).unwrap();
    assert_eq!(
        step(&ctx),
        (
            DependencyStatus::Found,
            Some(FoundVia::DefaultDir),
            Some(default.clone())
        )
    );
    std::fs::remove_file(&default).unwrap();
    assert_eq!(step(&ctx), (DependencyStatus::Missing, None, None));
}

#[test]
fn missing_cuda_library_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let stub = dir.path().join("stub/libcublasLt.so.13");
    build_leaf(&stub, "libcublasLt.so.13", "cublasLtCreate");
    let a = dir.path().join("libA.so");
    build_so(
        &a,
        "libA.so",
        "int cublasLtCreate(void); int a(void) { return cublasLtCreate(); }\n",
        &[stub.to_str().unwrap()],
    );
    std::fs::remove_dir_all(dir.path().join("stub")).unwrap();

    let info = read_info(&a);
    assert!(info.needed.contains(&"libcublasLt.so.13".to_owned()));
    let deps = resolve(&a, &info, &isolated());
    let lt = find(&deps, "libcublasLt.so.13");
    assert_eq!(lt.status, DependencyStatus::Missing);
    assert_eq!((lt.path.as_ref(), lt.via), (None, None));
    let hint = lt.hint.as_deref().unwrap();
    assert!(
        hint.starts_with("libcublasLt.so.13 not found: this library needs the CUDA 13 cuBLAS"),
        "{hint}"
    );
}

#[test]
fn wrong_class_and_machine_candidates_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok/libB.so.1");
    build_leaf(&ok, "libB.so.1", "b");
    let a = build_a_calling_b(dir.path(), &ok, &[]);

    // Same name, another e_machine (AArch64 = 183): crafted from the real file.
    let mut other_machine = std::fs::read(&ok).unwrap();
    other_machine[18..20].copy_from_slice(&183u16.to_le_bytes());
    let wm = dir.path().join("wm/libB.so.1");
    std::fs::create_dir_all(wm.parent().unwrap()).unwrap();
    std::fs::write(&wm, other_machine).unwrap();

    let w32 = dir.path().join("w32/libB.so.1");
    let have_32 = try_build_so_32(&w32, "libB.so.1");
    if !have_32 {
        eprintln!("cc -m32 cannot build here; the 32-bit half of this test is skipped");
    }

    let list = format!(
        "{}:{}:{}",
        w32.parent().unwrap().display(),
        wm.parent().unwrap().display(),
        ok.parent().unwrap().display()
    );
    let ctx = SearchContext {
        ld_library_path: Some(list),
        ..isolated()
    };
    let b = find(&resolve(&a, &read_info(&a), &ctx), "libB.so.1").clone();
    assert_eq!(b.status, DependencyStatus::Found);
    assert_eq!(b.path, Some(ok.clone()));
    assert_eq!(b.via, Some(FoundVia::LdLibraryPath));
    let skipped: Vec<_> = b
        .skipped
        .iter()
        .map(|s| (s.path.clone(), s.reason))
        .collect();
    let mut expected = Vec::new();
    if have_32 {
        expected.push((w32.clone(), SkipReason::WrongClass));
    }
    expected.push((wm, SkipReason::WrongMachine));
    assert_eq!(skipped, expected);

    if have_32 {
        let info32 = read_info(&w32);
        assert_eq!(
            info32.identity.class,
            gpulibs_inspect::deps::ElfClass::Elf32
        );
        assert_eq!(info32.identity.machine, 3);
        assert_eq!(info32.soname.as_deref(), Some("libB.so.1"));
    }
}

#[test]
fn a_non_elf_candidate_stops_the_search_as_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok/libB.so.1");
    build_leaf(&ok, "libB.so.1", "b");
    let a = build_a_calling_b(dir.path(), &ok, &[]);
    let text = dir.path().join("text/libB.so.1");
    std::fs::create_dir_all(text.parent().unwrap()).unwrap();
    std::fs::write(&text, "INPUT(-lB)\n").unwrap();

    let list = format!(
        "{}:{}",
        text.parent().unwrap().display(),
        ok.parent().unwrap().display()
    );
    let ctx = SearchContext {
        ld_library_path: Some(list),
        ..isolated()
    };
    let b = find(&resolve(&a, &read_info(&a), &ctx), "libB.so.1").clone();
    assert_eq!(b.status, DependencyStatus::Invalid);
    assert_eq!(b.path, Some(text));
    assert!(
        b.problem.as_deref().unwrap().contains("invalid ELF header"),
        "{:?}",
        b.problem
    );
}

/// libA -> libB -> libC, where only libA's search path leads to libC.
fn build_chain(dir: &Path, new_dtags: bool) -> PathBuf {
    let c = dir.join("sub2/libC.so.1");
    build_leaf(&c, "libC.so.1", "c");
    let b = dir.join("sub/libB.so.1");
    build_so(
        &b,
        "libB.so.1",
        "int c(void); int b(void) { return c(); }\n",
        &[c.to_str().unwrap()],
    );
    let rpath_link = format!("-Wl,-rpath-link,{}", dir.join("sub2").display());
    build_a_calling_b(
        dir,
        &b,
        &[
            dtags(new_dtags),
            "-Wl,-rpath,$ORIGIN/sub:$ORIGIN/sub2",
            &rpath_link,
        ],
    )
}

#[test]
fn closure_uses_the_loaders_rpath_but_not_its_runpath() {
    let dir = tempfile::tempdir().unwrap();
    let a = build_chain(dir.path(), false);
    let report = resolve_with(
        &RealFileSystem,
        &a,
        &read_info(&a),
        &isolated(),
        Limits::CLOSURE,
    );
    let b = find(&report.dependencies, "libB.so.1");
    assert_eq!((b.depth, b.via), (1, Some(FoundVia::Rpath)));
    let c = find(&report.dependencies, "libC.so.1");
    assert_eq!(c.depth, 2);
    assert_eq!(c.required_by, dir.path().join("sub/libB.so.1"));
    assert_eq!(
        c.status,
        DependencyStatus::Found,
        "libA's DT_RPATH serves libB's needs too"
    );
    assert_eq!(c.via, Some(FoundVia::Rpath));
    assert_eq!(c.path, Some(dir.path().join("sub2/libC.so.1")));
    assert!(!report.truncated);

    // One level only: libC is not listed.
    let direct = resolve(&a, &read_info(&a), &isolated());
    assert!(direct.iter().all(|d| d.name != "libC.so.1" && d.depth == 1));

    let dir = tempfile::tempdir().unwrap();
    let a = build_chain(dir.path(), true);
    let report = resolve_with(
        &RealFileSystem,
        &a,
        &read_info(&a),
        &isolated(),
        Limits::CLOSURE,
    );
    assert_eq!(
        find(&report.dependencies, "libB.so.1").via,
        Some(FoundVia::Runpath)
    );
    let c = find(&report.dependencies, "libC.so.1");
    assert_eq!(
        c.status,
        DependencyStatus::Missing,
        "DT_RUNPATH applies to the object's own needs only"
    );
    assert_eq!(c.depth, 2);
}

#[test]
fn closure_lists_each_name_once_and_respects_limits() {
    let dir = tempfile::tempdir().unwrap();
    // Two libraries needing each other: a cycle.
    let x = dir.path().join("libX.so.1");
    let y = dir.path().join("libY.so.1");
    build_leaf(&y, "libY.so.1", "y0");
    build_so(
        &x,
        "libX.so.1",
        "int y0(void); int x(void) { return y0(); }\n",
        &[y.to_str().unwrap(), "-Wl,-rpath,$ORIGIN"],
    );
    build_so(
        &y,
        "libY.so.1",
        "int x(void); int y0(void) { return 0; } int y(void) { return x(); }\n",
        &[x.to_str().unwrap(), "-Wl,-rpath,$ORIGIN"],
    );
    let report = resolve_with(
        &RealFileSystem,
        &x,
        &read_info(&x),
        &isolated(),
        Limits::CLOSURE,
    );
    let names: Vec<_> = report
        .dependencies
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names.iter().filter(|n| **n == "libY.so.1").count(), 1);
    assert!(
        !names.contains(&"libX.so.1"),
        "the inspected file's own soname is already loaded: {names:?}"
    );

    let limited = resolve_with(
        &RealFileSystem,
        &x,
        &read_info(&x),
        &isolated(),
        Limits {
            max_depth: 1,
            max_objects: 10,
        },
    );
    assert!(limited.dependencies.iter().all(|d| d.depth == 1));
}

#[test]
fn runtime_names_are_reported_and_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("libB.so.1");
    build_leaf(&b, "libB.so.1", "b");
    let a = dir.path().join("libA.so");
    build_so(
        &a,
        "libA.so",
        "#include <string.h>\n\
         int b(void);\n\
         const char *cudnn_name(void) { return \"libcudnn.so.9\"; }\n\
         const char *b_name(void) { b(); return \"libB.so.1\"; }\n\
         const char *self_name(void) { return \"libA.so\"; }\n\
         const char *message(void) { return \"could not load libfoo.so.1\"; }\n\
         void cufft_name(char *p) { memcpy(p, \"libcufft.so.12\", 15); }\n",
        &[b.to_str().unwrap(), "-Wl,-rpath,$ORIGIN"],
    );
    let info = read_info(&a);
    let names: Vec<_> = info
        .runtime_names
        .iter()
        .map(|r| (r.name.as_str(), r.source))
        .collect();
    use gpulibs_inspect::deps::RuntimeNameSource::{CodeImmediate, String as Str};
    assert!(names.contains(&("libcudnn.so.9", Str)), "{names:?}");
    assert!(
        !names.iter().any(|n| n.0 == "libB.so.1"),
        "DT_NEEDED names are not run-time names: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.0 == "libA.so"),
        "own soname excluded: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.0.contains("libfoo")),
        "messages are not names: {names:?}"
    );
    if cfg!(target_arch = "x86_64") {
        assert!(
            names.contains(&("libcufft.so.12", CodeImmediate)),
            "{names:?}"
        );
    }

    let deps = resolve(&a, &info, &isolated());
    let cudnn = find(&deps, "libcudnn.so.9");
    assert_eq!(cudnn.kind, DependencyKind::Runtime);
    assert_eq!(cudnn.source, Some(Str));
    assert_eq!(cudnn.status, DependencyStatus::Missing);
    assert!(cudnn
        .hint
        .as_deref()
        .unwrap()
        .starts_with("libcudnn.so.9 not found: this library needs cuDNN 9"));
    assert_eq!(find(&deps, "libB.so.1").kind, DependencyKind::Needed);
    // Run-time names come after the DT_NEEDED ones.
    let first_runtime = deps
        .iter()
        .position(|d| d.kind == DependencyKind::Runtime)
        .unwrap();
    assert!(deps[first_runtime..]
        .iter()
        .all(|d| d.kind == DependencyKind::Runtime));
}

#[test]
fn system_libraries_resolve_through_the_real_cache() {
    let ctx = SearchContext::from_system();
    if ctx.ld_cache.is_none() {
        eprintln!("no /etc/ld.so.cache here; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("libA.so");
    build_so(
        &a,
        "libA.so",
        "#include <math.h>\ndouble a(double x) { return cos(x); }\n",
        &["-lm"],
    );
    let ctx = SearchContext {
        ld_library_path: None,
        ..ctx
    };
    let deps = gpulibs_inspect::deps::resolve_closure(&a, &read_info(&a), &ctx).dependencies;
    // libc.so.6 comes in as libm's dependency when the linker dropped it from libA's.
    for name in ["libm.so.6", "libc.so.6"] {
        let d = find(&deps, name);
        assert_eq!(d.status, DependencyStatus::Found, "{d:?}");
        assert!(
            matches!(d.via, Some(FoundVia::LdCache | FoundVia::DefaultDir)),
            "{d:?}"
        );
    }
}

#[test]
fn pure_resolution_over_an_in_memory_file_system() {
    use deps_support::{craft_elf, elf_header, Crafted};
    let root = PathBuf::from("/app/lib/libmain.so");
    let main = craft_elf(&Crafted {
        class64: true,
        big_endian: false,
        machine: 62,
        soname: Some("libmain.so"),
        needed: &["libdep.so.2", "libgone.so.1", "../rel/libpath.so"],
        rpath: None,
        runpath: Some("$ORIGIN/../deps:${ORIGIN}/$LIB"),
    });
    let info = gpulibs_inspect::deps::dynamic_info(&main).unwrap();
    assert_eq!(
        info.runpath.as_deref(),
        Some("$ORIGIN/../deps:${ORIGIN}/$LIB")
    );
    let mut fs = MemFs::default();
    let lib64 = elf_header(2, 1, 3, 62);
    fs.add("/app/lib/../deps/libdep.so.2", elf_header(1, 1, 3, 3)); // 32-bit: skipped
    fs.add("/app/lib/lib64/libdep.so.2", lib64.clone());
    fs.add("/app/rel/libpath.so", lib64);
    let ctx = SearchContext {
        default_dirs: vec!["/usr/lib".into()],
        ..isolated()
    };
    let report = resolve_with(&fs, &root, &info, &ctx, Limits::DIRECT);
    let dep = find(&report.dependencies, "libdep.so.2");
    assert_eq!(
        dep.path.as_deref(),
        Some(Path::new("/app/lib/lib64/libdep.so.2"))
    );
    assert_eq!(dep.via, Some(FoundVia::Runpath));
    assert_eq!(dep.skipped[0].reason, SkipReason::WrongClass);
    assert_eq!(
        find(&report.dependencies, "libgone.so.1").status,
        DependencyStatus::Missing
    );
    assert_eq!(
        find(&report.dependencies, "libgone.so.1").hint,
        None,
        "no hint for unknown families"
    );
    let rel = find(&report.dependencies, "../rel/libpath.so");
    assert_eq!(
        rel.status,
        DependencyStatus::Missing,
        "a name with '/' is used as-is (relative to the cwd)"
    );
    let ctx_lib = SearchContext {
        lib_token: Some("lib/x86_64-linux-gnu".into()),
        ..ctx
    };
    let report = resolve_with(&fs, &root, &info, &ctx_lib, Limits::DIRECT);
    assert_eq!(
        find(&report.dependencies, "libdep.so.2").status,
        DependencyStatus::Missing
    );
}
