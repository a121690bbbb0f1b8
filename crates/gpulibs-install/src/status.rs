//! `gpulibs status`: the store's verdict ([`gpulibs_store::status()`]), completed for installs
//! of the CPU runtime, which the store's rule (written for GPU installs) calls `no_gpu`.

use gpulibs_store::{
    env_for, status, HostSummary, InstallRecord, Status, Store, VerificationRecord,
    VerificationState,
};
use serde::Serialize;

use crate::{InstallError, Verdict, Verifier};

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
    /// What the install's record says about its verification (`None`: not recorded, an
    /// install made before gpulibs recorded it).
    pub verification: Option<VerificationState>,
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
    let verification = record.and_then(|r| r.verification.as_ref());
    match verification.map(|v| v.state) {
        Some(VerificationState::Deferred) => {
            message = format!(
                "{message}; not yet verified: it was installed for a GPU that machine did not \
                 have; on a machine with that GPU run `{}` to prove it and record the proof",
                crate::VERIFY_ON_TARGET
            );
        }
        Some(VerificationState::Failed) => {
            ok = false;
            message = format!(
                "{message}; but its last verification failed ({}): run `gpulibs install` to \
                 install one that verifies",
                verification.map(|v| v.summary.as_str()).unwrap_or_default()
            );
        }
        _ => {}
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
        verification: verification.map(|v| v.state),
    }
}

/// Runs `verifier` on the active install of `store` (a deferred one, on the GPU it was made
/// for) and records the result in its `install.json`: `verified`, or `failed` (the install
/// stays active; `status` then says so). `models` are the app's models the verifier runs,
/// recorded with a pass. Holds the install lock while it runs, waiting for it.
pub fn verify_active(
    store: &Store,
    verifier: &dyn Verifier,
    models: &[String],
) -> Result<(InstallRecord, Verdict), InstallError> {
    let err = |what: &str| {
        let what = what.to_string();
        move |source| InstallError::Store {
            what,
            source: Box::new(source),
        }
    };
    let lock = store.lock(|_| {}).map_err(err("taking the install lock"))?;
    let record = store
        .current()
        .map_err(err("reading the active install"))?
        .ok_or_else(|| InstallError::NothingToInstall {
            why: "nothing is installed, so there is nothing to verify".into(),
        })?;
    let verdict = verifier.verify(&record, &env_for(store, &record));
    let (state, models) = if verdict.passed {
        (VerificationState::Verified, models.to_vec())
    } else {
        (VerificationState::Failed, Vec::new())
    };
    let record = lock
        .record_verification(
            &record.id,
            VerificationRecord::now(state, verdict.summary.clone(), models),
        )
        .map_err(err("recording the verification"))?;
    Ok((record, verdict))
}
