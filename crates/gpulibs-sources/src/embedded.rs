//! The manifest used when the user gives none: official ONNX Runtime from PyPI.
//!
//! [`embedded_default`] turns the measured table ([`CoverageTable`]) into a
//! [`gpulibs_plan::Manifest`]:
//!
//! - one `cuda` variant per measured release, named `ort-<version>-cuda<major>`, holding the
//!   `onnxruntime-gpu` wheel and the `nvidia-*` wheels its `cuda`/`cudnn` extras resolved to when
//!   measured — or, for a release without usable extras (1.20 declares none, 1.27.0's do not
//!   resolve), those of the oldest release of the same CUDA major whose wheels provide every
//!   CUDA library it links ([`cuda_wheels`]);
//! - one `cpu` variant: the CPU `onnxruntime` wheel of the newest release.
//!
//! Each `nvidia-*` component states, in `[components.reuse]` ([`reuse_spec`]), what a library
//! already on the machine must satisfy to serve it: the `Requires-Dist` specifiers of the
//! wheels that depend on it (ONNX Runtime's extras, the other NVIDIA wheels), and the CUDA
//! version ORT was built with for the runtime and NVRTC (`docs/reuse.md`).
//!
//! Every component is pinned to the exact wheel that was measured (`name==version`, sha256 and
//! size from the table), so what is planned is what was inspected. Its URL is not known until
//! pip resolves it against the user's index: until then [`Artifact::url`] holds
//! `pip:<name>==<version>` ([`PIP_URL_SCHEME`]). [`resolve_components`] asks a [`PipResolver`] for
//! the components a plan chose — only those, since pip may have to download a wheel to read its
//! metadata — and replaces the placeholder by the index's URL after checking that the index
//! serves the very file that was measured (same file name and sha256).

use std::collections::BTreeMap;

use gpulibs_detect::CudaVersion;
use gpulibs_plan::reuse::split_requirement;
use gpulibs_plan::{
    ArchiveFormat, Artifact, Component, ComponentKind, FileEntry, Manifest, Origin, ReuseSpec,
    Variant, VariantDevice,
};

use crate::coverage::{CoverageTable, OrtRelease, WheelFile};
use crate::pypi::{normalize_name, PipError, PipResolver, ResolvedWheel, WheelTarget};
use crate::system::library_family;

/// The URL scheme of a component whose URL pip has not resolved yet: `pip:onnxruntime-gpu==1.31.1`.
pub const PIP_URL_SCHEME: &str = "pip:";

/// The `app` of the embedded manifest.
pub const EMBEDDED_APP: &str = "onnxruntime";

/// Why the embedded default could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("no component `{0}` in the manifest")]
    UnknownComponent(String),
    #[error("component `{0}` does not come from PyPI (its origin is not `pypi`)")]
    NotPypi(String),
    #[error(transparent)]
    Pip(#[from] PipError),
    #[error("pip did not return {requirement}; it returned: {returned}")]
    NotReturned {
        requirement: String,
        returned: String,
    },
    #[error(
        "the index serves {filename} with sha256 {served}, but gpulibs measured {expected}: the \
         mirror or index serves other bytes under that name"
    )]
    HashMismatch {
        filename: String,
        served: String,
        expected: String,
    },
    #[error(
        "the index serves {served} for {requirement}, but gpulibs measured {expected}: the index \
         offers a different build"
    )]
    OtherFile {
        requirement: String,
        served: String,
        expected: String,
    },
}

impl gpulibs_hint::Hint for EmbeddedError {
    fn hint(&self) -> Option<String> {
        match self {
            // Transparent: pip's own error is not a separate link of the chain.
            EmbeddedError::Pip(e) => e.hint(),
            EmbeddedError::HashMismatch { .. } | EmbeddedError::OtherFile { .. } => Some(
                "point pip at the official index (`pip config list` shows the one it uses), or \
                 pass --manifest"
                    .into(),
            ),
            EmbeddedError::NotReturned { .. } => {
                Some("check the index pip uses (`pip config list`), or pass --manifest".into())
            }
            EmbeddedError::UnknownComponent(_) | EmbeddedError::NotPypi(_) => None,
        }
    }
}

