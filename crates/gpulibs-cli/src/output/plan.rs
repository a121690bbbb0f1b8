//! `gpulibs plan`'s result.

use gpulibs_plan::{human_bytes, LineKind, Plan, Trust};
use serde::Serialize;

use crate::cmd::plan::{from_words, why_words};
use crate::style::{table, Cell, Style};

/// What `gpulibs plan` answers. The plan itself is [`gpulibs_plan::Plan`], serialised as it
/// is (serialise-only: it holds the planner's own types).
#[derive(Debug, Serialize)]
pub struct PlanOutput {
    pub schema_version: u32,
    /// Where the manifest came from, in words: a path, a URL or `embedded (…)`.
    pub manifest: String,
    /// How far the manifest is trusted.
    pub trust: Trust,
    /// The install root whose free space was checked.
    pub install_root: String,
    pub plan: Plan,
}

/// The plan for people: where the manifest came from, the GPUs, one line per decision (the
/// chosen one in green, warnings in yellow, by their kind), then the chosen components.
pub fn render(out: &PlanOutput, style: Style) -> String {
    let plan = &out.plan;
    let mut text = format!("{} {}\n", style.dim("manifest"), out.manifest);
    let gpus: Vec<String> = plan
        .target_gpus
        .iter()
        .map(|g| {
            format!(
                "{} ({})",
                g.compute_capability.sm_name(),
                g.name.as_deref().unwrap_or("GPU")
            )
        })
        .collect();
    text.push_str(&format!(
        "{} {}\n\n",
        style.dim("for     "),
        if gpus.is_empty() {
            "no GPU".into()
        } else {
            gpus.join(", ")
        }
    ));
    for (kind, line) in plan.kinded_lines() {
        let styled = match kind {
            LineKind::Warning => style.warn(&line),
            LineKind::Chosen => style.good(&line),
            LineKind::CpuFallback | LineKind::Refused | LineKind::Rejected | LineKind::Totals => {
                line
            }
        };
        text.push_str(&styled);
        text.push('\n');
    }
    if let Some(chosen) = &plan.chosen {
        text.push('\n');
        let mut rows = vec![["component", "from", "why", "download"]
            .map(|h| Cell::styled(h, Style::dim))
            .into_iter()
            .collect::<Vec<_>>()];
        for c in &chosen.components {
            rows.push(vec![
                Cell::styled(c.id.clone(), Style::bold),
                Cell::new(from_words(c)),
                Cell::new(why_words(&c.why)),
                Cell::new(human_bytes(c.download_bytes)),
            ]);
        }
        text.push_str(&table(style, &rows));
    }
    text
}
