//! A fake `libnvidia-ml.so`: the test double at gpulibs' hardware boundary.
//!
//! Owns: a shared library exporting the NVML C functions that `gpulibs-detect` calls through
//! `nvml-wrapper`, answering from a JSON scenario named by the `GPULIBS_FAKE_NVML` environment
//! variable (read at every `nvmlInit_v2`), with injectable failures: an init error, or any query
//! returning a chosen NVML error code (`NOT_SUPPORTED` on Jetson, for example).
//!
//! Tests load it through the very dlopen path the real library takes (`GPULIBS_NVML_LIBRARY` /
//! `DetectOptions::nvml_library`), so the code under test cannot tell the difference.
//!
//! Must not touch: anything shipped. It is `publish = false`, no crate depends on it, and it knows
//! nothing about gpulibs beyond the C ABI of NVML. Every answer comes from the scenario file;
//! nothing is invented here.
//!
//! # Scenario format
//!
//! ```json
//! {
//!   "description": "free text",
//!   "init_error": null,
//!   "driver_version": "580.159.04",
//!   "cuda_driver_version": 13000,
//!   "errors": { "cuda_driver_version": "not_supported" },
//!   "gpus": [{
//!     "name": "NVIDIA H100 80GB HBM3",
//!     "uuid": "GPU-…",
//!     "pci_bus_id": "00000000:01:00.0",
//!     "pci_device_id": 590418142,
//!     "compute_capability": "9.0",
//!     "memory": { "total": 85520809984, "reserved": 503316480, "free": 85017493504 },
//!     "mig": { "current": 0, "pending": 0 },
//!     "mig_devices": ["MIG-…"],
//!     "errors": { "memory": "not_supported" }
//!   }]
//! }
//! ```
//!
//! `init_error` and the values of `errors` are NVML return codes in snake case without the
//! `NVML_ERROR_` prefix (`driver_not_loaded`, `lib_rm_version_mismatch`, `not_supported`,
//! `no_permission`, …). System-level `errors` keys: `device_count`, `driver_version`,
//! `cuda_driver_version`. Per-GPU keys: `handle`, `name`, `uuid`, `pci_info`,
//! `compute_capability`, `memory`, `mig`, and `memory_v2` (only `nvmlDeviceGetMemoryInfo_v2`
//! fails, as on drivers that predate it, so callers fall back to v1). A GPU without `mig`
//! answers the MIG query with `NOT_SUPPORTED`, as GPUs without MIG do.

// Every export is called by C code with raw pointers; the safety contract is NVML's own
// (valid, writable pointers of the documented types), which the callers uphold.
#![allow(clippy::missing_safety_doc)]

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::Mutex;

use serde::Deserialize;

type NvmlReturn = c_uint;
type Device = *mut c_void;

const SUCCESS: NvmlReturn = 0;
const ERROR_UNINITIALIZED: NvmlReturn = 1;
const ERROR_INVALID_ARGUMENT: NvmlReturn = 2;
const ERROR_NOT_SUPPORTED: NvmlReturn = 3;
const ERROR_NOT_FOUND: NvmlReturn = 6;
const ERROR_INSUFFICIENT_SIZE: NvmlReturn = 7;
const ERROR_ARGUMENT_VERSION_MISMATCH: NvmlReturn = 25;
const ERROR_UNKNOWN: NvmlReturn = 999;

