//! The answer of [`detect`](crate::detect): plain, serde-serializable data whose JSON field names
//! are stable (documented in `docs/detect-json.md`).

use serde::{Deserialize, Serialize};

use crate::types::{ArchFamily, ComputeCapability, CudaVersion};
use crate::visibility::DeviceOrder;

/// Bumped when a field changes meaning or disappears; adding a field does not bump it.
pub const SCHEMA_VERSION: u32 = 1;

/// Where the facts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `libnvidia-ml.so.1` (or `GPULIBS_NVML_LIBRARY`) loaded at run time.
    Nvml,
    /// `nvidia-smi --query-gpu=… --format=csv,noheader,nounits`, when NVML could not be used.
    NvidiaSmi,
    /// Neither worked; `problems` says why.
    None,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nvml => "nvml",
            Self::NvidiaSmi => "nvidia-smi",
            Self::None => "none",
        }
    }
}

/// Everything gpulibs knows about this machine's NVIDIA GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// [`SCHEMA_VERSION`] of this shape.
    pub schema_version: u32,
    pub source: Source,
    /// `None` when no source answered.
    pub driver: Option<DriverInfo>,
    /// The GPUs a CUDA program started with the same environment would see, in CUDA ordinal
    /// order (`gpus[i].index == i`).
    pub gpus: Vec<Gpu>,
    /// GPUs present on the machine that `CUDA_VISIBLE_DEVICES` hides from CUDA.
    pub hidden: Vec<HiddenGpu>,
    /// The environment that decided `gpus` and `hidden`.
    pub visibility: Visibility,
    /// Why a GPU is missing or a field is unknown, and what to do about it.
    pub problems: Vec<Problem>,
}

/// The driver's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverInfo {
    /// `"580.159.04"`.
    pub version: Option<String>,
    /// The highest CUDA version the driver runs, written `"13.0"` in JSON.
    #[serde(with = "display_opt")]
    pub cuda: Option<CudaVersion>,
}

/// One GPU as CUDA would number it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// The CUDA device ordinal after `CUDA_DEVICE_ORDER` and `CUDA_VISIBLE_DEVICES`.
    pub index: u32,
    /// NVML's (and `nvidia-smi`'s) index, which ignores `CUDA_VISIBLE_DEVICES`.
    pub nvml_index: u32,
    pub name: Option<String>,
    /// `"GPU-82c4bd45-e6fe-25fc-e029-7df7c8b7376b"`.
    pub uuid: Option<String>,
    /// `"00000000:01:00.0"`.
    pub pci_bus_id: Option<String>,
    /// `"9.0"` in JSON. `None` makes the GPU unusable for planning.
    #[serde(with = "display_opt")]
    pub compute_capability: Option<ComputeCapability>,
    /// `"sm_90"`.
    pub sm: Option<String>,
    /// `"hopper"`.
    pub family: Option<ArchFamily>,
    pub memory_total_bytes: Option<u64>,
    pub memory_free_bytes: Option<u64>,
    /// `None` where the GPU has no MIG (NVML answers NOT_SUPPORTED) or the query failed.
    pub mig: Option<MigMode>,
    /// The MIG device UUID when `CUDA_VISIBLE_DEVICES` selected a MIG device of this GPU rather
    /// than the whole GPU; memory figures are still the whole GPU's.
    pub mig_device: Option<String>,
}

impl Gpu {
    /// Usable for planning: its compute capability is known.
    pub fn is_usable(&self) -> bool {
        self.compute_capability.is_some()
    }
}

/// MIG mode: enabled now, and after the next GPU reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigMode {
    pub current: bool,
    pub pending: bool,
}

/// A GPU that is present but hidden from CUDA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiddenGpu {
    pub nvml_index: u32,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub pci_bus_id: Option<String>,
    /// Why CUDA will not see it, in words.
    pub reason: String,
}

/// The CUDA environment variables as detection applied them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visibility {
    /// The value of `CUDA_VISIBLE_DEVICES`; `None` when unset.
    pub cuda_visible_devices: Option<String>,
    /// The order CUDA numbers devices in.
    pub cuda_device_order: DeviceOrder,
    /// `false` when `index` relies on an approximation of CUDA's undocumented fastest-first
    /// order; `CUDA_DEVICE_ORDER=PCI_BUS_ID` makes it exact.
    pub order_exact: bool,
}

/// How much a problem matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing is missing because of it.
    Info,
    /// A field is unknown, a source was skipped, or the environment hides something.
    Warning,
    /// A GPU (or every GPU) cannot be used because of it.
    Error,
}

/// Why a GPU is missing or a field is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub code: ProblemCode,
    pub severity: Severity,
    /// What happened, to what.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The GPU it is about, by NVML index; `None` for the machine as a whole.
    pub nvml_index: Option<u32>,
}

