//! Hostile archives: one test per refusal, each checking that nothing escaped the target.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;

use common::*;
use gpulibs_store::*;
use tar::EntryType;

/// Unpacks `tar` into `<tmp>/target`, with a canary directory beside it that must stay empty.
fn unpack(
    tar: &[u8],
    limits: &UnpackLimits,
) -> (tempfile::TempDir, Result<UnpackReport, UnpackError>) {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target");
    fs::create_dir(&target).unwrap();
    fs::create_dir(tmp.path().join("outside")).unwrap();
    let r = unpack_tar(tar, &target, limits);
    let outside: Vec<_> = fs::read_dir(tmp.path().join("outside")).unwrap().collect();
    assert!(outside.is_empty(), "something escaped: {outside:?}");
    let top: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top.len(), 2, "something landed beside the target: {top:?}");
    (tmp, r)
}

fn refuse(members: &[M]) -> UnpackError {
    let (_tmp, r) = unpack(&tar_of(members), &UnpackLimits::unpacked(1 << 20));
    r.expect_err("the archive must be refused")
}

#[test]
fn absolute_paths_are_refused() {
    let e = refuse(&[M::File("/tmp/x/outside/evil", b"x")]);
    assert!(matches!(e, UnpackError::AbsolutePath { .. }), "{e}");
    assert!(e
        .to_string()
        .contains("`/tmp/x/outside/evil` has an absolute path"));
}

#[test]
fn parent_components_are_refused() {
    for name in ["../outside/evil", "a/../../outside/evil", "a/b/../c"] {
        let e = refuse(&[M::File(name, b"x")]);
        assert!(
            matches!(e, UnpackError::ParentComponent { .. }),
            "{name}: {e}"
        );
    }
}

#[test]
fn symlinks_pointing_outside_are_refused() {
    for target in [
        "/etc/passwd",
        "../outside",
        "libs/../../outside",
        "a/../../../x",
    ] {
        let e = refuse(&[M::Symlink("link", target)]);
        assert!(
            matches!(e, UnpackError::SymlinkEscapes { .. }),
            "{target}: {e}"
        );
    }
}

#[test]
fn symlink_chains_that_leave_through_another_link_are_refused() {
    // Lexically `sub/up/../outside` stays inside (`sub/outside`); physically `sub/up` is the
    // component root, so `..` leaves it. Both entry orders.
    let e = refuse(&[
        M::Dir("sub/"),
        M::Symlink("sub/up", ".."),
        M::Symlink("evil", "sub/up/../outside"),
    ]);
    assert!(
        matches!(e, UnpackError::SymlinkEscapes { ref entry, .. } if entry == "evil"),
        "{e}"
    );
    let e = refuse(&[
        M::Dir("sub/"),
        M::Symlink("evil", "sub/up/../outside"),
        M::Symlink("sub/up", ".."),
    ]);
    assert!(
        matches!(e, UnpackError::SymlinkEscapes { ref entry, .. } if entry == "evil"),
        "{e}"
    );
}

#[test]
fn writing_through_an_archive_symlink_is_refused() {
    // The link itself stays inside; the file behind it would land in `sub` by way of the link.
    let e = refuse(&[
        M::Dir("sub/"),
        M::Symlink("link", "sub"),
        M::File("link/payload", b"x"),
    ]);
    assert!(
        matches!(e, UnpackError::ThroughSymlink { ref through, .. } if through == "link"),
        "{e}"
    );
}

#[test]
fn hardlinks_outside_or_to_nothing_are_refused() {
    let e = refuse(&[M::Hardlink("h", "/etc/passwd")]);
    assert!(matches!(e, UnpackError::HardlinkEscapes { .. }), "{e}");
    let e = refuse(&[M::Hardlink("h", "../outside/x")]);
    assert!(matches!(e, UnpackError::HardlinkEscapes { .. }), "{e}");
    // Not yet extracted: the later file must not be reachable through an earlier link.
    let e = refuse(&[M::Hardlink("h", "later"), M::File("later", b"x")]);
    assert!(matches!(e, UnpackError::HardlinkDangling { .. }), "{e}");
    // To a symlink: linkat would link the symlink, whose target we never vetted as a file.
    let e = refuse(&[
        M::File("f", b"x"),
        M::Symlink("s", "f"),
        M::Hardlink("h", "s"),
    ]);
    assert!(matches!(e, UnpackError::HardlinkDangling { .. }), "{e}");
}