/// The id of a wheel's component: `onnxruntime-gpu-1.31.1`, `nvidia-cublas-13.10.0.20`.
pub fn component_id(wheel: &WheelFile) -> String {
    format!("{}-{}", normalize_name(&wheel.name), wheel.version)
}

/// The variant name of a release: `ort-1.31.1-cuda13`.
pub fn variant_name(release: &OrtRelease) -> String {
    match release.cuda_major {
        Some(m) => format!("ort-{}-cuda{m}", release.version),
        None => format!("ort-{}", release.version),
    }
}

/// The manifest of official ONNX Runtime wheels; see the module doc.
pub fn embedded_default(table: &CoverageTable) -> Manifest {
    let mut components: BTreeMap<String, Component> = BTreeMap::new();
    let mut variants = Vec::new();
    let newest_first = table.newest_first();

    for release in &newest_first {
        let Some((nvidia_wheels, donor)) = cuda_wheels(release, table) else {
            // Nothing in the table provides what it links: its coverage stays in the table for
            // inspection, but it cannot be offered.
            continue;
        };
        let provided_by_closure: Vec<&str> =
            nvidia_wheels.iter().flat_map(|w| w.sonames()).collect();
        let mut ort = wheel_component(&release.wheel, ComponentKind::Onnxruntime);
        ort.cuda = release
            .build_cuda
            .as_deref()
            .and_then(|c| c.parse().ok())
            .or_else(|| release.cuda());
        ort.coverage = Some(release.coverage());
        // Linked CUDA libraries, the driver, and the run-time names its CUDA wheels provide
        // (cuDNN and cuFFT are `dlopen`ed by 1.31, not linked).
        let mut needs: Vec<String> = release
            .needed
            .iter()
            .filter(|n| !ort.provides.contains(n))
            .cloned()
            .collect();
        needs.extend(
            release
                .loaded_at_run_time
                .iter()
                .filter(|n| provided_by_closure.contains(&n.as_str()))
                .cloned(),
        );
        dedup(&mut needs);
        ort.needs = needs;

        let mut ids = vec![ort.id.clone()];
        components.entry(ort.id.clone()).or_insert(ort);
        for wheel in nvidia_wheels {
            let mut c = wheel_component(wheel, nvidia_kind(&wheel.name));
            c.cuda = nvidia_cuda(wheel, release);
            let mut needs: Vec<String> = wheel
                .libraries
                .iter()
                .flat_map(|l| &l.needed)
                .filter(|n| is_cuda_soname(n) && !c.provides.contains(n))
                .cloned()
                .collect();
            dedup(&mut needs);
            c.needs = needs;
            c.reuse = reuse_spec(wheel, release, nvidia_wheels);
            ids.push(c.id.clone());
            components.entry(c.id.clone()).or_insert(c);
        }
        variants.push(Variant {
            name: variant_name(release),
            components: ids,
            description: Some(match donor {
                None => format!(
                    "onnxruntime-gpu {} (CUDA {}) with the NVIDIA wheels of its cuda and cudnn \
                     extras",
                    release.version,
                    release.cuda_major.unwrap_or_default()
                ),
                Some(donor) => format!(
                    "onnxruntime-gpu {} (CUDA {}) with the NVIDIA wheels of {donor}'s extras, \
                     which provide every CUDA library it links ({})",
                    release.version,
                    release.cuda_major.unwrap_or_default(),
                    match &release.extras_error {
                        Some(e) => format!("its own extras do not resolve: {e}"),
                        None => "it declares no extras".into(),
                    }
                ),
            }),
            device: VariantDevice::Cuda,
            min_gpu_memory_bytes: None,
        });
    }

    if let Some(newest) = newest_first.first() {
        let cpu = wheel_component(&newest.cpu_wheel, ComponentKind::Onnxruntime);
        variants.push(Variant {
            name: "cpu".into(),
            components: vec![cpu.id.clone()],
            description: Some(format!(
                "onnxruntime {} for the CPU",
                newest.cpu_wheel.version
            )),
            device: VariantDevice::Cpu,
            min_gpu_memory_bytes: None,
        });
        components.entry(cpu.id.clone()).or_insert(cpu);
    }

    Manifest {
        schema_version: gpulibs_plan::SCHEMA_VERSION,
        app: EMBEDDED_APP.into(),
        version: table.measured.clone(),
        description: Some(format!(
            "official ONNX Runtime wheels from the Python package index, pinned to the releases \
             gpulibs measured on {} (scripts/ort-coverage.py)",
            table.measured
        )),
        components: components.into_values().collect(),
        variants,
        verify: Default::default(),
    }
}

