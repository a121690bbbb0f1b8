//! The embedded coverage table: shape, consistency, and measured facts that other sources confirm
//! (`cuda-facts.md` §6: the 1.23.2 and 1.31.1 wheels measured independently).

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_inspect::Selection;
use gpulibs_sources::{CoverageError, CoverageTable, WheelTarget};

fn names<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

fn cc(major: u32, minor: u32) -> ComputeCapability {
    ComputeCapability::new(major, minor)
}

#[test]
fn embedded_table_parses_and_matches_the_wheel_target() {
    let table = CoverageTable::embedded();
    assert!(
        table.releases.len() >= 8,
        "{} releases",
        table.releases.len()
    );
    let target = WheelTarget::default();
    assert_eq!(table.python_version, target.python_version);
    assert_eq!(table.implementation, target.implementation);
    assert_eq!(table.platforms, target.platforms);
    assert_eq!(
        table.provider_library,
        "onnxruntime/capi/libonnxruntime_providers_cuda.so"
    );
    for r in &table.releases {
        assert_eq!(r.wheel.name, "onnxruntime-gpu");
        assert_eq!(r.cpu_wheel.name, "onnxruntime");
        assert!(r.wheel.filename.contains("cp311"), "{}", r.wheel.filename);
        assert!(!r.sass.is_empty(), "{} has no SASS", r.version);
        assert!(r.provider_size > 100_000_000, "{}", r.version);
        // The provider is in the wheel's library list, without a SONAME of its own or with one.
        assert!(r
            .wheel
            .libraries
            .iter()
            .any(|l| l.path == table.provider_library));
        let cudart = format!("libcudart.so.{}", r.cuda_major.unwrap());
        assert!(r.needed.contains(&cudart), "{}: {:?}", r.version, r.needed);
    }
}

#[test]
fn measured_1_31_1_is_cuda_13_without_ptx() {
    let r = CoverageTable::embedded().release("1.31.1").unwrap();
    assert_eq!(r.cuda_major, Some(13));
    assert_eq!(r.build_cuda.as_deref(), Some("13.0"));
    assert_eq!(
        names(&r.sass),
        ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90a", "sm_120a"]
    );
    assert!(r.ptx.is_empty());
    assert_eq!(
        r.wheel.sha256,
        "e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6"
    );
    assert_eq!(r.wheel.size, 255_560_985);
    for lib in [
        "libcublasLt.so.13",
        "libcublas.so.13",
        "libcurand.so.10",
        "libcuda.so.1",
    ] {
        assert!(r.needed.iter().any(|n| n == lib), "{lib}: {:?}", r.needed);
    }
    assert!(r.loaded_at_run_time.iter().any(|n| n == "libcudnn.so.9"));
    let extras: Vec<&str> = r
        .requirements
        .iter()
        .map(|e| e.requirement.as_str())
        .collect();
    assert!(extras.contains(&"nvidia-cudnn-cu13~=9.0"), "{extras:?}");
}

#[test]
fn measured_1_23_2_is_cuda_12_with_compute_90() {
    let r = CoverageTable::embedded().release("1.23.2").unwrap();
    assert_eq!(r.cuda_major, Some(12));
    assert_eq!(
        names(&r.sass),
        ["sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90a"]
    );
    assert_eq!(r.ptx.len(), 1);
    assert_eq!(r.ptx[0].target.to_string(), "compute_90");
    assert!(r.needed.iter().any(|n| n == "libcudnn.so.9"));
}

