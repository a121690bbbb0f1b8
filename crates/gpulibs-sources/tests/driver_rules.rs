//! The driver rules of `docs/driver-rules.md` over the embedded default (the measured official
//! ONNX Runtime releases): which release each common driver branch gets, and why every other
//! release is not chosen. R535 = CUDA 12.2, R550 = 12.4, R570 = 12.8, R580 = 13.0 (facts §3).

use gpulibs_inspect::Compression;
use gpulibs_plan::{plan, Host, Plan, Policy, Reason, SystemInventory};
use gpulibs_sources::{embedded_default, CoverageTable};

const DRIVERS: [(&str, &str, &str); 4] = [
    ("R535", "535.183.01", "12.2"),
    ("R550", "550.163.01", "12.4"),
    ("R570", "570.211.01", "12.8"),
    ("R580", "580.159.04", "13.0"),
];

fn plan_for(gpu: &str, driver: &str, cuda: &str) -> Plan {
    let m = embedded_default(CoverageTable::embedded());
    let host = Host::synthetic(
        &[gpu.parse().unwrap()],
        Some(driver.parse().unwrap()),
        Some(cuda.parse().unwrap()),
    );
    plan(&host, &m, &SystemInventory::default(), &Policy::default())
}

/// What happened to a release's variant: `chosen`, `outranked`, or its rejection reasons as
/// short words in alphabetical order (`cuda` for the CUDA runtime, `zstd` for rule fatbin-zstd, `kernel` for no
/// kernel image, `ptx` for PTX too new).
fn fate(p: &Plan, release: &str) -> String {
    let name = |v: &str| v.starts_with(&format!("ort-{release}-"));
    if p.chosen.as_ref().is_some_and(|c| name(&c.variant)) {
        return "chosen".into();
    }
    let r = p
        .rejected
        .iter()
        .find(|r| name(&r.variant))
        .unwrap_or_else(|| panic!("{release} neither chosen nor rejected: {:#?}", p.lines()));
    let mut words: Vec<&str> = r
        .reasons
        .iter()
        .map(|x| match x {
            Reason::Outranked { .. } => "outranked",
            Reason::DriverTooOld { .. } => "cuda",
            Reason::DriverCannotReadKernels { rule, .. } => {
                assert_eq!(rule, "fatbin-zstd");
                "zstd"
            }
            Reason::NoKernelImage { .. } => "kernel",
            Reason::PtxTooNew { .. } => "ptx",
            other => panic!("{release}: unexpected {other:?}"),
        })
        .collect();
    words.sort();
    words.dedup();
    words.join("+")
}

/// The compression of every embedded release, as measured (scripts/ort-coverage.py
/// --update-compression): LZ4 up to 1.26 (CUDA 12 builds; 1.20.2 also keeps small entries
/// uncompressed), zstd from 1.27 (CUDA 13 builds). 1.23.2 LZ4 and 1.31.1 zstd agree with facts
/// §6 [E3].
#[test]
fn measured_compression_per_release() {
    let table = CoverageTable::embedded();
    let got: Vec<(&str, Vec<Compression>)> = table
        .releases
        .iter()
        .map(|r| (r.version.as_str(), r.compression.clone()))
        .collect();
    use Compression::{Lz4, Zstd};
    let want: Vec<(&str, Vec<Compression>)> = vec![
        ("1.20.2", vec![Lz4, Compression::None]),
        ("1.21.1", vec![Lz4]),
        ("1.22.0", vec![Lz4]),
        ("1.23.2", vec![Lz4]),
        ("1.24.4", vec![Lz4]),
        ("1.25.1", vec![Lz4]),
        ("1.26.0", vec![Lz4]),
        ("1.27.0", vec![Zstd]),
        ("1.28.0", vec![Zstd]),
        ("1.29.0", vec![Zstd]),
        ("1.30.0", vec![Zstd]),
        ("1.31.1", vec![Zstd]),
    ];
    assert_eq!(got, want);
    // And the embedded manifest carries it into the planner's coverage.
    let m = embedded_default(table);
    let c = m
        .components
        .iter()
        .find(|c| c.id == "onnxruntime-gpu-1.31.1")
        .unwrap();
    assert_eq!(c.coverage.as_ref().unwrap().compression, [Zstd]);
}