impl Problem {
    pub fn new(code: ProblemCode, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            code,
            severity,
            message: message.into(),
            hint: None,
            nvml_index: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn gpu(mut self, nvml_index: u32) -> Self {
        self.nvml_index = Some(nvml_index);
        self
    }
}

/// Stable identifiers of problems; scripts match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// The NVML library file could not be found (`libnvidia-ml.so.1` or the override).
    NvmlLibraryNotFound,
    /// The NVML library file exists but could not be loaded (wrong architecture, broken file).
    NvmlLibraryUnloadable,
    /// The loaded library lacks an NVML function gpulibs needs.
    NvmlSymbolMissing,
    /// `nvmlInit` failed for a reason without a code of its own.
    NvmlInitFailed,
    /// NVML loaded but the NVIDIA kernel driver is not running.
    DriverNotLoaded,
    /// Kernel module and user-space driver versions differ (usually after an upgrade).
    DriverLibraryMismatch,
    /// The process may not talk to the GPU devices.
    NoPermission,
    /// The open-source nouveau driver holds the GPU.
    NouveauLoaded,
    /// `/proc/driver/nvidia` is absent: no NVIDIA kernel module.
    KernelModuleMissing,
    /// NVML answered but reported no GPU.
    NoGpu,
    /// Listing the GPUs through NVML failed.
    NvmlQueryFailed,
    /// `nvidia-smi` was not found (only reported when NVML failed too).
    NvidiaSmiNotFound,
    /// `nvidia-smi` ran and failed.
    NvidiaSmiFailed,
    /// `nvidia-smi` printed something gpulibs cannot read.
    NvidiaSmiUnreadable,
    /// The fallback to `nvidia-smi` is turned off.
    NvidiaSmiDisabled,
    /// A GPU query (name, UUID, PCI, MIG, handle) failed.
    GpuQueryFailed,
    /// A GPU's compute capability is unknown; the GPU is unusable for planning.
    ComputeCapabilityUnknown,
    /// A GPU's memory size is unknown (NOT_SUPPORTED on Jetson, for example).
    MemoryUnknown,
    /// The driver's version string is unknown.
    DriverVersionUnknown,
    /// The highest CUDA version the driver runs is unknown.
    CudaVersionUnknown,
    /// GPUs exist but `CUDA_VISIBLE_DEVICES` hides all of them.
    AllGpusHidden,
    /// An entry of `CUDA_VISIBLE_DEVICES` names no GPU; CUDA ignores it and all after it.
    VisibleDevicesInvalidEntry,
    /// `CUDA_VISIBLE_DEVICES` names one GPU twice; CUDA then sees no GPU at all.
    VisibleDevicesDuplicate,
    /// A `MIG-` entry could not be checked against the MIG devices.
    VisibleDevicesMigUnresolved,
    /// `CUDA_DEVICE_ORDER` has a value CUDA does not know; the default applies.
    DeviceOrderInvalid,
    /// The CUDA ordinals follow an approximation of CUDA's fastest-first order.
    DeviceOrderApproximate,
    /// A code this version of gpulibs does not know (read from newer JSON).
    #[serde(other)]
    Other,
}

impl ProblemCode {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NvmlLibraryNotFound => "nvml_library_not_found",
            Self::NvmlLibraryUnloadable => "nvml_library_unloadable",
            Self::NvmlSymbolMissing => "nvml_symbol_missing",
            Self::NvmlInitFailed => "nvml_init_failed",
            Self::DriverNotLoaded => "driver_not_loaded",
            Self::DriverLibraryMismatch => "driver_library_mismatch",
            Self::NoPermission => "no_permission",
            Self::NouveauLoaded => "nouveau_loaded",
            Self::KernelModuleMissing => "kernel_module_missing",
            Self::NoGpu => "no_gpu",
            Self::NvmlQueryFailed => "nvml_query_failed",
            Self::NvidiaSmiNotFound => "nvidia_smi_not_found",
            Self::NvidiaSmiFailed => "nvidia_smi_failed",
            Self::NvidiaSmiUnreadable => "nvidia_smi_unreadable",
            Self::NvidiaSmiDisabled => "nvidia_smi_disabled",
            Self::GpuQueryFailed => "gpu_query_failed",
            Self::ComputeCapabilityUnknown => "compute_capability_unknown",
            Self::MemoryUnknown => "memory_unknown",
            Self::DriverVersionUnknown => "driver_version_unknown",
            Self::CudaVersionUnknown => "cuda_version_unknown",
            Self::AllGpusHidden => "all_gpus_hidden",
            Self::VisibleDevicesInvalidEntry => "visible_devices_invalid_entry",
            Self::VisibleDevicesDuplicate => "visible_devices_duplicate",
            Self::VisibleDevicesMigUnresolved => "visible_devices_mig_unresolved",
            Self::DeviceOrderInvalid => "device_order_invalid",
            Self::DeviceOrderApproximate => "device_order_approximate",
            Self::Other => "other",
        }
    }
}

impl Detection {
    /// The visible GPUs whose compute capability is known, in CUDA ordinal order: the ones a
    /// plan can target.
    pub fn usable_gpus(&self) -> impl Iterator<Item = &Gpu> {
        self.gpus.iter().filter(|g| g.is_usable())
    }

    pub fn has_usable_gpu(&self) -> bool {
        self.usable_gpus().next().is_some()
    }

    /// The distinct compute capabilities of the usable GPUs, lowest first: what kernels a plan
    /// must cover.
    pub fn compute_capabilities(&self) -> Vec<ComputeCapability> {
        let mut ccs: Vec<_> = self
            .usable_gpus()
            .filter_map(|g| g.compute_capability)
            .collect();
        ccs.sort();
        ccs.dedup();
        ccs
    }

    /// The highest CUDA version the driver runs, when known.
    pub fn driver_cuda(&self) -> Option<CudaVersion> {
        self.driver.as_ref().and_then(|d| d.cuda)
    }

    /// The visible GPU with CUDA ordinal `index`.
    pub fn gpu(&self, index: u32) -> Option<&Gpu> {
        self.gpus.iter().find(|g| g.index == index)
    }

    /// The first problem with `code`.
    pub fn problem(&self, code: ProblemCode) -> Option<&Problem> {
        self.problems.iter().find(|p| p.code == code)
    }

    pub fn has_problem(&self, code: ProblemCode) -> bool {
        self.problem(code).is_some()
    }

    /// The problems of [`Severity::Error`]: why a GPU cannot be used.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }
}

/// Serializes `Option<T>` through `Display` / `FromStr`, so `9.0` and `13.0` read as people write
/// them rather than as `{major, minor}` objects.
mod display_opt {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        match Option::<String>::deserialize(d)? {
            Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