#[test]
fn coverage_answers_by_inspects_rules() {
    let table = CoverageTable::embedded();
    let r31 = table.release("1.31.1").unwrap();
    let driver13 = Some(CudaVersion::new(13, 0));
    assert!(matches!(
        r31.selection(cc(9, 0), driver13),
        Selection::Native { .. }
    ));
    assert!(r31.covers(cc(12, 0), driver13));
    assert!(r31.covers(cc(8, 9), driver13));
    // sm_120a is arch-specific: it does not run on 12.1, and there is no PTX to JIT.
    assert!(!r31.covers(cc(12, 1), driver13));
    assert!(!r31.covers(cc(10, 0), driver13));
    assert!(!r31.covers(cc(6, 1), driver13));

    // compute_90 JITs on newer GPUs when the driver understands its ISA.
    let r23 = table.release("1.23.2").unwrap();
    assert!(matches!(
        r23.selection(cc(12, 0), Some(CudaVersion::new(12, 8))),
        Selection::Jit { .. }
    ));
    assert!(r23.covers(cc(6, 1), Some(CudaVersion::new(12, 2))));

    // Maxwell: only 1.20 still carries sm_52 (and compute_52).
    let maxwell: Vec<&str> = table
        .releases
        .iter()
        .filter(|r| r.covers(cc(5, 2), None))
        .map(|r| r.version.as_str())
        .collect();
    assert_eq!(maxwell, ["1.20.2"]);
    assert!(matches!(
        table.release("1.20.2").unwrap().selection(cc(5, 2), None),
        Selection::Native { .. }
    ));
}

/// Which releases have native kernels (SASS) for a GPU, as the measured table says.
fn native_for(gpu: ComputeCapability) -> Vec<&'static str> {
    CoverageTable::embedded()
        .releases
        .iter()
        .filter(|r| matches!(r.selection(gpu, None), Selection::Native { .. }))
        .map(|r| r.version.as_str())
        .collect()
}

#[test]
fn blackwell_coverage_as_measured() {
    // B200 (10.0): sm_100a only in 1.27.0 and 1.28.0; 1.29 dropped it.
    assert_eq!(native_for(cc(10, 0)), ["1.27.0", "1.28.0"]);
    // RTX 50 (12.0): sm_120a from 1.27.0 on.
    assert_eq!(
        native_for(cc(12, 0)),
        ["1.27.0", "1.28.0", "1.29.0", "1.30.0", "1.31.1"]
    );
    // GB10 (12.1): no x86 release has SASS for it; 1.27.0/1.28.0 JIT their compute_120
    // (PTX ISA 9.0) on a CUDA 13.0 driver, and not on a 12.9 one.
    assert!(native_for(cc(12, 1)).is_empty());
    let r28 = CoverageTable::embedded().release("1.28.0").unwrap();
    assert!(matches!(
        r28.selection(cc(12, 1), Some(CudaVersion::new(13, 0))),
        Selection::Jit { .. }
    ));
    assert!(!r28.covers(cc(12, 1), Some(CudaVersion::new(12, 9))));
}

#[test]
fn newest_first_orders_numerically() {
    let table = CoverageTable::embedded();
    let order: Vec<&str> = table
        .newest_first()
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    assert_eq!(order[0], "1.31.1");
    let pos = |v| order.iter().position(|x| *x == v).unwrap();
    assert!(pos("1.23.2") < pos("1.22.0"));
}

#[test]
fn bad_tables_are_refused() {
    let good = gpulibs_sources::coverage::EMBEDDED_JSON;
    let mut value: serde_json::Value = serde_json::from_str(good).unwrap();

    let mut newer = value.clone();
    newer["schema_version"] = 2.into();
    let e = CoverageTable::parse(&newer.to_string()).unwrap_err();
    assert!(matches!(e, CoverageError::Schema { found: 2 }));
    assert!(e.to_string().contains("scripts/ort-coverage.py"), "{e}");

    let mut twice = value.clone();
    let first = twice["releases"][0].clone();
    twice["releases"].as_array_mut().unwrap().push(first);
    assert!(matches!(
        CoverageTable::parse(&twice.to_string()),
        Err(CoverageError::Invalid(m)) if m.contains("twice")
    ));

    value["releases"][0]["wheel"]["sha256"] = "xyz".into();
    assert!(matches!(
        CoverageTable::parse(&value.to_string()),
        Err(CoverageError::Invalid(m)) if m.contains("sha256")
    ));

    let mut bad_target: serde_json::Value = serde_json::from_str(good).unwrap();
    bad_target["releases"][0]["sass"][0] = "sm_9x".into();
    assert!(matches!(
        CoverageTable::parse(&bad_target.to_string()),
        Err(CoverageError::Json(_))
    ));
}
