//! Typed errors. Each message names the path (or archive entry) it is about and what failed;
//! where a fix exists, [`Hint`] names it (the CLI prints it as `hint:`, after the cause chain).

use std::io;

use gpulibs_hint::Hint;
use std::path::PathBuf;

/// Why an archive was refused while unpacking. `entry` is the member name as the archive spells
/// it (lossily decoded), so a vendor can find it with `tar -tvf` or `unzip -l`.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("archive entry `{entry}` has an absolute path; refusing to write outside the target")]
    AbsolutePath { entry: String },
    #[error(
        "archive entry `{entry}` contains a `..` component; refusing to write outside the target"
    )]
    ParentComponent { entry: String },
    #[error("archive entry `{entry}` has an empty or unreadable name")]
    BadName { entry: String },
    #[error(
        "archive entry `{entry}` is a symlink to `{target}`, which resolves outside the component"
    )]
    SymlinkEscapes { entry: String, target: String },
    #[error(
        "archive entry `{entry}` is a hard link to `{target}`, which is outside the component"
    )]
    HardlinkEscapes { entry: String, target: String },
    #[error(
        "archive entry `{entry}` is a hard link to `{target}`, which is not a regular file \
         extracted earlier from the same archive"
    )]
    HardlinkDangling { entry: String, target: String },
    #[error(
        "archive entry `{entry}` is a {kind}; only files, directories and links are installed"
    )]
    SpecialFile { entry: String, kind: &'static str },
    #[error("archive entry `{entry}` would be written through the symlink `{through}`")]
    ThroughSymlink { entry: String, through: String },
    #[error("archive entry `{entry}` appears twice (or collides with a directory of that name)")]
    Duplicate { entry: String },
    #[error(
        "archive bomb? entry `{entry}` declares {declared} bytes but only {remaining} of the \
         {budget} bytes the manifest allows for this component remain"
    )]
    SizeBudget {
        entry: String,
        declared: u64,
        remaining: u64,
        budget: u64,
    },
    #[error(
        "archive bomb? entry `{entry}` declares {declared} bytes; the manifest says {expected}"
    )]
    SizeMismatch {
        entry: String,
        declared: u64,
        expected: u64,
    },
    #[error(
        "archive entry `{entry}` has sha256 {actual}; the manifest lists {expected} for it, so \
         the component is refused"
    )]
    FileDigest {
        entry: String,
        expected: String,
        actual: String,
    },
    #[error(
        "the manifest lists the file `{path}`, but the archive has {found} there; the component \
         is refused"
    )]
    ListedFileMissing { path: String, found: &'static str },
    #[error("archive bomb? more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error(
        "archive bomb? the decompressed stream passed {limit} bytes, more than the component's \
         files plus tar framing can take"
    )]
    StreamTooLong { limit: u64 },
    #[error("the archive is {actual} bytes, more than the {limit} bytes the manifest gives")]
    ArchiveTooLong { actual: u64, limit: u64 },
    #[error("archive entry `{entry}`: {detail}")]
    Unsupported { entry: String, detail: String },
    #[error(
        "zip member `{entry}` {detail}; pip installs what the central directory lists, so the \
         wheel is refused"
    )]
    ZipListing { entry: String, detail: String },
    #[error("the archive holds none of the files this component needs ({what})")]
    NothingSelected { what: String },
    #[error("reading the archive failed")]
    Read(#[source] io::Error),
    #[error("the wheel is not a readable zip file")]
    Zip(#[source] zip::result::ZipError),
    #[error("writing `{path}` failed")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A write failed with `ENOSPC` or `EDQUOT`; `free` is what `statvfs` said of the file
    /// system at that moment, before anything unpacked was removed (which frees room again).
    #[error("writing `{path}` failed: its file system has no room left{}", free.as_ref().map(|f| format!(
        " ({} bytes and {} of {} inodes free when it failed)",
        f.bytes_available, f.inodes_available, f.inodes_total
    )).unwrap_or_default())]
    NoRoom {
        path: PathBuf,
        free: Option<Box<crate::FsFree>>,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// A [`Write`](Self::Write) that failed for lack of room becomes [`NoRoom`](Self::NoRoom),
    /// with the file system's free blocks and inodes as they are now: the evidence of what ran
    /// out, taken before the stager's cleanup frees them.
    pub(crate) fn with_room_evidence(self) -> Self {
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        match self {
            UnpackError::Write { path, source }
                if matches!(source.raw_os_error(), Some(ENOSPC | EDQUOT)) =>
            {
                let free = path
                    .ancestors()
                    .find(|p| p.exists())
                    .and_then(|p| crate::fs_free(p).ok())
                    .map(Box::new);
                UnpackError::NoRoom { path, free, source }
            }
            other => other,
        }
    }
}

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} `{path}` failed")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no install root: neither GPULIBS_HOME, XDG_DATA_HOME nor HOME is set")]
    NoRoot,
    #[error("`{app}` is not a usable app name")]
    BadAppName { app: String },
    #[error(
        "another gpulibs install{} holds the lock on `{path}`",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { path: PathBuf, pid: Option<u32> },
    #[error("not enough free space on `{path}`: {needed} bytes needed, {available} available")]
    InsufficientSpace {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("unpacking component {sha256} into `{path}` failed")]
    Unpack {
        sha256: String,
        path: PathBuf,
        #[source]
        source: UnpackError,
    },
    #[error(
        "the archive for component {expected} has sha256 {actual}; it was changed or corrupted \
         in transit, and nothing was installed from it"
    )]
    HashMismatch { expected: String, actual: String },
    #[error("`{sha256}` is not a sha256 (64 lowercase hex digits)")]
    BadSha256 { sha256: String },
    #[error("component {sha256} is not in the store (`{path}`)")]
    MissingComponent { sha256: String, path: PathBuf },
    #[error(
        "two components both provide `{name}` ({first} and {second}); an install's lib \
         directory holds one file per name"
    )]
    NameClash {
        name: String,
        first: String,
        second: String,
    },
    #[error(
        "component {component} declares the link `{name}` to `{target}`, but its archive has \
         no library `{target}`"
    )]
    LinkTarget {
        component: String,
        name: String,
        target: String,
    },
    #[error(
        "component {component} declares the link `{name}`, which is not a bare file name \
         ({why}); links are made only inside the install's lib directory"
    )]
    UnsafeLink {
        component: String,
        name: String,
        why: &'static str,
    },
    #[error(
        "component {component}: the manifest lists `{path}`, but the stored component has no \
         such file"
    )]
    ListedFileMissing { component: String, path: String },
    #[error("component {component}: `{path}` has {what} {actual}; the manifest lists {expected}")]
    ListedFileMismatch {
        component: String,
        path: String,
        /// `sha256` or `size`.
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("no component provides the ONNX Runtime library `{name}`")]
    NoOrtLibrary { name: String },
    #[error("install `{id}` does not exist under `{path}`")]
    NoSuchInstall { id: String, path: PathBuf },
    #[error("nothing is installed under `{root}`")]
    NothingInstalled { root: PathBuf },
    #[error("there is no earlier install to roll back to under `{root}`")]
    NoPrevious { root: PathBuf },
    #[error("the install record `{path}` is unreadable")]
    BadRecord {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "`{path}` is not a gpulibs install root: it has no `gpulibs-root.json` and holds what \
         gpulibs did not put there ({strangers}); nothing was changed"
    )]
    NotARoot {
        path: PathBuf,
        /// The first few entries gpulibs does not recognise, quoted.
        strangers: String,
        /// What to do, in a sentence: the [`Hint`].
        fix: String,
    },
    #[error("`{path}` is not a root marker this gpulibs reads")]
    BadRootMarker {
        path: PathBuf,
        #[source]
        source: Option<serde_json::Error>,
    },
    #[error(
        "`{path}` says the root has layout {format}, which a newer gpulibs made; this one reads \
         layout 1"
    )]
    NewerRoot { path: PathBuf, format: u32 },
    #[error("the active install is gone: `{link}` points at `{target}`, which does not exist")]
    CurrentGone {
        link: PathBuf,
        target: PathBuf,
        /// Whether `previous` names an install that is still there.
        previous_usable: bool,
    },
    #[error(
        "install `{id}` cannot be used: `{missing}` is missing{detail}{}",
        if *more > 0 { format!(" (and {more} more path(s))") } else { String::new() }
    )]
    Unusable {
        id: String,
        /// The first path the install's environment names that does not exist.
        missing: PathBuf,
        /// Why, when a link on the way says more: ` (it links to `/venv/…/libcudnn.so.9`, a
        /// library reused from this machine, which is gone)`; else empty.
        detail: String,
        more: usize,
        previous_usable: bool,
    },
    #[error("the library `{soname}` reused from this machine at `{path}` {why}")]
    SystemLibrary {
        soname: String,
        path: PathBuf,
        why: String,
        #[source]
        source: Option<io::Error>,
    },
    #[error(
        "`{path}` is in the way of the install root's library view (gpulibs links each library \
         of the active install there as `current/lib/<name>`); nothing was switched"
    )]
    ViewBlocked { path: PathBuf },
    #[error(
        "`{path}` holds shared libraries as the seed's installer left them, and adopting them \
         into install `{id}` stopped: {why}; the libraries already moved are in `{lib}`, the \
         others where they were"
    )]
    SeedAdoption {
        path: PathBuf,
        id: String,
        lib: PathBuf,
        why: String,
    },
    #[error("injected failure at {0:?}")]
    Injected(crate::FaultPoint),
}