#[test]
fn device_files_and_fifos_are_refused() {
    for (kind, word) in [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Fifo, "fifo"),
    ] {
        let e = refuse(&[M::Special("dev", kind)]);
        assert!(e.to_string().contains(word), "{e}");
    }
}

#[test]
fn duplicate_entries_are_refused() {
    let e = refuse(&[M::File("a", b"1"), M::File("a", b"2")]);
    assert!(matches!(e, UnpackError::Duplicate { .. }), "{e}");
    let e = refuse(&[M::File("a", b"1"), M::File("a/b", b"2")]);
    assert!(matches!(e, UnpackError::Duplicate { .. }), "{e}");
}

#[test]
fn an_archive_bomb_stops_at_the_header_that_bursts_the_budget() {
    let tar = tar_of(&[M::File("ok", &[1u8; 1000]), M::Declares("bomb", 10 << 30)]);
    let (tmp, r) = unpack(&tar, &UnpackLimits::unpacked(4096));
    let e = r.unwrap_err();
    match &e {
        UnpackError::SizeBudget {
            entry,
            declared,
            remaining,
            budget,
        } => {
            assert_eq!(entry, "bomb");
            assert_eq!(*declared, 10 << 30);
            assert_eq!(*remaining, 3096);
            assert_eq!(*budget, 4096);
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().starts_with("archive bomb?"));
    assert!(
        !tmp.path().join("target/bomb").exists(),
        "nothing of the bomb is written"
    );
}

#[test]
fn per_file_sizes_from_the_manifest_are_enforced() {
    let mut limits = UnpackLimits::unpacked(1 << 20);
    limits.file_sizes.insert("libs/libx.so".into(), 10);
    let (_t, r) = unpack(&tar_of(&[M::File("libs/libx.so", &[0u8; 11])]), &limits);
    assert!(matches!(
        r,
        Err(UnpackError::SizeMismatch {
            expected: 10,
            declared: 11,
            ..
        })
    ));
}

#[test]
fn too_many_entries_stop_early() {
    let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    let members: Vec<M> = names.iter().map(|n| M::File(n, b"")).collect();
    let mut limits = UnpackLimits::unpacked(1 << 20);
    limits.max_entries = 5;
    let (_t, r) = unpack(&tar_of(&members), &limits);
    assert!(matches!(r, Err(UnpackError::TooManyEntries { limit: 5 })));
}

fn stage_tar(archive: &[u8], format: ArchiveFormat, limits: UnpackLimits) -> StoreError {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("root")).unwrap();
    let lock = store.try_lock().unwrap();
    let sha = sha256(archive);
    let mut stager = lock.stage_component(&sha, limits).unwrap();
    let e = stager.unpack_tar(archive, format).unwrap_err();
    drop(stager);
    assert!(!store.has_component(&sha));
    assert!(
        temporaries(store.root()).is_empty(),
        "a refused stager leaves nothing"
    );
    e
}

#[test]
fn a_decompression_bomb_of_padding_stops_at_the_stream_limit() {
    // One small file, then 64 MiB of zeros: tiny compressed, no header declares it.
    let mut tar = tar_of(&[M::File("ok", b"fine")]);
    tar.resize(tar.len() + (64 << 20), 0);
    let gz = gzip(&tar);
    assert!(gz.len() < 1 << 20);
    let mut limits = UnpackLimits::unpacked(4096);
    limits.max_entries = 10;
    let e = stage_tar(&gz, ArchiveFormat::TarGzip, limits);
    let StoreError::Unpack { source, .. } = &e else {
        panic!("{e}")
    };
    assert!(
        matches!(source, UnpackError::StreamTooLong { .. }),
        "{source}"
    );
}

#[test]
fn an_archive_longer_than_the_manifest_says_stops() {
    let tar = tar_of(&[M::File("ok", &[7u8; 5000])]);
    let mut limits = UnpackLimits::unpacked(1 << 20);
    limits.max_archive_bytes = Some(2048);
    let e = stage_tar(&tar, ArchiveFormat::Tar, limits);
    let StoreError::Unpack { source, .. } = &e else {
        panic!("{e}")
    };
    assert!(
        matches!(source, UnpackError::ArchiveTooLong { limit: 2048, .. }),
        "{source}"
    );
}

