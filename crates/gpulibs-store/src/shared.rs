//! The component store shared by every app root of a user: where it is, which roots use it
//! (the registry), who may delete what in it (references and leases), and its locks.
//!
//! Layout of a store home `H` (`$XDG_DATA_HOME/gpulibs`, `GPULIBS_STORE`, or the root itself
//! when only `GPULIBS_HOME` is set):
//!
//! ```text
//! H/store/<sha256>/       components (content-addressed, immutable)
//! H/store/.tmp-<sha>-<pid>-<n>/   a component being unpacked by process <pid>
//! H/downloads/            partial downloads, shared so a second app resumes the first's
//! H/roots/<hash>.json     one registration per app root: {"root": "/abs/path"}
//! H/leases/<pid>-<n>.json components an install is about to link, flock'ed by the installer
//! H/store.lock            flock: staging commits, lease creation, component deletion
//! H/fetch.lock            flock: one install downloads into H/downloads at a time
//! ```
//!
//! Lock order, always: the app root's `lock`, then `fetch.lock`, then `store.lock`.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{io_err, Result};
use crate::fsx;

/// Environment variable naming the shared store's home directory (`<it>/store/<sha256>`).
pub const STORE_ENV: &str = "GPULIBS_STORE";
pub(crate) const STORE_DIR: &str = "store";
pub(crate) const DOWNLOADS_DIR: &str = "downloads";
pub(crate) const ROOTS_DIR: &str = "roots";
pub(crate) const LEASES_DIR: &str = "leases";
pub(crate) const STORE_LOCK: &str = "store.lock";
pub(crate) const FETCH_LOCK: &str = "fetch.lock";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A number unique within this process (temp and lease names of concurrent threads).
pub(crate) fn next_serial() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// An exclusive `flock` held until dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
}

impl FileLock {
    /// Takes the lock on `path` (created if missing), waiting for another holder; `on_wait`
    /// is called once before waiting.
    pub(crate) fn take(path: &Path, on_wait: impl FnOnce()) -> Result<Self> {
        if let Some(lock) = Self::try_take(path)? {
            return Ok(lock);
        }
        on_wait();
        let file = open_lock_file(path)?;
        rustix::fs::flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| io_err("locking", path)(e.into()))?;
        Ok(Self { file })
    }

    /// Takes the lock on `path` (created if missing) if nobody holds it; `None` if somebody
    /// does.
    pub(crate) fn try_take(path: &Path) -> Result<Option<Self>> {
        let file = open_lock_file(path)?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Self { file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(io_err("locking", path)(e.into())),
        }
    }
}

/// Opens (creating it and its directory if missing) the file a [`FileLock`] locks.
pub(crate) fn open_lock_file(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(io_err("opening lock file", path))
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.file, FlockOperation::Unlock);
    }
}

/// The holder of the fetch lock: downloads into the shared `downloads/` are this process's
/// until dropped.
#[derive(Debug)]
pub struct FetchLock {
    _lock: FileLock,
}

impl FetchLock {
    pub(crate) fn new(lock: FileLock) -> Self {
        Self { _lock: lock }
    }
}

/// Components an install is about to link into a generation: `gc` and `remove` of any app keep
/// them while the lease lives. The installing process holds an `flock` on the lease file; a
/// lease whose lock can be taken belongs to a process that is gone and is deleted.
#[derive(Debug)]
pub struct Lease {
    file: File,
    path: PathBuf,
    components: Vec<String>,
}

