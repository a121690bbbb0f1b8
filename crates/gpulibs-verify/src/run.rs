//! [`verify`]: the whole procedure, from preflight to comparison.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use gpulibs_detect::{detect, DetectOptions, Detection, Gpu};
use gpulibs_inspect::deps::SearchContext;
use gpulibs_inspect::{InspectOptions, Verdict};
use ort::environment::Environment;
use ort::ep;
use ort::session::Session;
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use crate::compare::{max_rel_error, threshold_for};
use crate::error::VerifyError;
use crate::placement::{classify, CpuReason, Placement, PlacementVerdict};
use crate::profile::{count_by_provider, node_placements};
use crate::report::*;
use crate::request::{Device, ModelSource, VerifyRequest};
use crate::runtime;
use crate::synth::{
    plan_inputs, rejection_hint, unused_options, Dim, ElementType, Fill, InputMeta, InputPlan,
};

/// The file name of ONNX Runtime's CUDA provider, next to `libonnxruntime.so`.
pub const CUDA_PROVIDER_LIBRARY: &str = "libonnxruntime_providers_cuda.so";

/// The probe model, built by `scripts/make-probe-model.py`: Conv (cuDNN), MatMul and Gemm
/// (cuBLAS), LSTM, Relu/Add/Mul/Sigmoid; input `x` float32 [1, 3, 16, 16].
pub static PROBE_MODEL: &[u8] = include_bytes!("../models/probe.onnx");

/// Which nodes may run on the CPU in a GPU verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlacementRule {
    /// Nodes that are not compute-heavy ([`crate::placement::HEAVY_OPS`]) may run on the CPU:
    /// the outcome is then [`Outcome::VerifiedGpuPartial`], naming them.
    #[default]
    AllowCpuNodes,
    /// `--strict`: any node on the CPU fails (stage `fallback`).
    Strict,
}

/// Runs the verification `req` describes under [`PlacementRule::AllowCpuNodes`]; see
/// [`verify_with`].
pub fn verify(req: &VerifyRequest) -> VerifyReport {
    verify_with(req, PlacementRule::default())
}

/// Runs the verification `req` describes. Never panics and never returns an error: every
/// failure is [`Outcome::Failed`] with its stage, reason and hint, next to everything learned
/// before it.
///
/// ONNX Runtime is loaded once per process (see [`crate::runtime`]): call this once per process
/// for one library; calling it again with the same library is fine, with another one fails.
pub fn verify_with(req: &VerifyRequest, rule: PlacementRule) -> VerifyReport {
    let start = Instant::now();
    let mut report = VerifyReport {
        schema_version: REPORT_SCHEMA_VERSION,
        outcome: Outcome::VerifiedGpu, // replaced below
        ort_version: None,
        ort_library: req.ort_library.clone(),
        ort_library_source: None,
        provider_library: None,
        device: DeviceReport {
            requested: req.device.to_string(),
            used: String::new(),
            gpu: None,
            detection_problems: Vec::new(),
        },
        kernel_verdict: None,
        missing_libraries: Vec::new(),
        preloaded: Vec::new(),
        models: Vec::new(),
        total_ms: 0.0,
    };
    let result = catch_unwind(AssertUnwindSafe(|| run(req, rule, &mut report)));
    report.outcome = match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => e.into_outcome(),
        Err(panic) => Outcome::Failed {
            stage: Stage::Run,
            reason: format!("verification panicked: {}", runtime::panic_text(&panic)),
            hint: Some("this is a bug in gpulibs: report it with the --json output".into()),
        },
    };
    report.total_ms = ms(start);
    report
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// A model to run: its label in reports and where its bytes are.
enum ModelInput {
    Probe,
    File(PathBuf),
}

impl ModelInput {
    fn label(&self) -> String {
        match self {
            ModelInput::Probe => "<probe>".into(),
            ModelInput::File(p) => p.display().to_string(),
        }
    }
}