#[test]
fn a_changed_archive_is_not_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let lock = store.try_lock().unwrap();
    let good = tar_of(&[M::File("libx.so", b"good")]);
    let bad = tar_of(&[M::File("libx.so", b"evil")]);
    let mut stager = lock
        .stage_component(&sha256(&good), UnpackLimits::unpacked(1 << 20))
        .unwrap();
    let e = stager.unpack_tar(&bad[..], ArchiveFormat::Tar).unwrap_err();
    assert!(matches!(e, StoreError::HashMismatch { .. }), "{e}");
    assert!(
        stager.commit().is_err(),
        "nothing to commit after a mismatch"
    );
    assert!(!store.has_component(&sha256(&good)));
}

#[test]
fn free_space_is_checked_before_starting() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let lock = store.try_lock().unwrap();
    let e = lock
        .stage_component(&"a".repeat(64), UnpackLimits::unpacked(u64::MAX / 2))
        .unwrap_err();
    match &e {
        StoreError::InsufficientSpace {
            needed, available, ..
        } => {
            assert_eq!(*needed, u64::MAX / 2);
            assert!(*available < *needed);
        }
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("bytes needed") && msg.contains("available"),
        "{msg}"
    );
    assert!(temporaries(store.root()).is_empty());
}

#[test]
fn symlinks_for_sonames_are_recreated_as_symlinks() {
    let tar = tar_of(&[
        M::Dir("libs/"),
        M::Exec("libs/libcudart.so.12.9.79", &[1u8; 3000]),
        M::Symlink("libs/libcudart.so.12", "libcudart.so.12.9.79"),
        M::Symlink("libs/libcudart.so", "libcudart.so.12"),
        M::Symlink("libs64", "libs"),
        M::Symlink("up-and-back", "../target/libs/libcudart.so.12"),
    ]);
    // `../target/...` leaves the component even though it comes back by name: refused.
    let (_t, r) = unpack(&tar, &UnpackLimits::unpacked(1 << 20));
    assert!(matches!(r, Err(UnpackError::SymlinkEscapes { .. })));

    let tar = tar_of(&[
        M::Dir("libs/"),
        M::Exec("libs/libcudart.so.12.9.79", &[1u8; 3000]),
        M::Symlink("libs/libcudart.so.12", "libcudart.so.12.9.79"),
        M::Symlink("libs/libcudart.so", "libcudart.so.12"),
        M::Symlink("libs64", "libs"),
        M::Symlink("libs/self", "../libs/libcudart.so"),
    ]);
    let (tmp, r) = unpack(&tar, &UnpackLimits::unpacked(1 << 20));
    let report = r.unwrap();
    assert_eq!(report.unpacked_bytes, 3000, "links take no budget");
    let libs = tmp.path().join("target/libs");
    for (link, target) in [
        ("libcudart.so.12", "libcudart.so.12.9.79"),
        ("libcudart.so", "libcudart.so.12"),
    ] {
        let meta = fs::symlink_metadata(libs.join(link)).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "{link} is a symlink, not a copy"
        );
        assert_eq!(fs::read_link(libs.join(link)).unwrap(), Path::new(target));
    }
    assert_eq!(fs::read(libs.join("libcudart.so")).unwrap().len(), 3000);
    let real = fs::metadata(libs.join("libcudart.so.12.9.79")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        real.permissions().mode() & 0o777,
        0o555,
        "read-only, executable kept"
    );
}

fn wheel(members: &[(&str, &[u8])], symlink: Option<(&str, &str)>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    if let Some((name, target)) = symlink {
        w.add_symlink(name, target, opts).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn unpack_wheel_bytes(
    bytes: &[u8],
    limits: &UnpackLimits,
) -> (tempfile::TempDir, Result<UnpackReport, UnpackError>) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.whl");
    fs::write(&path, bytes).unwrap();
    let target = tmp.path().join("target");
    fs::create_dir(&target).unwrap();
    let r = unpack_wheel(&path, &target, &wheel_library_member, limits);
    (tmp, r)
}

#[test]
fn wheels_unpack_only_the_libraries() {
    let whl = wheel(
        &[
            ("onnxruntime/__init__.py", b"print()"),
            ("onnxruntime/capi/libonnxruntime.so.1.23.2", &[2u8; 5000]),
            (
                "onnxruntime/capi/libonnxruntime_providers_cuda.so",
                &[3u8; 7000],
            ),
            ("onnxruntime/capi/onnxruntime_pybind11_state.so", b"py"),
            ("nvidia/cublas/lib/libcublas.so.12", &[4u8; 100]),
            ("nvidia/cublas/include/cublas.h", b"h"),
            ("onnxruntime_gpu-1.23.2.dist-info/RECORD", b"r"),
        ],
        None,
    );
    let (tmp, r) = unpack_wheel_bytes(&whl, &UnpackLimits::unpacked(1 << 20));
    let report = r.unwrap();
    let files: Vec<&str> = report
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "nvidia/cublas/lib/libcublas.so.12",
            "onnxruntime/capi/libonnxruntime.so.1.23.2",
            "onnxruntime/capi/libonnxruntime_providers_cuda.so",
        ]
    );
    assert_eq!(report.unpacked_bytes, 12_100);
    assert!(!tmp.path().join("target/onnxruntime/__init__.py").exists());
}

