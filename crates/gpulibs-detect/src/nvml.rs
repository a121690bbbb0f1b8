//! Detection through NVML, loaded at run time with `nvml-wrapper`.
//!
//! `nvml-wrapper` dlopens the library and resolves every symbol up front but keeps each as a
//! `Result`, failing only the call whose symbol is missing; so a library lacking an optional
//! function (old drivers lack `nvmlDeviceGetMemoryInfo_v2`) still answers the rest. The C
//! functions called here, which the fake NVML must export: `nvmlInit_v2`, `nvmlShutdown`,
//! `nvmlSystemGetDriverVersion`, `nvmlSystemGetCudaDriverVersion_v2`, `nvmlDeviceGetCount_v2`,
//! `nvmlDeviceGetHandleByIndex_v2`, `nvmlDeviceGetName`, `nvmlDeviceGetUUID`,
//! `nvmlDeviceGetPciInfo_v3`, `nvmlDeviceGetCudaComputeCapability`,
//! `nvmlDeviceGetMemoryInfo_v2` (then `nvmlDeviceGetMemoryInfo`), `nvmlDeviceGetMigMode`,
//! `nvmlDeviceGetMaxMigDeviceCount`, `nvmlDeviceGetMigDeviceHandleByIndex`.

use std::path::Path;

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

use crate::diagnose::{self, KernelDriverState, NvmlFailure};
use crate::inventory::{Inventory, RawGpu};
use crate::model::{DriverInfo, MigMode, Problem, ProblemCode, Severity, Source};
use crate::types::{ComputeCapability, CudaVersion};

/// The name the dynamic loader searches for when no override is given (what `nvml-wrapper`
/// opens by default).
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";

/// `NVML_ERROR_ARGUMENT_VERSION_MISMATCH`: a driver that knows the function but not the v2
/// struct.
const ARGUMENT_VERSION_MISMATCH: u32 = 25;

/// Lists every GPU through NVML. `Err` carries why NVML could not be used at all; `kernel` is
/// consulted only then, so the common path reads nothing from `/proc`.
pub fn query(
    library: Option<&Path>,
    kernel: impl FnOnce() -> KernelDriverState,
) -> Result<Inventory, Vec<Problem>> {
    let label = library.map_or_else(|| DEFAULT_LIBRARY.to_string(), |p| p.display().to_string());
    let mut builder = Nvml::builder();
    if let Some(path) = library {
        builder.lib_path(path.as_os_str());
    }
    let nvml = builder.init().map_err(|e| {
        let failure = classify_init_error(e, library, &label);
        diagnose::nvml_failure_problems(&failure, &kernel())
    })?;
    Ok(inventory(&nvml))
}

/// Maps `nvml-wrapper`'s error from loading and `nvmlInit_v2` to a failure gpulibs explains.
fn classify_init_error(error: NvmlError, library: Option<&Path>, label: &str) -> NvmlFailure {
    match error {
        NvmlError::LibloadingError(e) => {
            let detail = e.to_string();
            // A named file that is absent, or the loader's own "No such file" for a bare name;
            // anything else (wrong ELF class, missing dependency) is a file that exists.
            let not_found = match library {
                Some(path) if diagnose::is_path(path) => !path.exists(),
                _ => {
                    detail.contains("No such file") || detail.contains("cannot open shared object")
                }
            };
            NvmlFailure::LibraryNotLoadable {
                library: label.to_string(),
                detail,
                not_found,
            }
        }
        NvmlError::FailedToLoadSymbol(detail) => NvmlFailure::SymbolMissing {
            library: label.to_string(),
            symbol: symbol_name(&detail).unwrap_or("nvmlInit_v2").to_string(),
        },
        NvmlError::DriverNotLoaded => NvmlFailure::DriverNotLoaded,
        NvmlError::LibRmVersionMismatch => NvmlFailure::LibRmVersionMismatch,
        NvmlError::NoPermission => NvmlFailure::NoPermission,
        other => NvmlFailure::Other(error_text(&other)),
    }
}

/// The symbol in a loader message such as `…: undefined symbol: nvmlInit_v2`.
fn symbol_name(detail: &str) -> Option<&str> {
    detail
        .rsplit_once("undefined symbol: ")
        .map(|(_, s)| s.trim())
}