/// The `nvidia-*` wheels a release runs with, and the release they come from when not its own.
///
/// A release's own extras are used when they resolved. Otherwise (no extras before 1.21; 1.27.0
/// names `nvidia-*-cu13` distributions that exist only as placeholders) the wheels of the oldest
/// release of the same CUDA major whose extras resolved are used, if they provide every CUDA
/// library the release's provider links (`DT_NEEDED`, the driver's `libcuda.so.1` aside). The
/// check is by SONAME, over measured data; `None` when no release qualifies.
pub fn cuda_wheels<'t>(
    release: &'t OrtRelease,
    table: &'t CoverageTable,
) -> Option<(&'t [WheelFile], Option<&'t str>)> {
    if !release.nvidia_wheels.is_empty() && release.extras_error.is_none() {
        return Some((&release.nvidia_wheels, None));
    }
    let mut donors: Vec<&OrtRelease> = table
        .releases
        .iter()
        .filter(|d| {
            d.cuda_major == release.cuda_major
                && !d.nvidia_wheels.is_empty()
                && d.extras_error.is_none()
        })
        .collect();
    donors.sort_by_key(|d| crate::coverage::version_key(&d.version));
    donors.into_iter().find_map(|d| {
        let provided: Vec<&str> = d.nvidia_wheels.iter().flat_map(|w| w.sonames()).collect();
        let covers = release
            .needed
            .iter()
            .filter(|n| n.as_str() != "libcuda.so.1")
            .all(|n| provided.contains(&n.as_str()));
        covers.then_some((d.nvidia_wheels.as_slice(), Some(d.version.as_str())))
    })
}

/// What a library on the machine must satisfy to serve an `nvidia-*` wheel of `release`: the
/// `Requires-Dist` specifiers of every wheel that depends on it (the `onnxruntime-gpu` wheel's
/// `cuda`/`cudnn` extras, and the other NVIDIA wheels of the closure, e.g. cuDNN's
/// `nvidia-cublas`), all of which must hold; and, for the toolkit-versioned runtime and NVRTC,
/// the CUDA version ONNX Runtime was built with (`build_cuda`). `versions` is left out when
/// nothing depends on the wheel by name (a release whose extras name other distributions, such
/// as 1.27.0's placeholders, or 1.20's none). See `docs/reuse.md`.
pub fn reuse_spec(wheel: &WheelFile, release: &OrtRelease, closure: &[WheelFile]) -> ReuseSpec {
    let me = normalize_name(&wheel.name);
    let mut clauses: Vec<String> = Vec::new();
    let mut from: Vec<String> = Vec::new();
    let mut take = |who: String, line: &str| {
        let Ok((name, spec)) = split_requirement(line) else {
            return;
        };
        if normalize_name(&name) != me {
            return;
        }
        from.push(format!("{who} Requires-Dist {}", line.trim()));
        for c in &spec.clauses {
            let c = c.to_string();
            if !clauses.contains(&c) {
                clauses.push(c);
            }
        }
    };
    for r in &release.requirements {
        take(
            format!("{} {}", release.wheel.name, release.version),
            &r.requirement,
        );
    }
    for other in closure.iter().filter(|w| normalize_name(&w.name) != me) {
        for line in &other.requires_dist {
            take(format!("{} {}", other.name, other.version), line);
        }
    }
    let toolkit_versioned = matches!(
        nvidia_kind(&wheel.name),
        ComponentKind::CudaRuntime | ComponentKind::Nvrtc
    );
    let built_with = release
        .build_cuda
        .clone()
        .filter(|b| toolkit_versioned && b.split('.').next() == wheel.version.split('.').next());
    ReuseSpec {
        sonames: Vec::new(),
        versions: (!from.is_empty()).then(|| clauses.join(",")),
        versions_from: (!from.is_empty()).then(|| from.join("; ")),
        built_with,
        never: false,
    }
}

