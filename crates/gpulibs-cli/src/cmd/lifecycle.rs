//! The life cycle of an install root: `status`, `rollback`, `gc`, `remove`, `env`.

use std::path::{Path, PathBuf};

use gpulibs_detect::{detect, DetectOptions};
use gpulibs_install::health;
use gpulibs_store::{
    install_root, store_home, view_env, EnvFormat, HostSummary, InstallLock, RootEnv, Store,
    StoreError, DEFAULT_APP,
};
use serde_json::json;

use crate::error::{exit, CliError};
use crate::style::bytes;
use crate::{Context, Outcome as CmdOutcome};

/// Which install root.
#[derive(Debug, clap::Args)]
pub struct RootArgs {
    /// Application name: the root is `$XDG_DATA_HOME/NAME/gpu-libs` (or `GPULIBS_HOME`); the
    /// components every app shares are in `$XDG_DATA_HOME/gpulibs/store` (or
    /// `GPULIBS_STORE/store`; inside `GPULIBS_HOME` when only that is set).
    #[arg(long, default_value = DEFAULT_APP, value_name = "NAME")]
    app: String,
}

impl RootArgs {
    fn root(&self) -> Result<PathBuf, CliError> {
        Ok(install_root(&self.app, &RootEnv::from_env())?)
    }

    /// The home of the component store this root shares with other apps.
    fn store_home(&self) -> Result<PathBuf, CliError> {
        Ok(store_home(&RootEnv::from_env())?)
    }
}

/// A root that exists, opened to read it (nothing written); `None` when it does not exist or
/// is empty. A directory holding anything gpulibs did not put there is an error.
fn existing_store(root: &Path) -> Result<Option<Store>, CliError> {
    Ok(Store::open_existing(root)?)
}

/// [`existing_store`], opened to change it, with its components in the shared store at
/// `home`: an earlier gpulibs' root without the marker is adopted (gets the marker) first.
fn existing_store_to_change(root: &Path, home: &Path) -> Result<Option<Store>, CliError> {
    match Store::open_existing(root)? {
        Some(_) => Ok(Some(Store::open_in(root, home)?)),
        None => Ok(None),
    }
}

fn nothing_installed(root: &Path) -> CliError {
    CliError::new(StoreError::NothingInstalled {
        root: root.to_path_buf(),
    })
}

/// Takes the install lock; while waiting for another install, says so on stderr (not under
/// `--quiet`).
fn lock<'s>(store: &'s Store, no_wait: bool, quiet: bool) -> Result<InstallLock<'s>, CliError> {
    let lock = if no_wait {
        store.try_lock()
    } else {
        store.lock(|pid| {
            if !quiet {
                eprintln!(
                    "waiting for another gpulibs install{} to finish",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                )
            }
        })
    };
    lock.map_err(|e| {
        CliError::new(e).with_hint("run again without --no-wait to queue behind the other install")
    })
}

/// Whether the active install still fits this machine's GPU and driver.
///
/// Exits 0 when it does (or it is the CPU runtime), 3 when nothing is installed, the install no
/// longer matches the GPU or driver, files of it are missing, or its last verification failed;
/// 1 when the root cannot be read: `current` points at an install that is gone (the error names
/// it and says `gpulibs rollback` or `gpulibs install`), or the directory is not a gpulibs root.
/// With `--verify`, first runs the probe model (and `--verify-model`s) on the active install and
/// records the result in its `install.json`: how an install made with `install --gpu` on
/// another machine (verification deferred) gets its proof on the GPU machine.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    root: RootArgs,
    /// Verify the active install here (the probe model, on the GPU for a GPU install) and
    /// record the result before reporting.
    #[arg(long)]
    verify: bool,
    /// With --verify: also run the app's own model (an ONNX file or a directory); repeatable.
    #[arg(long, value_name = "FILE|DIR", requires = "verify")]
    verify_model: Vec<PathBuf>,
    /// With --verify-model: the full shape of an input with dynamic dimensions (`NAME=1x512`).
    #[arg(long, value_name = "NAME=DIMS", requires = "verify_model")]
    shape: Vec<String>,
    /// With --verify-model: the value of every element of a scalar-like input (`sr=16000`).
    #[arg(long, value_name = "NAME=X", requires = "verify_model")]
    value: Vec<String>,
}

