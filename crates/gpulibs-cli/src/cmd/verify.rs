//! `gpulibs verify`: load ONNX Runtime on the GPU, run a model, show where every node ran and
//! why, and compare it with the CPU.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use gpulibs_verify::{
    parse_byte_size, parse_shape_option, parse_value_option, verify_with, Device, ModelSource,
    PlacementRule, Stage, VerifyRequest,
};

use crate::error::CliError;
use crate::{Context, Outcome};

/// Prove that a model runs on the GPU — really on the GPU — and gives the CPU's answer.
///
/// Before loading anything, the CUDA provider library is inspected: missing libraries and
/// `no kernel image` are reported as such. Then ONNX Runtime is loaded from `--ort`, else from
/// `ORT_DYLIB_PATH` when set, else from the active install; the CUDA and cuDNN libraries are
/// preloaded, a session is created on the CUDA execution provider, and the model runs on it and
/// on the CPU provider; outputs are compared. ONNX Runtime may place on the CPU the nodes it
/// cannot or will not run on CUDA: each is named with the reason (no CUDA kernel, a shape
/// computation it keeps on the CPU). Compute-heavy nodes (convolutions, matrix products,
/// recurrent layers, attention) on the CPU, or no compute on CUDA at all, fail. Timings and
/// VRAM are reported. Without `--model`, a small built-in probe model exercises convolution
/// (cuDNN), matrix products (cuBLAS), an LSTM and elementwise kernels.
///
/// Inputs are synthesised only when they fit `--max-input-bytes` (default 4 GiB per model):
/// a larger shape (a `--shape` typo, a huge fixed dimension) is refused before anything is
/// allocated. A model path must be a regular file (a FIFO or device is refused).
///
/// Exits 0 when verified on the GPU (also when some light nodes ran on the CPU: the outcome is
/// then `verified_gpu_partial` with a warning; `--strict` makes that exit 1), 4 when it ran on
/// the CPU only (no GPU, or `--device cpu`), 2 when a model's inputs need `--shape`/`--value`
/// or exceed the input budget, 1 on any other failure, 130/143 when interrupted (SIGINT/SIGTERM;
/// its temporary files are removed).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gpulibs verify\n  gpulibs verify --model encoder.onnx --shape audio=1x16000 --value sr=16000\n  \
gpulibs verify --ort /opt/ort/lib/libonnxruntime.so --preload /opt/cuda/lib --device cuda:0 --json"
)]
pub struct Args {
    /// An ONNX model, or a directory of them (encoder/decoder/joiner); repeatable.
    #[arg(long, value_name = "FILE|DIR")]
    model: Vec<PathBuf>,

    /// Where to run: `cuda:N`, `cpu`, or `auto` (the GPU if one is usable).
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    device: Device,

    /// The full shape of an input with dynamic dimensions (`NAME=1x512`), or the size of every
    /// dynamic dimension called NAME.
    #[arg(long, value_name = "NAME=DIMS")]
    shape: Vec<String>,

    /// The value of every element of a scalar-like input (`sr=16000`).
    #[arg(long, value_name = "NAME=X")]
    value: Vec<String>,

    /// Runs on the device; the median of all but the first is reported.
    #[arg(long, default_value_t = gpulibs_verify::DEFAULT_RUNS)]
    runs: usize,

    /// The most bytes the synthesised inputs of one model may take (each input and all
    /// together), e.g. `8G`, `512M`; larger shapes are refused before allocation.
    #[arg(long, default_value = "4G", value_name = "SIZE", value_parser = parse_byte_size)]
    max_input_bytes: u64,

    /// Use this `libonnxruntime.so` instead of the active install's (and instead of
    /// `ORT_DYLIB_PATH`, which is otherwise used when set).
    #[arg(long, value_name = "PATH")]
    ort: Option<PathBuf>,

    /// Fail if any node runs on the CPU, even one ONNX Runtime keeps there on purpose.
    #[arg(long)]
    strict: bool,

    /// Directories with CUDA/cuDNN libraries to preload (searched before the install's own).
    #[arg(long, value_name = "DIR")]
    preload: Vec<PathBuf>,

    /// Application name whose active install is verified.
    #[arg(long, default_value = "gpulibs", value_name = "NAME")]
    app: String,
}

/// The variable the `ort` crate reads for the ONNX Runtime library to load.
pub const ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// Where the ONNX Runtime library to verify comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrtSource {
    /// `--ort PATH`; `ignored_env` is a set `ORT_DYLIB_PATH` passed over.
    Flag {
        path: PathBuf,
        ignored_env: Option<OsString>,
    },
    /// `ORT_DYLIB_PATH`, as set (`value`) and as resolved (`path`).
    Env { value: OsString, path: PathBuf },
    /// The active install of the app.
    ActiveInstall,
}

