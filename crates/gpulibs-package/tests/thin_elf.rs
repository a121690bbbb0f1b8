//! Thinning real ELF shared objects, compiled at test time, entry by entry.

use std::path::Path;

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_inspect::{inspect_file, InspectOptions, Verdict};
use gpulibs_package::{
    thin, thin_file, thin_with, ContainerOutcome, ThinError, ThinOptions, ThinReport, Unloadable,
};
use gpulibs_testkit::{build_so, container, Entry, Place};
use object::{Object, ObjectSection};

fn cc(s: &str) -> ComputeCapability {
    s.parse().unwrap()
}

/// Deterministic incompressible bytes (xorshift), so compressed sizes mean something.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn big(mut e: Entry, seed: u64) -> Entry {
    let mut p = e.payload[..4].to_vec();
    p.extend(noise(seed, 16 << 10));
    e.payload = p;
    e
}

/// The container of the issue: sm_75, sm_80, sm_86, sm_90a and compute_90 (PTX ISA 8.8).
fn five() -> Vec<Entry> {
    vec![
        big(Entry::sass(75), 1),
        big(Entry::sass(80), 2),
        big(Entry::sass(86), 3),
        big(Entry::sass(90).a(), 4),
        big(Entry::ptx(90, (8, 8)), 5),
    ]
}

/// Two such containers back to back in `.nv_fatbin`.
fn build_five(dir: &Path) -> std::path::PathBuf {
    let mut blob = container(&five());
    blob.extend(container(&five()));
    build_so(dir, "libfive.so", &[(Place::Section(".nv_fatbin"), blob)])
}

/// Name, file range and address of every section.
type SectionRow = (String, Option<(u64, u64)>, u64);

fn section_table(data: &[u8]) -> Vec<SectionRow> {
    let obj = object::File::parse(data).unwrap();
    obj.sections()
        .map(|s| (s.name().unwrap().to_string(), s.file_range(), s.address()))
        .collect()
}

fn kept_names(r: &ThinReport) -> Vec<Vec<String>> {
    r.containers
        .iter()
        .map(|c| c.kept.iter().map(|e| e.target.clone()).collect())
        .collect()
}

fn entry_bytes(e: &Entry) -> Vec<u8> {
    e.bytes()
}

/// Every target of the issue, entry by entry: what is kept, where, and what is zero.
#[test]
fn keeps_exactly_the_entry_the_driver_chooses() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_five(dir.path());
    let original = std::fs::read(&so).unwrap();
    let entries = five();
    let cases: &[(&str, usize, &str, ContainerOutcome)] = &[
        ("9.0", 3, "sm_90a", ContainerOutcome::Native),
        ("8.6", 2, "sm_86", ContainerOutcome::Native),
        // Compatible minor: sm_86 runs on 8.9 and is the highest one ≤ 8.9.
        ("8.9", 2, "sm_86", ContainerOutcome::Native),
        ("8.0", 1, "sm_80", ContainerOutcome::Native),
        ("7.5", 0, "sm_75", ContainerOutcome::Native),
        // No cubin for 12.0: the PTX is JIT-compiled.
        ("12.0", 4, "compute_90", ContainerOutcome::Jit),
    ];
    for &(gpu, idx, name, outcome) in cases {
        let mut data = original.clone();
        let r = thin(&mut data, cc(gpu), None).unwrap();
        assert_eq!(data.len(), original.len(), "{gpu}: size changed");
        assert_eq!(section_table(&data), section_table(&original), "{gpu}");
        assert_eq!(r.containers.len(), 2);
        assert_eq!(kept_names(&r), vec![vec![name.to_string()]; 2], "{gpu}");
        assert_eq!((r.kept_entries, r.removed_entries), (2, 8), "{gpu}");
        let kept = entry_bytes(&entries[idx]);
        for c in &r.containers {
            assert_eq!(c.outcome, outcome, "{gpu}");
            let removed: Vec<&str> = c.removed.iter().map(|e| e.target.as_str()).collect();
            let all = ["sm_75", "sm_80", "sm_86", "sm_90a", "compute_90"];
            let expect: Vec<&str> = all.iter().copied().filter(|n| *n != name).collect();
            assert_eq!(removed, expect, "{gpu}");
            assert_eq!(c.fat_size_after, kept.len() as u64);
            let o = c.offset as usize;
            // Header: magic, version and header size untouched, fat_size rewritten.
            assert_eq!(data[o..o + 8], original[o..o + 8]);
            assert_eq!(
                u64::from_le_bytes(data[o + 8..o + 16].try_into().unwrap()),
                kept.len() as u64
            );
            // The kept entry, byte for byte, at the start of the entry area.
            assert_eq!(&data[o + 16..o + 16 + kept.len()], kept.as_slice(), "{gpu}");
            // Zeros up to the old end.
            let old_end = o + 16 + c.fat_size_before as usize;
            assert!(data[o + 16 + kept.len()..old_end].iter().all(|&b| b == 0));
            assert_eq!(
                c.kept_bytes_total(),
                kept.len() as u64,
                "report bytes for {gpu}"
            );
        }
        // Outside the containers nothing changed.
        let first = r.containers[0].offset as usize;
        let last = &r.containers[1];
        let end = last.offset as usize + 16 + last.fat_size_before as usize;
        assert_eq!(data[..first], original[..first]);
        assert_eq!(data[end..], original[end..]);
        // The verdict for the target is unchanged.
        let want = if outcome == ContainerOutcome::Jit {
            Verdict::Jit { containers: 2 }
        } else {
            Verdict::Native
        };
        assert_eq!(r.verdict_before, want, "{gpu}");
        assert_eq!(r.verdict_after, want, "{gpu}");
    }
}