pub fn status(args: &StatusArgs, ctx: &Context) -> Result<CmdOutcome, CliError> {
    let root = args.root.root()?;
    let host = HostSummary::from_detection(&detect(&DetectOptions::from_env()));
    let mut verified = None;
    if args.verify {
        let store = existing_store(&root)?.ok_or_else(|| nothing_installed(&root))?;
        let verifier = super::install::ChildVerifier::new(
            args.verify_model.clone(),
            args.shape.clone(),
            args.value.clone(),
        );
        let models: Vec<String> = args
            .verify_model
            .iter()
            .map(|m| m.display().to_string())
            .collect();
        let (_, verdict) = gpulibs_install::verify_active(&store, &verifier, &models)?;
        verified = Some(verdict);
    }
    // Where new components go (shared by every app); a root made before the store was shared
    // also keeps its own `store/` for its older generations.
    let components = args.root.store_home()?.join("store");
    let (health, record) = match existing_store(&root)? {
        Some(store) => (health(&store, &host)?, store.current()?),
        None => (gpulibs_install::judge(None, &host, Vec::new()), None),
    };
    let s = ctx.style;
    let mut human = format!(
        "{} {}\n",
        if health.ok {
            s.good("ok:")
        } else {
            s.warn("not ok:")
        },
        health.message
    );
    if let Some(v) = &verified {
        human.push_str(&format!(
            "{} {}\n",
            if v.passed {
                s.good("verified:")
            } else {
                s.bad("verification failed:")
            },
            v.summary
        ));
    }
    if let Some(r) = &record {
        human.push_str(&format!(
            "{} {} (release {}, installed {})\n{} {}\n{} {}\n",
            s.dim("variant"),
            r.variant,
            r.release.as_deref().unwrap_or("-"),
            r.installed_at,
            s.dim("root   "),
            root.display(),
            s.dim("store  "),
            components.display()
        ));
        for p in &health.problems {
            human.push_str(&format!("  {} {p}\n", s.bad("missing:")));
        }
    }
    Ok(CmdOutcome {
        json: json!({
            "root": root,
            "store": components,
            "health": health,
            "install": record,
            "verified": verified
        }),
        human,
        code: if health.ok { exit::OK } else { exit::NEGATIVE },
    })
}

/// Make the previous install active again (a second rollback undoes the first).
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    root: RootArgs,
    /// Fail at once if an install holds the lock.
    #[arg(long)]
    no_wait: bool,
}

pub fn rollback(args: &RollbackArgs, ctx: &Context) -> Result<CmdOutcome, CliError> {
    let root = args.root.root()?;
    let store = existing_store_to_change(&root, &args.root.store_home()?)?
        .ok_or_else(|| nothing_installed(&root))?;
    let lock = lock(&store, args.no_wait, ctx.quiet)?;
    let record = lock.rollback().map_err(|e| match e {
        e @ StoreError::NoPrevious { .. } => {
            CliError::new(e).with_hint("`gpulibs status` shows what is active")
        }
        e => CliError::new(e),
    })?;
    let previous = store.previous_id()?;
    Ok(CmdOutcome {
        json: json!({ "active": record.id, "variant": record.variant, "previous": previous }),
        human: format!(
            "{} {} ({}) is active again{}\n",
            ctx.style.good("rolled back:"),
            record.id,
            record.variant,
            previous
                .map(|p| format!("; {p} is now previous"))
                .unwrap_or_default()
        ),
        code: exit::OK,
    })
}

/// Delete installs other than the active and previous ones (and the N newest others), then
/// every stored component no remaining install uses.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    #[command(flatten)]
    root: RootArgs,
    /// Also keep the N newest installs besides the active and previous ones.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep: usize,
    /// Fail at once if an install holds the lock.
    #[arg(long)]
    no_wait: bool,
}

pub fn gc(args: &GcArgs, ctx: &Context) -> Result<CmdOutcome, CliError> {
    let root = args.root.root()?;
    let store = existing_store_to_change(&root, &args.root.store_home()?)?
        .ok_or_else(|| nothing_installed(&root))?;
    let report = lock(&store, args.no_wait, ctx.quiet)?.gc(args.keep)?;
    let s = ctx.style;
    let mut human = format!(
        "{} {} install(s), {} component(s), {} temporary leftover(s); freed {}\n",
        s.good("removed"),
        report.removed_installs.len(),
        report.removed_components.len(),
        report.removed_temporaries.len(),
        bytes(report.freed_bytes)
    );
    for id in &report.removed_installs {
        human.push_str(&format!("  {} {id}\n", s.dim("install  ")));
    }
    for sha in &report.removed_components {
        human.push_str(&format!("  {} {sha}\n", s.dim("component")));
    }
    human.push_str(&shared_store_lines(
        s,
        &report.kept_for_others,
        &report.other_roots,
        &report.unreadable_roots,
    ));
    for r in &report.dropped_roots {
        human.push_str(&format!(
            "  {} {} (it no longer exists)\n",
            s.dim("forgot   "),
            r.display()
        ));
    }
    Ok(CmdOutcome {
        json: serde_json::to_value(&report).unwrap_or_default(),
        human,
        code: exit::OK,
    })
}

/// Delete the install root, and the seed-compatible receipt if gpulibs wrote it and it is
/// unchanged. Only what gpulibs put in the root is deleted: anything else is left, listed, and
/// keeps the directory. A directory gpulibs did not make (no `gpulibs-root.json`) is refused.
/// Nothing else outside the root is touched.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    root: RootArgs,
    /// Really delete (without it, only say what would be deleted).
    #[arg(long)]
    yes: bool,
    /// Fail at once if an install holds the lock.
    #[arg(long)]
    no_wait: bool,
}

