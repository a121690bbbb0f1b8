//! Downloads against a real HTTP server on 127.0.0.1 with injected faults. Every fault either
//! recovers (bytes and digest right) or fails with a message naming the artifact and URL.

mod support;

use std::io;
use std::time::Duration;

use gpulibs_hint::Hint;

use gpulibs_fetch::{
    fetch, Artifact, FetchError, Fetcher, Origin, Progress, Sink, Stage, StallRule,
};
use support::{artifact, partial_path, quick_options, test_bytes, Reply, Server};

/// A sink that records what the fetcher told it.
#[derive(Default)]
struct Recorder {
    bytes: Vec<u8>,
    restarts: usize,
    finished: bool,
    aborted: bool,
}

impl Sink for Recorder {
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }
    fn restart(&mut self) -> io::Result<()> {
        self.restarts += 1;
        self.bytes.clear();
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        Ok(())
    }
    fn abort(&mut self) {
        self.aborted = true;
    }
}

fn quiet(_: &Progress) {}

fn partial_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir.join("partial"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A server with `test_bytes(len)` at `/f`, answering its first requests with `faults`; a
/// temporary directory for [`quick_options`]; and the artifact `name` of `/f`:
/// `(server, data, dir, art)`.
fn one_file(
    name: &str,
    len: usize,
    faults: Vec<Reply>,
) -> (Server, Vec<u8>, tempfile::TempDir, Artifact) {
    let server = Server::start();
    let data = test_bytes(len);
    server.file("/f", &data, faults);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact(name, vec![server.url("/f")], &data);
    (server, data, dir, art)
}

#[test]
fn plain_download_verifies_and_leaves_nothing_behind() {
    let server = Server::start();
    let data = test_bytes(300_000);
    server.file("/a.tar.zst", &data, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("cudnn-9", vec![server.url("/a.tar.zst")], &data);
    let events = std::sync::Mutex::new(Vec::new());
    let mut sink = Recorder::default();
    let fetched = fetch(&art, &mut sink, &quick_options(dir.path()), &|p| {
        events
            .lock()
            .unwrap()
            .push((p.downloaded, p.total, format!("{:?}", p.stage)))
    })
    .unwrap();
    assert_eq!(sink.bytes, data);
    assert!(sink.finished && !sink.aborted);
    assert_eq!(fetched.bytes, data.len() as u64);
    assert_eq!(fetched.sha256, art.sha256);
    assert_eq!(fetched.origin, Origin::Url(server.url("/a.tar.zst")));
    assert_eq!((fetched.requests, fetched.resumed_from), (1, 0));
    assert!(
        partial_files(dir.path()).is_empty(),
        "no .partial or tarball left"
    );
    let events = events.into_inner().unwrap();
    assert_eq!(events.first().unwrap().2, "Starting");
    assert_eq!(
        events.last().unwrap(),
        &(300_000, Some(300_000), "Verified".into())
    );
    assert!(
        events.windows(2).all(|w| w[0].0 <= w[1].0),
        "downloaded never goes back"
    );
}

#[test]
fn connection_drop_resumes_with_range() {
    let (server, data, dir, art) = one_file(
        "ort",
        200_000,
        vec![Reply::DropAfter(70_000), Reply::DropAfter(50_000)],
    );
    let mut sink = Recorder::default();
    let fetched = fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(sink.bytes, data, "every byte reached the sink exactly once");
    assert_eq!(sink.restarts, 0);
    let starts: Vec<_> = server.log().iter().map(|s| s.range_start).collect();
    assert_eq!(starts, vec![None, Some(70_000), Some(120_000)]);
    assert_eq!(fetched.requests, 3);
}

#[test]
fn interrupted_run_resumes_in_the_next_run() {
    let (server, data, dir, art) = one_file("cublas-12", 150_000, vec![Reply::DropAfter(40_000)]);
    let mut opts = quick_options(dir.path());
    opts.retry.attempts = 1;

    let mut first = Recorder::default();
    let err = fetch(&art, &mut first, &opts, &quiet).unwrap_err();
    assert!(first.aborted && !first.finished);
    let text = err.to_string();
    assert!(matches!(err, FetchError::Network { .. }), "{text}");
    assert!(
        text.contains("cublas-12") && text.contains(&server.url("/f")),
        "{text}"
    );
    assert!(!text.contains("resumes"), "the step is the hint's: {text}");
    assert!(
        err.hint()
            .unwrap()
            .ends_with("run the command again: it resumes where it stopped (byte 40000)"),
        "{:?}",
        err.hint()
    );
    let partial = partial_path(dir.path(), &art);
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 40_000);

    // A new process: a new sink, the same partial directory.
    let mut second = Recorder::default();
    let fetched = fetch(&art, &mut second, &opts, &quiet).unwrap();
    assert_eq!(
        second.bytes, data,
        "the sink got the replayed bytes, then the rest"
    );
    assert_eq!(fetched.resumed_from, 40_000);
    assert_eq!(server.log()[1].range_start, Some(40_000));
    assert!(!partial.exists());
}

#[test]
fn complete_partial_from_an_earlier_run_needs_no_network() {
    let data = test_bytes(10_000);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec!["http://127.0.0.1:9/never".into()], &data);
    let partial = partial_path(dir.path(), &art);
    std::fs::write(&partial, &data).unwrap();
    let mut sink = Recorder::default();
    let fetched = fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!((fetched.requests, fetched.resumed_from), (0, 10_000));
    assert_eq!(fetched.origin, Origin::File(partial.clone()));
    assert_eq!(sink.bytes, data);
    assert!(!partial.exists());
}

