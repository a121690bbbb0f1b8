//! The life cycle of an install root: `status`, `rollback`, `gc`, `remove`, `env`.

use std::path::{Path, PathBuf};

use gpulibs_detect::{detect, DetectOptions};
use gpulibs_install::health;
use gpulibs_store::{
    install_root, store_home, view_env, EnvFormat, HostSummary, InstallLock, RootEnv, Store,
    StoreError, DEFAULT_APP,
};

use crate::error::{exit, CliError};
use crate::output::lifecycle::{
    render_env, render_gc, render_remove, render_rollback, render_status, EnvOutput, GcOutput,
    RemoveOutput, RollbackOutput, StatusOutput,
};
use crate::output::{to_json, SCHEMA_VERSION};
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
    let ok = health.ok;
    let out = StatusOutput {
        schema_version: SCHEMA_VERSION,
        root: root.display().to_string(),
        store: components.display().to_string(),
        health,
        install: record,
        verified,
    };
    Ok(CmdOutcome {
        json: to_json(&out),
        human: render_status(&out, ctx.style),
        code: if ok { exit::OK } else { exit::NEGATIVE },
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
    let record = lock.rollback()?;
    let out = RollbackOutput {
        schema_version: SCHEMA_VERSION,
        active: record.id,
        variant: record.variant,
        previous: store.previous_id()?,
    };
    Ok(CmdOutcome {
        json: to_json(&out),
        human: render_rollback(&out, ctx.style),
        code: exit::OK,
    })
}

/// Delete old installs, then every stored component no remaining install uses
///
/// The active and previous installs stay, and the N newest others with `--keep N`.
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
    let out = GcOutput {
        schema_version: SCHEMA_VERSION,
        report,
    };
    Ok(CmdOutcome {
        json: to_json(&out),
        human: render_gc(&out, ctx.style),
        code: exit::OK,
    })
}

/// Delete the install root (only what gpulibs put there), and its seed-compatible receipt
///
/// The receipt goes only if gpulibs wrote it and it is unchanged. Anything else in the root is
/// left, listed, and keeps the directory. A directory gpulibs did not make (no
/// `gpulibs-root.json`) is refused. Nothing else outside the root is touched.
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
        let out = RemoveOutput::nothing(&root);
        return Ok(CmdOutcome {
            json: to_json(&out),
            human: render_remove(&out, ctx.style),
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
    let out = RemoveOutput {
        schema_version: SCHEMA_VERSION,
        removed: true,
        report: lock(&store, args.no_wait, ctx.quiet)?.remove()?,
    };
    Ok(CmdOutcome {
        json: to_json(&out),
        human: render_remove(&out, ctx.style),
        code: exit::OK,
    })
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
    let store = existing_store(&root)?.ok_or_else(|| nothing_installed(&root))?;
    let record = store.current()?.ok_or_else(|| nothing_installed(&root))?;
    // The root's view: paths that stay valid across updates, rollbacks and `gc`.
    let env = view_env(&store, &record);
    env.check(store.previous_usable())?;
    let format: EnvFormat = args.format.parse().map_err(|e: String| {
        CliError::new(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    })?;
    let out = EnvOutput::new(&env);
    Ok(CmdOutcome {
        json: to_json(&out),
        human: render_env(&out, format),
        code: exit::OK,
    })
}
