//! The best model that really fits: pure ranking over a [`Catalog`], with the verification
//! injected so tables can test it; and the recommendation receipt an app reads next to its
//! seed-compatible receipt ([`Recommendation::write_receipt`]).

use std::path::{Path, PathBuf};

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

/// Tries the models best-first (`quality_rank`, then name): files present, VRAM and RAM with
/// the default [`Headroom`], then a real `verify` (`verify_fn`); the first that passes wins.
/// Apply [`Catalog::with_measurements`] first so measured figures count.
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
        let passed = matches!(
            (m.device, &report.outcome),
            (
                ModelDevice::Gpu,
                Outcome::VerifiedGpu | Outcome::VerifiedGpuPartial { .. }
            ) | (
                ModelDevice::Cpu,
                Outcome::CpuOnly { .. } | Outcome::VerifiedGpu | Outcome::VerifiedGpuPartial { .. }
            )
        );
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
                Outcome::VerifiedGpu | Outcome::VerifiedGpuPartial { .. } => {
                    (None, "verified on the GPU, but it is a CPU model".into())
                }
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

/// The recommendation receipt's file name: it sits next to the app's seed-compatible receipt
/// (`$XDG_CONFIG_HOME/<app>/gpu-package-info.json`, `gpulibs_store::seed_info_path`).
pub const RECOMMENDATION_RECEIPT: &str = "gpulibs-recommendation.json";

/// Where the recommendation receipt goes, given the path of the app's seed-compatible receipt.
pub fn recommendation_receipt_path(seed_info: &Path) -> PathBuf {
    seed_info.with_file_name(RECOMMENDATION_RECEIPT)
}

/// The recommendation receipt could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the recommendation receipt {}", path.display())]
pub struct ReceiptError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The recommendation receipt's `schema_version`: raised when a field is removed, renamed or
/// changes meaning (fields may be added without it).
pub const RECEIPT_SCHEMA_VERSION: u32 = 1;

/// What the recommendation receipt keeps (`docs/json.md`): the winner's model name and why the
/// others lost, as `recommend --json` says them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Receipt<'a> {
    pub schema_version: u32,
    pub winner: Option<&'a str>,
    pub losses: &'a [Loss],
}