/// R535/R550/R570/R580 × every embedded release, on an RTX 30xx (8.6) and a Maxwell (5.2).
/// Written out by hand from the rules, not computed.
#[test]
fn each_driver_branch_gets_a_release_it_can_load() {
    let releases = [
        "1.20.2", "1.21.1", "1.22.0", "1.23.2", "1.24.4", "1.25.1", "1.26.0", "1.27.0", "1.28.0",
        "1.29.0", "1.30.0", "1.31.1",
    ];
    let o = "outranked";
    // Per driver (DRIVERS order), the fate of each release on 8.6.
    let on_86: [[&str; 12]; 4] = [
        // R535: CUDA 13 builds need R580 (the runtime rule) and R550 (their zstd kernels;
        // `zstd_alone_rejects_the_cuda_13_releases_on_r535` sets the runtime rule aside).
        [
            o,
            o,
            o,
            o,
            o,
            o,
            "chosen",
            "cuda+zstd",
            "cuda+zstd",
            "cuda+zstd",
            "cuda+zstd",
            "cuda+zstd",
        ],
        // R550 and R570 read zstd, but still cannot run CUDA 13.
        [
            o, o, o, o, o, o, "chosen", "cuda", "cuda", "cuda", "cuda", "cuda",
        ],
        [
            o, o, o, o, o, o, "chosen", "cuda", "cuda", "cuda", "cuda", "cuda",
        ],
        // R580 runs everything: the newest release wins.
        [o, o, o, o, o, o, o, o, o, o, o, "chosen"],
    ];
    // On 5.2 only 1.20.2 has sm_52 (its compute_52 PTX is ISA 8.2, which R535 compiles); the
    // CUDA 13 releases have no entry for sm_52, so no zstd entry to refuse either.
    let k = "kernel";
    let on_52: [[&str; 12]; 4] = [
        [
            "chosen", k, k, k, k, k, k, "cuda", "cuda", "cuda", "cuda", "cuda",
        ],
        [
            "chosen", k, k, k, k, k, k, "cuda", "cuda", "cuda", "cuda", "cuda",
        ],
        [
            "chosen", k, k, k, k, k, k, "cuda", "cuda", "cuda", "cuda", "cuda",
        ],
        ["chosen", k, k, k, k, k, k, k, k, k, k, k],
    ];
    for (gpu, table) in [("8.6", on_86), ("5.2", on_52)] {
        for ((branch, driver, cuda), row) in DRIVERS.iter().zip(table) {
            let p = plan_for(gpu, driver, cuda);
            for (release, want) in releases.iter().zip(row) {
                assert_eq!(
                    fate(&p, release),
                    want,
                    "{release} on {gpu} with {branch} ({driver}): {:#?}",
                    p.lines()
                );
            }
            // Whatever is chosen, the driver reads its kernels.
            let chosen = p.chosen.as_ref().expect("a GPU release");
            let m = embedded_default(CoverageTable::embedded());
            for pc in &chosen.components {
                let c = m.components.iter().find(|c| c.id == pc.id).unwrap();
                for comp in c.coverage.iter().flat_map(|cov| &cov.compression) {
                    assert!(
                        gpulibs_inspect::driver_reads(*comp, Some(cuda.parse().unwrap())),
                        "{branch} was given {} with {comp:?} kernels",
                        pc.id
                    );
                }
            }
        }
    }
}

/// The CUDA 13 releases on R535 with the runtime rule set aside (as if a forward-compatibility
/// package ran CUDA 13 there): their zstd kernels still cannot load, by rule fatbin-zstd; the
/// CUDA 12 releases (LZ4) can.
#[test]
fn zstd_alone_rejects_the_cuda_13_releases_on_r535() {
    let mut m = embedded_default(CoverageTable::embedded());
    for c in &mut m.components {
        c.cuda = None;
    }
    let host = Host::synthetic(
        &["8.6".parse().unwrap()],
        Some("535.183.01".parse().unwrap()),
        Some("12.2".parse().unwrap()),
    );
    let p = plan(&host, &m, &SystemInventory::default(), &Policy::default());
    assert_eq!(
        p.chosen.as_ref().map(|c| c.variant.as_str()),
        Some("ort-1.26.0-cuda12"),
        "{:#?}",
        p.lines()
    );
    for release in ["1.27.0", "1.28.0", "1.29.0", "1.30.0", "1.31.1"] {
        assert_eq!(fate(&p, release), "zstd", "{release}: {:#?}", p.lines());
    }
    // With R550 the newest release wins again.
    let host = Host::synthetic(
        &["8.6".parse().unwrap()],
        Some("550.54.14".parse().unwrap()),
        Some("12.4".parse().unwrap()),
    );
    let p = plan(&host, &m, &SystemInventory::default(), &Policy::default());
    assert_eq!(
        p.chosen.as_ref().map(|c| c.variant.as_str()),
        Some("ort-1.31.1-cuda13")
    );
}