impl Lease {
    /// The components this lease keeps.
    pub fn components(&self) -> &[String] {
        &self.components
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = rustix::fs::flock(&self.file, FlockOperation::Unlock);
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct LeaseFile {
    pid: u32,
    root: PathBuf,
    components: Vec<String>,
}

/// Writes a lease; the caller holds `store.lock`, so no `gc` is between its scan and its
/// deletions.
pub(crate) fn write_lease(home: &Path, root: &Path, components: &[String]) -> Result<Lease> {
    let dir = home.join(LEASES_DIR);
    fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let path = dir.join(format!("{}-{}.json", std::process::id(), next_serial()));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .map_err(io_err("creating", &path))?;
    rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive)
        .map_err(|e| io_err("locking", &path)(e.into()))?;
    let body = LeaseFile {
        pid: std::process::id(),
        root: root.to_path_buf(),
        components: components.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&body).expect("plain structs serialize");
    file.write_all(&json).map_err(io_err("writing", &path))?;
    Ok(Lease {
        file,
        path,
        components: components.to_vec(),
    })
}

/// Removes this process's lease files (its interrupt handler: the process is ending).
pub(crate) fn remove_own_leases(home: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}-", std::process::id());
    let mut removed = Vec::new();
    for path in list_files(&home.join(LEASES_DIR)).unwrap_or_default() {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(&prefix) && fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// What every registered root and every live lease uses: what a deletion in the store must
/// keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct References {
    /// Components some generation or live lease uses.
    pub used: BTreeSet<String>,
    /// Registered roots (and leases) that could not be read: while there is one, no
    /// component is deleted, since which ones it uses is unknown.
    pub unreadable: Vec<PathBuf>,
    /// Registered roots that no longer exist; their registrations were deleted.
    pub dropped: Vec<PathBuf>,
    /// Registered roots that exist (the one being removed excluded).
    pub roots: Vec<PathBuf>,
    /// Live leases.
    pub leases: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Registration {
    root: PathBuf,
}

fn registration_path(home: &Path, root: &Path) -> PathBuf {
    let digest = crate::store::hex(&Sha256::digest(root.as_os_str().as_encoded_bytes()));
    home.join(ROOTS_DIR).join(format!("{}.json", &digest[..32]))
}

/// The root's path as registered: absolute, links resolved (it exists when it registers).
pub(crate) fn canonical_root(root: &Path) -> PathBuf {
    fs::canonicalize(root).unwrap_or_else(|_| std::path::absolute(root).unwrap_or(root.into()))
}

/// Registers `root` as a user of the store at `home` (atomically; nothing is written when the
/// registration is there already).
pub(crate) fn register(home: &Path, root: &Path) -> Result<()> {
    let root = canonical_root(root);
    let path = registration_path(home, &root);
    if let Ok(bytes) = fs::read(&path) {
        if serde_json::from_slice::<Registration>(&bytes).is_ok_and(|r| r.root == root) {
            return Ok(());
        }
    }
    let dir = fsx::parent(&path);
    fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let json = serde_json::to_vec_pretty(&Registration { root }).expect("plain structs serialize");
    fsx::write_atomic(&path, &json)
}

/// Drops `root`'s registration (`remove`).
pub(crate) fn unregister(home: &Path, root: &Path, usage: &mut DiskUsage) -> Result<()> {
    let path = registration_path(home, &canonical_root(root));
    usage.add_tree(&path);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", &path)(e)),
    }
}

/// Every component that a generation of a registered root or a live lease uses. The caller
/// holds `store.lock`. Registrations of roots that are gone are deleted; stale leases too.
pub(crate) fn references(home: &Path) -> Result<References> {
    let mut refs = References::default();
    let roots = home.join(ROOTS_DIR);
    for entry in list_files(&roots)? {
        let name = entry.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with('.') || name.contains(".tmp-") || !name.ends_with(".json") {
            continue;
        }
        let Ok(Registration { root }) = fs::read(&entry)
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice(&b).map_err(|_| ()))
        else {
            refs.unreadable.push(entry.clone());
            continue;
        };
        match fs::symlink_metadata(&root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = fs::remove_file(&entry);
                refs.dropped.push(root);
                continue;
            }
            Err(_) => {
                refs.unreadable.push(root);
                continue;
            }
            Ok(_) => {}
        }
        match root_components(&root) {
            Ok(used) => refs.used.extend(used),
            Err(()) => refs.unreadable.push(root.clone()),
        }
        refs.roots.push(root);
    }
    for path in list_files(&home.join(LEASES_DIR))? {
        let Ok(file) = File::open(&path) else {
            continue;
        };
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockShared) {
            // Nobody holds it: its installer is gone.
            Ok(()) => {
                let _ = fs::remove_file(&path);
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                refs.leases += 1;
                let mut bytes = Vec::new();
                let parsed = (&file)
                    .read_to_end(&mut bytes)
                    .ok()
                    .and_then(|_| serde_json::from_slice::<LeaseFile>(&bytes).ok());
                match parsed {
                    Some(l) => refs.used.extend(l.components),
                    None => refs.unreadable.push(path),
                }
            }
            Err(_) => refs.unreadable.push(path),
        }
    }
    refs.used.retain(|s| !s.is_empty());
    Ok(refs)
}

