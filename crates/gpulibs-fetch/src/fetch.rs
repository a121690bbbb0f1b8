//! The download loop: one pass from the network (or a file) into the hasher, the `.partial` file
//! and the sink; resume, retries, mirrors, redirects and the size guard.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Agent;

use crate::artifact::{
    Artifact, FetchOptions, Fetched, Origin, Progress, Provenance, Sha256Digest, Stage,
};
use crate::error::FetchError;
use crate::net::{extra_roots, proxy_for, split_url};
use crate::sink::Sink;

const CHUNK: usize = 64 * 1024;

/// Fetches `artifact` into `sink`: see [`Fetcher::fetch`]. Builds a [`Fetcher`] for one call;
/// keep a `Fetcher` to reuse connections and TLS settings across artifacts.
pub fn fetch(
    artifact: &Artifact,
    sink: &mut dyn Sink,
    opts: &FetchOptions,
    progress: &dyn Fn(&Progress),
) -> Result<Fetched, FetchError> {
    Fetcher::new(opts)?.fetch(artifact, sink, progress)
}

/// The most bytes gpulibs accepts for a manifest or its signature (16 MiB): a release manifest
/// is a few hundred KiB; anything bigger is not one.
pub const DOCUMENT_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Downloads a small document (a manifest, a signature) into memory: see
/// [`Fetcher::fetch_document`]. `Ok(None)` when the server answers `404`/`410`.
pub fn fetch_document(
    url: &str,
    max_bytes: u64,
    opts: &FetchOptions,
) -> Result<Option<Vec<u8>>, FetchError> {
    Fetcher::new(opts)?.fetch_document(url, max_bytes)
}

/// One artifact and the sink its bytes go to, for [`Fetcher::fetch_all`].
pub type Request<'a> = (&'a Artifact, &'a mut (dyn Sink + Send));

/// Downloads with one set of options: HTTP agents (direct and per proxy) with their connection
/// pools and trusted roots are built once.
pub struct Fetcher {
    opts: FetchOptions,
    direct: Agent,
    /// One agent per distinct proxy URL.
    proxied: Vec<(String, Agent)>,
}

