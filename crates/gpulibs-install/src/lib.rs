//! The install transaction.
//!
//! Owns: carrying out a plan — taking the install lock, asking pip for the URLs of the chosen
//! PyPI wheels that are not in the store yet, fetching every missing artifact in parallel while
//! it is hashed and unpacked into the store in the same pass, building the new install
//! generation, running the verifier on it, activating it, and writing the seed-compatible
//! receipt; when verification fails, trying the planner's next candidates in turn
//! ([`InstallRequest::fallbacks`], `attempts.rs`: reused libraries → downloaded → next variant
//! → CPU runtime) and saying why an install ends on the CPU runtime ([`WhyCpu`]); recording
//! the verification in `install.json`, deferred for a GPU the machine lacks; and `status`'s
//! verdict for CPU-runtime and not-yet-verified installs ([`health`], [`verify_active`]).
//!
//! Must not touch: planning (`gpulibs-plan` chose the variant), HTTP and digests
//! (`gpulibs-fetch`), the on-disk layout, unpacking rules, links and renames (`gpulibs-store`:
//! every write under the root goes through its API, except the download directory
//! `<root>/downloads` that it hands to the fetcher), or loading ONNX Runtime (the
//! [`Verifier`] the caller passes, `gpulibs-verify` in the CLI). It never reads the process
//! environment: the caller passes the root, network settings and pip.
//!
//! # API
//!
//! ```no_run
//! # use gpulibs_install::*;
//! # fn f(manifest: &gpulibs_plan::Manifest, plan: &gpulibs_plan::Plan) -> Result<(), InstallError> {
//! let pip = gpulibs_sources::Pip::from_env();
//! let mut req = InstallRequest::new(manifest, plan, "/home/u/.local/share/gpulibs/gpu-libs", "gpulibs", &pip);
//! req.fetch.network = gpulibs_fetch::NetworkEnv::from_env();
//! let report = install(&req, &|event| eprintln!("{event:?}"))?;
//! println!("{} active, {} bytes downloaded", report.install_id, report.downloaded_bytes);
//! # Ok(()) }
//! ```
//!
//! # Invariants
//!
//! - `current` names the old install or the new one, both complete, at every instant (a
//!   crash included): components reach `store/<sha256>` only whole and verified, the new
//!   generation is built aside, and `current` moves by one `rename(2)` (the store's argument,
//!   `docs/store.md`).
//! - Nothing is activated unless every byte matched its sha256 and, unless verification is
//!   off, the verifier passed on the new generation *before* it became `current`. A failed
//!   verification therefore never needs a rollback: the previous install simply stays.
//! - Only components whose archive hash is not in the store are fetched; pip is asked only
//!   about those.
//! - An interrupted download resumes on the next run from `<root>/downloads/<sha256>.partial`.
//!
//! Flow, costs and exit codes: `docs/install.md`.

mod attempts;
mod error;
mod install;
mod status;

pub use attempts::{sequence, why_cpu, Attempt, AttemptResult, WhyCpu};
pub use error::{ComponentError, InstallError};
pub use install::{
    install, Action, ComponentOutcome, Event, InstallReport, InstallRequest, PendingArtifact,
    Verdict, Verifier, VerifyState, DOWNLOADS_DIR, VERIFY_ON_TARGET,
};
pub use status::{health, is_cpu_runtime, judge, verify_active, Health};
