//! Bad input never hangs, aborts or reads a huge file into memory: special files are refused
//! before they are opened for reading, sparse files are read where they hold data, and a
//! section table that claims more than the file holds is reported. (Speed and memory are
//! measured by `scripts/bench-inspect-bad-input.sh`, not timed here.)

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use gpulibs_inspect::{inspect_file, inspect_paths, FileFormat, InspectOptions};
use gpulibs_testkit::{build_so, container, Entry, Place};

const GIB: u64 = 1 << 30;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Runs `f` on a thread and fails (instead of hanging the test run) if it takes over 60 s.
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} did not return within 60 s (it blocks)"))
}

#[test]
fn fifo_and_devices_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("libfifo.so");
    mkfifo(&fifo);
    let p = fifo.clone();
    let err = within_a_minute("inspecting a FIFO", move || {
        inspect_file(&p, &InspectOptions::default()).map(|r| r.path)
    })
    .unwrap_err();
    assert_eq!(err.path(), fifo);
    // The message names the file and the step; the cause says why, once.
    assert_eq!(
        err.to_string(),
        format!("{}: cannot open the file", fifo.display())
    );
    assert_eq!(
        cause(&err),
        "is a FIFO (named pipe), not a regular file",
        "{err}"
    );

    for (dev, kind) in [
        ("/dev/zero", "a character device"),
        ("/dev/null", "a character device"),
    ] {
        let err = within_a_minute("inspecting a device", move || {
            inspect_file(Path::new(dev), &InspectOptions::default()).map(|r| r.path)
        })
        .unwrap_err();
        assert!(cause(&err).contains(&format!("is {kind}")), "{dev}: {err}");
    }
}

/// The text of an error's cause chain below its own message.
fn cause(err: &dyn std::error::Error) -> String {
    let mut text = Vec::new();
    let mut next = err.source();
    while let Some(e) = next {
        text.push(e.to_string());
        next = e.source();
    }
    text.join(": ")
}

#[test]
fn directory_walk_skips_fifos() {
    let dir = tempfile::tempdir().unwrap();
    build_so(
        dir.path(),
        "libreal.so",
        &[(Place::Section(".nv_fatbin"), container(&[Entry::sass(86)]))],
    );
    mkfifo(&dir.path().join("libaaa-fifo.so"));
    let root = dir.path().to_path_buf();
    let names: Vec<PathBuf> = within_a_minute("walking a directory with a FIFO", move || {
        inspect_paths(&[root], &InspectOptions::default())
            .into_iter()
            .map(|r| r.unwrap().path)
            .collect()
    });
    assert_eq!(names, [dir.path().join("libreal.so")]);
}

/// A 50 GiB sparse file, no ELF: handled (read where it holds data), its one container found.
#[test]
fn sparse_50_gib_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.bin");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(50 * GIB).unwrap();
    drop(f);
    let r = inspect_file(&p, &InspectOptions::default()).unwrap();
    assert_eq!(
        (r.format, r.size, r.containers),
        (FileFormat::Other, 50 * GIB, 0)
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);

    // Data 40 GiB in: still found, so skipping holes loses nothing.
    let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.seek(SeekFrom::Start(40 * GIB)).unwrap();
    f.write_all(&container(&[Entry::sass(90), Entry::ptx(90, (8, 8))]))
        .unwrap();
    drop(f);
    let r = inspect_file(&p, &InspectOptions::default()).unwrap();
    assert_eq!(r.containers, 1);
    assert_eq!(r.sass_targets, ["sm_90"]);
    assert_eq!(r.sections[0].name, "(file)");
}

/// ELF64 little-endian: the offset of the header of the section named `name`.
fn section_header(bytes: &[u8], name: &str) -> usize {
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3A), u16_at(0x3C), u16_at(0x3E));
    let strtab = u64_at(shoff + shstrndx * shentsize + 0x18);
    (0..shnum)
        .map(|i| shoff + i * shentsize)
        .find(|&h| {
            let n = strtab + u32_at(h);
            bytes[n..].starts_with(name.as_bytes()) && bytes[n + name.len()] == 0
        })
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// A sparse 50 GiB ELF file whose `.nv_fatbin` header claims 1 TiB: the claim is reported, the
/// bytes that exist are scanned, the container in them is found.
#[test]
fn sparse_elf_with_a_section_claiming_a_terabyte() {
    let dir = tempfile::tempdir().unwrap();
    let so = build_so(
        dir.path(),
        "libclaim.so",
        &[(Place::Section(".nv_fatbin"), container(&[Entry::sass(80)]))],
    );
    let mut bytes = std::fs::read(&so).unwrap();
    let h = section_header(&bytes, ".nv_fatbin");
    bytes[h + 0x20..h + 0x28].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let p = dir.path().join("libclaim-huge.so");
    std::fs::write(&p, &bytes).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(50 * GIB)
        .unwrap();

    let r = inspect_file(&p, &InspectOptions::default()).unwrap();
    assert_eq!(r.format, FileFormat::Elf);
    assert_eq!(r.size, 50 * GIB);
    assert_eq!(r.sass_targets, ["sm_80"]);
    assert!(
        r.warnings.iter().any(|w| w.starts_with(&format!(
            "section .nv_fatbin claims {} bytes at offset",
            1u64 << 40
        )) && w.contains("past the end of the file (53687091200 bytes)")),
        "{:?}",
        r.warnings
    );
}