impl Fetcher {
    /// Checks the proxies and CA bundles of `opts.network` and builds the agents.
    pub fn new(opts: &FetchOptions) -> Result<Fetcher, FetchError> {
        let extra = extra_roots(&opts.network).map_err(|e| FetchError::CaBundle {
            variable: e.variable,
            path: e.path,
            detail: e.detail,
        })?;
        let roots = if extra.is_empty() {
            RootCerts::WebPki
        } else {
            let mozilla = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned());
            let added = extra
                .iter()
                .map(|der| Certificate::from_der(der).to_owned());
            RootCerts::from(mozilla.chain(added))
        };
        let direct = build_agent(opts, None, &roots);
        let mut proxied = Vec::new();
        let env = &opts.network;
        for (variable, value) in [
            ("HTTPS_PROXY", &env.https_proxy),
            ("HTTP_PROXY", &env.http_proxy),
            ("ALL_PROXY", &env.all_proxy),
        ] {
            let Some(value) = value else { continue };
            if proxied.iter().any(|(v, _)| v == value) {
                continue;
            }
            let proxy = parse_proxy(variable, value)?;
            proxied.push((value.clone(), build_agent(opts, Some(proxy), &roots)));
        }
        Ok(Fetcher {
            opts: opts.clone(),
            direct,
            proxied,
        })
    }

    /// The options this fetcher was built with.
    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    /// Fetches `artifact` into `sink`, verifying its sha256 on the way.
    ///
    /// Bytes go once through the hasher, the `<partial_dir>/<sha256>.partial` file and the sink.
    /// A `.partial` left by an earlier run is replayed into the hasher and the sink, then the
    /// download continues with `Range`. Failed attempts are retried with backoff; the URLs are
    /// tried in order. On success the sink's `finish` is called and the `.partial` file removed
    /// (or kept as `<sha256>` with `keep_verified`). On any failure the sink's `abort` is
    /// called; bytes that failed verification are deleted.
    pub fn fetch(
        &self,
        artifact: &Artifact,
        sink: &mut dyn Sink,
        progress: &dyn Fn(&Progress),
    ) -> Result<Fetched, FetchError> {
        let result = match &self.opts.offline_dir {
            Some(dir) => self.fetch_offline(artifact, dir, sink, progress),
            None => self.fetch_network(artifact, sink, progress),
        };
        if result.is_err() {
            sink.abort();
        }
        result
    }

    /// Fetches several artifacts, `jobs` at a time, each into its own sink. Results come back in
    /// the order of `requests`; one failure does not stop the others.
    pub fn fetch_all(
        &self,
        requests: Vec<Request<'_>>,
        jobs: usize,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Vec<Result<Fetched, FetchError>> {
        let count = requests.len();
        let queue: Vec<Mutex<Option<Request<'_>>>> =
            requests.into_iter().map(|r| Mutex::new(Some(r))).collect();
        let results: Vec<Mutex<Option<Result<Fetched, FetchError>>>> =
            (0..count).map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..jobs.clamp(1, count.max(1)) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let taken = queue[index]
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    let Some((artifact, sink)) = taken else {
                        continue;
                    };
                    let result = self.fetch(artifact, sink, &|p| progress(p));
                    *results[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                });
            }
        });
        results
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .expect("every request was fetched")
            })
            .collect()
    }

    fn agent_for(&self, url: &str) -> &Agent {
        match proxy_for(&self.opts.network, url) {
            Some(proxy) => self
                .proxied
                .iter()
                .find(|(p, _)| p == proxy)
                .map_or(&self.direct, |(_, agent)| agent),
            None => &self.direct,
        }
    }

    fn fetch_offline(
        &self,
        artifact: &Artifact,
        dir: &Path,
        sink: &mut dyn Sink,
        progress: &dyn Fn(&Progress),
    ) -> Result<Fetched, FetchError> {
        let mut tried: Vec<String> = Vec::new();
        for url in &artifact.urls {
            if let Some(name) = file_name_of(url) {
                if !tried.contains(&name) {
                    tried.push(name);
                }
            }
        }
        tried.push(artifact.sha256.to_hex());
        let Some(path) = tried.iter().map(|n| dir.join(n)).find(|p| p.is_file()) else {
            return Err(FetchError::OfflineMissing {
                artifact: artifact.name.clone(),
                dir: dir.to_path_buf(),
                tried,
            });
        };
        let file_error = |action, source| FetchError::File {
            artifact: artifact.name.clone(),
            action,
            path: path.clone(),
            source,
        };
        let mut file = File::open(&path).map_err(|e| file_error("opening", e))?;
        let source = path.display().to_string();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut have = 0u64;
        let event = |stage, have| Progress {
            artifact: &artifact.name,
            source: &source,
            mirror: 0,
            attempt: 1,
            downloaded: have,
            total: artifact.size,
            resumed_from: 0,
            stage,
        };
        progress(&event(Stage::Starting, 0));
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(file_error("reading", e)),
            };
            let after = have.saturating_add(n as u64);
            if let Some(size) = artifact.size.filter(|&size| after > size) {
                return Err(FetchError::TooLarge {
                    artifact: artifact.name.clone(),
                    origin: Origin::File(path.clone()),
                    expected: size,
                    received: after,
                    declared: None,
                });
            }
            hasher.update(&buf[..n]);
            have = after;
            if let Err(e) = sink.write(&buf[..n]) {
                return Err(refused_or_local(
                    artifact,
                    Origin::File(path.clone()),
                    Sha256Digest(hasher.clone().finalize().into()),
                    have,
                    Provenance::Fresh,
                    false,
                    e,
                ));
            }
            progress(&event(Stage::Receiving, have));
        }
        if let Some(size) = artifact.size.filter(|&s| s != have) {
            return Err(FetchError::TooSmall {
                artifact: artifact.name.clone(),
                path,
                expected: size,
                actual: have,
            });
        }
        let actual = Sha256Digest(hasher.finalize().into());
        if actual != artifact.sha256 {
            return Err(FetchError::DigestMismatch {
                artifact: artifact.name.clone(),
                origin: Origin::File(path),
                expected: artifact.sha256,
                actual,
                provenance: Provenance::Fresh,
                deleted: false,
            });
        }
        if let Err(e) = sink.finish() {
            return Err(refused_or_local(
                artifact,
                Origin::File(path),
                actual,
                have,
                Provenance::Verified,
                false,
                e,
            ));
        }
        progress(&event(Stage::Verified, have));
        Ok(Fetched {
            artifact: artifact.name.clone(),
            sha256: actual,
            bytes: have,
            origin: Origin::File(path),
            resumed_from: 0,
            requests: 0,
            kept: None,
        })
    }

    fn fetch_network(
        &self,
        artifact: &Artifact,
        sink: &mut dyn Sink,
        progress: &dyn Fn(&Progress),
    ) -> Result<Fetched, FetchError> {
        if artifact.urls.is_empty() {
            return Err(FetchError::NoUrl {
                artifact: artifact.name.clone(),
            });
        }
        let dir = &self.opts.partial_dir;
        let partial_path = dir.join(format!("{}.partial", artifact.sha256));
        let file_error = |action, source| FetchError::File {
            artifact: artifact.name.clone(),
            action,
            path: partial_path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| FetchError::File {
            artifact: artifact.name.clone(),
            action: "creating",
            path: dir.clone(),
            source: e,
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial_path)
            .map_err(|e| file_error("opening", e))?;
        let mut state = State {
            artifact,
            partial_path: partial_path.clone(),
            file,
            hasher: Sha256::new(),
            have: 0,
            resumed_from: 0,
            resumed_at: None,
            declared_total: None,
            total: artifact.size,
            sink,
            requests: 0,
        };
        state.replay_partial(progress)?;

        let mut failures = Vec::new();
        let mut done_from = None;
        if artifact.size == Some(state.have) && state.have > 0 {
            // An earlier run got every byte but stopped before verifying.
            if state.digest() == artifact.sha256 {
                done_from = Some(Origin::File(partial_path.clone()));
            } else {
                state.restart("", 0, progress)?;
            }
        }
        if done_from.is_none() {
            let mut mirror = 0;
            // Bytes that were not one fresh response (a part replayed from an earlier run, or
            // resumed with Range) may be the wrong ones for that reason alone: a mismatch or a
            // refusal of such bytes earns the same URL one fresh download from byte 0.
            let mut fresh_retry_used = false;
            while let Some(url) = artifact.urls.get(mirror) {
                let outcome = self.download_from(&mut state, mirror, url, progress);
                let error = match outcome {
                    Ok(()) => {
                        let actual = state.digest();
                        if actual == artifact.sha256 {
                            done_from = Some(Origin::Url(url.clone()));
                            break;
                        }
                        FetchError::DigestMismatch {
                            artifact: artifact.name.clone(),
                            origin: Origin::Url(url.clone()),
                            expected: artifact.sha256,
                            actual,
                            provenance: state.provenance(),
                            deleted: true,
                        }
                    }
                    Err(e) => e,
                };
                match &error {
                    // The bytes on disk are wrong (or not this manifest's file): they are
                    // deleted, and the next try starts from zero.
                    FetchError::DigestMismatch { provenance, .. }
                    | FetchError::Refused { provenance, .. } => {
                        let provenance = *provenance;
                        state.restart(url, mirror, progress)?;
                        if provenance == Provenance::Verified {
                            // The manifest's own bytes: every mirror serves the same.
                            return Err(error);
                        }
                        if provenance != Provenance::Fresh && !fresh_retry_used {
                            fresh_retry_used = true;
                            continue;
                        }
                    }
                    FetchError::TooLarge { .. } | FetchError::SizeMismatch { .. } => {
                        state.restart(url, mirror, progress)?;
                    }
                    // Local problems: another mirror will not help.
                    FetchError::File { .. } | FetchError::Sink { .. } => return Err(error),
                    _ => {}
                }
                failures.push(error);
                mirror += 1;
            }
        }
        let Some(origin) = done_from else {
            drop(state.file);
            if state.have == 0 {
                let _ = std::fs::remove_file(&partial_path);
            }
            return Err(if failures.len() == 1 {
                failures.pop().expect("one failure")
            } else {
                FetchError::AllMirrorsFailed {
                    artifact: artifact.name.clone(),
                    failures,
                }
            });
        };
        let bytes = state.have;
        if let Err(e) = state.sink.finish() {
            if e.kind() != io::ErrorKind::InvalidData {
                // A local failure: the verified bytes stay for the next run.
                return Err(sink_error(artifact, e));
            }
            // The bytes are the manifest's and the archive is refused: replaying them would
            // only fail again.
            drop(state.file);
            let _ = std::fs::remove_file(&partial_path);
            return Err(FetchError::Refused {
                artifact: artifact.name.clone(),
                origin,
                expected: artifact.sha256,
                received: artifact.sha256,
                bytes,
                provenance: Provenance::Verified,
                deleted: true,
                source: e,
            });
        }
        drop(state.file);
        let kept = if self.opts.keep_verified {
            let kept = dir.join(artifact.sha256.to_hex());
            std::fs::rename(&partial_path, &kept).map_err(|e| file_error("renaming", e))?;
            Some(kept)
        } else {
            std::fs::remove_file(&partial_path).map_err(|e| file_error("removing", e))?;
            None
        };
        let source = origin.to_string();
        progress(&Progress {
            artifact: &artifact.name,
            source: &source,
            mirror: 0,
            attempt: 1,
            downloaded: bytes,
            total: Some(bytes),
            resumed_from: state.resumed_from,
            stage: Stage::Verified,
        });
        Ok(Fetched {
            artifact: artifact.name.clone(),
            sha256: artifact.sha256,
            bytes,
            origin,
            resumed_from: state.resumed_from,
            requests: state.requests,
            kept,
        })
    }

    /// Attempts on one URL until it delivers the whole body or fails for good: at most
    /// `retry.attempts` failures in a row without new bytes, `retry.max_attempts` attempts in
    /// all, and no new attempt after `retry.max_elapsed`.
    fn download_from(
        &self,
        state: &mut State<'_>,
        mirror: usize,
        url: &str,
        progress: &dyn Fn(&Progress),
    ) -> Result<(), FetchError> {
        let policy = self.opts.retry;
        let started = Instant::now();
        let mut failed_in_row = 0u32;
        let mut attempt = 0u32;
        // The furthest this URL has got: bytes received again after a restart are no progress.
        let mut furthest = state.have;
        state.declared_total = None;
        loop {
            attempt += 1;
            let reason = match self.attempt(state, mirror, url, attempt, progress) {
                Ok(()) => return Ok(()),
                Err(Failure::Final(mut error)) => {
                    if let FetchError::Network { kept, .. } = error.as_mut() {
                        *kept = state.have;
                    }
                    return Err(*error);
                }
                Err(Failure::Retry {
                    reason,
                    retry_after,
                }) => {
                    if state.have > furthest {
                        furthest = state.have;
                        failed_in_row = 0;
                    }
                    failed_in_row += 1;
                    if failed_in_row >= policy.attempts.max(1) {
                        return Err(FetchError::Network {
                            artifact: state.artifact.name.clone(),
                            url: url.to_string(),
                            attempts: failed_in_row,
                            last: last_failure(url, reason),
                            kept: state.have,
                        });
                    }
                    let limit = if attempt >= policy.max_attempts.max(1) {
                        Some(format!("at most {} attempts per URL", policy.max_attempts))
                    } else if started.elapsed() >= policy.max_elapsed {
                        Some(format!(
                            "no new attempt after {} s",
                            policy.max_elapsed.as_secs_f64()
                        ))
                    } else {
                        None
                    };
                    if let Some(limit) = limit {
                        return Err(FetchError::GaveUp {
                            artifact: state.artifact.name.clone(),
                            url: url.to_string(),
                            attempts: attempt,
                            elapsed: started.elapsed(),
                            limit,
                            last: last_failure(url, reason),
                            kept: state.have,
                        });
                    }
                    (reason, retry_after)
                }
            };
            let delay = backoff(&policy, failed_in_row, reason.1);
            progress(&state.event(
                url,
                mirror,
                attempt,
                Stage::Retrying {
                    reason: &reason.0,
                    delay,
                },
            ));
            std::thread::sleep(delay);
        }
    }

    /// Downloads a small *document* into memory: a manifest, its `.minisig`, an index.
    ///
    /// Unlike [`Fetcher::fetch`] there is no digest to check (a manifest's integrity comes from
    /// its signature, checked by the caller), no `.partial` file, no resume and no mirrors: each
    /// attempt starts at byte 0. The rest is shared with artifacts: the same agents (proxies, CA
    /// bundles, timeouts), redirects followed by gpulibs up to `max_redirects`, and the same
    /// retries with backoff on connection failures, timeouts, `408`, `429` and `5xx`.
    ///
    /// Returns `Ok(None)` when the server answers `404` or `410` (for a signature: the manifest
    /// is unsigned, which the caller decides about). A body larger than `max_bytes` (by its
    /// `Content-Length`, or while it streams) is refused with [`FetchError::TooLarge`] and not
    /// retried. With [`FetchOptions::offline_dir`] no request is made: the file named by the
    /// URL's last path segment is read from that directory (`None` when it is not there).
    pub fn fetch_document(&self, url: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let name = file_name_of(url).unwrap_or_else(|| url.to_string());
        if let Some(dir) = &self.opts.offline_dir {
            return read_document_file(&name, dir, url, max_bytes);
        }
        let policy = self.opts.retry;
        let started = Instant::now();
        let mut failed_in_row = 0u32;
        loop {
            match self.document_attempt(&name, url, max_bytes) {
                Ok(found) => return Ok(found),
                Err(Failure::Final(error)) => return Err(*error),
                Err(Failure::Retry {
                    reason,
                    retry_after,
                }) => {
                    // Every failure counts (a document has no progress to keep), so the
                    // attempts in a row are the attempts in all.
                    failed_in_row += 1;
                    if failed_in_row >= policy.attempts.max(1).min(policy.max_attempts.max(1)) {
                        return Err(FetchError::Network {
                            artifact: name,
                            url: url.to_string(),
                            attempts: failed_in_row,
                            last: last_failure(url, reason),
                            kept: 0,
                        });
                    }
                    if started.elapsed() >= policy.max_elapsed {
                        return Err(FetchError::GaveUp {
                            artifact: name,
                            url: url.to_string(),
                            attempts: failed_in_row,
                            elapsed: started.elapsed(),
                            limit: format!(
                                "no new attempt after {} s",
                                policy.max_elapsed.as_secs_f64()
                            ),
                            last: last_failure(url, reason),
                            kept: 0,
                        });
                    }
                    std::thread::sleep(backoff(&policy, failed_in_row, retry_after));
                }
            }
        }
    }

    /// One request for a document (plus its redirects) and its whole body.
    fn document_attempt(
        &self,
        name: &str,
        url: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let (response, current) = self.get_following(name, url, 0)?;
        let header = |key: &str| header(&response, key);
        match response.status().as_u16() {
            200 => {}
            404 | 410 => return Ok(None),
            _ => return Err(status_failure(name, current, &response)),
        }
        let too_large = |received: u64, declared: Option<u64>| {
            Failure::final_error(FetchError::TooLarge {
                artifact: name.to_string(),
                origin: Origin::Url(current.clone()),
                expected: max_bytes,
                received,
                declared,
            })
        };
        let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        if content_length.is_some_and(|length| length > max_bytes) {
            return Err(too_large(0, content_length));
        }
        let mut body = response.into_body().into_reader();
        let mut bytes = Vec::with_capacity(content_length.unwrap_or(0) as usize);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::Retry {
                        reason: format!(
                            "connection to {current} lost at byte {}: {e}",
                            bytes.len()
                        ),
                        retry_after: None,
                    })
                }
            };
            if (bytes.len() + n) as u64 > max_bytes {
                return Err(too_large((bytes.len() + n) as u64, content_length));
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        if let Some(length) = content_length.filter(|&l| (bytes.len() as u64) < l) {
            return Err(Failure::Retry {
                reason: format!(
                    "{current} ended the body at byte {} of {length}",
                    bytes.len()
                ),
                retry_after: None,
            });
        }
        Ok(Some(bytes))
    }

    /// Sends a GET for `url` (with `Range: bytes=FROM-` when `range_from` > 0) and follows
    /// redirects itself: absolute or relative `Location`, up to `max_redirects`, a URL seen twice
    /// is a loop. Returns the final response and the URL that gave it.
    fn get_following(
        &self,
        name: &str,
        url: &str,
        range_from: u64,
    ) -> Result<(ureq::http::Response<ureq::Body>, String), Failure> {
        let mut chain = vec![url.to_string()];
        loop {
            let current = chain.last().expect("chain starts with url").clone();
            if split_url(&current).is_none() {
                return Err(Failure::final_error(FetchError::BadUrl {
                    artifact: name.to_string(),
                    url: current,
                    detail: "only absolute http:// and https:// URLs can be downloaded".into(),
                }));
            }
            let mut request = self
                .agent_for(&current)
                .get(&current)
                .header("Accept-Encoding", "identity");
            if range_from > 0 {
                request = request.header("Range", &format!("bytes={range_from}-"));
            }
            let response = request.call().map_err(|e| classify(name, &current, e))?;
            let status = response.status().as_u16();
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                return Ok((response, current));
            }
            let redirect_error = |detail: String| {
                Failure::final_error(FetchError::Redirect {
                    artifact: name.to_string(),
                    url: url.to_string(),
                    detail,
                })
            };
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    redirect_error(format!("{current} answered {status} without a Location"))
                })?;
            let next = resolve_location(&current, location).ok_or_else(|| {
                redirect_error(format!("{current} redirects to an unusable {location:?}"))
            })?;
            if chain.contains(&next) {
                chain.push(next);
                return Err(redirect_error(format!(
                    "redirect loop: {}",
                    chain.join(" -> ")
                )));
            }
            if chain.len() > self.opts.max_redirects as usize {
                return Err(redirect_error(format!(
                    "more than {} redirects (last: {next})",
                    self.opts.max_redirects
                )));
            }
            chain.push(next);
        }
    }

    /// One request (plus its redirects) and its body.
    fn attempt(
        &self,
        state: &mut State<'_>,
        mirror: usize,
        url: &str,
        attempt: u32,
        progress: &dyn Fn(&Progress),
    ) -> Result<(), Failure> {
        let artifact = state.artifact;
        progress(&state.event(url, mirror, attempt, Stage::Starting));
        state.requests += 1;
        let (response, current) = self.get_following(&artifact.name, url, state.have)?;
        let header = |key: &str| header(&response, key);
        let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let size_mismatch = |declared: u64, how: &'static str| {
            Failure::final_error(FetchError::SizeMismatch {
                artifact: artifact.name.clone(),
                url: current.clone(),
                expected: artifact.size.unwrap_or_default(),
                declared,
                how,
            })
        };
        let expected_end = match response.status().as_u16() {
            200 => {
                if state.have > 0 {
                    // Range ignored: the body starts at byte 0.
                    state
                        .restart(url, mirror, progress)
                        .map_err(Failure::final_error)?;
                }
                // A Content-Length other than the manifest's size is not refused here: the
                // body is cut at the manifest's size, a short one is resumed with Range, and
                // the answer to that (a 416 at the end of the file) settles it.
                state.declared_total = content_length;
                content_length
            }
            206 => {
                let range = header("content-range").and_then(|v| parse_content_range(&v));
                match range {
                    Some((start, total)) if start == state.have => {
                        if let (Some(total), Some(size)) = (total, artifact.size) {
                            if total != size {
                                return Err(size_mismatch(total, "its Content-Range total"));
                            }
                        }
                        let end = total.or(content_length.and_then(|l| start.checked_add(l)));
                        state.declared_total = end;
                        if start > state.resumed_from {
                            state.resumed_at.get_or_insert(start);
                        }
                        end
                    }
                    _ => {
                        // Not the bytes we asked for: start over with a plain request.
                        let what = header("content-range").unwrap_or_else(|| "none".into());
                        state
                            .restart(url, mirror, progress)
                            .map_err(Failure::final_error)?;
                        return Err(Failure::Retry {
                            reason: format!(
                                "{current} answered a range ({what}) other than bytes={}-",
                                state.have
                            ),
                            retry_after: None,
                        });
                    }
                }
            }
            416 if state.have > 0 => {
                // `Content-Range: bytes */TOTAL`, else the total the last answer gave.
                let total = header("content-range")
                    .and_then(|v| parse_unsatisfied_range(&v))
                    .or(state.declared_total);
                if let (Some(total), Some(size)) = (total, artifact.size) {
                    if total != size && total <= state.have {
                        // Nothing follows the bytes we have: the server's file ends short of
                        // the manifest's size (a retry would fetch the same bytes again).
                        return Err(size_mismatch(
                            total,
                            "a 416 answer says the file ends there",
                        ));
                    }
                }
                state
                    .restart(url, mirror, progress)
                    .map_err(Failure::final_error)?;
                return Err(Failure::Retry {
                    reason: format!("{current} refused to resume (HTTP 416)"),
                    retry_after: None,
                });
            }
            _ => return Err(status_failure(&artifact.name, current, &response)),
        };
        if state.total.is_none() {
            state.total = expected_end;
        }
        let mut body = response.into_body().into_reader();
        let mut buf = vec![0u8; CHUNK];
        let stall = self.opts.stall;
        let mut window_start = Instant::now();
        let mut window_bytes = 0u64;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Every byte the manifest names arrived; a wrong Content-Length is the server's
                // problem, and the digest decides.
                Err(_) if artifact.size == Some(state.have) => break,
                Err(e) => {
                    return Err(Failure::Retry {
                        reason: format!("connection to {current} lost at byte {}: {e}", state.have),
                        retry_after: None,
                    })
                }
            };
            state.accept(&buf[..n], &current)?;
            progress(&state.event(url, mirror, attempt, Stage::Receiving));
            window_bytes += n as u64;
            let elapsed = window_start.elapsed();
            if elapsed >= stall.window {
                if (window_bytes as f64) < stall.min_bytes_per_sec as f64 * elapsed.as_secs_f64() {
                    return Err(Failure::Retry {
                        reason: format!(
                            "{current} stalled: {window_bytes} bytes in {:.0} s, below {} bytes/s",
                            elapsed.as_secs_f64(),
                            stall.min_bytes_per_sec
                        ),
                        retry_after: None,
                    });
                }
                window_start = Instant::now();
                window_bytes = 0;
            }
        }
        let wanted = artifact.size.or(expected_end);
        if let Some(wanted) = wanted.filter(|&w| state.have < w) {
            return Err(Failure::Retry {
                reason: format!(
                    "{current} ended the body at byte {} of {wanted}",
                    state.have
                ),
                retry_after: None,
            });
        }
        Ok(())
    }
}

