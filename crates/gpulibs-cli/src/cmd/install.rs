//! `gpulibs install`: plan, then carry the plan out (`gpulibs-install`), with progress bars on a
//! terminal, plain lines otherwise, and a summary.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use gpulibs_detect::{detect, DetectOptions};
use gpulibs_fetch::{NetworkEnv, Stage};
use gpulibs_install::{
    install, Action, Event, InstallReport, InstallRequest, Verdict, Verifier, VerifyState,
};
use gpulibs_plan::{Outcome, VariantDevice};
use gpulibs_sources::Pip;
use gpulibs_store::{
    install_root, seed_info_path, DriverRecord, Env, GpuRecord, InstallRecord, RootEnv, DEFAULT_APP,
};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::plan::free_space_near;
use super::planning::{make_plan, HostArgs, ManifestArgs};
use crate::error::{exit, CliError};
use crate::style::{bytes, table, Cell, Style};
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
    /// of the network; every file is verified the same way.
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
}

pub fn run(args: &Args, ctx: &Context, json: bool) -> Result<CmdOutcome, CliError> {
    let app = args.app.as_deref().unwrap_or(DEFAULT_APP);
    let env = RootEnv::from_env();
    let root = install_root(app, &env)?;
    crate::interrupt::guard_install_root(&root);
    let planned = make_plan(&args.manifest, &args.host, free_space_near(&root))?;
    let plan = &planned.plan;
    let chosen = match (&plan.outcome, &plan.chosen) {
        (Outcome::Refused(_), _) | (_, None) => {
            let mut human = plan.lines().join("\n");
            human.push_str("\nnothing was installed\n");
            return Ok(CmdOutcome {
                json: serde_json::json!({ "installed": false, "plan": plan }),
                human,
                code: exit::NEGATIVE,
            });
        }
        (_, Some(c)) => c,
    };

    let (gpu, driver) = gpu_and_driver(args, plan, chosen.device);
    let pip = Pip::from_env();
    let verifier = ProbeVerifier {
        device: match chosen.device {
            VariantDevice::Cpu => gpulibs_verify::Device::Cpu,
            VariantDevice::Cuda => gpulibs_verify::Device::Cuda(0),
        },
    };
    let mut req = InstallRequest::new(&planned.manifest, plan, root.clone(), app, &pip);
    req.fetch.network = NetworkEnv::from_env();
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
    if args.app.is_some() {
        req.seed_receipt = Some(seed_info_path(app, &env)?);
    }

    let ui = Ui::new(json, ctx.style);
    ui.line(&format!(
        "{} {} into {}\n{} {}",
        ctx.style.dim("installing"),
        chosen.label,
        root.display(),
        ctx.style.dim("manifest  "),
        planned.manifest_source
    ));
    let result = install(&req, &|e| ui.event(e));
    ui.finish();
    let report = result.map_err(|e| {
        let hint = e.hint();
        let err = CliError::new(e);
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    })?;
    Ok(CmdOutcome {
        json: serde_json::to_value(&report).unwrap_or_default(),
        human: summary(&report, args.app.as_deref(), ctx.style),
        code: exit::OK,
    })
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

/// `gpulibs-verify` on the new install's own `lib/`, before it is activated.
struct ProbeVerifier {
    device: gpulibs_verify::Device,
}

impl Verifier for ProbeVerifier {
    fn verify(&self, _record: &InstallRecord, env: &Env) -> Verdict {
        let mut req = gpulibs_verify::VerifyRequest::probe(&env.ort_dylib_path, self.device);
        // The install's own `lib/` first, then the directories of the libraries it reuses from
        // this machine (`env_for` orders them so): a library is found where the app will load
        // it from.
        req.preload_dirs = env.lib_dirs.clone();
        let report = gpulibs_verify::verify(&req);
        let summary = match &report.outcome {
            gpulibs_verify::Outcome::Failed { reason, .. } => {
                format!("{}: {reason}", report.outcome.label())
            }
            other => format!(
                "{} (ONNX Runtime {}, probe model, {:.0} ms)",
                other.label(),
                report.ort_version.as_deref().unwrap_or("?"),
                report.total_ms
            ),
        };
        Verdict {
            passed: !report.outcome.is_failed(),
            summary,
            details: serde_json::to_value(&report).unwrap_or_default(),
        }
    }
}

fn summary(r: &InstallReport, app: Option<&str>, style: Style) -> String {
    let mut out = String::new();
    let secs = r.elapsed_ms as f64 / 1000.0;
    if r.up_to_date {
        out.push_str(&format!(
            "{} install {} ({}) is already active; nothing to do ({secs:.1} s)\n",
            style.good("up to date:"),
            r.install_id,
            r.variant
        ));
    } else {
        out.push_str(&format!(
            "{} {} (variant {}, release {}) in {secs:.1} s\n",
            style.good("installed"),
            r.install_id,
            r.variant,
            r.release.as_deref().unwrap_or("-")
        ));
    }
    let mut rows = vec![["component", "version", "how", "bytes"]
        .map(|h| Cell::styled(h, Style::dim))
        .into_iter()
        .collect::<Vec<_>>()];
    for c in &r.components {
        let how = match c.action {
            Action::Downloaded if c.resumed_bytes > 0 => {
                format!("downloaded (resumed at {})", bytes(c.resumed_bytes))
            }
            Action::Downloaded => "downloaded".into(),
            Action::Offline => "offline file".into(),
            Action::Stored => "already in the store".into(),
            Action::System => format!("this machine: {}", c.source),
        };
        rows.push(vec![
            Cell::styled(c.id.clone(), Style::bold),
            Cell::new(c.version.clone()),
            Cell::new(how),
            Cell::new(if c.bytes > 0 {
                bytes(c.bytes)
            } else {
                "-".into()
            }),
        ]);
    }
    out.push_str(&table(style, &rows));
    out.push_str(&format!(
        "downloaded {}{}, {} component(s) reused from the store\n",
        bytes(r.downloaded_bytes),
        if r.resumed_bytes > 0 {
            format!(" (+{} resumed)", bytes(r.resumed_bytes))
        } else {
            String::new()
        },
        r.reused_components
    ));
    match &r.verify {
        VerifyState::Passed { summary, .. } => {
            out.push_str(&format!("{} {summary}\n", style.good("verify:")))
        }
        VerifyState::Skipped { why } => {
            out.push_str(&format!("{} skipped ({why})\n", style.dim("verify:")))
        }
    }
    if let Some(prev) = &r.previous {
        out.push_str(&format!(
            "{} {prev} (`gpulibs rollback` returns to it)\n",
            style.dim("previous:")
        ));
    }
    if let Some(receipt) = &r.seed_receipt {
        out.push_str(&format!(
            "{} {}\n",
            style.dim("receipt: "),
            receipt.display()
        ));
    }
    if !r.system_paths.is_empty() {
        out.push_str(&format!(
            "{} reused from this machine, not copied: `gpulibs env` and `activate()` preload them \
             and `gpulibs status` reports them if they go or change (then run `gpulibs install` \
             again, or with --no-reuse): {}\n",
            style.dim("system:"),
            r.system_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push_str(&format!(
        "{} {}\n{} {}\n",
        style.dim("root:    "),
        r.root.display(),
        style.dim("library: "),
        r.env.ort_dylib_path.display()
    ));
    out.push_str(&format!(
        "{} eval \"$(gpulibs env{})\"\n",
        style.dim("use it:  "),
        app.map(|a| format!(" --app {a}")).unwrap_or_default()
    ));
    out
}

/// Progress for people: bars on a terminal, plain lines otherwise, nothing with `--json`.
struct Ui {
    mode: Mode,
    style: Style,
    state: Mutex<UiState>,
}

enum Mode {
    Quiet,
    Lines,
    Bars(MultiProgress),
}

#[derive(Default)]
struct UiState {
    bars: HashMap<String, ProgressBar>,
    started: HashMap<String, Instant>,
    announced: HashMap<String, bool>,
}

impl Ui {
    fn new(json: bool, style: Style) -> Ui {
        let mode = if json {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Ui {
            mode,
            style,
            state: Mutex::new(UiState::default()),
        }
    }

    fn line(&self, text: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => eprintln!("{text}"),
            Mode::Bars(m) => {
                let _ = m.println(text);
            }
        }
    }

    fn event(&self, e: &Event) {
        if matches!(self.mode, Mode::Quiet) {
            return;
        }
        let s = self.style;
        match e {
            Event::WaitingForLock { pid } => self.line(&format!(
                "waiting for another gpulibs install{} to finish (--no-wait to give up instead)",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            )),
            Event::Resolving { components } => self.line(&format!(
                "{} {}",
                s.dim("asking pip for the URLs of"),
                components.join(", ")
            )),
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
                self.line(&text);
            }
            Event::Download(p) => self.download(p),
            Event::Stored { component } => {
                if matches!(self.mode, Mode::Lines) {
                    self.line(&format!("  {component}: unpacked and stored"));
                }
            }
            Event::Verifying { install_id } => {
                self.line(&format!("{} {install_id}", s.dim("verifying")))
            }
            Event::Activated { install_id } => {
                self.line(&format!("{} {install_id}", s.dim("activated")))
            }
        }
    }

    fn download(&self, p: &gpulibs_fetch::Progress) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let name = p.artifact.to_string();
        match &self.mode {
            Mode::Bars(multi) => {
                let bar = st.bars.entry(name.clone()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(p.total.unwrap_or(0)));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(name.clone());
                    bar
                });
                if let Some(total) = p.total {
                    bar.set_length(total);
                }
                bar.set_position(p.downloaded);
                match p.stage {
                    Stage::Retrying { reason, delay } => {
                        bar.set_message(format!("retry in {:.0?}: {reason}", delay))
                    }
                    Stage::Restarting => bar.set_message("restarting"),
                    Stage::Verified => bar.finish_with_message("verified"),
                    _ => {}
                }
            }
            Mode::Lines => {
                let first = !st.announced.contains_key(&name);
                match p.stage {
                    Stage::Starting if first => {
                        st.announced.insert(name.clone(), true);
                        st.started.insert(name.clone(), Instant::now());
                        let resumed = if p.resumed_from > 0 {
                            format!(", resuming at {}", bytes(p.resumed_from))
                        } else {
                            String::new()
                        };
                        eprintln!(
                            "  {name}: {} from {}{resumed}",
                            p.total.map(bytes).unwrap_or_else(|| "?".into()),
                            p.source
                        );
                    }
                    Stage::Retrying { reason, delay } => {
                        eprintln!("  {name}: retrying in {delay:.1?}: {reason}")
                    }
                    Stage::Restarting => eprintln!("  {name}: starting over from byte 0"),
                    Stage::Verified => {
                        let secs = st
                            .started
                            .get(&name)
                            .map(|t| t.elapsed().as_secs_f64())
                            .unwrap_or(0.0)
                            .max(1e-3);
                        let fresh = p.downloaded - p.resumed_from;
                        eprintln!(
                            "  {name}: {} verified ({}/s)",
                            bytes(p.downloaded),
                            bytes((fresh as f64 / secs) as u64)
                        );
                    }
                    _ => {}
                }
            }
            Mode::Quiet => {}
        }
    }

    fn finish(&self) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for bar in st.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}
