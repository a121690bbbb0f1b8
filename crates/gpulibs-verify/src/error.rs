//! Why verification failed: [`VerifyError`], one variant per cause, each with its stage and a
//! hint. [`crate::verify`] turns it into [`crate::Outcome::Failed`].

use std::path::PathBuf;

use gpulibs_hint::Hint;

use crate::report::{Outcome, Stage};
use crate::synth::InputError;

/// The oldest ONNX Runtime verify supports (the `ort` crate is built for C API 20).
pub const MIN_ORT: (u32, u32) = (1, 20);

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read model {}", path.display())]
    ModelUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no *.onnx file in {}", dir.display())]
    NoModelsInDir { dir: PathBuf },
    #[error("cannot make a directory for ONNX Runtime's profiler output in {}", parent.display())]
    ScratchDir {
        parent: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Options(#[from] InputError),

    #[error("ONNX Runtime library {}: {problem}", path.display())]
    OrtLibraryUnusable { path: PathBuf, problem: String },
    #[error("cannot load ONNX Runtime: {message}")]
    OrtLoad { path: PathBuf, message: String },
    #[error("ONNX Runtime {version} is too old: verify needs {}.{} or newer", MIN_ORT.0, MIN_ORT.1)]
    OrtTooOld { version: String },
    #[error(
        "ONNX Runtime is already loaded in this process from {}; {} cannot be loaded as well",
        loaded.display(),
        requested.display()
    )]
    OrtAlreadyLoaded { loaded: PathBuf, requested: PathBuf },

    #[error(
        "{} has no CUDA provider: {} is missing, so this is a CPU-only ONNX Runtime",
        ort_library.display(),
        expected.display()
    )]
    NoCudaProvider {
        ort_library: PathBuf,
        expected: PathBuf,
    },
    #[error("the CUDA provider has no kernel image for this GPU: {message}")]
    NoKernelImage {
        message: String,
        needed: Vec<String>,
    },
    #[error(
        "cannot load the CUDA libraries the CUDA provider needs: {}",
        summary(failures)
    )]
    Preload {
        /// (library name, the loader's own error)
        failures: Vec<(String, String)>,
    },

    #[error("ONNX Runtime cannot read model {model}: {message}")]
    ModelLoad { model: String, message: String },
    #[error(
        "model {model} rejected the synthesised inputs on the CPU (so not a GPU problem): \
         {message}"
    )]
    InputRejected {
        model: String,
        message: String,
        hint: String,
    },

    #[error("the CUDA execution provider could not be created: {message}")]
    CudaProvider { message: String },
    #[error("the CUDA session for {model} could not be created: {message}")]
    GpuSession { model: String, message: String },
    #[error("{model} failed on the GPU: {message}")]
    GpuRun { model: String, message: String },
    #[error(
        "{model}: {cpu_nodes} node(s) ran on the CPU and {cuda_nodes} on CUDA, and --strict \
         allows none on the CPU: {nodes}"
    )]
    RanOnCpu {
        model: String,
        cpu_nodes: usize,
        cuda_nodes: usize,
        /// The CPU nodes, each with its operator and reason.
        nodes: String,
    },
    #[error(
        "{model}: compute-heavy node(s) ran on the CPU, so the GPU did not do the model's work: \
         {nodes}"
    )]
    HeavyOnCpu {
        model: String,
        /// The heavy CPU nodes, each with its operator and reason.
        nodes: String,
        /// Operators ONNX Runtime said the CUDA provider has no kernel for.
        no_kernel_ops: Vec<String>,
    },
    #[error(
        "{model}: no node of the model ran on the CUDA execution provider ({cpu_nodes} on the \
         CPU): the CUDA provider did not do the work"
    )]
    NoGpuWork { model: String, cpu_nodes: usize },
    #[error(
        "{model}: ONNX Runtime's profiler recorded no node, so where the model ran cannot be \
         shown"
    )]
    NoPlacementRecord { model: String },
    #[error(
        "{model}: output `{output}` differs between GPU and CPU: max relative error {error:.3e} \
         > {threshold:.0e}"
    )]
    Mismatch {
        model: String,
        output: String,
        error: f64,
        threshold: f64,
    },
}