/// How one attempt failed.
enum Failure {
    /// Worth another attempt on the same URL.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// This URL will not work (or nothing will): move on.
    Final(Box<FetchError>),
}

impl Failure {
    fn final_error(error: FetchError) -> Failure {
        Failure::Final(Box::new(error))
    }
}

/// The download in progress: what is on disk, hashed and sent to the sink.
struct State<'a> {
    artifact: &'a Artifact,
    partial_path: PathBuf,
    file: File,
    hasher: Sha256,
    have: u64,
    /// Bytes replayed from an earlier run's `.partial` file (0 after a restart).
    resumed_from: u64,
    /// Where this run first resumed with Range since the last restart.
    resumed_at: Option<u64>,
    /// The file's size as the server last gave it (`Content-Length` of a `200`, the total of a
    /// `206`), for judging a `416`.
    declared_total: Option<u64>,
    total: Option<u64>,
    sink: &'a mut dyn Sink,
    requests: u32,
}

impl State<'_> {
    fn file_error(&self, action: &'static str, source: io::Error) -> FetchError {
        FetchError::File {
            artifact: self.artifact.name.clone(),
            action,
            path: self.partial_path.clone(),
            source,
        }
    }

    fn event<'e>(
        &'e self,
        source: &'e str,
        mirror: usize,
        attempt: u32,
        stage: Stage<'e>,
    ) -> Progress<'e> {
        Progress {
            artifact: &self.artifact.name,
            source,
            mirror,
            attempt,
            downloaded: self.have,
            total: self.total,
            resumed_from: self.resumed_from,
            stage,
        }
    }

    fn digest(&self) -> Sha256Digest {
        Sha256Digest(self.hasher.clone().finalize().into())
    }

    /// What the bytes received so far are made of.
    fn provenance(&self) -> Provenance {
        match (self.resumed_from, self.resumed_at) {
            (0, None) => Provenance::Fresh,
            (0, Some(at)) => Provenance::Resumed { at },
            (bytes, _) => Provenance::Replayed { bytes },
        }
    }

    /// Feeds the bytes of an earlier run's `.partial` into the hasher and the sink (recovery
    /// only: the normal path reads every byte once, from the network).
    fn replay_partial(&mut self, progress: &dyn Fn(&Progress)) -> Result<(), FetchError> {
        let len = self
            .file
            .metadata()
            .map_err(|e| self.file_error("reading", e))?
            .len();
        if len == 0 {
            return Ok(());
        }
        let source = self.partial_path.display().to_string();
        if self.artifact.size.is_some_and(|size| len > size) {
            return self.restart(&source, 0, progress);
        }
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| self.file_error("reading", e))?;
        let mut buf = vec![0u8; 1024 * 1024];
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(left as usize);
            self.file
                .read_exact(&mut buf[..want])
                .map_err(|e| self.file_error("reading", e))?;
            self.hasher.update(&buf[..want]);
            if let Err(e) = self.sink.write(&buf[..want]) {
                if e.kind() != io::ErrorKind::InvalidData {
                    return Err(sink_error(self.artifact, e));
                }
                // The kept bytes do not unpack: they are worthless, start from byte 0.
                return self.restart(&source, 0, progress);
            }
            left -= want as u64;
            self.have += want as u64;
        }
        self.resumed_from = len;
        progress(&self.event(&source, 0, 0, Stage::Receiving));
        Ok(())
    }

    /// Back to byte 0: empty the `.partial` file, the hasher and the sink.
    fn restart(
        &mut self,
        source: &str,
        mirror: usize,
        progress: &dyn Fn(&Progress),
    ) -> Result<(), FetchError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| self.file_error("truncating", e))?;
        self.hasher = Sha256::new();
        self.have = 0;
        self.resumed_from = 0;
        self.resumed_at = None;
        self.total = self.artifact.size;
        self.sink
            .restart()
            .map_err(|e| sink_error(self.artifact, e))?;
        progress(&self.event(source, mirror, 0, Stage::Restarting));
        Ok(())
    }

    /// Bytes from the network: size guard, then disk, hasher and sink.
    fn accept(&mut self, chunk: &[u8], url: &str) -> Result<(), Failure> {
        let after = self.have.saturating_add(chunk.len() as u64);
        if let Some(size) = self.artifact.size.filter(|&size| after > size) {
            return Err(Failure::final_error(FetchError::TooLarge {
                artifact: self.artifact.name.clone(),
                origin: Origin::Url(url.to_string()),
                expected: size,
                received: after,
                declared: self.declared_total,
            }));
        }
        self.file
            .write_all(chunk)
            .map_err(|e| Failure::final_error(self.file_error("writing", e)))?;
        self.hasher.update(chunk);
        self.have = after;
        if let Err(e) = self.sink.write(chunk) {
            return Err(Failure::final_error(refused_or_local(
                self.artifact,
                Origin::Url(url.to_string()),
                self.digest(),
                self.have,
                self.provenance(),
                true,
                e,
            )));
        }
        Ok(())
    }
}

