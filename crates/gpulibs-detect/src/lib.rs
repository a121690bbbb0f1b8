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
//! Must not touch: CUDA binaries (that is `gpulibs-inspect`), the network or the install root.

mod types;

pub use types::{ArchFamily, ComputeCapability, CudaVersion, ParseError};