/// NVML's own name for the common codes, so messages match what people search for.
fn error_text(e: &NvmlError) -> String {
    match e {
        NvmlError::NotSupported => "NOT_SUPPORTED".to_string(),
        NvmlError::NoPermission => "NO_PERMISSION".to_string(),
        NvmlError::GpuLost => "GPU_IS_LOST".to_string(),
        NvmlError::Unknown => "UNKNOWN".to_string(),
        other => other.to_string(),
    }
}

fn inventory(nvml: &Nvml) -> Inventory {
    let mut problems = Vec::new();

    let version = match nvml.sys_driver_version() {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(Problem::new(
                ProblemCode::DriverVersionUnknown,
                Severity::Warning,
                format!("NVML did not report the driver version: {}", error_text(&e)),
            ));
            None
        }
    };
    let cuda = match nvml.sys_cuda_driver_version() {
        Ok(v) if v > 0 => Some(CudaVersion::from_driver_int(v.unsigned_abs())),
        result => {
            let why = match result {
                Err(e) => error_text(&e),
                Ok(v) => format!("it answered {v}"),
            };
            problems.push(
                Problem::new(
                    ProblemCode::CudaVersionUnknown,
                    Severity::Warning,
                    format!("NVML did not report the driver's highest CUDA version: {why}"),
                )
                .hint(
                    "the driver release notes list the CUDA version of each driver branch; \
                     plans that need a CUDA version cannot be checked against this driver",
                ),
            );
            None
        }
    };

    let mut gpus = Vec::new();
    match nvml.device_count() {
        Ok(0) => problems.push(
            Problem::new(ProblemCode::NoGpu, Severity::Error, "NVML reports no NVIDIA GPU")
                .hint("check that the GPU is seated and powered and that `lspci | grep -i nvidia` lists it"),
        ),
        Ok(count) => {
            for index in 0..count {
                gpus.push(gpu(nvml, index, &mut problems));
            }
        }
        Err(e) => problems.push(Problem::new(
            ProblemCode::NvmlQueryFailed,
            Severity::Error,
            format!("NVML could not count the GPUs: {}", error_text(&e)),
        )),
    }

    Inventory {
        source: Source::Nvml,
        driver: DriverInfo { version, cuda },
        gpus,
        problems,
    }
}

fn gpu(nvml: &Nvml, index: u32, problems: &mut Vec<Problem>) -> RawGpu {
    let mut raw = RawGpu {
        nvml_index: index,
        ..RawGpu::default()
    };
    let device = match nvml.device_by_index(index) {
        Ok(d) => d,
        Err(e) => {
            problems.push(
                Problem::new(
                    ProblemCode::GpuQueryFailed,
                    Severity::Error,
                    format!("NVML could not open GPU {index}: {}", error_text(&e)),
                )
                .hint("run `nvidia-smi` to see the state of this GPU; GPU_IS_LOST needs a reboot")
                .gpu(index),
            );
            return raw;
        }
    };
    // A field that fails is a `None` and a warning, never a failed detection.
    let mut field = |what: &str, e: NvmlError| {
        problems.push(
            Problem::new(
                ProblemCode::GpuQueryFailed,
                Severity::Warning,
                format!(
                    "NVML did not report the {what} of GPU {index}: {}",
                    error_text(&e)
                ),
            )
            .gpu(index),
        );
    };
    raw.name = device.name().map_err(|e| field("name", e)).ok();
    raw.uuid = device.uuid().map_err(|e| field("UUID", e)).ok();
    raw.pci_bus_id = match device.pci_info() {
        Ok(pci) => Some(pci.bus_id),
        // Integrated GPUs (Jetson) have no PCI identity; that is not a problem.
        Err(NvmlError::NotSupported) => None,
        Err(e) => {
            field("PCI bus id", e);
            None
        }
    };
    raw.mig = match device.mig_mode() {
        Ok(m) => Some(MigMode {
            current: m.current == 1,
            pending: m.pending == 1,
        }),
        // GPUs without MIG answer NOT_SUPPORTED; that is the normal case.
        Err(NvmlError::NotSupported) => None,
        Err(e) => {
            field("MIG mode", e);
            None
        }
    };
    if raw.mig.is_some_and(|m| m.current) {
        raw.mig_devices = mig_devices(&device);
    }

    match device.cuda_compute_capability() {
        Ok(cc) => match (u32::try_from(cc.major), u32::try_from(cc.minor)) {
            (Ok(major), Ok(minor)) => {
                raw.compute_capability = Some(ComputeCapability::new(major, minor))
            }
            _ => problems.push(cc_unknown(
                index,
                &format!("it answered {}.{}", cc.major, cc.minor),
            )),
        },
        Err(e) => problems.push(cc_unknown(index, &error_text(&e))),
    }

    match memory(nvml, &device) {
        Ok((total, free)) => {
            raw.memory_total_bytes = Some(total);
            raw.memory_free_bytes = Some(free);
        }
        Err(e) => problems.push(
            Problem::new(
                ProblemCode::MemoryUnknown,
                Severity::Warning,
                format!(
                    "NVML did not report the memory of GPU {index}: {}",
                    error_text(&e)
                ),
            )
            .hint(
                "integrated GPUs (Jetson) share system memory and answer NOT_SUPPORTED; \
                 plans treat this GPU's memory as unknown",
            )
            .gpu(index),
        ),
    }
    raw
}

