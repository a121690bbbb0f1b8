//! SIGINT and SIGTERM: nothing left behind, and a documented exit code.
//!
//! [`install`] (called once, while the process has one thread) gives the process a private
//! temporary directory, `$TMPDIR/gpulibs-XXXXXX`, and points `TMPDIR` at it: whatever gpulibs,
//! ONNX Runtime or pip put in the temporary directory lands there. It blocks SIGINT and SIGTERM
//! in every thread (threads inherit the mask; child processes get a clean mask from
//! `std::process::Command`) and waits for them on a thread of its own. On a signal, that thread
//! removes the private directory and the temporaries of an install root this process holds the
//! lock of ([`guard_install_root`]; partial downloads are kept so the next run resumes them),
//! then exits with 128 + the signal: 130 for SIGINT, 143 for SIGTERM. It exits without running
//! `atexit` handlers, as other threads may be inside ONNX Runtime.
//!
//! On a normal end the private directory goes when the [`Scope`] is dropped. A process killed
//! with SIGKILL cannot remove it; its name carries the pid (`gpulibs-<pid>-XXXXXX`), and the
//! next gpulibs run, as it ends, removes such directories of this user whose process is gone.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What the signal thread cleans.
struct Registry {
    tmp: Option<PathBuf>,
    /// Install roots and the homes of their component stores.
    install_roots: Vec<(PathBuf, PathBuf)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    tmp: None,
    install_roots: Vec::new(),
});

/// Exit code for SIGINT (128 + 2).
pub const EXIT_SIGINT: u8 = 130;
/// Exit code for SIGTERM (128 + 15).
pub const EXIT_SIGTERM: u8 = 143;

/// The private temporary directory, removed when dropped.
pub struct Scope {
    tmp: Option<PathBuf>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(dir) = &self.tmp {
            let _ = std::fs::remove_dir_all(dir);
            // At the end of the run, not at start-up: listing the temporary directory is not
            // worth delaying every command for.
            if let Some(parent) = dir.parent() {
                sweep_stale(parent);
            }
        }
    }
}

/// Sets up the private temporary directory and the signal thread. Call it while the process
/// has a single thread (it changes `TMPDIR` and the signal mask every later thread inherits).
pub fn install() -> Scope {
    // If the temporary directory is unusable, `TMPDIR` stays as it is and the command that
    // needs it reports the directory and the fix itself.
    let parent = std::env::temp_dir();
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir_in(&parent)
        .ok()
        .map(tempfile::TempDir::keep);
    if let Some(dir) = &tmp {
        // SAFETY (single thread): see this function's contract.
        std::env::set_var("TMPDIR", dir);
    }
    lock().tmp.clone_from(&tmp);

    // SAFETY: a zeroed sigset_t initialised by sigemptyset, then used by this thread's
    // pthread_sigmask and by sigwait on the signal thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let spawned = std::thread::Builder::new()
        .name("gpulibs-signals".into())
        .spawn(move || loop {
            let mut signal = 0;
            // SAFETY: `set` is a valid signal set; `signal` outlives the call.
            if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
                clean_up();
                let (name, code) = if signal == libc::SIGINT {
                    ("SIGINT", EXIT_SIGINT)
                } else {
                    ("SIGTERM", EXIT_SIGTERM)
                };
                eprintln!("gpulibs: interrupted ({name}); temporary files removed");
                // SAFETY: _exit ends the process at once, without atexit handlers that could
                // race with threads still inside ONNX Runtime.
                unsafe { libc::_exit(code.into()) };
            }
        });
    if spawned.is_err() {
        // No signal thread: let the signals kill the process as they would by default.
        // SAFETY: unblocks what was blocked above, on this thread.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
    Scope { tmp }
}

/// The private directory's name: `gpulibs-<pid>-XXXXXX`.
const PREFIX: &str = "gpulibs-";

/// The pid in a private directory's name (`gpulibs-<pid>-XXXXXX`), if the name is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, suffix) = rest.split_once('-')?;
    if suffix.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|&p| p > 0)
}

/// Removes the private directories of gpulibs processes that are gone: a process killed with
/// SIGKILL cannot remove its own. Only directories of this user whose name carries a pid that
/// no process has any more (`kill(pid, 0)` says ESRCH); a reused pid keeps its directory, which
/// errs on the side of leaving it.
fn sweep_stale(parent: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(owner_pid) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != uid {
            continue;
        }
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid as libc::pid_t, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Cleans `root`'s temporaries, and this process's in the component store at `home`, if the
/// process is interrupted while it holds the install lock.
pub fn guard_install_root(root: &Path, home: &Path) {
    lock()
        .install_roots
        .push((root.to_path_buf(), home.to_path_buf()));
}

fn lock() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn clean_up() {
    let registry = lock();
    // The main thread keeps running meanwhile and may create a file in a directory being
    // removed: a few passes get what it adds.
    for _ in 0..3 {
        for (root, home) in &registry.install_roots {
            let _ = gpulibs_store::Store::clean_after_interrupt_in(root, home);
        }
        if let Some(dir) = &registry.tmp {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pids_come_only_from_private_directory_names() {
        for (name, want) in [
            ("gpulibs-1234-AbC123", Some(1234)),
            ("gpulibs-1-x", Some(1)),
            ("gpulibs-0-x", None),
            ("gpulibs-1234-", None),
            ("gpulibs-AbC123", None),
            ("gpulibs--x", None),
            ("gpulibs-12a4-x", None),
            ("gpulibs-verify-abc", None),
            ("other-1234-x", None),
            ("gpulibs-99999999999999999999-x", None),
        ] {
            assert_eq!(owner_pid(name), want, "{name}");
        }
    }
}
