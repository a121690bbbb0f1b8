//! Why an install did not complete. Every variant says what stays active.

use std::error::Error;
use std::io;
use std::path::{Path, PathBuf};

use gpulibs_fetch::{FetchError, Provenance};
use gpulibs_sources::EmbeddedError;
use gpulibs_store::{fs_free, FsFree, StoreError, UnpackError};

/// A failed install. In every case the install that was active before (if any) is still
/// active: nothing is switched before every byte matched and every component is stored.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The plan chose nothing (no variant fits and there is no CPU variant, or it was refused).
    #[error("nothing can be installed: {why}")]
    NothingToInstall { why: String },

    /// A component of the plan is not in the manifest.
    #[error("the plan names component `{id}`, which the manifest does not have")]
    UnknownComponent { id: String },

    /// A PyPI component still has its `pip:` placeholder URL when it is about to be fetched.
    #[error(
        "component `{id}` has the unresolved URL `{url}`; pip must resolve it before it can be \
         downloaded"
    )]
    UnresolvedPip { id: String, url: String },

    /// pip could not resolve the chosen wheels.
    #[error("resolving the chosen wheels through pip failed")]
    Resolve(#[source] Box<EmbeddedError>),

    /// The manifest breaks the rules every manifest is held to (`docs/manifest.md`,
    /// Validation); checked before anything is written.
    #[error("the manifest was refused before anything was written; the active install, if any, stays active")]
    Manifest(#[source] gpulibs_plan::ManifestError),

    /// The manifest's sha256 is not one.
    #[error("component `{id}`: `{sha256}` is not a sha256 digest")]
    BadDigest { id: String, sha256: String },

    /// Taking the lock, checking space, building or activating the install.
    #[error("{what}")]
    Store {
        what: String,
        #[source]
        source: Box<StoreError>,
    },

    /// One or more artifacts could not be fetched or unpacked; the first is the source.
    #[error(
        "{} of {} downloads failed{}; nothing was activated{}",
        failed.len(),
        total,
        if failed.len() > 1 { format!(" ({})", failed.join(", ")) } else { String::new() },
        keeps(previous)
    )]
    Fetch {
        failed: Vec<String>,
        total: usize,
        previous: Option<String>,
        #[source]
        source: Box<ComponentError>,
    },

    /// The new install was built but verification failed; it was not activated.
    #[error(
        "verification of install {install_id} failed: {why}; it was not activated{}",
        keeps(previous)
    )]
    VerifyFailed {
        install_id: String,
        why: String,
        previous: Option<String>,
    },

    /// Every candidate was built and failed verification; none was activated (each failed
    /// install was deleted, its components stay in the store).
    #[error(
        "verification failed for each of the {} candidate(s) tried ({}); nothing was activated{}",
        attempts.len(),
        attempts.iter().map(|a| format!("{}: {}", a.variant, a.summary)).collect::<Vec<_>>().join("; "),
        keeps(previous)
    )]
    NothingVerified {
        attempts: Vec<crate::Attempt>,
        previous: Option<String>,
    },

    /// The offline directory does not exist.
    #[error("the offline directory {} does not exist or is not a directory", path.display())]
    NoOfflineDir { path: PathBuf },
}

fn keeps(previous: &Option<String>) -> String {
    match previous {
        Some(id) => format!(", install {id} stays active"),
        None => String::new(),
    }
}

/// What went wrong with one component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("{id}: download failed")]
    Fetch {
        id: String,
        #[source]
        source: FetchError,
    },
    #[error("{id}: unpacking failed")]
    Unpack {
        id: String,
        #[source]
        source: StoreError,
    },
}

