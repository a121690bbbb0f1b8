//! Real ELF shared objects, compiled at test time, carrying containers the helper writes.

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_inspect::{
    decompress_entry, inspect_file, inspect_paths, scan, Compression, FileFormat, FileReport,
    InspectOptions, Verdict,
};
use gpulibs_testkit::{build_so, container, Entry, Place};

fn cc(s: &str) -> ComputeCapability {
    s.parse().unwrap()
}

fn opts(gpus: &[&str]) -> InspectOptions {
    InspectOptions {
        gpus: gpus.iter().map(|g| cc(g)).collect(),
        driver: Some(CudaVersion::new(13, 0)),
        check_payloads: true,
    }
}

fn verdict<'a>(r: &'a FileReport, gpu: &str) -> &'a Verdict {
    &r.verdicts.iter().find(|v| v.gpu == gpu).unwrap().verdict
}

fn section_counts(r: &FileReport) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = r
        .sections
        .iter()
        .map(|s| (s.name.clone(), s.containers))
        .collect();
    v.sort();
    v
}

/// Two containers in `.nv_fatbin`, like an nvcc build with `-gencode` for 75, 90a and PTX 90.
#[test]
fn nv_fatbin_sass_and_ptx() {
    let dir = tempfile::tempdir().unwrap();
    let c = container(&[Entry::sass(75), Entry::sass(90).a(), Entry::ptx(90, (8, 8))]);
    let mut blob = c.clone();
    blob.extend_from_slice(&c);
    let so = build_so(
        dir.path(),
        "libtwo.so",
        &[(Place::Section(".nv_fatbin"), blob)],
    );
    let r = inspect_file(&so, &opts(&["5.2", "7.5", "8.6", "9.0", "12.0"])).unwrap();
    assert_eq!(r.format, FileFormat::Elf);
    assert_eq!(r.containers, 2);
    assert_eq!(r.entries, 6);
    assert_eq!(r.sass_targets, ["sm_75", "sm_90a"]);
    assert_eq!(r.ptx_targets, ["compute_90"]);
    assert_eq!(section_counts(&r), [(".nv_fatbin".to_string(), 2)]);
    let ptx = r.kernels.iter().find(|k| k.target == "compute_90").unwrap();
    assert_eq!((ptx.entries, ptx.ptx_isa.as_deref()), (2, Some("8.8")));
    assert_eq!(ptx.compression, [Compression::None]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);

    assert_eq!(verdict(&r, "sm_75"), &Verdict::Native);
    assert_eq!(verdict(&r, "sm_90"), &Verdict::Native);
    // sm_75 SASS does not run on 8.6 (and sm_90a only on 9.0): PTX 90 is too new for 8.6.
    assert!(matches!(
        verdict(&r, "sm_86"),
        Verdict::NoKernelImage { containers: 2, .. }
    ));
    assert_eq!(verdict(&r, "sm_120"), &Verdict::Jit { containers: 2 });
    assert!(matches!(
        verdict(&r, "sm_52"),
        Verdict::NoKernelImage { containers: 2, .. }
    ));
    let v90 = r.verdicts.iter().find(|v| v.gpu == "sm_90").unwrap();
    assert_eq!(v90.loaded.len(), 1);
    assert_eq!(
        (v90.loaded[0].target.as_str(), v90.loaded[0].containers),
        ("sm_90a", 2)
    );

    // PTX ISA versus driver: 12.8 understands ISA 8.7 at most, so the 8.8 PTX cannot JIT.
    let old = r.verdict_for(cc("12.0"), Some(CudaVersion::new(12, 8)));
    assert!(matches!(
        old.verdict,
        Verdict::NoKernelImage {
            ptx_needs_newer_driver: 2,
            ..
        }
    ));
    assert!(old.message.contains("newer driver"));
}

