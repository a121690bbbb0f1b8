//! The candidates an install tries and what became of each: the sequence (the plan's choice,
//! then the planner's ranked fallbacks), one [`Attempt`] per try, and why an install that ends
//! on the CPU runtime is not on the GPU ([`why_cpu`]). Plain functions over plain data; the
//! install transaction (`install.rs`) calls them.

use gpulibs_plan::{ChosenVariant, CpuReason, Plan, Reason, VariantDevice};
use serde::Serialize;

/// One candidate the install built (or found active) and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The manifest's variant.
    pub variant: String,
    /// The variant in words: `modern (CUDA 12.9, sm_75–90)`.
    pub label: String,
    pub device: VariantDevice,
    /// Whether it took libraries from this machine (the next candidate is often the same
    /// variant with them downloaded).
    pub reuses_system: bool,
    /// The install built for it; deleted again when verification failed (its components
    /// stay in the store, for the next candidate and later installs).
    pub install_id: String,
    pub result: AttemptResult,
    /// The verifier's one line, or why it did not run.
    pub summary: String,
}

/// What became of an [`Attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// Verified (or verification was off or deferred) and activated.
    Activated,
    /// It was the active install already, intact: nothing was built.
    UpToDate,
    /// Built, but the verifier failed it: not activated, deleted.
    VerificationFailed,
}

/// Why an install ended on the CPU runtime, and what would let it use the GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WhyCpu {
    /// `no usable GPU (…)`, `the driver is too old for every GPU variant: …`, ….
    pub reason: String,
    /// What to do about it; `None` when the CPU runtime was asked for (`--cpu`).
    pub fix: Option<String>,
}

/// The candidates in the order they are tried: `first` (the plan's choice), then each of
/// `fallbacks` that is not `first` again, once each.
pub fn sequence<'a>(
    first: &'a ChosenVariant,
    fallbacks: &'a [ChosenVariant],
) -> Vec<&'a ChosenVariant> {
    let mut out = vec![first];
    for c in fallbacks {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Why the install that activated `last` (after `attempts`) is the CPU runtime; `None` when
/// `last` is a GPU variant. The reasons, in order: GPU candidates that failed verification
/// (named with what failed); else the plan's own reason — the CPU runtime was asked for, no
/// usable GPU (detection's message, and `no_gpu_fix`, detection's hint, as the fix), or no
/// GPU variant runs here (the rejected variants' reasons: driver too old, no kernels for this
/// GPU, …).
pub fn why_cpu(
    plan: &Plan,
    last: &ChosenVariant,
    attempts: &[Attempt],
    no_gpu_fix: Option<&str>,
) -> Option<WhyCpu> {
    if last.device != VariantDevice::Cpu {
        return None;
    }
    let failed: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| {
            a.device == VariantDevice::Cuda && a.result == AttemptResult::VerificationFailed
        })
        .collect();
    if !failed.is_empty() {
        let each: Vec<String> = failed
            .iter()
            .map(|a| format!("{}: {}", a.label, a.summary))
            .collect();
        return Some(WhyCpu {
            reason: format!(
                "every GPU candidate failed verification ({})",
                each.join("; ")
            ),
            fix: Some(
                "fix what the GPU verification names (a driver update, a library that clashes), \
                 then run `gpulibs install` again: it tries the GPU variants first; \
                 `gpulibs verify -v` shows a GPU run in detail"
                    .into(),
            ),
        });
    }
    let fallback = plan.cpu_fallback()?;
    Some(match &fallback.reason {
        CpuReason::CpuOnlyPolicy => WhyCpu {
            reason: "the CPU runtime was asked for (--cpu)".into(),
            fix: None,
        },
        CpuReason::NoUsableGpu { detail } => WhyCpu {
            reason: format!("no usable GPU: {detail}"),
            fix: Some(no_gpu_fix.map(str::to_string).unwrap_or_else(|| {
                "run `gpulibs detect` to see what was found and how to fix it".into()
            })),
        },
        CpuReason::NoVariantRuns => {
            let reasons: Vec<String> = plan
                .rejected
                .iter()
                .filter(|r| {
                    !r.reasons.is_empty() && !r.reasons.iter().all(|x| *x == Reason::CpuNotNeeded)
                })
                .filter(|r| {
                    !r.reasons
                        .iter()
                        .any(|x| matches!(x, Reason::Outranked { .. }))
                })
                .map(|r| r.to_string())
                .collect();
            let driver = plan.rejected.iter().flat_map(|r| &r.reasons).any(|r| {
                matches!(
                    r,
                    Reason::DriverTooOld { .. } | Reason::BelowComponentMinDriver { .. }
                )
            });
            WhyCpu {
                reason: format!(
                    "no GPU variant runs on this machine ({})",
                    if reasons.is_empty() {
                        "see `gpulibs plan`".to_string()
                    } else {
                        reasons.join("; ")
                    }
                ),
                fix: Some(if driver {
                    "update the NVIDIA driver to the version named above, then run `gpulibs \
                     install` again"
                        .into()
                } else {
                    "ask the vendor for a release with kernels for this GPU; `gpulibs plan` \
                     lists each variant's reasons"
                        .into()
                }),
            }
        }
    })
}
