//! Bytes that cannot be trusted and servers that never finish (issue #16, items 1 and 2),
//! against the real test server:
//!
//! - bytes a sink refuses (`InvalidData`, what a decoder says) are deleted, never replayed by a
//!   later run, and the error names the expected digest and the sha256 and count of the bytes
//!   received, with what they were made of (fresh, resumed, replayed);
//! - a refusal of bytes that came in pieces earns one fresh download from byte 0;
//! - a local sink failure (a full disk) keeps the bytes, and the next run resumes;
//! - a manifest size the server's file does not have fails at once naming both sizes;
//! - a URL that keeps failing, even while making progress, stops at the total bounds.

mod support;

use std::io;
use std::sync::mpsc;
use std::time::Duration;

use gpulibs_fetch::{fetch, Artifact, FetchError, FetchOptions, Fetched, Provenance, Sink};
use gpulibs_hint::Hint;
use support::{artifact, partial_path, quick_options, sha256_of, test_bytes, Reply, Server};

/// A sink that accepts only the true bytes of the file, in order, and refuses the first wrong
/// one as a decoder would (`InvalidData`); or, with `disk_full_at`, fails locally once it has
/// seen that many bytes.
struct Checker {
    good: Vec<u8>,
    at: usize,
    restarts: usize,
    finished: bool,
    disk_full_at: Option<usize>,
}

impl Checker {
    fn new(good: &[u8]) -> Checker {
        Checker {
            good: good.to_vec(),
            at: 0,
            restarts: 0,
            finished: false,
            disk_full_at: None,
        }
    }
}

impl Sink for Checker {
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        if let Some(i) = (0..chunk.len()).find(|&i| self.good.get(self.at + i) != Some(&chunk[i])) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("byte {} does not decode", self.at + i),
            ));
        }
        if self.disk_full_at.is_some_and(|n| self.at + chunk.len() > n) {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        self.at += chunk.len();
        Ok(())
    }
    fn restart(&mut self) -> io::Result<()> {
        self.at = 0;
        self.restarts += 1;
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        Ok(())
    }
    fn abort(&mut self) {}
}

fn quiet(_: &gpulibs_fetch::Progress) {}

