//! The planner's rules, one table or scenario each: kernel coverage through inspect's rules
//! (native, JIT allowed or not, `a` exact-only, `f` family, PTX ISA vs driver), the driver, the
//! ranking, several GPUs, `--gpu` hosts, `CUDA_VISIBLE_DEVICES`, VRAM, disk, the CPU outcome,
//! and where each component and need comes from.

use gpulibs_detect::{
    assemble, ComputeCapability, DetectOptions, DriverInfo, Inventory, RawGpu, Source as DetSource,
};
use gpulibs_plan::{
    parse_manifest, plan, plan_with_trust, CpuReason, Host, HostGpu, KernelFit, Manifest,
    NeedSource, Outcome, Plan, Policy, Reason, Refusal, Source, SystemInventory, SystemLibrary,
    Trust, Warning,
};

const EXAMPLE: &str = include_str!("../fixtures/example.toml");

fn cc(s: &str) -> ComputeCapability {
    s.parse().unwrap()
}

fn hash(n: u32) -> String {
    format!("{n:064x}")
}

/// One GPU variant of one component: (name, cuda, sass, ptx [(target, isa)], download size).
type V<'a> = (
    &'a str,
    &'a str,
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    u64,
);

/// A manifest of one-component GPU variants.
fn manifest(variants: &[V]) -> Manifest {
    let mut t = String::from("schema_version = 1\napp = \"t\"\nversion = \"1\"\n");
    for (i, (name, cuda, sass, ptx, size)) in variants.iter().enumerate() {
        let sass: Vec<String> = sass.iter().map(|s| format!("\"{s}\"")).collect();
        let ptx: Vec<String> = ptx
            .iter()
            .map(|(t, isa)| format!("{{ target = \"{t}\", isa = \"{isa}\" }}"))
            .collect();
        t.push_str(&format!(
            "[[components]]\nid = \"{name}\"\nkind = \"onnxruntime\"\nversion = \"1\"\n\
             cuda = \"{cuda}\"\nneeds = [\"libcuda.so.1\"]\n\
             [components.archive]\nurl = \"https://example.com/{name}.tar.zst\"\n\
             sha256 = \"{}\"\nsize = {size}\nunpacked_size = {}\nformat = \"tar.zst\"\n\
             [components.coverage]\nsass = [{}]\nptx = [{}]\n",
            hash(i as u32),
            size * 2,
            sass.join(", "),
            ptx.join(", ")
        ));
    }
    for (name, ..) in variants {
        t.push_str(&format!(
            "[[variants]]\nname = \"{name}\"\ncomponents = [\"{name}\"]\n"
        ));
    }
    parse_manifest(&t).unwrap()
}

fn host(ccs: &[&str], driver: Option<&str>, cuda: Option<&str>) -> Host {
    let ccs: Vec<ComputeCapability> = ccs.iter().map(|c| cc(c)).collect();
    Host::synthetic(
        &ccs,
        driver.map(|d| d.parse().unwrap()),
        cuda.map(|c| c.parse().unwrap()),
    )
}

fn run(h: &Host, m: &Manifest, policy: &Policy) -> Plan {
    plan(h, m, &SystemInventory::default(), policy)
}

fn chosen(p: &Plan) -> Option<&str> {
    p.chosen.as_ref().map(|c| c.variant.as_str())
}

fn no_jit() -> Policy {
    Policy {
        allow_jit: false,
        ..Policy::default()
    }
}

