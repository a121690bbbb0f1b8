//! `gpulibs install`: plan, then carry the plan out (`gpulibs-install`), with progress bars on a
//! terminal, plain lines otherwise, and a summary.

use std::path::PathBuf;

use gpulibs_detect::{detect, DetectOptions};
use gpulibs_fetch::NetworkEnv;
use gpulibs_install::{install, is_cpu_runtime, Event, InstallRequest, Verdict, Verifier};
use gpulibs_plan::{Outcome, Trust, VariantDevice, Warning};
use gpulibs_sources::Pip;
use gpulibs_store::{
    install_root, seed_info_path, store_home, DriverRecord, Env, GpuRecord, InstallRecord, RootEnv,
    Store, DEFAULT_APP,
};

use super::plan::free_space_near;
use super::planning::{make_plan, HostArgs, ManifestArgs};
use crate::error::{exit, CliError};
use crate::output::install::{render, render_refused, InstallOutput, InstallRefused};
use crate::output::{to_json, SCHEMA_VERSION};
use crate::progress::{Mode, Ui};
use crate::style::bytes;
use crate::{Context, Outcome as CmdOutcome};

/// Install the libraries this machine needs, verify them, and make them active.
///
/// Plans as `gpulibs plan` does, then downloads every component that is not already in the
/// store (several at a time; each is hashed and unpacked while it streams in, and resumes where
/// it stopped if interrupted), builds a new install beside the active one, runs the probe model
/// on it (`gpulibs verify`), and only then switches `current` to it in one atomic step. If any
/// byte does not match its sha256 or verification fails, the previous install stays active.
///
/// Exits 0 when installed (or already up to date), 3 when the plan has nothing to install, 1 on
/// failure.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gpulibs install\n  gpulibs install --app myapp \
--manifest release.toml --public-key RWQ...\n  gpulibs install --offline /media/usb/gpulibs \
--manifest release.toml\n  eval \"$(gpulibs env)\""
)]
pub struct Args {
    #[command(flatten)]
    manifest: ManifestArgs,
    #[command(flatten)]
    host: HostArgs,
    /// Application name: decides the install root (`$XDG_DATA_HOME/NAME/gpu-libs`); when given,
    /// also writes the seed-compatible `$XDG_CONFIG_HOME/NAME/gpu-package-info.json`.
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// Install from this directory of artifacts (named as in their URLs, or by sha256) instead
    /// of the network; every file is verified the same way. Wheels of the default (pip) flow are
    /// found under their own file names (`gpulibs mirror --embedded DIR` prepares such a
    /// directory) or by sha256, and pip is not run.
    #[arg(long, value_name = "DIR")]
    offline: Option<PathBuf>,
    /// Fail at once if another install holds the lock, instead of waiting for it.
    #[arg(long)]
    no_wait: bool,
    /// Activate without running the probe model first.
    #[arg(long)]
    no_verify: bool,
    /// Downloads at the same time.
    #[arg(long, default_value_t = 4, value_name = "N")]
    jobs: usize,
    /// Also run the app's own model (an ONNX file, or a directory of them) on the new install
    /// before activating it, as `gpulibs verify --model` does; repeatable. Default: the models
    /// the manifest's `[verify] models` names, those present on disk.
    #[arg(long, value_name = "FILE|DIR")]
    verify_model: Vec<PathBuf>,
    /// With --verify-model: the full shape of an input with dynamic dimensions (`NAME=1x512`).
    #[arg(long, value_name = "NAME=DIMS")]
    shape: Vec<String>,
    /// With --verify-model: the value of every element of a scalar-like input (`sr=16000`).
    #[arg(long, value_name = "NAME=X")]
    value: Vec<String>,
}