#[test]
fn corrupt_partial_of_full_size_is_discarded_and_downloaded_again() {
    let (server, data, dir, art) = one_file("x", 10_000, vec![]);
    let partial = partial_path(dir.path(), &art);
    std::fs::write(&partial, vec![0u8; 10_000]).unwrap();
    let mut sink = Recorder::default();
    fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(sink.restarts, 1);
    assert_eq!(sink.bytes, data);
    assert_eq!(server.log()[0].range_start, None);
}

#[test]
fn ignored_range_restarts_the_sink() {
    let (server, data, dir, art) = one_file(
        "x",
        100_000,
        vec![Reply::DropAfter(30_000), Reply::IgnoreRange],
    );
    let mut sink = Recorder::default();
    let stages = std::sync::Mutex::new(Vec::new());
    fetch(&art, &mut sink, &quick_options(dir.path()), &|p| {
        if matches!(p.stage, Stage::Restarting) {
            stages.lock().unwrap().push(p.downloaded);
        }
    })
    .unwrap();
    assert_eq!(sink.restarts, 1);
    assert_eq!(sink.bytes, data);
    assert_eq!(server.log()[1].range_start, Some(30_000));
    assert_eq!(stages.into_inner().unwrap(), vec![0]);
}

#[test]
fn digest_mismatch_names_everything_and_deletes_the_bytes() {
    let (server, data, dir, art) =
        one_file("onnxruntime-gpu-1.31.1", 50_000, vec![Reply::WrongBytes]);
    let mut sink = Recorder::default();
    let err = fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap_err();
    let FetchError::DigestMismatch {
        expected, actual, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*expected, art.sha256);
    let mut bad = data.clone();
    bad[25_000] ^= 0xff;
    assert_eq!(*actual, support::sha256_of(&bad));
    assert_eq!(
        err.to_string(),
        format!(
            "sha256 mismatch for onnxruntime-gpu-1.31.1 (from {}): expected {}, got {}; the \
             downloaded bytes were deleted; the server sends other bytes than the manifest names \
             (a corrupt or outdated mirror, something in between that rewrites downloads, or a \
             manifest naming another file)",
            server.url("/f"),
            art.sha256,
            actual
        )
    );
    assert!(sink.aborted && !sink.finished);
    assert!(partial_files(dir.path()).is_empty(), "bad bytes deleted");
}

