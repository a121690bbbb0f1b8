//! What [`crate::verify`] found: [`VerifyReport`], serde-serialisable with stable field names
//! (documented in `docs/verify.md`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use gpulibs_inspect::GpuVerdict;
use serde::{Deserialize, Serialize};

use crate::placement::Placement;
use crate::profile::NodePlacement;

/// Version of the JSON below; bumped when a field changes meaning or disappears.
/// 2: `verified_gpu_partial`, and each model's `placement`, `nodes` and `ort_log`.
pub const REPORT_SCHEMA_VERSION: u32 = 2;

/// The step of verification that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The request itself: a model file that does not exist, an option naming no input.
    Request,
    /// Before loading anything: the CUDA provider is absent, or has no kernel for the GPU.
    Preflight,
    /// Loading the CUDA/cuDNN libraries the CUDA provider needs.
    Preload,
    /// Loading ONNX Runtime itself.
    Load,
    /// Reading the model (on the CPU execution provider).
    Model,
    /// The model rejected the synthesised inputs, on the CPU: the options must change, not the
    /// GPU install.
    Input,
    /// Creating the session on the CUDA execution provider.
    Session,
    /// Running on the CUDA execution provider.
    Run,
    /// Where the model ran does not make a GPU pass: no compute on CUDA, a compute-heavy node
    /// on the CPU, any node on the CPU under `--strict`, or no record of placement.
    Fallback,
    /// GPU and CPU outputs differ beyond the threshold.
    Compare,
}

impl Stage {
    /// The JSON word: `request`, `preflight`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Request => "request",
            Stage::Preflight => "preflight",
            Stage::Preload => "preload",
            Stage::Load => "load",
            Stage::Model => "model",
            Stage::Input => "input",
            Stage::Session => "session",
            Stage::Run => "run",
            Stage::Fallback => "fallback",
            Stage::Compare => "compare",
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Every model ran on the CUDA execution provider, every node there, and matched the CPU.
    VerifiedGpu,
    /// Every model's compute ran on the CUDA execution provider and matched the CPU, and
    /// `cpu_nodes` nodes ran on the CPU (each named in its model's `placement`, with the
    /// reason): a pass with a warning. `--strict` makes it a failure.
    VerifiedGpuPartial { cpu_nodes: usize, warning: String },
    /// Every model ran, on the CPU execution provider only: `--device cpu` was asked, or
    /// `--device auto` found no usable GPU (`reason` says which).
    CpuOnly { reason: String },
    /// Something failed; never a pass. `hint` says what to do.
    Failed {
        stage: Stage,
        reason: String,
        hint: Option<String>,
    },
}

impl Outcome {
    /// The process exit code the CLI uses, so installers and scripts can act:
    ///
    /// | outcome | code |
    /// |---|---|
    /// | `verified_gpu` | 0 |
    /// | `verified_gpu_partial` (a pass; the warning names the CPU nodes) | 0 |
    /// | `failed` at stage `request` or `input` (the options must change) | 2 |
    /// | `failed`, any other stage | 1 |
    /// | `cpu_only` | 4 |
    ///
    /// 3 stays `detect`/`inspect`'s "negative answer"; 4 is distinct so a script can tell
    /// "fall back to the CPU variant" from "broken".
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::VerifiedGpu | Outcome::VerifiedGpuPartial { .. } => 0,
            Outcome::CpuOnly { .. } => 4,
            Outcome::Failed {
                stage: Stage::Request | Stage::Input,
                ..
            } => 2,
            Outcome::Failed { .. } => 1,
        }
    }

    /// `verified on GPU`, `CPU only`, `failed (stage)`.
    pub fn label(&self) -> String {
        match self {
            Outcome::VerifiedGpu => "verified on GPU".into(),
            Outcome::VerifiedGpuPartial { cpu_nodes, .. } => {
                format!("verified on GPU, {cpu_nodes} node(s) on the CPU")
            }
            Outcome::CpuOnly { .. } => "CPU only".into(),
            Outcome::Failed { stage, .. } => format!("failed ({})", stage.as_str()),
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }

    /// `verified_gpu` or `verified_gpu_partial`: the GPU did the model's work.
    pub fn is_gpu_pass(&self) -> bool {
        matches!(
            self,
            Outcome::VerifiedGpu | Outcome::VerifiedGpuPartial { .. }
        )
    }
}

