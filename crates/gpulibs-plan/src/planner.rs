//! The planner: a pure function from (host, manifest, system inventory, policy) to a [`Plan`]
//! that says which variant to install, where each component and each needed library comes from,
//! what it costs in bytes, and why every other variant was not chosen.
//!
//! Kernel rules are inspect's ([`select_entry`] over a component's declared coverage, as if the
//! component were one fatbin container); driver rules are [`crate::driver`]'s.
//!
//! Ranking of variants that run (first difference decides):
//! 1. covers every target GPU;
//! 2. covers the best GPU (highest compute capability, then most memory, then lowest index);
//! 3. covers more GPUs;
//! 4. fewer GPUs that need PTX JIT (native SASS over JIT);
//! 5. more GPUs with SASS for their exact compute capability (`sm_90`/`sm_90a` on 9.0 over
//!    `sm_80` on 8.6);
//! 6. newer kernels: the sum over covered GPUs of the compute capability of the code loaded;
//! 7. newer ONNX Runtime release (the version of its `onnxruntime` component);
//! 8. newer CUDA runtime;
//! 9. smaller download;
//! 10. name, so the result never depends on the manifest's order.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use gpulibs_detect::{ComputeCapability, CudaVersion, Detection};
use gpulibs_inspect::{select_entry, Compression, KernelTarget, PtxIsa, Selection};
use serde::Serialize;

use crate::driver::{self, CompressionSupport, DriverVersion, RuntimeSupport};
use crate::manifest::{
    Component, ComponentKind, Manifest, Origin, SystemInventory, Variant, VariantDevice,
};
use crate::reuse::{
    check_version, nvidia_rule, nvrtc_builtins_for, parse_found_version, soname_major, Constraint,
    Specifier,
};
use crate::signature::Trust;
use crate::validate::default_system_libraries;

// ---------------------------------------------------------------------------------------------
// Inputs.

/// The machine a plan is for: the GPUs CUDA would see (after `CUDA_VISIBLE_DEVICES`), the
/// driver, and the free space of the install root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    pub gpus: Vec<HostGpu>,
    pub driver_version: Option<DriverVersion>,
    /// The highest CUDA version the driver runs, as it reports it.
    pub driver_cuda: Option<CudaVersion>,
    /// Free bytes of the file system holding the install root; `None`: not checked.
    pub free_disk_bytes: Option<u64>,
    /// Why there is no usable GPU, in words, when detection said so.
    pub no_gpu_reason: Option<String>,
}

/// One GPU a plan targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostGpu {
    /// CUDA ordinal.
    pub index: u32,
    pub name: Option<String>,
    pub compute_capability: ComputeCapability,
    pub memory_free_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
}

impl Host {
    /// The host detection found. Only usable GPUs (known compute capability) are targets;
    /// detection already applied `CUDA_VISIBLE_DEVICES`, so hidden GPUs are not planned for.
    pub fn from_detection(detection: &Detection, free_disk_bytes: Option<u64>) -> Self {
        let gpus: Vec<HostGpu> = detection
            .usable_gpus()
            .map(|g| HostGpu {
                index: g.index,
                name: g.name.clone(),
                compute_capability: g.compute_capability.expect("usable GPUs have a CC"),
                memory_free_bytes: g.memory_free_bytes,
                memory_total_bytes: g.memory_total_bytes,
            })
            .collect();
        let no_gpu_reason = gpus.is_empty().then(|| {
            detection
                .errors()
                .next()
                .map(|p| p.message.clone())
                .unwrap_or_else(|| "no NVIDIA GPU was found".to_string())
        });
        let driver = detection.driver.as_ref();
        Self {
            gpus,
            driver_version: driver
                .and_then(|d| d.version.as_deref())
                .and_then(|v| v.parse().ok()),
            driver_cuda: detection.driver_cuda(),
            free_disk_bytes,
            no_gpu_reason,
        }
    }

    /// A host that is not this machine (`--gpu 8.6,12.0` for a vendor planning for a customer):
    /// one synthetic GPU per compute capability, indexed from 0, memory unknown.
    pub fn synthetic(
        ccs: &[ComputeCapability],
        driver_version: Option<DriverVersion>,
        driver_cuda: Option<CudaVersion>,
    ) -> Self {
        Self {
            gpus: ccs
                .iter()
                .enumerate()
                .map(|(i, cc)| HostGpu {
                    index: i as u32,
                    name: None,
                    compute_capability: *cc,
                    memory_free_bytes: None,
                    memory_total_bytes: None,
                })
                .collect(),
            driver_version,
            driver_cuda,
            free_disk_bytes: None,
            no_gpu_reason: None,
        }
    }
}

/// What the user allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Accept kernels the driver JIT-compiles from PTX (slow first start).
    pub allow_jit: bool,
    /// Serve kernel-free components from libraries already on the machine.
    pub reuse_system: bool,
    /// Use a manifest whose signature is missing or wrong (`--allow-unsigned`); see
    /// [`crate::check_signature`].
    pub allow_unsigned: bool,
    /// Plan the CPU runtime whatever the GPUs.
    pub cpu_only: bool,
    /// SONAMEs every target machine has (the driver's `libcuda.so.1`, glibc).
    pub system_libraries: Vec<String>,
    /// sha256 of archives already in the install root's store: such a component is not
    /// downloaded again (its bytes count 0). Empty: none known.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub stored_archives: BTreeSet<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_jit: true,
            reuse_system: true,
            allow_unsigned: false,
            cpu_only: false,
            system_libraries: default_system_libraries(),
            stored_archives: BTreeSet::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output.

/// The driver a plan was made for, as data: its version, the CUDA version it runs, either or
/// both unknown (`--driver-cuda 12.2` alone gives `{"version": null, "cuda": "12.2"}`).
/// Display is what follows "you have": `535.104.05`, `a driver that runs CUDA 12.2`,
/// `an unknown driver`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriverRef {
    pub version: Option<DriverVersion>,
    pub cuda: Option<CudaVersion>,
}

impl DriverRef {
    /// The host's driver.
    pub fn of(host: &Host) -> Self {
        Self {
            version: host.driver_version.clone(),
            cuda: host.driver_cuda,
        }
    }

    /// The driver as a noun: `driver 535.104.05`, `a driver that runs CUDA 12.2`, `an unknown
    /// driver` (for "runs on …").
    pub fn noun(&self) -> String {
        match &self.version {
            Some(v) => format!("driver {v}"),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for DriverRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.version, self.cuda) {
            (Some(v), _) => write!(f, "{v}"),
            (None, Some(c)) => write!(f, "a driver that runs CUDA {c}"),
            (None, None) => f.write_str("an unknown driver"),
        }
    }
}

/// A GPU as messages name it: `sm_52` alone on a one-GPU host, `GPU 1 (sm_61)` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuRef {
    pub index: u32,
    pub compute_capability: ComputeCapability,
    pub name: Option<String>,
    /// Whether the host has several GPUs (messages then say which).
    #[serde(skip)]
    pub several: bool,
}

impl fmt::Display for GpuRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sm = self.compute_capability.sm_name();
        if !self.several {
            return f.write_str(&sm);
        }
        match &self.name {
            Some(n) => write!(f, "GPU {} ({n}, {sm})", self.index),
            None => write!(f, "GPU {} ({sm})", self.index),
        }
    }
}

/// How one component's kernels load on one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fit")]
pub enum KernelFit {
    /// A cubin loads; `exact` when it was built for this very compute capability.
    Native { target: KernelTarget, exact: bool },
    /// PTX is JIT-compiled.
    Jit { target: KernelTarget, isa: PtxIsa },
    /// The component carries no GPU kernels.
    NoKernels,
}