fn models_of(source: &ModelSource) -> Result<Vec<ModelInput>, VerifyError> {
    let check = |p: &Path| -> Result<(), VerifyError> {
        crate::request::check_model_file(p).map_err(|source| VerifyError::ModelUnreadable {
            path: p.to_path_buf(),
            source,
        })
    };
    match source {
        ModelSource::Probe => Ok(vec![ModelInput::Probe]),
        ModelSource::Files(files) => {
            let mut out = Vec::new();
            for f in files {
                check(f)?;
                out.push(ModelInput::File(f.clone()));
            }
            if out.is_empty() {
                return Ok(vec![ModelInput::Probe]);
            }
            Ok(out)
        }
        ModelSource::Dir(dir) => {
            let rd = std::fs::read_dir(dir).map_err(|source| VerifyError::ModelUnreadable {
                path: dir.clone(),
                source,
            })?;
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "onnx") && p.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(VerifyError::NoModelsInDir { dir: dir.clone() });
            }
            Ok(files.into_iter().map(ModelInput::File).collect())
        }
    }
}

fn gpu_info(gpu: &Gpu, detection: &Detection) -> GpuInfo {
    let driver = detection.driver.as_ref();
    GpuInfo {
        index: gpu.index,
        name: gpu.name.clone(),
        compute_capability: gpu.compute_capability.map(|c| c.to_string()),
        driver_cuda: driver.and_then(|d| d.cuda).map(|v| v.to_string()),
        driver_version: driver.and_then(|d| d.version.clone()),
        memory_total_bytes: gpu.memory_total_bytes,
        memory_free_bytes: gpu.memory_free_bytes,
    }
}

fn free_vram(index: u32) -> Option<u64> {
    detect(&DetectOptions::from_env())
        .gpus
        .iter()
        .find(|g| g.index == index)
        .and_then(|g| g.memory_free_bytes)
}

fn run(
    req: &VerifyRequest,
    rule: PlacementRule,
    report: &mut VerifyReport,
) -> Result<Outcome, VerifyError> {
    let models = models_of(&req.models)?;

    // Where to run.
    let (cuda, cpu_reason) = match req.device {
        Device::Cpu => (None, Some("--device cpu was asked".to_string())),
        Device::Cuda(n) => (Some(n), None),
        Device::Auto => {
            let d = detect(&DetectOptions::from_env());
            if d.usable_gpus().next().is_some() {
                (Some(0), None)
            } else {
                let problems: Vec<String> = d.problems.iter().map(|p| p.message.clone()).collect();
                report.device.detection_problems = problems.clone();
                (
                    None,
                    Some(format!(
                        "no usable GPU was detected ({})",
                        problems.join("; ")
                    )),
                )
            }
        }
    };
    report.device.used = cuda.map_or("cpu".into(), |n| format!("cuda:{n}"));

    if let Some(index) = cuda {
        preflight(req, index, report)?;
    }

    // Declared before any session, so dropped after all of them: ONNX Runtime writes a session's
    // profile when the session ends, also on the error paths that never call `end_profiling`.
    let profiles = Profiles::new()?;
    let (version, env) = runtime::load_ort(&req.ort_library)?;
    report.ort_version = Some(version);

    // Phase 1: read every model on the CPU and plan its inputs, so that options naming nothing
    // are caught before anything runs.
    let mut loaded = Vec::new();
    let mut used = BTreeSet::new();
    let mut all_metas = Vec::new();
    for model in &models {
        let profile = cuda.is_none();
        let started = Instant::now();
        // On the CPU-only path this session is the verified one: its placement lines are kept.
        if profile {
            runtime::start_capture();
        }
        let session = cpu_session(&env, model, profile.then(|| profiles.prefix()));
        let cpu_log = if profile {
            runtime::take_capture()
        } else {
            Vec::new()
        };
        let session = session?;
        let create_ms = ms(started);
        let metas = input_metas(&session);
        let planned = plan_inputs(&metas, &req.shapes, &req.values, req.max_input_bytes)?;
        used.extend(planned.used_options);
        all_metas.extend(metas);
        loaded.push((model, session, create_ms, planned.inputs, cpu_log));
    }
    if let Some(e) = unused_options(&req.shapes, &req.values, &used, &all_metas) {
        return Err(e.into());
    }

    // Phase 2: run.
    let runs = req.runs.max(1);
    let strict = rule == PlacementRule::Strict;
    let mut partial: Vec<(String, Placement)> = Vec::new();
    for (model, mut cpu, cpu_create_ms, plans, cpu_log) in loaded {
        let label = model.label();
        let mut m = ModelReport {
            path: label.clone(),
            inputs: plans.iter().map(input_report).collect(),
            ort_log: cpu_log,
            ..ModelReport::default()
        };
        report.models.push(m.clone());
        let inputs = build_inputs(&plans).map_err(|message| VerifyError::InputRejected {
            model: label.clone(),
            message,
            hint: rejection_hint(&plans),
        })?;

        let started = Instant::now();
        let reference =
            run_once(&mut cpu, &inputs).map_err(|message| VerifyError::InputRejected {
                model: label.clone(),
                message,
                hint: rejection_hint(&plans),
            })?;
        let cpu_first_ms = ms(started);

        match cuda {
            None => {
                m.session_create_ms = Some(cpu_create_ms);
                m.first_run_ms = Some(cpu_first_ms);
                m.median_run_ms = steady_runs(&mut cpu, &inputs, runs, &label)?;
                m.runs = runs;
                if let Some(path) = end_profiling(&mut cpu) {
                    match std::fs::read_to_string(&path).map(|t| node_placements(&t)) {
                        Ok(Ok(n)) => {
                            m.nodes_by_provider = count_by_provider(&n);
                            m.nodes = n;
                        }
                        _ => m.notes.push("the profiler output could not be read".into()),
                    }
                    let _ = std::fs::remove_file(&path);
                }
            }
            Some(index) => {
                m.cpu_run_ms = Some(cpu_first_ms);
                // Whatever the GPU run measured stays in the report, failure or not.
                let case = Case {
                    inputs: &inputs,
                    reference: &reference,
                    runs,
                };
                let prefix = profiles.prefix();
                let result = gpu_model(&env, model, index, &prefix, case, strict, &mut m);
                *report.models.last_mut().expect("pushed above") = m.clone();
                let placement = result?;
                if placement.verdict == PlacementVerdict::Partial {
                    partial.push((label.clone(), placement));
                }
            }
        }
        *report.models.last_mut().expect("pushed above") = m;
    }

    Ok(match cpu_reason {
        Some(reason) => Outcome::CpuOnly { reason },
        None if partial.is_empty() => Outcome::VerifiedGpu,
        None => Outcome::VerifiedGpuPartial {
            cpu_nodes: partial.iter().map(|(_, p)| p.cpu_nodes.len()).sum(),
            warning: partial_warning(&partial),
        },
    })
}