/// The GPU verification ran on, as detection saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// CUDA ordinal.
    pub index: u32,
    pub name: Option<String>,
    /// `9.0`.
    pub compute_capability: Option<String>,
    /// The driver's highest CUDA (`13.0`).
    pub driver_cuda: Option<String>,
    pub driver_version: Option<String>,
    pub memory_total_bytes: Option<u64>,
    pub memory_free_bytes: Option<u64>,
}

/// Where verification ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// As asked: `cuda:0`, `cpu`, `auto`.
    pub requested: String,
    /// What ran: `cuda:0` or `cpu`.
    pub used: String,
    /// The GPU, when detection found the one asked for.
    pub gpu: Option<GpuInfo>,
    /// What detection said when it found no usable GPU.
    pub detection_problems: Vec<String>,
}

/// A library the CUDA provider needs that the loader would not find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingLibrary {
    /// `libcublasLt.so.13`.
    pub name: String,
    /// The library that needs it.
    pub required_by: PathBuf,
    /// `needed` (`DT_NEEDED`: loading fails) or `runtime` (`dlopen`ed by name when used).
    pub kind: String,
    /// "libcublasLt.so.13 not found: this library needs the CUDA 13 cuBLAS (pip: …)".
    pub message: String,
}

/// How a preload went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreloadStatus {
    Loaded,
    Failed,
}

/// One library `dlopen`ed (`RTLD_NOW | RTLD_GLOBAL`) before the CUDA provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreloadedLibrary {
    /// `libcudart.so.13`.
    pub name: String,
    /// The file in a preload directory; `None`: loaded by name through the loader's search.
    pub path: Option<PathBuf>,
    /// Whether the CUDA provider cannot load without it (`DT_NEEDED`, or cuDNN itself).
    pub required: bool,
    pub status: PreloadStatus,
    /// The loader's own error, for `failed`.
    pub error: Option<String>,
}

/// One input as it was fed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputReport {
    pub name: String,
    /// `float32`, `int64`, `float16`, `bool`, ….
    pub dtype: String,
    /// The shape the model declares: a number, a symbolic name, or `?` for an unnamed dynamic
    /// dimension.
    pub declared_shape: Vec<String>,
    /// The shape used.
    pub shape: Vec<i64>,
    /// `pseudo_random` or `value` (every element set by `--value`).
    pub data: String,
    /// The `--value`, when given.
    pub value: Option<f64>,
    /// Dynamic dimensions that got the default size 1 because no `--shape` named them.
    pub defaulted_dims: Vec<String>,
}

/// One output compared between the GPU and the CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputComparison {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    /// `max |gpu - cpu| / max(|cpu|, floor)`; see [`crate::compare`]. `None` for outputs that
    /// are not numeric tensors (strings, sequences, maps), which are not compared.
    pub max_rel_error: Option<f64>,
    pub threshold: Option<f64>,
    pub passed: bool,
}