impl OrtSource {
    /// What the report says about it.
    pub fn describe(&self, app: &str) -> String {
        match self {
            OrtSource::Flag {
                ignored_env: Some(v),
                ..
            } => format!(
                "--ort (ORT_DYLIB_PATH={} ignored: --ort comes first)",
                Path::new(v).display()
            ),
            OrtSource::Flag { .. } => "--ort".into(),
            OrtSource::Env { value, .. } => format!(
                "ORT_DYLIB_PATH={} (the active install is not used; pass --ort or unset \
                 ORT_DYLIB_PATH to choose otherwise)",
                Path::new(value).display()
            ),
            OrtSource::ActiveInstall => format!("the active install of {app}"),
        }
    }
}

/// `--ort` first, then `ORT_DYLIB_PATH` when set and not empty, then the active install. A
/// relative `ORT_DYLIB_PATH` is resolved as the `ort` crate does: next to the executable when a
/// file is there, else as given (from the working directory).
pub fn choose_ort(flag: Option<&Path>, env: Option<OsString>, exe_dir: Option<&Path>) -> OrtSource {
    let env = env.filter(|v| !v.is_empty());
    if let Some(path) = flag {
        return OrtSource::Flag {
            path: path.to_path_buf(),
            ignored_env: env,
        };
    }
    let Some(value) = env else {
        return OrtSource::ActiveInstall;
    };
    let given = PathBuf::from(&value);
    let path = match exe_dir {
        Some(dir) if given.is_relative() && dir.join(&given).exists() => dir.join(&given),
        _ => given,
    };
    OrtSource::Env { value, path }
}

pub fn run(args: &Args, _ctx: &Context) -> Result<Outcome, CliError> {
    // The command line first: a bad --shape or --value is a usage error (exit 2) whatever is
    // installed.
    let mut shapes = HashMap::new();
    for s in &args.shape {
        let (name, dims) = parse_shape_option(s)?;
        shapes.insert(name, dims);
    }
    let mut values = HashMap::new();
    for v in &args.value {
        let (name, value) = parse_value_option(v)?;
        values.insert(name, value);
    }
    let mut preload_dirs = args.preload.clone();
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    let source = choose_ort(
        args.ort.as_deref(),
        std::env::var_os(ORT_DYLIB_PATH),
        exe_dir.as_deref(),
    );
    let ort_library = match &source {
        OrtSource::Flag { path, .. } | OrtSource::Env { path, .. } => path.clone(),
        OrtSource::ActiveInstall => {
            let active = gpulibs_store::activate(&args.app).map_err(|e| {
                // The store's message names the step for the active install; the command adds
                // the other way in, which only it knows.
                CliError::new(e).with_hint(
                    "to verify an ONNX Runtime gpulibs did not install, pass --ort PATH to its \
                     libonnxruntime.so",
                )
            })?;
            preload_dirs.extend(active.lib_dirs.iter().cloned());
            active.ort_library
        }
    };
    let models = match args.model.as_slice() {
        [] => ModelSource::Probe,
        [one] if one.is_dir() => ModelSource::Dir(one.clone()),
        many => ModelSource::Files(many.to_vec()),
    };
    let request = VerifyRequest {
        ort_library,
        preload_dirs,
        models,
        device: args.device,
        shapes,
        values,
        runs: args.runs.max(1),
        max_input_bytes: args.max_input_bytes,
    };
    let rule = if args.strict {
        PlacementRule::Strict
    } else {
        PlacementRule::AllowCpuNodes
    };
    let mut report = verify_with(&request, rule);
    report.ort_library_source = Some(source.describe(&args.app));
    // The library's hint speaks of the active install; when the library came from the command
    // line or the environment, the next step is to fix that instead.
    if let gpulibs_verify::Outcome::Failed {
        stage: Stage::Load,
        hint,
        ..
    } = &mut report.outcome
    {
        match &source {
            OrtSource::Env { value, .. } => {
                *hint = Some(format!(
                    "ONNX Runtime was taken from ORT_DYLIB_PATH={}: point it at a \
                     libonnxruntime.so, or unset it to verify the active install",
                    Path::new(value).display()
                ))
            }
            OrtSource::Flag { path, .. } => {
                *hint = Some(format!(
                    "ONNX Runtime was taken from --ort {}: give --ort the path of a \
                     libonnxruntime.so ({}.{} or newer), or leave --ort out to verify the \
                     active install",
                    path.display(),
                    gpulibs_verify::MIN_ORT.0,
                    gpulibs_verify::MIN_ORT.1
                ))
            }
            OrtSource::ActiveInstall => {}
        }
    }
    Ok(Outcome {
        json: serde_json::to_value(&report)?,
        human: report.render_text(),
        code: report.outcome.exit_code(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::Args,
    }

    #[test]
    fn the_input_budget_defaults_to_the_library_default() {
        let cli = Cli::try_parse_from(["verify"]).unwrap();
        assert_eq!(
            cli.args.max_input_bytes,
            gpulibs_verify::DEFAULT_MAX_INPUT_BYTES
        );
        let cli = Cli::try_parse_from(["verify", "--max-input-bytes", "512M"]).unwrap();
        assert_eq!(cli.args.max_input_bytes, 512 << 20);
        assert!(Cli::try_parse_from(["verify", "--max-input-bytes", "lots"]).is_err());
    }
}