fn sink_error(artifact: &Artifact, source: io::Error) -> FetchError {
    FetchError::Sink {
        artifact: artifact.name.clone(),
        source,
    }
}

/// A sink's error: [`FetchError::Refused`] when it refused the bytes (`InvalidData`), else a
/// local [`FetchError::Sink`] failure.
fn refused_or_local(
    artifact: &Artifact,
    origin: Origin,
    received: Sha256Digest,
    bytes: u64,
    provenance: Provenance,
    deleted: bool,
    source: io::Error,
) -> FetchError {
    if source.kind() != io::ErrorKind::InvalidData {
        return sink_error(artifact, source);
    }
    FetchError::Refused {
        artifact: artifact.name.clone(),
        origin,
        expected: artifact.sha256,
        received,
        bytes,
        provenance,
        deleted,
        source,
    }
}

/// A response header as text.
fn header(response: &ureq::http::Response<ureq::Body>, key: &str) -> Option<String> {
    response
        .headers()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An answer that is not the body: 408, 429 and 5xx are retried (after `Retry-After` seconds
/// when the server says so), any other status fails for good with a hint.
/// The last failure of a URL, for an error that names the URL already: without the URL in
/// front (`http://h/x: io: Connection refused` → `io: Connection refused`); a failure at
/// another URL (a redirect's target) keeps it.
fn last_failure(url: &str, reason: String) -> String {
    match reason.strip_prefix(url) {
        Some(rest) => rest.trim_start_matches([':', ' ']).to_string(),
        None => reason,
    }
}

fn status_failure(
    name: &str,
    current: String,
    response: &ureq::http::Response<ureq::Body>,
) -> Failure {
    let status = response.status().as_u16();
    match status {
        408 | 429 | 500..=599 => Failure::Retry {
            reason: format!("{current} answered HTTP {status}"),
            retry_after: header(response, "retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        _ => Failure::final_error(FetchError::HttpStatus {
            artifact: name.to_string(),
            url: current,
            status,
            reason: response
                .status()
                .canonical_reason()
                .unwrap_or_default()
                .to_string(),
            hint: status_hint(status),
        }),
    }
}

/// What to do about a status that retrying will not change.
fn status_hint(status: u16) -> &'static str {
    match status {
        404 | 410 => "the file is not on this server; the mirror may be out of date",
        401 | 403 => "access was refused; the URL may need credentials or have expired",
        _ => "the server refused the request",
    }
}

/// A document from the offline directory, by the URL's file name; `None` when it is not there.
fn read_document_file(
    name: &str,
    dir: &Path,
    url: &str,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, FetchError> {
    let Some(file_name) = file_name_of(url) else {
        return Ok(None);
    };
    let path = dir.join(file_name);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(FetchError::File {
                artifact: name.to_string(),
                action: "opening",
                path,
                source: e,
            })
        }
    };
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FetchError::File {
            artifact: name.to_string(),
            action: "reading",
            path: path.clone(),
            source: e,
        })?;
    if bytes.len() as u64 > max_bytes {
        return Err(FetchError::TooLarge {
            artifact: name.to_string(),
            origin: Origin::File(path),
            expected: max_bytes,
            received: bytes.len() as u64,
            declared: None,
        });
    }
    Ok(Some(bytes))
}

