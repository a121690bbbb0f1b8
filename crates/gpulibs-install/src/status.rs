//! `gpulibs status`: the store's verdict ([`gpulibs_store::status()`]), completed for installs
//! of the CPU runtime, which the store's rule (written for GPU installs) calls `no_gpu`.

use gpulibs_store::{status, HostSummary, InstallRecord, Status, Store};
use serde::Serialize;

/// The active install against this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The store's verdict.
    pub status: Status,
    /// The install holds no GPU kernels and was chosen for no GPU: the CPU runtime.
    pub cpu_runtime: bool,
    /// Whether the install can be used here (exit 0 of `gpulibs status`).
    pub ok: bool,
    /// One line a person can act on.
    pub message: String,
    /// Files of the install that are missing or unreadable, and libraries reused from this
    /// machine that are gone or changed since the install.
    pub problems: Vec<String>,
}

/// Whether `record` is an install of the CPU runtime.
pub fn is_cpu_runtime(record: &InstallRecord) -> bool {
    record.gpu.is_none() && record.coverage.is_empty()
}

/// Judges the active install of `store` (if any) against `host`.
pub fn health(store: &Store, host: &HostSummary) -> Result<Health, gpulibs_store::StoreError> {
    let record = store.current()?;
    let problems = match &record {
        Some(r) => store.check_install(&r.id)?,
        None => Vec::new(),
    };
    Ok(judge(record.as_ref(), host, problems))
}

/// The pure part of [`health`].
pub fn judge(record: Option<&InstallRecord>, host: &HostSummary, problems: Vec<String>) -> Health {
    let status = status(record, host);
    let cpu_runtime = record.is_some_and(is_cpu_runtime);
    let (mut ok, mut message) = (status.is_ok(), status.message());
    if let (true, Some(r)) = (cpu_runtime, record) {
        ok = true;
        message = if host.gpus.is_empty() {
            format!(
                "install {} is the CPU runtime ({}); it needs no GPU",
                r.id, r.variant
            )
        } else {
            format!(
                "install {} is the CPU runtime ({}) and runs here; a usable GPU is visible now, \
                 so `gpulibs install` may choose GPU libraries",
                r.id, r.variant
            )
        };
    }
    if !problems.is_empty() {
        ok = false;
        message = format!(
            "{message}; but {} file(s) of the install are missing, unreadable or changed: run \
             `gpulibs install` to repair it",
            problems.len()
        );
    }
    Health {
        status,
        cpu_runtime,
        ok,
        message,
        problems,
    }
}
