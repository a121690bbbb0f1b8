//! Verification.
//!
//! Owns: loading ONNX Runtime at run time from an install (the `ort` crate, `load-dynamic`),
//! preloading the CUDA and cuDNN libraries its CUDA provider needs, creating a session on the
//! CUDA execution provider, running a model on it and on the CPU execution provider with
//! synthesised inputs, recording where every node ran and why ([`placement`]), and comparing
//! outputs, timings and VRAM ([`verify`] → [`VerifyReport`]); the built-in probe model ([`PROBE_MODEL`]); and choosing the
//! best model that really fits ([`recommend()`] over a [`Catalog`]) and the receipt that records
//! the choice ([`Recommendation::write_receipt`], at a path its caller hands it).
//!
//! Must not touch: fatbinaries or ELF parsing (it asks `gpulibs-inspect` for the kernel verdict
//! and the dependency resolution), the install layout beyond the paths its caller hands it, or
//! the network. The CLI owns option parsing into [`VerifyRequest`], rendering and exit codes
//! (whose meaning [`Outcome::exit_code`] documents).
//!
//! # API
//!
//! ```no_run
//! use gpulibs_verify::{verify, Device, VerifyRequest};
//!
//! let mut req = VerifyRequest::probe("/opt/app/gpu-libs/current/libonnxruntime.so", Device::Cuda(0));
//! req.preload_dirs = vec!["/opt/app/gpu-libs/current".into()];
//! let report = verify(&req);
//! println!("{}", report.to_json_pretty());
//! std::process::exit(report.outcome.exit_code().into());
//! ```
//!
//! - [`verify`] never fails or panics: a failure is [`Outcome::Failed`] with the [`Stage`], the
//!   reason (ONNX Runtime's or the loader's own words) and a hint.
//! - A request for the GPU yields [`Outcome::VerifiedGpu`] only when ONNX Runtime's profiler
//!   shows every node on the CUDA provider and every output matches the CPU provider's within
//!   [`compare::threshold_for`]; [`Outcome::VerifiedGpuPartial`] when the same holds except for
//!   nodes that are not compute-heavy ([`placement::HEAVY_OPS`]) placed on the CPU, each named
//!   with ONNX Runtime's reason; otherwise a failure ([`placement::classify`] has the rules;
//!   [`verify_with`] with [`PlacementRule::Strict`] fails on any CPU node).
//! - ONNX Runtime is loaded once per process ([`runtime`] explains): call
//!   [`verify`] once per process, or again with the same library.
//! - [`synth`]: inputs from model metadata, `--shape`/`--value` (parse them with
//!   [`parse_shape_option`], [`parse_value_option`]).
//! - [`catalog`] and [`recommend()`]: the model catalog (TOML), measured figures, and the
//!   choice of the best model that fits, with a reason for every model that lost.
//!
//! `docs/verify.md` describes what verify proves, the JSON, thresholds and the GPU procedure.

pub mod catalog;
pub mod compare;
mod error;
pub mod placement;
pub mod profile;
mod recommend;
mod report;
mod request;
mod run;
pub mod runtime;
pub mod synth;

pub use catalog::{
    parse_catalog, seed_catalog, Catalog, CatalogError, CatalogModel, Measurement, Measurements,
    MeasurementsError, ModelDevice,
};
pub use error::{VerifyError, MIN_ORT};
pub use recommend::{
    recommend, recommendation_receipt_path, Headroom, Loss, LossReason, ReceiptError,
    Recommendation, Resources, Winner, RECOMMENDATION_RECEIPT,
};
pub use report::{
    DeviceReport, GpuInfo, InputReport, MissingLibrary, ModelReport, Outcome, OutputComparison,
    PreloadStatus, PreloadedLibrary, Stage, VerifyReport, REPORT_SCHEMA_VERSION,
};
pub use request::{
    parse_byte_size, parse_shape_option, parse_value_option, Device, ModelSource, OptionError,
    VerifyRequest, DEFAULT_RUNS,
};
pub use run::{verify, verify_with, PlacementRule, CUDA_PROVIDER_LIBRARY, PROBE_MODEL};
pub use runtime::{disable_ort_telemetry, ORT_TELEMETRY_OPT_OUT};
pub use synth::DEFAULT_MAX_INPUT_BYTES;
