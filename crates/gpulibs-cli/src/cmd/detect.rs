//! `gpulibs detect`: the GPUs, the driver, and why a GPU is not usable.

use gpulibs_detect::{detect, DetectOptions, Detection, Severity};

use crate::error::{exit, CliError};
use crate::style::{bytes, table, Cell, Style};
use crate::{Context, Outcome};

/// Find the NVIDIA GPUs of this machine and what they can run.
///
/// Loads NVML at run time (no process is spawned; about 20 ms) and falls back to `nvidia-smi`
/// when NVML cannot be used. Shows per GPU the compute capability and sm name, family, VRAM,
/// MIG mode, and for the machine the driver and the highest CUDA version it runs. GPUs hidden by
/// `CUDA_VISIBLE_DEVICES` are listed as hidden; when no GPU is usable, the reasons say what to do.
///
/// Exits 0 when at least one GPU is usable, 3 when none is.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gpulibs detect\n  CUDA_VISIBLE_DEVICES=1 gpulibs detect --json\n  \
GPULIBS_NVML_LIBRARY=/opt/nvidia/libnvidia-ml.so.1 gpulibs detect"
)]
pub struct Args {
    /// Never run `nvidia-smi`, even when NVML cannot be used.
    #[arg(long)]
    no_smi: bool,
}

pub fn run(args: &Args, ctx: &Context) -> Result<Outcome, CliError> {
    let mut options = DetectOptions::from_env();
    options.nvidia_smi_fallback = !args.no_smi;
    let detection = detect(&options);
    tracing::info!(
        source = detection.source.as_str(),
        gpus = detection.gpus.len(),
        "detected"
    );
    let code = if detection.has_usable_gpu() {
        exit::OK
    } else {
        exit::NEGATIVE
    };
    Ok(Outcome {
        json: serde_json::to_value(&detection)?,
        human: render(&detection, ctx.style),
        code,
    })
}

fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "?".to_string(), T::to_string)
}

pub fn render(d: &Detection, style: Style) -> String {
    let mut out = String::new();
    let driver = match &d.driver {
        Some(driver) => format!(
            "{}, runs CUDA {} and older",
            driver.version.as_deref().unwrap_or("version unknown"),
            opt(&driver.cuda)
        ),
        None => "none found".to_string(),
    };
    out.push_str(&table(
        style,
        &[
            vec![
                Cell::styled("source", Style::dim),
                Cell::new(d.source.as_str()),
            ],
            vec![Cell::styled("driver", Style::dim), Cell::new(driver)],
        ],
    ));

    if !d.gpus.is_empty() {
        out.push('\n');
        let mut rows = vec![[
            "#",
            "name",
            "cc",
            "sm",
            "family",
            "memory free / total",
            "mig",
            "pci bus id",
            "uuid",
        ]
        .into_iter()
        .map(|h| Cell::styled(h, Style::bold))
        .collect::<Vec<_>>()];
        for gpu in &d.gpus {
            let memory = match (gpu.memory_free_bytes, gpu.memory_total_bytes) {
                (Some(free), Some(total)) => format!("{} / {}", bytes(free), bytes(total)),
                (None, Some(total)) => format!("? / {}", bytes(total)),
                _ => "?".to_string(),
            };
            let mig = match gpu.mig {
                Some(m) if m.current != m.pending => {
                    format!("{} (pending {})", on_off(m.current), on_off(m.pending))
                }
                Some(m) => on_off(m.current).to_string(),
                None => "-".to_string(),
            };
            rows.push(vec![
                Cell::new(gpu.index.to_string()),
                Cell::new(opt(&gpu.name)),
                Cell::new(opt(&gpu.compute_capability)),
                Cell::styled(opt(&gpu.sm), Style::bold),
                Cell::new(opt(&gpu.family)),
                Cell::new(memory),
                Cell::new(mig),
                Cell::new(opt(&gpu.pci_bus_id)),
                Cell::styled(opt(&gpu.uuid), Style::dim),
            ]);
        }
        out.push_str(&table(style, &rows));
    }

    if !d.hidden.is_empty() {
        out.push('\n');
        for hidden in &d.hidden {
            out.push_str(&format!(
                "{} {} ({}): {}\n",
                style.warn("hidden:"),
                opt(&hidden.name),
                opt(&hidden.uuid),
                hidden.reason
            ));
        }
    }

    if !d.problems.is_empty() {
        out.push('\n');
        for p in &d.problems {
            let label = match p.severity {
                Severity::Error => style.bad("error:"),
                Severity::Warning => style.warn("warning:"),
                Severity::Info => style.dim("note:"),
            };
            out.push_str(&format!("{label} {}\n", p.message));
            if let Some(hint) = &p.hint {
                out.push_str(&format!("  {} {hint}\n", style.good("hint:")));
            }
        }
    }
    if !d.has_usable_gpu() && d.problems.iter().all(|p| p.severity != Severity::Error) {
        out.push_str("\nno usable NVIDIA GPU found.\n");
    }
    out
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}