fn wheel_component(wheel: &WheelFile, kind: ComponentKind) -> Component {
    let files: Vec<FileEntry> = wheel
        .libraries
        .iter()
        .map(|l| {
            let file_name = l.path.rsplit('/').next().unwrap_or(&l.path);
            FileEntry {
                path: l.path.clone(),
                sha256: l.sha256.clone(),
                size: l.size,
                soname_links: l
                    .soname
                    .iter()
                    .filter(|s| s.as_str() != file_name)
                    .cloned()
                    .collect(),
            }
        })
        .collect();
    let mut provides: Vec<String> = wheel.sonames().map(str::to_owned).collect();
    dedup(&mut provides);
    Component {
        id: component_id(wheel),
        kind,
        version: wheel.version.clone(),
        origin: Origin::Pypi,
        archive: Artifact {
            url: format!("{PIP_URL_SCHEME}{}", wheel.pinned_requirement()),
            mirrors: Vec::new(),
            sha256: wheel.sha256.clone(),
            size: wheel.size,
            unpacked_size: Some(wheel.unpacked_size),
            format: ArchiveFormat::Wheel,
        },
        files,
        cuda: None,
        min_driver: None,
        coverage: None,
        provides,
        needs: Vec::new(),
        reuse: Default::default(),
    }
}

/// What an `nvidia-*` distribution packages, by its name.
pub fn nvidia_kind(name: &str) -> ComponentKind {
    let n = normalize_name(name);
    let starts = |p: &str| n == p || n.starts_with(&format!("{p}-"));
    if starts("nvidia-cuda-runtime") {
        ComponentKind::CudaRuntime
    } else if starts("nvidia-cublas") {
        ComponentKind::Cublas
    } else if starts("nvidia-cudnn") {
        ComponentKind::Cudnn
    } else if starts("nvidia-cufft") {
        ComponentKind::Cufft
    } else if starts("nvidia-curand") {
        ComponentKind::Curand
    } else if starts("nvidia-cuda-nvrtc") {
        ComponentKind::Nvrtc
    } else {
        ComponentKind::Other
    }
}