/// "model.onnx: 1 of 16 nodes ran on the CPU (1 without a CUDA kernel): STFT `/STFT` (…); its
/// 3 compute-heavy nodes ran on CUDA", one clause per model.
fn partial_warning(partial: &[(String, Placement)]) -> String {
    partial
        .iter()
        .map(|(model, p)| {
            let total = p.cuda_nodes + p.cpu_nodes.len();
            format!(
                "{model}: {} of {total} nodes ran on the CPU ({}): {}; {}",
                p.cpu_nodes.len(),
                p.reason_summary(),
                p.describe_cpu_nodes(8),
                match p.heavy_cuda_nodes {
                    0 => "it has no compute-heavy node".to_string(),
                    n => format!("its {n} compute-heavy node(s) ran on CUDA"),
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Everything before loading: the CUDA provider is there, has kernels for this GPU, and the
/// libraries it needs load.
fn preflight(
    req: &VerifyRequest,
    index: u32,
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    // The library itself first: a path that names nothing is not "a CPU-only ONNX Runtime".
    runtime::check_elf(&req.ort_library)?;
    let detection = detect(&DetectOptions::from_env());
    let gpu = detection.gpus.iter().find(|g| g.index == index);
    match gpu {
        Some(g) => report.device.gpu = Some(gpu_info(g, &detection)),
        None => {
            report.device.detection_problems = detection
                .problems
                .iter()
                .map(|p| p.message.clone())
                .collect();
            if report.device.detection_problems.is_empty() {
                report
                    .device
                    .detection_problems
                    .push(format!("detection found no GPU with CUDA index {index}"));
            }
        }
    }

    let dir = req.ort_library.parent().unwrap_or(Path::new("."));
    let provider = dir.join(CUDA_PROVIDER_LIBRARY);
    report.provider_library = Some(provider.clone());
    if !provider.is_file() {
        return Err(VerifyError::NoCudaProvider {
            ort_library: req.ort_library.clone(),
            expected: provider,
        });
    }

    // Kernels: gpulibs-inspect's verdict for this GPU and driver.
    if let Some(cc) = gpu.and_then(|g| g.compute_capability) {
        let opts = InspectOptions {
            gpus: vec![cc],
            driver: detection.driver.as_ref().and_then(|d| d.cuda),
            check_payloads: false,
        };
        if let Ok(file) = gpulibs_inspect::inspect_file(&provider, &opts) {
            if let Some(v) = file.verdicts.into_iter().next() {
                let verdict = v.verdict.clone();
                let message = v.message.clone();
                report.kernel_verdict = Some(v);
                if let Verdict::NoKernelImage { needed_targets, .. } = verdict {
                    return Err(VerifyError::NoKernelImage {
                        message,
                        needed: needed_targets,
                    });
                }
            }
        }
    }

    // Libraries: what the loader would miss, with the preload directories searched first.
    let mut ctx = SearchContext::from_system();
    let mut path: Vec<String> = req
        .preload_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    path.extend(ctx.ld_library_path.take().filter(|p| !p.is_empty()));
    ctx.ld_library_path = (!path.is_empty()).then(|| path.join(":"));
    if let Ok(deps) = gpulibs_inspect::deps::inspect_file(&provider, &ctx) {
        let plan = runtime::preload_plan(&deps);
        report.missing_libraries = runtime::missing_libraries(&deps, &plan);
        let (preloaded, failures) = runtime::preload(&plan, &req.preload_dirs);
        report.preloaded = preloaded;
        if !failures.is_empty() {
            return Err(VerifyError::Preload { failures });
        }
    }
    Ok(())
}

/// A private directory for ONNX Runtime's profiler output, removed with everything in it when
/// dropped: nothing is left in the temporary directory, whichever way verify ends.
struct Profiles {
    dir: tempfile::TempDir,
    next: std::cell::Cell<usize>,
}

impl Profiles {
    fn new() -> Result<Self, VerifyError> {
        let parent = std::env::temp_dir();
        let dir = tempfile::Builder::new()
            .prefix("gpulibs-verify-")
            .tempdir_in(&parent)
            .map_err(|source| VerifyError::ScratchDir { parent, source })?;
        Ok(Profiles {
            dir,
            next: std::cell::Cell::new(0),
        })
    }

    /// A prefix no other session of this run uses (ONNX Runtime appends a time stamp).
    fn prefix(&self) -> PathBuf {
        let n = self.next.replace(self.next.get() + 1);
        self.dir.path().join(format!("session-{n}"))
    }
}

fn commit(
    builder: ort::session::builder::SessionBuilder,
    model: &ModelInput,
) -> ort::Result<Session> {
    let mut builder = builder;
    match model {
        ModelInput::Probe => builder.commit_from_memory(PROBE_MODEL),
        ModelInput::File(p) => builder.commit_from_file(p),
    }
}

/// What one model's GPU run is given: its inputs, the CPU's outputs it must match, and how
/// many times to run.
struct Case<'a> {
    inputs: &'a [(String, DynValue)],
    reference: &'a [Output],
    runs: usize,
}

/// A CPU session for `model`, profiled to `profile` when given.
fn cpu_session(
    env: &Environment,
    model: &ModelInput,
    profile: Option<PathBuf>,
) -> Result<Session, VerifyError> {
    let err = |e: ort::Error| VerifyError::ModelLoad {
        model: model.label(),
        message: e.to_string(),
    };
    let mut builder = Session::builder(env).map_err(err)?;
    if let Some(prefix) = profile {
        builder = builder.with_profiling(prefix).map_err(|e| err(e.into()))?;
    }
    commit(builder, model).map_err(err)
}

fn gpu_model(
    env: &Environment,
    model: &ModelInput,
    index: u32,
    profile: &Path,
    case: Case<'_>,
    strict: bool,
    m: &mut ModelReport,
) -> Result<Placement, VerifyError> {
    let label = model.label();
    let session_err = |message: String| VerifyError::GpuSession {
        model: label.clone(),
        message,
    };
    let free_before = free_vram(index);
    let started = Instant::now();
    // CPU fallback stays allowed: ONNX Runtime places on the CPU what it cannot or will not run
    // on CUDA, and the profiler and its log lines (kept by the capture) say which and why.
    runtime::start_capture();
    let created = Session::builder(env)
        .and_then(|b| Ok(b.with_profiling(profile)?))
        .map_err(|e| session_err(e.to_string()))
        .and_then(|builder| {
            builder
                .with_execution_providers([ep::CUDA::default()
                    .with_device_id(index as i32)
                    // Full FP32 on the GPU, as on the CPU: TF32 noise would hide nothing and
                    // prove nothing (see `compare`).
                    .with_tf32(false)
                    .build()
                    .error_on_failure()])
                .map_err(|e| VerifyError::CudaProvider {
                    message: e.to_string(),
                })
        })
        .and_then(|builder| commit(builder, model).map_err(|e| session_err(e.to_string())));
    m.ort_log = runtime::take_capture();
    let mut session = created?;
    m.session_create_ms = Some(ms(started));
    let mut free_samples: Vec<u64> = free_vram(index).into_iter().collect();

    let gpu_err = |message: String| VerifyError::GpuRun {
        model: label.clone(),
        message,
    };
    let started = Instant::now();
    let Case {
        inputs,
        reference,
        runs,
    } = case;
    let outputs = run_once(&mut session, inputs).map_err(gpu_err)?;
    m.first_run_ms = Some(ms(started));
    m.median_run_ms = steady_runs(&mut session, inputs, runs, &label)?;
    m.runs = runs;
    free_samples.extend(free_vram(index));
    if let (Some(before), Some(least)) = (free_before, free_samples.iter().min()) {
        m.peak_vram_bytes = Some(before.saturating_sub(*least));
    } else {
        m.notes
            .push("VRAM not measured: NVML gave no free-memory figure for this GPU".into());
    }

    // Proof of where it ran: the profiler's record of every node, and ONNX Runtime's reasons.
    match end_profiling(&mut session) {
        Some(path) => {
            let parsed = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| node_placements(&t).ok());
            let _ = std::fs::remove_file(&path);
            if let Some(n) = parsed {
                m.nodes_by_provider = count_by_provider(&n);
                m.nodes = n;
            }
        }
        None => m.notes.push("the profiler output could not be read".into()),
    }
    let placement = classify(&m.nodes, &m.ort_log, strict);
    m.placement = Some(placement.clone());
    placement_error(&label, &placement).map_or(Ok(()), Err)?;

    // GPU against CPU.
    let mut worst: Option<(f64, f64, String)> = None; // (error/threshold, error, output)
    for (gpu, cpu) in outputs.iter().zip(reference) {
        let threshold = gpu.dtype.and_then(threshold_for);
        let error = match (&gpu.values, &cpu.values) {
            (Some(a), Some(b)) if gpu.shape == cpu.shape => Some(max_rel_error(a, b)),
            (Some(_), Some(_)) => Some(f64::INFINITY),
            _ => None,
        };
        let passed = match (error, threshold) {
            (Some(e), Some(t)) => e <= t,
            _ => true,
        };
        if let (Some(e), Some(t)) = (error, threshold) {
            let ratio = if t > 0.0 {
                e / t
            } else if e > 0.0 {
                f64::INFINITY
            } else {
                0.0
            };
            if worst.as_ref().is_none_or(|w| ratio > w.0) {
                worst = Some((ratio, t, gpu.name.clone()));
            }
            m.max_rel_error = Some(m.max_rel_error.map_or(e, |x: f64| x.max(e)));
        }
        m.outputs_compared.push(OutputComparison {
            name: gpu.name.clone(),
            dtype: gpu.dtype.map_or("non-tensor", ElementType::as_str).into(),
            shape: gpu.shape.clone(),
            max_rel_error: error,
            threshold,
            passed,
        });
    }
    if let Some((_, t, _)) = &worst {
        m.threshold = Some(*t);
    }
    if let Some(failed) = m.outputs_compared.iter().find(|o| !o.passed) {
        return Err(VerifyError::Mismatch {
            model: label,
            output: failed.name.clone(),
            error: failed.max_rel_error.unwrap_or(f64::INFINITY),
            threshold: failed.threshold.unwrap_or(0.0),
        });
    }
    Ok(placement)
}

/// The failure a placement verdict means, if any.
fn placement_error(model: &str, p: &Placement) -> Option<VerifyError> {
    let model = model.to_string();
    Some(match p.verdict {
        PlacementVerdict::AllOnGpu | PlacementVerdict::Partial => return None,
        PlacementVerdict::NoRecord => VerifyError::NoPlacementRecord { model },
        PlacementVerdict::NoGpuWork => VerifyError::NoGpuWork {
            model,
            cpu_nodes: p.cpu_nodes.len(),
        },
        PlacementVerdict::HeavyOnCpu => {
            let mut no_kernel_ops: Vec<String> = p
                .cpu_nodes
                .iter()
                .filter(|n| n.heavy && n.reason == CpuReason::NoCudaKernel)
                .map(|n| n.op_type.clone())
                .collect();
            no_kernel_ops.sort();
            no_kernel_ops.dedup();
            VerifyError::HeavyOnCpu {
                model,
                nodes: p.describe_heavy_cpu_nodes(8),
                no_kernel_ops,
            }
        }
        PlacementVerdict::StrictCpuNodes => VerifyError::RanOnCpu {
            model,
            cpu_nodes: p.cpu_nodes.len(),
            cuda_nodes: p.cuda_nodes,
            nodes: p.describe_cpu_nodes(8),
        },
    })
}

fn end_profiling(session: &mut Session) -> Option<PathBuf> {
    session.end_profiling().ok().map(PathBuf::from)
}

fn steady_runs(
    session: &mut Session,
    inputs: &[(String, DynValue)],
    runs: usize,
    label: &str,
) -> Result<Option<f64>, VerifyError> {
    let mut times = Vec::new();
    for _ in 1..runs {
        let started = Instant::now();
        run_once(session, inputs).map_err(|message| VerifyError::GpuRun {
            model: label.to_string(),
            message,
        })?;
        times.push(ms(started));
    }
    Ok(median(&mut times))
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn element_type(t: TensorElementType) -> ElementType {
    match t {
        TensorElementType::Float32 => ElementType::Float32,
        TensorElementType::Float64 => ElementType::Float64,
        TensorElementType::Float16 => ElementType::Float16,
        TensorElementType::Bfloat16 => ElementType::Bfloat16,
        TensorElementType::Int8 => ElementType::Int8,
        TensorElementType::Int16 => ElementType::Int16,
        TensorElementType::Int32 => ElementType::Int32,
        TensorElementType::Int64 => ElementType::Int64,
        TensorElementType::Uint8 => ElementType::Uint8,
        TensorElementType::Uint16 => ElementType::Uint16,
        TensorElementType::Uint32 => ElementType::Uint32,
        TensorElementType::Uint64 => ElementType::Uint64,
        TensorElementType::Bool => ElementType::Bool,
        _ => ElementType::Unsupported,
    }
}

fn input_metas(session: &Session) -> Vec<InputMeta> {
    session
        .inputs()
        .iter()
        .map(|input| match input.dtype() {
            ValueType::Tensor {
                ty,
                shape,
                dimension_symbols,
            } => InputMeta {
                name: input.name().to_string(),
                dtype: Some(element_type(*ty)),
                dims: shape
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| {
                        if d >= 0 {
                            Dim::Fixed(d)
                        } else {
                            match dimension_symbols.get(i).filter(|s| !s.is_empty()) {
                                Some(s) => Dim::Named(s.clone()),
                                None => Dim::Unnamed,
                            }
                        }
                    })
                    .collect(),
            },
            _ => InputMeta {
                name: input.name().to_string(),
                dtype: None,
                dims: Vec::new(),
            },
        })
        .collect()
}

fn input_report(p: &InputPlan) -> InputReport {
    InputReport {
        name: p.meta.name.clone(),
        dtype: p.dtype.as_str().into(),
        declared_shape: p.meta.declared(),
        shape: p.shape.clone(),
        data: match p.fill {
            Fill::Value(_) => "value",
            Fill::PseudoRandom(_) => "pseudo_random",
        }
        .into(),
        value: match p.fill {
            Fill::Value(v) => Some(v),
            Fill::PseudoRandom(_) => None,
        },
        defaulted_dims: p.defaulted_dims.clone(),
    }
}

fn build_inputs(plans: &[InputPlan]) -> Result<Vec<(String, DynValue)>, String> {
    plans
        .iter()
        .map(|p| {
            let shape = p.shape.clone();
            macro_rules! tensor {
                ($conv:expr) => {
                    Tensor::from_array((shape, p.values($conv).map_err(|e| e.to_string())?))
                        .map(|t| t.into_dyn())
                };
            }
            let value = match p.dtype {
                ElementType::Float32 => tensor!(|x| *x as f32),
                ElementType::Float64 => tensor!(|x| *x),
                ElementType::Float16 => tensor!(|x| half::f16::from_f64(*x)),
                ElementType::Bfloat16 => tensor!(|x| half::bf16::from_f64(*x)),
                ElementType::Int8 => tensor!(|x| *x as i8),
                ElementType::Int16 => tensor!(|x| *x as i16),
                ElementType::Int32 => tensor!(|x| *x as i32),
                ElementType::Int64 => tensor!(|x| *x as i64),
                ElementType::Uint8 => tensor!(|x| *x as u8),
                ElementType::Uint16 => tensor!(|x| *x as u16),
                ElementType::Uint32 => tensor!(|x| *x as u32),
                ElementType::Uint64 => tensor!(|x| *x as u64),
                ElementType::Bool => tensor!(|x| *x != 0.0),
                ElementType::Unsupported => {
                    return Err(format!("input {} has an unsupported type", p.meta.name))
                }
            };
            value
                .map(|t| (p.meta.name.clone(), t))
                .map_err(|e| format!("input {}: {e}", p.meta.name))
        })
        .collect()
}

/// One output, as numbers.
struct Output {
    name: String,
    dtype: Option<ElementType>,
    shape: Vec<i64>,
    values: Option<Vec<f64>>,
}

fn run_once(session: &mut Session, inputs: &[(String, DynValue)]) -> Result<Vec<Output>, String> {
    let feed: Vec<(&str, &DynValue)> = inputs.iter().map(|(n, v)| (n.as_str(), v)).collect();
    let outputs = session.run(feed).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (name, value) in outputs.iter() {
        let (dtype, shape) = match value.dtype() {
            ValueType::Tensor { ty, shape, .. } => (Some(element_type(*ty)), shape.to_vec()),
            _ => (None, Vec::new()),
        };
        macro_rules! read {
            ($t:ty, $conv:expr) => {
                value
                    .try_extract_tensor::<$t>()
                    .ok()
                    .map(|(_, d)| d.iter().map($conv).collect::<Vec<f64>>())
            };
        }
        let values = match dtype {
            Some(ElementType::Float32) => read!(f32, |x| *x as f64),
            Some(ElementType::Float64) => read!(f64, |x| *x),
            Some(ElementType::Float16) => read!(half::f16, |x| x.to_f64()),
            Some(ElementType::Bfloat16) => read!(half::bf16, |x| x.to_f64()),
            Some(ElementType::Int8) => read!(i8, |x| *x as f64),
            Some(ElementType::Int16) => read!(i16, |x| *x as f64),
            Some(ElementType::Int32) => read!(i32, |x| *x as f64),
            Some(ElementType::Int64) => read!(i64, |x| *x as f64),
            Some(ElementType::Uint8) => read!(u8, |x| *x as f64),
            Some(ElementType::Uint16) => read!(u16, |x| *x as f64),
            Some(ElementType::Uint32) => read!(u32, |x| *x as f64),
            Some(ElementType::Uint64) => read!(u64, |x| *x as f64),
            Some(ElementType::Bool) => read!(bool, |x| *x as u8 as f64),
            _ => None,
        };
        out.push(Output {
            name: name.to_string(),
            dtype,
            shape,
            values,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn probe_is_embedded() {
        assert!(PROBE_MODEL.len() > 1000);
    }
}
