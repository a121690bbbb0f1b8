//! The install root: layout, lock, component store, generations, activation, rollback, gc,
//! removal. See `docs/store.md` for the layout and the crash-safety argument.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{io_err, Result, StoreError, UnpackError};
use crate::fsx;
use crate::owner::{self, RootEntry, ROOT_MARKER};
use crate::record::{
    compact_utc, now_secs, rfc3339_utc, ComponentRecord, InstallRecord, InstallSpec,
    SeedPackageInfo, RECORD_SCHEMA_VERSION,
};
use crate::reuse;
use crate::shared::{self, DiskUsage, FetchLock, FileLock, Lease};
use crate::unpack::{
    self, resolve_in_report, ArchiveFormat, EntryKind, UnpackLimits, UnpackReport, ZipListedMember,
};
use crate::view;

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

/// One component as kept in `store/<sha256>/component.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredComponent {
    pub schema_version: u32,
    pub sha256: String,
    pub format: ArchiveFormat,
    pub unpacked_bytes: u64,
    pub entries: Vec<unpack::UnpackedEntry>,
}

/// What [`InstallLock::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub removed_installs: Vec<String>,
    pub removed_components: Vec<String>,
    /// Leftovers of interrupted runs cleaned when the lock was taken.
    pub removed_temporaries: Vec<PathBuf>,
    /// Bytes on disk freed: each file counted once however many hard links it had, and only
    /// when its last link went.
    pub freed_bytes: u64,
    /// The shared store's component directory (`<store home>/store`).
    pub store: PathBuf,
    /// Components no generation of this root uses any more, kept because another app's
    /// generation (or an install in progress) uses them.
    pub kept_for_others: Vec<String>,
    /// Other app roots registered with the store whose generations were respected.
    pub other_roots: Vec<PathBuf>,
    /// Registered roots that could not be read: while there is one, no shared component is
    /// deleted.
    pub unreadable_roots: Vec<PathBuf>,
    /// Registered roots that no longer exist, dropped from the registry.
    pub dropped_roots: Vec<PathBuf>,
}