#[test]
fn corrupt_first_mirror_falls_back_to_the_next() {
    let server = Server::start();
    let data = test_bytes(20_000);
    server.file("/a", &data, vec![Reply::WrongBytes]);
    server.file("/b", &data, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/a"), server.url("/b")], &data);
    let mut sink = Recorder::default();
    let fetched = fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(fetched.origin, Origin::Url(server.url("/b")));
    assert_eq!(sink.restarts, 1);
    assert_eq!(sink.bytes, data);
    assert_eq!(server.requests("/b")[0].range_start, None);
}

#[test]
fn server_errors_are_retried() {
    let (_server, data, dir, art) = one_file(
        "x",
        5_000,
        vec![
            Reply::Status(500),
            Reply::Status(503),
            Reply::StatusRetryAfter(429, 0),
        ],
    );
    let mut sink = Recorder::default();
    let retries = std::sync::Mutex::new(Vec::new());
    let fetched = fetch(&art, &mut sink, &quick_options(dir.path()), &|p| {
        if let Stage::Retrying { reason, .. } = p.stage {
            retries.lock().unwrap().push(reason.to_string());
        }
    })
    .unwrap();
    assert_eq!(fetched.requests, 4);
    assert_eq!(sink.bytes, data);
    let retries = retries.into_inner().unwrap();
    assert_eq!(retries.len(), 3);
    assert!(retries[0].ends_with("answered HTTP 500"), "{retries:?}");
    assert!(retries[2].ends_with("answered HTTP 429"), "{retries:?}");
}

#[test]
fn retries_give_up_with_the_last_failure() {
    let (server, _data, dir, art) = one_file("tensorrt-10", 5_000, vec![Reply::Status(502); 10]);
    let mut opts = quick_options(dir.path());
    opts.retry.attempts = 3;
    let err = fetch(&art, &mut Recorder::default(), &opts, &quiet).unwrap_err();
    assert_eq!(server.log().len(), 3);
    assert_eq!(
        err.to_string(),
        format!(
            "tensorrt-10: downloading {url} failed 3 times in a row, last: answered HTTP 502",
            url = server.url("/f")
        )
    );
    assert_eq!(
        err.hint().as_deref(),
        Some("the server is failing (HTTP 408, 429 or 5xx): run the command again later")
    );
}

#[test]
fn not_found_moves_to_the_next_mirror_at_once() {
    let server = Server::start();
    let data = test_bytes(5_000);
    server.file("/mirror-b/f", &data, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact(
        "x",
        vec![server.url("/mirror-a/f"), server.url("/mirror-b/f")],
        &data,
    );
    let fetched = fetch(
        &art,
        &mut Recorder::default(),
        &quick_options(dir.path()),
        &quiet,
    )
    .unwrap();
    assert_eq!(fetched.origin, Origin::Url(server.url("/mirror-b/f")));
    assert_eq!(
        server.requests("/mirror-a/f").len(),
        1,
        "404 is not retried"
    );
}

#[test]
fn every_mirror_failing_lists_each_url() {
    let server = Server::start();
    let data = test_bytes(5_000);
    server.file("/b", &data, vec![Reply::Status(500); 10]);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick_options(dir.path());
    opts.retry.attempts = 2;
    let art = artifact("cudnn-9", vec![server.url("/a"), server.url("/b")], &data);
    let mut sink = Recorder::default();
    let err = fetch(&art, &mut sink, &opts, &quiet).unwrap_err();
    assert!(sink.aborted);
    let FetchError::AllMirrorsFailed { failures, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(failures.len(), 2);
    let text = err.to_string();
    assert!(
        text.starts_with("cudnn-9: every URL failed:\n  - "),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{} answered HTTP 404 Not Found\n",
            server.url("/a")
        )),
        "{text}"
    );
    // Each URL's step, once, in the order tried.
    assert_eq!(
        err.hint().as_deref(),
        Some(
            "the file is not on this server; the mirror may be out of date; the server is \
             failing (HTTP 408, 429 or 5xx): run the command again later"
        )
    );
    assert!(
        text.contains(&format!(
            "downloading {} failed 2 times in a row, last: answered HTTP 500",
            server.url("/b")
        )),
        "{text}"
    );
}

#[test]
fn redirect_chain_is_followed() {
    let server = Server::start();
    let data = test_bytes(5_000);
    server.script("/start", vec![Reply::Redirect(server.url("/hop"))]);
    server.script("/hop", vec![Reply::Redirect("/files/real".into())]);
    server.file("/files/real", &data, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/start")], &data);
    let mut sink = Recorder::default();
    let fetched = fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(sink.bytes, data);
    assert_eq!(fetched.requests, 1, "redirects are not separate attempts");
    let paths: Vec<_> = server.log().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/start", "/hop", "/files/real"]);
}

#[test]
fn redirects_resume_with_range_at_the_target() {
    let server = Server::start();
    let data = test_bytes(50_000);
    server.script(
        "/start",
        vec![
            Reply::Redirect("/real".into()),
            Reply::Redirect("/real".into()),
        ],
    );
    server.file("/real", &data, vec![Reply::DropAfter(20_000)]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/start")], &data);
    let mut sink = Recorder::default();
    fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(sink.bytes, data);
    assert_eq!(server.requests("/real")[1].range_start, Some(20_000));
}

#[test]
fn redirect_loop_fails_clearly() {
    let server = Server::start();
    server.script("/x", vec![Reply::Redirect("/y".into()); 5]);
    server.script("/y", vec![Reply::Redirect("/x".into()); 5]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/x")], b"whatever");
    let err = fetch(
        &art,
        &mut Recorder::default(),
        &quick_options(dir.path()),
        &quiet,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "x: {x}: redirect loop: {x} -> {y} -> {x}; the server is misconfigured",
            x = server.url("/x"),
            y = server.url("/y")
        )
    );
    assert_eq!(err.hint().as_deref(), Some("try another mirror"));
    assert_eq!(server.log().len(), 2, "a loop is not retried");
}

#[test]
fn too_many_redirects_fail_clearly() {
    let server = Server::start();
    for i in 0..6 {
        server.script(
            &format!("/r{i}"),
            vec![Reply::Redirect(format!("/r{}", i + 1))],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick_options(dir.path());
    opts.max_redirects = 3;
    let art = artifact("x", vec![server.url("/r0")], b"whatever");
    let err = fetch(&art, &mut Recorder::default(), &opts, &quiet).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FetchError::Redirect { .. }), "{text}");
    assert!(text.contains("more than 3 redirects"), "{text}");
    assert_eq!(server.log().len(), 4);
}

#[test]
fn content_length_longer_than_the_body_still_completes() {
    let (_server, data, dir, art) =
        one_file("x", 30_000, vec![Reply::LongContentLength { extra: 1000 }]);
    let mut sink = Recorder::default();
    let fetched = fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(sink.bytes, data);
    assert_eq!(
        fetched.requests, 1,
        "all the manifest's bytes arrived; the lie costs nothing"
    );
}

#[test]
fn content_length_shorter_than_the_file_resumes_for_the_rest() {
    let (server, data, dir, art) =
        one_file("x", 30_000, vec![Reply::ShortContentLength { short: 1000 }]);
    let mut sink = Recorder::default();
    fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(sink.bytes, data);
    assert_eq!(server.log()[1].range_start, Some(29_000));
}

#[test]
fn drop_without_manifest_size_resumes_from_content_length() {
    let (server, data, dir, mut art) = one_file("x", 30_000, vec![Reply::DropAfter(10_000)]);
    art.size = None;
    let mut sink = Recorder::default();
    fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(sink.bytes, data);
    assert_eq!(server.log()[1].range_start, Some(10_000));
}

#[test]
fn more_bytes_than_the_manifest_says_are_refused() {
    let (_server, _data, dir, mut art) = one_file("x", 100_000, vec![]);
    art.size = Some(1_000);
    let mut sink = Recorder::default();
    let err = fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                expected: 1000,
                declared: Some(100_000),
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "larger than the manifest says (1000 bytes; the server announced 100000): refused"
        ),
        "{text}"
    );
    assert!(
        sink.bytes.len() <= 1000,
        "nothing past the size reached the sink"
    );
    assert!(sink.aborted);
    assert!(partial_files(dir.path()).is_empty());
}

#[test]
fn slow_trickle_counts_as_a_stall_and_resumes() {
    let (server, data, dir, art) = one_file(
        "x",
        20_000,
        vec![Reply::Trickle {
            chunk: 1,
            delay: Duration::from_millis(20),
            max: 200,
        }],
    );
    let mut opts = quick_options(dir.path());
    opts.stall = StallRule {
        min_bytes_per_sec: 10_000,
        window: Duration::from_millis(300),
    };
    let reasons = std::sync::Mutex::new(Vec::new());
    let mut sink = Recorder::default();
    fetch(&art, &mut sink, &opts, &|p| {
        if let Stage::Retrying { reason, .. } = p.stage {
            reasons.lock().unwrap().push(reason.to_string());
        }
    })
    .unwrap();
    assert_eq!(sink.bytes, data);
    let reasons = reasons.into_inner().unwrap();
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("stalled"), "{reasons:?}");
    let resumed_at = server.log()[1].range_start.unwrap();
    assert!(resumed_at > 0 && resumed_at < 200, "{resumed_at}");
}

