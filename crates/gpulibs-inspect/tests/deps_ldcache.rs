//! The loader cache parser against this machine's `/etc/ld.so.cache` and `ldconfig -p`.

use std::path::Path;
use std::process::Command;

use gpulibs_inspect::deps::{DepsError, LdCache, LdCacheError};

#[test]
fn real_cache_agrees_with_ldconfig() {
    let path = Path::new("/etc/ld.so.cache");
    if !path.exists() {
        eprintln!("no /etc/ld.so.cache on this machine; skipped");
        return;
    }
    let cache = LdCache::load(path).unwrap();
    let output = ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"]
        .iter()
        .find_map(|exe| {
            Command::new(exe)
                .arg("-p")
                .output()
                .ok()
                .filter(|o| o.status.success())
        });
    let Some(output) = output else {
        eprintln!("ldconfig not runnable here; checked the parse only");
        assert!(!cache.entries.is_empty());
        return;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    // "	libz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1"
    let listed: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let (left, path) = l.trim().split_once(" => ")?;
            let name = left.split(" (").next()?;
            Some((name.to_owned(), path.to_owned()))
        })
        .collect();
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.starts_with(&format!("{} libs found", cache.entries.len())),
        "{header}"
    );
    assert_eq!(listed.len(), cache.entries.len());
    for (name, path) in listed.iter().step_by((listed.len() / 25).max(1)) {
        assert!(
            cache
                .entries
                .iter()
                .any(|e| &e.name == name && e.path == Path::new(path)),
            "{name} => {path} missing from the parsed cache"
        );
    }
    if cfg!(target_arch = "x86_64") {
        let libc = cache
            .lookup("libc.so.6", Some(0x0303))
            .expect("libc.so.6 in the cache");
        assert!(listed
            .iter()
            .any(|(n, p)| n == "libc.so.6" && Path::new(p) == libc.path));
    }
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ld.so.cache");
    std::fs::write(&bad, b"not a cache").unwrap();
    let err = LdCache::load(&bad).unwrap_err();
    assert!(matches!(
        err,
        DepsError::LdCache {
            source: LdCacheError::BadMagic,
            ..
        }
    ));
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
    let err = LdCache::load(&dir.path().join("absent")).unwrap_err();
    assert!(matches!(err, DepsError::Io { .. }));
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn hostile_cache_bytes_never_panic() {
    let Ok(real) = std::fs::read("/etc/ld.so.cache") else {
        return;
    };
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..300 {
        let mut bytes = real.clone();
        for _ in 0..1 + round % 16 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % bytes.len().min(4096);
            bytes[at] = (state >> 32) as u8;
        }
        let cut = (state >> 40) as usize % (bytes.len() + 1);
        let _ = LdCache::parse(&bytes);
        let _ = LdCache::parse(&bytes[..cut]);
    }
}