/// What [`InstallLock::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemoveReport {
    pub root: PathBuf,
    /// Bytes on disk freed, each file counted once (see [`GcReport::freed_bytes`]).
    pub freed_bytes: u64,
    /// Components of the shared store deleted because no other app uses them.
    pub removed_components: Vec<String>,
    /// Components this root used that stay because another app's generation uses them.
    pub kept_for_others: Vec<String>,
    /// Registered roots that could not be read (no shared component was deleted).
    pub unreadable_roots: Vec<PathBuf>,
    /// Whether the root directory itself is gone (it stays when something gpulibs did not put
    /// there is left in it).
    pub root_removed: bool,
    /// What was left because gpulibs did not put it there.
    pub kept: Vec<PathBuf>,
    /// The seed-compatible receipt, deleted because gpulibs wrote it and it is unchanged.
    pub seed_info_removed: Option<PathBuf>,
    /// The receipt, kept because it changed since gpulibs wrote it.
    pub seed_info_kept: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeedMarker {
    path: PathBuf,
    sha256: String,
}

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

    /// The component's directory (its files are under `tree/`): `<store home>/store/<sha256>`,
    /// or the root's own `store/<sha256>` when only that one has it (a root made before the
    /// store was shared).
    pub fn component_dir(&self, sha256: &str) -> PathBuf {
        let shared = self.home.join(STORE_DIR).join(sha256);
        if let Some(legacy) = self.legacy_store() {
            let local = legacy.join(sha256);
            if !shared.join(COMPONENT_META).is_file() && local.join(COMPONENT_META).is_file() {
                return local;
            }
        }
        shared
    }

    /// Whether a complete component with this archive hash is in the store.
    pub fn has_component(&self, sha256: &str) -> bool {
        check_sha256(sha256).is_ok() && self.component_dir(sha256).join(COMPONENT_META).is_file()
    }

    /// The metadata of a stored component.
    pub fn component(&self, sha256: &str) -> Result<StoredComponent> {
        check_sha256(sha256)?;
        let path = self.component_dir(sha256).join(COMPONENT_META);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingComponent {
                    sha256: sha256.to_string(),
                    path: path.clone(),
                }
            } else {
                io_err("reading", &path)(e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::BadRecord { path, source })
    }

    /// `installs/<id>`.
    pub fn install_dir(&self, id: &str) -> PathBuf {
        self.root.join(INSTALLS_DIR).join(id)
    }

    /// `<root>/current`: a stable path to the active install (its `lib/` is what the
    /// seed-compatible receipt names).
    pub fn current_link(&self) -> PathBuf {
        self.root.join(CURRENT)
    }

    fn link_id(&self, name: &str) -> Result<Option<String>> {
        let link = self.root.join(name);
        Ok(fsx::read_link_opt(&link)?.and_then(|t| {
            t.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| valid_id(n))
        }))
    }

    /// The id `current` points at, if any.
    pub fn current_id(&self) -> Result<Option<String>> {
        self.link_id(CURRENT)
    }

    /// The id `previous` points at, if any: what `rollback` returns to.
    pub fn previous_id(&self) -> Result<Option<String>> {
        self.link_id(PREVIOUS)
    }

    /// The record of install `id`.
    pub fn install_record(&self, id: &str) -> Result<InstallRecord> {
        let path = self.install_dir(id).join(RECORD);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NoSuchInstall {
                    id: id.to_string(),
                    path: self.root.join(INSTALLS_DIR),
                }
            } else {
                io_err("reading", &path)(e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::BadRecord { path, source })
    }

    /// The active install's record, if one is active. [`StoreError::CurrentGone`] when
    /// `current` names an install directory that no longer exists.
    pub fn current(&self) -> Result<Option<InstallRecord>> {
        match self.current_id()? {
            Some(id) => self.current_record(&id).map(Some),
            None => Ok(None),
        }
    }

    /// The record of `id`, read as the active install: a missing directory is a dangling
    /// `current` link.
    pub(crate) fn current_record(&self, id: &str) -> Result<InstallRecord> {
        match self.install_record(id) {
            Err(StoreError::NoSuchInstall { .. }) if !self.install_dir(id).exists() => {
                Err(StoreError::CurrentGone {
                    link: self.current_link(),
                    target: self.install_dir(id),
                    previous_usable: self.previous_usable(),
                })
            }
            other => other,
        }
    }

    /// Whether `previous` names an install other than the current one whose record is there:
    /// what `rollback` could return to.
    pub fn previous_usable(&self) -> bool {
        match (self.previous_id(), self.current_id()) {
            (Ok(Some(p)), Ok(c)) => {
                c.as_deref() != Some(p.as_str()) && self.install_record(&p).is_ok()
            }
            _ => false,
        }
    }

    /// Every complete install, oldest first.
    pub fn installs(&self) -> Result<Vec<InstallRecord>> {
        let dir = self.root.join(INSTALLS_DIR);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_id(&name) {
                continue;
            }
            if let Ok(record) = self.install_record(&name) {
                out.push(record);
            }
        }
        out.sort_by(|a, b| a.installed_at.cmp(&b.installed_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Problems with install `id` on disk: missing or unreadable files of its `lib/`, libraries
    /// reused from this machine that are gone, resolve to another file, or changed size or
    /// modification time since the install was built, and (for the active install) names of
    /// its `lib/` missing from the root's view (one `stat` each; nothing outside
    /// the root is read or touched otherwise). Empty when every file named in the record opens
    /// and every reused library is as recorded.
    pub fn check_install(&self, id: &str) -> Result<Vec<String>> {
        let record = self.install_record(id)?;
        let lib = self.install_dir(id).join("lib");
        let mut problems = Vec::new();
        for name in record.lib_files() {
            let path = lib.join(name);
            if let Err(e) = File::open(&path) {
                problems.push(format!("{}: {e}", path.display()));
            }
        }
        let ort = self.install_dir(id).join(&record.ort_library);
        if !ort.is_file() {
            problems.push(format!(
                "{}: the ONNX Runtime library is missing",
                ort.display()
            ));
        }
        problems.extend(record.system_libraries.iter().filter_map(reuse::check));
        let recorded: BTreeSet<&str> = record
            .system_libraries
            .iter()
            .map(|l| l.soname.as_str())
            .collect();
        problems.extend(
            record
                .reused_links
                .iter()
                .filter(|l| !recorded.contains(l.name.as_str()))
                .filter_map(|l| reuse::check_link(&lib, l)),
        );
        if self.current_id()?.as_deref() == Some(id) {
            problems.extend(view::missing(&self.root, &lib)?);
        }
        Ok(problems)
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

    fn open_lock_file(&self) -> Result<File> {
        let path = self.root.join(LOCK);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io_err("opening lock file", &path))
    }

    fn holder_pid(&self) -> Option<u32> {
        fs::read_to_string(self.root.join(LOCK))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Takes the install lock, or fails at once with [`StoreError::Locked`] naming the holder.
    pub fn try_lock(&self) -> Result<InstallLock<'_>> {
        let file = self.open_lock_file()?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => self.locked(file),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Locked {
                path: self.root.join(LOCK),
                pid: self.holder_pid(),
            }),
            Err(e) => Err(io_err("locking", self.root.join(LOCK))(e.into())),
        }
    }

    /// Takes the install lock, waiting for another holder; `on_wait` is called once, with the
    /// holder's pid when known, before waiting (to tell the user why nothing happens).
    pub fn lock(&self, on_wait: impl FnOnce(Option<u32>)) -> Result<InstallLock<'_>> {
        match self.try_lock() {
            Err(StoreError::Locked { pid, .. }) => {
                on_wait(pid);
                let file = self.open_lock_file()?;
                rustix::fs::flock(&file, FlockOperation::LockExclusive)
                    .map_err(|e| io_err("locking", self.root.join(LOCK))(e.into()))?;
                self.locked(file)
            }
            other => other,
        }
    }

    fn locked(&self, mut file: File) -> Result<InstallLock<'_>> {
        let path = self.root.join(LOCK);
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io_err("writing", &path))?;
        let mut cleaned = self.clean_temporaries()?;
        {
            let _store = self.store_lock()?;
            cleaned.extend(self.clean_store_temporaries(false)?);
        }
        self.repair_view()?;
        Ok(InstallLock {
            store: self,
            _file: file,
            cleaned: Mutex::new(cleaned),
        })
    }

    /// For a signal handler of a process being interrupted: when the lock file names this
    /// process (it holds the install lock), removes its temp and trash directories and temp
    /// links, as the next lock holder would; otherwise (waiting for another holder, or not
    /// installing) touches nothing and returns an empty list. Downloads in progress
    /// (`downloads/*.partial`) are kept, so the next run resumes them.
    pub fn clean_after_interrupt(root: &Path) -> Result<Vec<PathBuf>> {
        let holder = fs::read_to_string(root.join(LOCK)).unwrap_or_default();
        if holder.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return Ok(Vec::new());
        }
        Self::clean_after_interrupt_in(root, root)
    }

    /// [`Store::clean_after_interrupt`] for a root whose components are in the store at
    /// `home`: also removes this process's staging directories and leases there (both would
    /// be found stale by the next user of the store; this just does it now).
    pub fn clean_after_interrupt_in(root: &Path, home: &Path) -> Result<Vec<PathBuf>> {
        let holder = fs::read_to_string(root.join(LOCK)).unwrap_or_default();
        if holder.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return Ok(Vec::new());
        }
        let store = Self::existing(root).with_store_home(home);
        let mut cleaned = store.clean_temporaries()?;
        cleaned.extend(store.clean_store_temporaries(true)?);
        cleaned.extend(shared::remove_own_leases(home));
        Ok(cleaned)
    }

    /// `store.lock` of the store's home: held around staging commits, lease creation and
    /// component deletion. Taken after the root's lock, never before.
    pub(crate) fn store_lock(&self) -> Result<FileLock> {
        FileLock::take(&self.home.join(shared::STORE_LOCK), || {})
    }

    /// Takes the store's fetch lock, waiting (after calling `on_wait` once) while another
    /// install, of this app or another, downloads into the shared `downloads/`. Hold it from
    /// deciding what is missing until every download is stored: a second app that waited
    /// then finds the components in the store and downloads nothing.
    pub fn fetch_lock(&self, on_wait: impl FnOnce()) -> Result<FetchLock> {
        FileLock::take(&self.home.join(shared::FETCH_LOCK), on_wait).map(FetchLock::new)
    }

    /// [`Store::fetch_lock`], failing at once with [`StoreError::Locked`] while another
    /// install downloads (`--no-wait`).
    pub fn try_fetch_lock(&self) -> Result<FetchLock> {
        let path = self.home.join(shared::FETCH_LOCK);
        FileLock::try_take(&path)?
            .map(FetchLock::new)
            .ok_or(StoreError::Locked { path, pid: None })
    }

    /// Removes the store's leftovers of interrupted runs: staging directories of processes
    /// that are gone (or, with `own`, of this process, for its interrupt handler) and, with
    /// the store lock held (`own` false), trash directories of an interrupted deletion.
    fn clean_store_temporaries(&self, own: bool) -> Result<Vec<PathBuf>> {
        let dir = self.home.join(STORE_DIR);
        let listing = match fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        let me = std::process::id();
        let mut cleaned = Vec::new();
        for entry in listing {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = if name.starts_with(TRASH_PREFIX) {
                !own
            } else if name.starts_with(TMP_PREFIX) {
                match shared::staging_pid(&name) {
                    Some(pid) if own => pid == me,
                    Some(pid) => pid != me && !shared::pid_alive(pid),
                    // An older gpulibs' name: only the root's lock holder made those.
                    None => !own && self.is_self_contained(),
                }
            } else {
                false
            };
            if stale {
                let path = entry.path();
                remove_any(&path)?;
                cleaned.push(path);
            }
        }
        Ok(cleaned)
    }

    /// Brings the root's view in line with `current` (see `view.rs`): removes links an
    /// interrupted activation left dangling, adds the ones a root made before the view
    /// existed lacks. An active install whose record cannot be read is left alone (`status`
    /// reports it; `gc` and `rollback` must still work).
    fn repair_view(&self) -> Result<()> {
        let Ok(Some(id)) = self.current_id() else {
            return Ok(());
        };
        let Ok(record) = self.install_record(&id) else {
            return Ok(());
        };
        let lib = self.install_dir(&id).join("lib");
        if lib.is_dir() {
            view::ensure_unversioned_ort(&lib, base(&record.ort_library))?;
        }
        view::repair(&self.root, Some(&lib))
    }

    /// Removes what interrupted runs left: temp and trash directories, temp links. Only the
    /// lock holder creates them, so with the lock held every one of them is stale.
    fn clean_temporaries(&self) -> Result<Vec<PathBuf>> {
        let mut cleaned = Vec::new();
        // The shared store's temporaries are other processes' too: see
        // `clean_store_temporaries`. A root's own old `store/` gets no new ones.
        let dirs = [self.legacy_store(), Some(self.root.join(INSTALLS_DIR))];
        for dir in dirs.into_iter().flatten() {
            let listing = match fs::read_dir(&dir) {
                Ok(l) => l,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("listing", &dir)(e)),
            };
            for entry in listing {
                let entry = entry.map_err(io_err("listing", &dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(TMP_PREFIX) || name.starts_with(TRASH_PREFIX) {
                    let path = entry.path();
                    remove_any(&path)?;
                    cleaned.push(path);
                }
            }
        }
        for entry in fs::read_dir(&self.root).map_err(io_err("listing", &self.root))? {
            let entry = entry.map_err(io_err("listing", &self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Only the temporary names gpulibs writes through, never a file that merely
            // contains `.tmp` in its name.
            if owner::is_root_temp(&name) {
                let path = entry.path();
                remove_any(&path)?;
                cleaned.push(path);
            }
        }
        Ok(cleaned)
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

fn check_sha256(sha256: &str) -> Result<()> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(StoreError::BadSha256 {
            sha256: sha256.to_string(),
        })
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

/// The exclusive right to change the root, held until dropped (`flock` on `<root>/lock`, so
/// the kernel releases it when the process dies, `kill -9` included).
pub struct InstallLock<'s> {
    store: &'s Store,
    _file: File,
    cleaned: Mutex<Vec<PathBuf>>,
}

impl Drop for InstallLock<'_> {
    /// Unlocks explicitly: closing the descriptor is not enough while a child process, forked
    /// by another thread and not yet at `exec`, holds a copy of it (the lock belongs to the
    /// open file description).
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self._file, FlockOperation::Unlock);
    }
}