#[test]
fn hostile_wheels_are_refused() {
    let whl = wheel(&[("../../outside/libevil.so", b"x")], None);
    let (_t, r) = unpack_wheel_bytes(&whl, &UnpackLimits::unpacked(1 << 20));
    assert!(
        matches!(r, Err(UnpackError::ParentComponent { .. })),
        "{r:?}"
    );

    let whl = wheel(&[("/abs/libevil.so", b"x")], None);
    let (_t, r) = unpack_wheel_bytes(&whl, &UnpackLimits::unpacked(1 << 20));
    assert!(matches!(r, Err(UnpackError::AbsolutePath { .. })), "{r:?}");

    let whl = wheel(
        &[("nvidia/cublas/lib/libcublas.so.12", b"x")],
        Some(("nvidia/cublas/lib/libcublasLt.so.12", "/etc/passwd")),
    );
    let (_t, r) = unpack_wheel_bytes(&whl, &UnpackLimits::unpacked(1 << 20));
    assert!(matches!(r, Err(UnpackError::SpecialFile { .. })), "{r:?}");

    let whl = wheel(
        &[("nvidia/cublas/lib/libcublas.so.12", &[0u8; 10_000])],
        None,
    );
    let (_t, r) = unpack_wheel_bytes(&whl, &UnpackLimits::unpacked(5000));
    assert!(
        matches!(
            r,
            Err(UnpackError::SizeBudget {
                declared: 10_000,
                ..
            })
        ),
        "{r:?}"
    );

    let whl = wheel(&[("onnxruntime/__init__.py", b"x")], None);
    let (_t, r) = unpack_wheel_bytes(&whl, &UnpackLimits::unpacked(5000));
    assert!(
        matches!(r, Err(UnpackError::NothingSelected { .. })),
        "{r:?}"
    );
}

#[test]
fn wheel_member_filter() {
    for (name, want) in [
        ("onnxruntime/capi/libonnxruntime.so.1.23.2", true),
        ("onnxruntime/capi/libonnxruntime_providers_cuda.so", true),
        ("onnxruntime/capi/onnxruntime_pybind11_state.so", false),
        ("nvidia/cudnn/lib/libcudnn.so.9", true),
        ("nvidia/cudnn/include/cudnn.h", false),
        ("nvidia/cudnn/lib/sub/libx.so", false),
        ("other/capi/libonnxruntime.so", false),
    ] {
        assert_eq!(wheel_library_member(name), want, "{name}");
    }
}

#[test]
fn multi_frame_zstd_gzip_and_xz_unpack() {
    let tar = tar_of(&[
        M::File("libs/liba.so.1", &[5u8; 70_000]),
        M::File("libs/libb.so.1", b"b"),
    ]);
    // Split the tar across two zstd frames, with a skippable frame between (as pzstd writes).
    let (a, b) = tar.split_at(40_000);
    let mut zst = zstd(a);
    zst.extend_from_slice(&[0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 9, 9, 9, 9]);
    zst.extend(zstd(b));
    for (bytes, format) in [
        (zst, ArchiveFormat::TarZstd),
        (gzip(&tar), ArchiveFormat::TarGzip),
        (xz(&tar), ArchiveFormat::TarXz),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let lock = store.try_lock().unwrap();
        let sha = sha256(&bytes);
        let mut stager = lock
            .stage_component(&sha, UnpackLimits::unpacked(1 << 20))
            .unwrap();
        stager
            .unpack_tar(SlowReader::new(&bytes[..], 0), format)
            .unwrap();
        let meta = stager.commit().unwrap();
        assert_eq!(meta.unpacked_bytes, 70_001, "{format:?}");
        assert!(store.has_component(&sha));
        let f = store.component_dir(&sha).join("tree/libs/liba.so.1");
        assert_eq!(fs::read(f).unwrap(), vec![5u8; 70_000]);
    }
}

