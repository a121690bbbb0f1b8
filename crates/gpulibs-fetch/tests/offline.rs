//! `--offline DIR`: the same verification, from a directory of artifacts.

mod support;

use gpulibs_fetch::{fetch, FetchError, Origin, Progress};
use gpulibs_hint::Hint;
use support::{artifact, quick_options, test_bytes};

fn quiet(_: &Progress) {}

fn offline_setup() -> (tempfile::TempDir, gpulibs_fetch::FetchOptions) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("offline")).unwrap();
    let mut opts = quick_options(dir.path());
    opts.offline_dir = Some(dir.path().join("offline"));
    (dir, opts)
}

#[test]
fn finds_the_file_by_its_url_name() {
    let (dir, opts) = offline_setup();
    let data = test_bytes(70_000);
    let file = dir.path().join("offline/cudnn 9.tar.zst");
    std::fs::write(&file, &data).unwrap();
    let art = artifact(
        "cudnn-9",
        vec!["https://mirror.invalid/x/cudnn%209.tar.zst?token=1".into()],
        &data,
    );
    let mut sink = Vec::new();
    let fetched = fetch(&art, &mut sink, &opts, &quiet).unwrap();
    assert_eq!(sink, data);
    assert_eq!(fetched.origin, Origin::File(file));
    assert_eq!(fetched.requests, 0);
}

#[test]
fn finds_the_file_by_its_digest() {
    let (dir, opts) = offline_setup();
    let data = test_bytes(1_000);
    let art = artifact("x", vec!["https://mirror.invalid/x.tar.gz".into()], &data);
    std::fs::write(dir.path().join("offline").join(art.sha256.to_hex()), &data).unwrap();
    let mut sink = Vec::new();
    fetch(&art, &mut sink, &opts, &quiet).unwrap();
    assert_eq!(sink, data);
}

#[test]
fn missing_file_names_what_was_looked_for() {
    let (dir, opts) = offline_setup();
    let art = artifact(
        "x",
        vec!["https://mirror.invalid/a/x.tar.xz".into()],
        b"abc",
    );
    let err = fetch(&art, &mut Vec::new(), &opts, &quiet).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "x: not found in the offline directory {} (looked for x.tar.xz, {})",
            dir.path().join("offline").display(),
            art.sha256
        )
    );
    assert_eq!(
        err.hint().as_deref(),
        Some("copy the file there or run without --offline")
    );
}

#[test]
fn mismatch_leaves_the_users_file_alone() {
    let (dir, opts) = offline_setup();
    let data = test_bytes(1_000);
    let file = dir.path().join("offline/x.tar");
    std::fs::write(&file, b"something else").unwrap();
    let mut art = artifact("x", vec!["https://mirror.invalid/x.tar".into()], &data);
    art.size = None;
    let mut sink = Vec::new();
    let err = fetch(&art, &mut sink, &opts, &quiet).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, FetchError::DigestMismatch { deleted: false, .. }),
        "{text}"
    );
    assert!(
        text.ends_with("the file was left as it is; it is not the file the manifest names"),
        "{text}"
    );
    assert!(file.exists());
    assert!(sink.is_empty(), "the Vec sink was aborted (cleared)");
}

#[test]
fn wrong_size_is_reported_before_hashing_matters() {
    let (dir, opts) = offline_setup();
    let data = test_bytes(1_000);
    std::fs::write(dir.path().join("offline/x.tar"), &data[..600]).unwrap();
    let art = artifact("x", vec!["https://mirror.invalid/x.tar".into()], &data);
    let err = fetch(&art, &mut Vec::new(), &opts, &quiet).unwrap_err();
    assert!(
        err.to_string()
            .contains("has 600 bytes, the manifest says 1000"),
        "{err}"
    );
    std::fs::write(dir.path().join("offline/x.tar"), test_bytes(2_000)).unwrap();
    let err = fetch(&art, &mut Vec::new(), &opts, &quiet).unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
}
