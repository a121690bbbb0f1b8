//! The best model that really fits: pure ranking over a [`Catalog`], with the verification
//! injected so tables can test it.

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, CatalogModel, ModelDevice};
use crate::report::{Outcome, Stage, VerifyReport};

/// What is free now (not total: other programs hold the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Free VRAM of the GPU to use; `None` when there is no usable GPU.
    pub free_vram_bytes: Option<u64>,
    pub free_ram_bytes: u64,
}

/// Memory kept free beyond a model's need: the larger of a fraction of the need and a minimum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Headroom {
    pub fraction: f64,
    pub min_bytes: u64,
}

impl Default for Headroom {
    /// 10 % of the need, at least 512 MiB: the CUDA context, cuDNN workspaces and the app's
    /// other allocations are not in a model's figure.
    fn default() -> Self {
        Self {
            fraction: 0.10,
            min_bytes: 512 << 20,
        }
    }
}

impl Headroom {
    pub fn for_need(&self, need: u64) -> u64 {
        ((need as f64 * self.fraction) as u64).max(self.min_bytes)
    }
}

/// Why a model was not chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum LossReason {
    /// Some of its files are not on disk.
    FilesMissing { missing: Vec<String> },
    /// A GPU model, and no usable GPU.
    NoGpu,
    NotEnoughVram {
        need_bytes: u64,
        headroom_bytes: u64,
        free_bytes: u64,
        /// The need is this machine's measurement, not the catalog's figure.
        measured: bool,
    },
    NotEnoughRam {
        need_bytes: u64,
        headroom_bytes: u64,
        free_bytes: u64,
    },
    /// `verify` did not pass it.
    VerifyFailed {
        stage: Option<Stage>,
        detail: String,
    },
    /// A better model won first; not tried.
    NotTried,
}

/// A model that lost, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    pub model: String,
    pub quality_rank: u32,
    #[serde(flatten)]
    pub reason: LossReason,
    /// One sentence for people.
    pub message: String,
}

/// The chosen model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Winner {
    pub model: String,
    pub quality_rank: u32,
    pub device: ModelDevice,
    pub vram_need_bytes: u64,
    pub vram_measured: bool,
    /// The verification that passed it.
    pub report: VerifyReport,
}

/// What `gpulibs recommend` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// `None`: nothing fits and verifies.
    pub winner: Option<Winner>,
    /// Every better-ranked model that lost, best first, then the ones not tried.
    pub losses: Vec<Loss>,
    pub resources: Resources,
    pub headroom: Headroom,
}

fn mib(b: u64) -> String {
    format!("{} MiB", b.div_ceil(1 << 20))
}

/// [`recommend_with`] with the default [`Headroom`].
pub fn recommend(
    catalog: &Catalog,
    free_vram: Option<u64>,
    free_ram: u64,
    verify_fn: impl FnMut(&CatalogModel) -> VerifyReport,
) -> Recommendation {
    recommend_with(
        catalog,
        Resources {
            free_vram_bytes: free_vram,
            free_ram_bytes: free_ram,
        },
        Headroom::default(),
        verify_fn,
    )
}

/// Tries the models best-first (`quality_rank`, then name): files present, VRAM and RAM with
/// headroom, then a real `verify` (`verify_fn`); the first that passes wins. Apply
/// [`Catalog::with_measurements`] first so measured figures count.
pub fn recommend_with(
    catalog: &Catalog,
    resources: Resources,
    headroom: Headroom,
    mut verify_fn: impl FnMut(&CatalogModel) -> VerifyReport,
) -> Recommendation {
    let mut order: Vec<&CatalogModel> = catalog.models.iter().collect();
    order.sort_by(|a, b| {
        a.quality_rank
            .cmp(&b.quality_rank)
            .then(a.name.cmp(&b.name))
    });
    let mut losses = Vec::new();
    let mut winner = None;
    for m in order {
        let lose = |reason: LossReason, message: String| Loss {
            model: m.name.clone(),
            quality_rank: m.quality_rank,
            reason,
            message,
        };
        if winner.is_some() {
            losses.push(lose(LossReason::NotTried, "a better model won".into()));
            continue;
        }
        let missing: Vec<String> = m
            .resolved_files(&catalog.root)
            .into_iter()
            .filter(|f| !f.is_file())
            .map(|f| f.display().to_string())
            .collect();
        if !missing.is_empty() {
            let message = format!("model files not present: {}", missing.join(", "));
            losses.push(lose(LossReason::FilesMissing { missing }, message));
            continue;
        }
        if m.device == ModelDevice::Gpu {
            let Some(free) = resources.free_vram_bytes else {
                losses.push(lose(
                    LossReason::NoGpu,
                    "a GPU model, and no usable GPU".into(),
                ));
                continue;
            };
            let need = m.vram_bytes();
            let room = headroom.for_need(need);
            if need + room > free {
                let message = format!(
                    "needs {} of VRAM ({}) plus {} headroom; {} free",
                    mib(need),
                    if m.vram_measured {
                        "measured here"
                    } else {
                        "catalog figure"
                    },
                    mib(room),
                    mib(free)
                );
                losses.push(lose(
                    LossReason::NotEnoughVram {
                        need_bytes: need,
                        headroom_bytes: room,
                        free_bytes: free,
                        measured: m.vram_measured,
                    },
                    message,
                ));
                continue;
            }
        }
        let need = m.ram_bytes();
        let room = headroom.for_need(need);
        if need + room > resources.free_ram_bytes {
            let message = format!(
                "needs {} of RAM plus {} headroom; {} free",
                mib(need),
                mib(room),
                mib(resources.free_ram_bytes)
            );
            losses.push(lose(
                LossReason::NotEnoughRam {
                    need_bytes: need,
                    headroom_bytes: room,
                    free_bytes: resources.free_ram_bytes,
                },
                message,
            ));
            continue;
        }
        let report = verify_fn(m);
        let passed = match (m.device, &report.outcome) {
            (ModelDevice::Gpu, Outcome::VerifiedGpu) => true,
            (ModelDevice::Cpu, Outcome::CpuOnly { .. } | Outcome::VerifiedGpu) => true,
            _ => false,
        };
        if passed {
            winner = Some(Winner {
                model: m.name.clone(),
                quality_rank: m.quality_rank,
                device: m.device,
                vram_need_bytes: m.vram_bytes(),
                vram_measured: m.vram_measured,
                report,
            });
        } else {
            let (stage, detail) = match &report.outcome {
                Outcome::Failed { stage, reason, .. } => (Some(*stage), reason.clone()),
                Outcome::CpuOnly { reason } => (None, format!("ran on the CPU only: {reason}")),
                Outcome::VerifiedGpu => (None, "verified on the GPU, but it is a CPU model".into()),
            };
            let message = format!("verify failed: {detail}");
            losses.push(lose(LossReason::VerifyFailed { stage, detail }, message));
        }
    }
    Recommendation {
        winner,
        losses,
        resources,
        headroom,
    }
}