/// `fetch` on a thread, failing the test if it has not returned within 30 s (the loops this
/// file is about would otherwise hang the test instead of failing it).
fn bounded_fetch(
    art: &Artifact,
    good: &[u8],
    opts: &FetchOptions,
) -> (Result<Fetched, FetchError>, Checker) {
    let (tx, rx) = mpsc::channel();
    let (art, opts, good) = (art.clone(), opts.clone(), good.to_vec());
    std::thread::spawn(move || {
        let mut sink = Checker::new(&good);
        let result = fetch(&art, &mut sink, &opts, &quiet);
        let _ = tx.send((result, sink));
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the fetch did not return within 30 s")
}

fn starts(server: &Server) -> Vec<Option<u64>> {
    server.log().iter().map(|s| s.range_start).collect()
}

fn partial_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir.join("partial"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn bytes_refused_at_the_head_are_deleted_and_name_both_digests() {
    let server = Server::start();
    let data = test_bytes(300_000);
    server.put_with("/f", data.clone(), Reply::FlipAt(0));
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("cudnn-9", vec![server.url("/f")], &data);
    let opts = quick_options(dir.path());

    let (result, sink) = bounded_fetch(&art, &data, &opts);
    let err = result.unwrap_err();
    let text = err.to_string();
    // Refused on the first chunk read, before the digest was known.
    let mut bad = data.clone();
    bad[0] ^= 0xff;
    let FetchError::Refused {
        expected,
        received: got,
        bytes,
        provenance,
        deleted,
        ..
    } = &err
    else {
        panic!("{text}")
    };
    let bytes = *bytes;
    assert!(bytes > 0 && bytes < data.len() as u64, "{text}");
    let received = sha256_of(&bad[..bytes as usize]);
    assert_eq!(
        (*expected, *got, *provenance, *deleted),
        (art.sha256, received, Provenance::Fresh, true),
        "{text}"
    );
    assert_eq!(
        text,
        format!(
            "cudnn-9: the bytes from {} were refused by the unpacker before their sha256 could \
             be checked (deleted): expected sha256 {}, received {bytes} bytes with sha256 {} \
             (downloaded from byte 0 in this run); the server sends bytes that are not the \
             archive the manifest names (a corrupt or outdated mirror, something in between \
             that rewrites downloads), or the vendor's archive is broken",
            server.url("/f"),
            art.sha256,
            received
        )
    );
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "byte 0 does not decode"
    );
    assert!(!sink.finished);
    assert!(
        partial_files(dir.path()).is_empty(),
        "refused bytes deleted"
    );
    assert_eq!(starts(&server), [None], "a fresh download is not retried");

    // The next run, against a healthy server, starts clean.
    server.set_default("/f", Reply::Serve);
    server.clear_log();
    let (result, sink) = bounded_fetch(&art, &data, &opts);
    let fetched = result.unwrap();
    assert!(sink.finished && sink.at == data.len());
    assert_eq!((fetched.resumed_from, fetched.requests), (0, 1));
    assert_eq!(starts(&server), [None]);
}

#[test]
fn a_resumed_range_the_sink_refuses_gets_one_fresh_download() {
    let server = Server::start();
    let data = test_bytes(200_000);
    server.file(
        "/f",
        &data,
        vec![Reply::DropAfter(30_000), Reply::WrongRange],
    );
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/f")], &data);
    let (result, sink) = bounded_fetch(&art, &data, &quick_options(dir.path()));
    result.unwrap();
    assert!(sink.finished);
    assert_eq!(sink.restarts, 1);
    assert_eq!(starts(&server), [None, Some(30_000), None]);
    assert!(partial_files(dir.path()).is_empty());
}

#[test]
fn a_resumed_range_refused_twice_fails_and_the_next_run_starts_clean() {
    let server = Server::start();
    let data = test_bytes(200_000);
    let faults = || vec![Reply::DropAfter(30_000), Reply::WrongRange];
    server.file("/f", &data, [faults(), faults()].concat());
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/f")], &data);
    let opts = quick_options(dir.path());

    let (result, _) = bounded_fetch(&art, &data, &opts);
    let err = result.unwrap_err();
    let text = err.to_string();
    // The resumed part starts at 30000 and holds the file's first bytes.
    let FetchError::Refused {
        bytes,
        provenance: Provenance::Resumed { at: 30_000 },
        deleted: true,
        ..
    } = err
    else {
        panic!("{text}")
    };
    assert!(bytes > 30_000 && bytes < data.len() as u64, "{text}");
    let received = sha256_of(&[&data[..30_000], &data[..bytes as usize - 30_000]].concat());
    for want in [
        format!("expected sha256 {}", art.sha256),
        format!("received {bytes} bytes with sha256 {received} (resumed with Range at byte 30000)"),
        "a download resumed with Range got bytes that do not continue the file".into(),
    ] {
        assert!(text.contains(&want), "{want:?} not in: {text}");
    }
    assert_eq!(starts(&server), [None, Some(30_000), None, Some(30_000)]);
    assert!(
        partial_files(dir.path()).is_empty(),
        "refused bytes deleted"
    );

    server.clear_log();
    let (result, _) = bounded_fetch(&art, &data, &opts);
    assert_eq!(result.unwrap().resumed_from, 0);
    assert_eq!(starts(&server), [None], "the next run starts from byte 0");
}

#[test]
fn refused_bytes_kept_by_an_earlier_run_are_dropped_before_any_request() {
    let server = Server::start();
    let data = test_bytes(100_000);
    server.put("/f", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/f")], &data);
    // What an earlier version left: the head of the file with a wrong byte.
    let mut kept = data[..40_000].to_vec();
    kept[10] ^= 1;
    std::fs::write(partial_path(dir.path(), &art), &kept).unwrap();
    let (result, sink) = bounded_fetch(&art, &data, &quick_options(dir.path()));
    let fetched = result.unwrap();
    assert_eq!(fetched.resumed_from, 0);
    assert_eq!(sink.restarts, 1);
    assert_eq!(starts(&server), [None], "no Range after the kept bytes");
    assert!(partial_files(dir.path()).is_empty());
}

#[test]
fn a_local_sink_failure_keeps_the_bytes_and_the_next_run_resumes() {
    let server = Server::start();
    let data = test_bytes(200_000);
    server.put("/f", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/f"), server.url("/g")], &data);
    let opts = quick_options(dir.path());
    let mut full = Checker::new(&data);
    full.disk_full_at = Some(100_000);
    let err = fetch(&art, &mut full, &opts, &quiet).unwrap_err();
    assert!(matches!(err, FetchError::Sink { .. }), "{err}");
    // The chunk that failed was written to the `.partial` before the sink saw it.
    let kept = std::fs::read(partial_path(dir.path(), &art)).unwrap();
    assert_eq!(kept, data[..kept.len()]);
    assert!(kept.len() > 100_000);
    assert!(server.requests("/g").is_empty(), "not a mirror's fault");

    server.clear_log();
    let (result, _) = bounded_fetch(&art, &data, &opts);
    assert_eq!(result.unwrap().resumed_from, kept.len() as u64);
    assert_eq!(starts(&server), [Some(kept.len() as u64)]);
}

/// A manifest size the server's file does not have: one download to its end, one `Range`
/// request answered `416` (nothing follows), then an error naming both sizes.
#[test]
fn a_manifest_size_larger_than_the_file_fails_at_once_naming_both_sizes() {
    for size in [100_100, u64::MAX] {
        let server = Server::start();
        let data = test_bytes(100_000);
        server.put("/f", data.clone());
        let dir = tempfile::tempdir().unwrap();
        let mut art = artifact("x", vec![server.url("/f")], &data);
        art.size = Some(size);
        let (result, _) = bounded_fetch(&art, &data, &quick_options(dir.path()));
        let err = result.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, FetchError::SizeMismatch { expected, declared: 100_000, .. } if expected == size),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{} has 100000 bytes (a 416 answer says the file ends there), the manifest says \
                 {size}",
                server.url("/f")
            )),
            "{text}"
        );
        assert_eq!(starts(&server), [None, Some(100_000)], "{size}");
        assert!(partial_files(dir.path()).is_empty(), "{size}");
    }
}