impl Hint for StoreError {
    /// What to do: the advice the messages used to end with, now given once, after the causes.
    fn hint(&self) -> Option<String> {
        let rollback_or_install = |previous_usable: bool| {
            if previous_usable {
                "run `gpulibs rollback` to return to the previous install, or `gpulibs install`"
            } else {
                "run `gpulibs install` to install again"
            }
        };
        Some(match self {
            StoreError::NoRoot => {
                "set GPULIBS_HOME to the directory gpulibs should install into".into()
            }
            StoreError::BadAppName { .. } => {
                "use letters, digits, `.`, `_` and `-`, not starting with `.`".into()
            }
            StoreError::Locked { .. } => "wait for the other install to finish".into(),
            StoreError::InsufficientSpace { .. } => {
                "free some space or set GPULIBS_HOME to a larger file system".into()
            }
            StoreError::MissingComponent { .. } => "stage it before installing".into(),
            StoreError::LinkTarget { .. } => {
                "fix the manifest's files[].soname_links or the archive".into()
            }
            StoreError::ListedFileMissing { .. } => {
                "fix the manifest's files[] or the archive".into()
            }
            StoreError::NothingInstalled { .. } => "run `gpulibs install`".into(),
            StoreError::NoPrevious { .. } => "`gpulibs status` shows what is active".into(),
            StoreError::BadRecord { .. } => "`gpulibs install` writes a fresh one".into(),
            StoreError::NotARoot { fix, .. } => fix.clone(),
            StoreError::BadRootMarker { .. } => {
                "if the directory holds only gpulibs' files, delete the marker and run again \
                 (gpulibs adopts a directory laid out as its own)"
                    .into()
            }
            StoreError::NewerRoot { .. } => "use the newer gpulibs".into(),
            StoreError::CurrentGone {
                previous_usable, ..
            } => rollback_or_install(*previous_usable).into(),
            StoreError::Unusable {
                previous_usable, ..
            } => format!(
                "run `gpulibs install` to repair it{}",
                if *previous_usable {
                    ", or `gpulibs rollback` to return to the previous install"
                } else {
                    ""
                }
            ),
            StoreError::SystemLibrary { .. } => {
                "run `gpulibs install` again to look for it anew, or `gpulibs install --no-reuse` \
                 to download it"
                    .into()
            }
            StoreError::ViewBlocked { .. } => "move it out of the root and run again".into(),
            StoreError::SeedAdoption { .. } => "run the command again to finish".into(),
            StoreError::Io { .. }
            | StoreError::Unpack { .. }
            | StoreError::HashMismatch { .. }
            | StoreError::BadSha256 { .. }
            | StoreError::NameClash { .. }
            | StoreError::UnsafeLink { .. }
            | StoreError::ListedFileMismatch { .. }
            | StoreError::NoOrtLibrary { .. }
            | StoreError::NoSuchInstall { .. }
            | StoreError::Injected(_) => return None,
        })
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps an `io::Error` with what was being done to which path.
pub(crate) fn io_err(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_keeps_its_evidence() {
        let dir = std::env::temp_dir();
        let write = |errno: i32| UnpackError::Write {
            path: dir.join("gpulibs-no-such-dir/lib/libx.so"),
            source: io::Error::from_raw_os_error(errno),
        };
        for errno in [28, 122] {
            match write(errno).with_room_evidence() {
                UnpackError::NoRoom { path, free, source } => {
                    assert!(path.ends_with("lib/libx.so"));
                    let free = free.expect("statvfs of the nearest existing directory");
                    assert!(free.bytes_total > 0, "{free:?}");
                    assert_eq!(source.raw_os_error(), Some(errno));
                }
                other => panic!("errno {errno}: {other:?}"),
            }
        }
        // Any other failure stays as it was.
        assert!(matches!(
            write(13).with_room_evidence(),
            UnpackError::Write { .. }
        ));
    }
}
