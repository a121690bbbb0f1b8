//! What a source (NVML or `nvidia-smi`) reports, before `CUDA_VISIBLE_DEVICES` and
//! `CUDA_DEVICE_ORDER` are applied. NVML ignores both, so this is every GPU of the machine in
//! NVML index order.

use crate::model::{DriverInfo, MigMode, Problem, Source};
use crate::types::ComputeCapability;

/// One source's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub source: Source,
    pub driver: DriverInfo,
    pub gpus: Vec<RawGpu>,
    /// Fields the source could not fill, and why.
    pub problems: Vec<Problem>,
}

/// One GPU as the source reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawGpu {
    pub nvml_index: u32,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub pci_bus_id: Option<String>,
    pub compute_capability: Option<ComputeCapability>,
    pub memory_total_bytes: Option<u64>,
    pub memory_free_bytes: Option<u64>,
    pub mig: Option<MigMode>,
    /// UUIDs (`MIG-…`) of the MIG devices of this GPU, when MIG is enabled and the source can
    /// list them (NVML can; `nvidia-smi --query-gpu` cannot).
    pub mig_devices: Vec<String>,
}