pub fn remove(args: &RemoveArgs, ctx: &Context) -> Result<CmdOutcome, CliError> {
    let root = args.root.root()?;
    let Some(store) = existing_store_to_change(&root, &args.root.store_home()?)? else {
        return Ok(CmdOutcome {
            json: json!({ "root": root, "removed": false }),
            human: format!("nothing is installed under {}\n", root.display()),
            code: exit::OK,
        });
    };
    if !args.yes {
        return Err(CliError::new(std::io::Error::other(format!(
            "`gpulibs remove` deletes every install in {} and what else gpulibs put there",
            root.display()
        )))
        .with_hint("run `gpulibs remove --yes` to delete it"));
    }
    let report = lock(&store, args.no_wait, ctx.quiet)?.remove()?;
    let s = ctx.style;
    let mut human = if report.root_removed {
        format!(
            "{} {} ({})\n",
            s.good("removed"),
            report.root.display(),
            bytes(report.freed_bytes)
        )
    } else {
        format!(
            "{} gpulibs' files from {} ({}); the directory stays, holding {} entr{} gpulibs did \
             not put there:\n",
            s.good("removed"),
            report.root.display(),
            bytes(report.freed_bytes),
            report.kept.len(),
            if report.kept.len() == 1 { "y" } else { "ies" }
        )
    };
    for p in &report.kept {
        human.push_str(&format!("  {} {}\n", s.warn("kept"), p.display()));
    }
    if !report.removed_components.is_empty() {
        human.push_str(&format!(
            "{} {} component(s) no other app uses from the shared store\n",
            s.good("removed"),
            report.removed_components.len()
        ));
    }
    human.push_str(&shared_store_lines(
        s,
        &report.kept_for_others,
        &[],
        &report.unreadable_roots,
    ));
    if let Some(p) = &report.seed_info_removed {
        human.push_str(&format!("{} {}\n", s.good("removed"), p.display()));
    }
    if let Some(p) = &report.seed_info_kept {
        human.push_str(&format!(
            "{} {} was edited since gpulibs wrote it; left in place\n",
            s.warn("kept"),
            p.display()
        ));
    }
    Ok(CmdOutcome {
        json: serde_json::to_value(&report).unwrap_or_default(),
        human,
        code: exit::OK,
    })
}

/// What `gc` and `remove` left in the shared store for other apps, and why.
fn shared_store_lines(
    s: crate::style::Style,
    kept_for_others: &[String],
    other_roots: &[PathBuf],
    unreadable: &[PathBuf],
) -> String {
    let mut out = String::new();
    if !kept_for_others.is_empty() {
        out.push_str(&format!(
            "{} {} component(s) another app's install still uses\n",
            s.warn("kept"),
            kept_for_others.len()
        ));
    }
    if !other_roots.is_empty() {
        out.push_str(&format!(
            "  {} {}\n",
            s.dim("shared with"),
            other_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for r in unreadable {
        out.push_str(&format!(
            "{} {} uses the shared store but could not be read; no shared component was \
             deleted (make it readable, or remove it, and run `gpulibs gc` again)\n",
            s.warn("kept"),
            r.display()
        ));
    }
    out
}

/// The environment an app needs to load the active install.
///
/// `eval "$(gpulibs env)"` in a shell; `gpulibs env --format systemd > app.env` for a unit's
/// `EnvironmentFile=`.
///
/// Exits 0 with the environment; 1, printing nothing on stdout, when nothing is installed or
/// the active install cannot be used: `current` points at an install that is gone, or a
/// library or directory it would name is missing (the error names the path and says `gpulibs
/// install`, or `gpulibs rollback` when the previous install is there).
#[derive(Debug, clap::Args)]
pub struct EnvArgs {
    #[command(flatten)]
    root: RootArgs,
    /// `sh` (export lines), `systemd` (KEY=value lines) or `json`.
    #[arg(long, default_value = "sh", value_name = "FORMAT", value_parser = ["sh", "systemd", "json"])]
    format: String,
}

pub fn env(args: &EnvArgs, _ctx: &Context) -> Result<CmdOutcome, CliError> {
    let root = args.root.root()?;
    let hint = |e: CliError| e.with_hint("run `gpulibs install` first");
    let store = existing_store(&root)?.ok_or_else(|| hint(nothing_installed(&root)))?;
    let record = store
        .current()?
        .ok_or_else(|| hint(nothing_installed(&root)))?;
    // The root's view: paths that stay valid across updates, rollbacks and `gc`.
    let env = view_env(&store, &record);
    env.check(store.previous_usable())?;
    let format: EnvFormat = args.format.parse().map_err(|e: String| {
        CliError::new(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    })?;
    Ok(CmdOutcome {
        json: serde_json::to_value(&env).unwrap_or_default(),
        human: env.render(format),
        code: exit::OK,
    })
}