impl std::fmt::Debug for InstallLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallLock")
            .field("root", &self.store.root)
            .finish()
    }
}

impl<'s> InstallLock<'s> {
    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// Starts unpacking the component whose archive has `sha256` into a temp directory.
    /// Checks free space for `limits.max_unpacked_bytes` first.
    pub fn stage_component(&self, sha256: &str, limits: UnpackLimits) -> Result<Stager<'_>> {
        check_sha256(sha256)?;
        self.store.check_space(limits.max_unpacked_bytes)?;
        let tmp = self.store.home.join(STORE_DIR).join(format!(
            "{TMP_PREFIX}{sha256}-{}-{}",
            std::process::id(),
            shared::next_serial()
        ));
        if tmp.exists() {
            remove_any(&tmp)?;
        }
        let tree = tmp.join(COMPONENT_TREE);
        // Made before the directory, so that a failure from here on removes it (the shared
        // store's next user cleans only what processes that are gone left behind).
        let stager = Stager {
            store: self.store,
            sha256: sha256.to_string(),
            tmp,
            limits,
            unpacked: None,
            committed: false,
        };
        fs::create_dir_all(&tree).map_err(io_err("creating", &tree))?;
        self.store.step(FaultPoint::StagingStarted)?;
        Ok(stager)
    }

    /// Builds a new install (a generation) from stored components: `installs/<id>/lib` holds
    /// every shared library of every component, hard-linked from the store, with the
    /// components' SONAME symlinks recreated beside them; `install.json` records it. Not
    /// active until [`activate`](Self::activate).
    pub fn new_install(&self, spec: &InstallSpec) -> Result<InstallRecord> {
        let store = self.store;
        check_app_name(&spec.app)?;
        let mut plan = lib_plan(store, spec)?;
        // The unversioned name the seed's consumers load (`<root>/libonnxruntime.so`), next to
        // a versioned ONNX Runtime (a wheel's `libonnxruntime.so.1.23.2`).
        let ort_owner = plan
            .iter()
            .find(|p| p.name == spec.ort_library)
            .map(|p| p.sha256.clone());
        if let Some(sha256) = ort_owner {
            if !plan.iter().any(|p| p.name == view::ORT_UNVERSIONED) {
                plan.push(LibEntry {
                    name: view::ORT_UNVERSIONED.to_string(),
                    sha256,
                    how: Placement::Symlink(spec.ort_library.clone()),
                });
            }
        }
        // `lib_plan` only makes bare names; a `/` or `..` would write outside `lib/`. Checked
        // before anything is created.
        for p in &plan {
            let target = match &p.how {
                Placement::Symlink(t) => Some(t),
                Placement::File(_) => None,
            };
            for name in std::iter::once(&p.name).chain(target) {
                if let Some(why) = link_name_problem(name) {
                    return Err(StoreError::UnsafeLink {
                        component: p.sha256.clone(),
                        name: name.clone(),
                        why,
                    });
                }
            }
        }
        if !plan.iter().any(|p| p.name == spec.ort_library) {
            return Err(StoreError::NoOrtLibrary {
                name: spec.ort_library.clone(),
            });
        }
        // Read outside the root, before anything is created: a vanished or unreadable
        // library fails the install here, with nothing to clean up.
        let system_libraries = reuse::record_all(&spec.system_libraries)?;
        let taken: BTreeSet<String> = plan.iter().map(|p| p.name.clone()).collect();
        let reused_links = reuse::link_plan(
            &system_libraries,
            &reuse::listings(&system_libraries),
            &taken,
        );
        let now = now_secs();
        let id = self.unique_id(now, spec);
        let installs = store.root.join(INSTALLS_DIR);
        let tmp = installs.join(format!("{TMP_PREFIX}{id}"));
        let lib = tmp.join("lib");
        fs::create_dir_all(&lib).map_err(io_err("creating", &lib))?;
        store.step(FaultPoint::InstallStarted)?;

        let mut files: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for p in &plan {
            let dest = lib.join(&p.name);
            match &p.how {
                Placement::File(src) => link_file(src, &dest, &store.root)?,
                Placement::Symlink(target) => std::os::unix::fs::symlink(target, &dest)
                    .map_err(io_err("creating symlink", &dest))?,
            }
            files
                .entry(p.sha256.as_str())
                .or_default()
                .push(p.name.clone());
            store.step(FaultPoint::FileLinked)?;
        }
        // Reused libraries, by absolute path: `LD_LIBRARY_PATH=<root>` then finds them too.
        for l in &reused_links {
            let dest = lib.join(&l.name);
            std::os::unix::fs::symlink(&l.target, &dest)
                .map_err(io_err("creating symlink", &dest))?;
        }

        let record = InstallRecord {
            schema_version: RECORD_SCHEMA_VERSION,
            id: id.clone(),
            app: spec.app.clone(),
            variant: spec.variant.clone(),
            release: spec.release.clone(),
            components: spec
                .components
                .iter()
                .map(|c| ComponentRecord {
                    id: c.id.clone(),
                    version: c.version.clone(),
                    sha256: c.sha256.clone(),
                    source: c.source.clone(),
                    files: files.remove(c.sha256.as_str()).unwrap_or_default(),
                })
                .collect(),
            coverage: spec.coverage.clone(),
            gpu: spec.gpu.clone(),
            driver: spec.driver.clone(),
            requires_driver_cuda: spec.requires_driver_cuda,
            installed_at: rfc3339_utc(now),
            ort_library: format!("lib/{}", spec.ort_library),
            system_libraries,
            reused_links,
            verification: None,
        };
        let json = serde_json::to_vec_pretty(&record).expect("plain structs serialize");
        fsx::write_atomic(&tmp.join(RECORD), &json)?;
        store.step(FaultPoint::RecordWritten)?;
        fsx::sync_dir(&lib)?;
        let dest = installs.join(&id);
        fs::rename(&tmp, &dest).map_err(io_err("renaming into place", &dest))?;
        fsx::sync_dir(&installs)?;
        store.step(FaultPoint::InstallCommitted)?;
        Ok(record)
    }

    fn unique_id(&self, now: u64, spec: &InstallSpec) -> String {
        let mut h = Sha256::new();
        h.update(spec.variant.as_bytes());
        for c in &spec.components {
            h.update(c.sha256.as_bytes());
        }
        for l in &spec.system_libraries {
            h.update(l.soname.as_bytes());
            h.update(l.path.as_os_str().as_encoded_bytes());
        }
        let digest = hex(&h.finalize());
        let variant: String = spec
            .variant
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        let base = format!("{}-{}-{}", compact_utc(now), variant, &digest[..12]);
        let mut id = base.clone();
        let mut n = 2;
        while self.store.install_dir(&id).exists() {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }

    /// Makes install `id` the active one: `previous` is pointed at the install that was
    /// current, then `current` at `id`, each by one `rename(2)`. Rewrites the seed-compatible
    /// receipt if one was written before.
    pub fn activate(&self, id: &str) -> Result<InstallRecord> {
        let store = self.store;
        let record = store.install_record(id)?;
        let old = store.current_id()?;
        let want = self.view_names(&record)?;
        if old.as_deref() != Some(id) {
            if let Some(old) = &old {
                self.point(PREVIOUS, old, FaultPoint::PreviousLinkTemp)?;
                store.step(FaultPoint::PreviousSwitched)?;
            }
            self.point(CURRENT, id, FaultPoint::CurrentLinkTemp)?;
            store.step(FaultPoint::CurrentSwitched)?;
        }
        self.prune_view(&want)?;
        self.refresh_seed_info(&record)?;
        Ok(record)
    }

    /// The first half of switching the root's view to `record` (see `view.rs`): its `lib/`
    /// gets the unversioned ONNX Runtime name if it lacks it, and the root a link
    /// `<name> -> current/lib/<name>` for each of its names it lacks. Returns the names.
    fn view_names(&self, record: &InstallRecord) -> Result<BTreeSet<String>> {
        let store = self.store;
        let lib = store.install_dir(&record.id).join("lib");
        view::ensure_unversioned_ort(&lib, base(&record.ort_library))?;
        let want = view::wanted(&lib)?;
        view::link_names(&store.root, &want, || store.step(FaultPoint::ViewLinked))?;
        Ok(want)
    }

    /// The second half, after `current` switched: links of names `want` lacks go.
    fn prune_view(&self, want: &BTreeSet<String>) -> Result<()> {
        view::prune(&self.store.root, want)?;
        fsx::sync_dir(&self.store.root)?;
        self.store.step(FaultPoint::ViewPruned)
    }

    fn point(&self, link: &str, id: &str, between: FaultPoint) -> Result<()> {
        let target = Path::new(INSTALLS_DIR).join(id);
        fsx::replace_symlink(&self.store.root.join(link), &target, || {
            self.store.step(between)
        })
    }

    /// Makes `previous` current again and the current install `previous`, so a second
    /// rollback undoes the first.
    pub fn rollback(&self) -> Result<InstallRecord> {
        let store = self.store;
        let no_previous = || StoreError::NoPrevious {
            root: store.root.clone(),
        };
        let previous = store.previous_id()?.ok_or_else(no_previous)?;
        let current = store.current_id()?;
        if current.as_deref() == Some(previous.as_str()) {
            return Err(no_previous());
        }
        let record = store.install_record(&previous)?;
        let want = self.view_names(&record)?;
        // `current` first: a crash in between leaves both links on the rolled-back-to install,
        // which is consistent; the other order could leave `current` on the old one and
        // `previous` lost.
        self.point(CURRENT, &previous, FaultPoint::CurrentLinkTemp)?;
        store.step(FaultPoint::CurrentSwitched)?;
        if let Some(current) = current {
            self.point(PREVIOUS, &current, FaultPoint::PreviousLinkTemp)?;
            store.step(FaultPoint::PreviousSwitched)?;
        }
        self.prune_view(&want)?;
        self.refresh_seed_info(&record)?;
        Ok(record)
    }

    /// Rewrites install `id`'s `install.json` with `verification` (atomically: a reader sees
    /// the old record or the new one). Returns the new record.
    pub fn record_verification(
        &self,
        id: &str,
        verification: crate::record::VerificationRecord,
    ) -> Result<InstallRecord> {
        let mut record = self.store.install_record(id)?;
        record.verification = Some(verification);
        let json = serde_json::to_vec_pretty(&record).expect("plain structs serialize");
        fsx::write_atomic(&self.store.install_dir(id).join(RECORD), &json)?;
        Ok(record)
    }

    /// Deletes install `id`, one that was built but not activated (a failed verification), so
    /// that only its components stay, in the store, for the next install to reuse. `current`
    /// and `previous` are never deleted: returns `false` for them and for an unknown id.
    pub fn discard_install(&self, id: &str) -> Result<bool> {
        let store = self.store;
        let pinned = [store.current_id()?, store.previous_id()?];
        if !valid_id(id) || pinned.iter().flatten().any(|p| p == id) {
            return Ok(false);
        }
        let dir = store.install_dir(id);
        if !dir.is_dir() {
            return Ok(false);
        }
        remove_tree_aside(
            &dir,
            &format!("{TRASH_PREFIX}{id}"),
            &mut DiskUsage::default(),
        )?;
        Ok(true)
    }

    /// Records that this install is about to link `components` into a new generation, so that
    /// no `gc` or `remove` of any app deletes them from the shared store until the lease is
    /// dropped (after the generation, whose record names them, exists). Taken under the
    /// store lock, like every deletion, so a deletion either saw the lease or finished before
    /// it: then the components are missing and are fetched again.
    pub fn lease(&self, components: &[String]) -> Result<Lease> {
        let _store = self.store.store_lock()?;
        shared::write_lease(&self.store.home, &self.store.root, components)
    }

    /// Removes installs other than `current`, `previous` and the `keep` newest others, then
    /// components no remaining install of any app uses. Never touches anything outside the
    /// root and the store, nor anything in them that is not an install or a component;
    /// refuses a root without the marker ([`StoreError::NotARoot`]).
    ///
    /// In the shared store a component is deleted only when no generation of any registered
    /// root and no live lease (an install in progress) uses it, and only while every
    /// registered root could be read; a registered root that no longer exists is dropped from
    /// the registry. A root's own old `store/` (made before the store was shared) is
    /// collected by this root's generations alone.
    pub fn gc(&self, keep: usize) -> Result<GcReport> {
        let store = self.store;
        owner::claim(&store.root)?;
        let mut report = GcReport {
            removed_temporaries: std::mem::take(
                &mut *self.cleaned.lock().unwrap_or_else(|p| p.into_inner()),
            ),
            store: store.home.join(STORE_DIR),
            ..GcReport::default()
        };
        let mut usage = DiskUsage::default();
        let pinned: BTreeSet<String> = [store.current_id()?, store.previous_id()?]
            .into_iter()
            .flatten()
            .collect();
        let mut others: Vec<InstallRecord> = store
            .installs()?
            .into_iter()
            .filter(|r| !pinned.contains(&r.id))
            .collect();
        // Newest first; keep the first `keep`.
        others.reverse();
        let mut kept: BTreeSet<String> = pinned.clone();
        kept.extend(others.iter().take(keep).map(|r| r.id.clone()));

        let installs = store.root.join(INSTALLS_DIR);
        for entry in fs::read_dir(&installs).map_err(io_err("listing", &installs))? {
            let entry = entry.map_err(io_err("listing", &installs))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // An install is a directory gpulibs made with its record in it; anything else
            // under `installs/` is not gpulibs' to delete.
            let is_install = fs::symlink_metadata(entry.path().join(RECORD))
                .is_ok_and(|m| m.file_type().is_file());
            if !valid_id(&name) || kept.contains(&name) || !is_install {
                continue;
            }
            remove_tree_aside(&entry.path(), &format!("{TRASH_PREFIX}{name}"), &mut usage)?;
            report.removed_installs.push(name);
        }

        let mut mine = BTreeSet::new();
        for id in &kept {
            if let Ok(r) = store.install_record(id) {
                mine.extend(r.components.into_iter().map(|c| c.sha256));
            }
        }
        // The root's own old store: only this root's generations link into it, and this
        // root's lock is held.
        if let Some(legacy) = store.legacy_store() {
            report
                .removed_components
                .extend(collect_components(&legacy, &mine, &mut usage)?);
            if legacy.exists() {
                remove_dir_if_empty(&legacy)?;
            }
        }
        let refs = store.collect_shared(&mut usage, &mut report.removed_components)?;
        let root = shared::canonical_root(&store.root);
        report.other_roots = refs.roots.into_iter().filter(|r| *r != root).collect();
        report.unreadable_roots = refs.unreadable;
        report.dropped_roots = refs.dropped;
        report.kept_for_others = refs
            .used
            .iter()
            .filter(|sha| !mine.contains(*sha) && store.home.join(STORE_DIR).join(sha).is_dir())
            .cloned()
            .collect();
        report.freed_bytes = usage.freed();
        report.removed_installs.sort();
        report.removed_components.sort();
        Ok(report)
    }

    /// Deletes what gpulibs put in the root, and the seed-compatible receipt if gpulibs wrote it
    /// and it is unchanged since. Only entries gpulibs makes are deleted (its components,
    /// installs, downloads, links, lock, records and their temporaries); anything else is left
    /// where it is and listed in [`RemoveReport::kept`], and the root directory goes only if
    /// it is empty then. Refuses a directory without the marker unless it is laid out exactly
    /// as an earlier gpulibs' root ([`StoreError::NotARoot`], nothing deleted).
    ///
    /// The root leaves the store's registry, and the shared store's components that no other
    /// app's generation (nor an install in progress) uses are deleted; those another app uses
    /// stay ([`RemoveReport::kept_for_others`]). A self-contained root's store goes with it
    /// once no other registered root uses it.
    pub fn remove(self) -> Result<RemoveReport> {
        let root = self.store.root.clone();
        owner::claim(&root)?;
        let listing = owner::list_root(&root)?;
        let mut report = RemoveReport {
            root: root.clone(),
            ..RemoveReport::default()
        };
        let mut usage = DiskUsage::default();
        let mine: BTreeSet<String> = self
            .store
            .installs()
            .unwrap_or_default()
            .into_iter()
            .flat_map(|r| r.components.into_iter().map(|c| c.sha256))
            .collect();
        if let Some(marker) = self.seed_marker() {
            match fs::read(&marker.path) {
                Ok(bytes) if hex(&Sha256::digest(&bytes)) == marker.sha256 => {
                    fs::remove_file(&marker.path).map_err(io_err("removing", &marker.path))?;
                    report.seed_info_removed = Some(marker.path);
                }
                Ok(_) => report.seed_info_kept = Some(marker.path),
                Err(_) => {}
            }
        }
        let self_contained = self.store.is_self_contained();
        // The store's own entries, when the store lives in this root: handled after the
        // root's generations are gone, as other roots may use it.
        let store_entry = |name: &str| self_contained && owner::is_store_home_entry(name);
        let not_store: Vec<&owner::Listed> =
            listing.iter().filter(|e| !store_entry(&e.name)).collect();
        remove_own(&root, &not_store, &mut usage, &mut report.kept)?;
        shared::unregister(&self.store.home, &root, &mut usage)?;
        let refs = self
            .store
            .collect_shared(&mut usage, &mut report.removed_components)?;
        report.kept_for_others = mine
            .iter()
            .filter(|sha| refs.used.contains(*sha))
            .cloned()
            .collect();
        report.unreadable_roots = refs.unreadable.clone();
        if self_contained {
            // The store lived here: it goes when no other root uses it and no install is
            // in progress; else it stays, and so does the root directory.
            let others = refs
                .roots
                .iter()
                .any(|r| *r != shared::canonical_root(&root));
            // Listed again: the registry and the store lock were written since.
            let listing = owner::list_root(&root)?;
            let store: Vec<&owner::Listed> =
                listing.iter().filter(|e| store_entry(&e.name)).collect();
            if others || refs.leases > 0 || !refs.unreadable.is_empty() {
                report.kept.extend(store.iter().map(|e| root.join(&e.name)));
            } else {
                remove_own(&root, &store, &mut usage, &mut report.kept)?;
            }
        }
        report.removed_components.sort();
        for last in [ROOT_MARKER, LOCK] {
            usage.add_tree(&root.join(last));
            remove_any(&root.join(last))?;
        }
        report.freed_bytes = usage.freed();
        drop(self);
        report.kept.sort();
        // Another process may have queued on the lock and recreated it; then it stays.
        report.root_removed = report.kept.is_empty() && remove_dir_if_empty(&root)?;
        Ok(report)
    }

    /// Writes the seed-compatible receipt for the active install to `path`
    /// (`$XDG_CONFIG_HOME/<app>/gpu-package-info.json`, see [`seed_info_path`]) and remembers
    /// it, so activation and rollback keep it current and `remove` deletes it.
    pub fn write_seed_info(&self, path: &Path) -> Result<()> {
        let record = self
            .store
            .current()?
            .ok_or_else(|| StoreError::NothingInstalled {
                root: self.store.root.clone(),
            })?;
        self.write_seed_file(path, &record)
    }

    fn write_seed_file(&self, path: &Path, record: &InstallRecord) -> Result<()> {
        let libs = self.store.current_link().join("lib");
        let info = SeedPackageInfo::from_record(record, &libs.to_string_lossy());
        let json = serde_json::to_vec_pretty(&info).expect("plain structs serialize");
        let dir = fsx::parent(path);
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        fsx::write_atomic(path, &json)?;
        let marker = SeedMarker {
            path: path.to_path_buf(),
            sha256: hex(&Sha256::digest(&json)),
        };
        let marker = serde_json::to_vec_pretty(&marker).expect("plain structs serialize");
        fsx::write_atomic(&self.store.root.join(SEED_MARKER), &marker)?;
        self.store.step(FaultPoint::SeedInfoWritten)
    }

    fn seed_marker(&self) -> Option<SeedMarker> {
        let bytes = fs::read(self.store.root.join(SEED_MARKER)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn refresh_seed_info(&self, record: &InstallRecord) -> Result<()> {
        match self.seed_marker() {
            Some(marker) => self.write_seed_file(&marker.path, record),
            None => Ok(()),
        }
    }
}

/// One name in an install's `lib/`.
struct LibEntry {
    name: String,
    sha256: String,
    how: Placement,
}

enum Placement {
    /// Hard-link this store file.
    File(PathBuf),
    /// A symlink with this (same-directory) target.
    Symlink(String),
}

/// Which names each component contributes to `lib/`, and how.
fn lib_plan(store: &Store, spec: &InstallSpec) -> Result<Vec<LibEntry>> {
    let mut plan: Vec<LibEntry> = Vec::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for c in &spec.components {
        let meta = store.component(&c.sha256)?;
        let report = UnpackReport {
            entries: meta.entries.clone(),
            unpacked_bytes: meta.unpacked_bytes,
        };
        let tree = store.component_dir(&c.sha256).join(COMPONENT_TREE);
        check_declared_files(&c.id, &tree, &meta, &c.files)?;
        // Files first, so links can name them.
        let mut local: BTreeMap<String, String> = BTreeMap::new(); // resolved path -> lib name
        let mut entries: Vec<&unpack::UnpackedEntry> = meta
            .entries
            .iter()
            .filter(|e| e.kind != EntryKind::Dir && is_library_name(base(&e.path)))
            .collect();
        entries.sort_by_key(|e| (e.kind != EntryKind::File, e.path.clone()));
        for e in entries {
            let name = base(&e.path).to_string();
            if let Some(first) = owner.get(&name) {
                return Err(StoreError::NameClash {
                    name,
                    first: first.clone(),
                    second: c.id.clone(),
                });
            }
            let how = match e.kind {
                EntryKind::File => {
                    local.insert(e.path.clone(), name.clone());
                    Placement::File(tree.join(&e.path))
                }
                _ => match resolve_in_report(&report, &e.path) {
                    Some((resolved, EntryKind::File)) => match local.get(&resolved) {
                        Some(target) => Placement::Symlink(target.clone()),
                        // A link to a file that is not itself a library name: install the
                        // file under the link's name.
                        None => Placement::File(tree.join(&resolved)),
                    },
                    // Links to directories or to nothing installable are not libraries.
                    _ => continue,
                },
            };
            owner.insert(name.clone(), c.id.clone());
            plan.push(LibEntry {
                name,
                sha256: c.sha256.clone(),
                how,
            });
        }
        for link in &c.links {
            // Checked again here, where the link is made (the manifest's validation said so
            // first): a link is a bare name in `lib/` to a bare name in `lib/`.
            for name in [&link.name, &link.target] {
                if let Some(why) = link_name_problem(name) {
                    return Err(StoreError::UnsafeLink {
                        component: c.id.clone(),
                        name: name.clone(),
                        why,
                    });
                }
            }
            if !local.values().any(|file| *file == link.target) {
                return Err(StoreError::LinkTarget {
                    component: c.id.clone(),
                    name: link.name.clone(),
                    target: link.target.clone(),
                });
            }
            match owner.get(&link.name) {
                // The archive made it already.
                Some(first) if *first == c.id => continue,
                Some(first) => {
                    return Err(StoreError::NameClash {
                        name: link.name.clone(),
                        first: first.clone(),
                        second: c.id.clone(),
                    })
                }
                None => {}
            }
            owner.insert(link.name.clone(), c.id.clone());
            plan.push(LibEntry {
                name: link.name.clone(),
                sha256: c.sha256.clone(),
                how: Placement::Symlink(link.target.clone()),
            });
        }
    }
    Ok(plan)
}

/// Why `name` is not a bare file name for `lib/`, if it is not.
fn link_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.contains('/') {
        Some("it contains `/`")
    } else if name == "." || name == ".." {
        Some("`.` and `..` name directories")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    }
}

/// Every file the manifest lists for a component is in its stored tree: a regular file with
/// the listed size and sha256 (the digest recorded when it was unpacked, or computed now for a
/// component stored by an older gpulibs).
fn check_declared_files(
    component: &str,
    tree: &Path,
    meta: &StoredComponent,
    files: &[crate::record::DeclaredFile],
) -> Result<()> {
    let key = |p: &str| -> String {
        p.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/")
    };
    for f in files {
        let path = key(&f.path);
        let Some(entry) = meta
            .entries
            .iter()
            .find(|e| e.kind == EntryKind::File && e.path == path)
        else {
            return Err(StoreError::ListedFileMissing {
                component: component.to_string(),
                path: f.path.clone(),
            });
        };
        let mismatch = |what, expected: String, actual: String| StoreError::ListedFileMismatch {
            component: component.to_string(),
            path: f.path.clone(),
            what,
            expected,
            actual,
        };
        if entry.size != f.size {
            return Err(mismatch("size", f.size.to_string(), entry.size.to_string()));
        }
        let actual = match &entry.sha256 {
            Some(sha) => sha.clone(),
            None => {
                let file = tree.join(&entry.path);
                let mut hasher = Sha256::new();
                let mut reader = File::open(&file).map_err(io_err("opening", &file))?;
                io::copy(&mut reader, &mut hasher).map_err(io_err("reading", &file))?;
                hex(&hasher.finalize())
            }
        };
        if actual != f.sha256 {
            return Err(mismatch("sha256", f.sha256.clone(), actual));
        }
    }
    Ok(())
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Hard-links `src` to `dest`. Hard links keep each install self-contained (`$ORIGIN` is the
/// install's `lib/`, whatever the loader does with symlinks) at no extra space; where the file
/// system refuses them, a relative symlink into the store is the fallback.
fn link_file(src: &Path, dest: &Path, root: &Path) -> Result<()> {
    match fs::hard_link(src, dest) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(
                    libc_errno::EXDEV
                        | libc_errno::EPERM
                        | libc_errno::EMLINK
                        | libc_errno::ENOTSUP
                )
            ) =>
        {
            // Relative inside the root (`installs/<id>/lib/x` up to the root); absolute into a
            // shared store elsewhere.
            let target = match src.strip_prefix(root) {
                Ok(rel) => Path::new("../../..").join(rel),
                Err(_) => src.to_path_buf(),
            };
            std::os::unix::fs::symlink(&target, dest).map_err(io_err("creating symlink", dest))
        }
        Err(e) => Err(io_err("hard-linking", dest)(e)),
    }
}

/// Deletes the listed entries of `root` that gpulibs made, links and files first (a reader
/// then finds nothing active rather than a half-deleted install), then the directories' own
/// entries; the marker and the lock are left for last, to the caller. What gpulibs did not
/// make is added to `kept`.
fn remove_own(
    root: &Path,
    listing: &[&owner::Listed],
    usage: &mut DiskUsage,
    kept: &mut Vec<PathBuf>,
) -> Result<()> {
    let mut order: Vec<&owner::Listed> = listing.to_vec();
    order.sort_by_key(|e| owner::entry_of(e) != Some(RootEntry::Plain));
    for e in order {
        let path = root.join(&e.name);
        match owner::entry_of(e) {
            None => kept.push(path),
            Some(RootEntry::Plain) if e.name == LOCK || e.name == ROOT_MARKER => {}
            Some(RootEntry::Plain) => {
                usage.add_tree(&path);
                remove_any(&path)?;
            }
            Some(dir) => {
                for child in &e.children {
                    let path = path.join(&child.name);
                    if owner::own_child(dir, child) {
                        usage.add_tree(&path);
                        remove_any(&path)?;
                    } else {
                        kept.push(path);
                    }
                }
                remove_dir_if_empty(&path)?;
            }
        }
    }
    Ok(())
}

/// Renames `path` aside, notes its files in `usage`, then deletes it.
fn remove_tree_aside(path: &Path, trash_name: &str, usage: &mut DiskUsage) -> Result<()> {
    let trash = fsx::parent(path).join(trash_name);
    fs::rename(path, &trash).map_err(io_err("moving aside", path))?;
    usage.add_tree(&trash);
    fs::remove_dir_all(&trash).map_err(io_err("removing", &trash))
}

/// Deletes the components in `dir` (directories named by a sha256) that `used` does not
/// name; returns their names.
fn collect_components(
    dir: &Path,
    used: &BTreeSet<String>,
    usage: &mut DiskUsage,
) -> Result<Vec<String>> {
    let listing = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut removed = Vec::new();
    for entry in listing {
        let entry = entry.map_err(io_err("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if check_sha256(&name).is_err() || used.contains(&name) || !is_dir {
            continue;
        }
        remove_tree_aside(&entry.path(), &format!("{TRASH_PREFIX}{name}"), usage)?;
        removed.push(name);
    }
    Ok(removed)
}

impl Store {
    /// Deletes, under the store lock, every component of the shared store that no registered
    /// root and no live lease uses (nothing while a registered root cannot be read).
    fn collect_shared(
        &self,
        usage: &mut DiskUsage,
        removed: &mut Vec<String>,
    ) -> Result<shared::References> {
        let _store = self.store_lock()?;
        self.clean_store_temporaries(false)?;
        let refs = shared::references(&self.home)?;
        if refs.unreadable.is_empty() {
            removed.extend(collect_components(
                &self.home.join(STORE_DIR),
                &refs.used,
                usage,
            )?);
        }
        Ok(refs)
    }
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

/// A component being unpacked into `store/.tmp-<sha256>-<pid>`. Dropped without
/// [`commit`](Self::commit), it removes its temp directory.
pub struct Stager<'l> {
    store: &'l Store,
    sha256: String,
    tmp: PathBuf,
    limits: UnpackLimits,
    unpacked: Option<(ArchiveFormat, UnpackReport)>,
    committed: bool,
}

impl std::fmt::Debug for Stager<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stager")
            .field("sha256", &self.sha256)
            .field("tmp", &self.tmp)
            .finish()
    }
}

