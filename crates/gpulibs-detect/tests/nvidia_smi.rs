//! The `nvidia-smi` fallback, with a shell script standing in for `nvidia-smi`, and detection
//! when neither NVML nor `nvidia-smi` is there.

mod common;

use common::{fake_smi, lock, FakeKernel};
use gpulibs_detect::{
    detect, ArchFamily, ComputeCapability, CudaVersion, DetectOptions, Detection, ProblemCode,
    Severity, Source,
};

const MIB: u64 = 1 << 20;

/// Answers `--query-gpu` with the CSV the H100 host printed, and anything else with the banner.
const H100_SMI: &str = r#"case "$1" in
--query-gpu=*) echo "0, NVIDIA H100 80GB HBM3, GPU-82c4bd45-e6fe-25fc-e029-7df7c8b7376b, 00000000:00:06.0, 81559, 81079, Disabled, Disabled, 580.159.04, 9.0" ;;
*) echo "| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |" ;;
esac"#;

/// An R470 `nvidia-smi`: no `compute_cap` field, two GPUs, MIG not supported.
const R470_SMI: &str = r#"case "$1" in
*compute_cap*) echo 'Field "compute_cap" is not a valid field to query.'; exit 2 ;;
--query-gpu=*)
  echo "0, NVIDIA GeForce GTX 970, GPU-6e2d8a14-b3c5-9f70-1d4e-52a6b7c8d9e0, 00000000:01:00.0, 4096, 4036, [N/A], [N/A], 470.256.02"
  echo "1, NVIDIA GeForce GTX 1080, GPU-1b7e3d92-6c0a-4f58-9e21-c4d3b2a19087, 00000000:02:00.0, 8192, 8113, [N/A], [N/A], 470.256.02" ;;
*) echo "| NVIDIA-SMI 470.256.02   Driver Version: 470.256.02   CUDA Version: 11.4     |" ;;
esac"#;

const MISMATCH_SMI: &str = r#"echo "Failed to initialize NVML: Driver/library version mismatch"
echo "NVML library version: 580.159"
exit 18"#;

/// NVML absent (a library path that does not exist), `nvidia-smi` from `script`.
fn with_smi(
    script: Option<&str>,
    kernel: FakeKernel,
    configure: impl FnOnce(&mut DetectOptions),
) -> Detection {
    let _guard = lock();
    let bin = tempfile::tempdir().expect("temp dir");
    let program = match script {
        Some(body) => fake_smi(bin.path(), body),
        None => bin.path().join("nvidia-smi"),
    };
    let mut options = DetectOptions {
        nvml_library: Some(kernel.dir.path().join("no/libnvidia-ml.so.1")),
        nvidia_smi: Some(program),
        fs_roots: kernel.roots(),
        ..DetectOptions::isolated()
    };
    configure(&mut options);
    detect(&options)
}

fn nvidia() -> FakeKernel {
    FakeKernel::with_nvidia("580.159.04")
}

fn codes(d: &Detection) -> Vec<ProblemCode> {
    d.problems.iter().map(|p| p.code).collect()
}

#[test]
fn falls_back_to_nvidia_smi() {
    let d = with_smi(Some(H100_SMI), nvidia(), |_| {});
    assert_eq!(d.source, Source::NvidiaSmi);
    let driver = d.driver.as_ref().expect("driver");
    assert_eq!(driver.version.as_deref(), Some("580.159.04"));
    assert_eq!(driver.cuda, Some(CudaVersion::new(13, 0)));
    assert_eq!(d.gpus.len(), 1);
    let g = &d.gpus[0];
    assert_eq!(g.compute_capability, Some(ComputeCapability::new(9, 0)));
    assert_eq!(g.sm.as_deref(), Some("sm_90"));
    assert_eq!(g.family, Some(ArchFamily::Hopper));
    assert_eq!(g.memory_total_bytes, Some(85_520_809_984));
    assert_eq!(g.memory_free_bytes, Some(81079 * MIB));
    assert_eq!(
        g.uuid.as_deref(),
        Some("GPU-82c4bd45-e6fe-25fc-e029-7df7c8b7376b")
    );
    // Why NVML was not used stays visible, as a warning since the answer came anyway.
    assert_eq!(codes(&d), [ProblemCode::NvmlLibraryNotFound]);
    assert_eq!(d.problems[0].severity, Severity::Warning);
}

#[test]
fn old_nvidia_smi_without_compute_cap() {
    let d = with_smi(Some(R470_SMI), nvidia(), |o| {
        o.cuda_device_order = Some("PCI_BUS_ID".into());
        o.cuda_visible_devices = Some("1".into());
    });
    assert_eq!(d.source, Source::NvidiaSmi);
    assert_eq!(d.driver_cuda(), Some(CudaVersion::new(11, 4)));
    assert_eq!(d.gpus.len(), 1);
    let g = &d.gpus[0];
    assert_eq!(g.name.as_deref(), Some("NVIDIA GeForce GTX 1080"));
    assert_eq!(
        (g.compute_capability, g.sm.as_deref(), g.family),
        (None, None, None)
    );
    assert_eq!(g.memory_total_bytes, Some(8192 * MIB));
    assert_eq!(g.mig, None);
    assert!(
        !d.has_usable_gpu(),
        "without a compute capability a GPU cannot be planned for"
    );
    assert_eq!(d.hidden.len(), 1);
    let unknown: Vec<_> = d
        .problems
        .iter()
        .filter(|p| p.code == ProblemCode::ComputeCapabilityUnknown)
        .map(|p| (p.nvml_index, p.severity))
        .collect();
    assert_eq!(
        unknown,
        [(Some(0), Severity::Error), (Some(1), Severity::Error)]
    );
    assert!(d.problems.iter().any(|p| p.message.contains("compute_cap")));
}

#[test]
fn nvidia_smi_reports_the_mismatch() {
    let d = with_smi(Some(MISMATCH_SMI), nvidia(), |_| {});
    assert_eq!(d.source, Source::None);
    assert_eq!(
        codes(&d),
        [
            ProblemCode::NvmlLibraryNotFound,
            ProblemCode::DriverLibraryMismatch
        ]
    );
    let p = d
        .problem(ProblemCode::DriverLibraryMismatch)
        .expect("mismatch");
    assert!(
        p.message.contains("driver/library version mismatch"),
        "{p:?}"
    );
}

#[test]
fn neither_nvml_nor_nvidia_smi() {
    let d = with_smi(None, FakeKernel::bare(), |_| {});
    assert_eq!(d.source, Source::None);
    assert!(d.driver.is_none() && d.gpus.is_empty() && d.hidden.is_empty());
    assert_eq!(
        codes(&d),
        [
            ProblemCode::NvmlLibraryNotFound,
            ProblemCode::KernelModuleMissing,
            ProblemCode::NvidiaSmiNotFound,
        ]
    );
    assert_eq!(d.problems[0].severity, Severity::Error);
    assert!(d.errors().count() >= 2);
    let json: serde_json::Value = serde_json::from_str(&d.to_json_pretty()).expect("json");
    assert_eq!(json["source"], "none");
    assert_eq!(json["driver"], serde_json::Value::Null);
    assert_eq!(json["problems"][0]["code"], "nvml_library_not_found");
}

#[test]
fn fallback_can_be_turned_off() {
    let d = with_smi(Some(H100_SMI), nvidia(), |o| o.nvidia_smi_fallback = false);
    assert_eq!(d.source, Source::None);
    assert!(d.has_problem(ProblemCode::NvidiaSmiDisabled));
}