/// `f` and `a` flags, LZ4 and zstd payloads, and decompression of what was found.
#[test]
fn family_flags_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    let entries = [
        Entry::sass(100).f().zstd(),
        Entry::sass(120).a().lz4(),
        Entry::ptx(120, (9, 0)).f().zstd(),
        Entry::ptx(100, (9, 0)).lz4(),
    ];
    let blob = container(&entries);
    // The fuzz seed corpus takes this container (LZ4 and zstd payloads, `a`/`f` flags).
    if let Some(seeds) = std::env::var_os("GPULIBS_WRITE_FUZZ_SEEDS") {
        let p = std::path::Path::new(&seeds).join("seed-raw-lz4-zstd-af");
        std::fs::write(p, &blob).unwrap();
    }
    let so = build_so(
        dir.path(),
        "libpacked.so",
        &[(Place::Section(".nv_fatbin"), blob)],
    );
    let r = inspect_file(&so, &opts(&["10.0", "10.3", "11.0", "12.0", "12.1"])).unwrap();
    assert_eq!(r.sass_targets, ["sm_100f", "sm_120a"]);
    assert_eq!(r.ptx_targets, ["compute_100", "compute_120f"]);
    let comp: Vec<(&str, Compression)> = r
        .kernels
        .iter()
        .map(|k| (k.target.as_str(), k.compression[0]))
        .collect();
    assert_eq!(
        comp,
        [
            ("sm_100f", Compression::Zstd),
            ("sm_120a", Compression::Lz4),
            ("compute_100", Compression::Lz4),
            ("compute_120f", Compression::Zstd),
        ]
    );
    // check_payloads was on: every payload decompressed to its declared size.
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(verdict(&r, "sm_100"), &Verdict::Native);
    assert_eq!(verdict(&r, "sm_103"), &Verdict::Native); // sm_100f runs on 10.3
    assert_eq!(verdict(&r, "sm_110"), &Verdict::Jit { containers: 1 }); // compute_100
    assert_eq!(verdict(&r, "sm_120"), &Verdict::Native); // sm_120a
    assert_eq!(verdict(&r, "sm_121"), &Verdict::Jit { containers: 1 }); // compute_120f JIT
    let l121 = &r
        .verdicts
        .iter()
        .find(|v| v.gpu == "sm_121")
        .unwrap()
        .loaded;
    assert_eq!(l121[0].target, "compute_120f");

    // The payloads themselves, through the public decompress function.
    let data = std::fs::read(&so).unwrap();
    let s = scan(&data);
    assert_eq!(s.containers.len(), 1);
    for (found, written) in s.containers[0].entries.iter().zip(&entries) {
        let out = decompress_entry(&data, found, 1 << 20).unwrap();
        assert_eq!(out, written.payload);
        assert!(
            decompress_entry(&data, found, 16).is_err(),
            "cap is enforced"
        );
    }
}

/// Containers outside `.nv_fatbin`: `__nv_relfatbin`, `.data`, `.rodata` and a custom section.
#[test]
fn containers_outside_nv_fatbin() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_so(
        dir.path(),
        "libspread.so",
        &[
            (Place::Section(".nv_fatbin"), container(&[Entry::sass(80)])),
            (
                Place::Section("__nv_relfatbin"),
                container(&[Entry::sass(86)]),
            ),
            (Place::Data, container(&[Entry::sass(89).lz4()])),
            (Place::Rodata, container(&[Entry::ptx(70, (7, 0))])),
            (
                Place::Section(".nvFatBinSegment_like"),
                container(&[Entry::sass(90)]),
            ),
        ],
    );
    let r = inspect_file(&so, &opts(&["8.9"])).unwrap();
    assert_eq!(r.containers, 5, "{:#?}", r.sections);
    assert_eq!(r.sass_targets, ["sm_80", "sm_86", "sm_89", "sm_90"]);
    assert_eq!(r.ptx_targets, ["compute_70"]);
    let names: Vec<String> = section_counts(&r).into_iter().map(|(n, _)| n).collect();
    for want in [
        ".nv_fatbin",
        "__nv_relfatbin",
        ".data",
        ".rodata",
        ".nvFatBinSegment_like",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    // On 8.9: sm_80/86/89 load natively, compute_70 JITs, sm_90 is newer-only and skipped.
    let v = r.verdicts[0].clone();
    assert_eq!(v.verdict, Verdict::Jit { containers: 1 });
    assert_eq!(v.tally.native, 3);
    assert_eq!(v.tally.skipped_newer_only, 1);
}