/// What to do about a failed download, from what the failure shows (not from a default).
fn fetch_hint(error: &FetchError) -> &'static str {
    match error {
        FetchError::DigestMismatch { deleted: false, .. }
        | FetchError::Refused { deleted: false, .. } => {
            "the file in the offline directory is not the one the manifest names: replace it \
             with the right one"
        }
        FetchError::Refused {
            provenance: Provenance::Fresh,
            ..
        } => {
            "a fresh download was refused by the unpacker: the server sent bytes that are not \
             the archive (run the command again later: the bytes were deleted, it starts from \
             byte 0), or the vendor's archive is broken; if it persists, tell the vendor"
        }
        FetchError::DigestMismatch { provenance, .. } | FetchError::Refused { provenance, .. } => {
            match provenance {
                Provenance::Fresh => {
                    "the server sent other bytes than the manifest names: run the command \
                     again later (the bytes were deleted, it starts from byte 0); if it \
                     persists, the mirror or the manifest is out of date: tell the vendor"
                }
                Provenance::Resumed { .. } => {
                    "a download resumed with Range got bytes that do not continue the file (the \
                     server, a proxy or cache in between, or the network); the bytes were \
                     deleted: run the command again, it starts from byte 0"
                }
                Provenance::Replayed { .. } => {
                    "the bytes kept on disk from an earlier run were damaged (check the disk); \
                     they were deleted: run the command again, it starts from byte 0"
                }
                Provenance::Verified => {
                    "the archive is exactly the one the manifest names and cannot be unpacked: \
                     report it to the vendor"
                }
            }
        }
        FetchError::SizeMismatch { .. } | FetchError::TooLarge { .. } => {
            "the server's file is not the one the manifest names (an out-of-date mirror, or a \
             wrong size in the manifest): tell the vendor"
        }
        FetchError::Sink { .. } => {
            "unpacking failed on this machine: check the free space and permissions of the \
             install root, then run the command again: the download resumes"
        }
        _ => "run the command again: downloads resume where they stopped",
    }
}

/// What to do about a component the store could not stage. A full disk never gets here:
/// [`InstallError::hint`] answers it first for every step, from [`out_of_room`].
fn unpack_hint(error: &StoreError) -> &'static str {
    if writing_failed(error) {
        "writing into the install root failed (see the cause): check that it is writable and has \
         free space, then run the command again: the download resumes"
    } else {
        "the archive was refused (see the cause); report it to the vendor"
    }
}

/// Whether an unpack failed writing (not because the archive was refused).
fn writing_failed(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Io { .. }
            | StoreError::Unpack {
                source: UnpackError::Write { .. } | UnpackError::NoRoom { .. },
                ..
            }
    )
}

impl gpulibs_hint::Hint for InstallError {
    /// A sentence on what to do, for the CLI's `hint:` line.
    fn hint(&self) -> Option<String> {
        // A full disk is nobody's fault upstream, whatever step hit it: say which file system
        // and what `statvfs` says of it now.
        if let Some(room) = out_of_room(self) {
            let at = room.path.as_deref().and_then(existing_ancestor);
            let (free, when) = match room.free_at_failure {
                Some(f) => (Some(f), When::AtFailure),
                None => (at.and_then(|p| fs_free(p).ok()), When::AfterCleanup),
            };
            return Some(room_hint(room.quota, at, free, when));
        }
        Some(match self {
            InstallError::NothingToInstall { .. } => {
                "run `gpulibs plan` to see why each variant was rejected".into()
            }
            // pip's own error knows the step (install pip, upgrade it, check the index); the
            // renderer shows it from the cause chain, so the general one would only compete.
            InstallError::Resolve(e) if gpulibs_hint::Hint::hint(&**e).is_some() => return None,
            InstallError::Resolve(_) => {
                "check `pip config list` and the network, or install from a vendor manifest \
                 (--manifest) or an offline directory (--offline)"
                    .into()
            }
            // A fetch error that names its own step (an HTTP status, the network, a proxy or CA
            // bundle, an offline file) gives it from the cause chain; this one would compete.
            InstallError::Fetch { source, .. } => match &**source {
                ComponentError::Fetch { source, .. }
                    if gpulibs_hint::Hint::hint(source).is_some() =>
                {
                    return None
                }
                ComponentError::Fetch { source, .. } => fetch_hint(source).into(),
                ComponentError::Unpack { source, .. } => unpack_hint(source).into(),
            },
            InstallError::VerifyFailed { .. } | InstallError::NothingVerified { .. } => {
                "run `gpulibs verify -v` for details, or install with --no-verify to keep the \
                 libraries anyway"
                    .into()
            }
            InstallError::Store { source, .. } if matches!(**source, StoreError::Locked { .. }) => {
                "run again without --no-wait to queue behind the other install".into()
            }
            InstallError::NoOfflineDir { .. } => "check the path given to --offline".into(),
            InstallError::Manifest(_) => {
                "the manifest breaks the rules of docs/manifest.md (Validation): report it to the \
                 vendor, or fix it and sign it again"
                    .into()
            }
            InstallError::Store { source, .. }
                if matches!(
                    **source,
                    StoreError::ListedFileMismatch { .. } | StoreError::ListedFileMissing { .. }
                ) =>
            {
                "the archive does not hold the files the manifest lists: report it to the vendor"
                    .into()
            }
            _ => return None,
        })
    }
}

