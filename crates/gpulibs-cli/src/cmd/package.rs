//! `gpulibs package`: the vendor side (`gpulibs mirror` is in `mirror.rs`).

use std::path::PathBuf;

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_package::{package_with, PackageEvent, PackageRequest};
use gpulibs_plan::SecretKey;

use crate::error::{exit, CliError};
use crate::output::package::{render, PackageOutput};
use crate::output::{to_json, SCHEMA_VERSION};
use crate::progress::Ui;
use crate::style::bytes;
use crate::{Context, Outcome};

/// Build release archives and a signed manifest from ONNX Runtime build output or wheels.
///
/// Collects the libraries (SONAME links kept as links), checks that everything they need is in
/// the package or expected from the system, measures kernel coverage with `gpulibs inspect` and
/// writes it into the manifest, and writes zstd archives with their sha256. NVIDIA's libraries
/// are packed byte-identical to NVIDIA's wheels (checked against the wheel's RECORD) and listed
/// in THIRD_PARTY_NOTICES.txt. With `--per-arch`, the vendor's CUDA libraries (ONNX Runtime is
/// MIT) are thinned to one component per GPU architecture: in every fatbin container only the
/// entry the driver would choose is kept; each thinned file is inspected again and must be
/// `native` (or `jit`) for its target.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gpulibs package --from onnxruntime_gpu-1.31.1-*.whl --from nvidia_cublas-*.whl --out release/ \\\n      \
--release 1.0.0 --per-arch sm_75,sm_86,sm_89,sm_90,sm_120 --sign-key vendor.key\n  \
gpulibs package --from build/Linux/Release --out release/ --release 1.0.0"
)]
pub struct PackageArgs {
    /// ONNX Runtime build output directories, wheels (.whl) or tarballs; repeatable.
    #[arg(long = "from", required = true, value_name = "DIR|WHEEL|TARBALL")]
    from: Vec<PathBuf>,
    /// Output directory (created; must be empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The release's version, written into the manifest.
    #[arg(long, value_name = "VERSION")]
    release: String,
    /// The application the release is for.
    #[arg(long, default_value = "gpulibs", value_name = "NAME")]
    app: String,
    /// One component per GPU architecture: `sm_75,sm_86,9.0`.
    #[arg(long, value_delimiter = ',', value_name = "SM,...")]
    per_arch: Vec<ComputeCapability>,
    /// The CUDA runtime the libraries were built against (default: read from the packaged CUDA
    /// runtime, or from the `libcudart.so.N` they need).
    #[arg(long, value_name = "VERSION")]
    cuda: Option<CudaVersion>,
    /// When thinning, keep only PTX this driver CUDA version compiles.
    #[arg(long, value_name = "VERSION")]
    driver_cuda: Option<CudaVersion>,
    /// Prefix of the vendor components' ids.
    #[arg(long, default_value = "onnxruntime", value_name = "NAME")]
    name: String,
    /// URL prefix under which the archives will be published (default: next to the manifest).
    #[arg(long, default_value = "", value_name = "URL")]
    base_url: String,
    /// Leave these files out (`libonnxruntime_providers_tensorrt.so`, or `prefix*suffix`).
    #[arg(long, value_name = "NAME")]
    exclude: Vec<String>,
    /// A library the package may need without carrying it, expected on the user's machine
    /// (besides the driver's and the C runtime's): `libcublasLt.so.13` when the app's users have
    /// CUDA 13 (a PyTorch environment, the toolkit). Repeatable.
    #[arg(long = "system", value_name = "SONAME")]
    system: Vec<String>,
    /// Keep NVIDIA libraries nothing in the package loads.
    #[arg(long)]
    keep_unreferenced: bool,
    /// Sign the manifest with this minisign secret key (unencrypted, `minisign -G -W`).
    #[arg(long, value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// zstd level (1–22); 19 by default, with a 128 MiB window.
    #[arg(long, value_name = "N")]
    zstd_level: Option<i32>,
}

pub fn package_cmd(args: &PackageArgs, ctx: &Context, json: bool) -> Result<Outcome, CliError> {
    let mut req = PackageRequest::new(
        &args.app,
        &args.release,
        args.from.clone(),
        args.out.clone(),
    );
    req.per_arch = args.per_arch.clone();
    req.driver = args.driver_cuda;
    req.cuda = args.cuda;
    req.name = args.name.clone();
    req.base_url = args.base_url.clone();
    req.exclude = args.exclude.clone();
    req.system_libraries.extend(args.system.iter().cloned());
    req.prune_unreferenced = !args.keep_unreferenced;
    if let Some(level) = args.zstd_level {
        req.zstd.level = level;
    }
    if let Some(path) = &args.sign_key {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::new(std::io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", path.display()),
            ))
        })?;
        req.sign_key = Some(SecretKey::from_minisign(&text).map_err(|e| {
            CliError::new(e).with_hint("give an unencrypted minisign secret key (`minisign -G -W`)")
        })?);
    }
    let ui = Ui::new(json || ctx.quiet, ctx.style);
    let report = package_with(&req, &|e| show(&ui, e));
    ui.finish();
    let out = PackageOutput {
        schema_version: SCHEMA_VERSION,
        report: report?,
    };
    Ok(Outcome {
        json: to_json(&out),
        human: render(&out, ctx.style),
        code: exit::OK,
    })
}

/// Shows what packaging is doing on `ui`.
fn show(ui: &Ui, e: &PackageEvent<'_>) {
    let s = ui.style;
    ui.line(&match e {
        PackageEvent::Collecting { inputs } => format!(
            "{} {inputs} input(s): unpacking and reading every library",
            s.dim("collecting")
        ),
        PackageEvent::Thinning { library, target } => {
            format!("{} {library} to {target}", s.dim("thinning"))
        }
        PackageEvent::Compressing {
            component,
            bytes: n,
        } => {
            format!("{} {component} ({})", s.dim("compressing"), bytes(*n))
        }
    });
}