/// The regular files in `dir` (none when it does not exist).
fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let listing = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in listing {
        let entry = entry.map_err(io_err("listing", dir))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

#[derive(Deserialize)]
struct RecordComponents {
    #[serde(default)]
    components: Vec<RecordComponent>,
}

#[derive(Deserialize)]
struct RecordComponent {
    sha256: String,
}

/// The components every generation of `root` uses (`installs/<id>/install.json`); `Err` when
/// anything that may be a generation cannot be read.
fn root_components(root: &Path) -> std::result::Result<BTreeSet<String>, ()> {
    let installs = root.join("installs");
    let listing = match fs::read_dir(&installs) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(_) => return Err(()),
    };
    let mut used = BTreeSet::new();
    for entry in listing {
        let entry = entry.map_err(|_| ())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Temp and trash directories: a generation being built is covered by its lease.
        if name.starts_with('.') {
            continue;
        }
        match fs::read(entry.path().join("install.json")) {
            Ok(bytes) => {
                let r: RecordComponents = serde_json::from_slice(&bytes).map_err(|_| ())?;
                used.extend(r.components.into_iter().map(|c| c.sha256));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => return Err(()),
        }
    }
    Ok(used)
}

/// The pid in a staging directory's name `.tmp-<sha256>-<pid>[-<n>]`.
pub(crate) fn staging_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(".tmp-")?;
    let rest = rest.get(65..)?; // `<sha256>-`
    rest.split('-').next()?.parse().ok()
}

/// Whether process `pid` exists (its `/proc` entry).
pub(crate) fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Bytes on disk, each inode counted once (hard links of one file are one file), and what a
/// removal frees: an inode counts as freed only when every one of its links was removed.
#[derive(Debug, Default)]
pub(crate) struct DiskUsage {
    inodes: HashMap<(u64, u64), Inode>,
}

#[derive(Debug)]
struct Inode {
    size: u64,
    nlink: u64,
    seen: u64,
}

impl DiskUsage {
    /// Notes every regular file below `path` (symlinks not followed) as about to be removed.
    pub(crate) fn add_tree(&mut self, path: &Path) {
        let mut stack = vec![path.to_path_buf()];
        while let Some(p) = stack.pop() {
            let Ok(meta) = fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                if let Ok(rd) = fs::read_dir(&p) {
                    stack.extend(rd.flatten().map(|e| e.path()));
                }
            } else if meta.is_file() {
                let i = self
                    .inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_insert(Inode {
                        size: meta.len(),
                        nlink: meta.nlink(),
                        seen: 0,
                    });
                i.seen += 1;
            }
        }
    }

    /// The bytes whose last link is among those noted: what removing them frees.
    pub(crate) fn freed(&self) -> u64 {
        self.inodes
            .values()
            .filter(|i| i.seen >= i.nlink)
            .map(|i| i.size)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_give_their_pid() {
        let sha = "a".repeat(64);
        for (name, pid) in [
            (format!(".tmp-{sha}-123"), Some(123)),
            (format!(".tmp-{sha}-123-7"), Some(123)),
            (format!(".tmp-{sha}"), None),
            (format!(".tmp-{sha}-x"), None),
            (".tmp-short-1".to_string(), None),
            (format!(".trash-{sha}"), None),
        ] {
            assert_eq!(staging_pid(&name), pid, "{name}");
        }
    }

    #[test]
    fn hard_links_count_once_and_free_only_when_every_link_goes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::write(a.join("lib.so"), vec![0u8; 1000]).unwrap();
        fs::hard_link(a.join("lib.so"), b.join("lib.so")).unwrap();
        fs::write(b.join("own.so"), vec![0u8; 10]).unwrap();

        let mut only_b = DiskUsage::default();
        only_b.add_tree(&b);
        assert_eq!(only_b.freed(), 10, "a still holds lib.so");

        let mut both = DiskUsage::default();
        both.add_tree(&a);
        both.add_tree(&b);
        assert_eq!(both.freed(), 1010, "lib.so counted once");
    }
}