/// One model's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelReport {
    /// The file, or `<probe>` for the built-in probe model.
    pub path: String,
    pub inputs: Vec<InputReport>,
    /// Session creation on the verified device, in milliseconds.
    pub session_create_ms: Option<f64>,
    /// The first run (includes cuDNN algorithm search and lazy initialisation).
    pub first_run_ms: Option<f64>,
    /// Median of the runs after the first.
    pub median_run_ms: Option<f64>,
    /// Runs done on the verified device, the first included.
    pub runs: usize,
    /// The reference run on the CPU execution provider (GPU verification only).
    pub cpu_run_ms: Option<f64>,
    /// Device memory the session took: free memory before session creation minus the least
    /// free memory seen after creation and after the runs (NVML; other processes on the GPU
    /// distort it).
    pub peak_vram_bytes: Option<u64>,
    /// Nodes executed per execution provider, from ONNX Runtime's profiler.
    pub nodes_by_provider: BTreeMap<String, usize>,
    /// GPU runs: where the nodes ran, why the CPU ones did, and the verdict
    /// ([`crate::placement::classify`]).
    #[serde(default)]
    pub placement: Option<Placement>,
    /// Every node the profiler saw run, with its operator and provider: the raw evidence behind
    /// `placement`.
    #[serde(default)]
    pub nodes: Vec<NodePlacement>,
    /// ONNX Runtime's own log lines about placement while the session was created
    /// (`CUDA kernel not found in registries for Op type: …`, `Force fallback to CPU execution
    /// for node: …`, `Node(s) placed on […]`), as `<severity> <code location>: <message>`.
    #[serde(default)]
    pub ort_log: Vec<String>,
    /// The largest relative error over all compared outputs.
    pub max_rel_error: Option<f64>,
    /// The threshold of the output with the largest error relative to its threshold.
    pub threshold: Option<f64>,
    pub outputs_compared: Vec<OutputComparison>,
    /// Things worth knowing that are not failures.
    pub notes: Vec<String>,
}

/// Everything `gpulibs verify` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub schema_version: u32,
    pub outcome: Outcome,
    /// ONNX Runtime's own version string (`1.23.2`), once loaded.
    pub ort_version: Option<String>,
    pub ort_library: PathBuf,
    /// Where `ort_library` came from, when the caller says (the CLI: `--ort`, `ORT_DYLIB_PATH`,
    /// or the active install), and any setting that was passed over.
    #[serde(default)]
    pub ort_library_source: Option<String>,
    /// `libonnxruntime_providers_cuda.so` next to `ort_library`, when verifying on the GPU.
    pub provider_library: Option<PathBuf>,
    pub device: DeviceReport,
    /// `gpulibs-inspect`'s verdict for the provider library on this GPU and driver.
    pub kernel_verdict: Option<GpuVerdict>,
    /// What the loader would not find for the provider library (from `gpulibs-inspect`'s
    /// dependency resolution, with the preload directories searched first).
    pub missing_libraries: Vec<MissingLibrary>,
    pub preloaded: Vec<PreloadedLibrary>,
    pub models: Vec<ModelReport>,
    /// Total wall time of the verification, in milliseconds.
    pub total_ms: f64,
}

impl VerifyReport {
    /// The JSON of `docs/verify.md`, pretty-printed.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The largest peak VRAM over the models, for the catalog's measurements.
    pub fn peak_vram_bytes(&self) -> Option<u64> {
        self.models.iter().filter_map(|m| m.peak_vram_bytes).max()
    }