/// Coverage rules through inspect: (sass, ptx, device, driver CUDA, JIT allowed, expected fit)
/// where the fit is "native sm_XY", "jit compute_XY" or "none".
#[test]
fn kernel_fit_table() {
    type Row<'a> = (
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a str,
        bool,
        &'a str,
    );
    let rows: &[Row] = &[
        // Native, exact and compatible.
        (&["sm_86"], &[], "8.6", "13.0", true, "native sm_86"),
        (
            &["sm_80", "sm_86"],
            &[],
            "8.9",
            "13.0",
            true,
            "native sm_86",
        ),
        (&["sm_80"], &[], "8.7", "13.0", true, "native sm_80"),
        (&["sm_86"], &[], "8.0", "13.0", true, "none"),
        (&["sm_86"], &[], "9.0", "13.0", true, "none"),
        // Native SASS beats PTX, even for a closer PTX target.
        (
            &["sm_80"],
            &[("compute_86", "8.8")],
            "8.6",
            "13.0",
            true,
            "native sm_80",
        ),
        // PTX JIT: allowed, forbidden.
        (
            &["sm_80"],
            &[("compute_90", "8.8")],
            "12.0",
            "13.0",
            true,
            "jit compute_90",
        ),
        (
            &["sm_80"],
            &[("compute_90", "8.8")],
            "12.0",
            "13.0",
            false,
            "none",
        ),
        (
            &[],
            &[("compute_75", "8.2")],
            "7.5",
            "12.2",
            true,
            "jit compute_75",
        ),
        // PTX newer than the driver's ISA: 12.9's ISA 8.8 on a CUDA 12.2 driver (ISA 8.2).
        (&[], &[("compute_75", "8.8")], "8.6", "12.2", true, "none"),
        (
            &[],
            &[("compute_75", "8.8")],
            "8.6",
            "12.9",
            true,
            "jit compute_75",
        ),
        (&[], &[("compute_90", "9.1")], "9.0", "13.0", true, "none"),
        (
            &[],
            &[("compute_90", "9.1")],
            "9.0",
            "13.1",
            true,
            "jit compute_90",
        ),
        // `a`: exactly its CC; a `compute_XYa` too.
        (&["sm_90a"], &[], "9.0", "13.0", true, "native sm_90a"),
        (&["sm_90a"], &[], "10.0", "13.0", true, "none"),
        (&["sm_120a"], &[], "12.1", "13.0", true, "none"),
        (
            &["sm_90", "sm_90a"],
            &[],
            "9.0",
            "13.0",
            true,
            "native sm_90a",
        ),
        (&[], &[("compute_90a", "8.8")], "12.0", "13.0", true, "none"),
        // `f`: same major, minor at least its own.
        (&["sm_100f"], &[], "10.3", "13.0", true, "native sm_100f"),
        (&["sm_100f"], &[], "12.0", "13.0", true, "none"),
        (&["sm_120f"], &[], "12.1", "13.0", true, "native sm_120f"),
        (&["sm_103f"], &[], "10.0", "13.0", true, "none"),
    ];
    for (i, (sass, ptx, dev, cuda, jit, want)) in rows.iter().enumerate() {
        let m = manifest(&[("v", "12.2", sass, ptx, 1)]);
        let h = host(&[dev], None, Some(cuda));
        let policy = if *jit { Policy::default() } else { no_jit() };
        let p = run(&h, &m, &policy);
        let got = match &p.chosen {
            None => "none".to_string(),
            Some(c) => match &c.components[0].per_gpu[0].1 {
                KernelFit::Native { target, .. } => format!("native {target}"),
                KernelFit::Jit { target, .. } => format!("jit {target}"),
                KernelFit::NoKernels => "no kernels".into(),
            },
        };
        assert_eq!(
            got, *want,
            "row {i}: {sass:?} {ptx:?} on {dev}, driver {cuda}"
        );
    }
}

#[test]
fn reasons_for_jit_and_ptx() {
    let m = manifest(&[("v", "12.9", &["sm_80"], &[("compute_90", "8.8")], 1)]);
    let p = run(&host(&["12.0"], None, Some("13.0")), &m, &no_jit());
    assert_eq!(
        p.rejected[0].to_string(),
        "v (CUDA 12.9, sm_80, +compute_90): rejected, no SASS for sm_120 in `v`, only compute_90 \
         PTX, and PTX JIT is off by policy"
    );
    let p = run(&host(&["12.0"], None, Some("13.0")), &m, &Policy::default());
    assert_eq!(p.outcome, Outcome::Gpu);
    assert_eq!(
        p.chosen.as_ref().unwrap().to_string(),
        "v (CUDA 12.9, sm_80, +compute_90): chosen, PTX compute_90 (ISA 8.8) JIT-compiled for \
         sm_120"
    );
    assert!(p.warnings.iter().any(|w| matches!(w, Warning::Jit { .. })));
    // A 12.2 driver runs CUDA 12.9 by minor-version compatibility but cannot JIT ISA 8.8.
    let p = run(
        &host(&["12.0"], Some("535.104.05"), None),
        &m,
        &Policy::default(),
    );
    assert_eq!(
        p.rejected[0].reasons,
        [Reason::PtxTooNew {
            gpu: p.rejected[0].reasons[0].gpu_for_test(),
            component: "v".into(),
            target: gpulibs_plan::parse_kernel_target("compute_90").unwrap(),
            isa: gpulibs_inspect::PtxIsa::new(8, 8),
            driver_isa: gpulibs_inspect::PtxIsa::new(8, 2),
            driver_cuda: "12.2".parse().unwrap(),
        }]
    );
    assert_eq!(
        p.rejected[0].to_string(),
        "v (CUDA 12.9, sm_80, +compute_90): rejected, no SASS for sm_120 in `v`; its compute_90 \
         PTX is ISA 8.8, newer than the ISA 8.2 this driver (CUDA 12.2) compiles; it needs a \
         driver of CUDA 12.9 (575.51.03) or newer (rule ptx-isa: \
         https://docs.nvidia.com/cuda/parallel-thread-execution/#release-notes-ptx-release-history)"
    );
}

trait GpuOf {
    fn gpu_for_test(&self) -> gpulibs_plan::GpuRef;
}

impl GpuOf for Reason {
    fn gpu_for_test(&self) -> gpulibs_plan::GpuRef {
        match self {
            Reason::PtxTooNew { gpu, .. }
            | Reason::NoKernelImage { gpu, .. }
            | Reason::JitForbidden { gpu, .. }
            | Reason::NotEnoughGpuMemory { gpu, .. } => gpu.clone(),
            other => panic!("no GPU in {other:?}"),
        }
    }
}