fn cc_unknown(index: u32, why: &str) -> Problem {
    Problem::new(
        ProblemCode::ComputeCapabilityUnknown,
        Severity::Error,
        format!("NVML did not report the compute capability of GPU {index} ({why}), so gpulibs cannot choose kernels for it"),
    )
    .hint("update the NVIDIA driver; `nvidia-smi --query-gpu=compute_cap --format=csv` may show it")
    .gpu(index)
}

/// Total and free bytes: `nvmlDeviceGetMemoryInfo_v2`, or v1 where the driver predates it.
/// `free` means the same in both versions (measured on R580), so v1 loses nothing here.
fn memory(nvml: &Nvml, device: &Device<'_>) -> Result<(u64, u64), NvmlError> {
    match device.memory_info() {
        Ok(m) => Ok((m.total, m.free)),
        Err(
            NvmlError::FailedToLoadSymbol(_)
            | NvmlError::FunctionNotFound
            | NvmlError::UnexpectedVariant(ARGUMENT_VERSION_MISMATCH),
        ) => memory_v1(nvml, device),
        Err(e) => Err(e),
    }
}

fn memory_v1(nvml: &Nvml, device: &Device<'_>) -> Result<(u64, u64), NvmlError> {
    let function = nvml
        .lib()
        .nvmlDeviceGetMemoryInfo
        .as_ref()
        .map_err(|e| NvmlError::FailedToLoadSymbol(e.to_string()))?;
    let mut memory = nvml_wrapper_sys::bindings::nvmlMemory_t {
        total: 0,
        free: 0,
        used: 0,
    };
    // SAFETY: `device` is a live handle of this `nvml`, and `memory` is the `nvmlMemory_t` the
    // v1 function fills.
    let code = unsafe { function(device.handle(), &mut memory) };
    nvml_wrapper::error::nvml_try(code)?;
    Ok((memory.total, memory.free))
}

/// UUIDs of the MIG devices of a MIG-enabled GPU; empty slots answer NOT_FOUND and are skipped.
fn mig_devices(device: &Device<'_>) -> Vec<String> {
    let count = device.mig_device_count().unwrap_or(0);
    (0..count)
        .filter_map(|i| device.mig_device_by_index(i).ok())
        .filter_map(|mig| mig.uuid().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_names_from_loader_messages() {
        assert_eq!(
            symbol_name("/usr/lib/libc.so.6: undefined symbol: nvmlInit_v2"),
            Some("nvmlInit_v2")
        );
        assert_eq!(symbol_name("something else"), None);
    }

    #[test]
    fn init_errors_are_classified() {
        let failure = classify_init_error(
            NvmlError::FailedToLoadSymbol("x: undefined symbol: nvmlInit_v2".into()),
            None,
            DEFAULT_LIBRARY,
        );
        assert_eq!(
            failure,
            NvmlFailure::SymbolMissing {
                library: DEFAULT_LIBRARY.into(),
                symbol: "nvmlInit_v2".into()
            }
        );
        assert_eq!(
            classify_init_error(NvmlError::LibRmVersionMismatch, None, DEFAULT_LIBRARY),
            NvmlFailure::LibRmVersionMismatch
        );
    }
}
