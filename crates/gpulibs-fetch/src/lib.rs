//! Downloads.
//!
//! Owns: getting the bytes of an artifact from a URL or an offline directory into a sink, in one
//! pass: resumable (HTTP Range into a `.partial` file), retried with backoff, mirrors in order,
//! redirects followed with a limit, proxies and custom CA bundles honoured, and hashed with
//! sha256 while streaming; and the streaming decoders (zstd, gzip, xz, zip members) a sink uses
//! to unpack in that same pass.
//!
//! Must not touch: the install layout or activation (that is `gpulibs-store`: a [`Sink`] stages,
//! and only its `finish`, called after the digest matched, may make anything visible), or decide
//! what to download (that is `gpulibs-plan`). It never reads the process environment on its
//! own: [`NetworkEnv::from_env`] is the caller's choice.
//!
//! # API
//!
//! ```no_run
//! use gpulibs_fetch::{decompressor, fetch, Artifact, Compression, FetchOptions, NetworkEnv, PipeSink};
//! use std::io::Read;
//!
//! let artifact = Artifact {
//!     name: "cudnn-9.10".into(),
//!     urls: vec!["https://mirror-a/cudnn.tar.zst".into(), "https://mirror-b/cudnn.tar.zst".into()],
//!     sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".parse().unwrap(),
//!     size: Some(1_500_000_000),
//! };
//! let mut opts = FetchOptions::new("/var/cache/app/partial");
//! opts.network = NetworkEnv::from_env();
//! // The store unpacks in the same pass; here: count the decompressed bytes.
//! let mut sink = PipeSink::new(|reader| {
//!     std::io::copy(&mut decompressor(Compression::Zstd, reader), &mut std::io::sink())
//! });
//! let fetched = fetch(&artifact, &mut sink, &opts, &|p| eprintln!("{} {}", p.artifact, p.downloaded))?;
//! println!("{} bytes verified, unpacked {:?}", fetched.bytes, sink.take_output());
//! # Ok::<(), gpulibs_fetch::FetchError>(())
//! ```
//!
//! - [`fetch`] / [`Fetcher::fetch`]: one artifact into one [`Sink`]; [`Fetcher::fetch_all`]:
//!   several, N at a time, errors per artifact.
//! - [`fetch_document`] / [`Fetcher::fetch_document`]: a small document (a manifest, its
//!   signature) into memory, with a size cap and no digest; `Ok(None)` on `404`.
//! - [`resolve_url`]: a relative URL made absolute against a base (RFC 3986).
//! - [`Progress`] events (bytes, total, resumed bytes, attempt, mirror, stage) go to a callback;
//!   the CLI draws bars from them.
//! - [`FetchError`]: every variant names the artifact and the URL or file, and says what to do.
//! - [`net`]: the pure proxy rules ([`net::proxy_for`], [`net::bypasses_proxy`]).
//! - [`decompressor`] and [`read_zip_stream`]: `Read`-based streaming decoders for
//!   [`PipeSink`] consumers.
//!
//! Behaviour, retries and messages are described in `docs/fetch.md`.

// `FetchError` carries both digests, the origin and the evidence by value, so every variant
// can be matched and printed without indirection; one is made per failed artifact, so its
// size (about 160 bytes) costs nothing that matters.
#![allow(clippy::result_large_err)]

mod artifact;
mod decode;
mod error;
mod fetch;
pub mod net;
mod sink;

pub use artifact::{
    Artifact, DigestParseError, FetchOptions, Fetched, Origin, Progress, Provenance, RetryPolicy,
    Sha256Digest, Stage, StallRule,
};
pub use decode::{
    decompressor, read_zip_stream, read_zip_stream_listed, Compression, ZipEntry, ZipListing,
    ZipMember,
};
pub use error::FetchError;
pub use fetch::{
    fetch, fetch_document, is_http_url, resolve_url, Fetcher, Request, DOCUMENT_MAX_BYTES,
};
pub use net::NetworkEnv;
pub use sink::{DiscardSink, PipeReader, PipeSink, Sink};