/// Why a variant was not chosen, or what is wrong on one GPU. Data and a sentence (Display).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Reason {
    /// The driver cannot run the CUDA runtime a component was built with.
    DriverTooOld {
        component: String,
        cuda: CudaVersion,
        needs: Option<DriverVersion>,
        have: DriverRef,
    },
    /// The component stores its kernels in a compression the driver cannot read (rule
    /// `fatbin-zstd`: zstd needs a driver of CUDA 12.4, R550, or newer; `docs/driver-rules.md`).
    DriverCannotReadKernels {
        component: String,
        /// The GPU and the entry it would load, for `zstd` (the rule is per entry: NVIDIA's
        /// cuBLAS 12.9 stores only its Blackwell entries zstd); `None` for `unknown`, which is
        /// refused for every GPU.
        gpu: Option<GpuRef>,
        target: Option<KernelTarget>,
        compression: Compression,
        /// `None` when no driver is known to read it.
        needs: Option<DriverVersion>,
        needs_cuda: Option<CudaVersion>,
        have: DriverRef,
        rule: String,
        source: String,
    },
    /// The component's own `min_driver` is above the driver.
    BelowComponentMinDriver {
        component: String,
        needs: DriverVersion,
        have: DriverVersion,
    },
    /// Nothing in the component loads on the GPU.
    NoKernelImage {
        gpu: GpuRef,
        component: String,
        /// What the component carries: `sm_75, sm_80, sm_86`.
        has: String,
    },
    /// PTX for the architecture is there, but in an ISA the driver cannot compile.
    PtxTooNew {
        gpu: GpuRef,
        component: String,
        target: KernelTarget,
        isa: PtxIsa,
        driver_isa: PtxIsa,
        driver_cuda: CudaVersion,
    },
    /// Only PTX JIT would load, and the policy forbids it.
    JitForbidden {
        gpu: GpuRef,
        component: String,
        target: KernelTarget,
    },
    /// The GPU has less memory than the variant needs.
    NotEnoughGpuMemory { gpu: GpuRef, needs: u64, has: u64 },
    /// A GPU variant none of whose components declares kernel coverage.
    NoCoverageDeclared,
    /// A component needs a library nobody provides.
    UnmetNeed { component: String, soname: String },
    /// The variant names a component the manifest lacks.
    MissingComponent { component: String },
    /// It runs, but another variant ranks higher.
    Outranked { by: String, why: String },
    /// A CPU variant while a GPU variant runs.
    CpuNotNeeded,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::DriverTooOld {
                component,
                cuda,
                needs,
                have,
            } => match needs {
                Some(n) => write!(
                    f,
                    "needs driver ≥ {n} for CUDA {cuda} (`{component}`), you have {have}"
                ),
                None => write!(
                    f,
                    "needs a driver that runs CUDA {cuda} (`{component}`), you have {have}"
                ),
            },
            Reason::DriverCannotReadKernels {
                component,
                gpu,
                target,
                compression,
                needs,
                needs_cuda,
                have,
                rule,
                source,
            } => match (needs, needs_cuda) {
                (Some(n), Some(c)) => {
                    let which = match (target, gpu) {
                        (Some(t), Some(g)) if t.name() == g.to_string() => format!("{t} kernels"),
                        (Some(t), Some(g)) => format!("{t} kernels for {g}"),
                        _ => "kernels".to_string(),
                    };
                    write!(
                        f,
                        "`{component}` stores its {which} {}-compressed, which drivers before \
                         CUDA {c} ({n}) cannot read; you have {have} (rule {rule}: {source})",
                        compression.name()
                    )
                }
                _ => write!(
                    f,
                    "`{component}` stores its kernels with a compression no driver is known to \
                     read; you have {have} (rule {rule}: {source})"
                ),
            },
            Reason::BelowComponentMinDriver {
                component,
                needs,
                have,
            } => write!(
                f,
                "component `{component}` needs driver ≥ {needs}, you have {have}"
            ),
            Reason::NoKernelImage {
                gpu,
                component,
                has,
            } => write!(
                f,
                "no kernel image for {gpu} in `{component}` (it has {has})"
            ),
            Reason::PtxTooNew {
                gpu,
                component,
                target,
                isa,
                driver_isa,
                driver_cuda,
            } => {
                write!(
                    f,
                    "no SASS for {gpu} in `{component}`; its {target} PTX is ISA {isa}, newer \
                     than the ISA {driver_isa} this driver (CUDA {driver_cuda}) compiles"
                )?;
                if let Some(c) = gpulibs_inspect::min_cuda_for_ptx(*isa) {
                    match driver::full_support_driver(c) {
                        Some(d) => write!(f, "; it needs a driver of CUDA {c} ({d}) or newer")?,
                        None => write!(f, "; it needs a driver of CUDA {c} or newer")?,
                    }
                }
                write!(
                    f,
                    " (rule {}: {})",
                    gpulibs_inspect::RULE_PTX_ISA.id,
                    gpulibs_inspect::RULE_PTX_ISA.source
                )
            }
            Reason::JitForbidden {
                gpu,
                component,
                target,
            } => write!(
                f,
                "no SASS for {gpu} in `{component}`, only {target} PTX, and PTX JIT is off by \
                 policy"
            ),
            Reason::NotEnoughGpuMemory { gpu, needs, has } => write!(
                f,
                "needs {} of GPU memory, {gpu} has {}",
                human_bytes(*needs),
                human_bytes(*has)
            ),
            Reason::NoCoverageDeclared => f.write_str(
                "no component declares kernel coverage, so no GPU can be checked (run `gpulibs \
                 inspect` on the libraries and record it in the manifest)",
            ),
            Reason::UnmetNeed { component, soname } => write!(
                f,
                "`{component}` needs {soname}, which no component of the variant provides and \
                 this machine lacks"
            ),
            Reason::MissingComponent { component } => {
                write!(f, "names component `{component}`, which the manifest lacks")
            }
            Reason::Outranked { by, why } => write!(f, "runs, but `{by}` ranks higher: {why}"),
            Reason::CpuNotNeeded => f.write_str("CPU runtime, not needed: a GPU variant runs"),
        }
    }
}

/// A variant that was not chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub variant: String,
    /// `latest (CUDA 12.9, sm_89–120)`.
    pub label: String,
    pub reasons: Vec<Reason>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: rejected, ", self.label)?;
        let reasons: Vec<String> = self.reasons.iter().map(|r| r.to_string()).collect();
        f.write_str(&reasons.join("; "))
    }
}

/// Where a component's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum Source {
    /// The vendor's archive.
    Archive { url: String, mirrors: Vec<String> },
    /// A PyPI wheel through pip.
    Pypi { url: String },
    /// Libraries already on this machine; nothing to download.
    System { paths: Vec<PathBuf> },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Archive { url, .. } => write!(f, "manifest archive {url}"),
            Source::Pypi { url } => write!(f, "PyPI {url}"),
            Source::System { paths } => {
                let p: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "system {}", p.join(", "))
            }
        }
    }
}

/// A library of the machine that serves (part of) a reused component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReusedLibrary {
    pub soname: String,
    pub path: PathBuf,
    /// Its version as the scan learned it (file name or pip `RECORD`); `None`: unknown.
    pub version: Option<String>,
}

/// Why a component comes from where it comes from: reused from the machine (with the rules
/// that accepted the library), or downloaded (with what prevented reuse).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Why {
    /// Served by libraries of this machine, all from `dir`.
    Reused {
        dir: PathBuf,
        libraries: Vec<ReusedLibrary>,
        /// Every rule that accepted them: the publisher's range, NVIDIA's rule, the SONAME.
        accepted_by: Vec<Constraint>,
    },
    /// Reuse is off (`--no-reuse`).
    ReuseOff,
    /// It carries GPU kernels, which are chosen per GPU: never reused.
    CarriesKernels,
    /// The manifest says never to reuse it (`reuse.never`).
    NeverReused,
    /// It declares no SONAME to look for.
    NothingToMatch,
    /// A SONAME it must provide is nowhere on this machine.
    NotFound { soname: String },
    /// A directory has some of its SONAMEs but not this one (a family is reused from one
    /// directory only), or an NVRTC without the builtins library of its own minor.
    Incomplete { dir: PathBuf, missing: String },
    /// Found, but a rule refused it.
    Refused {
        soname: String,
        path: PathBuf,
        version: Option<String>,
        /// The refusing constraint's short name: `publisher ~=9.0`, `NVIDIA cuDNN rule`.
        name: String,
        rule: String,
        source: String,
        specifier: String,
        detail: String,
    },
    /// The manifest's `reuse.versions` cannot be read (a manifest that was not validated).
    RangeUnreadable { versions: String, error: String },
}

