//! The install root: where it is, what it is made of, and opening it. Each concern of the root
//! lives in its own file:
//!
//! - this file: the root's place (`GPULIBS_HOME`, XDG), its layout names, the [`FaultPoint`]s,
//!   opening a [`Store`] (ownership through `gpulibs-root.json`, see `owner`) and its paths;
//! - `lock`: the install lock ([`InstallLock`]), the store and fetch locks, and the cleanup of
//!   what an interrupted run left;
//! - `components`: the shared content-addressed component store and staging into it
//!   ([`Stager`], checked archives, zstd);
//! - `generations`: installs (generations), their `lib/`, atomic activation, rollback,
//!   verification records;
//! - `gc`: leases and garbage collection across every root of the shared store;
//! - `remove`: removing a root, only what gpulibs made;
//! - `seed`: the seed-compatible receipt.
//!
//! See `docs/store.md` for the layout and the crash-safety argument.

mod components;
mod gc;
mod generations;
mod lock;
mod remove;
mod seed;

pub use components::{ArchiveCheck, Stager, StoredComponent, ZipListedMembers, ZipStream};
pub use gc::GcReport;
pub use lock::InstallLock;
pub use remove::RemoveReport;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{io_err, Result, StoreError};
use crate::fsx;
use crate::owner;
use crate::shared;

/// The app name used when none is given: the root is `$XDG_DATA_HOME/gpulibs/gpu-libs`.
pub const DEFAULT_APP: &str = "gpulibs";
/// Environment variable naming the install root itself (tests, unusual layouts).
pub const HOME_ENV: &str = "GPULIBS_HOME";

use crate::shared::STORE_DIR;
const INSTALLS_DIR: &str = "installs";
const CURRENT: &str = "current";
const PREVIOUS: &str = "previous";
const LOCK: &str = "lock";
const RECORD: &str = "install.json";
const COMPONENT_META: &str = "component.json";
const COMPONENT_TREE: &str = "tree";
const SEED_MARKER: &str = "seed-info.json";
const TMP_PREFIX: &str = ".tmp-";
const TRASH_PREFIX: &str = ".trash-";

/// The environment that decides where the root is; plain data so tests need no process
/// environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootEnv {
    pub gpulibs_home: Option<PathBuf>,
    /// `GPULIBS_STORE`: the shared component store's home (see [`store_home`]).
    pub gpulibs_store: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
}

impl RootEnv {
    /// `GPULIBS_HOME`, `XDG_DATA_HOME`, `XDG_CONFIG_HOME` and `HOME`; empty values count as unset.
    pub fn from_env() -> Self {
        let var = |n: &str| {
            std::env::var_os(n)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            gpulibs_home: var(HOME_ENV),
            gpulibs_store: var(shared::STORE_ENV),
            xdg_data_home: var("XDG_DATA_HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
        }
    }
}

/// Refuses app names that would leave the XDG directory (`..`, `/`) or hide it (`.x`).
pub fn check_app_name(app: &str) -> Result<()> {
    let ok = !app.is_empty()
        && !app.starts_with('.')
        && app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadAppName {
            app: app.to_string(),
        })
    }
}

/// The install root for `app`: `GPULIBS_HOME` if set, else `$XDG_DATA_HOME/<app>/gpu-libs`,
/// else `~/.local/share/<app>/gpu-libs`. A relative `XDG_DATA_HOME` is ignored, as the XDG
/// specification says.
pub fn install_root(app: &str, env: &RootEnv) -> Result<PathBuf> {
    check_app_name(app)?;
    if let Some(home) = &env.gpulibs_home {
        return Ok(home.clone());
    }
    let data = match &env.xdg_data_home {
        Some(d) if d.is_absolute() => d.clone(),
        _ => env
            .home
            .as_ref()
            .ok_or(StoreError::NoRoot)?
            .join(".local/share"),
    };
    Ok(data.join(app).join("gpu-libs"))
}

/// The home of the component store every app root of this user shares: `GPULIBS_STORE` if
/// set; else, with `GPULIBS_HOME` set, that root itself (a self-contained root, as before the
/// store was shared); else `$XDG_DATA_HOME/gpulibs`, else `~/.local/share/gpulibs`. Components
/// live in `<home>/store/<sha256>`, partial downloads in `<home>/downloads`.
pub fn store_home(env: &RootEnv) -> Result<PathBuf> {
    if let Some(store) = &env.gpulibs_store {
        return Ok(std::path::absolute(store).unwrap_or_else(|_| store.clone()));
    }
    if let Some(home) = &env.gpulibs_home {
        return Ok(home.clone());
    }
    let data = match &env.xdg_data_home {
        Some(d) if d.is_absolute() => d.clone(),
        _ => env
            .home
            .as_ref()
            .ok_or(StoreError::NoRoot)?
            .join(".local/share"),
    };
    Ok(data.join(DEFAULT_APP))
}