/// Linux's "no space left on device" and "disk quota exceeded".
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

/// A write that failed for lack of room, found in an error's cause chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRoom {
    /// `EDQUOT` (the user's quota) rather than `ENOSPC` (the file system).
    pub quota: bool,
    /// The file or directory the failing step named, when one did.
    pub path: Option<PathBuf>,
    /// The file system's free room when the write failed, when the store took it
    /// ([`UnpackError::NoRoom`]).
    pub free_at_failure: Option<FsFree>,
}

/// Looks through `err` and its causes (including errors carried inside `io::Error`s) for
/// `ENOSPC` or `EDQUOT`, and the path the nearest step named.
pub fn out_of_room(err: &(dyn Error + 'static)) -> Option<OutOfRoom> {
    fn visit(
        e: &(dyn Error + 'static),
        path: &mut Option<PathBuf>,
        free: &mut Option<FsFree>,
        depth: usize,
    ) -> Option<bool> {
        if depth > 32 {
            return None;
        }
        if let Some(StoreError::Io { path: p, .. } | StoreError::Unpack { path: p, .. }) =
            e.downcast_ref::<StoreError>()
        {
            *path = Some(p.clone());
        }
        match e.downcast_ref::<UnpackError>() {
            Some(UnpackError::Write { path: p, .. }) => *path = Some(p.clone()),
            Some(UnpackError::NoRoom {
                path: p, free: f, ..
            }) => {
                *path = Some(p.clone());
                *free = f.as_deref().copied();
            }
            _ => {}
        }
        if let Some(FetchError::File { path: p, .. }) = e.downcast_ref::<FetchError>() {
            *path = Some(p.clone());
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.raw_os_error() {
                Some(ENOSPC) => return Some(false),
                Some(EDQUOT) => return Some(true),
                _ => {}
            }
            if let Some(inner) = io.get_ref() {
                if let Some(found) = visit(inner, path, free, depth + 1) {
                    return Some(found);
                }
            }
        }
        e.source().and_then(|s| visit(s, path, free, depth + 1))
    }
    let (mut path, mut free_at_failure) = (None, None);
    let quota = visit(err, &mut path, &mut free_at_failure, 0)?;
    Some(OutOfRoom {
        quota,
        path,
        free_at_failure,
    })
}

fn existing_ancestor(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

fn human(bytes: u64) -> String {
    gpulibs_plan::human_bytes(bytes)
}

/// When the free room a hint quotes was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// As the write failed: what ran out shows.
    AtFailure,
    /// After gpulibs removed what it had unpacked, which may have freed what ran out.
    AfterCleanup,
}

/// What to say about a write that ran out of room on the file system holding `at`, given what
/// `statvfs` said of it (`free`, measured `when`). Inodes are named when they were (nearly)
/// all used while blocks were not; blocks when they were; otherwise both, with `df` commands
/// to tell.
pub fn room_hint(quota: bool, at: Option<&Path>, free: Option<FsFree>, when: When) -> String {
    let place = match at {
        Some(p) => format!("the file system holding `{}`", p.display()),
        None => "the install root's file system".to_string(),
    };
    let df = |flag: &str| match at {
        Some(p) => format!("`df {flag} {}`", p.display()),
        None => format!("`df {flag}`"),
    };
    if quota {
        return format!(
            "your disk quota on {place} is used up (blocks or files; `quota -s` shows which): \
             delete some of your files there, or set GPULIBS_HOME to a file system with room"
        );
    }
    let fix = "or set GPULIBS_HOME to a directory on a larger file system";
    let Some(f) = free else {
        return format!(
            "{place} is full (no space or no inodes left); {} and {} show which: free some, {fix}",
            df("-h"),
            df("-i")
        );
    };
    // "Nearly all used": under 1 % left.
    let low = |avail: u64, total: u64| total > 0 && avail.saturating_mul(100) < total;
    let then = match when {
        When::AtFailure => "when the write failed",
        When::AfterCleanup => "now",
    };
    let inodes_low = low(f.inodes_available, f.inodes_total);
    let bytes_low = low(f.bytes_available, f.bytes_total);
    let inodes = format!("{} of {} inodes free", f.inodes_available, f.inodes_total);
    let bytes = format!(
        "{} of {} free",
        human(f.bytes_available),
        human(f.bytes_total)
    );
    match (inodes_low, bytes_low) {
        (true, false) => format!(
            "{place} has run out of inodes ({then}: {inodes}, {}) while it has {bytes}: delete \
             some files there (many small ones free the most inodes), {fix}",
            df("-i")
        ),
        (false, true) => format!(
            "{place} is full ({then}: {bytes}, {}): free some space there, {fix}",
            df("-h")
        ),
        (true, true) => format!(
            "{place} is out of both space and inodes ({then}: {bytes}, {inodes}): free some, \
             {fix}"
        ),
        (false, false) => format!(
            "{place} ran out of space or inodes while gpulibs wrote to it ({then}: {bytes}, \
             {inodes}); {} and {} show which runs out (an archive needs its unpacked size and \
             one inode per file): free some, {fix}",
            df("-h"),
            df("-i")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpulibs_hint::Hint;

    fn full(bytes: (u64, u64), inodes: (u64, u64)) -> Option<FsFree> {
        Some(FsFree {
            bytes_available: bytes.0,
            bytes_total: bytes.1,
            inodes_available: inodes.0,
            inodes_total: inodes.1,
        })
    }

    #[test]
    fn room_hints_name_the_disk_and_what_ran_out() {
        let at = Some(Path::new("/data/gpu-libs"));
        let cases: Vec<(&str, bool, Option<FsFree>, &[&str])> = vec![
            (
                "inodes gone, blocks plenty",
                false,
                full((50 << 30, 100 << 30), (3, 1_000_000)),
                &[
                    "run out of inodes",
                    "3 of 1000000 inodes free",
                    "`df -i /data/gpu-libs`",
                ],
            ),
            (
                "blocks gone",
                false,
                full((1 << 20, 100 << 30), (900_000, 1_000_000)),
                &["is full", "`df -h /data/gpu-libs`"],
            ),
            (
                "both",
                false,
                full((0, 100 << 30), (0, 1_000_000)),
                &["out of both space", "0 of 1000000 inodes"],
            ),
            (
                "room again after cleanup: both named, with df for each",
                false,
                full((50 << 30, 100 << 30), (900_000, 1_000_000)),
                &[
                    "space or inodes",
                    "`df -h /data/gpu-libs`",
                    "`df -i /data/gpu-libs`",
                ],
            ),
            (
                "a file system without inode counts",
                false,
                full((50 << 30, 100 << 30), (0, 0)),
                &["space or inodes", "`df -i /data/gpu-libs`"],
            ),
            (
                "no statvfs",
                false,
                None,
                &["is full", "`df -i /data/gpu-libs`"],
            ),
            ("quota", true, None, &["quota", "`quota -s`"]),
        ];
        let later = room_hint(
            false,
            at,
            full((50 << 30, 100 << 30), (900_000, 1_000_000)),
            When::AfterCleanup,
        );
        assert!(later.contains("(now: "), "{later}");
        for (what, quota, free, want) in cases {
            let hint = room_hint(quota, at, free, When::AtFailure);
            for w in want {
                assert!(hint.contains(w), "{what}: {hint:?} lacks {w:?}");
            }
            assert!(hint.contains("/data/gpu-libs"), "{what}: {hint}");
            assert!(!hint.contains("vendor"), "{what}: {hint}");
        }
    }

    fn unpack_failure(source: StoreError) -> InstallError {
        InstallError::Fetch {
            failed: vec!["cuda".into()],
            total: 1,
            previous: None,
            source: Box::new(ComponentError::Unpack {
                id: "cuda".into(),
                source,
            }),
        }
    }

    #[test]
    fn a_full_disk_is_not_the_vendor_s_problem() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store/.tmp-x/tree/lib/libcudart.so.12");
        let enospc = unpack_failure(StoreError::Unpack {
            sha256: "x".into(),
            path: dir.path().join("store/.tmp-x/tree"),
            source: UnpackError::Write {
                path: file.clone(),
                source: io::Error::from_raw_os_error(ENOSPC),
            },
        });
        let found = out_of_room(&enospc).expect("ENOSPC is found in the chain");
        assert_eq!(
            found,
            OutOfRoom {
                quota: false,
                path: Some(file),
                free_at_failure: None,
            }
        );
        let hint = enospc.hint().unwrap();
        assert!(!hint.contains("vendor"), "{hint}");
        // The path's nearest existing directory is the one statvfs looked at.
        assert!(hint.contains(&dir.path().display().to_string()), "{hint}");
        assert!(hint.contains("df -i"), "{hint}");

        // With the room the store saw as the write failed: inodes, not blocks, ran out.
        let inodes = unpack_failure(StoreError::Unpack {
            sha256: "x".into(),
            path: dir.path().join("store/.tmp-x/tree"),
            source: UnpackError::NoRoom {
                path: dir.path().join("store/.tmp-x/tree/lib/libf48.so.1"),
                free: full((64 << 20, 64 << 20), (0, 60)).map(Box::new),
                source: io::Error::from_raw_os_error(ENOSPC),
            },
        });
        let hint = inodes.hint().unwrap();
        assert!(
            hint.contains("run out of inodes (when the write failed: 0 of 60"),
            "{hint}"
        );

        // Carried inside an io::Error (how a download's sink reports the unpacker's failure).
        let carried = InstallError::Fetch {
            failed: vec!["cuda".into()],
            total: 1,
            previous: None,
            source: Box::new(ComponentError::Fetch {
                id: "cuda".into(),
                source: FetchError::Sink {
                    artifact: "cuda".into(),
                    source: io::Error::other(StoreError::Io {
                        action: "creating",
                        path: dir.path().join("installs/.tmp-1/lib"),
                        source: io::Error::from_raw_os_error(EDQUOT),
                    }),
                },
            }),
        };
        let hint = carried.hint().unwrap();
        assert!(hint.contains("quota"), "{hint}");

        // Another write failure is not the vendor's either; a refused archive still is.
        let eacces = unpack_failure(StoreError::Unpack {
            sha256: "x".into(),
            path: dir.path().into(),
            source: UnpackError::Write {
                path: dir.path().into(),
                source: io::Error::from_raw_os_error(13),
            },
        });
        assert!(eacces.hint().unwrap().contains("writable"));
        let refused = unpack_failure(StoreError::Unpack {
            sha256: "x".into(),
            path: dir.path().into(),
            source: UnpackError::AbsolutePath {
                entry: "/etc/x".into(),
            },
        });
        assert!(refused.hint().unwrap().contains("vendor"));
    }
}