impl Why {
    /// Whether the component is served by the machine.
    pub fn is_reused(&self) -> bool {
        matches!(self, Why::Reused { .. })
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Reused {
                dir,
                libraries,
                accepted_by,
            } => {
                let version = libraries
                    .first()
                    .and_then(|l| l.version.clone())
                    .unwrap_or_else(|| "version unknown".into());
                let names: Vec<&str> = accepted_by.iter().map(|c| c.name.as_str()).collect();
                write!(
                    f,
                    "reused {version} from {}: {}",
                    dir.display(),
                    names.join(", ")
                )
            }
            Why::ReuseOff => f.write_str("download: reuse is off (--no-reuse)"),
            Why::CarriesKernels => f.write_str("download: carries GPU kernels (never reused)"),
            Why::NeverReused => f.write_str("download: the manifest says never to reuse it"),
            Why::NothingToMatch => f.write_str("download: it declares no SONAME to look for"),
            Why::NotFound { soname } => write!(f, "download: {soname} is not on this machine"),
            Why::Incomplete { dir, missing } => {
                write!(f, "download: {} lacks {missing}", dir.display())
            }
            Why::Refused {
                path, name, detail, ..
            } => write!(
                f,
                "download: {} refused by {name}: {detail}",
                path.display()
            ),
            Why::RangeUnreadable { versions, error } => {
                write!(
                    f,
                    "download: reuse.versions `{versions}` unreadable: {error}"
                )
            }
        }
    }
}

/// One component of the chosen variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedComponent {
    pub id: String,
    pub source: Source,
    /// Where it comes from and why, structured ([`Why`]).
    pub why: Why,
    /// Its archive is already in the store (not downloaded again).
    pub in_store: bool,
    /// 0 when served by the system or already in the store.
    pub download_bytes: u64,
    /// 0 when served by the system; `None` when the manifest does not say.
    pub unpacked_bytes: Option<u64>,
    /// Per target GPU (by index) how its kernels load; empty for CPU variants.
    pub per_gpu: Vec<(u32, KernelFit)>,
}

/// Who serves a SONAME a component needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum NeedSource {
    /// A component of the variant (which itself comes from its [`Source`]).
    Component { id: String },
    /// A library found on this machine.
    System { path: PathBuf },
    /// The policy's list of libraries every machine has (`libcuda.so.1`, glibc).
    SystemList,
}

/// A needed SONAME and who serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedNeed {
    pub soname: String,
    pub by: NeedSource,
}

/// The variant a plan installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChosenVariant {
    pub variant: String,
    pub label: String,
    pub device: VariantDevice,
    pub components: Vec<PlannedComponent>,
    pub needs: Vec<ResolvedNeed>,
    /// Per covered GPU, in words: `native SASS for sm_52`.
    pub why: Vec<String>,
}

impl fmt::Display for ChosenVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: chosen, {}", self.label, self.why.join("; "))
    }
}

/// Something the user should know that does not stop the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "warning")]
pub enum Warning {
    /// No variant covers every GPU; the plan serves the best one.
    PlannedForBestGpu { best: GpuRef, variant: String },
    /// A GPU the chosen variant does not cover.
    UncoveredGpu {
        gpu: GpuRef,
        variant: String,
        reasons: Vec<Reason>,
    },
    /// A component's CUDA runtime runs through minor-version compatibility.
    MinorVersionCompatibility {
        component: String,
        cuda: CudaVersion,
        driver: DriverRef,
        full_support_from: Option<DriverVersion>,
    },
    /// Neither driver version nor CUDA version is known: requirements not checked.
    DriverUnknown,
    /// Kernels JIT-compiled from PTX on this GPU.
    Jit {
        gpu: GpuRef,
        component: String,
        target: KernelTarget,
    },
    /// The GPU has the memory in total, but less free right now.
    LowFreeGpuMemory { gpu: GpuRef, needs: u64, free: u64 },
    /// The manifest does not say how big a component is once unpacked.
    UnpackedSizeUnknown { component: String },
    /// The manifest was not verified (`--allow-unsigned`).
    UnverifiedManifest { why: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::PlannedForBestGpu { best, variant } => write!(
                f,
                "no variant covers every GPU: planned `{variant}` for the best GPU, {best}"
            ),
            Warning::UncoveredGpu {
                gpu,
                variant,
                reasons,
            } => {
                let r: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
                write!(
                    f,
                    "{gpu} is not covered by `{variant}`: {}; the app must not use it (hide it \
                     with CUDA_VISIBLE_DEVICES)",
                    r.join("; ")
                )
            }
            Warning::MinorVersionCompatibility {
                component,
                cuda,
                driver,
                full_support_from,
            } => {
                write!(
                    f,
                    "`{component}` (CUDA {cuda}) runs on {} through CUDA minor-version \
                     compatibility",
                    driver.noun()
                )?;
                if let Some(full) = full_support_from {
                    write!(f, " (full support from {full})")?;
                }
                f.write_str("; newer PTX cannot be JIT-compiled on it")
            }
            Warning::DriverUnknown => f.write_str(
                "the driver is unknown: CUDA runtime and PTX requirements were not checked",
            ),
            Warning::Jit {
                gpu,
                component,
                target,
            } => write!(
                f,
                "{gpu}: `{component}` has no SASS for it; its {target} PTX is JIT-compiled, so \
                 the first start is slow"
            ),
            Warning::LowFreeGpuMemory { gpu, needs, free } => write!(
                f,
                "{gpu} has {} free now; the app needs {}",
                human_bytes(*free),
                human_bytes(*needs)
            ),
            Warning::UnpackedSizeUnknown { component } => write!(
                f,
                "the manifest does not give `{component}`'s unpacked size: the disk check counts \
                 its download size only"
            ),
            Warning::UnverifiedManifest { why } => write!(
                f,
                "the manifest's signature was not verified ({why}); used because of \
                 --allow-unsigned"
            ),
        }
    }
}

/// Why the plan is the CPU runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "cause")]
pub enum CpuReason {
    /// The policy asked for it.
    CpuOnlyPolicy,
    /// No GPU CUDA can use; `detail` says why, from detection.
    NoUsableGpu { detail: String },
    /// GPUs exist but no GPU variant runs on any of them (see the rejections).
    NoVariantRuns,
}

impl fmt::Display for CpuReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuReason::CpuOnlyPolicy => f.write_str("CPU only, as asked"),
            CpuReason::NoUsableGpu { detail } => write!(f, "no usable GPU ({detail})"),
            CpuReason::NoVariantRuns => {
                f.write_str("no GPU variant runs on this machine (reasons below)")
            }
        }
    }
}

/// The CPU outcome: never an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuFallback {
    pub reason: CpuReason,
    /// The manifest's CPU variant, when it has one.
    pub variant: Option<String>,
}

impl fmt::Display for CpuFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CPU runtime: {}", self.reason)?;
        match &self.variant {
            Some(v) => write!(f, "; installing variant `{v}`"),
            None => f.write_str(
                "; the manifest has no CPU variant, so nothing is installed and the app uses its \
                 own CPU runtime, if it has one",
            ),
        }
    }
}

/// Why a plan is refused before anything is downloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "refusal")]
pub enum Refusal {
    /// The install root's file system lacks the space (download + unpacked).
    NotEnoughDisk { needs: u64, free: u64 },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotEnoughDisk { needs, free } => write!(
                f,
                "refused: the install needs {} on disk (download and unpacked), the install \
                 root has {} free",
                human_bytes(*needs),
                human_bytes(*free)
            ),
        }
    }
}

