//! Detection through the fake NVML library, loaded by the same dlopen path as the real one.

mod common;

use common::{fake_nvml, fake_options, lock, FakeKernel};
use gpulibs_detect::{
    detect, ArchFamily, ComputeCapability, CudaVersion, DetectOptions, Detection, DeviceOrder,
    MigMode, ProblemCode, Severity, Source,
};

const MIB: u64 = 1 << 20;

fn codes(d: &Detection) -> Vec<ProblemCode> {
    d.problems.iter().map(|p| p.code).collect()
}

fn run(scenario: &str) -> Detection {
    run_with(scenario, |_| {})
}

fn run_with(scenario: &str, configure: impl FnOnce(&mut DetectOptions)) -> Detection {
    let _guard = lock();
    let kernel = FakeKernel::with_nvidia("580.159.04");
    let mut options = fake_options(scenario, &kernel);
    configure(&mut options);
    detect(&options)
}

/// The facts of a single-GPU scenario that every table row checks.
struct Expect {
    scenario: &'static str,
    name: &'static str,
    cc: (u32, u32),
    sm: &'static str,
    family: ArchFamily,
    total: u64,
    free: u64,
    driver: &'static str,
    cuda: (u32, u32),
    mig: Option<MigMode>,
}

#[test]
fn single_gpu_scenarios() {
    let off = Some(MigMode {
        current: false,
        pending: false,
    });
    let table = [
        Expect {
            scenario: "h100",
            name: "NVIDIA H100 80GB HBM3",
            cc: (9, 0),
            sm: "sm_90",
            family: ArchFamily::Hopper,
            total: 85_520_809_984,
            free: 81079 * MIB,
            driver: "580.159.04",
            cuda: (13, 0),
            mig: off,
        },
        Expect {
            scenario: "quadro-m2200",
            name: "Quadro M2200",
            cc: (5, 2),
            sm: "sm_52",
            family: ArchFamily::Maxwell,
            total: 4096 * MIB,
            free: 4012 * MIB,
            driver: "580.95.05",
            cuda: (13, 0),
            mig: None,
        },
        Expect {
            scenario: "rtx-a1000-laptop",
            name: "NVIDIA RTX A1000 Laptop GPU",
            cc: (8, 6),
            sm: "sm_86",
            family: ArchFamily::Ampere,
            total: 4096 * MIB,
            free: 3726 * MIB,
            driver: "575.64.03",
            cuda: (12, 9),
            mig: None,
        },
        Expect {
            scenario: "rtx-pro-6000-blackwell",
            name: "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
            cc: (12, 0),
            sm: "sm_120",
            family: ArchFamily::Blackwell,
            total: 97887 * MIB,
            free: 96739 * MIB,
            driver: "580.82.09",
            cuda: (13, 0),
            mig: off,
        },
        // R470 lacks nvmlDeviceGetMemoryInfo_v2; memory must still come back (through v1).
        Expect {
            scenario: "maxwell-driver-470",
            name: "NVIDIA GeForce GTX 970",
            cc: (5, 2),
            sm: "sm_52",
            family: ArchFamily::Maxwell,
            total: 4096 * MIB,
            free: 4036 * MIB,
            driver: "470.256.02",
            cuda: (11, 4),
            mig: None,
        },
    ];
    for e in table {
        let d = run(e.scenario);
        let s = e.scenario;
        assert_eq!(d.source, Source::Nvml, "{s}");
        assert!(d.problems.is_empty(), "{s}: {:?}", d.problems);
        let driver = d.driver.as_ref().expect("driver");
        assert_eq!(driver.version.as_deref(), Some(e.driver), "{s}");
        assert_eq!(
            driver.cuda,
            Some(CudaVersion::new(e.cuda.0, e.cuda.1)),
            "{s}"
        );
        assert_eq!(d.gpus.len(), 1, "{s}");
        assert!(d.hidden.is_empty(), "{s}");
        let g = &d.gpus[0];
        assert_eq!((g.index, g.nvml_index), (0, 0), "{s}");
        assert_eq!(g.name.as_deref(), Some(e.name), "{s}");
        assert_eq!(
            g.compute_capability,
            Some(ComputeCapability::new(e.cc.0, e.cc.1)),
            "{s}"
        );
        assert_eq!(g.sm.as_deref(), Some(e.sm), "{s}");
        assert_eq!(g.family, Some(e.family), "{s}");
        assert_eq!(g.memory_total_bytes, Some(e.total), "{s}");
        assert_eq!(g.memory_free_bytes, Some(e.free), "{s}");
        assert_eq!(g.mig, e.mig, "{s}");
        assert!(
            g.uuid.as_deref().is_some_and(|u| u.starts_with("GPU-")),
            "{s}"
        );
        assert!(d.has_usable_gpu(), "{s}");
        assert!(d.visibility.order_exact, "{s}");
    }
}