pub fn run(args: &Args, ctx: &Context, json: bool) -> Result<CmdOutcome, CliError> {
    let app = args.app.as_deref().unwrap_or(DEFAULT_APP);
    let env = RootEnv::from_env();
    let root = install_root(app, &env)?;
    let home = store_home(&env)?;
    crate::interrupt::guard_install_root(&root, &home);
    let mut planned = make_plan(
        &args.manifest,
        &args.host,
        free_space_near(&home),
        Some((&root, &home)),
    )?;
    if let Some(dir) = &args.offline {
        pin_offline(&mut planned.manifest, dir);
    }
    let plan = &planned.plan;
    let chosen = match (&plan.outcome, &plan.chosen) {
        (Outcome::Refused(_), _) | (_, None) => {
            let out = InstallRefused {
                schema_version: SCHEMA_VERSION,
                installed: false,
                plan: plan.clone(),
            };
            return Ok(CmdOutcome {
                json: to_json(&out),
                human: render_refused(&out),
                code: exit::NEGATIVE,
            });
        }
        (_, Some(c)) => c,
    };

    let (gpu, driver) = gpu_and_driver(args, plan, chosen.device);
    let pip = Pip::from_env();
    for s in &args.shape {
        gpulibs_verify::parse_shape_option(s)?;
    }
    for v in &args.value {
        gpulibs_verify::parse_value_option(v)?;
    }
    let models = verify_models(args, &planned)?;
    let verifier = ChildVerifier::new(models.clone(), args.shape.clone(), args.value.clone());
    let mut req = InstallRequest::new(&planned.manifest, plan, root.clone(), app, &pip);
    req.fetch.network = NetworkEnv::from_env();
    req.store_home = Some(home.clone());
    // A local manifest whose archive URLs are relative (bare file names: what `gpulibs package`
    // writes without --base-url) is served from its own directory. A URL manifest's relative
    // URLs were made absolute against its URL when it was read, so it has no directory here.
    req.offline_dir = args.offline.clone().or_else(|| {
        let dir = planned.manifest_dir.as_ref()?;
        let relative = planned
            .manifest
            .components
            .iter()
            .any(|c| !c.archive.url.contains("://") && !c.archive.url.starts_with("pip:"));
        relative.then(|| dir.clone())
    });
    req.jobs = args.jobs.max(1);
    req.wait_for_lock = !args.no_wait;
    req.gpu = gpu;
    req.driver = driver;
    req.verifier = (!args.no_verify).then_some(&verifier as &dyn Verifier);
    req.fallbacks = planned.candidates.clone();
    req.verify_models = models.iter().map(|m| m.display().to_string()).collect();
    req.no_gpu_fix = planned.no_gpu_fix.clone();
    if chosen.device == VariantDevice::Cuda {
        req.defer_verification = deferral(args, plan);
    }
    if args.app.is_some() {
        req.seed_receipt = Some(seed_info_path(app, &env)?);
    }

    // `--app NAME` names the app's own `gpu-libs`: the seed's installer left its libraries
    // there flat, and the user asked gpulibs to manage them, so they are adopted into a
    // generation (`rollback` returns to them) rather than refused. A root named by
    // GPULIBS_HOME is never adopted this way.
    let adopted = if args.app.is_some() && env.gpulibs_home.is_none() {
        Store::open_adopting_seed(&root, &home)?.1
    } else {
        None
    };
    // The adoption is told once, in the summary (the progress lines go to stderr).
    let ui = Ui::new(json || ctx.quiet, ctx.style);
    ui.line(&format!(
        "{} {} into {}\n{} {}",
        ctx.style.dim("installing"),
        chosen.label,
        root.display(),
        ctx.style.dim("manifest  "),
        planned.manifest_source
    ));
    let result = install(&req, &|e| show(&ui, e));
    ui.finish();
    // The renderer asks the error (and every cause) for its hint.
    let report = result?;
    // Trust is always said: an install from a manifest whose signature was not checked says so
    // as `plan` does, in the same words, and in the JSON.
    let warnings: Vec<Warning> = unverified(&planned.trust).into_iter().collect();
    let out = InstallOutput {
        schema_version: SCHEMA_VERSION,
        installed: true,
        report,
        trust: planned.trust.clone(),
        warnings,
        adopted,
    };
    Ok(CmdOutcome {
        json: to_json(&out),
        human: render(&out, args.app.as_deref(), ctx.style),
        code: exit::OK,
    })
}

