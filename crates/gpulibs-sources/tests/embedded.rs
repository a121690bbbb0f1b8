//! The embedded default manifest built from the measured table, and URL resolution through a
//! recorded pip report.

use gpulibs_plan::{parse_manifest, to_toml, ComponentKind, Origin, VariantDevice};
use gpulibs_sources::embedded::{cuda_wheels, EmbeddedError};
use gpulibs_sources::{
    embedded_default, parse_report, resolve_components, CoverageTable, PipError, PipResolver,
    ResolvedWheel, WheelTarget, PIP_URL_SCHEME,
};

const REPORT: &str = include_str!("fixtures/pip-report-1.31.1.json");

/// Answers from a recorded pip report: the wheels of the report that were asked for.
struct Recorded(Vec<ResolvedWheel>);

impl PipResolver for Recorded {
    fn resolve(
        &self,
        requirements: &[String],
        _target: &WheelTarget,
    ) -> Result<Vec<ResolvedWheel>, PipError> {
        Ok(self
            .0
            .iter()
            .filter(|w| {
                requirements
                    .iter()
                    .any(|r| *r == format!("{}=={}", w.name, w.version))
            })
            .cloned()
            .collect())
    }
}

#[test]
fn one_cuda_variant_per_usable_release_and_a_cpu_variant() {
    let table = CoverageTable::embedded();
    let m = embedded_default(table);
    let names: Vec<&str> = m.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names[0], "ort-1.31.1-cuda13", "{names:?}");
    assert!(names.contains(&"ort-1.23.2-cuda12"), "{names:?}");
    assert_eq!(names.last(), Some(&"cpu"));
    // Every measured release is offered: with its own extras, or with a donor's.
    for r in &table.releases {
        let name = format!("ort-{}-cuda{}", r.version, r.cuda_major.unwrap());
        assert!(names.contains(&name.as_str()), "{name}");
        let own = !r.nvidia_wheels.is_empty() && r.extras_error.is_none();
        let (_, donor) = cuda_wheels(r, table).unwrap();
        assert_eq!(donor.is_none(), own, "{name}");
    }
    // 1.20 declares no extras: the cu12 wheels of 1.21.1 provide all it links.
    let (wheels, donor) = cuda_wheels(table.release("1.20.2").unwrap(), table).unwrap();
    assert_eq!(donor, Some("1.21.1"));
    assert!(wheels.iter().any(|w| w.name == "nvidia-cudnn-cu12"));
    // 1.27.0's extras name placeholder distributions: 1.28.0's wheels serve it.
    let r27 = table.release("1.27.0").unwrap();
    assert!(r27
        .extras_error
        .as_deref()
        .unwrap()
        .contains("nvidia-cuda-nvrtc-cu13"));
    assert_eq!(cuda_wheels(r27, table).unwrap().1, Some("1.28.0"));
    let v27 = m
        .variants
        .iter()
        .find(|v| v.name == "ort-1.27.0-cuda13")
        .unwrap();
    assert!(v27.description.as_deref().unwrap().contains("1.28.0"));
    let cpu = m.variants.last().unwrap();
    assert_eq!(cpu.device, VariantDevice::Cpu);
    assert_eq!(cpu.components, ["onnxruntime-1.31.1"]);
    assert!(m.variants[..m.variants.len() - 1]
        .iter()
        .all(|v| v.device == VariantDevice::Cuda));
}

#[test]
fn every_need_of_a_cuda_variant_is_provided_inside_it_or_by_the_driver() {
    let m = embedded_default(CoverageTable::embedded());
    for v in m
        .variants
        .iter()
        .filter(|v| v.device == VariantDevice::Cuda)
    {
        let comps: Vec<_> = v
            .components
            .iter()
            .map(|id| m.components.iter().find(|c| &c.id == id).unwrap())
            .collect();
        let provided: Vec<&str> = comps
            .iter()
            .flat_map(|c| c.provides.iter().map(String::as_str))
            .collect();
        for c in &comps {
            for need in &c.needs {
                assert!(
                    need == "libcuda.so.1" || provided.contains(&need.as_str()),
                    "{}: {} needs {need}, which nothing in it provides",
                    v.name,
                    c.id
                );
            }
        }
        assert_eq!(comps[0].kind, ComponentKind::Onnxruntime);
        for kind in [
            ComponentKind::CudaRuntime,
            ComponentKind::Cublas,
            ComponentKind::Cudnn,
        ] {
            assert!(
                comps.iter().any(|c| c.kind == kind),
                "{}: no {kind:?}",
                v.name
            );
        }
    }
}