#[test]
fn library_without_cuda_code() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_so(
        dir.path(),
        "libplain.so",
        &[(Place::Rodata, b"hello".to_vec())],
    );
    let r = inspect_file(&so, &opts(&["9.0"])).unwrap();
    assert_eq!(r.containers, 0);
    assert_eq!(r.verdicts[0].verdict, Verdict::NoCudaCode);
    assert!(r.summary_line().contains("no CUDA code"));
    assert!(r.render_text().contains("no CUDA code"));
}

/// A magic value in data that is not a container is not reported as kernels.
#[test]
fn stray_magic_is_not_a_container() {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = 0xBA55_ED50u32.to_le_bytes().to_vec();
    fake.extend_from_slice(&[1, 0, 16, 0]); // version 1, header_size 16
    fake.extend_from_slice(&64u64.to_le_bytes());
    fake.extend_from_slice(&[0xAB; 64]); // entry header_size 0xABABABAB
    let so = build_so(dir.path(), "libstray.so", &[(Place::Rodata, fake)]);
    let r = inspect_file(&so, &opts(&["9.0"])).unwrap();
    assert_eq!(r.containers, 0);
    assert_eq!(r.verdicts[0].verdict, Verdict::NoCudaCode);
    assert!(
        r.warnings.iter().any(|w| w.contains("no valid container")),
        "{:?}",
        r.warnings
    );
}