#[test]
fn silent_server_times_out_and_resumes() {
    let (server, data, dir, art) = one_file(
        "x",
        20_000,
        vec![Reply::Silence {
            after: 5_000,
            wait: Duration::from_secs(5),
        }],
    );
    let mut opts = quick_options(dir.path());
    opts.idle_timeout = Duration::from_millis(500);
    let mut sink = Recorder::default();
    fetch(&art, &mut sink, &opts, &quiet).unwrap();
    assert_eq!(sink.bytes, data);
    assert_eq!(server.log()[1].range_start, Some(5_000));
}

#[test]
fn connection_refused_is_retried_then_reported() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = quick_options(dir.path());
    opts.retry.attempts = 2;
    let url = format!("http://127.0.0.1:{port}/f");
    let art = artifact("x", vec![url.clone()], b"abc");
    let err = fetch(&art, &mut Recorder::default(), &opts, &quiet).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, FetchError::Network { attempts: 2, .. }),
        "{text}"
    );
    assert!(text.contains(&url), "{text}");
    assert_eq!(
        text.matches(&url).count(),
        1,
        "the URL is named once: {text}"
    );
    // Nothing answered: the network is what to check.
    assert_eq!(
        err.hint().as_deref(),
        Some(
            "check the network or proxy settings (HTTPS_PROXY, NO_PROXY), then run the command \
             again"
        )
    );
}