/// What the plan amounts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// A GPU variant covers every target GPU.
    Gpu,
    /// A GPU variant covers some GPUs (the best one first); the warnings name the others.
    GpuPartial { uncovered: Vec<u32> },
    /// The CPU runtime.
    Cpu(CpuFallback),
    /// Nothing may be installed: `chosen` is what would have been.
    Refused(Refusal),
}

/// Bytes the plan costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// What the user downloads.
    pub download_bytes: u64,
    /// What the components take once unpacked (unknown sizes counted as their download).
    pub unpacked_bytes: u64,
    /// What the install root needs free: archives and their unpacked files at once.
    pub disk_bytes: u64,
}

/// The answer of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub target_gpus: Vec<HostGpu>,
    pub outcome: Outcome,
    pub chosen: Option<ChosenVariant>,
    pub rejected: Vec<Rejection>,
    pub warnings: Vec<Warning>,
    pub totals: Totals,
}

impl Plan {
    /// The CPU fallback, when that is the outcome.
    pub fn cpu_fallback(&self) -> Option<&CpuFallback> {
        match &self.outcome {
            Outcome::Cpu(c) => Some(c),
            _ => None,
        }
    }

    /// Whether anything may be installed.
    pub fn is_refused(&self) -> bool {
        matches!(self.outcome, Outcome::Refused(_))
    }

    /// The plan in sentences, one a line: outcome, chosen, rejected, warnings, bytes.
    pub fn lines(&self) -> Vec<String> {
        self.kinded_lines().into_iter().map(|(_, l)| l).collect()
    }

    /// [`Plan::lines`], each with what it says ([`LineKind`]), so a renderer can style a line
    /// by what it is rather than by its text.
    pub fn kinded_lines(&self) -> Vec<(LineKind, String)> {
        let mut out = Vec::new();
        match &self.outcome {
            Outcome::Cpu(c) => out.push((LineKind::CpuFallback, c.to_string())),
            Outcome::Refused(r) => out.push((LineKind::Refused, r.to_string())),
            Outcome::Gpu | Outcome::GpuPartial { .. } => {}
        }
        if let Some(c) = &self.chosen {
            out.push((LineKind::Chosen, c.to_string()));
        }
        out.extend(
            self.rejected
                .iter()
                .map(|r| (LineKind::Rejected, r.to_string())),
        );
        out.extend(
            self.warnings
                .iter()
                .map(|w| (LineKind::Warning, format!("warning: {w}"))),
        );
        if self.chosen.is_some() {
            out.push((
                LineKind::Totals,
                format!(
                    "download {}, {} unpacked, {} of disk needed",
                    human_bytes(self.totals.download_bytes),
                    human_bytes(self.totals.unpacked_bytes),
                    human_bytes(self.totals.disk_bytes)
                ),
            ));
        }
        out
    }
}

/// What one line of [`Plan::kinded_lines`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// The plan is the CPU runtime, and why.
    CpuFallback,
    /// Nothing may be installed, and why.
    Refused,
    /// The chosen variant.
    Chosen,
    /// A variant not chosen, with its reasons.
    Rejected,
    /// A [`Warning`].
    Warning,
    /// Download, unpacked and disk bytes.
    Totals,
}

/// Bytes for people, the one formatter every size shown goes through (plan, install, status,
/// gc, detect's GPU memory, verify's inputs): powers of 1024 as `du -h`, rustup, `nvidia-smi`
/// and `--max-input-bytes` count them, three significant digits at most: `1.4 GiB`, `680 MiB`,
/// `684 KiB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value >= 99.95 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

/// A variant on one GPU.
#[derive(Debug, Clone)]
enum GpuFit {
    Covered {
        jit: bool,
        exact: bool,
        /// The lowest compute capability among the code its components load.
        loaded_cc: u32,
        per_component: Vec<(String, KernelFit)>,
    },
    Uncovered(Vec<Reason>),
}

struct Evaluation<'m> {
    variant: &'m Variant,
    label: String,
    components: Vec<&'m Component>,
    /// Reasons that hold on every GPU (driver, missing pieces).
    blocking: Vec<Reason>,
    per_gpu: Vec<GpuFit>,
    needs: Vec<ResolvedNeed>,
    sources: Vec<Source>,
    whys: Vec<Why>,
    download: u64,
    cuda: Option<CudaVersion>,
    /// The `onnxruntime` component's version as numbers (`1.31.1` → `[1, 31, 1]`).
    onnxruntime: Option<Vec<u64>>,
    mvc_warnings: Vec<Warning>,
}

/// A dotted version as numbers for ordering; the non-numeric tail of a part is ignored
/// (`1.20.0rc1` → `[1, 20, 0]`).
fn version_numbers(v: &str) -> Vec<u64> {
    v.split('.')
        .map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or(0)
        })
        .collect()
}

impl Evaluation<'_> {
    fn runs(&self) -> bool {
        self.blocking.is_empty() && self.covered_count() > 0
    }

    fn covered(&self, i: usize) -> bool {
        matches!(self.per_gpu[i], GpuFit::Covered { .. })
    }

    fn covered_count(&self) -> usize {
        (0..self.per_gpu.len()).filter(|&i| self.covered(i)).count()
    }

    fn count(&self, f: impl Fn(bool, bool) -> bool) -> usize {
        self.per_gpu
            .iter()
            .filter(|g| matches!(g, GpuFit::Covered { jit, exact, .. } if f(*jit, *exact)))
            .count()
    }

    fn loaded_sum(&self) -> u32 {
        self.per_gpu
            .iter()
            .map(|g| match g {
                GpuFit::Covered { loaded_cc, .. } => *loaded_cc,
                GpuFit::Uncovered(_) => 0,
            })
            .sum()
    }
}

fn gpu_ref(gpu: &HostGpu, several: bool) -> GpuRef {
    GpuRef {
        index: gpu.index,
        compute_capability: gpu.compute_capability,
        name: gpu.name.clone(),
        several,
    }
}

/// The component whose coverage describes the variant in labels: the ONNX Runtime one if it
/// declares coverage, else the one with the fewest SASS targets.
fn label_component<'a>(components: &[&'a Component]) -> Option<&'a Component> {
    let with_cov: Vec<&Component> = components
        .iter()
        .copied()
        .filter(|c| c.coverage.is_some())
        .collect();
    with_cov
        .iter()
        .copied()
        .find(|c| c.kind == crate::manifest::ComponentKind::Onnxruntime)
        .or_else(|| {
            with_cov
                .iter()
                .copied()
                .min_by_key(|c| c.coverage.as_ref().map(|v| v.sass.len()).unwrap_or(0))
        })
}

/// `legacy (CUDA 12.9, sm_50–70)`, `cpu (CPU)`.
fn variant_label(v: &Variant, components: &[&Component]) -> String {
    if v.device == VariantDevice::Cpu {
        return format!("{} (CPU)", v.name);
    }
    let mut parts = Vec::new();
    if let Some(cuda) = components.iter().filter_map(|c| c.cuda).max() {
        parts.push(format!("CUDA {cuda}"));
    }
    if let Some(cov) = label_component(components).and_then(|c| c.coverage.as_ref()) {
        let nums: Vec<u32> = cov.sass.iter().map(|t| t.0.cc.number()).collect();
        match (nums.iter().min(), nums.iter().max()) {
            (Some(lo), Some(hi)) if lo == hi => parts.push(format!("sm_{lo}")),
            (Some(lo), Some(hi)) => parts.push(format!("sm_{lo}–{hi}")),
            _ => {}
        }
        for p in &cov.ptx {
            parts.push(format!("+{}", p.target));
        }
    }
    if parts.is_empty() {
        v.name.clone()
    } else {
        format!("{} ({})", v.name, parts.join(", "))
    }
}

fn describe_coverage(c: &Component) -> String {
    let Some(cov) = &c.coverage else {
        return "no kernels".into();
    };
    let mut names: Vec<String> = cov.sass.iter().map(|t| t.to_string()).collect();
    names.extend(
        cov.ptx
            .iter()
            .map(|p| format!("{} (PTX {})", p.target, p.isa)),
    );
    if names.is_empty() {
        "no kernels".into()
    } else {
        names.join(", ")
    }
}