impl Recommendation {
    /// What the receipt keeps: the schema version, the winner's model name (or none) and the
    /// losses.
    pub fn receipt(&self) -> Receipt<'_> {
        Receipt {
            schema_version: RECEIPT_SCHEMA_VERSION,
            winner: self.winner.as_ref().map(|w| w.model.as_str()),
            losses: &self.losses,
        }
    }

    /// Writes [`Recommendation::receipt`] to `path` (pretty JSON), making its directory.
    pub fn write_receipt(&self, path: &Path) -> Result<(), ReceiptError> {
        let io = |source| ReceiptError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(&self.receipt()).unwrap_or_default();
        std::fs::write(path, text).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{seed_catalog, Measurement, Measurements};
    use crate::report::{DeviceReport, REPORT_SCHEMA_VERSION};

    const GIB: u64 = 1 << 30;

    fn report(outcome: Outcome) -> VerifyReport {
        VerifyReport {
            schema_version: REPORT_SCHEMA_VERSION,
            outcome,
            ort_version: None,
            ort_library: "/x/libonnxruntime.so".into(),
            ort_library_source: None,
            provider_library: None,
            device: DeviceReport {
                requested: String::new(),
                used: String::new(),
                gpu: None,
                detection_problems: vec![],
            },
            kernel_verdict: None,
            missing_libraries: vec![],
            preloaded: vec![],
            models: vec![],
            total_ms: 0.0,
        }
    }

    fn passes(m: &CatalogModel) -> VerifyReport {
        report(match m.device {
            ModelDevice::Gpu => Outcome::VerifiedGpu,
            ModelDevice::Cpu => Outcome::CpuOnly {
                reason: "--device cpu was asked".into(),
            },
        })
    }

    /// The seed catalog with its files present.
    fn seed_with_files() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let c = seed_catalog(dir.path());
        for m in &c.models {
            for f in m.resolved_files(&c.root) {
                std::fs::create_dir_all(f.parent().unwrap()).unwrap();
                std::fs::write(f, b"onnx").unwrap();
            }
        }
        (dir, c)
    }

    fn summary(r: &Recommendation) -> (Option<&str>, Vec<(&str, &'static str)>) {
        let kind = |l: &LossReason| match l {
            LossReason::FilesMissing { .. } => "files_missing",
            LossReason::NoGpu => "no_gpu",
            LossReason::NotEnoughVram { .. } => "vram",
            LossReason::NotEnoughRam { .. } => "ram",
            LossReason::VerifyFailed { .. } => "verify",
            LossReason::NotTried => "not_tried",
        };
        (
            r.winner.as_ref().map(|w| w.model.as_str()),
            r.losses
                .iter()
                .map(|l| (l.model.as_str(), kind(&l.reason)))
                .collect(),
        )
    }

    #[test]
    fn table() {
        let (_dir, c) = seed_with_files();
        let ram = 16 * GIB;
        // (free VRAM, winner, losses)
        type Row<'a> = (Option<u64>, &'a str, &'a [(&'a str, &'a str)]);
        let rows: [Row; 5] = [
            (
                Some(80 * GIB),
                "1.1b-gpu",
                &[("0.6b-gpu", "not_tried"), ("0.6b-cpu", "not_tried")],
            ),
            // 6000 MiB + 600 MiB headroom does not fit in 6.2 GiB; 3500 + 512 does.
            (
                Some(6 * GIB + 200 * (1 << 20)),
                "0.6b-gpu",
                &[("1.1b-gpu", "vram"), ("0.6b-cpu", "not_tried")],
            ),
            (
                Some(6600 * (1 << 20)),
                "1.1b-gpu",
                &[("0.6b-gpu", "not_tried"), ("0.6b-cpu", "not_tried")],
            ),
            (
                Some(3 * GIB),
                "0.6b-cpu",
                &[("1.1b-gpu", "vram"), ("0.6b-gpu", "vram")],
            ),
            (
                None,
                "0.6b-cpu",
                &[("1.1b-gpu", "no_gpu"), ("0.6b-gpu", "no_gpu")],
            ),
        ];
        for (vram, winner, losses) in rows {
            let r = recommend(&c, vram, ram, passes);
            assert_eq!(summary(&r), (Some(winner), losses.to_vec()), "{vram:?}");
        }
    }

    #[test]
    fn free_not_total_and_messages_say_the_numbers() {
        let (_dir, c) = seed_with_files();
        let r = recommend(&c, Some(4 * GIB), 16 * GIB, passes);
        let loss = &r.losses[0];
        assert_eq!(
            loss.message,
            "needs 6000 MiB of VRAM (catalog figure) plus 600 MiB headroom; 4096 MiB free"
        );
    }

    #[test]
    fn a_failed_verify_loses_with_its_reason_and_the_next_is_tried() {
        let (_dir, c) = seed_with_files();
        let mut tried = Vec::new();
        let r = recommend(&c, Some(80 * GIB), 16 * GIB, |m| {
            tried.push(m.name.clone());
            if m.name == "1.1b-gpu" {
                report(Outcome::Failed {
                    stage: Stage::Run,
                    reason: "out of memory".into(),
                    hint: None,
                })
            } else {
                passes(m)
            }
        });
        assert_eq!(tried, ["1.1b-gpu", "0.6b-gpu"]);
        assert_eq!(summary(&r).0, Some("0.6b-gpu"));
        assert!(matches!(
            &r.losses[0].reason,
            LossReason::VerifyFailed { stage: Some(Stage::Run), detail } if detail == "out of memory"
        ));
        // A GPU model that only ran on the CPU is not a GPU pass.
        let r = recommend(&c, Some(80 * GIB), 16 * GIB, |m| {
            report(Outcome::CpuOnly {
                reason: format!("{} on cpu", m.name),
            })
        });
        assert_eq!(summary(&r).0, Some("0.6b-cpu"));
    }

    #[test]
    fn missing_files_are_a_loss_not_a_pretence() {
        let c = seed_catalog("/nonexistent");
        let mut calls = 0;
        let r = recommend(&c, Some(80 * GIB), 16 * GIB, |m| {
            calls += 1;
            passes(m)
        });
        assert_eq!(calls, 0);
        assert!(r.winner.is_none());
        assert!(r
            .losses
            .iter()
            .all(|l| matches!(l.reason, LossReason::FilesMissing { .. })));
        assert!(r.losses[0]
            .message
            .starts_with("model files not present: /nonexistent/1.1b/encoder.onnx"));
    }

    #[test]
    fn measured_vram_replaces_the_catalog_figure() {
        let (_dir, c) = seed_with_files();
        let mut m = Measurements::default();
        m.measurements.push(Measurement {
            key: c.models[0].measurement_key(&c.root),
            model: "1.1b-gpu".into(),
            gpu: None,
            peak_vram_bytes: 2 * GIB,
            measured_at: 0,
        });
        let measured = c.with_measurements(&m);
        let r = recommend(&measured, Some(3 * GIB), 16 * GIB, passes);
        let w = r.winner.unwrap();
        assert_eq!((w.model.as_str(), w.vram_measured), ("1.1b-gpu", true));
    }

    #[test]
    fn ram_counts_too() {
        let (_dir, c) = seed_with_files();
        let r = recommend(&c, None, 2 * GIB, passes);
        assert!(r.winner.is_none());
        assert!(matches!(
            r.losses[2].reason,
            LossReason::NotEnoughRam { .. }
        ));
        assert_eq!(Headroom::default().for_need(10 * GIB), GIB);
        assert_eq!(Headroom::default().for_need(GIB), 512 << 20);
    }

    #[test]
    fn recommendation_serialises_with_flat_reasons() {
        let c = seed_catalog("/nonexistent");
        let r = recommend(&c, None, GIB, passes);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["losses"][0]["reason"], "files_missing");
        assert_eq!(json["losses"][0]["model"], "1.1b-gpu");
        assert!(json["winner"].is_null());
    }

    #[test]
    fn the_receipt_sits_next_to_the_seed_receipt_and_names_the_winner() {
        assert_eq!(
            recommendation_receipt_path(Path::new("/c/app/gpu-package-info.json")),
            Path::new("/c/app/gpulibs-recommendation.json")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app").join(RECOMMENDATION_RECEIPT);
        let rec = Recommendation {
            winner: None,
            losses: Vec::new(),
            resources: Resources {
                free_vram_bytes: None,
                free_ram_bytes: 0,
            },
            headroom: Headroom::default(),
        };
        rec.write_receipt(&path).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            back,
            serde_json::json!({ "schema_version": RECEIPT_SCHEMA_VERSION, "winner": null, "losses": [] })
        );
        let blocked = dir
            .path()
            .join("app")
            .join(RECOMMENDATION_RECEIPT)
            .join("x");
        let e = rec.write_receipt(&blocked).unwrap_err();
        assert_eq!(e.path, blocked);
        assert_eq!(gpulibs_hint::repeated_cause(&e), None);
    }
}