/// `--offline DIR`: wheels that pip would have resolved (`pip:` URLs, the embedded default's)
/// are looked for in DIR under their own file names, as `gpulibs mirror` stores them; a file
/// named by its sha256 is still found. Either way the bytes are checked against the sha256.
/// A directory that cannot be listed is left to the install, which says so.
fn pin_offline(manifest: &mut gpulibs_plan::Manifest, dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let files: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    gpulibs_sources::pin_offline_wheels(manifest, &files);
}

/// The plan's warning for a manifest used without a checked signature (`--allow-unsigned`).
fn unverified(trust: &Trust) -> Option<Warning> {
    match trust {
        Trust::UnverifiedAllowed { why } => Some(Warning::UnverifiedManifest { why: why.clone() }),
        Trust::Signed { .. } | Trust::BuiltLocally => None,
    }
}

/// The GPU the install is for (the best target GPU of a GPU variant) and the driver.
fn gpu_and_driver(
    args: &Args,
    plan: &gpulibs_plan::Plan,
    device: VariantDevice,
) -> (Option<GpuRecord>, Option<DriverRecord>) {
    let gpu = match device {
        VariantDevice::Cpu => None,
        VariantDevice::Cuda => plan
            .target_gpus
            .iter()
            .max_by_key(|g| (g.compute_capability, g.memory_total_bytes))
            .map(|g| GpuRecord::new(g.name.clone(), g.compute_capability)),
    };
    let driver = if args.host.gpu.is_some() {
        Some(DriverRecord {
            version: args.host.driver.as_ref().map(|d| d.to_string()),
            cuda: args.host.driver_cuda,
        })
    } else {
        detect(&DetectOptions::from_env())
            .driver
            .map(|d| DriverRecord {
                version: d.version,
                cuda: d.cuda,
            })
    };
    (gpu, driver)
}

/// The app's models to verify with: `--verify-model`, else the manifest's `[verify] models`
/// that exist (a relative path is taken against a local manifest's directory, else the working
/// directory). A `--verify-model` that does not exist is an error; a manifest model that does
/// not is skipped (the app may not have downloaded it yet).
fn verify_models(
    args: &Args,
    planned: &super::planning::Planned,
) -> Result<Vec<PathBuf>, CliError> {
    if !args.verify_model.is_empty() {
        for m in &args.verify_model {
            if !m.exists() {
                return Err(CliError::new(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "the model {} given to --verify-model does not exist",
                        m.display()
                    ),
                ))
                .with_hint("pass an ONNX file or a directory of them"));
            }
        }
        return Ok(args.verify_model.clone());
    }
    Ok(planned
        .manifest
        .verify
        .models
        .iter()
        .map(|m| match &planned.manifest_dir {
            Some(dir) if std::path::Path::new(m).is_relative() => dir.join(m),
            _ => PathBuf::from(m),
        })
        .filter(|p| p.exists())
        .collect())
}

/// Installing with `--gpu` for a GPU this machine does not have (an image built on a CPU
/// machine for GPU machines): the probe cannot run here, so verification is deferred.
fn deferral(args: &Args, plan: &gpulibs_plan::Plan) -> Option<String> {
    args.host.gpu.as_ref()?;
    let here: Vec<gpulibs_detect::ComputeCapability> = detect(&DetectOptions::from_env())
        .usable_gpus()
        .filter_map(|g| g.compute_capability)
        .collect();
    let wanted: Vec<gpulibs_detect::ComputeCapability> = plan
        .target_gpus
        .iter()
        .map(|g| g.compute_capability)
        .collect();
    if wanted.iter().any(|cc| here.contains(cc)) {
        return None;
    }
    let list = |ccs: &[gpulibs_detect::ComputeCapability]| {
        ccs.iter()
            .map(|c| c.sm_name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "installed for {} (--gpu), which this machine does not have ({})",
        list(&wanted),
        if here.is_empty() {
            "it has no usable GPU".to_string()
        } else {
            format!("it has {}", list(&here))
        }
    ))
}

