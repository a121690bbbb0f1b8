//! Documents (manifests, signatures) fetched into memory against a real HTTP server on
//! 127.0.0.1: no digest, a size cap, `None` for 404, the same retries and redirects as artifacts.

mod support;

use gpulibs_fetch::{fetch_document, FetchError, Fetcher, Origin};
use support::{quick_options, test_bytes, Reply, Server};

#[test]
fn document_is_read_into_memory() {
    let server = Server::start();
    let text = b"schema_version = 1\n".to_vec();
    server.file("/rel/manifest.toml", &text, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let opts = quick_options(dir.path());
    let got = fetch_document(&server.url("/rel/manifest.toml"), 1024, &opts).unwrap();
    assert_eq!(got, Some(text));
    // Nothing is written: no .partial file, no partial directory.
    assert!(!dir.path().join("partial").exists());
    let seen = server.requests("/rel/manifest.toml");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].range_start, None);
}

#[test]
fn not_found_is_none_not_an_error() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(&quick_options(dir.path())).unwrap();
    let got = fetcher
        .fetch_document(&server.url("/manifest.toml.minisig"), 1024)
        .unwrap();
    assert_eq!(got, None);
    // Not retried: a missing signature is an answer.
    assert_eq!(server.requests("/manifest.toml.minisig").len(), 1);
}

#[test]
fn server_errors_are_retried() {
    let server = Server::start();
    let text = test_bytes(5000);
    server.file(
        "/m.toml",
        &text,
        vec![
            Reply::Status(500),
            Reply::Status(503),
            Reply::DropAfter(100),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let got = fetch_document(&server.url("/m.toml"), 1 << 20, &quick_options(dir.path())).unwrap();
    assert_eq!(got, Some(text));
    let seen = server.requests("/m.toml");
    assert_eq!(seen.len(), 4);
    // No resume for documents: every attempt starts at byte 0.
    assert!(seen.iter().all(|s| s.range_start.is_none()), "{seen:?}");
}

#[test]
fn persistent_server_errors_fail_with_the_url() {
    let server = Server::start();
    server.script("/m.toml", vec![Reply::Status(502); 10]);
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_document(&server.url("/m.toml"), 1024, &quick_options(dir.path())).unwrap_err();
    assert!(
        matches!(err, FetchError::Network { attempts: 4, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(&server.url("/m.toml")), "{text}");
    assert!(text.contains("HTTP 502"), "{text}");
}

#[test]
fn redirects_are_followed_and_limited() {
    let server = Server::start();
    let text = b"the manifest".to_vec();
    server.file("/releases/2.0/manifest.toml", &text, vec![]);
    server.script("/latest", vec![Reply::Redirect("/hop".into())]);
    // A relative Location, resolved against the URL that sent it.
    server.script(
        "/hop",
        vec![Reply::Redirect("releases/2.0/manifest.toml".into())],
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = quick_options(dir.path());
    let got = fetch_document(&server.url("/latest"), 1024, &opts).unwrap();
    assert_eq!(got, Some(text));

    // A redirect to a missing file is a missing document.
    server.script("/gone", vec![Reply::Redirect("/nowhere".into())]);
    assert_eq!(
        fetch_document(&server.url("/gone"), 1024, &opts).unwrap(),
        None
    );

    // The limit holds.
    server.script("/latest", vec![Reply::Redirect("/hop".into())]);
    server.script(
        "/hop",
        vec![Reply::Redirect("releases/2.0/manifest.toml".into())],
    );
    let mut strict = opts.clone();
    strict.max_redirects = 1;
    let err = fetch_document(&server.url("/latest"), 1024, &strict).unwrap_err();
    assert!(matches!(err, FetchError::Redirect { .. }), "{err}");
    assert!(err.to_string().contains("more than 1 redirects"), "{err}");
}

#[test]
fn a_body_over_the_cap_is_refused() {
    let server = Server::start();
    let big = test_bytes(300_000);
    server.file("/huge.toml", &big, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let opts = quick_options(dir.path());
    let err = fetch_document(&server.url("/huge.toml"), 100_000, &opts).unwrap_err();
    match &err {
        FetchError::TooLarge {
            artifact,
            origin,
            expected,
            ..
        } => {
            assert_eq!(artifact, "huge.toml");
            assert_eq!(origin, &Origin::Url(server.url("/huge.toml")));
            assert_eq!(*expected, 100_000);
        }
        other => panic!("{other}"),
    }
    // Refused on the announced length, and not retried.
    assert_eq!(server.requests("/huge.toml").len(), 1);

    // No Content-Length (the body ends when the connection closes): the cap holds while the
    // body streams.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        let (stream, _) = listener.accept().unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let mut out = stream;
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let _ = out.write_all(&test_bytes(300_000));
    });
    let err = fetch_document(&format!("http://{addr}/stream.toml"), 100_000, &opts).unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { received, .. } if received > 100_000),
        "{err}"
    );
    assert!(err.to_string().contains("100000 bytes"), "{err}");
}

#[test]
fn other_statuses_are_errors_naming_the_url() {
    let server = Server::start();
    server.script("/m.toml", vec![Reply::Status(403)]);
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_document(&server.url("/m.toml"), 1024, &quick_options(dir.path())).unwrap_err();
    assert!(
        matches!(err, FetchError::HttpStatus { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&server.url("/m.toml")), "{err}");
}

#[test]
fn offline_reads_the_file_by_name_and_makes_no_request() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let offline = dir.path().join("offline");
    std::fs::create_dir_all(&offline).unwrap();
    std::fs::write(offline.join("manifest.toml"), b"local").unwrap();
    let mut opts = quick_options(dir.path());
    opts.offline_dir = Some(offline);
    assert_eq!(
        fetch_document(&server.url("/x/manifest.toml"), 1024, &opts).unwrap(),
        Some(b"local".to_vec())
    );
    assert_eq!(
        fetch_document(&server.url("/x/manifest.toml.minisig"), 1024, &opts).unwrap(),
        None
    );
    assert!(matches!(
        fetch_document(&server.url("/x/manifest.toml"), 3, &opts).unwrap_err(),
        FetchError::TooLarge { .. }
    ));
    assert!(server.log().is_empty());
}
