//! The seed's own three-tier release (fixtures/seed-gpu-libs-1.1.0.toml) planned for the seed's
//! three machines and for the machines its install script got wrong or never handled. Each row
//! pins the whole plan as text: the choice, every rejection with its numbers, the warnings.

// A test: prints the plans it pins.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use gpulibs_detect::CudaVersion;
use gpulibs_plan::{
    parse_manifest, plan, validate, Host, HostGpu, Outcome, Plan, Policy, SystemInventory,
};

const SEED: &str = include_str!("../fixtures/seed-gpu-libs-1.1.0.toml");

fn gpu(index: u32, name: &str, cc: &str, total_gb: u64) -> HostGpu {
    HostGpu {
        index,
        name: Some(name.into()),
        compute_capability: cc.parse().unwrap(),
        memory_free_bytes: Some(total_gb * 900_000_000),
        memory_total_bytes: Some(total_gb * 1_000_000_000),
    }
}

fn host(gpus: Vec<HostGpu>, driver: &str, cuda: Option<&str>) -> Host {
    Host {
        gpus,
        driver_version: Some(driver.parse().unwrap()),
        driver_cuda: cuda.map(|c| c.parse::<CudaVersion>().unwrap()),
        free_disk_bytes: Some(100_000_000_000),
        no_gpu_reason: None,
    }
}

fn plan_for(h: &Host) -> Plan {
    let m = parse_manifest(SEED).unwrap();
    plan(h, &m, &SystemInventory::default(), &Policy::default())
}

fn show(title: &str, p: &Plan) -> Vec<String> {
    let lines = p.lines();
    println!("== {title}");
    for l in &lines {
        println!("   {l}");
    }
    lines
}

#[test]
fn the_fixture_is_valid() {
    let m = parse_manifest(SEED).unwrap();
    assert_eq!(
        validate(
            &m,
            &Policy::default().system_libraries,
            &SystemInventory::default()
        ),
        vec![]
    );
    let names: Vec<&str> = m.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["legacy", "modern", "latest"]);
    for c in &m.components {
        assert_eq!(c.files.len(), 17, "{}", c.id);
        assert_eq!(c.cuda.unwrap().to_string(), "12.9");
    }
}

/// The driver of the seed's machines: R580 runs CUDA 13.0, so CUDA 12.9 in full.
const R580: &str = "580.95.05";