fn summary(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl VerifyError {
    pub fn stage(&self) -> Stage {
        use VerifyError::*;
        match self {
            ModelUnreadable { .. } | NoModelsInDir { .. } | ScratchDir { .. } | Options(_) => {
                Stage::Request
            }
            OrtLibraryUnusable { .. }
            | OrtLoad { .. }
            | OrtTooOld { .. }
            | OrtAlreadyLoaded { .. } => Stage::Load,
            NoCudaProvider { .. } | NoKernelImage { .. } => Stage::Preflight,
            Preload { .. } => Stage::Preload,
            ModelLoad { .. } => Stage::Model,
            InputRejected { .. } => Stage::Input,
            CudaProvider { .. } | GpuSession { .. } => Stage::Session,
            GpuRun { .. } => Stage::Run,
            RanOnCpu { .. } | HeavyOnCpu { .. } | NoGpuWork { .. } | NoPlacementRecord { .. } => {
                Stage::Fallback
            }
            Mismatch { .. } => Stage::Compare,
        }
    }

    pub fn into_outcome(self) -> Outcome {
        Outcome::Failed {
            stage: self.stage(),
            hint: self.hint(),
            reason: self.reason(),
        }
    }

    /// The message and each cause once, joined by `: ` (the report's one-line `reason`; the
    /// message itself never repeats its source).
    pub fn reason(&self) -> String {
        gpulibs_hint::chain_text(self)
    }
}

impl Hint for VerifyError {
    /// What to do about it.
    fn hint(&self) -> Option<String> {
        use VerifyError::*;
        Some(match self {
            ModelUnreadable { .. } => "check the --model path".into(),
            NoModelsInDir { .. } => "point --model at an .onnx file or a directory holding some".into(),
            ScratchDir { .. } => "set TMPDIR to a directory you can write to".into(),
            Options(e) => return e.hint(),
            OrtLibraryUnusable { .. } | OrtLoad { .. } => {
                "run `gpulibs status` to check the active install, or reinstall it".into()
            }
            OrtTooOld { .. } => format!(
                "install ONNX Runtime {}.{} or newer",
                MIN_ORT.0, MIN_ORT.1
            ),
            OrtAlreadyLoaded { .. } => "verify one ONNX Runtime per process".into(),
            NoCudaProvider { .. } => {
                "install a GPU build of ONNX Runtime (`gpulibs install`), or verify with --device cpu".into()
            }
            NoKernelImage { needed, .. } => format!(
                "install a build whose CUDA provider carries {} (`gpulibs install` picks one)",
                needed.join(" or ")
            ),
            Preload { failures } => failures
                .iter()
                .map(|(name, _)| gpulibs_inspect::deps::missing_library_message(name))
                .collect::<Vec<_>>()
                .join("; "),
            ModelLoad { .. } => "check that the file is an ONNX model this ONNX Runtime supports (opset, IR version)".into(),
            InputRejected { hint, .. } => hint.clone(),
            CudaProvider { message } | GpuSession { message, .. } | GpuRun { message, .. } => {
                return run_time_hint(message)
            }
            RanOnCpu { .. } => "without --strict, nodes that are not compute-heavy may run on the CPU and verify passes with a warning naming them".into(),
            HeavyOnCpu { no_kernel_ops, .. } if !no_kernel_ops.is_empty() => format!(
                "this ONNX Runtime's CUDA provider has no kernel for {} with these input types: \
                 export the model with operators and types the CUDA provider runs (float32/float16), \
                 or use a newer ONNX Runtime",
                no_kernel_ops.join(", ")
            ),
            HeavyOnCpu { .. } => "ONNX Runtime put the model's compute on the CPU: the placement log lines are in `gpulibs verify --json` (models[].ort_log)".into(),
            NoGpuWork { .. } => "the CUDA provider was registered but ran nothing: check `gpulibs verify --json` (models[].ort_log, models[].nodes) and `gpulibs inspect` on the provider library".into(),
            NoPlacementRecord { .. } => "this is unexpected: report it with the --json output".into(),
            Mismatch { .. } => "the GPU computes different results: report it with `gpulibs verify --json`; a driver or library update may fix it".into(),
        })
    }
}

/// Explanations for what ONNX Runtime says when the CUDA provider or a CUDA session fails.
pub(crate) fn run_time_hint(message: &str) -> Option<String> {
    if let Some(name) = missing_library_in(message) {
        return Some(gpulibs_inspect::deps::missing_library_message(&name));
    }
    let m = message.to_ascii_lowercase();
    if m.contains("no kernel image") {
        return Some(
            "the CUDA libraries carry no kernel for this GPU: run `gpulibs inspect` on them and \
             install a build for this GPU (`gpulibs install`)"
                .into(),
        );
    }
    if m.contains("driver version is insufficient") || m.contains("cudaerrorinsufficientdriver") {
        return Some(
            "the NVIDIA driver is older than the CUDA runtime of this install: update the driver, \
             or install the build for an older CUDA (`gpulibs install`)"
                .into(),
        );
    }
    if m.contains("fallback to cpu ep has been explicitly disabled")
        || m.contains("assigned to the default cpu ep")
    {
        return Some(
            "some nodes of the model can only run on the CPU provider; verify forbids that on the \
             GPU, so this model cannot be verified on the GPU as it is"
                .into(),
        );
    }
    if m.contains("out of memory") {
        return Some("the GPU has too little free memory for this model; close other GPU programs or pick a smaller model (`gpulibs recommend`)".into());
    }
    if m.contains("no cuda-capable device") || m.contains("cudaerrornodevice") {
        return Some("CUDA sees no GPU: check `gpulibs detect` and CUDA_VISIBLE_DEVICES".into());
    }
    None
}

/// `libcublasLt.so.13` out of "…libcublasLt.so.13: cannot open shared object file…".
pub(crate) fn missing_library_in(message: &str) -> Option<String> {
    let idx = message.find(": cannot open shared object file")?;
    let before = &message[..idx];
    let start = before
        .rfind(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '[' || c == '(')
        .map_or(0, |i| i + 1);
    let name = before[start..].rsplit('/').next()?.to_string();
    name.contains(".so").then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_missing_library_in_loader_messages() {
        let m = "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1778 \
                 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : \
                 1 : FAIL : Failed to load library libonnxruntime_providers_cuda.so with error: \
                 libcublasLt.so.13: cannot open shared object file: No such file or directory";
        assert_eq!(missing_library_in(m).as_deref(), Some("libcublasLt.so.13"));
        assert_eq!(
            missing_library_in("/x/y/libcudnn.so.9: cannot open shared object file").as_deref(),
            Some("libcudnn.so.9")
        );
        assert_eq!(missing_library_in("something else"), None);
        let hint = run_time_hint(m).unwrap();
        assert!(
            hint.starts_with("libcublasLt.so.13 not found: this library needs the CUDA 13 cuBLAS"),
            "{hint}"
        );
    }

    #[test]
    fn the_reason_keeps_the_cause_once() {
        let e = VerifyError::ModelUnreadable {
            path: PathBuf::from("/x/model.onnx"),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is a FIFO (named pipe), not a regular file",
            ),
        };
        assert_eq!(
            e.reason(),
            "cannot read model /x/model.onnx: is a FIFO (named pipe), not a regular file"
        );
    }

    #[test]
    fn preload_failure_explains_each_library() {
        let e = VerifyError::Preload {
            failures: vec![(
                "libcublasLt.so.13".into(),
                "libcublasLt.so.13: cannot open shared object file: No such file or directory"
                    .into(),
            )],
        };
        assert_eq!(e.stage(), Stage::Preload);
        assert!(e.to_string().contains("cannot open shared object file"));
        assert!(e
            .hint()
            .unwrap()
            .contains("libcublasLt.so.13 not found: this library needs"));
    }
}
