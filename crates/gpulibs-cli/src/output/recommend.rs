//! `gpulibs recommend`'s result.

use gpulibs_verify::{ModelDevice, Recommendation};
use serde::{Deserialize, Serialize};

use crate::style::{bytes, Style};

/// What `gpulibs recommend` answers: the recommendation's fields at the top level, and where
/// the choice was recorded.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecommendOutput {
    pub schema_version: u32,
    #[serde(flatten)]
    pub recommendation: Recommendation,
    /// With `--app`: the file the choice was written to; null otherwise.
    pub recorded_in: Option<String>,
}

/// The winner (or that there is none), then every model that lost and why.
pub fn render(out: &RecommendOutput, style: Style) -> String {
    let rec = &out.recommendation;
    let mut human = String::new();
    match &rec.winner {
        Some(w) => human.push_str(&format!(
            "{} {} ({}, needs {}{}): {}\n",
            style.bold("recommended"),
            w.model,
            match w.device {
                ModelDevice::Gpu => "GPU",
                ModelDevice::Cpu => "CPU",
            },
            bytes(w.vram_need_bytes),
            if w.vram_measured {
                ", measured here"
            } else {
                ""
            },
            w.report.outcome.label()
        )),
        None => human.push_str("no model fits and verifies on this machine\n"),
    }
    for loss in &rec.losses {
        human.push_str(&format!("  {}: {}\n", loss.model, loss.message));
    }
    human
}