#[test]
fn h100_json_shape() {
    let d = run("h100");
    let json: serde_json::Value = serde_json::from_str(&d.to_json_pretty()).expect("json");
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["source"], "nvml");
    assert_eq!(json["driver"]["version"], "580.159.04");
    assert_eq!(json["driver"]["cuda"], "13.0");
    let gpu = &json["gpus"][0];
    assert_eq!(gpu["index"], 0);
    assert_eq!(gpu["nvml_index"], 0);
    assert_eq!(gpu["uuid"], "GPU-82c4bd45-e6fe-25fc-e029-7df7c8b7376b");
    assert_eq!(gpu["pci_bus_id"], "00000000:00:06.0");
    assert_eq!(gpu["compute_capability"], "9.0");
    assert_eq!(gpu["sm"], "sm_90");
    assert_eq!(gpu["family"], "hopper");
    assert_eq!(gpu["memory_total_bytes"], 85_520_809_984u64);
    assert_eq!(gpu["mig"]["current"], false);
    assert_eq!(json["visibility"]["cuda_device_order"], "FASTEST_FIRST");
    assert_eq!(json["hidden"], serde_json::json!([]));
    assert_eq!(json["problems"], serde_json::json!([]));
    // What scripts read back is what was written.
    let back: Detection = serde_json::from_value(json).expect("round trip");
    assert_eq!(back, d);
}

#[test]
fn two_gpus_fastest_first_is_an_approximation() {
    let d = run("two-gpu-mixed");
    // NVML order: GTX 1080 (6.1) at 01:00.0, RTX 3060 (8.6) at 02:00.0.
    let order: Vec<_> = d.gpus.iter().map(|g| (g.index, g.nvml_index)).collect();
    assert_eq!(order, [(0, 1), (1, 0)], "the 8.6 GPU comes first");
    assert_eq!(d.gpus[0].family, Some(ArchFamily::Ampere));
    assert_eq!(d.gpus[1].family, Some(ArchFamily::Pascal));
    assert!(!d.visibility.order_exact);
    let note = d
        .problem(ProblemCode::DeviceOrderApproximate)
        .expect("note");
    assert_eq!(note.severity, Severity::Info);
    assert!(note
        .hint
        .as_deref()
        .unwrap_or_default()
        .contains("CUDA_DEVICE_ORDER=PCI_BUS_ID"));
    assert_eq!(
        d.compute_capabilities(),
        [ComputeCapability::new(6, 1), ComputeCapability::new(8, 6)]
    );
    assert_eq!(d.driver_cuda(), Some(CudaVersion::new(12, 8)));
}

#[test]
fn two_gpus_pci_order_and_visible_devices() {
    let d = run_with("two-gpu-mixed", |o| {
        o.cuda_device_order = Some("PCI_BUS_ID".into());
    });
    assert_eq!(d.visibility.cuda_device_order, DeviceOrder::PciBusId);
    let names: Vec<_> = d
        .gpus
        .iter()
        .map(|g| g.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["NVIDIA GeForce GTX 1080", "NVIDIA GeForce RTX 3060"]
    );
    assert!(
        d.visibility.order_exact && d.problems.is_empty(),
        "{:?}",
        d.problems
    );

    // Ordinal 1 in PCI order is the RTX 3060; the GTX 1080 is hidden, with the reason.
    let d = run_with("two-gpu-mixed", |o| {
        o.cuda_device_order = Some("PCI_BUS_ID".into());
        o.cuda_visible_devices = Some("1".into());
    });
    assert_eq!(d.gpus.len(), 1);
    assert_eq!((d.gpus[0].index, d.gpus[0].nvml_index), (0, 1));
    assert_eq!(d.hidden.len(), 1);
    assert_eq!(d.hidden[0].nvml_index, 0);
    assert!(
        d.hidden[0].reason.contains("CUDA_VISIBLE_DEVICES"),
        "{:?}",
        d.hidden
    );

    // By UUID, the order is exact whatever CUDA_DEVICE_ORDER says.
    let d = run_with("two-gpu-mixed", |o| {
        o.cuda_visible_devices = Some("GPU-1b7e3d92,GPU-a4f09c6b".into());
    });
    let order: Vec<_> = d.gpus.iter().map(|g| g.nvml_index).collect();
    assert_eq!(order, [0, 1]);
    assert!(d.visibility.order_exact);
    assert!(!d.has_problem(ProblemCode::DeviceOrderApproximate));

    // Empty hides everything: an error that says so.
    let d = run_with("two-gpu-mixed", |o| {
        o.cuda_visible_devices = Some(String::new())
    });
    assert!(d.gpus.is_empty());
    assert_eq!(d.hidden.len(), 2);
    assert_eq!(codes(&d), [ProblemCode::AllGpusHidden]);
    assert!(!d.has_usable_gpu());

    // A GPU named twice: CUDA initialises none.
    let d = run_with("two-gpu-mixed", |o| {
        o.cuda_visible_devices = Some("0,GPU-a4f09c6b".into())
    });
    assert!(d.gpus.is_empty());
    assert!(d.has_problem(ProblemCode::VisibleDevicesDuplicate));
}

