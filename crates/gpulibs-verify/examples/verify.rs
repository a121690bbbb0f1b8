//! `gpulibs verify` without the CLI, for carrying one binary to a GPU machine:
//!
//! ```text
//! cargo build --release -p gpulibs-verify --example verify
//! target/release/examples/verify --ort DIR/libonnxruntime.so.1.31.1 \
//!     --preload SITE/nvidia/cu13/lib --preload SITE/nvidia/cudnn/lib \
//!     [--model FILE|DIR]... [--device cuda:0|cpu|auto] [--shape NAME=1x512]... \
//!     [--value NAME=16000]... [--runs 20] [--strict] [--json]
//! ```
//!
//! Prints the report (text, or JSON with `--json`) and exits with
//! [`gpulibs_verify::Outcome::exit_code`]: 0 verified on the GPU (`verified_gpu_partial` too), 4
//! CPU only, 2 bad options or inputs, 1 failed.

// An example program: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use gpulibs_verify::*;

fn main() -> ExitCode {
    match parse(std::env::args().skip(1).collect()) {
        Ok((req, json, rule)) => {
            let report = verify_with(&req, rule);
            if json {
                println!("{}", report.to_json_pretty());
            } else {
                print!("{}", report.render_text());
            }
            ExitCode::from(report.outcome.exit_code())
        }
        Err(e) => {
            eprintln!("error: {e}\nusage: verify --ort LIB [--preload DIR]... [--model FILE|DIR]... [--device cuda:N|cpu|auto] [--shape NAME=DIMS]... [--value NAME=X]... [--runs N] [--strict] [--json]");
            ExitCode::from(2)
        }
    }
}

fn parse(args: Vec<String>) -> Result<(VerifyRequest, bool, PlacementRule), String> {
    let mut ort = None;
    let mut preload = Vec::new();
    let mut models: Vec<PathBuf> = Vec::new();
    let mut device = Device::Auto;
    let mut shapes = HashMap::new();
    let mut values = HashMap::new();
    let mut runs = DEFAULT_RUNS;
    let mut json = false;
    let mut rule = PlacementRule::AllowCpuNodes;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--ort" => ort = Some(PathBuf::from(value()?)),
            "--preload" => preload.push(PathBuf::from(value()?)),
            "--model" => models.push(PathBuf::from(value()?)),
            "--device" => device = value()?.parse().map_err(|e: OptionError| e.to_string())?,
            "--shape" => {
                let (k, v) = parse_shape_option(&value()?).map_err(|e| e.to_string())?;
                shapes.insert(k, v);
            }
            "--value" => {
                let (k, v) = parse_value_option(&value()?).map_err(|e| e.to_string())?;
                values.insert(k, v);
            }
            "--runs" => runs = value()?.parse().map_err(|_| "--runs takes a number")?,
            "--json" => json = true,
            "--strict" => rule = PlacementRule::Strict,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let models = match models.as_slice() {
        [] => ModelSource::Probe,
        [one] if one.is_dir() => ModelSource::Dir(one.clone()),
        _ => ModelSource::Files(models),
    };
    Ok((
        VerifyRequest {
            ort_library: ort.ok_or("--ort is required")?,
            preload_dirs: preload,
            models,
            device,
            shapes,
            values,
            runs,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
        },
        json,
        rule,
    ))
}