trait KeptBytes {
    fn kept_bytes_total(&self) -> u64;
}
impl KeptBytes for gpulibs_package::ContainerThin {
    fn kept_bytes_total(&self) -> u64 {
        self.kept.iter().map(|e| e.bytes).sum()
    }
}

/// The thinned file still loads with `dlopen`, its code runs, and the loader maps the thinned
/// container exactly where the file says: offsets, relocations and links are intact.
#[test]
fn thinned_library_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_five(dir.path());
    let out = dir.path().join("libfive.sm_90.so");
    let r = thin_file(&so, &out, cc("9.0"), None).unwrap();
    assert_eq!(kept_names(&r), vec![vec!["sm_90a".to_string()]; 2]);
    let data = std::fs::read(&out).unwrap();
    let c0 = r.containers[0].offset as usize;
    let len = 16 + r.containers[0].fat_size_before as usize;
    // SAFETY: a library the test just built; its only code returns constants.
    unsafe {
        let lib = libloading::Library::new(&out).unwrap();
        let f: libloading::Symbol<unsafe extern "C" fn() -> i32> =
            lib.get(b"gpulibs_test_function").unwrap();
        assert_eq!(f(), 42);
        let blob: libloading::Symbol<unsafe extern "C" fn() -> *const u8> =
            lib.get(b"gpulibs_test_blob0").unwrap();
        let loaded = std::slice::from_raw_parts(blob(), len);
        assert_eq!(loaded, &data[c0..c0 + len]);
    }
    // And inspect reads it as a library with sm_90a only.
    let rep = inspect_file(
        &out,
        &InspectOptions {
            gpus: vec![cc("9.0"), cc("8.6")],
            driver: Some(CudaVersion::new(13, 0)),
            check_payloads: true,
        },
    )
    .unwrap();
    assert_eq!(rep.sass_targets, ["sm_90a"]);
    assert!(rep.ptx_targets.is_empty());
    assert_eq!(rep.entries, 2);
    assert!(rep.warnings.is_empty(), "{:?}", rep.warnings);
    assert_eq!(rep.verdicts[0].verdict, Verdict::Native);
    assert!(matches!(
        rep.verdicts[1].verdict,
        Verdict::NoKernelImage { .. }
    ));
}

#[test]
fn thinned_file_compresses_far_better() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_five(dir.path());
    let original = std::fs::read(&so).unwrap();
    let z = |d: &[u8]| zstd::bulk::compress(d, 19).unwrap().len();
    let before = z(&original);
    for gpu in ["9.0", "8.6", "12.0"] {
        let mut data = original.clone();
        thin(&mut data, cc(gpu), None).unwrap();
        let after = z(&data);
        // One entry of five is kept: well under half the compressed size.
        assert!(
            after * 3 < before,
            "{gpu}: {after} compressed bytes after thinning, {before} before"
        );
    }
}