/// `gpulibs verify` on the new install's own `lib/`, before it is activated, in a child
/// process of this binary: a process holds one ONNX Runtime and keeps the CUDA libraries it
/// preloaded, so each candidate is proven in a fresh one, untouched by the one before.
pub(crate) struct ChildVerifier {
    models: Vec<PathBuf>,
    shapes: Vec<String>,
    values: Vec<String>,
}

impl ChildVerifier {
    /// The probe, then `models` (if any) with `shapes` and `values` (`--shape`, `--value`).
    pub(crate) fn new(models: Vec<PathBuf>, shapes: Vec<String>, values: Vec<String>) -> Self {
        Self {
            models,
            shapes,
            values,
        }
    }
}

impl Verifier for ChildVerifier {
    fn verify(&self, record: &InstallRecord, env: &Env) -> Verdict {
        let device = if is_cpu_runtime(record) {
            "cpu"
        } else {
            "cuda:0"
        };
        let probe = verify_child(env, device, &[], &[], &[]);
        if !probe.passed || self.models.is_empty() {
            return probe;
        }
        let models = verify_child(env, device, &self.models, &self.shapes, &self.values);
        let names: Vec<String> = self
            .models
            .iter()
            .map(|m| m.display().to_string())
            .collect();
        Verdict {
            passed: models.passed,
            summary: format!(
                "{}; app model(s) {}: {}",
                probe.summary,
                names.join(", "),
                models.summary
            ),
            details: serde_json::json!({ "probe": probe.details, "models": models.details }),
        }
    }
}

/// Runs `gpulibs --json verify --ort … --preload … --device …` and reads its report.
fn verify_child(
    env: &Env,
    device: &str,
    models: &[PathBuf],
    shapes: &[String],
    values: &[String],
) -> Verdict {
    let failed = |summary: String| Verdict {
        passed: false,
        summary,
        details: serde_json::Value::Null,
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return failed(format!(
                "cannot find the gpulibs binary to verify with: {e}"
            ))
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--json", "verify", "--device", device])
        .arg("--ort")
        .arg(&env.ort_dylib_path);
    // The install's own `lib/` first, then the directories of the libraries it reuses from this
    // machine (`env_for` orders them so): a library is found where the app will load it from.
    for dir in &env.lib_dirs {
        cmd.arg("--preload").arg(dir);
    }
    for m in models {
        cmd.arg("--model").arg(m);
    }
    for s in shapes {
        cmd.arg("--shape").arg(s);
    }
    for v in values {
        cmd.arg("--value").arg(v);
    }
    let out = match cmd.stdin(std::process::Stdio::null()).output() {
        Ok(out) => out,
        Err(e) => return failed(format!("cannot run `gpulibs verify`: {e}")),
    };
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let what = if models.is_empty() {
        "probe model"
    } else {
        "app model"
    };
    match verdict_of(&report, what) {
        Some((passed, summary)) => Verdict {
            passed,
            summary,
            details: report,
        },
        None => failed(format!(
            "`gpulibs verify` gave no report (exit {}): {}",
            out.status
                .code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "by a signal".into()),
            report
                .pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string())
        )),
    }
}

