//! Why an install did not complete. Every variant says what stays active.

use std::path::PathBuf;

use gpulibs_fetch::{FetchError, Provenance};
use gpulibs_sources::EmbeddedError;
use gpulibs_store::StoreError;

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

/// What to do about a component the store could not stage.
fn unpack_hint(error: &StoreError) -> &'static str {
    if disk_full(error) {
        "the disk holding the install root is full: free some space (or set GPULIBS_HOME to a \
         larger file system), then run the command again: the download resumes"
    } else {
        "writing into the install root failed: check its free space and permissions, then run \
         the command again: the download resumes"
    }
}

/// Whether an I/O error in the chain says the disk (or the user's quota) is full.
fn disk_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

impl InstallError {
    /// A sentence on what to do, for the CLI's `hint:` line.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            InstallError::NothingToInstall { .. } => {
                "run `gpulibs plan` to see why each variant was rejected".into()
            }
            InstallError::Resolve(_) => {
                "check `pip config list` and the network, or install from a vendor manifest \
                 (--manifest) or an offline directory (--offline)"
                    .into()
            }
            InstallError::Fetch { source, .. } => match &**source {
                ComponentError::Fetch { source, .. } => fetch_hint(source).into(),
                ComponentError::Unpack { source, .. } => unpack_hint(source).into(),
            },
            InstallError::VerifyFailed { .. } => {
                "run `gpulibs verify -v` for details, or install with --no-verify to keep the \
                 libraries anyway"
                    .into()
            }
            InstallError::Store { source, .. } if matches!(**source, StoreError::Locked { .. }) => {
                "run again without --no-wait to queue behind the other install".into()
            }
            InstallError::Store { source, .. }
                if matches!(**source, StoreError::SystemLibrary { .. }) =>
            {
                "run `gpulibs install --no-reuse` to download every library instead".into()
            }
            InstallError::NoOfflineDir { .. } => "check the path given to --offline".into(),
            _ => return None,
        })
    }
}
