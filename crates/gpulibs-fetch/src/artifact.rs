//! What is fetched, how, and what came of it: plain data.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::net::NetworkEnv;

/// A sha256 digest (32 bytes), written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Lowercase hex, as in manifests and file names.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

/// Why a string is not a sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a sha256 digest: expected 64 hex digits")]
pub struct DigestParseError {
    /// The text that was given.
    pub text: String,
}

impl FromStr for Sha256Digest {
    type Err = DigestParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || DigestParseError {
            text: text.to_string(),
        };
        let hex = text.strip_prefix("sha256:").unwrap_or(text).as_bytes();
        if hex.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16).ok_or_else(err);
            out[i] = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
        }
        Ok(Sha256Digest(out))
    }
}

/// One file to fetch, as a manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// A name people recognise (`onnxruntime-gpu-1.31.1`); every message uses it.
    pub name: String,
    /// Where the bytes are: the primary URL first, then mirrors, tried in this order.
    pub urls: Vec<String>,
    /// The digest every byte must match before anything is used.
    pub sha256: Sha256Digest,
    /// The size in bytes when the manifest knows it. A server sending more is refused.
    pub size: Option<u64>,
}

/// Retries of one URL before the next mirror is tried.
///
/// Three bounds, whichever comes first: `attempts` failures in a row, `max_attempts` requests
/// in all, and no new attempt once `max_elapsed` has passed since the first. A URL therefore
/// never loops, whatever its server does; the bytes received so far stay in the `.partial`
/// file for the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failed attempts in a row allowed per URL. An attempt that received new bytes (bytes
    /// past the furthest this URL had delivered; bytes received again after a restart do not
    /// count) resets the count, so a long download over a flaky link keeps going while it
    /// makes progress.
    pub attempts: u32,
    /// Attempts (requests) per URL in all, progress or not.
    pub max_attempts: u32,
    /// No new attempt on a URL starts after this much time since its first attempt. An attempt
    /// that is receiving bytes is not cut (the stall rule watches it).
    pub max_elapsed: Duration,
    /// Delay before the first retry; doubled for each further one, with jitter.
    pub base_delay: Duration,
    /// Upper bound of one delay (also caps a server's `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            max_attempts: 50,
            max_elapsed: Duration::from_secs(30 * 60),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// What the bytes a verdict is about were made of: the evidence for what to suspect when they
/// turn out wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// One response (or one read of a file) from byte 0, in this run.
    Fresh,
    /// A download resumed with `Range` in this run, at byte `at`: the bytes after it came from
    /// another response than those before.
    Resumed {
        /// The first byte of the resumed part.
        at: u64,
    },
    /// The first `bytes` came from an earlier run's `.partial` file.
    Replayed {
        /// Bytes replayed from the file.
        bytes: u64,
    },
    /// Every byte matched the manifest's sha256: the bytes are the file the manifest names.
    Verified,
}

impl Provenance {
    /// What the evidence points at, as a phrase for a message: who sent or kept bad bytes.
    pub fn suspect(&self) -> &'static str {
        match self {
            Provenance::Fresh => {
                "the server sends other bytes than the manifest names (a corrupt or outdated \
                 mirror, something in between that rewrites downloads, or a manifest naming \
                 another file)"
            }
            Provenance::Resumed { .. } => {
                "a download resumed with Range got bytes that do not continue the file (the \
                 server, a proxy or cache in between, or the network)"
            }
            Provenance::Replayed { .. } => {
                "the bytes kept on disk from an earlier run were damaged (the disk, or an \
                 earlier bad transfer)"
            }
            Provenance::Verified => {
                "the archive is the one the manifest names, and it is broken (the vendor's \
                 archive)"
            }
        }
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::Fresh => f.write_str("downloaded from byte 0 in this run"),
            Provenance::Resumed { at } => write!(f, "resumed with Range at byte {at}"),
            Provenance::Replayed { bytes } => {
                write!(f, "the first {bytes} bytes kept from an earlier run")
            }
            Provenance::Verified => f.write_str("matching the manifest's sha256"),
        }
    }
}