/// Passed (anything but `failed`) and the one line, from a `gpulibs verify` JSON report.
fn verdict_of(report: &serde_json::Value, what: &str) -> Option<(bool, String)> {
    let outcome = report.get("outcome")?;
    let status = outcome.get("status")?.as_str()?;
    let reason = outcome.get("reason").and_then(|r| r.as_str());
    // The CPU runtime is verified with `--device cpu`: "--device cpu was asked" would name a
    // flag the user never gave (the summary's `not GPU:` line says why it is the CPU runtime).
    let asked_cpu = report.pointer("/device/requested").and_then(|d| d.as_str()) == Some("cpu");
    let reason = reason.filter(|_| !(status == "cpu_only" && asked_cpu));
    Some(match status {
        "failed" => (
            false,
            format!(
                "failed ({}): {}",
                outcome.get("stage").and_then(|s| s.as_str()).unwrap_or("?"),
                reason.unwrap_or("no reason given")
            ),
        ),
        other => (
            true,
            format!(
                "{} (ONNX Runtime {}, {what}, {:.0} ms){}",
                match other {
                    "verified_gpu" => "verified on GPU".to_string(),
                    "cpu_only" => "CPU only".to_string(),
                    o => o.replace('_', " "),
                },
                report
                    .get("ort_version")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?"),
                report
                    .get("total_ms")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0),
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            ),
        ),
    })
}

/// Shows one of the install's events on `ui`.
fn show(ui: &Ui, e: &Event) {
    if matches!(ui.mode, Mode::Quiet) {
        return;
    }
    let s = ui.style;
    match e {
        Event::WaitingForLock { pid } => ui.line(&format!(
            "waiting for another gpulibs install{} to finish (--no-wait to give up instead)",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        )),
        Event::Resolving { components } => ui.resolving(components),
        Event::Planned {
            fetch,
            stored,
            system,
        } => {
            let total: u64 = fetch.iter().map(|f| f.size).sum();
            let mut text = format!(
                "{} {} artifact(s), {}",
                s.dim("fetching"),
                fetch.len(),
                bytes(total)
            );
            if !stored.is_empty() {
                text.push_str(&format!("; already in the store: {}", stored.join(", ")));
            }
            if !system.is_empty() {
                text.push_str(&format!("; from this machine: {}", system.join(", ")));
            }
            ui.line(&text);
        }
        Event::Download(p) => ui.download(p),
        Event::Stored { component } => {
            if matches!(ui.mode, Mode::Lines) {
                ui.line(&format!("  {component}: unpacked and stored"));
            }
        }
        Event::Verifying { install_id } => ui.line(&format!("{} {install_id}", s.dim("verifying"))),
        Event::TryingNext { failed, why, next } => ui.line(&format!(
            "{} {failed}: {why}\n{} {next}",
            s.warn("verification failed:"),
            s.dim("trying the next candidate:")
        )),
        Event::Activated { install_id } => ui.line(&format!("{} {install_id}", s.dim("activated"))),
    }
}

#[cfg(test)]
mod tests {
    use super::verdict_of;
    use serde_json::json;

    /// The install summary's verify line from the verifier's report: the CPU runtime verified
    /// with the `--device cpu` the installer passed names no flag; a CPU-only run the user's
    /// device choice led to keeps its reason; a failure keeps stage and reason.
    #[test]
    fn the_verify_line_names_only_what_the_user_did() {
        let report = |status: &str, requested: &str, reason: &str| {
            json!({
                "outcome": {"status": status, "reason": reason, "stage": "load"},
                "device": {"requested": requested},
                "ort_version": "1.23.2",
                "total_ms": 31.4,
            })
        };
        let cases = [
            (
                report("cpu_only", "cpu", "--device cpu was asked"),
                (true, "CPU only (ONNX Runtime 1.23.2, probe model, 31 ms)"),
            ),
            (
                report("cpu_only", "auto", "no usable GPU was detected"),
                (
                    true,
                    "CPU only (ONNX Runtime 1.23.2, probe model, 31 ms): no usable GPU was \
                     detected",
                ),
            ),
            (
                report("failed", "cpu", "cannot load ONNX Runtime"),
                (false, "failed (load): cannot load ONNX Runtime"),
            ),
        ];
        for (report, (passed, line)) in cases {
            assert_eq!(
                verdict_of(&report, "probe model"),
                Some((passed, line.to_string()))
            );
        }
    }
}
