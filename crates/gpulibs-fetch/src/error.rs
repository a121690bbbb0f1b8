//! Why a fetch failed, in words that say what happened and to what; what to do is the
//! [`Hint`] (the CLI prints it as `hint:`, after the cause chain).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use gpulibs_hint::Hint;

use crate::artifact::{Origin, Provenance, Sha256Digest};

/// A failed fetch. Every variant names the artifact and the URL or file involved. When a fetch
/// fails, nothing was verified: the sink was told to [`abort`](crate::Sink::abort), so the
/// previous install stays active.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The bytes did not match the manifest's digest.
    #[error(
        "sha256 mismatch for {artifact} (from {origin}): expected {expected}, got {actual}{}; {}",
        provenance_note(provenance),
        if *deleted {
            format!("the downloaded bytes were deleted; {}", provenance.suspect())
        } else {
            "the file was left as it is; it is not the file the manifest names".to_string()
        }
    )]
    DigestMismatch {
        /// The artifact's name.
        artifact: String,
        /// Where the bytes came from.
        origin: Origin,
        /// The manifest's digest.
        expected: Sha256Digest,
        /// The digest of the bytes received.
        actual: Sha256Digest,
        /// What the bytes were made of (a fresh download, a resumed one, bytes of an earlier
        /// run): what to suspect.
        provenance: Provenance,
        /// Whether the bytes were deleted (downloads) or left alone (offline files).
        deleted: bool,
    },

    /// The sink refused the bytes themselves (they do not decompress, or break the archive's
    /// rules; the sink's error said `InvalidData`). Before the digest is known that means they
    /// are not the manifest's file; with [`Provenance::Verified`] they are, and the archive is
    /// broken. Either way a download's bytes were deleted, so the next run starts from byte 0
    /// (an offline file is left alone).
    #[error(
        "{artifact}: {}; {}",
        refused_summary(origin, expected, received, *bytes, provenance, *deleted),
        refused_suspect(provenance)
    )]
    Refused {
        /// The artifact's name.
        artifact: String,
        /// Where the bytes came from.
        origin: Origin,
        /// The manifest's digest.
        expected: Sha256Digest,
        /// The sha256 of the bytes received when they were refused.
        received: Sha256Digest,
        /// How many bytes that was.
        bytes: u64,
        /// What they were made of: what to suspect.
        provenance: Provenance,
        /// Whether the bytes were deleted (downloads) or left alone (offline files).
        deleted: bool,
        /// The sink's error.
        #[source]
        source: io::Error,
    },

    /// The server says the file has another size than the manifest (`Content-Range`'s total,
    /// or the end of the file where a `416` says nothing follows).
    #[error(
        "{artifact}: {url} has {declared} bytes ({how}), the manifest says {expected}; the URL \
         serves another file or the manifest is outdated, so it is not downloaded from there; \
         the bytes received were deleted"
    )]
    SizeMismatch {
        /// The artifact's name.
        artifact: String,
        /// The URL (after redirects).
        url: String,
        /// The manifest's size.
        expected: u64,
        /// The size the server gave.
        declared: u64,
        /// Where the server said it.
        how: &'static str,
    },

    /// More bytes arrived than the manifest's size.
    #[error(
        "{artifact} from {origin} is larger than the manifest says ({expected} bytes{}): refused \
         after {received} bytes and deleted; the URL serves another file or the manifest is outdated",
        declared_note(*declared)
    )]
    TooLarge {
        /// The artifact's name.
        artifact: String,
        /// Where the bytes came from.
        origin: Origin,
        /// The manifest's size.
        expected: u64,
        /// Bytes received when the download was stopped.
        received: u64,
        /// The size the server announced (`Content-Length` or `Content-Range`), if it did.
        declared: Option<u64>,
    },

    /// Fewer bytes than the manifest's size, from a file (a download would resume instead).
    #[error(
        "{artifact}: {path} has {actual} bytes, the manifest says {expected}; the file is \
         incomplete or not the one the manifest names",
        path = path.display()
    )]
    TooSmall {
        /// The artifact's name.
        artifact: String,
        /// The file read.
        path: PathBuf,
        /// The manifest's size.
        expected: u64,
        /// The file's size.
        actual: u64,
    },

    /// The server answered with a status that retrying will not change (404, 403, ...).
    #[error("{artifact}: {url} answered HTTP {status}{}", reason_suffix(reason))]
    HttpStatus {
        /// The artifact's name.
        artifact: String,
        /// The URL asked for (after redirects).
        url: String,
        /// The status code.
        status: u16,
        /// The status line's reason phrase.
        reason: String,
        /// What to do: the [`Hint`].
        hint: &'static str,
    },

    /// Connection failures, timeouts, stalls or 5xx answers went on after every retry.
    #[error("{artifact}: downloading {url} failed {attempts} times in a row, last: {last}")]
    Network {
        /// The artifact's name.
        artifact: String,
        /// The URL.
        url: String,
        /// Failed attempts in a row.
        attempts: u32,
        /// The last failure.
        last: String,
        /// Verified-so-far bytes kept in the `.partial` file for the next run (0: none).
        kept: u64,
    },

    /// A URL used up its attempts in all or its time, while it kept failing (it may have been
    /// making progress between failures).
    #[error(
        "{artifact}: gave up on {url} after {attempts} attempts in {} s ({limit}), last: {last}",
        elapsed.as_secs()
    )]
    GaveUp {
        /// The artifact's name.
        artifact: String,
        /// The URL.
        url: String,
        /// Attempts made on it.
        attempts: u32,
        /// Time since its first attempt.
        elapsed: Duration,
        /// The bound that was reached, in words.
        limit: String,
        /// The last failure.
        last: String,
        /// Verified-so-far bytes kept in the `.partial` file for the next run (0: none).
        kept: u64,
    },

    /// A redirect loop, too many redirects, or a redirect without a usable `Location`.
    #[error("{artifact}: {url}: {detail}; the server is misconfigured")]
    Redirect {
        /// The artifact's name.
        artifact: String,
        /// The URL first asked for.
        url: String,
        /// What went wrong.
        detail: String,
    },

    /// The connection could not be secured (certificate not trusted, handshake failed).
    #[error("{artifact}: TLS with {url} failed: {detail}")]
    Tls {
        /// The artifact's name.
        artifact: String,
        /// The URL.
        url: String,
        /// The TLS library's message.
        detail: String,
    },

    /// A URL that cannot be requested (bad syntax, unsupported scheme or proxy).
    #[error("{artifact}: cannot request {url}: {detail}")]
    BadUrl {
        /// The artifact's name.
        artifact: String,
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },

    /// Every URL of the artifact failed; each failure is listed.
    #[error("{artifact}: every URL failed:{}", list(failures))]
    AllMirrorsFailed {
        /// The artifact's name.
        artifact: String,
        /// One failure per URL, in the order tried.
        failures: Vec<FetchError>,
    },

    /// `--offline`: the artifact's file is not in the directory.
    #[error(
        "{artifact}: not found in the offline directory {dir} (looked for {})",
        tried.join(", "),
        dir = dir.display()
    )]
    OfflineMissing {
        /// The artifact's name.
        artifact: String,
        /// The offline directory.
        dir: PathBuf,
        /// File names looked for.
        tried: Vec<String>,
    },

    /// The artifact has no URL, and no offline directory was given.
    #[error("{artifact}: the manifest gives no URL for it")]
    NoUrl {
        /// The artifact's name.
        artifact: String,
    },

    /// Reading or writing a local file failed (the `.partial` file, an offline file).
    #[error("{artifact}: {action} {path} failed", path = path.display())]
    File {
        /// The artifact's name.
        artifact: String,
        /// What was being done ("writing", "reading", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },

    /// The sink (the unpacker) failed for a local reason (its error was not `InvalidData`: a
    /// full disk, permissions): the bytes received are kept for the next run.
    #[error("{artifact}: unpacking failed")]
    Sink {
        /// The artifact's name.
        artifact: String,
        /// The sink's error.
        source: io::Error,
    },

    /// A proxy variable holds something that cannot be used.
    #[error("proxy {value:?} from {variable} cannot be used: {detail}")]
    Proxy {
        /// The environment variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// Why it cannot be used.
        detail: String,
    },

    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` could not be used.
    #[error("CA bundle {path}: {detail}", path = path.display())]
    CaBundle {
        /// The environment variable that named it.
        variable: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why it cannot be used.
        detail: String,
    },
}

impl FetchError {
    /// The artifact the error is about (`None` for a CA bundle error, which concerns all).
    pub fn artifact(&self) -> Option<&str> {
        match self {
            FetchError::DigestMismatch { artifact, .. }
            | FetchError::Refused { artifact, .. }
            | FetchError::SizeMismatch { artifact, .. }
            | FetchError::GaveUp { artifact, .. }
            | FetchError::TooLarge { artifact, .. }
            | FetchError::TooSmall { artifact, .. }
            | FetchError::HttpStatus { artifact, .. }
            | FetchError::Network { artifact, .. }
            | FetchError::Redirect { artifact, .. }
            | FetchError::Tls { artifact, .. }
            | FetchError::BadUrl { artifact, .. }
            | FetchError::AllMirrorsFailed { artifact, .. }
            | FetchError::OfflineMissing { artifact, .. }
            | FetchError::NoUrl { artifact }
            | FetchError::File { artifact, .. }
            | FetchError::Sink { artifact, .. } => Some(artifact),
            FetchError::CaBundle { .. } | FetchError::Proxy { .. } => None,
        }
    }
}

impl Hint for FetchError {
    /// What to do about an HTTP status, a network failure, a proxy or CA bundle that cannot be
    /// used, or a missing offline file; for every URL failing, each failure's hint once. The
    /// failures that say what the bytes were (digest, size, refused) leave the step to the
    /// caller, which knows what was being installed.
    fn hint(&self) -> Option<String> {
        Some(match self {
            FetchError::HttpStatus { hint, .. } => (*hint).to_string(),
            // The server answered, with errors: the network is not what to check.
            FetchError::Network { kept, last, .. } if last.contains("answered HTTP") => format!(
                "the server is failing (HTTP 408, 429 or 5xx): run the command again later{}",
                resume_note(*kept)
            ),
            FetchError::Network { kept, .. } => format!(
                "check the network or proxy settings (HTTPS_PROXY, NO_PROXY), then run the \
                 command again{}",
                resume_note(*kept)
            ),
            FetchError::GaveUp { kept, .. } => {
                format!("run the command again{}", resume_note(*kept))
            }
            FetchError::Redirect { .. } => "try another mirror".into(),
            FetchError::Tls { .. } => "if a proxy or private mirror uses its own certificate \
                                       authority, point SSL_CERT_FILE at its PEM bundle"
                .into(),
            FetchError::OfflineMissing { .. } => {
                "copy the file there or run without --offline".into()
            }
            FetchError::Proxy { variable, .. } | FetchError::CaBundle { variable, .. } => {
                format!("fix or unset {variable}")
            }
            FetchError::AllMirrorsFailed { failures, .. } => {
                let mut hints: Vec<String> = Vec::new();
                for h in failures.iter().filter_map(Hint::hint) {
                    if !hints.contains(&h) {
                        hints.push(h);
                    }
                }
                if hints.is_empty() {
                    return None;
                }
                hints.join("; ")
            }
            FetchError::DigestMismatch { .. }
            | FetchError::Refused { .. }
            | FetchError::SizeMismatch { .. }
            | FetchError::TooLarge { .. }
            | FetchError::TooSmall { .. }
            | FetchError::BadUrl { .. }
            | FetchError::NoUrl { .. }
            | FetchError::File { .. }
            | FetchError::Sink { .. } => return None,
        })
    }
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" {reason}")
    }
}

fn list(failures: &[FetchError]) -> String {
    failures.iter().map(|f| format!("\n  - {f}")).collect()
}

/// What the next run will do with the bytes a failed download kept.
fn resume_note(kept: u64) -> String {
    if kept == 0 {
        String::new()
    } else {
        format!(": it resumes where it stopped (byte {kept})")
    }
}

/// `" (resumed with Range at byte N)"`; nothing for a fresh download.
fn provenance_note(provenance: &Provenance) -> String {
    match provenance {
        Provenance::Fresh => String::new(),
        other => format!(" ({other})"),
    }
}

fn declared_note(declared: Option<u64>) -> String {
    match declared {
        Some(d) => format!("; the server announced {d}"),
        None => String::new(),
    }
}

/// What refused bytes point at. Unlike a digest mismatch, bytes refused before the digest was
/// known may still have been the manifest's (a broken archive), unless they came in pieces.
fn refused_suspect(provenance: &Provenance) -> &'static str {
    match provenance {
        Provenance::Fresh => {
            "the server sends bytes that are not the archive the manifest names (a corrupt or \
             outdated mirror, something in between that rewrites downloads), or the vendor's \
             archive is broken"
        }
        other => other.suspect(),
    }
}

fn refused_summary(
    origin: &Origin,
    expected: &Sha256Digest,
    received: &Sha256Digest,
    bytes: u64,
    provenance: &Provenance,
    deleted: bool,
) -> String {
    let fate = if deleted {
        "deleted"
    } else {
        "the file was left as it is"
    };
    match provenance {
        Provenance::Verified => format!(
            "the {bytes} bytes from {origin} match the manifest's sha256 {expected} but the \
             unpacker refused them ({fate})"
        ),
        other => format!(
            "the bytes from {origin} were refused by the unpacker before their sha256 could be \
             checked ({fate}): expected sha256 {expected}, received {bytes} bytes with sha256 \
             {received} ({other})"
        ),
    }
}