/// Where the seed-compatible receipt of `app` lives: `$XDG_CONFIG_HOME/<app>/gpu-package-info.json`
/// (default `~/.config`).
pub fn seed_info_path(app: &str, env: &RootEnv) -> Result<PathBuf> {
    check_app_name(app)?;
    let config = match &env.xdg_config_home {
        Some(d) if d.is_absolute() => d.clone(),
        _ => env.home.as_ref().ok_or(StoreError::NoRoot)?.join(".config"),
    };
    Ok(config.join(app).join("gpu-package-info.json"))
}

/// The named steps of staging, installing and activating, in order. A step hook sees each one
/// as it is reached; returning an error aborts the operation right there, which is how the
/// crash tests stop an install at every point (and how a CLI can report progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultPoint {
    /// The component's temp directory exists, nothing unpacked.
    StagingStarted,
    /// One archive entry was written (seen once per entry).
    EntryUnpacked,
    /// Unpacked and verified, metadata written; the temp directory is not yet renamed.
    ComponentUnpacked,
    /// `store/<sha>` exists.
    ComponentCommitted,
    /// `installs/.tmp-<id>/lib` exists, empty.
    InstallStarted,
    /// One file was linked into the new `lib/` (seen once per file).
    FileLinked,
    /// `install.json` is written and synced in the temp install directory.
    RecordWritten,
    /// `installs/<id>` exists (renamed from its temp name).
    InstallCommitted,
    /// The root has a link `<name> -> current/lib/<name>` for every name of the new install
    /// (the ones it lacked were made); `current` is not switched yet.
    ViewLinked,
    /// `previous.tmp` exists, not yet renamed over `previous`.
    PreviousLinkTemp,
    /// `previous` names the install that was current.
    PreviousSwitched,
    /// `current.tmp` exists, not yet renamed over `current`.
    CurrentLinkTemp,
    /// `current` names the new install.
    CurrentSwitched,
    /// The view links of names the new install lacks are removed.
    ViewPruned,
    /// The seed-compatible receipt was rewritten.
    SeedInfoWritten,
}

impl FaultPoint {
    pub const ALL: [FaultPoint; 15] = [
        FaultPoint::StagingStarted,
        FaultPoint::EntryUnpacked,
        FaultPoint::ComponentUnpacked,
        FaultPoint::ComponentCommitted,
        FaultPoint::InstallStarted,
        FaultPoint::FileLinked,
        FaultPoint::RecordWritten,
        FaultPoint::InstallCommitted,
        FaultPoint::ViewLinked,
        FaultPoint::PreviousLinkTemp,
        FaultPoint::PreviousSwitched,
        FaultPoint::CurrentLinkTemp,
        FaultPoint::CurrentSwitched,
        FaultPoint::ViewPruned,
        FaultPoint::SeedInfoWritten,
    ];
}

/// Called at every [`FaultPoint`]; an `Err` aborts the operation there.
pub type StepHook = Arc<dyn Fn(FaultPoint) -> Result<()> + Send + Sync>;

/// An install root. Opening creates it (or adopts an earlier gpulibs' root, or refuses a
/// directory holding anything else; see [`Store::open`]); reading needs no lock (every change a
/// reader can see is one `rename`); changing needs an [`InstallLock`].
#[derive(Clone)]
pub struct Store {
    root: PathBuf,
    /// The component store's home: `home/store/<sha256>`; the root itself for a
    /// self-contained root.
    home: PathBuf,
    hook: Option<StepHook>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .field("home", &self.home)
            .finish()
    }
}

