//! `gpulibs verify`: load ONNX Runtime on the GPU with CPU fallback forbidden, run a model, and
//! compare it with the CPU.

use std::collections::HashMap;
use std::path::PathBuf;

use gpulibs_verify::{
    parse_byte_size, parse_shape_option, parse_value_option, verify, Device, ModelSource,
    VerifyRequest,
};

use crate::error::CliError;
use crate::{Context, Outcome};

/// Prove that a model runs on the GPU — really on the GPU — and gives the CPU's answer.
///
/// Before loading anything, the CUDA provider library is inspected: missing libraries and
/// `no kernel image` are reported as such. Then ONNX Runtime is loaded from the active install
/// (or `--ort`), the CUDA and cuDNN libraries are preloaded, a session is created on the CUDA
/// execution provider with CPU fallback disabled, and the model runs on it and on the CPU
/// provider; outputs are compared. Timings and VRAM are reported. Without `--model`, a small
/// built-in probe model exercises convolution (cuDNN), matrix products (cuBLAS), an LSTM and
/// elementwise kernels.
///
/// Inputs are synthesised only when they fit `--max-input-bytes` (default 4 GiB per model):
/// a larger shape (a `--shape` typo, a huge fixed dimension) is refused before anything is
/// allocated. A model path must be a regular file (a FIFO or device is refused).
///
/// Exits 0 when verified on the GPU, 4 when it ran on the CPU only (no GPU, or `--device cpu`),
/// 2 when a model's inputs need `--shape`/`--value` or exceed the input budget, 1 on any other
/// failure, 130/143 when interrupted (SIGINT/SIGTERM; its temporary files are removed).
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

    /// Use this `libonnxruntime.so` instead of the active install's.
    #[arg(long, value_name = "PATH")]
    ort: Option<PathBuf>,

    /// Directories with CUDA/cuDNN libraries to preload (searched before the install's own).
    #[arg(long, value_name = "DIR")]
    preload: Vec<PathBuf>,

    /// Application name whose active install is verified.
    #[arg(long, default_value = "gpulibs", value_name = "NAME")]
    app: String,
}

pub fn run(args: &Args, _ctx: &Context) -> Result<Outcome, CliError> {
    let mut preload_dirs = args.preload.clone();
    let ort_library = match &args.ort {
        Some(path) => path.clone(),
        None => {
            let active = gpulibs_store::activate(&args.app).map_err(|e| {
                CliError::new(e).with_hint("install first with `gpulibs install`, or pass --ort PATH to a libonnxruntime.so")
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
    let report = verify(&request);
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