#[test]
fn no_gpu() {
    let d = run("no-gpu");
    assert_eq!(d.source, Source::Nvml);
    assert!(d.gpus.is_empty());
    assert_eq!(codes(&d), [ProblemCode::NoGpu]);
    assert_eq!(d.problems[0].severity, Severity::Error);
}

#[test]
fn driver_library_mismatch() {
    let _guard = lock();
    let kernel = FakeKernel::with_nvidia("580.65.06");
    let d = detect(&fake_options("driver-mismatch", &kernel));
    assert_eq!(d.source, Source::None);
    assert!(d.driver.is_none() && d.gpus.is_empty());
    let p = d
        .problem(ProblemCode::DriverLibraryMismatch)
        .expect("mismatch");
    assert_eq!(p.severity, Severity::Error);
    assert!(
        p.message.contains("driver/library version mismatch"),
        "{p:?}"
    );
    assert!(
        p.message.contains("580.65.06"),
        "the loaded module's version: {p:?}"
    );
    assert!(
        p.hint.as_deref().unwrap_or_default().contains("reboot"),
        "{p:?}"
    );
    assert!(!d.has_problem(ProblemCode::KernelModuleMissing));
}

#[test]
fn driver_not_loaded_with_nouveau() {
    let _guard = lock();
    let kernel = FakeKernel::with_nouveau();
    let d = detect(&fake_options("init-fails", &kernel));
    assert_eq!(d.source, Source::None);
    assert_eq!(
        codes(&d),
        [
            ProblemCode::DriverNotLoaded,
            ProblemCode::NouveauLoaded,
            ProblemCode::KernelModuleMissing,
            ProblemCode::NvidiaSmiDisabled,
        ]
    );
    let nouveau = d.problem(ProblemCode::NouveauLoaded).expect("nouveau");
    assert!(
        nouveau.message.contains("/sys/module/nouveau"),
        "{nouveau:?}"
    );
    let missing = d.problem(ProblemCode::KernelModuleMissing).expect("module");
    assert!(
        missing.message.contains("/proc/driver/nvidia"),
        "{missing:?}"
    );
}

#[test]
fn no_permission() {
    let d = run("no-permission");
    assert_eq!(d.source, Source::None);
    assert!(d.has_problem(ProblemCode::NoPermission));
}

#[test]
fn jetson_reports_what_it_can() {
    let d = run("jetson-orin");
    assert_eq!(d.source, Source::Nvml);
    let g = &d.gpus[0];
    assert_eq!(g.compute_capability, Some(ComputeCapability::new(8, 7)));
    assert_eq!(g.family, Some(ArchFamily::Ampere));
    assert_eq!((g.memory_total_bytes, g.memory_free_bytes), (None, None));
    assert_eq!((g.pci_bus_id.as_deref(), g.mig), (None, None));
    assert!(g.is_usable(), "unknown memory does not make a GPU unusable");
    assert_eq!(d.driver_cuda(), None);
    assert_eq!(
        codes(&d),
        [ProblemCode::CudaVersionUnknown, ProblemCode::MemoryUnknown]
    );
    let memory = d.problem(ProblemCode::MemoryUnknown).expect("memory");
    assert_eq!(
        (memory.severity, memory.nvml_index),
        (Severity::Warning, Some(0))
    );
    assert!(memory.message.contains("NOT_SUPPORTED"), "{memory:?}");
    assert!(d.errors().next().is_none());
}