impl Store {
    /// Opens the root at `root` to change it, making it gpulibs' own first: a directory that
    /// does not exist or is empty is created with the marker `gpulibs-root.json`; a directory
    /// with the marker is taken as it is; one laid out exactly as an earlier gpulibs laid out
    /// its roots (only `store/`, `installs/`, `downloads/`, `current`, `previous`, `lock`, ...
    /// with their usual contents) is adopted and gets the marker; any other directory is
    /// refused with [`StoreError::NotARoot`], nothing written.
    ///
    /// The root keeps its components in its own `store/` (self-contained); see
    /// [`Store::open_in`] for a store shared with other apps.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        Self::open_in(root.clone(), root)
    }

    /// [`Store::open`], with the components in the store whose home is `home`
    /// ([`store_home`]): `home/store/<sha256>`, shared by every root opened with that home.
    /// The root is registered there (`home/roots/<hash>.json`), so `gc` and `remove` of every
    /// app see its generations.
    pub fn open_in(root: impl Into<PathBuf>, home: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let home = home.into();
        fs::create_dir_all(&root).map_err(io_err("creating", &root))?;
        owner::claim(&root)?;
        let installs = root.join(INSTALLS_DIR);
        fs::create_dir_all(&installs).map_err(io_err("creating", &installs))?;
        let store = home.join(STORE_DIR);
        fs::create_dir_all(&store).map_err(io_err("creating", &store))?;
        shared::register(&home, &root)?;
        Ok(Self {
            root,
            home,
            hook: None,
        })
    }

    /// The same root, with its components looked up in the store whose home is `home`
    /// (nothing is created): for readers of a root opened with [`Store::open_existing`].
    pub fn with_store_home(mut self, home: impl Into<PathBuf>) -> Self {
        self.home = home.into();
        self
    }

    /// Opens the root at `root` to read it, writing nothing: `None` when it does not exist or
    /// is empty (nothing is installed), the store when it has the marker or is an earlier
    /// gpulibs' root (adopted by the next [`Store::open`]), [`StoreError::NotARoot`] when it
    /// holds anything gpulibs did not put there.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Option<Self>> {
        let root = root.into();
        Ok(owner::inspect(&root)?.map(|_| Self {
            home: root.clone(),
            root,
            hook: None,
        }))
    }

    /// A handle on `root` that creates nothing: for readers such as [`crate::activate`].
    pub(crate) fn existing(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            home: root.to_path_buf(),
            hook: None,
        }
    }

    /// A handle that reads the root at `root` and the components under `home` and creates
    /// nothing, even where neither exists yet: for asking which archives are stored already
    /// before anything is installed ([`Store::has_component`]).
    pub fn peek(root: &Path, home: &Path) -> Self {
        Self::existing(root).with_store_home(home)
    }

    /// Opens the root for `app` from the environment ([`install_root`]).
    pub fn open_app(app: &str) -> Result<Self> {
        let env = RootEnv::from_env();
        Self::open_in(install_root(app, &env)?, store_home(&env)?)
    }

    /// Calls `hook` at every named step; see [`FaultPoint`].
    pub fn with_step_hook(mut self, hook: StepHook) -> Self {
        self.hook = Some(hook);
        self
    }

    fn step(&self, point: FaultPoint) -> Result<()> {
        match &self.hook {
            Some(h) => h(point),
            None => Ok(()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The component store's home (`<home>/store/<sha256>`, `<home>/downloads`).
    pub fn store_home(&self) -> &Path {
        &self.home
    }

    /// Where partial downloads live: `<store home>/downloads`, shared with every app that
    /// uses the same store, so a second app resumes what the first started.
    pub fn downloads_dir(&self) -> PathBuf {
        self.home.join(shared::DOWNLOADS_DIR)
    }

    /// Whether this root keeps its components in its own `store/` (the store's home is the
    /// root).
    pub fn is_self_contained(&self) -> bool {
        self.home == self.root
    }

    /// A root made before the store was shared keeps its own `<root>/store/` for the
    /// generations that link into it; `None` for a self-contained root.
    fn legacy_store(&self) -> Option<PathBuf> {
        (!self.is_self_contained()).then(|| self.root.join(STORE_DIR))
    }

    /// Fails with both numbers when fewer than `needed` bytes are free on the root's file
    /// system.
    pub fn check_space(&self, needed: u64) -> Result<()> {
        let available = fsx::available_space(&self.home).map_err(io_err("statvfs", &self.home))?;
        if available < needed {
            return Err(StoreError::InsufficientSpace {
                path: self.home.clone(),
                needed,
                available,
            });
        }
        Ok(())
    }
}

/// Removes `dir` if it is empty; whether it is gone.
fn remove_dir_if_empty(dir: &Path) -> Result<bool> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(false),
        Err(e) => Err(io_err("removing", dir)(e)),
    }
}

fn remove_any(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspecting", path)(e)),
    };
    let r = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", path)(e)),
    }
}

/// Install ids are plain names; temp and trash directories start with `.`.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether a file name is a shared library that belongs in an install's `lib/`.
pub fn is_library_name(name: &str) -> bool {
    name.starts_with("lib") && (name.ends_with(".so") || name.contains(".so."))
}

mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const EXDEV: i32 = 18;
    pub const EMLINK: i32 = 31;
    pub const ENOTSUP: i32 = 95;
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