#[test]
fn a_content_range_total_other_than_the_manifest_size_is_refused_before_the_body() {
    let server = Server::start();
    let data = test_bytes(100_000);
    server.put("/f", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut art = artifact("x", vec![server.url("/f")], &data);
    art.size = Some(100_100);
    // An earlier run kept the first 40000 bytes.
    std::fs::write(partial_path(dir.path(), &art), &data[..40_000]).unwrap();
    let (result, sink) = bounded_fetch(&art, &data, &quick_options(dir.path()));
    let err = result.unwrap_err();
    assert!(
        err.to_string().contains(
            "has 100000 bytes (its Content-Range total), the manifest says 100100; the URL \
             serves another file or the manifest is outdated"
        ),
        "{err}"
    );
    assert_eq!(starts(&server), [Some(40_000)]);
    assert_eq!(sink.at, 0, "the sink was restarted before the error");
    assert!(partial_files(dir.path()).is_empty());
}

#[test]
fn a_url_that_keeps_failing_while_making_progress_stops_at_the_total_bound() {
    let server = Server::start();
    let data = test_bytes(100_000);
    server.put_with("/f", data.clone(), Reply::DropAfter(1_000));
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/f")], &data);
    let mut opts = quick_options(dir.path());
    opts.retry.max_attempts = 6;
    let (result, _) = bounded_fetch(&art, &data, &opts);
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            FetchError::GaveUp {
                attempts: 6,
                kept: 6_000,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "x: gave up on {} after 6 attempts in ",
            server.url("/f")
        )) && text.contains("(at most 6 attempts per URL), last: "),
        "{text}"
    );
    assert_eq!(
        err.hint().as_deref(),
        Some("run the command again: it resumes where it stopped (byte 6000)")
    );
    assert_eq!(server.log().len(), 6);
    assert_eq!(
        std::fs::read(partial_path(dir.path(), &art)).unwrap(),
        data[..6_000]
    );

    // The time bound: no new attempt after it.
    let mut opts = quick_options(dir.path());
    opts.retry.max_elapsed = Duration::ZERO;
    server.clear_log();
    let (result, _) = bounded_fetch(&art, &data, &opts);
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::GaveUp {
                attempts: 1,
                kept: 7_000,
                ..
            }
        ) && err.to_string().contains("(no new attempt after 0 s)"),
        "{err}"
    );
    assert_eq!(starts(&server), [Some(6_000)]);

    // A healthy server: the next run resumes.
    server.set_default("/f", Reply::Serve);
    server.clear_log();
    let (result, _) = bounded_fetch(&art, &data, &quick_options(dir.path()));
    assert_eq!(result.unwrap().resumed_from, 7_000);
    assert_eq!(starts(&server), [Some(7_000)]);
}
