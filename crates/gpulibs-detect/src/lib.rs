//! GPU detection.
//!
//! Owns: finding the NVIDIA GPUs of this machine and what they can run — compute capability,
//! architecture family, VRAM, MIG mode, driver version and the highest CUDA version the driver
//! runs — and, when no GPU is usable, the reasons in words a person can act on. It loads NVML at
//! run time (so the binary runs where no NVIDIA software is installed), falls back to parsing
//! `nvidia-smi` output, and applies `CUDA_VISIBLE_DEVICES` / `CUDA_DEVICE_ORDER` the way CUDA does.
//!
//! Also owns the vocabulary every later stage speaks: [`ComputeCapability`], [`ArchFamily`] and
//! [`CudaVersion`].
//!
//! Also answers how much host RAM can be allocated now ([`mem_available_bytes`],
//! `/proc/meminfo`), which model recommendation weighs next to free VRAM.
//!
//! Must not touch: CUDA binaries (that is `gpulibs-inspect`), the network or the install root.
//! It never loads `libcuda`: CUDA's view is derived from NVML plus CUDA's documented (and here
//! measured) rules, so detection cannot create a CUDA context or change GPU state.
//!
//! # API
//!
//! ```no_run
//! use gpulibs_detect::{detect, DetectOptions, Source};
//!
//! let detection = detect(&DetectOptions::from_env());
//! if detection.source == Source::None {
//!     for problem in &detection.problems {
//!         eprintln!("{}: {}", problem.code.as_str(), problem.message);
//!     }
//! }
//! for gpu in detection.usable_gpus() {
//!     println!("{} {:?} {:?}", gpu.index, gpu.name, gpu.sm);
//! }
//! ```
//!
//! - [`detect`]`(&DetectOptions) -> Detection` never fails and never panics: whatever cannot be
//!   learned becomes a `None` field plus a [`Problem`] with a stable [`ProblemCode`].
//! - [`DetectOptions::from_env`] reads `GPULIBS_NVML_LIBRARY`, `CUDA_VISIBLE_DEVICES` and
//!   `CUDA_DEVICE_ORDER`; [`DetectOptions::isolated`] reads nothing, for tests and for callers
//!   that pass the values themselves.
//! - [`assemble`] is the pure step from a source's [`Inventory`] to a [`Detection`].
//! - The pure rules live in [`visibility`] (CUDA's device selection and order), [`smi`]
//!   (`nvidia-smi` CSV) and [`diagnose`] (why no GPU).
//!
//! `Detection` serializes to the JSON documented in `docs/detect-json.md`; the field names are
//! stable. The driver's CUDA version and compute capabilities are strings there (`"13.0"`,
//! `"9.0"`).
//!
//! # Order of sources
//!
//! 1. NVML from `GPULIBS_NVML_LIBRARY` or `libnvidia-ml.so.1` (about 20 ms, no process).
//! 2. If NVML cannot be loaded or initialised, and the fallback is allowed:
//!    `nvidia-smi --query-gpu=… --format=csv,noheader,nounits`. NVML's failure stays in
//!    `problems` as a warning.
//! 3. Otherwise `source` is `none`, and `problems` says why, using `/proc/driver/nvidia` and
//!    `/sys/module/nouveau` to tell a missing driver from a nouveau one or a version mismatch.

pub mod diagnose;
pub mod inventory;
pub mod memory;
mod model;
mod nvml;
pub mod smi;
mod types;
pub mod visibility;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

pub use diagnose::FsRoots;
pub use inventory::{Inventory, RawGpu};
pub use memory::mem_available_bytes;
pub use model::{
    Detection, DriverInfo, Gpu, HiddenGpu, MigMode, Problem, ProblemCode, Severity, Source,
    Visibility, SCHEMA_VERSION,
};
pub use nvml::DEFAULT_LIBRARY as DEFAULT_NVML_LIBRARY;
pub use types::{ArchFamily, ComputeCapability, CudaVersion, ParseError};
pub use visibility::DeviceOrder;

use diagnose::KernelDriverState;

/// Environment variable naming another NVML library file to load.
pub const NVML_LIBRARY_ENV: &str = "GPULIBS_NVML_LIBRARY";