/// Truncated and corrupt containers: warnings on the container, never a failed file.
#[test]
fn truncated_and_corrupt_containers() {
    let dir = tempfile::tempdir().unwrap();
    let good = container(&[Entry::sass(80), Entry::sass(90)]);

    // fat_size larger than the section: the entries that fit count, with a warning.
    let mut past_end = good.clone();
    past_end[8..16].copy_from_slice(&((good.len() as u64) * 10).to_le_bytes());
    // Second entry with header_size 0.
    let mut hs0 = good.clone();
    let second = 16 + Entry::sass(80).bytes().len();
    hs0[second + 4..second + 8].copy_from_slice(&0u32.to_le_bytes());
    // Second entry with a payload size of u64::MAX.
    let mut huge = good.clone();
    huge[second + 8..second + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    // Cut in the middle of the second entry's header.
    let cut_header = good[..second + 20].to_vec();
    // Container header cut after 10 bytes.
    let cut_container = good[..10].to_vec();

    let cases: Vec<(&str, Vec<u8>, usize, bool)> = vec![
        // (name, bytes, entries found, warning expected)
        ("past_end", past_end, 2, true),
        ("hs0", hs0, 1, true),
        ("huge", huge, 1, true),
        ("cut_header", cut_header, 1, true),
        ("cut_container", cut_container, 0, true),
    ];
    for (name, bytes, want_entries, want_warning) in cases {
        // Each case in its own section, followed by a good container in `.nv_fatbin`, which
        // must still be found.
        let so = build_so(
            dir.path(),
            &format!("lib{name}.so"),
            &[
                (Place::Section(".corrupt_case"), bytes),
                (Place::Section(".nv_fatbin"), good.clone()),
            ],
        );
        let r = inspect_file(&so, &opts(&["9.0"])).unwrap();
        let corrupt: usize = r
            .sections
            .iter()
            .filter(|s| s.name == ".corrupt_case")
            .map(|s| s.containers)
            .sum();
        assert_eq!(
            r.entries - 2,
            want_entries,
            "{name}: entries in the corrupt container; {:#?}",
            r
        );
        assert_eq!(corrupt, usize::from(want_entries > 0), "{name}");
        assert_eq!(
            !r.warnings.is_empty(),
            want_warning,
            "{name}: {:?}",
            r.warnings
        );
        assert!(r.sass_targets.contains(&"sm_90".to_string()), "{name}");
    }
}

/// A fatbin file on its own, cut at the end, and the directory walk.
#[test]
fn raw_fatbin_file_and_directory_walk() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("lib/nested");
    std::fs::create_dir_all(&sub).unwrap();
    let mut raw = container(&[Entry::sass(86), Entry::ptx(86, (8, 5)).lz4()]);
    raw.extend(container(&[Entry::sass(120).a().zstd()]));
    let cut = raw.len() - 20;
    std::fs::write(dir.path().join("kernels.fatbin"), &raw[..cut]).unwrap();
    let r = inspect_file(&dir.path().join("kernels.fatbin"), &opts(&["8.6"])).unwrap();
    assert_eq!(r.format, FileFormat::Fatbin);
    assert_eq!(r.containers, 2);
    assert_eq!(
        r.sass_targets,
        ["sm_86"],
        "the cut sm_120a entry is not counted"
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("truncated")),
        "{:?}",
        r.warnings
    );

    build_so(
        &sub,
        "liba.so",
        &[(Place::Section(".nv_fatbin"), container(&[Entry::sass(75)]))],
    );
    build_so(dir.path(), "libb.so", &[(Place::Rodata, b"x".to_vec())]);
    std::fs::write(dir.path().join("README.txt"), "not ELF").unwrap();
    std::os::unix::fs::symlink(sub.join("liba.so"), dir.path().join("liba-link.so")).unwrap();
    let results = inspect_paths(&[dir.path().to_path_buf()], &opts(&["7.5"]));
    let names: Vec<String> = results
        .iter()
        .map(|r| {
            r.as_ref()
                .unwrap()
                .path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // ELF files only (not the fatbin, text file or C sources), symlinks not followed, sorted by
    // path (`lib/nested/liba.so` before `libb.so`).
    assert_eq!(names, ["liba.so", "libb.so"]);
    let a = results[0].as_ref().unwrap();
    assert_eq!(a.verdicts[0].verdict, Verdict::Native);

    let missing = inspect_file(&dir.path().join("nope.so"), &opts(&[])).unwrap_err();
    assert!(missing.to_string().contains("nope.so"), "{missing}");
}

/// With the section table gone, the whole file is scanned and nothing is lost.
#[test]
fn elf_without_section_table() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_so(
        dir.path(),
        "libnoshdr.so",
        &[(Place::Section(".nv_fatbin"), container(&[Entry::sass(89)]))],
    );
    let mut bytes = std::fs::read(&so).unwrap();
    // ELF64 LE: e_shoff at 0x28, e_shnum at 0x3C, e_shstrndx at 0x3E.
    bytes[0x28..0x30].copy_from_slice(&0u64.to_le_bytes());
    bytes[0x3C..0x40].copy_from_slice(&[0, 0, 0, 0]);
    let p = dir.path().join("libnoshdr-stripped.so");
    std::fs::write(&p, &bytes).unwrap();
    let r = inspect_file(&p, &opts(&["8.9"])).unwrap();
    assert_eq!(r.sass_targets, ["sm_89"]);
    assert_eq!(r.verdicts[0].verdict, Verdict::Native);

    // A broken section table pointer: falls back to a whole-file scan with a warning.
    bytes[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
    bytes[0x3C..0x3E].copy_from_slice(&5u16.to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let r = inspect_file(&p, &opts(&["8.9"])).unwrap();
    assert_eq!(r.sass_targets, ["sm_89"]);
}

/// The JSON the CLI prints: stable names, target lists easy to compare with cuobjdump.
#[test]
fn json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_so(
        dir.path(),
        "libjson.so",
        &[(
            Place::Section(".nv_fatbin"),
            container(&[Entry::sass(90).a(), Entry::ptx(90, (8, 2)).lz4()]),
        )],
    );
    let r = inspect_file(&so, &opts(&["9.0", "12.0"])).unwrap();
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["sass_targets"], serde_json::json!(["sm_90a"]));
    assert_eq!(j["ptx_targets"], serde_json::json!(["compute_90"]));
    assert_eq!(j["format"], "elf");
    assert_eq!(j["kernels"][1]["ptx_isa"], "8.2");
    assert_eq!(j["kernels"][1]["compression"], serde_json::json!(["lz4"]));
    assert_eq!(j["verdicts"][0]["verdict"], "native");
    assert_eq!(j["verdicts"][1]["verdict"], "jit");
    // The verdict's own `containers` (how many JIT) and the tally are separate keys.
    assert_eq!(j["verdicts"][1]["containers"], 1);
    assert_eq!(j["verdicts"][1]["tally"]["jit"], 1);
    assert_eq!(j["verdicts"][1]["loaded"][0]["target"], "compute_90");
    assert_eq!(j["verdicts"][1]["max_ptx_isa"], "9.0");
    assert_eq!(j["verdicts"][1]["compute_capability"], "12.0");
    assert!(j.get("kernel_sets").is_none());
}