/// The parts of a URI reference (RFC 3986, appendix B).
struct UriParts<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn uri_parts(text: &str) -> UriParts<'_> {
    let (rest, fragment) = match text.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (text, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let scheme_end = rest.find(':').filter(|&i| {
        let s = &rest[..i];
        !s.contains('/')
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let (scheme, rest) = match scheme_end {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(net) => {
            let end = net.find('/').unwrap_or(net.len());
            (Some(&net[..end]), &net[end..])
        }
        None => (None, rest),
    };
    UriParts {
        scheme,
        authority,
        path,
        query,
        fragment,
    }
}

/// RFC 3986 §5.2.4: `.` and `..` segments removed.
fn remove_dot_segments(path: &str) -> String {
    fn pop_segment(out: &mut String) {
        match out.rfind('/') {
            Some(i) => out.truncate(i),
            None => out.clear(),
        }
    }
    let mut input = path.to_string();
    let mut out = String::with_capacity(path.len());
    while !input.is_empty() {
        if input.starts_with("../") {
            input.drain(..3);
        } else if input.starts_with("./") {
            input.drain(..2);
        } else if input.starts_with("/./") {
            input.replace_range(..3, "/");
        } else if input == "/." {
            input = "/".into();
        } else if input.starts_with("/../") {
            input.replace_range(..4, "/");
            pop_segment(&mut out);
        } else if input == "/.." {
            input = "/".into();
            pop_segment(&mut out);
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push_str(&input[..end]);
            input.drain(..end);
        }
    }
    out
}

/// Whether `text` is an `http://` or `https://` URL (the scheme in any case), rather than a
/// path: what gpulibs downloads, as opposed to what it reads from disk.
pub fn is_http_url(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Resolves a URI reference against an absolute base URL as RFC 3986 §5.2 does (what a browser
/// does with a link): `a.tar.zst` against `https://h/rel/manifest.toml` is
/// `https://h/rel/a.tar.zst`, `../b/c` is `https://h/b/c`, `/x` is `https://h/x`, `//m/y` is
/// `https://m/y`. A reference with a scheme of its own (`https://…`, `pip:…`) is returned
/// unchanged. `None` when `base` has no scheme (it is not an absolute URL).
pub fn resolve_url(base: &str, reference: &str) -> Option<String> {
    let r = uri_parts(reference);
    if r.scheme.is_some() {
        return Some(reference.to_string());
    }
    let b = uri_parts(base);
    let scheme = b.scheme?;
    let (authority, path, query) = if r.authority.is_some() {
        (r.authority, remove_dot_segments(r.path), r.query)
    } else if r.path.is_empty() {
        (b.authority, b.path.to_string(), r.query.or(b.query))
    } else if r.path.starts_with('/') {
        (b.authority, remove_dot_segments(r.path), r.query)
    } else {
        let merged = if b.authority.is_some() && b.path.is_empty() {
            format!("/{}", r.path)
        } else {
            let dir = b.path.rfind('/').map_or("", |i| &b.path[..=i]);
            format!("{dir}{}", r.path)
        };
        (b.authority, remove_dot_segments(&merged), r.query)
    };
    let mut out = format!("{scheme}:");
    if let Some(authority) = authority {
        out.push_str("//");
        out.push_str(authority);
    }
    out.push_str(&path);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    if let Some(fragment) = r.fragment {
        out.push('#');
        out.push_str(fragment);
    }
    Some(out)
}

fn build_agent(opts: &FetchOptions, proxy: Option<ureq::Proxy>, roots: &RootCerts) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(proxy)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.idle_timeout))
        .timeout_per_read(Some(opts.idle_timeout))
        .user_agent(opts.user_agent.as_str())
        .tls_config(TlsConfig::builder().root_certs(roots.clone()).build())
        .build()
        .new_agent()
}

fn parse_proxy(variable: &'static str, value: &str) -> Result<ureq::Proxy, FetchError> {
    let error = |detail: &str| FetchError::Proxy {
        variable,
        value: value.to_string(),
        detail: detail.to_string(),
    };
    let scheme = value.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        None | Some("http") | Some("https") => {}
        Some(other) => {
            return Err(error(&format!(
                "{other}:// proxies are not supported (http:// and https:// are)"
            )))
        }
    }
    ureq::Proxy::new(value).map_err(|e| error(&e.to_string()))
}