/// Kernel and driver choices only: the seed's archives are x86_64, so on Jetson (aarch64) they
/// would not load whatever their kernels; the manifest schema does not model the CPU
/// architecture yet (see docs/manifest.md "Not yet in the schema").
#[test]
fn seed_machines_and_the_ones_it_missed() {
    type Case<'a> = (&'a str, Host, &'a [&'a str]);
    let cases: Vec<Case> = vec![
        (
            "Quadro M2200 (5.2), driver 580",
            host(vec![gpu(0, "Quadro M2200", "5.2", 4)], R580, Some("13.0")),
            &[
                "legacy (CUDA 12.9, sm_50–70): chosen, native SASS for sm_52",
                "modern (CUDA 12.9, sm_75–86): rejected, no kernel image for sm_52 in `cuda-libs-modern` (it has sm_75, sm_80, sm_86)",
                "latest (CUDA 12.9, sm_89–120): rejected, no kernel image for sm_52 in `cuda-libs-latest` (it has sm_89, sm_90, sm_100, sm_120)",
                "download 1.4 GiB, 2.3 GiB unpacked, 3.7 GiB of disk needed",
            ],
        ),
        (
            "RTX A1000 Laptop (8.6), driver 580",
            host(vec![gpu(0, "NVIDIA RTX A1000 Laptop GPU", "8.6", 4)], R580, Some("13.0")),
            &[
                "modern (CUDA 12.9, sm_75–86): chosen, native SASS for sm_86",
                "legacy (CUDA 12.9, sm_50–70): rejected, no kernel image for sm_86 in `cuda-libs-legacy` (it has sm_50, sm_52, sm_60, sm_61, sm_70)",
                "latest (CUDA 12.9, sm_89–120): rejected, no kernel image for sm_86 in `cuda-libs-latest` (it has sm_89, sm_90, sm_100, sm_120)",
                "download 1.4 GiB, 2.2 GiB unpacked, 3.6 GiB of disk needed",
            ],
        ),
        (
            "RTX PRO 6000 Blackwell (12.0), driver 580",
            host(vec![gpu(0, "NVIDIA RTX PRO 6000 Blackwell", "12.0", 96)], R580, Some("13.0")),
            &[
                "latest (CUDA 12.9, sm_89–120): chosen, native SASS for sm_120",
                "legacy (CUDA 12.9, sm_50–70): rejected, no kernel image for sm_120 in `cuda-libs-legacy` (it has sm_50, sm_52, sm_60, sm_61, sm_70)",
                "modern (CUDA 12.9, sm_75–86): rejected, no kernel image for sm_120 in `cuda-libs-modern` (it has sm_75, sm_80, sm_86)",
                "download 1.4 GiB, 2.3 GiB unpacked, 3.7 GiB of disk needed",
            ],
        ),
        (
            "Jetson AGX Xavier (7.2)",
            host(vec![gpu(0, "Xavier", "7.2", 32)], R580, Some("13.0")),
            &[
                "legacy (CUDA 12.9, sm_50–70): chosen, native SASS sm_70 runs on sm_72",
                "modern (CUDA 12.9, sm_75–86): rejected, no kernel image for sm_72 in `cuda-libs-modern` (it has sm_75, sm_80, sm_86)",
                "latest (CUDA 12.9, sm_89–120): rejected, no kernel image for sm_72 in `cuda-libs-latest` (it has sm_89, sm_90, sm_100, sm_120)",
                "download 1.4 GiB, 2.3 GiB unpacked, 3.7 GiB of disk needed",
            ],
        ),
        (
            "Jetson AGX Orin (8.7)",
            host(vec![gpu(0, "Orin", "8.7", 64)], R580, Some("13.0")),
            &[
                "modern (CUDA 12.9, sm_75–86): chosen, native SASS sm_86 runs on sm_87",
                "legacy (CUDA 12.9, sm_50–70): rejected, no kernel image for sm_87 in `cuda-libs-legacy` (it has sm_50, sm_52, sm_60, sm_61, sm_70)",
                "latest (CUDA 12.9, sm_89–120): rejected, no kernel image for sm_87 in `cuda-libs-latest` (it has sm_89, sm_90, sm_100, sm_120)",
                "download 1.4 GiB, 2.2 GiB unpacked, 3.6 GiB of disk needed",
            ],
        ),
        (
            "RTX 4090 (8.9)",
            host(vec![gpu(0, "NVIDIA GeForce RTX 4090", "8.9", 24)], R580, Some("13.0")),
            &[
                "latest (CUDA 12.9, sm_89–120): chosen, native SASS for sm_89",
                "legacy (CUDA 12.9, sm_50–70): rejected, no kernel image for sm_89 in `cuda-libs-legacy` (it has sm_50, sm_52, sm_60, sm_61, sm_70)",
                "modern (CUDA 12.9, sm_75–86): rejected, runs, but `latest` ranks higher: the other has SASS built for the exact compute capability",
                "download 1.4 GiB, 2.3 GiB unpacked, 3.7 GiB of disk needed",
            ],
        ),
        (
            "B300 (10.3)",
            host(vec![gpu(0, "NVIDIA B300", "10.3", 288)], R580, Some("13.0")),
            &[
                "latest (CUDA 12.9, sm_89–120): chosen, native SASS sm_100 runs on sm_103",
                "legacy (CUDA 12.9, sm_50–70): rejected, no kernel image for sm_103 in `cuda-libs-legacy` (it has sm_50, sm_52, sm_60, sm_61, sm_70)",
                "modern (CUDA 12.9, sm_75–86): rejected, no kernel image for sm_103 in `cuda-libs-modern` (it has sm_75, sm_80, sm_86)",
                "download 1.4 GiB, 2.3 GiB unpacked, 3.7 GiB of disk needed",
            ],
        ),
        (
            "DGX Spark GB10 (12.1)",
            host(vec![gpu(0, "NVIDIA GB10", "12.1", 128)], R580, Some("13.0")),
            &[
                "latest (CUDA 12.9, sm_89–120): chosen, native SASS sm_120 runs on sm_121",
                "legacy (CUDA 12.9, sm_50–70): rejected, no kernel image for sm_121 in `cuda-libs-legacy` (it has sm_50, sm_52, sm_60, sm_61, sm_70)",
                "modern (CUDA 12.9, sm_75–86): rejected, no kernel image for sm_121 in `cuda-libs-modern` (it has sm_75, sm_80, sm_86)",
                "download 1.4 GiB, 2.3 GiB unpacked, 3.7 GiB of disk needed",
            ],
        ),
        (
            "Maxwell GTX 970 (5.2) on driver 470",
            host(vec![gpu(0, "NVIDIA GeForce GTX 970", "5.2", 4)], "470.256.02", Some("11.4")),
            &[
                "CPU runtime: no GPU variant runs on this machine (reasons below); the manifest has no CPU variant, so nothing is installed and the app uses its own CPU runtime, if it has one",
                "legacy (CUDA 12.9, sm_50–70): rejected, needs driver ≥ 525.60.13 for CUDA 12.9 (`cuda-libs-legacy`), you have 470.256.02",
                "modern (CUDA 12.9, sm_75–86): rejected, needs driver ≥ 525.60.13 for CUDA 12.9 (`cuda-libs-modern`), you have 470.256.02",
                "latest (CUDA 12.9, sm_89–120): rejected, needs driver ≥ 525.60.13 for CUDA 12.9 (`cuda-libs-latest`), you have 470.256.02",
            ],
        ),
        (
            "RTX A1000 (8.6) + GTX 1080 (6.1)",
            host(vec![gpu(0, "NVIDIA RTX A1000", "8.6", 8), gpu(1, "NVIDIA GeForce GTX 1080", "6.1", 8)], R580, Some("13.0")),
            &[
                "modern (CUDA 12.9, sm_75–86): chosen, native SASS for GPU 0 (NVIDIA RTX A1000, sm_86)",
                "legacy (CUDA 12.9, sm_50–70): rejected, runs, but `modern` ranks higher: it does not cover the best GPU",
                "latest (CUDA 12.9, sm_89–120): rejected, no kernel image for GPU 0 (NVIDIA RTX A1000, sm_86) in `cuda-libs-latest` (it has sm_89, sm_90, sm_100, sm_120); no kernel image for GPU 1 (NVIDIA GeForce GTX 1080, sm_61) in `cuda-libs-latest` (it has sm_89, sm_90, sm_100, sm_120)",
                "warning: no variant covers every GPU: planned `modern` for the best GPU, GPU 0 (NVIDIA RTX A1000, sm_86)",
                "warning: GPU 1 (NVIDIA GeForce GTX 1080, sm_61) is not covered by `modern`: no kernel image for GPU 1 (NVIDIA GeForce GTX 1080, sm_61) in `cuda-libs-modern` (it has sm_75, sm_80, sm_86); the app must not use it (hide it with CUDA_VISIBLE_DEVICES)",
                "download 1.4 GiB, 2.2 GiB unpacked, 3.6 GiB of disk needed",
            ],
        ),
        (
            "RTX A1000 (8.6) on driver 535 (CUDA 12.2)",
            host(vec![gpu(0, "NVIDIA RTX A1000", "8.6", 8)], "535.104.05", Some("12.2")),
            &[
                "modern (CUDA 12.9, sm_75–86): chosen, native SASS for sm_86",
                "legacy (CUDA 12.9, sm_50–70): rejected, no kernel image for sm_86 in `cuda-libs-legacy` (it has sm_50, sm_52, sm_60, sm_61, sm_70)",
                "latest (CUDA 12.9, sm_89–120): rejected, no kernel image for sm_86 in `cuda-libs-latest` (it has sm_89, sm_90, sm_100, sm_120)",
                "warning: `cuda-libs-modern` (CUDA 12.9) runs on driver 535.104.05 through CUDA minor-version compatibility (full support from 575.51.03); newer PTX cannot be JIT-compiled on it",
                "download 1.4 GiB, 2.2 GiB unpacked, 3.6 GiB of disk needed",
            ],
        ),
    ];
    for (title, h, want) in cases {
        let p = plan_for(&h);
        let got = show(title, &p);
        assert_eq!(got, want, "{title}");
    }
}