/// What [`detect`] looks at. Every input is data, so tests need no process environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectOptions {
    /// The NVML library to load; `None` lets the loader find `libnvidia-ml.so.1`.
    pub nvml_library: Option<PathBuf>,
    /// `CUDA_VISIBLE_DEVICES`; `None` = unset, `Some("")` = set and empty (hides every GPU).
    pub cuda_visible_devices: Option<String>,
    /// `CUDA_DEVICE_ORDER`; `None` = unset.
    pub cuda_device_order: Option<String>,
    /// Whether to run `nvidia-smi` when NVML cannot be used.
    pub nvidia_smi_fallback: bool,
    /// The `nvidia-smi` program; `None` = search `PATH` (only when the fallback runs).
    pub nvidia_smi: Option<PathBuf>,
    /// Where `/proc` and `/sys` are, for the diagnosis of a missing driver.
    pub fs_roots: FsRoots,
}

impl DetectOptions {
    /// Nothing from the environment: default library, variables unset, fallback on.
    pub fn isolated() -> Self {
        Self {
            nvml_library: None,
            cuda_visible_devices: None,
            cuda_device_order: None,
            nvidia_smi_fallback: true,
            nvidia_smi: None,
            fs_roots: FsRoots::default(),
        }
    }

    /// What the process environment says: `GPULIBS_NVML_LIBRARY` (ignored when empty),
    /// `CUDA_VISIBLE_DEVICES` and `CUDA_DEVICE_ORDER`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        Self {
            nvml_library: std::env::var_os(NVML_LIBRARY_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            cuda_visible_devices: var("CUDA_VISIBLE_DEVICES"),
            cuda_device_order: var("CUDA_DEVICE_ORDER"),
            ..Self::isolated()
        }
    }
}

/// Finds the GPUs, the driver, and what CUDA would see. Never fails; see the crate doc.
pub fn detect(options: &DetectOptions) -> Detection {
    let kernel = || KernelDriverState::read(&options.fs_roots);
    // nvml-wrapper panics if a library lacks `nvmlShutdown` when it is dropped; a library named
    // by the user may be anything, so a panic is one more way for NVML to fail.
    let nvml = catch_unwind(AssertUnwindSafe(|| {
        nvml::query(options.nvml_library.as_deref(), kernel)
    }))
    .unwrap_or_else(|_| {
        Err(vec![Problem::new(
            ProblemCode::NvmlInitFailed,
            Severity::Error,
            "the NVML library misbehaved (a call panicked); it is probably not NVIDIA's",
        )
        .hint(
            "unset GPULIBS_NVML_LIBRARY or point it at the driver's libnvidia-ml.so.1",
        )])
    });

    let nvml_problems = match nvml {
        Ok(inventory) => return assemble(Some(inventory), options, Vec::new()),
        Err(problems) => problems,
    };
    match nvidia_smi(options) {
        Ok(inventory) => {
            // NVML's failure did not cost the answer; it still explains the slower source.
            let problems = nvml_problems
                .into_iter()
                .map(|p| Problem {
                    severity: p.severity.min(Severity::Warning),
                    ..p
                })
                .collect();
            assemble(Some(inventory), options, problems)
        }
        Err(smi_problems) => {
            let mut problems = nvml_problems;
            problems.extend(smi_problems);
            assemble(None, options, problems)
        }
    }
}

fn nvidia_smi(options: &DetectOptions) -> Result<Inventory, Vec<Problem>> {
    if !options.nvidia_smi_fallback {
        return Err(vec![Problem::new(
            ProblemCode::NvidiaSmiDisabled,
            Severity::Info,
            "the nvidia-smi fallback is turned off",
        )]);
    }
    let program = match &options.nvidia_smi {
        Some(p) => p.clone(),
        None => smi::find_on_path().ok_or_else(|| {
            vec![Problem::new(
                ProblemCode::NvidiaSmiNotFound,
                Severity::Warning,
                "nvidia-smi is not on PATH either",
            )
            .hint("nvidia-smi comes with the NVIDIA driver; its absence usually means the driver is not installed")]
        })?,
    };
    smi::query(&program)
}