/// Rule `fatbin-zstd` on a real ELF library: kernels stored zstd-compressed cannot load on a
/// driver before CUDA 12.4 (R535 is 12.2), the same kernels LZ4-compressed can, and R550 (12.4)
/// reads both. The verdict names the rule and the driver it needs.
#[test]
fn zstd_kernels_need_a_cuda_12_4_driver() {
    let dir = tempfile::tempdir().unwrap();
    let zstd = build_so(
        dir.path(),
        "libzstd.so",
        &[
            (
                Place::Section(".nv_fatbin"),
                container(&[Entry::sass(75).zstd(), Entry::sass(86).zstd()]),
            ),
            (
                Place::Section(".nv_fatbin"),
                container(&[Entry::sass(86).zstd(), Entry::ptx(86, (8, 2)).zstd()]),
            ),
        ],
    );
    let lz4 = build_so(
        dir.path(),
        "liblz4.so",
        &[(
            Place::Section(".nv_fatbin"),
            container(&[Entry::sass(75).lz4(), Entry::sass(86).lz4()]),
        )],
    );
    let r535 = InspectOptions {
        gpus: vec![cc("8.6")],
        driver: Some(CudaVersion::new(12, 2)),
        check_payloads: true,
    };
    let r = inspect_file(&zstd, &r535).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let v = &r.verdicts[0];
    match &v.verdict {
        Verdict::DriverCannotLoad {
            containers,
            compression,
            needs_cuda,
            needs_driver,
            rule,
            ..
        } => {
            assert_eq!(*containers, 2);
            assert_eq!(*compression, Compression::Zstd);
            assert_eq!(*needs_cuda, Some(CudaVersion::new(12, 4)));
            assert_eq!(needs_driver.as_deref(), Some("550.54.14"));
            assert_eq!(rule, "fatbin-zstd");
        }
        other => panic!("{other:?}"),
    }
    assert!(v.loaded.is_empty(), "{:?}", v.loaded);
    assert!(
        v.message.starts_with("cannot load on this driver"),
        "{}",
        v.message
    );
    assert!(v.message.contains("zstd-compressed"), "{}", v.message);
    assert!(r
        .summary_line()
        .contains("sm_86 driver cannot load (2, zstd)"));
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["verdicts"][0]["verdict"], "driver_cannot_load");
    assert_eq!(j["verdicts"][0]["needs_driver"], "550.54.14");
    assert_eq!(j["verdicts"][0]["tally"]["failing_compression"], 2);

    // On 7.5 the first container's sm_75 is zstd too; the second has nothing for 7.5.
    let v75 = r.verdict_for(cc("7.5"), Some(CudaVersion::new(12, 2)));
    assert!(matches!(
        v75.verdict,
        Verdict::DriverCannotLoad { containers: 1, .. }
    ));
    // R550 (12.4) reads zstd: native.
    let v550 = r.verdict_for(cc("8.6"), Some(CudaVersion::new(12, 4)));
    assert_eq!(v550.verdict, Verdict::Native);
    // The same kernels LZ4-compressed load on R535.
    let l = inspect_file(&lz4, &r535).unwrap();
    assert_eq!(l.verdicts[0].verdict, Verdict::Native);
    // Unknown driver: not held against the library.
    let unknown = r.verdict_for(cc("8.6"), None);
    assert_eq!(unknown.verdict, Verdict::Native);
}
