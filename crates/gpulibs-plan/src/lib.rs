//! Release manifests and planning.
//!
//! Owns: the versioned release manifest an app vendor publishes (components, variants, kernel
//! coverage, driver and CUDA requirements), its validation and signature check, and the pure
//! planning function from (detected host, manifest, policy) to a plan with a reason for every
//! rejected candidate.
//!
//! Must not touch: the network, the file system beyond reading a manifest it is handed, or
//! compatibility rules of its own — kernel and driver rules are `gpulibs-inspect`'s and are
//! called, never copied.

pub mod driver;
pub mod manifest;

pub use driver::{DriverVersion, DriverVersionError, RuntimeSupport};
pub use manifest::{
    parse_kernel_target, parse_manifest, parse_manifest_bytes, to_toml, ArchiveFormat, Artifact,
    Component, ComponentKind, Coverage, FileEntry, Manifest, ManifestError, Origin, PtxIsaText,
    PtxTarget, PtxTargetName, SassTarget, SystemInventory, SystemLibrary, TargetParseError,
    Variant, VariantDevice, SCHEMA_VERSION,
};
