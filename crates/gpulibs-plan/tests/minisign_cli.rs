//! Interoperability with the real `minisign` command (Debian's `minisign` package; CI installs
//! it): keys it writes sign through gpulibs, `minisign -V` accepts what gpulibs signs, and
//! `minisign -S` signs with a key gpulibs wrote.
//!
//! Without `minisign` on `PATH` these tests fail under CI (`CI` set) and are skipped, loudly,
//! elsewhere, so a developer without the package can still run the suite.

// A test: says why it is skipped.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use gpulibs_plan::{sign_manifest, verify_manifest, SecretKey, SignatureError};

const EXAMPLE: &[u8] = include_bytes!("../fixtures/example.toml");

fn minisign() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|d| d.join("minisign"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "`minisign` is not on PATH; CI must install it (apt-get install minisign)"
        );
        eprintln!("SKIPPED: `minisign` is not on PATH (apt-get install minisign)");
    }
    found
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("minisign runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `minisign -G -W`: an unencrypted key pair in `dir`.
fn generate(bin: &Path, dir: &Path) -> (String, String) {
    let (pk, sk) = (dir.join("vendor.pub"), dir.join("vendor.key"));
    run(Command::new(bin)
        .args(["-G", "-W", "-p"])
        .arg(&pk)
        .arg("-s")
        .arg(&sk)
        .stdin(std::process::Stdio::null()));
    (
        std::fs::read_to_string(pk).unwrap(),
        std::fs::read_to_string(sk).unwrap(),
    )
}

fn key_bytes(text: &str) -> Vec<u8> {
    let line = text.lines().nth(1).unwrap().trim();
    base64::engine::general_purpose::STANDARD
        .decode(line)
        .unwrap()
}

fn key_text(bin: &[u8]) -> String {
    format!(
        "untrusted comment: minisign encrypted secret key\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(bin)
    )
}

#[test]
fn a_key_from_minisign_g_w_signs_through_gpulibs_and_minisign_verifies_it() {
    let Some(bin) = minisign() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (public, secret) = generate(&bin, dir.path());
    // What this test is about: minisign 0.11 leaves an unencrypted key's checksum zero.
    let raw = key_bytes(&secret);
    let zero_checksum = raw[126..].iter().all(|&b| b == 0);
    eprintln!("minisign's -W key has a zero checksum: {zero_checksum}");

    let key = SecretKey::from_minisign(&secret).expect("gpulibs reads minisign's own key");
    assert_eq!(
        key.public_key().lines().nth(1),
        public.lines().nth(1),
        "the public key gpulibs derives is the one minisign wrote"
    );
    let manifest = dir.path().join("manifest.toml");
    std::fs::write(&manifest, EXAMPLE).unwrap();
    std::fs::write(
        dir.path().join("manifest.toml.minisig"),
        sign_manifest(EXAMPLE, &key),
    )
    .unwrap();
    run(Command::new(&bin)
        .arg("-V")
        .arg("-p")
        .arg(dir.path().join("vendor.pub"))
        .arg("-m")
        .arg(&manifest));
}

#[test]
fn minisign_signs_and_gpulibs_verifies_then_refuses_an_altered_manifest() {
    let Some(bin) = minisign() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (public, _) = generate(&bin, dir.path());
    let manifest = dir.path().join("manifest.toml");
    std::fs::write(&manifest, EXAMPLE).unwrap();
    run(Command::new(&bin)
        .arg("-S")
        .arg("-s")
        .arg(dir.path().join("vendor.key"))
        .arg("-m")
        .arg(&manifest)
        .stdin(std::process::Stdio::null()));
    let sig = std::fs::read_to_string(dir.path().join("manifest.toml.minisig")).unwrap();
    assert_eq!(verify_manifest(EXAMPLE, &sig, &public), Ok(()));
    let mut altered = EXAMPLE.to_vec();
    altered[0] ^= 1;
    assert!(matches!(
        verify_manifest(&altered, &sig, &public),
        Err(SignatureError::Mismatch { .. })
    ));
}

#[test]
fn minisign_signs_with_a_key_gpulibs_wrote() {
    let Some(bin) = minisign() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed([9; 32], *b"gpulibs1");
    std::fs::write(dir.path().join("g.key"), key.to_minisign()).unwrap();
    let manifest = dir.path().join("manifest.toml");
    std::fs::write(&manifest, EXAMPLE).unwrap();
    run(Command::new(&bin)
        .arg("-S")
        .arg("-s")
        .arg(dir.path().join("g.key"))
        .arg("-m")
        .arg(&manifest)
        .stdin(std::process::Stdio::null()));
    let sig = std::fs::read_to_string(dir.path().join("manifest.toml.minisig")).unwrap();
    assert_eq!(verify_manifest(EXAMPLE, &sig, &key.public_key()), Ok(()));
    // And minisign derives the same public key from it (`-R`).
    run(Command::new(&bin)
        .arg("-R")
        .arg("-s")
        .arg(dir.path().join("g.key"))
        .arg("-p")
        .arg(dir.path().join("g.pub")));
    let recreated = std::fs::read_to_string(dir.path().join("g.pub")).unwrap();
    assert_eq!(recreated.lines().nth(1), key.public_key().lines().nth(1));
}

#[test]
fn a_damaged_minisign_key_is_refused_wherever_the_damage_is() {
    let Some(bin) = minisign() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_, secret) = generate(&bin, dir.path());
    let raw = key_bytes(&secret);
    // A flipped bit in the secret half (62..94) or the public half (94..126): the halves no
    // longer agree. A non-zero checksum that is not the key's own: damaged too.
    for (at, what) in [(70, "secret half"), (100, "public half"), (140, "checksum")] {
        let mut bad = raw.clone();
        bad[at] ^= 0x10;
        let err = SecretKey::from_minisign(&key_text(&bad)).unwrap_err();
        assert!(
            matches!(err, SignatureError::BadSecretKey(ref m) if m.contains("damaged")),
            "{what}: {err}"
        );
    }
}
