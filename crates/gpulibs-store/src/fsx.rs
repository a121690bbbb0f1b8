//! File-system steps that must be atomic or durable, in one place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old file or the new one:
/// temp file in the same directory, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    let tmp = sibling(path, &format!(".tmp-{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("creating", &tmp))?;
    f.write_all(bytes).map_err(io_err("writing", &tmp))?;
    f.sync_all().map_err(io_err("syncing", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err("renaming into place", path))?;
    sync_dir(&dir)
}

/// Makes a directory's entries (renames, creations) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing directory", dir))
}

/// Starts writeback of `len` bytes of `file` from `offset` (0 = to the end) without waiting
/// for it (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the [`sync_file`] that makes a
/// component durable finds little left to write. Durability still comes from that `fsync`:
/// this flushes neither metadata nor the disk's cache. Best effort: a file system without it
/// just leaves the work to the final `fsync`.
pub(crate) fn start_writeback(file: &impl AsFd, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: a plain system call on a descriptor we borrow for its duration; no memory is
    // passed.
    unsafe {
        libc::sync_file_range(
            file.as_fd().as_raw_fd(),
            offset,
            len,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Makes files durable on a background thread while the archive is still being unpacked.
///
/// [`start_writeback`] hands dirty pages to the block layer but does not make the device
/// persist them; on a disk with a volatile cache (a virtual disk backed by a host file is one)
/// the commit's `fsync` then waits for everything at once. Every [`FLUSH_STEP`] bytes the
/// unpacker offers the file it is writing; this thread `fdatasync`s it, so the device persists
/// the archive as it arrives. An offer made while the previous one is still running is dropped,
/// so the unpacker never waits. The commit's `fsync` of every file stays the durability
/// guarantee; this only shortens it. A failure here is kept and reported by [`finish`]
/// (Linux reports a writeback error to the first `fsync` that sees it, so a later one would
/// not).
///
/// [`finish`]: Flusher::finish
pub(crate) struct Flusher {
    sender: Option<std::sync::mpsc::SyncSender<(PathBuf, File)>>,
    worker: Option<std::thread::JoinHandle<Option<(PathBuf, io::Error)>>>,
    unflushed: u64,
}

/// Bytes written between two background `fdatasync`s.
pub(crate) const FLUSH_STEP: u64 = 64 << 20;

impl Flusher {
    pub(crate) fn new() -> Self {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<(PathBuf, File)>(0);
        let worker = std::thread::Builder::new()
            .name("gpulibs-flush".into())
            .spawn(move || {
                for (path, file) in receiver {
                    if let Err(e) = file.sync_data() {
                        return Some((path, e));
                    }
                }
                None
            })
            .ok();
        Flusher {
            sender: worker.as_ref().map(|_| sender),
            worker,
            unflushed: 0,
        }
    }

    /// Counts `written` more bytes of `file` (at `path`); past [`FLUSH_STEP`] since the last
    /// flush, offers it to the thread if the thread is idle. True when the thread took it.
    pub(crate) fn wrote(&mut self, path: &Path, file: &File, written: u64) -> bool {
        self.unflushed += written;
        if self.unflushed < FLUSH_STEP {
            return false;
        }
        let (Some(sender), Ok(copy)) = (&self.sender, file.try_clone()) else {
            return false;
        };
        let taken = sender.try_send((path.to_path_buf(), copy)).is_ok();
        if taken {
            self.unflushed = 0;
        }
        taken
    }

    /// Waits for the flush in progress; the first failure, with the file it was flushing.
    pub(crate) fn finish(mut self) -> std::result::Result<(), (PathBuf, io::Error)> {
        self.sender = None;
        match self.worker.take().map(|w| w.join()) {
            Some(Ok(Some(failure))) => Err(failure),
            _ => Ok(()),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Makes a file the store wrote durable (`fsync` through a read-only descriptor; the last
/// component is not followed).
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err("syncing", path))
}

/// Points the symlink `link` at `target` in one `rename(2)`: readers see the old target or the
/// new one, never a missing link.
/// `between` runs after the temporary link exists and before the rename (a crash-test point).
pub(crate) fn replace_symlink(
    link: &Path,
    target: &Path,
    between: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let tmp = sibling(link, ".tmp");
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("removing stale", &tmp)(e)),
    }
    std::os::unix::fs::symlink(target, &tmp).map_err(io_err("creating symlink", &tmp))?;
    between()?;
    fs::rename(&tmp, link).map_err(io_err("switching symlink", link))?;
    sync_dir(&parent(link))
}

/// Bytes an unprivileged process may still write on the file system holding `path`.
pub fn available_space(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Free and total room on a file system: blocks as bytes an unprivileged process may use,
/// and inodes (files it may still create). `inodes_total` is 0 where the file system does
/// not count inodes (btrfs, some network file systems).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsFree {
    pub bytes_available: u64,
    pub bytes_total: u64,
    pub inodes_available: u64,
    pub inodes_total: u64,
}

/// [`FsFree`] of the file system holding `path`.
pub fn fs_free(path: &Path) -> io::Result<FsFree> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(FsFree {
        bytes_available: st.f_bavail.saturating_mul(st.f_frsize),
        bytes_total: st.f_blocks.saturating_mul(st.f_frsize),
        inodes_available: st.f_favail,
        inodes_total: st.f_files,
    })
}

/// The target of a symlink, or `None` when `path` does not exist.
pub(crate) fn read_link_opt(path: &Path) -> Result<Option<PathBuf>> {
    match fs::read_link(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("reading symlink", path)(e)),
    }
}

pub(crate) fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    parent(path).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offers `file` as if `bytes` had just been written, retrying while the thread is busy
    /// or not started yet; whether the thread ever took it.
    fn offer(flusher: &mut Flusher, path: &Path, file: &File, bytes: u64) -> bool {
        if flusher.wrote(path, file, bytes) {
            return true;
        }
        (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            flusher.wrote(path, file, 0)
        })
    }

    #[test]
    fn flusher_syncs_a_file_after_a_step_and_reports_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib.so");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"bytes").unwrap();
        let mut flusher = Flusher::new();
        assert!(!flusher.wrote(&path, &file, FLUSH_STEP - 1), "below a step");
        assert!(
            offer(&mut flusher, &path, &file, 1),
            "a full step is offered"
        );
        assert!(flusher.finish().is_ok());
    }

    #[test]
    fn flusher_keeps_a_failed_sync_for_finish() {
        // A character device without fsync: fdatasync fails with EINVAL, the way a disk that
        // lost a write would fail it. The failure must reach finish(), with the file's path.
        let path = PathBuf::from("/dev/null");
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(
            file.sync_data().is_err(),
            "this test needs fsync(/dev/null) to fail"
        );
        let mut flusher = Flusher::new();
        assert!(offer(&mut flusher, &path, &file, FLUSH_STEP));
        let (failed, error) = flusher.finish().expect_err("the failure is reported");
        assert_eq!(failed, path);
        assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "{error}");
    }

    #[test]
    fn flusher_below_a_step_never_syncs() {
        let path = PathBuf::from("/dev/null");
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let mut flusher = Flusher::new();
        for _ in 0..63 {
            assert!(!flusher.wrote(&path, &file, 1 << 20));
        }
        assert!(
            flusher.finish().is_ok(),
            "63 MiB is under one step: nothing synced"
        );
    }
}
