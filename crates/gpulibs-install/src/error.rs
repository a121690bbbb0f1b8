//! Why an install did not complete. Every variant says what stays active.

use std::path::PathBuf;

use gpulibs_fetch::FetchError;
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
                ComponentError::Fetch {
                    source: FetchError::DigestMismatch { .. },
                    ..
                } => "the server or mirror serves other bytes than the manifest names; try \
                      again later or report it to the vendor"
                    .into(),
                ComponentError::Fetch { .. } => {
                    "run the command again: downloads resume where they stopped".into()
                }
                ComponentError::Unpack { .. } => {
                    "the archive was refused; report it to the vendor".into()
                }
            },
            InstallError::VerifyFailed { .. } | InstallError::NothingVerified { .. } => {
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