#[test]
fn files_the_manifest_lists_are_checked_by_digest_and_presence() {
    let good = b"the real library";
    let members = [
        M::File("lib/libx.so.1", &good[..]),
        M::Symlink("lib/libx.so", "libx.so.1"),
    ];
    let tar = tar_of(&members);
    let with = |path: &str, sha: String| {
        let mut limits = UnpackLimits::unpacked(1 << 20);
        limits.file_sha256.insert(path.into(), sha);
        limits
    };
    // The right digest, spelt with `./` and `//` as a manifest may: unpacked, digest recorded.
    let (_tmp, r) = unpack(&tar, &with("./lib//libx.so.1", sha256(good)));
    let report = r.unwrap();
    let file = report
        .entries
        .iter()
        .find(|e| e.path == "lib/libx.so.1")
        .unwrap();
    assert_eq!(file.sha256.as_deref(), Some(sha256(good).as_str()));

    // Another digest: refused, naming the entry and both digests.
    let other = sha256(b"what the manifest was signed for");
    let (_tmp, r) = unpack(&tar, &with("lib/libx.so.1", other.clone()));
    let e = r.expect_err("a file with another digest must be refused");
    assert!(matches!(e, UnpackError::FileDigest { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "archive entry `lib/libx.so.1` has sha256 {}; the manifest lists {other} for it, so \
             the component is refused",
            sha256(good)
        )
    );

    // A listed file the archive lacks, or has as a link only: refused.
    for (path, found) in [
        ("lib/libmissing.so.1", "nothing"),
        ("lib/libx.so", "a symbolic link"),
        ("lib", "a directory"),
    ] {
        let (_tmp, r) = unpack(&tar, &with(path, sha256(good)));
        let e = r.expect_err(path);
        assert_eq!(
            e.to_string(),
            format!(
                "the manifest lists the file `{path}`, but the archive has {found} there; the \
                 component is refused"
            ),
            "{path}"
        );
    }
    // The same by size alone.
    let mut limits = UnpackLimits::unpacked(1 << 20);
    limits.file_sizes.insert("lib/libgone.so".into(), 3);
    let (_tmp, r) = unpack(&tar, &limits);
    assert!(matches!(
        r.expect_err("missing"),
        UnpackError::ListedFileMissing { .. }
    ));
}

#[test]
fn a_stager_with_a_wrong_file_digest_commits_nothing() {
    let f = cuda(4096);
    let mut limits = f.limits();
    limits.file_sha256.insert(
        "cuda/libs/libcudart.so.12.9.79".into(),
        sha256(b"not these bytes"),
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("root")).unwrap();
    let lock = store.try_lock().unwrap();
    let mut stager = lock.stage_component(&f.spec.sha256, limits).unwrap();
    let e = stager
        .unpack_tar(&f.archive[..], f.format)
        .expect_err("refused");
    assert!(
        matches!(
            &e,
            StoreError::Unpack {
                source: UnpackError::FileDigest { .. },
                ..
            }
        ),
        "{e}"
    );
    drop(stager);
    drop(lock);
    assert!(!store.has_component(&f.spec.sha256));
    assert_eq!(temporaries(store.root()), Vec::<std::path::PathBuf>::new());
}

/// What is under `dir`, recursively (paths relative to it).
fn listing(dir: &Path) -> Vec<String> {
    gpulibs_testkit::tree(dir)
        .into_keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// A root with `v1` active, inside `<tmp>/home/root`; `<tmp>/home` holds nothing else.
fn world_with_v1() -> (tempfile::TempDir, Store, Fixture, InstallRecord) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("home/root")).unwrap();
    let ort = ort("modern", 2048);
    let v1 = install(&store, &[&ort], &spec("v1", &[&ort], &[86])).unwrap();
    (tmp, store, ort, v1)
}