#[test]
fn outcomes_of_the_seed_table() {
    let one = |cc: &str, driver: &str, cuda: &str| {
        plan_for(&host(vec![gpu(0, "GPU", cc, 8)], driver, Some(cuda)))
    };
    assert_eq!(one("5.2", R580, "13.0").outcome, Outcome::Gpu);
    let maxwell_470 = one("5.2", "470.256.02", "11.4");
    let cpu = maxwell_470
        .cpu_fallback()
        .expect("CPU outcome, not an error");
    assert_eq!(cpu.variant, None);
    assert!(maxwell_470.chosen.is_none());
    assert_eq!(maxwell_470.totals.download_bytes, 0);
    let two = plan_for(&host(
        vec![gpu(0, "A", "8.6", 8), gpu(1, "B", "6.1", 8)],
        R580,
        Some("13.0"),
    ));
    assert_eq!(two.outcome, Outcome::GpuPartial { uncovered: vec![1] });
}

/// If ORT's CMake turned `100-real` into `100a-real` and `120-real` into `120a-real`, the latest
/// tier would serve 10.0 and 12.0 only: B300 and DGX Spark get no kernel from any tier.
#[test]
fn if_the_cmake_rewrite_made_latest_arch_specific() {
    let text = SEED.replace(
        r#"sass = ["sm_89", "sm_90", "sm_100", "sm_120"]"#,
        r#"sass = ["sm_89", "sm_90", "sm_100a", "sm_120a"]"#,
    );
    assert_ne!(text, SEED);
    let m = parse_manifest(&text).unwrap();
    for (cc, want) in [
        ("10.0", Some("latest")),
        ("10.3", None),
        ("12.0", Some("latest")),
        ("12.1", None),
    ] {
        let h = host(vec![gpu(0, "GPU", cc, 80)], R580, Some("13.0"));
        let p = plan(&h, &m, &SystemInventory::default(), &Policy::default());
        show(&format!("{cc} with sm_100a/sm_120a"), &p);
        assert_eq!(p.chosen.as_ref().map(|c| c.variant.as_str()), want, "{cc}");
    }
    let h = host(vec![gpu(0, "NVIDIA B300", "10.3", 288)], R580, Some("13.0"));
    let p = plan(&h, &m, &SystemInventory::default(), &Policy::default());
    assert_eq!(
        p.rejected[2].to_string(),
        "latest (CUDA 12.9, sm_89–120): rejected, no kernel image for sm_103 in \
         `cuda-libs-latest` (it has sm_89, sm_90, sm_100a, sm_120a)"
    );
}

/// Jetson AGX Xavier on JetPack 5 (CUDA 11.4): every tier needs a CUDA 12 driver.
#[test]
fn xavier_on_jetpack_5() {
    let h = Host::synthetic(
        &["7.2".parse().unwrap()],
        None,
        Some("11.4".parse().unwrap()),
    );
    let p = plan_for(&h);
    assert_eq!(
        show("Xavier, CUDA 11.4 driver", &p),
        [
            "CPU runtime: no GPU variant runs on this machine (reasons below); the manifest has \
             no CPU variant, so nothing is installed and the app uses its own CPU runtime, if it \
             has one",
            "legacy (CUDA 12.9, sm_50–70): rejected, needs driver ≥ 525.60.13 for CUDA 12.9 \
             (`cuda-libs-legacy`), you have a driver that runs CUDA 11.4",
            "modern (CUDA 12.9, sm_75–86): rejected, needs driver ≥ 525.60.13 for CUDA 12.9 \
             (`cuda-libs-modern`), you have a driver that runs CUDA 11.4",
            "latest (CUDA 12.9, sm_89–120): rejected, needs driver ≥ 525.60.13 for CUDA 12.9 \
             (`cuda-libs-latest`), you have a driver that runs CUDA 11.4",
        ]
    );
}