/// Why `host`'s driver cannot read `c`'s kernels stored with `compression` (for `gpu`'s
/// `target`, when it is about the entry one GPU loads), or `None` when it can.
fn cannot_read(
    c: &Component,
    compression: Compression,
    host: &Host,
    gpu: Option<GpuRef>,
    target: Option<KernelTarget>,
) -> Option<Reason> {
    match driver::compression_support(compression, host.driver_version.as_ref(), host.driver_cuda) {
        CompressionSupport::Cannot {
            compression,
            needs_cuda,
            needs,
            rule,
            source,
        } => Some(Reason::DriverCannotReadKernels {
            component: c.id.clone(),
            gpu,
            target,
            compression,
            needs,
            needs_cuda,
            have: DriverRef::of(host),
            rule: rule.to_string(),
            source: source.to_string(),
        }),
        _ => None,
    }
}

fn evaluate<'m>(
    host: &Host,
    manifest: &'m Manifest,
    v: &'m Variant,
    system: &SystemInventory,
    policy: &Policy,
) -> Evaluation<'m> {
    let several = host.gpus.len() > 1;
    let mut blocking = Vec::new();
    let components: Vec<&Component> = v
        .components
        .iter()
        .filter_map(|id| {
            let c = manifest.components.iter().find(|c| &c.id == id);
            if c.is_none() {
                blocking.push(Reason::MissingComponent {
                    component: id.clone(),
                });
            }
            c
        })
        .collect();
    let label = variant_label(v, &components);

    // Driver: every component's CUDA runtime and own floor.
    let mut mvc_warnings = Vec::new();
    for c in &components {
        if let Some(cuda) = c.cuda {
            match driver::runtime_support(cuda, host.driver_version.as_ref(), host.driver_cuda) {
                RuntimeSupport::Full | RuntimeSupport::Unknown => {}
                RuntimeSupport::MinorVersionCompatible { full_support_from } => {
                    mvc_warnings.push(Warning::MinorVersionCompatibility {
                        component: c.id.clone(),
                        cuda,
                        driver: DriverRef::of(host),
                        full_support_from,
                    })
                }
                RuntimeSupport::TooOld { needs, .. } => blocking.push(Reason::DriverTooOld {
                    component: c.id.clone(),
                    cuda,
                    needs,
                    have: DriverRef::of(host),
                }),
            }
        }
        // Kernels stored in a compression no driver is known to read fail whatever the GPU
        // (rule `fatbin-unknown-compression`); zstd is judged per GPU, on the entry it loads.
        if let Some(cov) = &c.coverage {
            if cov.compression.contains(&Compression::Unknown) {
                blocking.extend(cannot_read(c, Compression::Unknown, host, None, None));
            }
        }
        if let (Some(min), Some(have)) = (&c.min_driver, &host.driver_version) {
            if have < min {
                blocking.push(Reason::BelowComponentMinDriver {
                    component: c.id.clone(),
                    needs: min.clone(),
                    have: have.clone(),
                });
            }
        }
    }

    // One driver sentence per variant: the component with the newest CUDA decides what the
    // driver must run; repeating the same numbers for every component only hides them.
    keep_newest_cuda_only(&mut blocking);
    if let Some(newest) = mvc_warnings
        .iter()
        .filter_map(|w| match w {
            Warning::MinorVersionCompatibility { cuda, .. } => Some(*cuda),
            _ => None,
        })
        .max()
    {
        let mut kept = false;
        mvc_warnings.retain(|w| match w {
            Warning::MinorVersionCompatibility { cuda, .. } if *cuda == newest && !kept => {
                kept = true;
                true
            }
            Warning::MinorVersionCompatibility { .. } => false,
            _ => true,
        });
    }

    // Sources and needs.
    let mut sources = Vec::new();
    let mut whys = Vec::new();
    let mut download = 0u64;
    for c in &components {
        let why = reuse_decision(c, &components, system, policy);
        let source = match &why {
            Why::Reused { libraries, .. } => Source::System {
                paths: libraries.iter().map(|l| l.path.clone()).collect(),
            },
            _ => {
                if !policy.stored_archives.contains(&c.archive.sha256) {
                    download = download.saturating_add(c.archive.size);
                }
                match c.origin {
                    Origin::Vendor => Source::Archive {
                        url: c.archive.url.clone(),
                        mirrors: c.archive.mirrors.clone(),
                    },
                    Origin::Pypi => Source::Pypi {
                        url: c.archive.url.clone(),
                    },
                }
            }
        };
        sources.push(source);
        whys.push(why);
    }
    let mut needs = Vec::new();
    let mut seen = BTreeSet::new();
    for c in &components {
        for soname in &c.needs {
            if !seen.insert(soname.clone()) {
                continue;
            }
            let by_component = components.iter().find(|p| {
                p.provides.contains(soname)
                    || p.files.iter().any(|f| {
                        f.path.rsplit('/').next() == Some(soname.as_str())
                            || f.soname_links.contains(soname)
                    })
            });
            let by = if let Some(p) = by_component {
                Some(NeedSource::Component { id: p.id.clone() })
            } else if policy.system_libraries.contains(soname) {
                Some(NeedSource::SystemList)
            } else {
                system.find(soname).map(|l| NeedSource::System {
                    path: l.path.clone(),
                })
            };
            match by {
                Some(by) => needs.push(ResolvedNeed {
                    soname: soname.clone(),
                    by,
                }),
                None => blocking.push(Reason::UnmetNeed {
                    component: c.id.clone(),
                    soname: soname.clone(),
                }),
            }
        }
    }

    // Kernels, per GPU.
    let ptx_driver = driver::effective_driver_cuda(host.driver_version.as_ref(), host.driver_cuda);
    let gpu_components: Vec<&Component> = components
        .iter()
        .copied()
        .filter(|c| c.coverage.is_some())
        .collect();
    let per_gpu = host
        .gpus
        .iter()
        .map(|g| {
            let gref = gpu_ref(g, several);
            let cc = g.compute_capability;
            let mut reasons = Vec::new();
            if v.device == VariantDevice::Cuda && gpu_components.is_empty() {
                reasons.push(Reason::NoCoverageDeclared);
            }
            if let (Some(needs), Some(has)) = (v.min_gpu_memory_bytes, g.memory_total_bytes) {
                if has < needs {
                    reasons.push(Reason::NotEnoughGpuMemory {
                        gpu: gref.clone(),
                        needs,
                        has,
                    });
                }
            }
            let mut per_component = Vec::new();
            let (mut jit, mut exact, mut loaded_cc) = (false, true, u32::MAX);
            for c in &components {
                if c.coverage.is_none() {
                    per_component.push((c.id.clone(), KernelFit::NoKernels));
                    continue;
                }
                let entries = c.kernel_entries();
                let selection = select_entry(&entries, cc, ptx_driver);
                // Rule `fatbin-zstd`: the entry the GPU would load must be readable.
                let chosen = match &selection {
                    Selection::Native { target } | Selection::Jit { target, .. } => Some(*target),
                    Selection::None { .. } => None,
                };
                if let (Some(t), Some(cov)) = (chosen, &c.coverage) {
                    if cov.zstd_for(&t) {
                        let gpu = Some(gref.clone());
                        if let Some(r) = cannot_read(c, Compression::Zstd, host, gpu, Some(t)) {
                            reasons.push(r);
                            continue;
                        }
                    }
                }
                match selection {
                    Selection::Native { target } => {
                        let is_exact = target.cc == cc;
                        exact &= is_exact;
                        loaded_cc = loaded_cc.min(target.cc.number());
                        per_component.push((
                            c.id.clone(),
                            KernelFit::Native {
                                target,
                                exact: is_exact,
                            },
                        ));
                    }
                    Selection::Jit { target, ptx_isa } if policy.allow_jit => {
                        jit = true;
                        exact = false;
                        loaded_cc = loaded_cc.min(target.cc.number());
                        per_component.push((
                            c.id.clone(),
                            KernelFit::Jit {
                                target,
                                isa: ptx_isa,
                            },
                        ));
                    }
                    Selection::Jit { target, .. } => reasons.push(Reason::JitForbidden {
                        gpu: gref.clone(),
                        component: c.id.clone(),
                        target,
                    }),
                    Selection::None { ptx_too_new } => match (ptx_too_new.first(), ptx_driver) {
                        (Some(e), Some(d)) => reasons.push(Reason::PtxTooNew {
                            gpu: gref.clone(),
                            component: c.id.clone(),
                            target: e.target,
                            isa: e.ptx_isa.unwrap_or(PtxIsa::new(0, 0)),
                            driver_isa: gpulibs_inspect::max_ptx_isa(d),
                            driver_cuda: d,
                        }),
                        _ => reasons.push(Reason::NoKernelImage {
                            gpu: gref.clone(),
                            component: c.id.clone(),
                            has: describe_coverage(c),
                        }),
                    },
                }
            }
            if reasons.is_empty() {
                GpuFit::Covered {
                    jit,
                    exact,
                    loaded_cc: if loaded_cc == u32::MAX { 0 } else { loaded_cc },
                    per_component,
                }
            } else {
                GpuFit::Uncovered(reasons)
            }
        })
        .collect();

    Evaluation {
        variant: v,
        label,
        cuda: components.iter().filter_map(|c| c.cuda).max(),
        onnxruntime: components
            .iter()
            .filter(|c| c.kind == ComponentKind::Onnxruntime)
            .map(|c| version_numbers(&c.version))
            .max(),
        components,
        blocking,
        per_gpu,
        needs,
        sources,
        whys,
        download,
        mvc_warnings,
    }
}