#[test]
fn ort_1_31_1_component_carries_the_measurements() {
    let m = embedded_default(CoverageTable::embedded());
    let ort = m
        .components
        .iter()
        .find(|c| c.id == "onnxruntime-gpu-1.31.1")
        .unwrap();
    assert_eq!(ort.origin, Origin::Pypi);
    assert_eq!(
        ort.archive.url,
        format!("{PIP_URL_SCHEME}onnxruntime-gpu==1.31.1")
    );
    assert_eq!(ort.archive.size, 255_560_985);
    assert_eq!(ort.cuda.map(|c| c.to_string()).as_deref(), Some("13.0"));
    let cov = ort.coverage.as_ref().unwrap();
    assert_eq!(cov.sass.len(), 6);
    for need in [
        "libcudart.so.13",
        "libcublasLt.so.13",
        "libcudnn.so.9",
        "libcufft.so.12",
    ] {
        assert!(
            ort.needs.iter().any(|n| n == need),
            "{need}: {:?}",
            ort.needs
        );
    }
    // Names loaded at run time that no CUDA wheel of the release provides are not needs.
    assert!(
        !ort.needs.iter().any(|n| n == "libcudart.so.12"),
        "{:?}",
        ort.needs
    );
    assert!(
        ort.provides.iter().any(|p| p == "libonnxruntime.so.1"),
        "{:?}",
        ort.provides
    );
    let runtime = ort
        .files
        .iter()
        .find(|f| f.path.starts_with("onnxruntime/capi/libonnxruntime.so."))
        .unwrap();
    assert_eq!(runtime.soname_links, ["libonnxruntime.so.1"]);

    let cudart = m
        .components
        .iter()
        .find(|c| {
            c.kind == ComponentKind::CudaRuntime
                && c.provides.iter().any(|p| p == "libcudart.so.13")
        })
        .unwrap();
    assert_eq!(cudart.cuda.unwrap().major, 13);
}

#[test]
fn manifest_round_trips_through_the_plan_crates_reader() {
    let m = embedded_default(CoverageTable::embedded());
    let text = to_toml(&m);
    let back = parse_manifest(&text).unwrap();
    assert_eq!(back, m);
}

#[test]
fn chosen_components_get_pips_urls() {
    let mut m = embedded_default(CoverageTable::embedded());
    let variant = m
        .variants
        .iter()
        .find(|v| v.name == "ort-1.31.1-cuda13")
        .unwrap()
        .clone();
    let ids: Vec<&str> = variant.components.iter().map(String::as_str).collect();
    let recorded = Recorded(parse_report(REPORT).unwrap());
    let resolved = resolve_components(&mut m, &ids, &recorded, &WheelTarget::default()).unwrap();
    assert_eq!(resolved.len(), ids.len());
    for (id, wheel) in ids.iter().zip(&resolved) {
        let c = m.components.iter().find(|c| c.id == *id).unwrap();
        assert!(c.archive.url.starts_with("https://index.invalid/"), "{id}");
        assert!(c.archive.url.ends_with(&wheel.filename));
        assert_eq!(wheel.size, Some(c.archive.size));
    }
    // Components not asked for keep their placeholder.
    let other = m
        .components
        .iter()
        .find(|c| c.id == "onnxruntime-gpu-1.23.2")
        .unwrap();
    assert!(other.archive.url.starts_with(PIP_URL_SCHEME));
}

#[test]
fn a_different_file_from_the_index_is_refused() {
    let mut m = embedded_default(CoverageTable::embedded());
    let mut wheels = parse_report(REPORT).unwrap();
    wheels[0].sha256 = Some("0".repeat(64));
    let e = resolve_components(
        &mut m,
        &["onnxruntime-gpu-1.31.1"],
        &Recorded(wheels),
        &WheelTarget::default(),
    )
    .unwrap_err();
    assert!(matches!(e, EmbeddedError::HashMismatch { .. }), "{e:?}");
    // The step is the hint, not part of the message.
    let hint = gpulibs_hint::Hint::hint(&e).expect("a step");
    assert!(hint.contains("--manifest"), "{hint}");
    assert!(!e.to_string().contains("--manifest"), "{e}");

    let e = resolve_components(
        &mut m,
        &["onnxruntime-gpu-1.23.2"],
        &Recorded(parse_report(REPORT).unwrap()),
        &WheelTarget::default(),
    )
    .unwrap_err();
    assert!(matches!(e, EmbeddedError::NotReturned { .. }), "{e:?}");

    let e = resolve_components(
        &mut m,
        &["no-such-component"],
        &Recorded(Vec::new()),
        &WheelTarget::default(),
    )
    .unwrap_err();
    assert!(matches!(e, EmbeddedError::UnknownComponent(_)), "{e:?}");
}

