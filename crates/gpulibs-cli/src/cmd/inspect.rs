//! `gpulibs inspect`: which kernels a CUDA library carries, what it needs, and whether it runs.

use std::path::PathBuf;

use gpulibs_detect::{detect, ComputeCapability, CudaVersion, DetectOptions};
use gpulibs_inspect::deps::{
    self, DependencyKind, DependencyReport, DependencyStatus, SearchContext,
};
use gpulibs_inspect::{inspect_paths, FileFormat, FileReport, InspectOptions, Verdict};
use gpulibs_plan::driver::max_cuda_of_driver;
use gpulibs_plan::DriverVersion;
use serde::Serialize;

use crate::error::{exit, CliError};
use crate::style::{bytes, table, Cell, Style};
use crate::{Context, Outcome};

/// Read which GPU kernels CUDA libraries carry, what they need, and whether they run here.
///
/// For each file (a directory means every ELF file below it) this lists every fatbin container
/// — SASS `sm_XY`, `sm_XYa`, `sm_XYf` and PTX `compute_XY` with its ISA — then, per GPU, the
/// entry the driver would load and a verdict: `native`, `jit` (first start compiles PTX, slowly),
/// `no kernel image`, or `driver cannot load` (the kernels are there but stored zstd-compressed,
/// which drivers before CUDA 12.4 / R550 cannot read: docs/driver-rules.md). Dependencies are resolved the way the dynamic loader would (RPATH,
/// LD_LIBRARY_PATH, RUNPATH, ld.so.cache, default directories); libraries the file loads at run
/// time by name are listed too, marked `run time`. Nothing is loaded or executed.
///
/// Exits 0 when every file can run on every GPU asked about, 3 when one has no kernel image for
/// a GPU (or kernels its driver cannot load) or a library it links against is missing, 1 when a file cannot be read.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gpulibs inspect libonnxruntime_providers_cuda.so\n  \
gpulibs inspect --gpu 9.0,12.0 --driver-cuda 13.0 libonnxruntime_providers_cuda.so\n  \
gpulibs inspect --gpu 8.6 --driver 535.183.01 libonnxruntime_providers_cuda.so\n  \
gpulibs inspect --gpu sm_52 --summary /opt/app/lib"
)]
pub struct Args {
    /// Library files or directories to inspect.
    #[arg(required = true, value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,

    /// GPUs to judge against: `auto` (the ones `gpulibs detect` finds), or compute capabilities
    /// like `9.0`, `sm_90`, `12.0,8.6`.
    #[arg(long, default_value = "auto", value_name = "auto|CC,...")]
    gpu: String,

    /// The highest CUDA version the driver runs (decides which PTX it can compile and whether
    /// it reads zstd-compressed kernels); default: the detected driver's, when `--gpu auto`
    /// finds one.
    #[arg(long, value_name = "VERSION")]
    driver_cuda: Option<CudaVersion>,

    /// The driver version instead, e.g. `535.183.01`: its CUDA version is taken from NVIDIA's
    /// table of minimum drivers (535 → 12.2). `--driver-cuda` wins when both are given.
    #[arg(long, value_name = "VERSION")]
    driver: Option<DriverVersion>,

    /// One line per file, for scripts and large directories.
    #[arg(long)]
    summary: bool,

    /// Skip dependency resolution.
    #[arg(long)]
    no_deps: bool,

    /// Also decompress every payload and check its size against its header (slower).
    #[arg(long)]
    check_payloads: bool,
}

/// The GPUs a verdict is asked for, and where they came from.
struct Targets {
    gpus: Vec<ComputeCapability>,
    driver: Option<CudaVersion>,
    note: Option<String>,
}

/// `--driver-cuda`, else the CUDA version of `--driver` (NVIDIA's minimum-driver table).
fn driver_cuda_arg(args: &Args) -> Result<Option<CudaVersion>, CliError> {
    if args.driver_cuda.is_some() {
        return Ok(args.driver_cuda);
    }
    match &args.driver {
        None => Ok(None),
        Some(d) => match max_cuda_of_driver(d) {
            Some(c) => Ok(Some(c)),
            None => Err(CliError::new(std::io::Error::other(format!(
                "driver {d} is older than every CUDA toolkit gpulibs knows (11.8 needs 520.61.05)"
            )))
            .with_hint("pass --driver-cuda with the CUDA version `nvidia-smi` prints for it")),
        },
    }
}

fn targets(args: &Args) -> Result<Targets, CliError> {
    let driver_arg = driver_cuda_arg(args)?;
    if args.gpu.trim() == "auto" {
        let detection = detect(&DetectOptions::from_env());
        let gpus = detection.compute_capabilities();
        let note = gpus
            .is_empty()
            .then(|| "no GPU detected here: pass --gpu (e.g. --gpu 8.6) for a verdict".to_string());
        return Ok(Targets {
            gpus,
            driver: driver_arg.or(detection.driver_cuda()),
            note,
        });
    }
    let mut gpus = Vec::new();
    for part in args.gpu.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let cc: ComputeCapability = part.parse().map_err(|e| {
            CliError::new(e).with_hint("--gpu takes `auto` or a list like `9.0,sm_86`")
        })?;
        if !gpus.contains(&cc) {
            gpus.push(cc);
        }
    }
    Ok(Targets {
        gpus,
        driver: driver_arg,
        note: None,
    })
}