/// Maps a request error to retry-or-not.
fn classify(name: &str, url: &str, error: ureq::Error) -> Failure {
    let final_error = Failure::final_error;
    match error {
        ureq::Error::Tls(_) | ureq::Error::Pem(_) | ureq::Error::Rustls(_) => {
            final_error(FetchError::Tls {
                artifact: name.to_string(),
                url: url.to_string(),
                detail: error.to_string(),
            })
        }
        ureq::Error::Io(ref io) if is_certificate_error(io) => final_error(FetchError::Tls {
            artifact: name.to_string(),
            url: url.to_string(),
            detail: error.to_string(),
        }),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => final_error(FetchError::BadUrl {
            artifact: name.to_string(),
            url: url.to_string(),
            detail: error.to_string(),
        }),
        ureq::Error::ConnectProxyFailed(_) | ureq::Error::InvalidProxyUrl => {
            final_error(FetchError::Network {
                artifact: name.to_string(),
                url: url.to_string(),
                attempts: 1,
                last: format!("proxy: {error}"),
                kept: 0,
            })
        }
        other => Failure::Retry {
            reason: format!("{url}: {other}"),
            retry_after: None,
        },
    }
}

/// rustls reports certificate problems as `InvalidData` I/O errors wrapping its own error.
fn is_certificate_error(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::InvalidData
        && error.get_ref().is_some_and(|inner| {
            inner
                .to_string()
                .to_ascii_lowercase()
                .contains("certificate")
        })
}

