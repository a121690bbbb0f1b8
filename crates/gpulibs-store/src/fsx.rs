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

/// The target of a symlink, or `None` when `path` does not exist.
pub(crate) fn read_link_opt(path: &Path) -> Result<Option<PathBuf>> {
    match fs::read_link(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("reading symlink", path)(e)),
    }
}

/// Removes a directory tree by renaming it aside first, so an interrupted removal never leaves
/// a half-deleted directory under a name that readers trust.
pub(crate) fn remove_tree_aside(path: &Path, trash_name: &str) -> Result<u64> {
    let trash = parent(path).join(trash_name);
    fs::rename(path, &trash).map_err(io_err("moving aside", path))?;
    let bytes = tree_size(&trash);
    fs::remove_dir_all(&trash).map_err(io_err("removing", &trash))?;
    Ok(bytes)
}

/// Sum of regular-file sizes below `path` (symlinks not followed); best effort, for reports.
pub(crate) fn tree_size(path: &Path) -> u64 {
    let mut total = 0;
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
            total += meta.len();
        }
    }
    total
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