/// The example: a CUDA 13 tier on a 535 driver.
#[test]
fn driver_reasons_carry_the_numbers() {
    let m = manifest(&[
        ("latest", "13.0", &["sm_89", "sm_120"], &[], 1),
        ("legacy", "12.9", &["sm_50", "sm_52"], &[], 1),
    ]);
    let p = run(
        &host(&["8.9"], Some("535.104"), None),
        &m,
        &Policy::default(),
    );
    assert_eq!(chosen(&p), None);
    assert_eq!(
        p.rejected[0].to_string(),
        "latest (CUDA 13.0, sm_89–120): rejected, needs driver ≥ 580.65.06 for CUDA 13.0 \
         (`latest`), you have 535.104"
    );
    assert_eq!(
        p.rejected[1].to_string(),
        "legacy (CUDA 12.9, sm_50–52): rejected, no kernel image for sm_89 in `legacy` (it has \
         sm_50, sm_52)"
    );
    assert_eq!(p.cpu_fallback().unwrap().reason, CpuReason::NoVariantRuns);

    // A component's own floor.
    let text = EXAMPLE.replacen(
        "cuda = \"12.9\"\n",
        "cuda = \"12.9\"\nmin_driver = \"580.82.07\"\n",
        1,
    );
    let m = parse_manifest(&text).unwrap();
    let p = run(
        &host(&["8.6"], Some("580.65.06"), None),
        &m,
        &Policy::default(),
    );
    assert_eq!(chosen(&p), Some("cpu"));
    assert_eq!(
        p.rejected[0].to_string(),
        "cuda12 (CUDA 12.9, sm_75–120, +compute_90): rejected, component `ort-cuda` needs driver \
         ≥ 580.82.07, you have 580.65.06"
    );
    // Unknown driver: not checked, said so.
    let p = run(&host(&["8.6"], None, None), &m, &Policy::default());
    assert_eq!(chosen(&p), Some("cuda12"));
    assert!(p.warnings.contains(&Warning::DriverUnknown));
}