#[test]
fn unsupported_url_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec!["ftp://example.invalid/f".into()], b"abc");
    let err = fetch(
        &art,
        &mut Recorder::default(),
        &quick_options(dir.path()),
        &quiet,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "x: cannot request ftp://example.invalid/f: only absolute http:// and https:// URLs can \
         be downloaded"
    );
}

#[test]
fn keep_verified_leaves_the_file_named_by_digest() {
    let (_server, data, dir, art) = one_file("x", 5_000, vec![]);
    let mut opts = quick_options(dir.path());
    opts.keep_verified = true;
    let fetched = fetch(&art, &mut Recorder::default(), &opts, &quiet).unwrap();
    let kept = dir.path().join("partial").join(art.sha256.to_hex());
    assert_eq!(fetched.kept.as_deref(), Some(kept.as_path()));
    assert_eq!(std::fs::read(&kept).unwrap(), data);
    assert_eq!(partial_files(dir.path()), vec![art.sha256.to_hex()]);
}

#[test]
fn fetch_all_runs_in_parallel_and_reports_per_artifact() {
    let server = Server::start();
    let blobs: Vec<Vec<u8>> = (0..4).map(|i| test_bytes(40_000 + i * 1000)).collect();
    for (i, blob) in blobs.iter().enumerate() {
        server.file(&format!("/{i}"), blob, vec![Reply::DropAfter(10_000)]);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut artifacts: Vec<Artifact> = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| artifact(&format!("a{i}"), vec![server.url(&format!("/{i}"))], b))
        .collect();
    artifacts[2].urls = vec![server.url("/missing")];
    let mut sinks: Vec<Recorder> = (0..4).map(|_| Recorder::default()).collect();
    let fetcher = Fetcher::new(&quick_options(dir.path())).unwrap();
    let requests = artifacts
        .iter()
        .zip(sinks.iter_mut())
        .map(|(a, s)| (a, s as &mut (dyn Sink + Send)))
        .collect();
    let results = fetcher.fetch_all(requests, 3, &|_| {});
    assert_eq!(results.len(), 4);
    for (i, result) in results.iter().enumerate() {
        if i == 2 {
            let err = result.as_ref().unwrap_err();
            assert!(
                matches!(err, FetchError::HttpStatus { status: 404, .. }),
                "{err}"
            );
            assert_eq!(err.artifact(), Some("a2"));
            assert!(sinks[i].aborted);
        } else {
            assert_eq!(result.as_ref().unwrap().artifact, format!("a{i}"));
            assert_eq!(sinks[i].bytes, blobs[i]);
        }
    }
}

#[test]
fn failing_sink_stops_the_download() {
    struct Refuses;
    impl Sink for Refuses {
        fn write(&mut self, _: &[u8]) -> io::Result<()> {
            Err(io::Error::other("disk full"))
        }
        fn restart(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn finish(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn abort(&mut self) {}
    }
    let server = Server::start();
    let data = test_bytes(5_000);
    server.file("/a", &data, vec![]);
    server.file("/b", &data, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let art = artifact("x", vec![server.url("/a"), server.url("/b")], &data);
    let err = fetch(&art, &mut Refuses, &quick_options(dir.path()), &quiet).unwrap_err();
    // The message says what failed, the source says why, and neither repeats the other.
    assert_eq!(err.to_string(), "x: unpacking failed");
    assert_eq!(
        std::error::Error::source(&err).map(|s| s.to_string()),
        Some("disk full".to_string())
    );
    assert!(
        server.requests("/b").is_empty(),
        "a local failure is not a mirror's fault"
    );
}

#[test]
fn wrong_bytes_left_by_an_earlier_run_get_one_fresh_download() {
    let (server, data, dir, art) = one_file("x", 40_000, vec![]);
    let partial = partial_path(dir.path(), &art);
    std::fs::write(&partial, vec![7u8; 10_000]).unwrap();
    let mut sink = Recorder::default();
    let fetched = fetch(&art, &mut sink, &quick_options(dir.path()), &quiet).unwrap();
    assert_eq!(sink.bytes, data);
    assert_eq!(sink.restarts, 1);
    assert_eq!(
        fetched.resumed_from, 0,
        "the replayed bytes were thrown away"
    );
    let starts: Vec<_> = server.log().iter().map(|s| s.range_start).collect();
    assert_eq!(starts, vec![Some(10_000), None]);
}