    /// A short text rendering for people (the CLI may draw its own).
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "outcome:   {}", self.outcome.label());
        if let Outcome::Failed { reason, hint, .. } = &self.outcome {
            let _ = writeln!(s, "reason:    {reason}");
            if let Some(h) = hint {
                let _ = writeln!(s, "hint:      {h}");
            }
        }
        if let Outcome::CpuOnly { reason } = &self.outcome {
            let _ = writeln!(s, "reason:    {reason}");
        }
        if let Outcome::VerifiedGpuPartial { warning, .. } = &self.outcome {
            let _ = writeln!(s, "warning:   {warning}");
        }
        let _ = writeln!(
            s,
            "ort:       {} ({})",
            self.ort_version.as_deref().unwrap_or("not loaded"),
            self.ort_library.display()
        );
        if let Some(from) = &self.ort_library_source {
            let _ = writeln!(s, "ort from:  {from}");
        }
        if let Some(p) = &self.provider_library {
            let _ = writeln!(s, "provider:  {}", p.display());
        }
        // `used` is empty when verification stopped before choosing a device.
        let used = match self.device.used.as_str() {
            "" => "none chosen",
            used => used,
        };
        let _ = writeln!(s, "device:    {used} (asked: {})", self.device.requested);
        if let Some(g) = &self.device.gpu {
            let _ = writeln!(
                s,
                "gpu:       {} sm {} driver CUDA {}",
                g.name.as_deref().unwrap_or("?"),
                g.compute_capability.as_deref().unwrap_or("?"),
                g.driver_cuda.as_deref().unwrap_or("?")
            );
        }
        if let Some(v) = &self.kernel_verdict {
            let _ = writeln!(s, "kernels:   {}", v.message);
        }
        for m in &self.missing_libraries {
            let _ = writeln!(s, "missing:   {}", m.message);
        }
        for p in &self.preloaded {
            let _ = writeln!(
                s,
                "preload:   {} {}{}",
                p.name,
                match p.status {
                    PreloadStatus::Loaded => "loaded",
                    PreloadStatus::Failed => "FAILED",
                },
                p.path
                    .as_ref()
                    .map(|p| format!(" from {}", p.display()))
                    .unwrap_or_default()
            );
        }
        for m in &self.models {
            let _ = writeln!(s, "model:     {}", m.path);
            for i in &m.inputs {
                let _ = writeln!(
                    s,
                    "  input    {} {} {:?} ({})",
                    i.name, i.dtype, i.shape, i.data
                );
            }
            let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
            let _ = writeln!(
                s,
                "  session {}, first run {}, median {} over {} run(s)",
                ms(m.session_create_ms),
                ms(m.first_run_ms),
                ms(m.median_run_ms),
                m.runs
            );
            if let Some(v) = m.peak_vram_bytes {
                let _ = writeln!(s, "  VRAM    {:.1} MiB", v as f64 / 1048576.0);
            }
            if !m.nodes_by_provider.is_empty() {
                let _ = writeln!(s, "  nodes   {:?}", m.nodes_by_provider);
            }
            if let Some(p) = &m.placement {
                for n in &p.cpu_nodes {
                    let _ = writeln!(
                        s,
                        "  on CPU  {} `{}`: {}{}",
                        n.op_type,
                        n.name,
                        n.reason.describe(&n.op_type),
                        if n.heavy { " (compute-heavy)" } else { "" }
                    );
                }
            }
            if let Some(e) = m.max_rel_error {
                let _ = writeln!(
                    s,
                    "  max relative error {e:.2e} (threshold {:.0e})",
                    m.threshold.unwrap_or(0.0)
                );
            }
            for n in &m.notes {
                let _ = writeln!(s, "  note    {n}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let failed = |stage| Outcome::Failed {
            stage,
            reason: String::new(),
            hint: None,
        };
        assert_eq!(Outcome::VerifiedGpu.exit_code(), 0);
        assert_eq!(
            Outcome::VerifiedGpuPartial {
                cpu_nodes: 1,
                warning: String::new()
            }
            .exit_code(),
            0
        );
        assert_eq!(
            Outcome::CpuOnly {
                reason: String::new()
            }
            .exit_code(),
            4
        );
        assert_eq!(failed(Stage::Input).exit_code(), 2);
        assert_eq!(failed(Stage::Request).exit_code(), 2);
        for s in [
            Stage::Preflight,
            Stage::Preload,
            Stage::Load,
            Stage::Model,
            Stage::Session,
            Stage::Run,
            Stage::Fallback,
            Stage::Compare,
        ] {
            assert_eq!(failed(s).exit_code(), 1, "{s:?}");
        }
    }

    #[test]
    fn outcome_json_is_tagged() {
        let o = Outcome::Failed {
            stage: Stage::Preload,
            reason: "r".into(),
            hint: Some("h".into()),
        };
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"status":"failed","stage":"preload","reason":"r","hint":"h"}"#
        );
        assert_eq!(
            serde_json::to_string(&Outcome::VerifiedGpu).unwrap(),
            r#"{"status":"verified_gpu"}"#
        );
        let partial = Outcome::VerifiedGpuPartial {
            cpu_nodes: 1,
            warning: "w".into(),
        };
        assert_eq!(
            serde_json::to_string(&partial).unwrap(),
            r#"{"status":"verified_gpu_partial","cpu_nodes":1,"warning":"w"}"#
        );
        assert!(partial.is_gpu_pass() && Outcome::VerifiedGpu.is_gpu_pass());
        assert_eq!(partial.label(), "verified on GPU, 1 node(s) on the CPU");
    }
}
