//! `gpulibs plan`: which components this machine needs, and why the others were rejected.

use gpulibs_plan::{Outcome, PlannedComponent, Source, Why};
use gpulibs_store::{install_root, RootEnv};

use super::planning::{make_plan, HostArgs, ManifestArgs};
use crate::error::{exit, CliError};
use crate::output::plan::{render, PlanOutput};
use crate::output::{to_json, SCHEMA_VERSION};
use crate::{Context, Outcome as CmdOutcome};

/// Decide, before any download, what this machine should install.
///
/// Reads the vendor's manifest (or, without one, the built-in table of official ONNX Runtime
/// releases and their measured kernels), checks its signature, and weighs every variant against
/// the detected GPUs and driver: kernel coverage by the rules of `gpulibs inspect`, the CUDA
/// version the driver runs, VRAM and free disk. CUDA libraries already on the machine are reused.
/// Every rejected variant comes with its reason; with no usable GPU the plan is the CPU runtime.
///
/// Exits 0 with a plan, 3 when nothing can be installed (no variant fits and no CPU variant),
/// 1 when the manifest cannot be read or trusted.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gpulibs plan\n  gpulibs plan --gpu 5.2 --driver 470.256.02 --driver-cuda 11.4\n  \
gpulibs plan --manifest release.toml --public-key RWQ...\n  gpulibs plan --gpu 8.6,6.1 --json"
)]
pub struct Args {
    #[command(flatten)]
    manifest: ManifestArgs,
    #[command(flatten)]
    host: HostArgs,
    /// Application name: decides the install root (the free space checked is the store's, where
    /// downloads and components go).
    #[arg(long, default_value = "gpulibs", value_name = "NAME")]
    app: String,
}

pub fn run(args: &Args, ctx: &Context) -> Result<CmdOutcome, CliError> {
    let env = RootEnv::from_env();
    let root = install_root(&args.app, &env)?;
    let home = gpulibs_store::store_home(&env)?;
    // Downloads and components land in the store's home (what `install` checks before staging).
    let free = free_space_near(&home);
    let planned = make_plan(&args.manifest, &args.host, free, Some((&root, &home)))?;
    let plan = &planned.plan;
    let code = match (&plan.outcome, &plan.chosen) {
        (Outcome::Refused(_), _) | (_, None) => exit::NEGATIVE,
        _ => exit::OK,
    };
    let out = PlanOutput {
        schema_version: SCHEMA_VERSION,
        manifest: planned.manifest_source.to_string(),
        trust: planned.trust.clone(),
        install_root: root.display().to_string(),
        plan: planned.plan.clone(),
    };
    Ok(CmdOutcome {
        json: to_json(&out),
        human: render(&out, ctx.style),
        code,
    })
}

/// Free bytes on the file system that will hold `dir` (its nearest existing ancestor).
pub fn free_space_near(dir: &std::path::Path) -> Option<u64> {
    dir.ancestors()
        .find(|p| p.exists())
        .and_then(|p| gpulibs_store::available_space(p).ok())
}

/// Where a planned component comes from, in a word or three.
pub fn from_words(c: &PlannedComponent) -> String {
    let base = match &c.source {
        Source::Archive { .. } => "manifest archive",
        Source::Pypi { .. } => "PyPI wheel (pip)",
        Source::System { .. } => "this machine",
    };
    if c.in_store {
        format!("{base}, already in the store")
    } else {
        base.to_string()
    }
}

/// Why, in one short line: `9.19.0.56 in /venv/…/cudnn/lib (publisher ~=9.0, NVIDIA cuDNN
/// rule)` for a reused component; what prevented reuse for a downloaded one.
pub fn why_words(why: &Why) -> String {
    match why {
        Why::Reused {
            dir,
            libraries,
            accepted_by,
        } => {
            let version = libraries
                .first()
                .and_then(|l| l.version.clone())
                .unwrap_or_else(|| "version unknown".into());
            let names: Vec<&str> = accepted_by.iter().map(|c| c.name.as_str()).collect();
            format!("{version} in {} ({})", dir.display(), names.join(", "))
        }
        Why::ReuseOff => "reuse is off (--no-reuse)".into(),
        Why::CarriesKernels => "carries GPU kernels (never reused)".into(),
        Why::NeverReused => "the manifest says never to reuse it".into(),
        Why::NothingToMatch => "no SONAME to look for".into(),
        Why::NotFound { soname } => format!("{soname} not on this machine"),
        Why::Incomplete { dir, missing } => format!("{} lacks {missing}", dir.display()),
        Why::Refused {
            path, name, detail, ..
        } => format!("{} refused by {name}: {detail}", path.display()),
        Why::RangeUnreadable { versions, error } => {
            format!("reuse.versions `{versions}` unreadable: {error}")
        }
    }
}
