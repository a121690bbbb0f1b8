//! `gpulibs recommend`: the best model that really fits this machine, proved by `verify`.

use std::path::PathBuf;

use gpulibs_detect::{detect, DetectOptions};
use gpulibs_store::{install_root, seed_info_path, RootEnv};
use gpulibs_verify::{
    parse_catalog, recommend, recommendation_receipt_path, seed_catalog, Device, Measurements,
    VerifyRequest,
};

use crate::error::{exit, CliError};
use crate::output::recommend::{render, RecommendOutput};
use crate::output::{to_json, SCHEMA_VERSION};
use crate::{Context, Outcome};

/// Pick the best model that fits the free VRAM now, and prove it runs.
///
/// Candidates from the catalog (TOML; default: the seed's 1.1b-gpu ≥ 6 GB, 0.6b-gpu ≥ 3.5 GB,
/// CPU otherwise) are tried best first: a model whose VRAM need (measured on this machine once
/// verified, else the catalog's figure) plus headroom exceeds the *free* VRAM is skipped, and the
/// first one that passes a real `verify` wins. Every better model that lost is listed with why.
/// The winner's measured VRAM is recorded for next time; with `--app` the choice is also written
/// next to the app's seed-compatible receipt.
///
/// Exits 0 with a winner, 3 when nothing fits and verifies.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gpulibs recommend --catalog models/catalog.toml\n  gpulibs recommend --app swictation --json"
)]
pub struct Args {
    /// The model catalog (TOML); relative model paths are resolved next to it.
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,

    /// With the built-in seed catalog: where its model files are.
    #[arg(long, value_name = "DIR", default_value = ".")]
    models_dir: PathBuf,

    /// Application: decides the active install used and where the choice is recorded.
    #[arg(long, default_value = "gpulibs", value_name = "NAME")]
    app: String,

    /// Use this `libonnxruntime.so` instead of the active install's.
    #[arg(long, value_name = "PATH")]
    ort: Option<PathBuf>,

    /// Directories with CUDA/cuDNN libraries to preload.
    #[arg(long, value_name = "DIR")]
    preload: Vec<PathBuf>,
}

pub fn run(args: &Args, ctx: &Context) -> Result<Outcome, CliError> {
    let catalog = match &args.catalog {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::new(std::io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))
                    .with_hint("pass the path of a model catalog (TOML), or leave --catalog out for the seed's catalog")
            })?;
            let root = path.parent().map(PathBuf::from).unwrap_or_default();
            parse_catalog(&text, root)?
        }
        None => seed_catalog(&args.models_dir),
    };
    let root = install_root(&args.app, &RootEnv::from_env())?;
    let measurements_path = root.join("measurements.json");
    let mut measurements = Measurements::load(&measurements_path)?;
    let catalog = catalog.with_measurements(&measurements);

    let mut preload_dirs = args.preload.clone();
    let ort_library = match &args.ort {
        Some(p) => p.clone(),
        None => {
            let active = gpulibs_store::activate(&args.app).map_err(|e| {
                CliError::new(e).with_hint(
                    "to use an ONNX Runtime gpulibs did not install, pass --ort PATH to its \
                     libonnxruntime.so",
                )
            })?;
            preload_dirs.extend(active.lib_dirs.iter().cloned());
            active.ort_library
        }
    };
    let detection = detect(&DetectOptions::from_env());
    let free_vram = detection
        .usable_gpus()
        .next()
        .and_then(|g| g.memory_free_bytes);
    let template = VerifyRequest {
        preload_dirs,
        ..VerifyRequest::probe(ort_library, Device::Auto)
    };
    let rec = recommend(
        &catalog,
        free_vram,
        gpulibs_detect::mem_available_bytes().unwrap_or(0),
        |model| gpulibs_verify::verify(&model.verify_request(&catalog.root, &template)),
    );

    if let Some(w) = &rec.winner {
        if let Some(model) = catalog.models.iter().find(|m| m.name == w.model) {
            if measurements.record(&catalog, model, &w.report) {
                std::fs::create_dir_all(&root).map_err(CliError::new)?;
                measurements.save(&measurements_path)?;
            }
        }
    }
    let mut recorded_in = None;
    if args.app != gpulibs_store::DEFAULT_APP {
        // Next to the seed-compatible receipt: the app's own config directory.
        let path = recommendation_receipt_path(&seed_info_path(&args.app, &RootEnv::from_env())?);
        rec.write_receipt(&path)?;
        recorded_in = Some(path.display().to_string());
    }
    let code = if rec.winner.is_some() {
        exit::OK
    } else {
        exit::NEGATIVE
    };
    let out = RecommendOutput {
        schema_version: SCHEMA_VERSION,
        recommendation: rec,
        recorded_in,
    };
    Ok(Outcome {
        json: to_json(&out),
        human: render(&out, ctx.style),
        code,
    })
}
