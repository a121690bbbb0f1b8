//! Sources of components other than a vendor's manifest.
//!
//! Owns: finding compatible CUDA libraries already installed on this machine (CUDA toolkit
//! directories, the ldconfig cache, conda environments, Python environments' `nvidia/*/lib`
//! folders), checked by SONAME and version before they are trusted; and resolving the official
//! `onnxruntime` / `onnxruntime-gpu` and `nvidia-*` wheels through `pip` (which knows the user's
//! index, mirrors and credentials), together with the measured kernel coverage of official
//! ONNX Runtime releases shipped as data.
//!
//! Also owns where the release manifest comes from ([`manifest`]): a file, an `http(s)://` URL
//! (downloaded through `gpulibs-fetch`) or the embedded default, with its signature's default
//! location and the rule that an explicit signature must exist; the signature itself is checked
//! by `gpulibs-plan`.
//!
//! Must not touch: planning decisions (it reports what exists; `gpulibs-plan` chooses), the
//! install root, or downloads of artifact bytes (`gpulibs-fetch`; the manifest and its signature
//! are read through its document fetch). It never names a package
//! index: every index access goes through `pip` and its configuration.
//!
//! # Modules
//!
//! - [`system`]: [`SystemSearch`] (where to look, as data; [`SystemSearch::from_env`] for this
//!   machine) and [`SystemSearch::scan`] → [`SystemScan`] (trusted libraries in search order,
//!   rejected candidates with reasons) → [`SystemScan::inventory`] → the planner's
//!   [`gpulibs_plan::SystemInventory`].
//! - [`pypi`]: [`WheelTarget`] (wheel tags), [`pip_arguments`] (the `pip install --dry-run
//!   --report -` command line), [`parse_report`] (pip's JSON report), the [`PipResolver`] seam
//!   and [`Pip`], which runs it.
//! - [`coverage`]: [`CoverageTable::embedded`], the measured table of official
//!   `onnxruntime-gpu` releases (`data/ort-coverage.json`, written by
//!   `scripts/ort-coverage.py`): kernels, CUDA major, wheels, sizes and hashes.
//! - [`manifest`]: [`load_manifest`] ([`ManifestRequest`] → [`LoadedManifest`], typed
//!   [`ManifestLoadError`]s with hints) and [`absolutize_urls`].
//! - [`embedded`]: [`embedded_default`], the manifest used when none is given (one variant per
//!   measured release plus `cpu`), and [`resolve_components`], which fills in pip's URLs for the
//!   components a plan chose.
//!
//! ```no_run
//! use gpulibs_sources::{embedded_default, resolve_components, CoverageTable, Pip, SystemSearch,
//!     WheelTarget};
//!
//! let inventory = SystemSearch::from_env().scan().inventory();
//! let mut manifest = embedded_default(CoverageTable::embedded());
//! // ... the planner picks a variant, then:
//! let chosen = ["onnxruntime-gpu-1.31.1"];
//! resolve_components(&mut manifest, &chosen, &Pip::from_env(), &WheelTarget::default())?;
//! # Ok::<(), gpulibs_sources::EmbeddedError>(())
//! ```
//!
//! `docs/sources.md` explains the search order, the trust checks, how pip is used, and how the
//! coverage table is regenerated.

pub mod coverage;
pub mod embedded;
pub mod manifest;
pub mod pypi;
pub mod system;

pub use coverage::{
    CoverageError, CoverageTable, ExtraRequirement, OrtRelease, WheelFile, WheelLibrary,
};
pub use embedded::{
    component_id, embedded_default, is_wheel_of, pin_offline_wheels, resolve_components,
    reuse_spec, variant_name, EmbeddedError, PIP_URL_SCHEME,
};
pub use manifest::{
    absolutize_urls, default_signature, load_manifest, Document, LoadedManifest, ManifestLoadError,
    ManifestRequest, EMBEDDED_SOURCE, SIGNATURE_MAX_BYTES,
};
pub use pypi::{
    parse_report, pip_arguments, Pip, PipError, PipResolver, ResolvedWheel, WheelTarget,
};
pub use system::{
    FoundLibrary, RejectReason, RejectedCandidate, RootOrigin, SearchEnv, SearchRoot, SystemScan,
    SystemSearch,
};