/// Building the install failed: nothing outside the root, no new generation, v1 still current.
fn assert_nothing_changed(tmp: &Path, store: &Store, v1: &InstallRecord, before: &[String]) {
    assert_eq!(
        listing(tmp),
        before,
        "something changed outside or inside the root"
    );
    assert_eq!(store.current_id().unwrap().as_deref(), Some(v1.id.as_str()));
}

#[test]
fn declared_links_outside_lib_are_refused_before_anything_is_written() {
    let (tmp, store, ort, v1) = world_with_v1();
    let escape = tmp.path().join("escape");
    let abs = escape.to_string_lossy().into_owned();
    let before = listing(tmp.path());
    for (name, target, why) in [
        (abs.as_str(), "libonnxruntime.so.1.23.2", "it contains `/`"),
        (
            "../../../../escape",
            "libonnxruntime.so.1.23.2",
            "it contains `/`",
        ),
        ("sub/libx.so", "libonnxruntime.so.1.23.2", "it contains `/`"),
        (
            "..",
            "libonnxruntime.so.1.23.2",
            "`.` and `..` name directories",
        ),
        ("", "libonnxruntime.so.1.23.2", "empty"),
        (
            "libx.so\0",
            "libonnxruntime.so.1.23.2",
            "it contains a control character",
        ),
        ("libonnxruntime.so.1", "/etc/passwd", "it contains `/`"),
        ("libonnxruntime.so.1", "../../../escape", "it contains `/`"),
    ] {
        let mut part = ort.clone();
        part.spec.links = vec![DeclaredLink {
            name: name.into(),
            target: target.into(),
        }];
        let s = spec("v2", &[&part], &[86]);
        let lock = store.try_lock().unwrap();
        let e = lock.new_install(&s).expect_err(name);
        drop(lock);
        let bad = if target.contains('/') { target } else { name };
        assert_eq!(
            e.to_string(),
            format!(
                "component ort-modern declares the link `{bad}`, which is not a bare file name \
                 ({why}); links are made only inside the install's lib directory"
            ),
            "{name:?} -> {target:?}"
        );
        assert!(!escape.exists() && escape.symlink_metadata().is_err());
        assert_nothing_changed(tmp.path(), &store, &v1, &before);
    }
}

#[test]
fn declared_files_are_checked_against_the_stored_component() {
    let (tmp, store, ort, v1) = world_with_v1();
    let before = listing(tmp.path());
    let path = "ort-modern/libs/libonnxruntime.so.1.23.2";
    let bytes = lib_bytes("libonnxruntime.so.1.23.2", 2048);
    let right = DeclaredFile {
        path: path.into(),
        size: bytes.len() as u64,
        sha256: sha256(&bytes),
    };
    let wrong_sha = sha256(b"other");
    let cases = [
        (
            DeclaredFile {
                sha256: wrong_sha.clone(),
                ..right.clone()
            },
            format!(
                "component ort-modern: `{path}` has sha256 {}; the manifest lists {wrong_sha}",
                right.sha256
            ),
        ),
        (
            DeclaredFile {
                size: 7,
                ..right.clone()
            },
            format!("component ort-modern: `{path}` has size 2048; the manifest lists 7"),
        ),
        (
            DeclaredFile {
                path: "ort-modern/libs/libgone.so".into(),
                ..right.clone()
            },
            "component ort-modern: the manifest lists `ort-modern/libs/libgone.so`, but the \
             stored component has no such file; hint: fix the manifest's files[] or the archive"
                .to_string(),
        ),
        (
            DeclaredFile {
                path: "ort-modern/libs/libonnxruntime.so".into(),
                ..right.clone()
            },
            "component ort-modern: the manifest lists `ort-modern/libs/libonnxruntime.so`, but \
             the stored component has no such file; hint: fix the manifest's files[] or the \
             archive"
                .to_string(),
        ),
    ];
    for (file, want) in cases {
        let mut part = ort.clone();
        part.spec.files = vec![file];
        let lock = store.try_lock().unwrap();
        let e = lock
            .new_install(&spec("v2", &[&part], &[86]))
            .expect_err(&want);
        drop(lock);
        assert_eq!(told(&e), want);
        assert_nothing_changed(tmp.path(), &store, &v1, &before);
    }
    // The right listing builds.
    let mut part = ort.clone();
    part.spec.files = vec![right];
    let lock = store.try_lock().unwrap();
    lock.new_install(&spec("v2", &[&part], &[86])).unwrap();
}