/// Exponential backoff with jitter (50–100 % of the step), honouring `Retry-After` up to the
/// policy's maximum.
fn backoff(policy: &crate::RetryPolicy, failures: u32, retry_after: Option<Duration>) -> Duration {
    let step = policy
        .base_delay
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(policy.max_delay);
    let jitter = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(failures);
        (h.finish() % 1000) as f64 / 1000.0
    };
    let delay = step.mul_f64(0.5 + jitter / 2.0);
    match retry_after {
        Some(server) => server.min(policy.max_delay).max(delay),
        None => delay,
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) → (START, TOTAL).
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

/// `bytes */TOTAL` (a `416`'s `Content-Range`) → TOTAL.
pub(crate) fn parse_unsatisfied_range(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    rest.strip_prefix("*/")?.trim().parse().ok()
}

/// The absolute URL a `Location` header points to, relative to `base`.
pub(crate) fn resolve_location(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if split_url(location).is_some() {
        return Some(location.to_string());
    }
    let (scheme, rest) = base.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some(net) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{net}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    if location.is_empty() || location.contains("://") {
        return None;
    }
    let path = &rest[authority_end..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    Some(format!("{scheme}://{authority}{dir}{location}"))
}

/// The last path segment of a URL, query and fragment removed, `%XX` decoded.
pub(crate) fn file_name_of(url: &str) -> Option<String> {
    // A relative reference (a manifest naming archives that sit next to it) is its own path.
    let path = if url.contains("://") {
        split_url(url)?.path
    } else {
        url
    };
    let path = path.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    if name.is_empty() {
        return None;
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&name[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_failure_names_only_another_url() {
        let url = "http://h/x.toml";
        let cases = [
            (
                "http://h/x.toml: io: Connection refused",
                "io: Connection refused",
            ),
            ("http://h/x.toml answered HTTP 503", "answered HTTP 503"),
            (
                "http://mirror/x.toml answered HTTP 503",
                "http://mirror/x.toml answered HTTP 503",
            ),
            (
                "connection to http://h/x.toml lost at byte 5: reset",
                "connection to http://h/x.toml lost at byte 5: reset",
            ),
        ];
        for (reason, want) in cases {
            assert_eq!(last_failure(url, reason.to_string()), want);
        }
    }

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("bytes 5-1/200"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_unsatisfied_range("bytes */200"), Some(200));
        assert_eq!(parse_unsatisfied_range("bytes 0-1/200"), None);
        assert_eq!(parse_unsatisfied_range("bytes */*"), None);
    }

    #[test]
    fn location_resolution() {
        let base = "https://a.example/dir/file.tar?x=1";
        for (location, expected) in [
            ("https://b.example/x", "https://b.example/x"),
            ("//c.example/y", "https://c.example/y"),
            ("/root.tar", "https://a.example/root.tar"),
            ("other.tar", "https://a.example/dir/other.tar"),
        ] {
            assert_eq!(
                resolve_location(base, location).as_deref(),
                Some(expected),
                "{location}"
            );
        }
        assert_eq!(resolve_location(base, "ftp://x/y"), None);
        assert_eq!(
            resolve_location("http://h:8080", "x").as_deref(),
            Some("http://h:8080/x")
        );
    }

    #[test]
    fn rfc3986_reference_resolution() {
        // RFC 3986 §5.4.1 and §5.4.2.
        let base = "http://a/b/c/d;p?q";
        for (reference, expected) in [
            ("g:h", "g:h"),
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            (";x", "http://a/b/c/;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/../y", "http://a/b/c/y"),
        ] {
            assert_eq!(
                resolve_url(base, reference).as_deref(),
                Some(expected),
                "{reference:?}"
            );
        }
        let manifest = "https://h/rel/manifest.toml";
        assert_eq!(
            resolve_url(manifest, "a.tar.zst").as_deref(),
            Some("https://h/rel/a.tar.zst")
        );
        assert_eq!(
            resolve_url("http://h:8080", "a.tar.zst").as_deref(),
            Some("http://h:8080/a.tar.zst")
        );
        for unchanged in ["https://cdn/x.tar.zst", "pip:onnxruntime-gpu==1.23.2"] {
            assert_eq!(resolve_url(manifest, unchanged).as_deref(), Some(unchanged));
        }
        assert_eq!(resolve_url("relative/manifest.toml", "a"), None);
    }

    #[test]
    fn file_names() {
        assert_eq!(
            file_name_of("https://h/a/onnxruntime%2Bcuda.tar.zst?sig=1").as_deref(),
            Some("onnxruntime+cuda.tar.zst")
        );
        assert_eq!(file_name_of("https://h/a/").as_deref(), None);
        assert_eq!(file_name_of("https://h/100%").as_deref(), Some("100%"));
        assert_eq!(
            file_name_of("onnxruntime-1.31.1.tar.zst").as_deref(),
            Some("onnxruntime-1.31.1.tar.zst")
        );
        assert_eq!(
            file_name_of("sub/a%2Bb.tar.zst").as_deref(),
            Some("a+b.tar.zst")
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = crate::RetryPolicy {
            attempts: 10,
            max_attempts: 50,
            max_elapsed: Duration::from_secs(60),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let first = backoff(&policy, 1, None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let third = backoff(&policy, 3, None);
        assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
        assert!(backoff(&policy, 30, None) <= Duration::from_secs(1));
        assert_eq!(
            backoff(&policy, 1, Some(Duration::from_secs(60))),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn http_urls_are_told_from_paths() {
        for url in [
            "http://h/m.toml",
            "https://h/m.toml",
            "HTTPS://H/m.toml",
            "Http://h",
        ] {
            assert!(is_http_url(url), "{url}");
        }
        for path in [
            "m.toml",
            "/srv/m.toml",
            "file:///srv/m.toml",
            "ftp://h/m",
            "https:",
            "",
        ] {
            assert!(!is_http_url(path), "{path}");
        }
    }
}