/// A container with nothing for the target is emptied (`fat_size` 0) by default, or keeps its
/// smallest SASS/PTX entry on request; the library's verdict stays native either way.
#[test]
fn container_for_other_gpus_is_emptied_or_keeps_its_smallest_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut blob = container(&five());
    // Built for Blackwell only: a large sm_120a and a small sm_100a.
    let small = Entry::sass(100).a();
    blob.extend(container(&[big(Entry::sass(120).a(), 9), small.clone()]));
    // And one for an other major only, then a normal container after it.
    blob.extend(container(&[Entry::sass(75)]));
    blob.extend(container(&five()));
    let so = build_so(
        dir.path(),
        "libmixed.so",
        &[(Place::Section(".nv_fatbin"), blob)],
    );
    let original = std::fs::read(&so).unwrap();

    let mut data = original.clone();
    let r = thin(&mut data, cc("9.0"), None).unwrap();
    let sm90a = vec!["sm_90a".to_string()];
    assert_eq!(
        kept_names(&r),
        [sm90a.clone(), vec![], vec![], sm90a.clone()]
    );
    for c in &r.containers[1..3] {
        assert_eq!(c.outcome, ContainerOutcome::Emptied);
        assert_eq!(c.fat_size_after, 0);
        let o = c.offset as usize;
        assert_eq!(data[o..o + 8], original[o..o + 8], "header kept");
        let end = o + 16 + c.fat_size_before as usize;
        assert!(
            data[o + 8..end].iter().all(|&b| b == 0),
            "fat_size 0, zeros"
        );
    }
    assert_eq!(r.containers[1].removed.len(), 2);
    assert_eq!(r.verdict_after, Verdict::Native);
    // The file still loads, and inspect sees the two kept containers and the two empty ones.
    let out = dir.path().join("libmixed.sm_90.so");
    std::fs::write(&out, &data).unwrap();
    // SAFETY: a library the test just built; its only code returns constants.
    unsafe {
        let lib = libloading::Library::new(&out).unwrap();
        let f: libloading::Symbol<unsafe extern "C" fn() -> i32> =
            lib.get(b"gpulibs_test_function").unwrap();
        assert_eq!(f(), 42);
    }
    let rep = inspect_file(&out, &InspectOptions::default()).unwrap();
    assert_eq!(rep.containers, 4);
    assert_eq!(rep.kernel_containers(), 2);
    assert_eq!(rep.sass_targets, ["sm_90a"]);
    assert!(rep.warnings.is_empty(), "{:?}", rep.warnings);

    let mut data = original.clone();
    let keep = ThinOptions {
        unloadable: Unloadable::KeepSmallest,
    };
    let r = thin_with(&mut data, cc("9.0"), None, &keep).unwrap();
    assert_eq!(
        kept_names(&r),
        [
            sm90a.clone(),
            vec!["sm_100a".to_string()],
            vec!["sm_75".to_string()],
            sm90a
        ]
    );
    let c = &r.containers[1];
    assert_eq!(c.outcome, ContainerOutcome::NoneKeptSmallest);
    assert_eq!(c.removed[0].target, "sm_120a");
    let o = c.offset as usize + 16;
    assert_eq!(&data[o..o + small.bytes().len()], small.bytes().as_slice());
    assert_eq!(r.verdict_after, Verdict::Native);
}

/// PTX-only source: the verdict is `jit` before and after, and the driver bound is honoured.
#[test]
fn ptx_only_source_and_driver_bound() {
    let dir = tempfile::tempdir().unwrap();
    let blob = container(&[
        Entry::sass(80),
        Entry::ptx(86, (8, 8)),
        Entry::ptx(90, (9, 1)),
    ]);
    let so = build_so(
        dir.path(),
        "libptx.so",
        &[(Place::Section(".nv_fatbin"), blob)],
    );
    let original = std::fs::read(&so).unwrap();
    // Unknown driver: the highest PTX (compute_90) is chosen.
    let mut data = original.clone();
    let r = thin(&mut data, cc("12.0"), None).unwrap();
    assert_eq!(kept_names(&r), [vec!["compute_90".to_string()]]);
    assert_eq!(r.verdict_after, Verdict::Jit { containers: 1 });
    // A 13.0 driver compiles ISA 9.0 at most: compute_90 (ISA 9.1) is not loadable, compute_86 is.
    let mut data = original.clone();
    let r = thin(&mut data, cc("12.0"), Some(CudaVersion::new(13, 0))).unwrap();
    assert_eq!(kept_names(&r), [vec!["compute_86".to_string()]]);
    assert_eq!(r.containers[0].outcome, ContainerOutcome::Jit);
}