impl Stager<'_> {
    /// The directory files are unpacked into.
    pub fn dir(&self) -> PathBuf {
        self.tmp.join(COMPONENT_TREE)
    }

    fn unpack_err(&self, source: UnpackError) -> StoreError {
        StoreError::Unpack {
            sha256: self.sha256.clone(),
            path: self.dir(),
            source: source.with_room_evidence(),
        }
    }

    /// Unpacks a tar archive (compressed as `format` says) from `archive`, hashing the raw
    /// bytes as they pass; the sha256 must be the one this stager was opened with.
    pub fn unpack_tar(
        &mut self,
        archive: impl Read,
        format: ArchiveFormat,
    ) -> Result<&UnpackReport> {
        self.unpack_tar_checked(archive, format, ArchiveCheck::Hash)
    }

    /// [`unpack_tar`](Self::unpack_tar), with `check` saying who proves that the bytes are the
    /// ones this stager's sha256 names. With [`ArchiveCheck::VerifiedByReader`] the stager does
    /// not hash them again; it still counts them against the archive size and reads `archive`
    /// to its end, which that guarantee makes the proof.
    pub fn unpack_tar_checked(
        &mut self,
        archive: impl Read,
        format: ArchiveFormat,
        check: ArchiveCheck,
    ) -> Result<&UnpackReport> {
        let mut raw = HashingReader::new(archive, self.limits.max_archive_bytes);
        raw.hashing = check == ArchiveCheck::Hash;
        let limits = self.limits.clone();
        let stream_limit = limits
            .max_unpacked_bytes
            .saturating_add(limits.max_entries.saturating_mul(1536))
            .saturating_add(1 << 20);
        let dest = self.dir();
        let hook_error: std::cell::RefCell<Option<StoreError>> = Default::default();
        let store = self.store;
        let mut after_entry = |_: usize| -> io::Result<()> {
            store.step(FaultPoint::EntryUnpacked).map_err(|e| {
                *hook_error.borrow_mut() = Some(e);
                io::Error::other("stopped by the step hook")
            })
        };
        let result = {
            let decompressed: Box<dyn Read + '_> = match format {
                ArchiveFormat::Tar => Box::new(&mut raw),
                ArchiveFormat::TarGzip => Box::new(flate2::read::MultiGzDecoder::new(&mut raw)),
                ArchiveFormat::TarZstd => {
                    zstd_frames(&mut raw).map_err(|e| self.unpack_err(UnpackError::Read(e)))?
                }
                ArchiveFormat::TarXz => Box::new(lzma_rust2::XzReader::new(&mut raw, true)),
                ArchiveFormat::Wheel => {
                    return Err(self.unpack_err(UnpackError::Unsupported {
                        entry: String::new(),
                        detail: "a wheel is unpacked from its file with unpack_wheel".into(),
                    }))
                }
            };
            let mut limited = LimitedReader {
                inner: decompressed,
                left: stream_limit,
                tripped: false,
            };
            let r = unpack::unpack_tar_observed(&mut limited, &dest, &limits, &mut after_entry)
                .and_then(|report| {
                    // Trailing zero blocks and padding belong to the archive's hash.
                    io::copy(&mut limited, &mut io::sink()).map_err(UnpackError::Read)?;
                    Ok(report)
                });
            match r {
                Err(_) if limited.tripped => Err(UnpackError::StreamTooLong {
                    limit: stream_limit,
                }),
                other => other,
            }
        };
        if let Some(e) = hook_error.into_inner() {
            return Err(e);
        }
        let result = match result {
            Err(_) if raw.tripped => Err(UnpackError::ArchiveTooLong {
                actual: raw.count,
                limit: self.limits.max_archive_bytes.unwrap_or(0),
            }),
            other => other,
        };
        let report = result.map_err(|e| self.unpack_err(e))?;
        io::copy(&mut raw, &mut io::sink()).map_err(|e| self.unpack_err(UnpackError::Read(e)))?;
        if raw.tripped {
            return Err(self.unpack_err(UnpackError::ArchiveTooLong {
                actual: raw.count,
                limit: self.limits.max_archive_bytes.unwrap_or(0),
            }));
        }
        match check {
            ArchiveCheck::Hash => self.verified(raw.finish(), format, report),
            ArchiveCheck::VerifiedByReader => Ok(&self.unpacked.insert((format, report)).1),
        }
    }

    /// Unpacks the members of the wheel file at `wheel` that `select` accepts (usually
    /// [`unpack::wheel_library_member`]), after checking the file's sha256.
    pub fn unpack_wheel(
        &mut self,
        wheel: &Path,
        select: &dyn Fn(&str) -> bool,
    ) -> Result<&UnpackReport> {
        let file = File::open(wheel).map_err(io_err("opening", wheel))?;
        let mut raw = HashingReader::new(file, self.limits.max_archive_bytes);
        io::copy(&mut raw, &mut io::sink()).map_err(io_err("reading", wheel))?;
        if raw.tripped {
            return Err(self.unpack_err(UnpackError::ArchiveTooLong {
                actual: raw.count,
                limit: self.limits.max_archive_bytes.unwrap_or(0),
            }));
        }
        let actual = raw.finish();
        if actual != self.sha256 {
            return Err(StoreError::HashMismatch {
                expected: self.sha256.clone(),
                actual,
            });
        }
        let report = unpack::unpack_wheel(wheel, &self.dir(), select, &self.limits)
            .map_err(|e| self.unpack_err(e))?;
        self.store.step(FaultPoint::EntryUnpacked)?;
        self.verified(actual, ArchiveFormat::Wheel, report)
    }

    /// Unpacks a zip (a wheel) while it streams, in one pass: `stream` feeds every member, in
    /// archive order, to [`ZipStream::member`] (which writes the ones `select` accepts, under
    /// the same rules and limits as [`unpack_wheel`](Self::unpack_wheel)), and returns the
    /// members as they streamed and the central directory that followed them
    /// (`gpulibs_fetch::read_zip_stream_listed` gives both). The component is refused unless
    /// the directory lists exactly the streamed members, each at its offset with its size and
    /// CRC-32 — what `pip`, which trusts the directory, would install.
    ///
    /// The stager never sees the raw archive, so it cannot hash it: this is only for a caller
    /// whose reader verifies the sha256 while streaming and ends only when it matched
    /// ([`ArchiveCheck::VerifiedByReader`]), and whose `stream` returns only after reading that
    /// reader to its end (as `read_zip_stream_listed` does). A caller with a file and no such
    /// guarantee uses [`unpack_wheel`](Self::unpack_wheel).
    pub fn unpack_zip_stream(
        &mut self,
        select: &dyn Fn(&str) -> bool,
        stream: impl FnOnce(&mut ZipStream<'_>) -> Result<ZipListedMembers>,
    ) -> Result<&UnpackReport> {
        let dest = self.dir();
        let limits = self.limits.clone();
        let report = {
            let unpacker = unpack::ZipStreamUnpacker::new(&dest, &limits, select)
                .map_err(|e| self.unpack_err(e))?;
            let mut zip = ZipStream {
                inner: unpacker,
                store: self.store,
                sha256: &self.sha256,
                dir: &dest,
            };
            let listed = stream(&mut zip)?;
            zip.inner
                .finish(&listed.streamed, &listed.central)
                .map_err(|e| self.unpack_err(e))?
        };
        Ok(&self.unpacked.insert((ArchiveFormat::Wheel, report)).1)
    }

    fn verified(
        &mut self,
        actual: String,
        format: ArchiveFormat,
        report: UnpackReport,
    ) -> Result<&UnpackReport> {
        if actual != self.sha256 {
            return Err(StoreError::HashMismatch {
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(&self.unpacked.insert((format, report)).1)
    }

    /// Moves the unpacked component to `store/<sha256>` in one rename. If the store already
    /// has it, this copy is dropped.
    pub fn commit(mut self) -> Result<StoredComponent> {
        let Some((format, report)) = self.unpacked.take() else {
            return Err(self.unpack_err(UnpackError::NothingSelected {
                what: "nothing was unpacked before commit".into(),
            }));
        };
        let meta = StoredComponent {
            schema_version: RECORD_SCHEMA_VERSION,
            sha256: self.sha256.clone(),
            format,
            unpacked_bytes: report.unpacked_bytes,
            entries: report.entries,
        };
        // Durable before it can become visible: every file (whose writeback started as it was
        // written, so this mostly waits for the tail) and every directory of the tree.
        let tree = self.dir();
        for e in &meta.entries {
            match e.kind {
                EntryKind::File => fsx::sync_file(&tree.join(&e.path))?,
                EntryKind::Dir => fsx::sync_dir(&tree.join(&e.path))?,
                EntryKind::Symlink => {}
            }
        }
        fsx::sync_dir(&tree)?;
        let json = serde_json::to_vec_pretty(&meta).expect("plain structs serialize");
        fsx::write_atomic(&self.tmp.join(COMPONENT_META), &json)?;
        self.store.step(FaultPoint::ComponentUnpacked)?;
        let dest = self.store.home.join(STORE_DIR).join(&self.sha256);
        // Another app may store the same component at the same time: the check and the
        // rename are one step for every app that uses this store.
        let _store_lock = self.store.store_lock()?;
        if dest.join(COMPONENT_META).is_file() {
            return Ok(meta); // Drop removes our copy.
        }
        fs::rename(&self.tmp, &dest).map_err(io_err("renaming into place", &dest))?;
        self.committed = true;
        fsx::sync_dir(&self.store.home.join(STORE_DIR))?;
        self.store.step(FaultPoint::ComponentCommitted)?;
        Ok(meta)
    }
}

impl Drop for Stager<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// A zip being unpacked as it streams ([`Stager::unpack_zip_stream`]).
pub struct ZipStream<'a> {
    inner: unpack::ZipStreamUnpacker<'a>,
    store: &'a Store,
    sha256: &'a str,
    dir: &'a Path,
}

impl ZipStream<'_> {
    /// The next member in archive order: its name, its size when the local header gives it
    /// (`None` with a data descriptor), and a reader of its uncompressed bytes. Selected
    /// regular files are written; every name is checked.
    pub fn member(&mut self, name: &str, size: Option<u64>, data: &mut dyn Read) -> Result<()> {
        self.inner
            .member(name, size, data)
            .map_err(|source| StoreError::Unpack {
                sha256: self.sha256.to_string(),
                path: self.dir.to_path_buf(),
                source: source.with_room_evidence(),
            })?;
        self.store.step(FaultPoint::EntryUnpacked)
    }
}

/// A zip's members as they streamed and as its central directory lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZipListedMembers {
    pub streamed: Vec<ZipListedMember>,
    pub central: Vec<ZipListedMember>,
}