/// The pure step after the sources: applies `CUDA_DEVICE_ORDER` and `CUDA_VISIBLE_DEVICES` to
/// `inventory` (`None` when no source answered) and gathers the problems, `earlier` first.
pub fn assemble(
    inventory: Option<Inventory>,
    options: &DetectOptions,
    earlier: Vec<Problem>,
) -> Detection {
    let (order, order_problem) = DeviceOrder::parse(options.cuda_device_order.as_deref());
    let cuda_visible_devices = options.cuda_visible_devices.clone();
    let mut problems = earlier;
    problems.extend(order_problem);

    let Some(inventory) = inventory else {
        if !problems.iter().any(|p| p.severity == Severity::Error) {
            problems.push(Problem::new(
                ProblemCode::NvmlInitFailed,
                Severity::Error,
                "neither NVML nor nvidia-smi answered",
            ));
        }
        return Detection {
            schema_version: SCHEMA_VERSION,
            source: Source::None,
            driver: None,
            gpus: Vec::new(),
            hidden: Vec::new(),
            visibility: Visibility {
                cuda_visible_devices,
                cuda_device_order: order,
                order_exact: true,
            },
            problems: dedup(problems),
        };
    };

    problems.extend(inventory.problems);
    let raw = &inventory.gpus;
    let enumeration = visibility::enumeration_order(raw, order);
    let selection = visibility::select_visible(raw, &enumeration, cuda_visible_devices.as_deref());
    problems.extend(selection.problems);

    let order_exact = order == DeviceOrder::PciBusId || raw.len() <= 1 || !selection.ordinals_used;
    if !order_exact {
        problems.push(
            Problem::new(
                ProblemCode::DeviceOrderApproximate,
                Severity::Info,
                "CUDA numbers GPUs fastest first by a heuristic NVIDIA does not document; the \
                 `index` values approximate it (highest compute capability, then most memory, \
                 then PCI order)",
            )
            .hint(
                "set CUDA_DEVICE_ORDER=PCI_BUS_ID to make CUDA number GPUs like nvidia-smi \
                 and these indices exact, or select GPUs by UUID in CUDA_VISIBLE_DEVICES",
            ),
        );
    }

    let gpus = selection
        .visible
        .iter()
        .zip(0u32..)
        .map(|(selected, index)| {
            let g = &raw[selected.slot];
            Gpu {
                index,
                nvml_index: g.nvml_index,
                name: g.name.clone(),
                uuid: g.uuid.clone(),
                pci_bus_id: g.pci_bus_id.clone(),
                compute_capability: g.compute_capability,
                sm: g.compute_capability.map(ComputeCapability::sm_name),
                family: g.compute_capability.map(ComputeCapability::family),
                memory_total_bytes: g.memory_total_bytes,
                memory_free_bytes: g.memory_free_bytes,
                mig: g.mig,
                mig_device: selected.mig_device.clone(),
            }
        })
        .collect();
    let hidden = selection
        .hidden
        .into_iter()
        .map(|(slot, reason)| {
            let g = &raw[slot];
            HiddenGpu {
                nvml_index: g.nvml_index,
                name: g.name.clone(),
                uuid: g.uuid.clone(),
                pci_bus_id: g.pci_bus_id.clone(),
                reason,
            }
        })
        .collect();

    Detection {
        schema_version: SCHEMA_VERSION,
        source: inventory.source,
        driver: Some(inventory.driver),
        gpus,
        hidden,
        visibility: Visibility {
            cuda_visible_devices,
            cuda_device_order: order,
            order_exact,
        },
        problems: dedup(problems),
    }
}

/// Keeps the first problem of each (code, GPU): NVML and nvidia-smi often fail for one cause.
fn dedup(problems: Vec<Problem>) -> Vec<Problem> {
    let mut seen = std::collections::HashSet::new();
    problems
        .into_iter()
        .filter(|p| seen.insert((p.code, p.nvml_index)))
        .collect()
}

impl Detection {
    /// The JSON of `docs/detect-json.md`, pretty-printed.
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain structs with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