/// Ranking, one criterion per row: the winner and the loser's reason.
#[test]
fn ranking_table() {
    type V<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        u64,
    );
    let rows: &[(&[V], &str, &str, &str)] = &[
        // native over JIT
        (
            &[
                ("jit", "12.9", &[], &[("compute_80", "8.0")], 1),
                ("native", "12.9", &["sm_80"], &[], 9),
            ],
            "8.6",
            "native",
            "it needs PTX JIT where the other has native SASS",
        ),
        // exact over compatible
        (
            &[
                ("compat", "12.9", &["sm_80"], &[], 1),
                ("exact", "12.9", &["sm_86"], &[], 9),
            ],
            "8.6",
            "exact",
            "the other has SASS built for the exact compute capability",
        ),
        // newer compatible kernels over older ones
        (
            &[
                ("old", "12.9", &["sm_80"], &[], 1),
                ("newer", "12.9", &["sm_86"], &[], 9),
            ],
            "8.9",
            "newer",
            "the other's kernels target a newer architecture",
        ),
        // newer CUDA
        (
            &[
                ("c122", "12.2", &["sm_86"], &[], 1),
                ("c129", "12.9", &["sm_86"], &[], 9),
            ],
            "8.6",
            "c129",
            "the other has a newer CUDA runtime (12.9 vs 12.2)",
        ),
        // smaller download
        (
            &[
                ("big", "12.9", &["sm_86"], &[], 900_000_000),
                ("small", "12.9", &["sm_86"], &[], 300_000_000),
            ],
            "8.6",
            "small",
            "the other is a smaller download (286 MiB vs 858 MiB)",
        ),
        // name, last
        (
            &[
                ("b", "12.9", &["sm_86"], &[], 1),
                ("a", "12.9", &["sm_86"], &[], 1),
            ],
            "8.6",
            "a",
            "equal rank; the name decides",
        ),
    ];
    for (variants, dev, winner, why) in rows {
        for order in [false, true] {
            let mut vs = variants.to_vec();
            if order {
                vs.reverse();
            }
            let p = run(
                &host(&[dev], Some("580.65.06"), None),
                &manifest(&vs),
                &Policy::default(),
            );
            assert_eq!(chosen(&p), Some(*winner), "{variants:?}");
            match &p.rejected[0].reasons[0] {
                Reason::Outranked { by, why: got } => {
                    assert_eq!((by.as_str(), got.as_str()), (*winner, *why));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn several_gpus() {
    let m = manifest(&[
        ("ampere", "12.9", &["sm_80", "sm_86"], &[], 1),
        ("pascal", "12.9", &["sm_60", "sm_61"], &[], 1),
        ("both", "12.9", &["sm_61", "sm_86"], &[], 5),
    ]);
    // One variant covers both: chosen even though it is the biggest.
    let p = run(
        &host(&["8.6", "6.1"], Some("580.65.06"), None),
        &m,
        &Policy::default(),
    );
    assert_eq!((chosen(&p), &p.outcome), (Some("both"), &Outcome::Gpu));
    assert_eq!(p.rejected[0].to_string(), "ampere (CUDA 12.9, sm_80–86): rejected, runs, but `both` ranks higher: it does not cover every GPU");
    // Without it, the best GPU (highest CC) wins, with a warning naming the other.
    let m = manifest(&[
        ("pascal", "12.9", &["sm_60", "sm_61"], &[], 1),
        ("ampere", "12.9", &["sm_80", "sm_86"], &[], 1),
    ]);
    let p = run(
        &host(&["6.1", "8.6"], Some("580.65.06"), None),
        &m,
        &Policy::default(),
    );
    assert_eq!(chosen(&p), Some("ampere"));
    assert_eq!(p.outcome, Outcome::GpuPartial { uncovered: vec![0] });
    let w: Vec<String> = p.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "no variant covers every GPU: planned `ampere` for the best GPU, GPU 1 (sm_86)",
            "GPU 0 (sm_61) is not covered by `ampere`: no kernel image for GPU 0 (sm_61) in \
             `ampere` (it has sm_80, sm_86); the app must not use it (hide it with \
             CUDA_VISIBLE_DEVICES)"
        ]
    );
    // Same CC: the one with more memory is best.
    let mut h = host(&["8.6", "8.6"], Some("580.65.06"), None);
    h.gpus[1].memory_total_bytes = Some(24_000_000_000);
    h.gpus[0].memory_total_bytes = Some(8_000_000_000);
    let m = parse_manifest(&EXAMPLE.replace(
        "min_gpu_memory_bytes = 2000000000",
        "min_gpu_memory_bytes = 12000000000",
    ))
    .unwrap();
    let p = run(&h, &m, &Policy::default());
    assert_eq!(chosen(&p), Some("cuda12"));
    assert_eq!(p.outcome, Outcome::GpuPartial { uncovered: vec![0] });
    assert_eq!(
        p.warnings[1].to_string(),
        "GPU 0 (sm_86) is not covered by `cuda12`: needs 11.2 GiB of GPU memory, GPU 0 (sm_86) has \
         7.5 GiB; the app must not use it (hide it with CUDA_VISIBLE_DEVICES)"
    );
}

/// Detection's view goes in as is: `CUDA_VISIBLE_DEVICES=1` leaves one GPU, renumbered 0.
#[test]
fn host_from_detection_respects_cuda_visible_devices() {
    let raw = |i: u32, name: &str, cc: &str| RawGpu {
        nvml_index: i,
        name: Some(name.into()),
        uuid: Some(format!("GPU-0000000{i}-0000-0000-0000-000000000000")),
        pci_bus_id: Some(format!("00000000:0{}:00.0", i + 1)),
        compute_capability: Some(cc.parse().unwrap()),
        memory_total_bytes: Some(8_000_000_000),
        memory_free_bytes: Some(7_000_000_000),
        ..RawGpu::default()
    };
    let inventory = Inventory {
        source: DetSource::Nvml,
        driver: DriverInfo {
            version: Some("580.95.05".into()),
            cuda: Some("13.0".parse().unwrap()),
        },
        gpus: vec![
            raw(0, "NVIDIA GeForce GTX 1080", "6.1"),
            raw(1, "NVIDIA RTX A1000", "8.6"),
        ],
        problems: vec![],
    };
    let options = DetectOptions {
        cuda_visible_devices: Some("1".into()),
        cuda_device_order: Some("PCI_BUS_ID".into()),
        ..DetectOptions::isolated()
    };
    let detection = assemble(Some(inventory.clone()), &options, vec![]);
    let h = Host::from_detection(&detection, Some(50_000_000_000));
    assert_eq!(h.gpus.len(), 1);
    assert_eq!(
        (h.gpus[0].index, h.gpus[0].compute_capability),
        (0, cc("8.6"))
    );
    assert_eq!(h.driver_version.as_ref().unwrap().to_string(), "580.95.05");
    let m = parse_manifest(EXAMPLE).unwrap();
    let p = run(&h, &m, &Policy::default());
    assert_eq!((chosen(&p), &p.outcome), (Some("cuda12"), &Outcome::Gpu));

    // Every GPU hidden: the CPU variant, with detection's reason.
    let options = DetectOptions {
        cuda_visible_devices: Some(String::new()),
        ..DetectOptions::isolated()
    };
    let detection = assemble(Some(inventory), &options, vec![]);
    let h = Host::from_detection(&detection, None);
    let p = run(&h, &m, &Policy::default());
    assert_eq!(chosen(&p), Some("cpu"));
    let line = &p.lines()[0];
    assert!(line.starts_with("CPU runtime: no usable GPU ("), "{line}");
    assert!(line.ends_with("; installing variant `cpu`"), "{line}");
}

#[test]
fn cpu_outcomes_are_plans_not_errors() {
    let m = parse_manifest(EXAMPLE).unwrap();
    let nothing = Host::synthetic(&[], None, None);
    let p = run(&nothing, &m, &Policy::default());
    assert_eq!(
        p.lines(),
        [
            "CPU runtime: no usable GPU (no NVIDIA GPU was found); installing variant `cpu`",
            "cpu (CPU): chosen, the CPU runtime",
            "download 6.7 MiB, 20.0 MiB unpacked, 26.7 MiB of disk needed",
        ]
    );
    let p = run(
        &host(&["8.6"], Some("580.65.06"), None),
        &m,
        &Policy {
            cpu_only: true,
            ..Policy::default()
        },
    );
    assert_eq!(p.cpu_fallback().unwrap().reason, CpuReason::CpuOnlyPolicy);
    assert_eq!(chosen(&p), Some("cpu"));
    // A GPU plan lists the CPU variant as not needed.
    let p = run(
        &host(&["8.6"], Some("580.65.06"), None),
        &m,
        &Policy::default(),
    );
    assert_eq!(
        p.rejected.last().unwrap().to_string(),
        "cpu (CPU): rejected, CPU runtime, not needed: a GPU variant runs"
    );
    // sm_61 is below the example's Turing floor: CPU, with the numbers.
    let p = run(
        &host(&["6.1"], Some("580.65.06"), None),
        &m,
        &Policy::default(),
    );
    assert_eq!(
        p.lines()[..3],
        [
            "CPU runtime: no GPU variant runs on this machine (reasons below); installing variant `cpu`",
            "cpu (CPU): chosen, the CPU runtime",
            "cuda12 (CUDA 12.9, sm_75–120, +compute_90): rejected, no kernel image for sm_61 in \
             `ort-cuda` (it has sm_75, sm_80, sm_86, sm_89, sm_90a, sm_120a, compute_90 (PTX 8.8))",
        ]
    );
}

#[test]
fn disk_is_checked_before_anything_is_downloaded() {
    let m = parse_manifest(EXAMPLE).unwrap();
    let mut h = host(&["8.6"], Some("580.65.06"), None);
    // cuda12: 98 + 520 + 640 MB download, 310 + 815 + 1030 MB unpacked.
    h.free_disk_bytes = Some(3_000_000_000);
    let p = run(&h, &m, &Policy::default());
    assert_eq!(p.totals.download_bytes, 1_258_000_000);
    assert_eq!(p.totals.unpacked_bytes, 2_155_000_000);
    assert_eq!(p.totals.disk_bytes, 3_413_000_000);
    assert_eq!(
        p.outcome,
        Outcome::Refused(Refusal::NotEnoughDisk {
            needs: 3_413_000_000,
            free: 3_000_000_000
        })
    );
    assert!(p.is_refused());
    assert_eq!(
        p.lines()[0],
        "refused: the install needs 3.2 GiB on disk (download and unpacked), the install root has \
         2.8 GiB free"
    );
    h.free_disk_bytes = Some(3_413_000_000);
    assert_eq!(run(&h, &m, &Policy::default()).outcome, Outcome::Gpu);
}

#[test]
fn sources_and_needs() {
    let m = parse_manifest(EXAMPLE).unwrap();
    let h = host(&["8.6"], Some("580.65.06"), None);
    // The example's CUDA libraries carry kernels, so they are never swapped for system copies;
    // a kernel-free component is.
    let text = EXAMPLE.replace(
        "[components.coverage]\nsass = [\"sm_50\", \"sm_60\", \"sm_70\", \"sm_75\", \"sm_80\", \"sm_86\", \"sm_89\", \"sm_90\", \"sm_100\", \"sm_120\"]\nptx = [{ target = \"compute_120\", isa = \"8.8\" }]\n\n[[components]]\nid = \"cudnn-9\"",
        "[[components]]\nid = \"cudnn-9\"",
    );
    assert_ne!(text, EXAMPLE);
    let m2 = parse_manifest(&text).unwrap();
    let system = SystemInventory {
        libraries: ["libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12"]
            .iter()
            .map(|s| SystemLibrary {
                soname: s.to_string(),
                path: format!("/usr/local/cuda-12.9/lib64/{s}").into(),
                version: Some("12.9.1".into()),
            })
            .collect(),
    };
    let p = plan(&h, &m2, &system, &Policy::default());
    let c = &p.chosen.as_ref().unwrap().components;
    assert!(matches!(&c[0].source, Source::Archive { mirrors, .. } if mirrors.len() == 1));
    assert!(matches!(&c[1].source, Source::System { paths } if paths.len() == 3));
    assert_eq!((c[1].download_bytes, c[1].unpacked_bytes), (0, Some(0)));
    assert_eq!(p.totals.download_bytes, 98_000_000 + 640_000_000);
    // With reuse off, the archive again.
    let p = plan(
        &h,
        &m2,
        &system,
        &Policy {
            reuse_system: false,
            ..Policy::default()
        },
    );
    assert!(matches!(
        &p.chosen.as_ref().unwrap().components[1].source,
        Source::Archive { .. }
    ));
    // With kernels declared, never the system copy.
    let p = plan(&h, &m, &system, &Policy::default());
    assert!(matches!(
        &p.chosen.as_ref().unwrap().components[1].source,
        Source::Archive { .. }
    ));

    // Needs: by a component, by the system list.
    let needs = &p.chosen.as_ref().unwrap().needs;
    let by = |s: &str| needs.iter().find(|n| n.soname == s).map(|n| n.by.clone());
    assert_eq!(
        by("libcublas.so.12"),
        Some(NeedSource::Component {
            id: "cuda-12.9".into()
        })
    );
    assert_eq!(by("libcuda.so.1"), Some(NeedSource::SystemList));
    // A need nobody serves rejects the variant; one on this machine is served from there.
    let text = EXAMPLE.replacen("\"libc.so.6\"]", "\"libc.so.6\", \"libnccl.so.2\"]", 1);
    let m3 = parse_manifest(&text).unwrap();
    let p = run(&h, &m3, &Policy::default());
    assert_eq!(chosen(&p), Some("cpu"));
    assert_eq!(
        p.rejected[0].reasons,
        [Reason::UnmetNeed {
            component: "ort-cuda".into(),
            soname: "libnccl.so.2".into()
        }]
    );
    let nccl = SystemInventory {
        libraries: vec![SystemLibrary {
            soname: "libnccl.so.2".into(),
            path: "/usr/lib/x86_64-linux-gnu/libnccl.so.2".into(),
            version: None,
        }],
    };
    let p = plan(&h, &m3, &nccl, &Policy::default());
    assert_eq!(chosen(&p), Some("cuda12"));
    assert!(p.chosen.unwrap().needs.iter().any(|n| n.by
        == NeedSource::System {
            path: "/usr/lib/x86_64-linux-gnu/libnccl.so.2".into()
        }));

    // PyPI components say so.
    let pypi = EXAMPLE.replacen(
        "kind = \"onnxruntime\"\nversion = \"1.23.2\"\ncuda",
        "kind = \"onnxruntime\"\nversion = \"1.23.2\"\norigin = \"pypi\"\ncuda",
        1,
    );
    let p = run(&h, &parse_manifest(&pypi).unwrap(), &Policy::default());
    assert!(matches!(
        &p.chosen.unwrap().components[0].source,
        Source::Pypi { .. }
    ));
}

#[test]
fn vram_and_the_vendor_view() {
    let m = parse_manifest(EXAMPLE).unwrap();
    let mut h = host(&["8.6"], Some("580.65.06"), None);
    h.gpus[0] = HostGpu {
        memory_total_bytes: Some(1_000_000_000),
        memory_free_bytes: Some(900_000_000),
        ..h.gpus[0].clone()
    };
    let p = run(&h, &m, &Policy::default());
    assert_eq!(chosen(&p), Some("cpu"));
    assert_eq!(p.rejected[0].to_string(), "cuda12 (CUDA 12.9, sm_75–120, +compute_90): rejected, needs 1.9 GiB of GPU memory, sm_86 has 954 MiB");
    h.gpus[0].memory_total_bytes = Some(4_000_000_000);
    h.gpus[0].memory_free_bytes = Some(1_500_000_000);
    let p = run(&h, &m, &Policy::default());
    assert_eq!(chosen(&p), Some("cuda12"));
    assert!(p
        .warnings
        .iter()
        .any(|w| w.to_string() == "sm_86 has 1.4 GiB free now; the app needs 1.9 GiB"));
    // `--gpu 12.1,10.3` with no driver: the vendor's question, kernels only.
    let p = run(&host(&["12.1", "10.3"], None, None), &m, &Policy::default());
    assert_eq!(chosen(&p), Some("cuda12"));
    assert_eq!(p.outcome, Outcome::Gpu);
    let why = &p.chosen.as_ref().unwrap().why;
    assert_eq!(
        why,
        &[
            "PTX compute_90 (ISA 8.8) JIT-compiled for GPU 0 (sm_121)",
            "PTX compute_90 (ISA 8.8) JIT-compiled for GPU 1 (sm_103)"
        ]
    );
}

#[test]
fn unverified_manifests_warn_first() {
    let m = parse_manifest(EXAMPLE).unwrap();
    let h = host(&["8.6"], Some("580.65.06"), None);
    let trust = Trust::UnverifiedAllowed {
        why: "the manifest is not signed".into(),
    };
    let p = plan_with_trust(
        &h,
        &m,
        &trust,
        &SystemInventory::default(),
        &Policy::default(),
    );
    assert_eq!(p.warnings[0].to_string(), "the manifest's signature was not verified (the manifest is not signed); used because of --allow-unsigned");
    let p = plan_with_trust(
        &h,
        &m,
        &Trust::Signed { key_id: "X".into() },
        &SystemInventory::default(),
        &Policy::default(),
    );
    assert!(p.warnings.is_empty());
}

/// Sizes the planner adds never wrap: two archives of `u64::MAX / 2 + 1` bytes once summed to
/// a handful of bytes, and the free-space check passed.
#[test]
fn size_sums_saturate_and_the_disk_check_refuses() {
    let mut m = parse_manifest(include_str!("../fixtures/example.toml")).unwrap();
    let half = u64::MAX / 2 + 1;
    let ort = m.components.iter_mut().find(|c| c.id == "ort-cpu").unwrap();
    ort.archive.size = half;
    ort.archive.unpacked_size = Some(half);
    let host = Host {
        free_disk_bytes: Some(100_000_000_000),
        ..Host::synthetic(&[], None, None)
    };
    let p = plan(&host, &m, &SystemInventory::default(), &Policy::default());
    assert_eq!(p.totals.download_bytes, half);
    assert_eq!(p.totals.disk_bytes, u64::MAX);
    assert!(
        matches!(p.outcome, Outcome::Refused(Refusal::NotEnoughDisk { needs, .. }) if needs == u64::MAX),
        "{:?}",
        p.outcome
    );
}

/// `candidates`: the plan's choice first, then the other variants that run in rank order; a
/// variant that does not run here is never a candidate; the CPU runtime only when the manifest
/// has one (none here), and alone under `cpu_only`.
#[test]
fn candidates_follow_the_ranking_and_leave_out_what_does_not_run() {
    let m = manifest(&[
        ("jit", "12.2", &[], &[("compute_80", "8.0")], 1),
        ("exact", "12.2", &["sm_86"], &[], 1),
        ("same-major", "12.2", &["sm_80"], &[], 1),
        ("other-major", "12.2", &["sm_75"], &[], 1),
    ]);
    let h = host(&["8.6"], Some("580.65.06"), Some("13.0"));
    let names = |p: &Policy| -> Vec<String> {
        gpulibs_plan::candidates(&h, &m, &SystemInventory::default(), p)
            .into_iter()
            .map(|c| c.variant)
            .collect()
    };
    let all = names(&Policy::default());
    assert_eq!(all, ["exact", "same-major", "jit"]);
    assert_eq!(
        Some(all[0].as_str()),
        chosen(&run(&h, &m, &Policy::default()))
    );
    assert_eq!(names(&no_jit()), ["exact", "same-major"]);
    let cpu_only = Policy {
        cpu_only: true,
        ..Policy::default()
    };
    assert!(names(&cpu_only).is_empty());
}

/// One-component GPU variant with the compression of its kernels: (name, cuda, sass, ptx,
/// compression, download size).
type C<'a> = (
    &'a str,
    &'a str,
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    &'a str,
    u64,
);

/// A manifest of [`C`] variants.
fn compressed_manifest(variants: &[C]) -> Manifest {
    let mut t = String::from("schema_version = 1\napp = \"t\"\nversion = \"1\"\n");
    for (i, (name, cuda, sass, ptx, compression, size)) in variants.iter().enumerate() {
        let sass: Vec<String> = sass.iter().map(|s| format!("\"{s}\"")).collect();
        let ptx: Vec<String> = ptx
            .iter()
            .map(|(t, isa)| format!("{{ target = \"{t}\", isa = \"{isa}\" }}"))
            .collect();
        t.push_str(&format!(
            "[[components]]\nid = \"{name}\"\nkind = \"onnxruntime\"\nversion = \"1\"\n\
             cuda = \"{cuda}\"\nneeds = [\"libcuda.so.1\"]\n\
             [components.archive]\nurl = \"https://example.com/{name}.tar.zst\"\n\
             sha256 = \"{}\"\nsize = {size}\nunpacked_size = {}\nformat = \"tar.zst\"\n\
             [components.coverage]\nsass = [{}]\nptx = [{}]\ncompression = [\"{compression}\"]\n\
             [[variants]]\nname = \"{name}\"\ncomponents = [\"{name}\"]\n",
            hash(i as u32),
            size * 2,
            sass.join(", "),
            ptx.join(", ")
        ));
    }
    parse_manifest(&t).unwrap()
}

/// Rule `fatbin-zstd` (docs/driver-rules.md): a CUDA 12.8 build whose kernels are zstd needs a
/// driver of CUDA 12.4 (R550); R535 gets the LZ4 build of the same release instead, and the
/// rejection names the rule. Drivers: R535 = 12.2, R550 = 12.4, R570 = 12.8, R580 = 13.0.
#[test]
fn zstd_kernels_are_never_planned_for_a_driver_that_cannot_read_them() {
    let m = compressed_manifest(&[
        ("cu128-zstd", "12.8", &["sm_75", "sm_86"], &[], "zstd", 100),
        ("cu128-lz4", "12.8", &["sm_75", "sm_86"], &[], "lz4", 200),
        ("cu122-none", "12.2", &["sm_75", "sm_86"], &[], "none", 300),
    ]);
    // (driver version, driver CUDA, chosen, is cu128-zstd rejected by the rule)
    let table: &[(Option<&str>, Option<&str>, &str, bool)] = &[
        (Some("535.183.01"), Some("12.2"), "cu128-lz4", true),
        (Some("535.54.03"), None, "cu128-lz4", true),
        (Some("545.29.06"), Some("12.3"), "cu128-lz4", true),
        (None, Some("12.3"), "cu128-lz4", true),
        (Some("550.54.14"), Some("12.4"), "cu128-zstd", false),
        (Some("570.211.01"), Some("12.8"), "cu128-zstd", false),
        (Some("580.159.04"), Some("13.0"), "cu128-zstd", false),
        // Unknown driver: not checked (the plan warns that the driver is unknown).
        (None, None, "cu128-zstd", false),
    ];
    for (driver, cuda, want, rejected_by_rule) in table {
        let p = run(&host(&["8.6"], *driver, *cuda), &m, &Policy::default());
        assert_eq!(
            chosen(&p),
            Some(*want),
            "{driver:?}/{cuda:?}: {:#?}",
            p.lines()
        );
        let zstd = p.rejected.iter().find(|r| r.variant == "cu128-zstd");
        let by_rule = zstd.is_some_and(|r| {
            r.reasons
                .iter()
                .any(|x| matches!(x, Reason::DriverCannotReadKernels { rule, .. } if rule == "fatbin-zstd"))
        });
        assert_eq!(by_rule, *rejected_by_rule, "{driver:?}/{cuda:?}: {zstd:?}");
        if *rejected_by_rule {
            let line = zstd.unwrap().to_string();
            for want in [
                "zstd-compressed",
                "CUDA 12.4",
                "550.54.14",
                "rule fatbin-zstd",
            ] {
                assert!(line.contains(want), "{want:?} not in {line}");
            }
            // The LZ4 build of the same CUDA is never rejected for its compression.
            assert!(!p
                .lines()
                .iter()
                .any(|l| l.starts_with("cu128-lz4") && l.contains("fatbin")));
        }
    }
    // Only the zstd build: R535 gets the CPU outcome, with the rule as the reason.
    let only = compressed_manifest(&[("cu128-zstd", "12.8", &["sm_86"], &[], "zstd", 100)]);
    let p = run(
        &host(&["8.6"], Some("535.183.01"), Some("12.2")),
        &only,
        &Policy::default(),
    );
    assert!(
        matches!(p.outcome, Outcome::Cpu(ref c) if c.reason == CpuReason::NoVariantRuns),
        "{:?}",
        p.outcome
    );
    assert!(p.lines().iter().any(|l| l.contains("rule fatbin-zstd")));
    // A compression no driver is known to read is refused even on R580.
    let unknown = compressed_manifest(&[("odd", "12.8", &["sm_86"], &[], "unknown", 100)]);
    let p = run(
        &host(&["8.6"], Some("580.159.04"), Some("13.0")),
        &unknown,
        &Policy::default(),
    );
    assert_eq!(chosen(&p), None);
    assert!(p
        .lines()
        .iter()
        .any(|l| l.contains("rule fatbin-unknown-compression")));
    // The field survives writing and reading the manifest.
    let again = parse_manifest(&gpulibs_plan::to_toml(&m)).unwrap();
    assert_eq!(again, m);
}

/// The rule is per entry: a library that stores only its Blackwell entries zstd (as NVIDIA's
/// cuBLAS 12.9 does) is planned for R535 on an RTX 30xx, and refused on a GPU whose entry is zstd.
#[test]
fn zstd_is_judged_on_the_entry_the_gpu_loads() {
    let mut m = compressed_manifest(&[(
        "mixed",
        "12.8",
        &["sm_75", "sm_86", "sm_120"],
        &[],
        "lz4",
        100,
    )]);
    let cov = m.components[0].coverage.as_mut().unwrap();
    cov.compression = vec![
        gpulibs_inspect::Compression::Lz4,
        gpulibs_inspect::Compression::Zstd,
    ];
    cov.zstd_targets = vec!["sm_120".into()];
    let m = parse_manifest(&gpulibs_plan::to_toml(&m)).unwrap();
    // (GPU, driver, driver CUDA, chosen?)
    let table: &[(&str, &str, &str, bool)] = &[
        ("8.6", "535.183.01", "12.2", true),
        ("7.5", "535.183.01", "12.2", true),
        ("12.0", "535.183.01", "12.2", false),
        ("12.0", "570.211.01", "12.8", true),
    ];
    for (gpu, driver, cuda, runs) in table {
        let p = run(
            &host(&[gpu], Some(driver), Some(cuda)),
            &m,
            &Policy::default(),
        );
        assert_eq!(
            chosen(&p) == Some("mixed"),
            *runs,
            "{gpu} on {driver}: {:#?}",
            p.lines()
        );
        if !runs {
            let r = &p.rejected[0].reasons[0];
            assert!(
                matches!(r, Reason::DriverCannotReadKernels { target: Some(t), .. } if t.name() == "sm_120"),
                "{r:?}"
            );
            assert!(
                r.to_string()
                    .contains("stores its sm_120 kernels zstd-compressed"),
                "{r}"
            );
        }
    }
    // Two GPUs on R535: the RTX 30xx is served, the RTX 50xx is named as not covered, by the rule.
    let p = run(
        &host(&["8.6", "12.0"], Some("535.183.01"), Some("12.2")),
        &m,
        &Policy::default(),
    );
    assert_eq!(chosen(&p), Some("mixed"));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.to_string().contains("rule fatbin-zstd")),
        "{:#?}",
        p.lines()
    );
}

/// Rule `ptx-isa`: PTX a driver cannot JIT is rejected naming the driver it needs (ollama's
/// "CC < 7 with CUDA ≥ 12.8 needs 570": a CUDA 12.8 build's PTX is ISA 8.7).
#[test]
fn ptx_too_new_names_the_driver_it_needs() {
    let m = compressed_manifest(&[(
        "cu128-ptx",
        "12.8",
        &["sm_75"],
        &[("compute_60", "8.7")],
        "lz4",
        100,
    )]);
    let p = run(
        &host(&["6.1"], Some("565.77"), Some("12.7")),
        &m,
        &Policy::default(),
    );
    assert_eq!(chosen(&p), None);
    let line = p.rejected[0].to_string();
    for want in [
        "ISA 8.7",
        "needs a driver of CUDA 12.8 (570.26) or newer",
        "rule ptx-isa",
    ] {
        assert!(line.contains(want), "{want:?} not in {line}");
    }
    let p = run(
        &host(&["6.1"], Some("570.211.01"), Some("12.8")),
        &m,
        &Policy::default(),
    );
    assert_eq!(chosen(&p), Some("cu128-ptx"));
}
