//! Release manifests and planning.
//!
//! Owns: the versioned release manifest an app vendor publishes (components, variants, kernel
//! coverage, driver and CUDA requirements), its validation and signature check, and the pure
//! planning function from (detected host, manifest, policy) to a plan with a reason for every
//! rejected candidate.
//!
//! Must not touch: the network, the file system beyond reading a manifest it is handed, or
//! kernel compatibility rules of its own — those are `gpulibs-inspect`'s and are called
//! ([`gpulibs_inspect::select_entry`] over a component's declared coverage), never copied. The
//! driver rules (minimum driver per CUDA toolkit, minor-version compatibility) are new here, in
//! [`driver`].
//!
//! Layout:
//! - [`manifest`]: the TOML schema as serde types ([`Manifest`], [`Component`], [`Variant`], …),
//!   strict reading ([`parse_manifest`]: unknown fields are errors naming the field, the
//!   declared schema version and the fix; [`load_manifest`], what every user of a manifest
//!   calls, validates it too), and [`SystemInventory`], the libraries already on the
//!   machine (filled in by `gpulibs-sources`). Documented in `docs/manifest.md`.
//! - [`validate`](mod@validate): the rules across fields, every problem at once
//!   ([`validate_structure`] on every machine, [`validate()`] with the needs).
//! - [`signature`]: minisign-format ed25519 signatures ([`verify_manifest`], [`sign_manifest`],
//!   [`check_signature`] with `--allow-unsigned`).
//! - [`driver`]: driver version strings compared as numbers; which CUDA runtime a driver runs;
//!   whether it reads kernels stored with a given fatbin compression (rule `fatbin-zstd` of
//!   `docs/driver-rules.md`, over inspect's [`gpulibs_inspect::compression_need`]).
//! - [`reuse`](mod@reuse): when a library on the machine may serve a component: PEP 440
//!   specifiers, NVIDIA's minor-version rules, the decision ([`reuse::check_version`]).
//! - [`planner`]: [`plan`]`(&Host, &Manifest, &SystemInventory, &Policy) -> Plan`, pure.
//!
//! ```
//! use gpulibs_plan::{parse_manifest, plan, Host, Outcome, Policy, SystemInventory};
//!
//! let manifest = parse_manifest(include_str!("../fixtures/example.toml")).unwrap();
//! let host = Host::synthetic(&["8.6".parse().unwrap()], Some("580.65.06".parse().unwrap()), None);
//! let p = plan(&host, &manifest, &SystemInventory::default(), &Policy::default());
//! assert_eq!(p.outcome, Outcome::Gpu);
//! assert_eq!(p.chosen.unwrap().variant, "cuda12");
//! ```

pub mod driver;
pub mod manifest;
pub mod planner;
pub mod reuse;
pub mod signature;
pub mod validate;

pub use driver::{CompressionSupport, DriverVersion, DriverVersionError, RuntimeSupport};
pub use manifest::{
    check_manifest, load_manifest, parse_kernel_target, parse_manifest, parse_manifest_bytes,
    to_toml, ArchiveFormat, Artifact, Component, ComponentKind, Coverage, FileEntry, Manifest,
    ManifestError, Origin, PtxIsaText, PtxTarget, PtxTargetName, ReuseSpec, SassTarget,
    SystemInventory, SystemLibrary, TargetParseError, Variant, VariantDevice, VerifySection,
    SCHEMA_VERSION,
};
pub use planner::{
    candidates, human_bytes, plan, plan_with_trust, required_sonames, reuse_decision,
    reuses_system, ChosenVariant, CpuFallback, CpuReason, DriverRef, GpuRef, Host, HostGpu,
    KernelFit, LineKind, NeedSource, Outcome, Plan, PlannedComponent, Policy, Reason, Refusal,
    Rejection, ResolvedNeed, ReusedLibrary, Source, Totals, Warning, Why,
};
pub use signature::{
    check_signature, public_key_id, sign_manifest, sign_manifest_with_comment, verify_manifest,
    SecretKey, SignatureError, Trust, DEFAULT_TRUSTED_COMMENT,
};
pub use validate::{
    default_system_libraries, is_sha256, normalize_path, validate, validate_structure,
    ValidationError, DEFAULT_SYSTEM_LIBRARIES, MAX_DECLARED_BYTES,
};
