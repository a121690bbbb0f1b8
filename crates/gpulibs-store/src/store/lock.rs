//! The install lock and the cleanup an interrupted run needs: every change to a root happens
//! under an [`InstallLock`]; the store and fetch locks of the shared store.

use super::generations::base;
use super::{remove_any, Store, INSTALLS_DIR, LOCK, TMP_PREFIX, TRASH_PREFIX};
use crate::error::{io_err, Result, StoreError};
use crate::shared::{FetchLock, FileLock, STORE_DIR};
use crate::{owner, shared, view};
use rustix::fs::FlockOperation;
use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::{fs, io};

impl Store {
    pub(super) fn open_lock_file(&self) -> Result<File> {
        shared::open_lock_file(&self.root.join(LOCK))
    }

    pub(super) fn holder_pid(&self) -> Option<u32> {
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

    pub(super) fn locked(&self, mut file: File) -> Result<InstallLock<'_>> {
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
    pub(super) fn clean_store_temporaries(&self, own: bool) -> Result<Vec<PathBuf>> {
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
    pub(super) fn repair_view(&self) -> Result<()> {
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
    pub(super) fn clean_temporaries(&self) -> Result<Vec<PathBuf>> {
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

/// The exclusive right to change the root, held until dropped (`flock` on `<root>/lock`, so
/// the kernel releases it when the process dies, `kill -9` included).
pub struct InstallLock<'s> {
    pub(super) store: &'s Store,
    pub(super) _file: File,
    pub(super) cleaned: Mutex<Vec<PathBuf>>,
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
}