#[test]
fn the_plan_crates_validation_finds_nothing() {
    use gpulibs_plan::{default_system_libraries, validate, SystemInventory};
    let m = embedded_default(CoverageTable::embedded());
    // Releases install the same wheel paths (`onnxruntime/capi/...`), but they are alternative
    // variants, never installed together.
    let problems = validate(&m, &default_system_libraries(), &SystemInventory::default());
    assert!(problems.is_empty(), "{problems:#?}");
}

/// What the main job plans with no manifest, for the machines the seed handled and those it
/// got wrong: the newest official release that runs, and why.
#[test]
fn embedded_default_plans_the_newest_release_that_runs() {
    use gpulibs_plan::{plan, Host, Outcome, Policy, SystemInventory};
    let m = embedded_default(CoverageTable::embedded());
    let cases: [(&[&str], &str, &str, &str); 9] = [
        // (GPUs, driver version, driver CUDA, chosen variant)
        (&["9.0"], "580.159.04", "13.0", "ort-1.31.1-cuda13"),
        (&["12.0"], "580.159.04", "13.0", "ort-1.31.1-cuda13"),
        (&["8.6"], "580.159.04", "13.0", "ort-1.31.1-cuda13"),
        // A CUDA 12 driver: the newest CUDA 12 build.
        (&["8.6"], "550.54.14", "12.4", "ort-1.26.0-cuda12"),
        // Maxwell: only 1.20.2 carries sm_52.
        (&["5.2"], "550.54.14", "12.4", "ort-1.20.2-cuda12"),
        // B200: sm_100a exists only in 1.27.0 and 1.28.0.
        (&["10.0"], "580.159.04", "13.0", "ort-1.28.0-cuda13"),
        // DGX Spark: no x86 release has sm_121 SASS; compute_120 PTX JITs.
        (&["12.1"], "580.159.04", "13.0", "ort-1.28.0-cuda13"),
        // Volta on a CUDA 12 driver.
        (&["7.0"], "550.54.14", "12.4", "ort-1.26.0-cuda12"),
        // Two generations: sm_86 and sm_61 are both covered by the CUDA 12 builds.
        (&["8.6", "6.1"], "550.54.14", "12.4", "ort-1.26.0-cuda12"),
    ];
    for (gpus, driver, cuda, want) in cases {
        let ccs: Vec<_> = gpus.iter().map(|g| g.parse().unwrap()).collect();
        let host = Host::synthetic(
            &ccs,
            Some(driver.parse().unwrap()),
            Some(cuda.parse().unwrap()),
        );
        let p = plan(&host, &m, &SystemInventory::default(), &Policy::default());
        let chosen = p.chosen.as_ref().map(|c| c.variant.as_str());
        assert_eq!(chosen, Some(want), "{gpus:?} on {driver}: {:#?}", p.lines());
        assert_eq!(p.outcome, Outcome::Gpu, "{gpus:?}");
    }
    // No GPU: the CPU runtime, stated as such.
    let host = Host::synthetic(&[], None, None);
    let p = plan(&host, &m, &SystemInventory::default(), &Policy::default());
    assert!(matches!(p.outcome, Outcome::Cpu(_)), "{:?}", p.outcome);
    assert_eq!(p.chosen.as_ref().map(|c| c.variant.as_str()), Some("cpu"));
}

/// A wheel is recognised by its file name (PEP 427, name as PEP 503 compares it), and only a
/// wheel of that very release.
#[test]
fn wheels_are_recognised_by_file_name() {
    use gpulibs_sources::is_wheel_of;
    let rows = [
        (
            "onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
            "onnxruntime-gpu",
            "1.31.1",
            true,
        ),
        (
            "onnxruntime_gpu-1.31.1-1-cp311-cp311-manylinux_2_28_x86_64.whl",
            "onnxruntime-gpu",
            "1.31.1",
            true,
        ),
        (
            "Onnxruntime.GPU-1.31.1-cp311-cp311-linux_x86_64.whl",
            "onnxruntime-gpu",
            "1.31.1",
            true,
        ),
        (
            "onnxruntime_gpu-1.31.0-cp311-cp311-manylinux_2_28_x86_64.whl",
            "onnxruntime-gpu",
            "1.31.1",
            false,
        ),
        (
            "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
            "onnxruntime-gpu",
            "1.31.1",
            false,
        ),
        (
            "onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl.partial",
            "onnxruntime-gpu",
            "1.31.1",
            false,
        ),
        (
            "onnxruntime_gpu-1.31.1.whl",
            "onnxruntime-gpu",
            "1.31.1",
            false,
        ),
        (
            "e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6",
            "onnxruntime-gpu",
            "1.31.1",
            false,
        ),
    ];
    for (file, name, version, want) in rows {
        assert_eq!(
            is_wheel_of(file, name, version),
            want,
            "{file} {name}=={version}"
        );
    }
}