/// The NVML return codes a scenario may name, as in `nvml.h`.
fn return_code(name: &str) -> Option<NvmlReturn> {
    Some(match name {
        "success" => 0,
        "uninitialized" => 1,
        "invalid_argument" => 2,
        "not_supported" => 3,
        "no_permission" => 4,
        "already_initialized" => 5,
        "not_found" => 6,
        "insufficient_size" => 7,
        "insufficient_power" => 8,
        "driver_not_loaded" => 9,
        "timeout" => 10,
        "irq_issue" => 11,
        "library_not_found" => 12,
        "function_not_found" => 13,
        "corrupted_inforom" => 14,
        "gpu_is_lost" => 15,
        "reset_required" => 16,
        "operating_system" => 17,
        "lib_rm_version_mismatch" => 18,
        "in_use" => 19,
        "memory" => 20,
        "no_data" => 21,
        "argument_version_mismatch" => 25,
        "unknown" => 999,
        _ => return None,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    #[serde(default)]
    #[allow(dead_code)] // documentation for people reading the file
    description: String,
    #[serde(default)]
    init_error: Option<String>,
    #[serde(default)]
    driver_version: String,
    #[serde(default)]
    cuda_driver_version: i32,
    #[serde(default)]
    errors: BTreeMap<String, String>,
    #[serde(default)]
    gpus: Vec<Gpu>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Gpu {
    name: String,
    uuid: String,
    pci_bus_id: String,
    #[serde(default)]
    pci_device_id: u32,
    /// `"9.0"`.
    compute_capability: String,
    memory: Memory,
    #[serde(default)]
    mig: Option<Mig>,
    #[serde(default)]
    mig_devices: Vec<String>,
    #[serde(default)]
    errors: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Memory {
    total: u64,
    #[serde(default)]
    reserved: u64,
    free: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mig {
    current: u32,
    pending: u32,
}

/// `nvmlPciInfo_t` as `nvml.h` (and nvml-wrapper-sys 0.10) lays it out.
#[repr(C)]
pub struct PciInfo {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
pub struct MemoryV2 {
    version: c_uint,
    total: u64,
    reserved: u64,
    free: u64,
    used: u64,
}

/// `nvmlMemory_t` (v1), for callers that still use it.
#[repr(C)]
pub struct MemoryV1 {
    total: u64,
    free: u64,
    used: u64,
}

/// `NVML_STRUCT_VERSION(Memory, 2)`: the size in the low bits, the version in the top byte. The
/// real library rejects any other value, so a caller with the wrong layout fails here too.
const MEMORY_V2_VERSION: c_uint = (std::mem::size_of::<MemoryV2>() as c_uint) | (2 << 24);

/// The scenario loaded by the last successful `nvmlInit_v2`; `None` before init or after
/// shutdown, which makes every query answer `UNINITIALIZED` like the real library.
static STATE: Mutex<Option<Scenario>> = Mutex::new(None);

fn load_scenario() -> Result<Scenario, String> {
    let path = std::env::var_os("GPULIBS_FAKE_NVML")
        .ok_or_else(|| "GPULIBS_FAKE_NVML is not set; it must name a scenario file".to_string())?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read scenario {}: {e}", path.to_string_lossy()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("scenario {} is not valid: {e}", path.to_string_lossy()))
}

/// Runs `f` on the loaded scenario, or answers `UNINITIALIZED`.
fn with_scenario(f: impl FnOnce(&Scenario) -> NvmlReturn) -> NvmlReturn {
    match STATE.lock() {
        Ok(guard) => match guard.as_ref() {
            Some(scenario) => f(scenario),
            None => ERROR_UNINITIALIZED,
        },
        Err(_) => ERROR_UNKNOWN,
    }
}

/// The injected error for `key`, if the scenario names one.
fn injected(errors: &BTreeMap<String, String>, key: &str) -> Option<NvmlReturn> {
    errors
        .get(key)
        .map(|name| return_code(name).unwrap_or(ERROR_UNKNOWN))
}

// Device handles are opaque to callers; the fake encodes "GPU i" as i + 1 and "MIG device m of
// GPU i" as (m + 1) << 16 | (i + 1), so no memory is ever handed out or freed.
fn handle_for(gpu: usize, mig: Option<usize>) -> Device {
    let value = (gpu + 1) | mig.map_or(0, |m| (m + 1) << 16);
    std::ptr::without_provenance_mut(value)
}

enum Handle<'a> {
    Gpu(&'a Gpu),
    Mig(&'a Gpu, &'a str),
}

fn resolve(scenario: &Scenario, device: Device) -> Option<Handle<'_>> {
    let value = device as usize;
    let gpu = scenario.gpus.get((value & 0xffff).checked_sub(1)?)?;
    match (value >> 16).checked_sub(1) {
        None => Some(Handle::Gpu(gpu)),
        Some(m) => Some(Handle::Mig(gpu, gpu.mig_devices.get(m)?)),
    }
}

/// Runs `f` on the GPU behind `device`, after the injected error for `key`.
fn with_gpu(device: Device, key: &str, f: impl FnOnce(&Gpu) -> NvmlReturn) -> NvmlReturn {
    with_scenario(|scenario| match resolve(scenario, device) {
        Some(Handle::Gpu(gpu)) | Some(Handle::Mig(gpu, _)) => match injected(&gpu.errors, key) {
            Some(code) => code,
            None => f(gpu),
        },
        None => ERROR_INVALID_ARGUMENT,
    })
}

/// Copies `text` and its NUL into a caller buffer of `length` bytes.
unsafe fn write_c_string(text: &str, buffer: *mut c_char, length: c_uint) -> NvmlReturn {
    if buffer.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    let bytes = text.as_bytes();
    if bytes.len() + 1 > length as usize {
        return ERROR_INSUFFICIENT_SIZE;
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buffer, bytes.len());
    *buffer.add(bytes.len()) = 0;
    SUCCESS
}

fn copy_into<const N: usize>(text: &str, out: &mut [c_char; N]) {
    for (slot, byte) in out.iter_mut().zip(text.bytes().take(N - 1)) {
        *slot = byte as c_char;
    }
}

#[no_mangle]
// The fake speaks to the test's output directly: no caller of NVML would pass its message on.
#[allow(clippy::print_stderr)]
pub extern "C" fn nvmlInit_v2() -> NvmlReturn {
    let scenario = match load_scenario() {
        Ok(scenario) => scenario,
        Err(message) => {
            // Visible in test output: a broken scenario must not look like a broken driver.
            eprintln!("gpulibs-fake-nvml: {message}");
            return ERROR_UNKNOWN;
        }
    };
    if let Some(name) = &scenario.init_error {
        return return_code(name).unwrap_or(ERROR_UNKNOWN);
    }
    match STATE.lock() {
        Ok(mut guard) => {
            *guard = Some(scenario);
            SUCCESS
        }
        Err(_) => ERROR_UNKNOWN,
    }
}

#[no_mangle]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> NvmlReturn {
    nvmlInit_v2()
}

#[no_mangle]
pub extern "C" fn nvmlShutdown() -> NvmlReturn {
    match STATE.lock() {
        Ok(mut guard) => match guard.take() {
            Some(_) => SUCCESS,
            None => ERROR_UNINITIALIZED,
        },
        Err(_) => ERROR_UNKNOWN,
    }
}

#[no_mangle]
pub extern "C" fn nvmlErrorString(_result: NvmlReturn) -> *const c_char {
    c"fake NVML error".as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    with_scenario(|s| match injected(&s.errors, "driver_version") {
        Some(code) => code,
        None => write_c_string(&s.driver_version, version, length),
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(
    version: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    // NVML's own version is the driver version with a leading "12."/"13." in real life; callers
    // of gpulibs never read it, so the driver version stands in.
    with_scenario(|s| write_c_string(&s.driver_version, version, length))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion(cuda: *mut c_int) -> NvmlReturn {
    nvmlSystemGetCudaDriverVersion_v2(cuda)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion_v2(cuda: *mut c_int) -> NvmlReturn {
    if cuda.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    with_scenario(|s| match injected(&s.errors, "cuda_driver_version") {
        Some(code) => code,
        None => {
            *cuda = s.cuda_driver_version;
            SUCCESS
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> NvmlReturn {
    if count.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    with_scenario(|s| match injected(&s.errors, "device_count") {
        Some(code) => code,
        None => {
            *count = s.gpus.len() as c_uint;
            SUCCESS
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut Device,
) -> NvmlReturn {
    if device.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    with_scenario(|s| match s.gpus.get(index as usize) {
        Some(gpu) => match injected(&gpu.errors, "handle") {
            Some(code) => code,
            None => {
                *device = handle_for(index as usize, None);
                SUCCESS
            }
        },
        None => ERROR_INVALID_ARGUMENT,
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: Device,
    name: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    with_gpu(device, "name", |gpu| {
        write_c_string(&gpu.name, name, length)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: Device,
    uuid: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    with_scenario(|s| match resolve(s, device) {
        Some(Handle::Mig(_, mig_uuid)) => write_c_string(mig_uuid, uuid, length),
        Some(Handle::Gpu(gpu)) => match injected(&gpu.errors, "uuid") {
            Some(code) => code,
            None => write_c_string(&gpu.uuid, uuid, length),
        },
        None => ERROR_INVALID_ARGUMENT,
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(device: Device, pci: *mut PciInfo) -> NvmlReturn {
    if pci.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    with_gpu(device, "pci_info", |gpu| {
        // "DDDDDDDD:BB:DD.F": domain, bus, device in hex.
        let mut parts = gpu.pci_bus_id.split([':', '.']);
        let mut next = || {
            parts
                .next()
                .and_then(|p| u32::from_str_radix(p, 16).ok())
                .unwrap_or(0)
        };
        let (domain, bus, dev) = (next(), next(), next());
        let mut info = PciInfo {
            bus_id_legacy: [0; 16],
            domain,
            bus,
            device: dev,
            pci_device_id: gpu.pci_device_id,
            pci_sub_system_id: 0,
            bus_id: [0; 32],
        };
        copy_into(
            &format!("{domain:04X}:{bus:02X}:{dev:02X}.0"),
            &mut info.bus_id_legacy,
        );
        copy_into(&gpu.pci_bus_id, &mut info.bus_id);
        pci.write(info);
        SUCCESS
    })
}

fn parse_compute_capability(text: &str) -> Option<(c_int, c_int)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCudaComputeCapability(
    device: Device,
    major: *mut c_int,
    minor: *mut c_int,
) -> NvmlReturn {
    if major.is_null() || minor.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    with_gpu(
        device,
        "compute_capability",
        |gpu| match parse_compute_capability(&gpu.compute_capability) {
            Some((maj, min)) => {
                *major = maj;
                *minor = min;
                SUCCESS
            }
            None => ERROR_UNKNOWN,
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: Device,
    memory: *mut MemoryV2,
) -> NvmlReturn {
    if memory.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    with_gpu(device, "memory_v2", |gpu| {
        if (*memory).version != MEMORY_V2_VERSION {
            return ERROR_ARGUMENT_VERSION_MISMATCH;
        }
        if let Some(code) = injected(&gpu.errors, "memory") {
            return code;
        }
        let m = &gpu.memory;
        // As measured on R580: v2 `used` excludes `reserved`.
        (*memory).total = m.total;
        (*memory).reserved = m.reserved;
        (*memory).free = m.free;
        (*memory).used = m.total.saturating_sub(m.free).saturating_sub(m.reserved);
        SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(
    device: Device,
    memory: *mut MemoryV1,
) -> NvmlReturn {
    if memory.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    with_gpu(device, "memory", |gpu| {
        let m = &gpu.memory;
        // v1 `used` counts the reserved memory too.
        memory.write(MemoryV1 {
            total: m.total,
            free: m.free,
            used: m.total.saturating_sub(m.free),
        });
        SUCCESS
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: Device,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> NvmlReturn {
    if current.is_null() || pending.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    with_gpu(device, "mig", |gpu| match &gpu.mig {
        Some(mig) => {
            *current = mig.current;
            *pending = mig.pending;
            SUCCESS
        }
        None => ERROR_NOT_SUPPORTED,
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMaxMigDeviceCount(
    device: Device,
    count: *mut c_uint,
) -> NvmlReturn {
    if count.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    with_gpu(device, "mig", |gpu| match &gpu.mig {
        Some(_) => {
            *count = gpu.mig_devices.len() as c_uint;
            SUCCESS
        }
        None => ERROR_NOT_SUPPORTED,
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMigDeviceHandleByIndex(
    device: Device,
    index: c_uint,
    mig_device: *mut Device,
) -> NvmlReturn {
    if mig_device.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    let gpu_slot = (device as usize & 0xffff).wrapping_sub(1);
    with_gpu(device, "mig", |gpu| {
        if gpu.mig.as_ref().is_none_or(|m| m.current != 1) {
            return ERROR_NOT_SUPPORTED;
        }
        if (index as usize) < gpu.mig_devices.len() {
            *mig_device = handle_for(gpu_slot, Some(index as usize));
            SUCCESS
        } else {
            // The real library answers NOT_FOUND for an empty MIG slot.
            ERROR_NOT_FOUND
        }
    })
}