/// When a download counts as stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallRule {
    /// Fewer bytes than this per second, averaged over `window`, is a stall.
    pub min_bytes_per_sec: u64,
    /// How long the rate must stay below the minimum.
    pub window: Duration,
}

impl Default for StallRule {
    fn default() -> Self {
        StallRule {
            min_bytes_per_sec: 1024,
            window: Duration::from_secs(30),
        }
    }
}

/// How [`crate::fetch`] works. Every input is data; nothing is read from the environment
/// except through [`NetworkEnv::from_env`], which the caller chooses to call.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Where `<sha256>.partial` files live while a download is incomplete (created if missing).
    pub partial_dir: PathBuf,
    /// Keep the verified file as `<partial_dir>/<sha256>` (a cache or a mirror for `--offline`)
    /// instead of deleting it after success.
    pub keep_verified: bool,
    /// Install from this directory instead of the network (`--offline DIR`).
    pub offline_dir: Option<PathBuf>,
    /// Retries per URL.
    pub retry: RetryPolicy,
    /// Time allowed to open a connection (TCP, proxy and TLS).
    pub connect_timeout: Duration,
    /// Time allowed with no byte at all from the server (headers or body).
    pub idle_timeout: Duration,
    /// A trickle below this rate is a stall: the attempt is abandoned and resumed.
    pub stall: StallRule,
    /// Redirects followed per request before giving up.
    pub max_redirects: u32,
    /// Proxies and CA bundles.
    pub network: NetworkEnv,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl FetchOptions {
    /// Defaults for downloads into `partial_dir`, with no proxy and the built-in CA roots.
    /// Use `network: NetworkEnv::from_env()` to honour the user's environment.
    pub fn new(partial_dir: impl Into<PathBuf>) -> Self {
        FetchOptions {
            partial_dir: partial_dir.into(),
            keep_verified: false,
            offline_dir: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            stall: StallRule::default(),
            max_redirects: 10,
            network: NetworkEnv::default(),
            user_agent: concat!("gpulibs/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// Where verified bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Downloaded from this URL (the one that finished; after redirects, the one asked for).
    Url(String),
    /// Read from this file (offline directory, or a complete `.partial` from an earlier run).
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Url(url) => f.write_str(url),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A fetch that succeeded: every byte went through the hasher and the sink, and matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The artifact's name.
    pub artifact: String,
    /// The verified digest (equal to the artifact's).
    pub sha256: Sha256Digest,
    /// Bytes in the artifact.
    pub bytes: u64,
    /// Where the last bytes came from.
    pub origin: Origin,
    /// Bytes that were already on disk from an earlier, interrupted run.
    pub resumed_from: u64,
    /// HTTP requests made (0 offline), redirects not counted.
    pub requests: u32,
    /// The kept file, when [`FetchOptions::keep_verified`] asked for one.
    pub kept: Option<PathBuf>,
}

/// What is happening to one artifact, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage<'a> {
    /// A request is about to be sent, or a file opened.
    Starting,
    /// Bytes arrived (`downloaded` grew).
    Receiving,
    /// The download starts over from byte 0 (the server ignored Range, or the bytes already on
    /// disk were unusable).
    Restarting,
    /// The attempt failed and another follows after `delay`.
    Retrying {
        /// Why the attempt failed.
        reason: &'a str,
        /// The wait before the next attempt.
        delay: std::time::Duration,
    },
    /// Every byte arrived and matched the digest.
    Verified,
}

/// A progress event. `downloaded` counts bytes the sink has received, resumed ones included;
/// `downloaded - resumed_from` over time is the transfer rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    /// The artifact's name.
    pub artifact: &'a str,
    /// URL or file the bytes come from.
    pub source: &'a str,
    /// Index of `source` in the artifact's URLs (0 = primary).
    pub mirror: usize,
    /// Attempt on this URL, from 1.
    pub attempt: u32,
    /// Bytes received so far.
    pub downloaded: u64,
    /// Total bytes when known (from the manifest, else from the server).
    pub total: Option<u64>,
    /// Bytes that came from an earlier run's `.partial` file.
    pub resumed_from: u64,
    /// What happened.
    pub stage: Stage<'a>,
}