/// For an offline install, each `pip:` component of the embedded default is pointed at its
/// wheel in the directory by file name; one without a file there keeps its placeholder (and is
/// then looked for by sha256 alone).
#[test]
fn offline_wheels_are_pinned_by_file_name() {
    let mut m = embedded_default(CoverageTable::embedded());
    let wheels = parse_report(REPORT).unwrap();
    let ort = wheels.iter().find(|w| w.name == "onnxruntime-gpu").unwrap();
    let files = vec![
        "manifest.toml".to_string(),
        ort.filename.clone(),
        "onnxruntime_gpu-1.31.0-cp311-cp311-manylinux_2_28_x86_64.whl.txt".to_string(),
    ];
    let pinned = gpulibs_sources::pin_offline_wheels(&mut m, &files);
    assert_eq!(
        pinned,
        [("onnxruntime-gpu-1.31.1".to_string(), ort.filename.clone())]
    );
    let c = m
        .components
        .iter()
        .find(|c| c.id == "onnxruntime-gpu-1.31.1")
        .unwrap();
    assert_eq!(c.archive.url, ort.filename);
    assert_eq!(c.archive.sha256, ort.sha256.clone().unwrap());
    let others = m
        .components
        .iter()
        .filter(|c| c.id != "onnxruntime-gpu-1.31.1" && c.origin == Origin::Pypi);
    for c in others {
        assert!(
            c.archive.url.starts_with(PIP_URL_SCHEME),
            "{}",
            c.archive.url
        );
    }
}

#[test]
fn each_nvidia_wheel_carries_the_range_its_dependents_state() {
    // (component, versions, a dependent named in versions_from, built_with)
    let m = embedded_default(CoverageTable::embedded());
    let cases: [(&str, Option<&str>, &str, Option<&str>); 8] = [
        (
            "nvidia-cudnn-cu13-9.28.1.4",
            Some("~=9.0"),
            "onnxruntime-gpu 1.31.1 Requires-Dist nvidia-cudnn-cu13~=9.0",
            None,
        ),
        (
            "nvidia-cuda-runtime-13.5.37",
            Some("~=13.0"),
            "onnxruntime-gpu 1.31.1 Requires-Dist nvidia-cuda-runtime~=13.0",
            Some("13.0"),
        ),
        (
            "nvidia-cuda-nvrtc-13.5.37",
            Some("~=13.0"),
            "nvidia-cublas 13.10.0.20 Requires-Dist nvidia-cuda-nvrtc",
            Some("13.0"),
        ),
        (
            "nvidia-cufft-12.5.0.14",
            Some("~=12.0"),
            "onnxruntime-gpu 1.31.1 Requires-Dist nvidia-cufft~=12.0",
            None,
        ),
        (
            "nvidia-curand-10.4.5.25",
            Some("~=10.0"),
            "onnxruntime-gpu 1.31.1 Requires-Dist nvidia-curand~=10.0",
            None,
        ),
        // No version range from anyone: cuDNN asks for `nvidia-cublas`, cuFFT for
        // `nvidia-nvjitlink`, without a specifier.
        (
            "nvidia-cublas-13.10.0.20",
            Some(""),
            "nvidia-cudnn-cu13 9.28.1.4 Requires-Dist nvidia-cublas",
            None,
        ),
        (
            "nvidia-nvjitlink-13.5.37",
            Some(""),
            "nvidia-cufft 12.5.0.14 Requires-Dist nvidia-nvjitlink",
            None,
        ),
        // CUDA 12: the newest cu12 release's extras.
        (
            "nvidia-cudnn-cu12-9.28.0.42",
            Some("~=9.0"),
            "Requires-Dist nvidia-cudnn-cu12~=9.0",
            None,
        ),
    ];
    for (id, versions, from, built) in cases {
        let c = m
            .components
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("{id}"));
        assert_eq!(c.reuse.versions.as_deref(), versions, "{id}");
        let versions_from = c.reuse.versions_from.as_deref().unwrap_or_default();
        assert!(versions_from.contains(from), "{id}: {versions_from}");
        assert_eq!(c.reuse.built_with.as_deref(), built, "{id}");
        assert!(c.reuse.sonames.is_empty() && !c.reuse.never, "{id}");
    }
    // Components with kernels (ONNX Runtime) have nothing to say about reuse.
    let ort = m
        .components
        .iter()
        .find(|c| c.id == "onnxruntime-gpu-1.31.1")
        .unwrap();
    assert!(ort.reuse.is_empty());
    // And the manifest, written and read back, keeps the ranges (the schema's `reuse` table).
    let again = parse_manifest(&to_toml(&m)).unwrap();
    assert_eq!(again, m);
}