#[derive(Serialize)]
struct FileOutput {
    #[serde(flatten)]
    kernels: FileReport,
    /// `None` with `--no-deps`, or when the file is not a dynamic ELF object.
    dependencies: Option<DependencyReport>,
    dependency_error: Option<String>,
}

#[derive(Serialize)]
struct FileFailure {
    path: PathBuf,
    error: String,
}

#[derive(Serialize)]
struct InspectOutput {
    schema_version: u32,
    gpus: Vec<String>,
    driver_cuda: Option<CudaVersion>,
    note: Option<String>,
    files: Vec<FileOutput>,
    failures: Vec<FileFailure>,
}

pub fn run(args: &Args, ctx: &Context) -> Result<Outcome, CliError> {
    let targets = targets(args)?;
    let options = InspectOptions {
        gpus: targets.gpus.clone(),
        driver: targets.driver,
        check_payloads: args.check_payloads,
    };
    let search = (!args.no_deps).then(SearchContext::from_system);
    let mut files = Vec::new();
    let mut failures = Vec::new();
    let mut last_error = None;
    for result in inspect_paths(&args.paths, &options) {
        match result {
            Ok(kernels) => {
                let (dependencies, dependency_error) = match &search {
                    Some(search)
                        if matches!(
                            kernels.format,
                            FileFormat::Elf | FileFormat::ElfUnreadable
                        ) =>
                    {
                        match deps::inspect_file(&kernels.path, search) {
                            Ok(report) => (Some(report), None),
                            // Static executables and relocatable objects have no dynamic section.
                            Err(e) => (None, Some(error_chain(&e))),
                        }
                    }
                    _ => (None, None),
                };
                files.push(FileOutput {
                    kernels,
                    dependencies,
                    dependency_error,
                });
            }
            Err(e) => {
                failures.push(FileFailure {
                    path: e.path().to_path_buf(),
                    error: error_chain(&e),
                });
                last_error = Some(e);
            }
        }
    }
    if files.is_empty() && failures.is_empty() {
        let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        return Err(CliError::new(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no ELF file or fatbin found in {}", paths.join(", ")),
        ))
        .with_hint(
            "give a CUDA library (`libonnxruntime_providers_cuda.so`), a raw fatbin, or a \
             directory holding them",
        ));
    }
    if files.is_empty() && failures.len() == 1 {
        if let Some(e) = last_error {
            // The error itself, not its text: the renderer prints each cause once.
            return Err(CliError::new(e).with_hint(
                "check the path; `gpulibs inspect` reads ELF libraries, raw fatbins and \
                 directories of them",
            ));
        }
    }

    let negative = files.iter().any(|f| {
        f.kernels.verdicts.iter().any(|v| {
            matches!(
                v.verdict,
                Verdict::NoKernelImage { .. } | Verdict::DriverCannotLoad { .. }
            )
        }) || f
            .dependencies
            .as_ref()
            .is_some_and(|d| d.missing_at_load().next().is_some())
    });
    let code = if !failures.is_empty() {
        exit::FAILURE
    } else if negative {
        exit::NEGATIVE
    } else {
        exit::OK
    };
    let output = InspectOutput {
        schema_version: crate::output::SCHEMA_VERSION,
        gpus: targets.gpus.iter().map(|g| g.sm_name()).collect(),
        driver_cuda: targets.driver,
        note: targets.note,
        files,
        failures,
    };
    let human = if args.summary {
        render_summary(&output, ctx.style)
    } else {
        render(&output, ctx.style)
    };
    Ok(Outcome {
        json: serde_json::to_value(&output)?,
        human,
        code,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

fn verdict_cell(v: &Verdict) -> Cell {
    match v {
        Verdict::Native => Cell::styled("native", Style::good),
        Verdict::Jit { .. } => Cell::styled("jit", Style::warn),
        Verdict::NoKernelImage { .. } => Cell::styled("no kernel image", Style::bad),
        Verdict::DriverCannotLoad { .. } => Cell::styled("driver cannot load", Style::bad),
        Verdict::NoCudaCode => Cell::styled("no CUDA code", Style::dim),
    }
}

fn render(out: &InspectOutput, style: Style) -> String {
    let mut s = String::new();
    if let Some(note) = &out.note {
        s.push_str(&format!("{} {note}\n\n", style.dim("note:")));
    }
    for (i, file) in out.files.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let k = &file.kernels;
        s.push_str(&format!(
            "{}  {}\n",
            style.bold(&k.path.display().to_string()),
            style.dim(&bytes(k.size))
        ));
        if !k.has_cuda_code() {
            s.push_str("  kernels  none: no CUDA code in this file\n");
        } else {
            let sections: Vec<String> = k
                .sections
                .iter()
                .map(|sec| format!("{} in {}", sec.containers, sec.name))
                .collect();
            s.push_str(&format!(
                "  kernels  {} fatbin containers ({})\n",
                k.containers,
                sections.join(", ")
            ));
            let mut rows = vec![[
                "target",
                "kind",
                "ptx isa",
                "entries",
                "bytes",
                "compression",
            ]
            .into_iter()
            .map(|h| Cell::styled(h, Style::dim))
            .collect::<Vec<_>>()];
            for row in k.kernel_rows() {
                let [target, kind, isa, entries, size, _uncompressed, compression] = row;
                let size = size.parse::<u64>().map_or(size, bytes);
                rows.push(vec![
                    Cell::styled(target, Style::bold),
                    kind.into(),
                    isa.into(),
                    entries.into(),
                    size.into(),
                    compression.into(),
                ]);
            }
            for line in table(style, &rows).lines() {
                s.push_str(&format!("    {line}\n"));
            }
        }
        if !k.verdicts.is_empty() && k.has_cuda_code() {
            let mut rows = Vec::new();
            for v in &k.verdicts {
                let driver = v
                    .driver_cuda
                    .map(|d| format!(" CUDA {d}"))
                    .unwrap_or_default();
                rows.push(vec![
                    Cell::styled(
                        format!("{} ({}{driver})", v.gpu, v.compute_capability),
                        Style::bold,
                    ),
                    verdict_cell(&v.verdict),
                    Cell::new(v.message.clone()),
                ]);
            }
            s.push_str("  verdict\n");
            for line in table(style, &rows).lines() {
                s.push_str(&format!("    {line}\n"));
            }
        }
        for w in &k.warnings {
            s.push_str(&format!("  {} {w}\n", style.warn("warning:")));
        }
        if let Some(d) = &file.dependencies {
            s.push_str(&render_deps(d, style));
        }
        if let Some(e) = &file.dependency_error {
            s.push_str(&format!("  {} {e}\n", style.dim("dependencies:")));
        }
    }
    for f in &out.failures {
        s.push_str(&format!(
            "{} {}: {}\n",
            style.bad("error:"),
            f.path.display(),
            f.error
        ));
    }
    s
}

/// Direct dependencies, plus anything deeper that is not found (that is what breaks loading).
fn render_deps(d: &DependencyReport, style: Style) -> String {
    let shown: Vec<_> = d
        .dependencies
        .iter()
        .filter(|dep| dep.depth == 1 || dep.status != DependencyStatus::Found)
        .collect();
    if shown.is_empty() {
        return "  needs    nothing\n".to_string();
    }
    let mut rows = Vec::new();
    for dep in shown {
        let status = match dep.status {
            DependencyStatus::Found => Cell::styled("found", Style::good),
            DependencyStatus::Missing if dep.kind == DependencyKind::Runtime => {
                Cell::styled("missing", Style::warn)
            }
            DependencyStatus::Missing => Cell::styled("missing", Style::bad),
            DependencyStatus::Invalid => Cell::styled("invalid", Style::bad),
        };
        let how = match dep.kind {
            DependencyKind::Needed if dep.depth > 1 => {
                format!("needed by {}", file_name(&dep.required_by))
            }
            DependencyKind::Needed => "needed".to_string(),
            DependencyKind::Runtime => "run time".to_string(),
        };
        let detail = match dep.status {
            DependencyStatus::Found => {
                let via = dep
                    .via
                    .map(|v| {
                        format!(
                            " (via {})",
                            serde_json::to_value(v)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "{}{via}",
                    dep.path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )
            }
            _ => dep
                .hint
                .clone()
                .or_else(|| dep.problem.clone())
                .unwrap_or_else(|| format!("{} not found", dep.name)),
        };
        rows.push(vec![
            Cell::new(dep.name.clone()),
            Cell::new(how),
            status,
            Cell::new(detail),
        ]);
    }
    let mut s = "  needs\n".to_string();
    for line in table(style, &rows).lines() {
        s.push_str(&format!("    {line}\n"));
    }
    if d.truncated {
        s.push_str("    (stopped following dependencies after the limit)\n");
    }
    s
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn render_summary(out: &InspectOutput, _style: Style) -> String {
    let mut s = String::new();
    for file in &out.files {
        s.push_str(&file.kernels.summary_line());
        if let Some(d) = &file.dependencies {
            let missing: Vec<&str> = d.missing_at_load().map(|dep| dep.name.as_str()).collect();
            if !missing.is_empty() {
                s.push_str(&format!("; missing {}", missing.join(" ")));
            }
        }
        s.push('\n');
    }
    for f in &out.failures {
        s.push_str(&format!("{}: error: {}\n", f.path.display(), f.error));
    }
    s
}