/// The CUDA version of an `nvidia-*` wheel: the toolkit's own packages (runtime, NVRTC,
/// nvJitLink) are versioned like the toolkit (`13.5.37` → 13.5); the libraries with versions of
/// their own (cuBLAS 13.10, cuDNN 9.28) need the release's CUDA major (`13.0`).
fn nvidia_cuda(wheel: &WheelFile, release: &OrtRelease) -> Option<CudaVersion> {
    let n = normalize_name(&wheel.name);
    let toolkit_versioned = [
        "nvidia-cuda-runtime",
        "nvidia-cuda-nvrtc",
        "nvidia-nvjitlink",
    ]
    .iter()
    .any(|p| n == *p || n.starts_with(&format!("{p}-")));
    if toolkit_versioned {
        let mut parts = wheel.version.split('.');
        if let (Some(Ok(major)), Some(Ok(minor))) = (
            parts.next().map(str::parse::<u32>),
            parts.next().map(str::parse::<u32>),
        ) {
            if Some(major) == release.cuda_major {
                return Some(CudaVersion::new(major, minor));
            }
        }
    }
    release.cuda()
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

/// Resolves the URLs of the given PyPI components through pip (one pip run for all of them) and
/// writes them into `manifest`. Each must be served as the very file that was measured: same
/// file name and sha256. Returns what pip answered, in the order of `ids`.
pub fn resolve_components(
    manifest: &mut Manifest,
    ids: &[&str],
    resolver: &dyn PipResolver,
    target: &WheelTarget,
) -> Result<Vec<ResolvedWheel>, EmbeddedError> {
    let mut wanted = Vec::new(); // (index in components, requirement, expected filename)
    for id in ids {
        let (index, c) = manifest
            .components
            .iter()
            .enumerate()
            .find(|(_, c)| c.id == *id)
            .ok_or_else(|| EmbeddedError::UnknownComponent((*id).to_owned()))?;
        let requirement = c
            .archive
            .url
            .strip_prefix(PIP_URL_SCHEME)
            .filter(|_| c.origin == Origin::Pypi)
            .ok_or_else(|| EmbeddedError::NotPypi((*id).to_owned()))?
            .to_owned();
        wanted.push((index, requirement));
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let requirements: Vec<String> = wanted.iter().map(|w| w.1.clone()).collect();
    let answered = resolver.resolve(&requirements, target)?;

    let mut out = Vec::new();
    for (index, requirement) in wanted {
        let (name, version) = requirement
            .split_once("==")
            .unwrap_or((requirement.as_str(), ""));
        let Some(wheel) = answered
            .iter()
            .find(|w| normalize_name(&w.name) == normalize_name(name) && w.version == version)
        else {
            return Err(EmbeddedError::NotReturned {
                requirement,
                returned: answered
                    .iter()
                    .map(|w| format!("{}=={}", w.name, w.version))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let component = &mut manifest.components[index];
        match &wheel.sha256 {
            Some(sha) if *sha == component.archive.sha256 => {}
            Some(sha) => {
                return Err(EmbeddedError::HashMismatch {
                    filename: wheel.filename.clone(),
                    served: sha.clone(),
                    expected: component.archive.sha256.clone(),
                })
            }
            None => {
                return Err(EmbeddedError::OtherFile {
                    requirement,
                    served: format!("{} without a sha256", wheel.filename),
                    expected: component.archive.sha256.clone(),
                })
            }
        }
        component.archive.url = wheel.url.clone();
        let mut resolved = wheel.clone();
        resolved.size = Some(component.archive.size);
        out.push(resolved);
    }
    Ok(out)
}

/// Whether `filename` is a wheel of `name` at `version` by its file name (PEP 427:
/// `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, the name compared as PEP 503
/// does). Which of several builds is the right one is not decided here: the sha256 is.
pub fn is_wheel_of(filename: &str, name: &str, version: &str) -> bool {
    let Some(stem) = filename.strip_suffix(".whl") else {
        return false;
    };
    let parts: Vec<&str> = stem.split('-').collect();
    (5..=6).contains(&parts.len())
        && normalize_name(parts[0]) == normalize_name(name)
        && parts[1] == version
}

/// For an install from an offline directory holding `files` (their names): every PyPI
/// component whose URL pip has not resolved (`pip:name==version`) gets the file name of its
/// wheel there as its URL, so the download finds it under its own name (as `gpulibs mirror`
/// stores it; a file named by its sha256 is still found). Several builds of one release: all of
/// them, first as URL, the others as mirrors, in name order. Returns (component id, file
/// name) for each component pinned.
pub fn pin_offline_wheels(manifest: &mut Manifest, files: &[String]) -> Vec<(String, String)> {
    let mut sorted: Vec<&String> = files.iter().collect();
    sorted.sort();
    let mut pinned = Vec::new();
    for c in &mut manifest.components {
        if c.origin != Origin::Pypi {
            continue;
        }
        let Some(requirement) = c.archive.url.strip_prefix(PIP_URL_SCHEME) else {
            continue;
        };
        let Some((name, version)) = requirement.split_once("==") else {
            continue;
        };
        let found: Vec<String> = sorted
            .iter()
            .filter(|f| is_wheel_of(f, name, version))
            .map(|f| (*f).clone())
            .collect();
        if let Some((first, rest)) = found.split_first() {
            pinned.push((c.id.clone(), first.clone()));
            c.archive.url = first.clone();
            c.archive.mirrors = rest.to_vec();
        }
    }
    pinned
}

/// Whether a SONAME belongs to the CUDA libraries the system search knows, or is the driver.
pub fn is_cuda_soname(name: &str) -> bool {
    name == "libcuda.so.1" || library_family(name).is_some()
}