#[test]
fn no_kernel_image_is_an_error_and_no_cuda_code_is_shared() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_five(dir.path());
    let mut data = std::fs::read(&so).unwrap();
    let err = thin(&mut data, cc("5.2"), None).unwrap_err();
    assert!(matches!(err, ThinError::NoKernelImage { .. }), "{err}");
    // What to do is the hint, not part of the message.
    let hint = gpulibs_hint::Hint::hint(&err).expect("a step");
    assert!(hint.contains("CMAKE_CUDA_ARCHITECTURES"), "{hint}");
    assert!(
        !err.to_string().contains("CMAKE_CUDA_ARCHITECTURES"),
        "{err}"
    );

    let plain = build_so(dir.path(), "libplain.so", &[]);
    let original = std::fs::read(&plain).unwrap();
    let mut data = original.clone();
    let r = thin(&mut data, cc("9.0"), None).unwrap();
    assert!(r.is_shared());
    assert!(r.containers.is_empty());
    assert_eq!(data, original);
}

/// Entries of other kinds (kind 8) are not the driver's to choose: they stay.
#[test]
fn other_entry_kinds_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let blob = container(&[Entry::sass(80), Entry::other(8, 80), Entry::sass(90)]);
    let so = build_so(
        dir.path(),
        "libkind8.so",
        &[(Place::Section(".nv_fatbin"), blob)],
    );
    let mut data = std::fs::read(&so).unwrap();
    let r = thin(&mut data, cc("9.0"), None).unwrap();
    assert_eq!(
        kept_names(&r),
        [vec!["kind 8 arch 80".to_string(), "sm_90".to_string()]]
    );
    assert_eq!(r.containers[0].removed.len(), 1);
}

#[test]
fn damaged_container_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut blob = container(&five());
    // Declare more entry bytes than the section holds: a truncated container.
    let n = u64::from_le_bytes(blob[8..16].try_into().unwrap()) + 4096;
    blob[8..16].copy_from_slice(&n.to_le_bytes());
    let so = build_so(
        dir.path(),
        "libcut.so",
        &[(Place::Section(".nv_fatbin"), blob)],
    );
    let mut data = std::fs::read(&so).unwrap();
    let err = thin(&mut data, cc("9.0"), None).unwrap_err();
    assert!(matches!(err, ThinError::DamagedContainer { .. }), "{err}");
}

/// An entry whose size is not a multiple of 8 would move a kept entry off its alignment.
#[test]
fn unaligned_compaction_is_refused() {
    // Header size 68: the sm_80 entry is 68 + 208 bytes long, 4 mod 8.
    let buf = container(&[Entry::sass(80).header_size(68), Entry::sass(90)]);
    let mut data = buf.clone();
    let err = thin(&mut data, cc("9.0"), None).unwrap_err();
    assert!(matches!(err, ThinError::Unaligned { .. }), "{err}");
    // Keeping the first entry moves nothing, so that is fine.
    let mut data = buf.clone();
    let r = thin(&mut data, cc("8.0"), None).unwrap();
    assert_eq!(kept_names(&r), [vec!["sm_80".to_string()]]);
}

#[test]
fn thin_file_never_writes_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_five(dir.path());
    let original = std::fs::read(&so).unwrap();
    let err = thin_file(&so, &so, cc("9.0"), None).unwrap_err();
    assert!(matches!(err, ThinError::SameFile { .. }), "{err}");
    let out = dir.path().join("out.so");
    thin_file(&so, &out, cc("8.6"), None).unwrap();
    assert_eq!(std::fs::read(&so).unwrap(), original);
    assert_ne!(std::fs::read(&out).unwrap(), original);
    // A failing thin leaves no file behind.
    let bad = dir.path().join("bad.so");
    assert!(thin_file(&so, &bad, cc("5.2"), None).is_err());
    assert!(!bad.exists());
}