/// The SONAMEs a library directory must hold to serve `c` in this variant: the manifest's
/// `reuse.sonames`; else those of its SONAMEs the variant's other components need (what
/// consumers link or load: a sub-library the family's own entry library loads from its own
/// directory, or a minor-versioned companion, is not required); else every SONAME it provides.
pub fn required_sonames(c: &Component, variant: &[&Component]) -> Vec<String> {
    if !c.reuse.sonames.is_empty() {
        return c.reuse.sonames.clone();
    }
    let wanted: Vec<String> = c
        .provides
        .iter()
        .filter(|s| {
            variant
                .iter()
                .any(|o| o.id != c.id && o.needs.iter().any(|n| n == *s))
        })
        .cloned()
        .collect();
    if wanted.is_empty() {
        c.provides.clone()
    } else {
        wanted
    }
}

/// Whether libraries of the machine serve `c`, and why (not). Pure; see `docs/reuse.md`.
///
/// Kernel-free components only. Every required SONAME ([`required_sonames`]) must come from
/// one directory (the first, in the scan's search order, where all pass), and each library
/// there must satisfy the publisher's range (`reuse.versions`) and NVIDIA's rule for its
/// family ([`nvidia_rule`]); an NVRTC must have the builtins library of its own minor next to
/// it. When no directory passes, the first directory's failure is the reason.
pub fn reuse_decision(
    c: &Component,
    variant: &[&Component],
    system: &SystemInventory,
    policy: &Policy,
) -> Why {
    if !policy.reuse_system {
        return Why::ReuseOff;
    }
    if c.coverage.is_some() {
        return Why::CarriesKernels;
    }
    if c.reuse.never {
        return Why::NeverReused;
    }
    if c.provides.is_empty() {
        return Why::NothingToMatch;
    }
    let required = required_sonames(c, variant);
    let publisher = match c.reuse.versions.as_deref().map(Specifier::parse) {
        None => None,
        Some(Ok(specifier)) => Some(Constraint {
            name: format!("publisher {specifier}"),
            rule: c.reuse.versions_from.clone().unwrap_or_else(|| {
                format!("the manifest's reuse.versions of `{}`: {specifier}", c.id)
            }),
            source: "reuse.versions in the manifest".into(),
            specifier,
        }),
        Some(Err(e)) => {
            return Why::RangeUnreadable {
                versions: c.reuse.versions.clone().unwrap_or_default(),
                error: e.to_string(),
            }
        }
    };
    let built = c.reuse.built_with.as_deref().and_then(parse_found_version);
    if let Some(missing) = required.iter().find(|s| system.find(s).is_none()) {
        return Why::NotFound {
            soname: missing.clone(),
        };
    }
    let in_dir = |soname: &str, dir: &std::path::Path| {
        system
            .libraries
            .iter()
            .find(|l| l.soname == soname && l.path.parent() == Some(dir))
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    for l in system.libraries.iter().filter(|l| l.soname == required[0]) {
        let dir = l.path.parent().map(PathBuf::from).unwrap_or_default();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let mut first_failure = None;
    'dirs: for dir in dirs {
        let mut libraries = Vec::new();
        let mut accepted_by: Vec<Constraint> = Vec::new();
        for soname in &required {
            let Some(lib) = in_dir(soname, &dir) else {
                first_failure.get_or_insert(Why::Incomplete {
                    dir: dir.clone(),
                    missing: soname.clone(),
                });
                continue 'dirs;
            };
            let version = lib.version.as_deref().and_then(parse_found_version);
            let major = soname_major(soname).unwrap_or(0);
            let mut constraints: Vec<Constraint> = publisher.iter().cloned().collect();
            constraints.extend(nvidia_rule(soname, built.as_deref()));
            match check_version(version.as_deref(), major, &constraints) {
                Ok(ok) => {
                    for c in ok {
                        if !accepted_by.contains(&c) {
                            accepted_by.push(c);
                        }
                    }
                }
                Err(r) => {
                    first_failure.get_or_insert(Why::Refused {
                        soname: soname.clone(),
                        path: lib.path.clone(),
                        version: lib.version.clone(),
                        name: r.name,
                        rule: r.rule,
                        source: r.source,
                        specifier: r.specifier,
                        detail: r.detail,
                    });
                    continue 'dirs;
                }
            }
            if let Some(builtins) = nvrtc_builtins_for(soname, version.as_deref()) {
                if in_dir(&builtins, &dir).is_none() {
                    first_failure.get_or_insert(Why::Incomplete {
                        dir: dir.clone(),
                        missing: builtins,
                    });
                    continue 'dirs;
                }
            }
            libraries.push(ReusedLibrary {
                soname: soname.clone(),
                path: lib.path.clone(),
                version: lib.version.clone(),
            });
        }
        return Why::Reused {
            dir,
            libraries,
            accepted_by,
        };
    }
    first_failure.unwrap_or(Why::NotFound {
        soname: required[0].clone(),
    })
}

/// Keeps, of the `DriverTooOld` reasons, only the first one for the newest CUDA version.
fn keep_newest_cuda_only(reasons: &mut Vec<Reason>) {
    let newest = reasons
        .iter()
        .filter_map(|r| match r {
            Reason::DriverTooOld { cuda, .. } => Some(*cuda),
            _ => None,
        })
        .max();
    let Some(newest) = newest else { return };
    let mut kept = false;
    reasons.retain(|r| match r {
        Reason::DriverTooOld { cuda, .. } if *cuda == newest && !kept => {
            kept = true;
            true
        }
        Reason::DriverTooOld { .. } => false,
        _ => true,
    });
}

/// The best GPU: highest compute capability, then most memory, then lowest index.
fn best_gpu(gpus: &[HostGpu]) -> Option<usize> {
    (0..gpus.len()).max_by(|&a, &b| {
        let (ga, gb) = (&gpus[a], &gpus[b]);
        ga.compute_capability
            .cmp(&gb.compute_capability)
            .then(ga.memory_total_bytes.cmp(&gb.memory_total_bytes))
            .then(gb.index.cmp(&ga.index))
    })
}

/// Compares two running variants; `Greater` means `a` is better. Returns the criterion that
/// decided, in words from the loser's side.
fn rank(a: &Evaluation, b: &Evaluation, best: usize, n_gpus: usize) -> (Ordering, String) {
    let all = |e: &Evaluation| e.covered_count() == n_gpus;
    let checks: [(Ordering, String); 9] = [
        (
            all(a).cmp(&all(b)),
            "it does not cover every GPU".to_string(),
        ),
        (
            a.covered(best).cmp(&b.covered(best)),
            "it does not cover the best GPU".to_string(),
        ),
        (
            a.covered_count().cmp(&b.covered_count()),
            format!(
                "it covers fewer GPUs ({} vs {})",
                a.covered_count().min(b.covered_count()),
                a.covered_count().max(b.covered_count())
            ),
        ),
        (
            b.count(|jit, _| jit).cmp(&a.count(|jit, _| jit)),
            "it needs PTX JIT where the other has native SASS".to_string(),
        ),
        (
            a.count(|_, exact| exact).cmp(&b.count(|_, exact| exact)),
            "the other has SASS built for the exact compute capability".to_string(),
        ),
        (
            a.loaded_sum().cmp(&b.loaded_sum()),
            "the other's kernels target a newer architecture".to_string(),
        ),
        (
            a.onnxruntime.cmp(&b.onnxruntime),
            "the other is a newer ONNX Runtime release".to_string(),
        ),
        (
            a.cuda.cmp(&b.cuda),
            format!(
                "the other has a newer CUDA runtime ({} vs {})",
                a.cuda
                    .max(b.cuda)
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                a.cuda
                    .min(b.cuda)
                    .map(|c| c.to_string())
                    .unwrap_or("none".into())
            ),
        ),
        (
            b.download.cmp(&a.download),
            format!(
                "the other is a smaller download ({} vs {})",
                human_bytes(a.download.min(b.download)),
                human_bytes(a.download.max(b.download))
            ),
        ),
    ];
    for (ord, why) in checks {
        if ord != Ordering::Equal {
            return (ord, why);
        }
    }
    (
        b.variant.name.cmp(&a.variant.name),
        "equal rank; the name decides".to_string(),
    )
}

fn fit_words(fit: &GpuFit, gpu: &GpuRef) -> String {
    let GpuFit::Covered { per_component, .. } = fit else {
        return String::new();
    };
    // Describe by the weakest component: JIT first, then the lowest native target.
    let mut jit = None;
    let mut native: Option<(KernelTarget, bool)> = None;
    for (_, f) in per_component {
        match f {
            KernelFit::Jit { target, isa } => jit = Some((*target, *isa)),
            KernelFit::Native { target, exact } => {
                if native.is_none_or(|(t, _)| target.cc < t.cc) {
                    native = Some((*target, *exact));
                }
            }
            KernelFit::NoKernels => {}
        }
    }
    match (jit, native) {
        (Some((t, isa)), _) => format!("PTX {t} (ISA {isa}) JIT-compiled for {gpu}"),
        (None, Some((t, true))) if t.cc == gpu.compute_capability => {
            format!("native SASS for {gpu}")
        }
        (None, Some((t, _))) => format!("native SASS {t} runs on {gpu}"),
        (None, None) => format!("{gpu}: no kernels needed"),
    }
}

/// Plans for `host` from `manifest`. Pure: same inputs, same plan; never fails (a machine with
/// no usable GPU gets the CPU outcome, a full disk the refused one).
pub fn plan(host: &Host, manifest: &Manifest, system: &SystemInventory, policy: &Policy) -> Plan {
    let several = host.gpus.len() > 1;
    let evaluations: Vec<Evaluation> = manifest
        .variants
        .iter()
        .map(|v| evaluate(host, manifest, v, system, policy))
        .collect();
    let (gpu_evals, cpu_evals): (Vec<&Evaluation>, Vec<&Evaluation>) = evaluations
        .iter()
        .partition(|e| e.variant.device == VariantDevice::Cuda);

    let mut warnings = Vec::new();
    if host.driver_version.is_none() && host.driver_cuda.is_none() && !host.gpus.is_empty() {
        warnings.push(Warning::DriverUnknown);
    }

    let cpu_reason = if policy.cpu_only {
        Some(CpuReason::CpuOnlyPolicy)
    } else if host.gpus.is_empty() {
        Some(CpuReason::NoUsableGpu {
            detail: host
                .no_gpu_reason
                .clone()
                .unwrap_or_else(|| "no NVIDIA GPU was found".into()),
        })
    } else {
        None
    };

    let best = best_gpu(&host.gpus);
    let winner: Option<&Evaluation> = match (&cpu_reason, best) {
        (None, Some(best)) => gpu_evals
            .iter()
            .copied()
            .filter(|e| e.runs())
            .max_by(|a, b| rank(a, b, best, host.gpus.len()).0),
        _ => None,
    };

    let mut rejected = Vec::new();
    for e in &gpu_evals {
        if winner.is_some_and(|w| std::ptr::eq(w, *e)) {
            continue;
        }
        let mut reasons = e.blocking.clone();
        // A reason that holds on every GPU (the CUDA runtime) hides the per-GPU ones, except
        // kernels the driver cannot read: those are said too, so that a variant refused for
        // both says both (rule `fatbin-zstd`).
        if !reasons.is_empty() && cpu_reason.is_none() {
            for fit in &e.per_gpu {
                if let GpuFit::Uncovered(r) = fit {
                    for r in r {
                        if matches!(r, Reason::DriverCannotReadKernels { .. })
                            && !reasons.contains(r)
                        {
                            reasons.push(r.clone());
                        }
                    }
                }
            }
        }
        if cpu_reason.is_none() && reasons.is_empty() {
            if e.runs() {
                let w = winner.expect("a running variant means a winner");
                reasons.push(Reason::Outranked {
                    by: w.variant.name.clone(),
                    why: rank(w, e, best.unwrap_or(0), host.gpus.len()).1,
                });
            } else {
                for fit in &e.per_gpu {
                    if let GpuFit::Uncovered(r) = fit {
                        for r in r {
                            if !reasons.contains(r) {
                                reasons.push(r.clone());
                            }
                        }
                    }
                }
            }
        }
        if cpu_reason.is_some() && reasons.is_empty() {
            continue; // not considered: the CPU outcome was decided before any variant
        }
        rejected.push(Rejection {
            variant: e.variant.name.clone(),
            label: e.label.clone(),
            reasons,
        });
    }

    let (outcome, chosen_eval) = match winner {
        Some(w) => {
            let uncovered: Vec<u32> = (0..host.gpus.len())
                .filter(|&i| !w.covered(i))
                .map(|i| host.gpus[i].index)
                .collect();
            for e in &cpu_evals {
                rejected.push(Rejection {
                    variant: e.variant.name.clone(),
                    label: e.label.clone(),
                    reasons: vec![Reason::CpuNotNeeded],
                });
            }
            if uncovered.is_empty() {
                (Outcome::Gpu, Some(w))
            } else {
                let best = best.expect("GPUs exist");
                if w.covered(best) {
                    warnings.push(Warning::PlannedForBestGpu {
                        best: gpu_ref(&host.gpus[best], several),
                        variant: w.variant.name.clone(),
                    });
                }
                for (i, fit) in w.per_gpu.iter().enumerate() {
                    if let GpuFit::Uncovered(reasons) = fit {
                        warnings.push(Warning::UncoveredGpu {
                            gpu: gpu_ref(&host.gpus[i], several),
                            variant: w.variant.name.clone(),
                            reasons: reasons.clone(),
                        });
                    }
                }
                (Outcome::GpuPartial { uncovered }, Some(w))
            }
        }
        None => {
            let reason = cpu_reason.unwrap_or(CpuReason::NoVariantRuns);
            let cpu = cpu_evals.iter().copied().find(|e| e.blocking.is_empty());
            for e in &cpu_evals {
                if cpu.is_some_and(|c| std::ptr::eq(c, *e)) {
                    continue;
                }
                rejected.push(Rejection {
                    variant: e.variant.name.clone(),
                    label: e.label.clone(),
                    reasons: if e.blocking.is_empty() {
                        vec![Reason::Outranked {
                            by: cpu.map(|c| c.variant.name.clone()).unwrap_or_default(),
                            why: "it comes first in the manifest".into(),
                        }]
                    } else {
                        e.blocking.clone()
                    },
                });
            }
            (
                Outcome::Cpu(CpuFallback {
                    reason,
                    variant: cpu.map(|c| c.variant.name.clone()),
                }),
                cpu,
            )
        }
    };

    let mut totals = Totals::default();
    let chosen = chosen_eval.map(|w| {
        warnings.extend(w.mvc_warnings.iter().cloned());
        let mut components = Vec::new();
        for ((c, source), why) in w.components.iter().zip(&w.sources).zip(&w.whys) {
            let on_system = matches!(source, Source::System { .. });
            let in_store = !on_system && policy.stored_archives.contains(&c.archive.sha256);
            let download_bytes = if on_system || in_store {
                0
            } else {
                c.archive.size
            };
            let unpacked_bytes = if on_system || in_store {
                Some(0)
            } else {
                c.unpacked_bytes()
            };
            if unpacked_bytes.is_none() {
                warnings.push(Warning::UnpackedSizeUnknown {
                    component: c.id.clone(),
                });
            }
            totals.download_bytes = totals.download_bytes.saturating_add(download_bytes);
            totals.unpacked_bytes = totals
                .unpacked_bytes
                .saturating_add(unpacked_bytes.unwrap_or(download_bytes));
            let per_gpu = host
                .gpus
                .iter()
                .zip(&w.per_gpu)
                .filter_map(|(g, fit)| match fit {
                    GpuFit::Covered { per_component, .. } => per_component
                        .iter()
                        .find(|(id, _)| id == &c.id)
                        .map(|(_, f)| (g.index, f.clone())),
                    GpuFit::Uncovered(_) => None,
                })
                .collect::<Vec<_>>();
            for (idx, f) in &per_gpu {
                if let KernelFit::Jit { target, .. } = f {
                    let g = host.gpus.iter().find(|g| g.index == *idx).expect("own GPU");
                    warnings.push(Warning::Jit {
                        gpu: gpu_ref(g, several),
                        component: c.id.clone(),
                        target: *target,
                    });
                }
            }
            components.push(PlannedComponent {
                id: c.id.clone(),
                source: source.clone(),
                why: why.clone(),
                in_store,
                download_bytes,
                unpacked_bytes,
                per_gpu,
            });
        }
        if let Some(needs) = w.variant.min_gpu_memory_bytes {
            for (g, fit) in host.gpus.iter().zip(&w.per_gpu) {
                if let (GpuFit::Covered { .. }, Some(free)) = (fit, g.memory_free_bytes) {
                    if free < needs {
                        warnings.push(Warning::LowFreeGpuMemory {
                            gpu: gpu_ref(g, several),
                            needs,
                            free,
                        });
                    }
                }
            }
        }
        let why = if w.variant.device == VariantDevice::Cpu {
            vec!["the CPU runtime".to_string()]
        } else {
            host.gpus
                .iter()
                .zip(&w.per_gpu)
                .filter(|(_, f)| matches!(f, GpuFit::Covered { .. }))
                .map(|(g, f)| fit_words(f, &gpu_ref(g, several)))
                .collect()
        };
        ChosenVariant {
            variant: w.variant.name.clone(),
            label: w.label.clone(),
            device: w.variant.device,
            components,
            needs: w.needs.clone(),
            why,
        }
    });
    // Saturating: a manifest that was not validated must not wrap the disk check to a small
    // figure that passes.
    totals.disk_bytes = totals.download_bytes.saturating_add(totals.unpacked_bytes);

    let outcome = match (host.free_disk_bytes, &chosen) {
        (Some(free), Some(_)) if free < totals.disk_bytes => {
            Outcome::Refused(Refusal::NotEnoughDisk {
                needs: totals.disk_bytes,
                free,
            })
        }
        _ => outcome,
    };

    Plan {
        target_gpus: host.gpus.clone(),
        outcome,
        chosen,
        rejected,
        warnings,
        totals,
    }
}

/// Whether `chosen` takes any library from this machine (a component or a need).
pub fn reuses_system(chosen: &ChosenVariant) -> bool {
    chosen
        .components
        .iter()
        .any(|c| matches!(c.source, Source::System { .. }))
        || chosen
            .needs
            .iter()
            .any(|n| matches!(n.by, NeedSource::System { .. }))
}

/// What an install may try, best first, when the one before fails its verification: the
/// plan's choice; when it reuses libraries from this machine, the same variant with every
/// component downloaded; then each other GPU variant that runs here, in the planner's own
/// ranking (each again with its downloaded form after a reusing one); the CPU variant last.
/// The first entry is [`plan`]'s `chosen` for the same inputs. Empty when the plan chooses
/// nothing. Pure: made by planning again without the variants already listed.
pub fn candidates(
    host: &Host,
    manifest: &Manifest,
    system: &SystemInventory,
    policy: &Policy,
) -> Vec<ChosenVariant> {
    let mut out: Vec<ChosenVariant> = Vec::new();
    let mut left = manifest.clone();
    while let Some(chosen) = plan(host, &left, system, policy).chosen {
        if chosen.device == VariantDevice::Cpu {
            break;
        }
        let name = chosen.variant.clone();
        let reuses = reuses_system(&chosen);
        out.push(chosen);
        if reuses && policy.reuse_system {
            let mut only = manifest.clone();
            only.variants.retain(|v| v.name == name);
            let download = Policy {
                reuse_system: false,
                ..policy.clone()
            };
            let plain = plan(host, &only, &SystemInventory::default(), &download).chosen;
            if let Some(c) = plain.filter(|c| c.variant == name && !reuses_system(c)) {
                out.push(c);
            }
        }
        left.variants.retain(|v| v.name != name);
    }
    let cpu = Policy {
        cpu_only: true,
        ..policy.clone()
    };
    out.extend(plan(host, manifest, system, &cpu).chosen);
    out
}

/// [`plan`] for a manifest whose signature was checked by [`crate::check_signature`]: an
/// unverified manifest accepted under `--allow-unsigned` is the plan's first warning.
pub fn plan_with_trust(
    host: &Host,
    manifest: &Manifest,
    trust: &Trust,
    system: &SystemInventory,
    policy: &Policy,
) -> Plan {
    let mut p = plan(host, manifest, system, policy);
    if let Trust::UnverifiedAllowed { why } = trust {
        p.warnings
            .insert(0, Warning::UnverifiedManifest { why: why.clone() });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_in_words() {
        let cases = [
            (0, "0 B"),
            (12, "12 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (700_000, "684 KiB"),
            (1_500_000_000, "1.4 GiB"),
            (713_000_000, "680 MiB"),
            (22_600_000, "21.6 MiB"),
            (2_282_700_000, "2.1 GiB"),
            (4 << 30, "4.0 GiB"),
            (85_520_809_984, "79.6 GiB"),
            (284 << 20, "284 MiB"),
            // Rounds up into three digits without showing "100.0".
            ((99.97 * 1024.0 * 1024.0) as u64, "100 MiB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_bytes(n), want);
        }
    }

    #[test]
    fn best_gpu_is_highest_cc_then_memory() {
        let g = |index, cc: &str, mem| HostGpu {
            index,
            name: None,
            compute_capability: cc.parse().unwrap(),
            memory_free_bytes: None,
            memory_total_bytes: mem,
        };
        assert_eq!(
            best_gpu(&[g(0, "6.1", Some(8)), g(1, "8.6", Some(4))]),
            Some(1)
        );
        assert_eq!(
            best_gpu(&[g(0, "8.6", Some(4)), g(1, "8.6", Some(8))]),
            Some(1)
        );
        assert_eq!(best_gpu(&[g(0, "8.6", None), g(1, "8.6", None)]), Some(0));
        assert_eq!(best_gpu(&[]), None);
    }
}