/// Who proves that the archive bytes a [`Stager`] reads are the ones its sha256 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveCheck {
    /// The stager hashes the bytes as they pass and refuses the component on a mismatch.
    Hash,
    /// The caller's reader verifies them: it ends (returns `Ok(0)`) only after every byte
    /// matched this same sha256 and fails otherwise (`gpulibs-fetch` hashing while streaming,
    /// its sink ending the reader only in `finish`). The stager reads it to its end before it
    /// reports success and skips its own hash.
    VerifiedByReader,
}

/// Hashes and counts the raw archive bytes; stops at the manifest's archive size.
struct HashingReader<R> {
    inner: R,
    hashing: bool,
    hasher: Sha256,
    count: u64,
    limit: Option<u64>,
    tripped: bool,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R, limit: Option<u64>) -> Self {
        Self {
            inner,
            hashing: true,
            hasher: Sha256::new(),
            count: 0,
            limit,
            tripped: false,
        }
    }

    fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.hashing {
            self.hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        if let Some(limit) = self.limit {
            if self.count > limit {
                self.tripped = true;
                return Err(io::Error::other("archive longer than the manifest says"));
            }
        }
        Ok(n)
    }
}

/// Stops a decompressed stream after `left` bytes: a bomb made of headers or padding, which
/// no per-file size catches.
struct LimitedReader<R> {
    inner: R,
    left: u64,
    tripped: bool,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.tripped = true;
            return Err(io::Error::other("decompressed stream too long"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// zstd over any number of frames (`pzstd` and `zstd -T --rsyncable` write several), skippable
/// frames skipped, checksums checked: libzstd's streaming decoder. Windows above libzstd's
/// default limit (128 MiB) are refused rather than allocated.
fn zstd_frames<'a>(inner: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let source = io::BufReader::with_capacity(128 * 1024, inner);
    Ok(Box::new(zstd::stream::read::Decoder::with_buffer(source)?))
}