#[test]
fn mig_devices_are_listed_and_selectable() {
    let d = run("mig-a100");
    assert_eq!(
        d.gpus
            .iter()
            .find(|g| g.nvml_index == 0)
            .and_then(|g| g.mig),
        Some(MigMode {
            current: true,
            pending: true
        })
    );
    let d = run_with("mig-a100", |o| {
        o.cuda_visible_devices = Some("MIG-66666666".into());
    });
    assert_eq!(d.gpus.len(), 1);
    assert_eq!(d.gpus[0].nvml_index, 0);
    assert_eq!(
        d.gpus[0].mig_device.as_deref(),
        Some("MIG-66666666-7777-5888-9999-aaaaaaaaaaaa")
    );
    assert_eq!(d.hidden.len(), 1);
}

#[test]
fn library_override_comes_from_the_environment() {
    let _guard = lock();
    let kernel = FakeKernel::bare();
    std::env::set_var("GPULIBS_FAKE_NVML", common::scenario("h100"));
    std::env::set_var("GPULIBS_NVML_LIBRARY", fake_nvml());
    std::env::set_var("CUDA_VISIBLE_DEVICES", "GPU-82c4");
    std::env::remove_var("CUDA_DEVICE_ORDER");
    let mut options = DetectOptions::from_env();
    std::env::remove_var("GPULIBS_NVML_LIBRARY");
    std::env::remove_var("CUDA_VISIBLE_DEVICES");
    assert_eq!(options.nvml_library.as_deref(), Some(fake_nvml()));
    assert_eq!(options.cuda_visible_devices.as_deref(), Some("GPU-82c4"));
    options.fs_roots = kernel.roots();
    let d = detect(&options);
    assert_eq!(d.source, Source::Nvml);
    assert_eq!(d.gpus.len(), 1);
    assert_eq!(
        d.visibility.cuda_visible_devices.as_deref(),
        Some("GPU-82c4")
    );
}

#[test]
fn missing_library_is_explained() {
    let _guard = lock();
    let kernel = FakeKernel::bare();
    let missing = kernel.dir.path().join("libnvidia-ml.so.1");
    let d = detect(&DetectOptions {
        nvml_library: Some(missing.clone()),
        nvidia_smi_fallback: false,
        fs_roots: kernel.roots(),
        ..DetectOptions::isolated()
    });
    assert_eq!(d.source, Source::None);
    assert_eq!(
        codes(&d),
        [
            ProblemCode::NvmlLibraryNotFound,
            ProblemCode::KernelModuleMissing,
            ProblemCode::NvidiaSmiDisabled,
        ]
    );
    let p = &d.problems[0];
    assert!(p.message.contains(&missing.display().to_string()), "{p:?}");
    assert!(
        p.hint
            .as_deref()
            .unwrap_or_default()
            .contains("NVIDIA driver"),
        "{p:?}"
    );
}

#[test]
fn a_file_that_is_not_a_library_is_explained() {
    let _guard = lock();
    let kernel = FakeKernel::with_nvidia("580.159.04");
    let bogus = kernel.dir.path().join("libnvidia-ml.so.1");
    std::fs::write(&bogus, b"not an ELF file").expect("write");
    let d = detect(&DetectOptions {
        nvml_library: Some(bogus),
        nvidia_smi_fallback: false,
        fs_roots: kernel.roots(),
        ..DetectOptions::isolated()
    });
    assert_eq!(d.source, Source::None);
    assert_eq!(d.problems[0].code, ProblemCode::NvmlLibraryUnloadable);
}

/// Not a test of behaviour: prints how long detection through the fake takes.
#[test]
fn detect_duration_is_printed() {
    let _guard = lock();
    let kernel = FakeKernel::bare();
    let options = fake_options("h100", &kernel);
    let start = std::time::Instant::now();
    let d = detect(&options);
    let first = start.elapsed();
    let start = std::time::Instant::now();
    detect(&options);
    eprintln!(
        "detect() through the fake NVML: first {first:?}, again {:?}",
        start.elapsed()
    );
    assert_eq!(d.gpus.len(), 1);
}
