//! Opening files to read them, safely: regular files only, and where their data is.
//!
//! - [`open_regular`] refuses FIFOs, sockets and device files before reading a byte: the path
//!   is checked with `stat`, opened with `O_NONBLOCK` (so a FIFO swapped in meanwhile cannot
//!   block the open) and checked again on the open descriptor. Opening a FIFO for reading would
//!   otherwise wait forever for a writer, and reading a device (`/dev/zero`) never ends.
//! - [`data_extents`] asks the file system where a file holds data (`SEEK_DATA`/`SEEK_HOLE`):
//!   holes of a sparse file read as zeros, which hold no fatbin magic, so the scan skips them
//!   without reading. A 50 GiB sparse file costs a few system calls instead of 50 GiB of reads.
//! - [`scan_windows`]: the plain-data plan of what to scan: section ranges cut to the data
//!   extents and into windows of bounded size, after each of which the reader can let the
//!   pages it touched go (bounded memory however large the file).

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Bytes scanned between two releases of the pages read (see [`scan_windows`]).
pub const SCAN_WINDOW: usize = 64 << 20;

/// Most data extents taken from the file system; beyond, the rest of the file counts as data
/// (a file fragmented into millions of extents is scanned whole rather than listed).
const MAX_EXTENTS: usize = 1 << 16;

/// The kind of a file that is not a regular file, in words (`a FIFO (named pipe)`).
pub fn special_kind(ft: std::fs::FileType) -> Option<&'static str> {
    if ft.is_file() {
        None
    } else if ft.is_dir() {
        Some("a directory")
    } else if ft.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else {
        Some("not a regular file")
    }
}

/// Why a path was not opened: it is not a regular file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is {kind}, not a regular file")]
pub struct NotARegularFile {
    /// `a FIFO (named pipe)`, `a character device`, ...
    pub kind: &'static str,
}

/// Opens `path` (following symbolic links) for reading if, and only if, it is a regular file.
/// Never blocks on a FIFO and never opens a device for reading; the error then wraps a
/// [`NotARegularFile`] (kind [`std::io::ErrorKind::InvalidInput`]).
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let refuse =
        |kind| std::io::Error::new(std::io::ErrorKind::InvalidInput, NotARegularFile { kind });
    if let Some(kind) = special_kind(std::fs::metadata(path)?.file_type()) {
        return Err(refuse(kind));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if let Some(kind) = special_kind(file.metadata()?.file_type()) {
        return Err(refuse(kind));
    }
    Ok(file)
}

/// The byte ranges of `file` (of length `len`) that hold data, in order. A file system that
/// does not report holes gives one range, the whole file.
pub fn data_extents(file: &File, len: u64) -> Vec<Range<u64>> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let seek = |pos: u64, whence| -> Option<u64> {
        let pos = libc::off_t::try_from(pos).ok()?;
        // SAFETY: lseek on a descriptor this function borrows; it only moves the file offset,
        // which nothing else here uses (the file is read through a memory map).
        let r = unsafe { libc::lseek(fd, pos, whence) };
        u64::try_from(r).ok()
    };
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        if out.len() >= MAX_EXTENTS {
            out.push(pos..len);
            break;
        }
        let Some(data) = seek(pos, libc::SEEK_DATA) else {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
                break; // no data past `pos`: a hole to the end
            }
            // SEEK_DATA unsupported: all of the rest is data.
            out.push(pos..len);
            break;
        };
        if data >= len {
            break;
        }
        let hole = seek(data, libc::SEEK_HOLE).unwrap_or(len).min(len);
        if hole <= data {
            out.push(data..len);
            break;
        }
        out.push(data..hole);
        pos = hole;
    }
    out
}

/// What to scan: each range of `sections` (sorted by start, possibly overlapping) cut to the
/// `extents` holding data and into windows of at most `window` bytes. Each window is
/// `(section index, window)`; windows come in file order and never overlap, and the union of
/// the sections is covered once (time proportional to the data, whatever a hostile section
/// table says). `extents: None` means the whole file is data.
pub fn scan_windows(
    sections: &[Range<usize>],
    extents: Option<&[Range<usize>]>,
    window: usize,
) -> Vec<(usize, Range<usize>)> {
    let window = window.max(8);
    let mut out = Vec::new();
    let mut covered = 0usize;
    let cut = |i: usize, r: Range<usize>, out: &mut Vec<(usize, Range<usize>)>| {
        let mut start = r.start;
        while start < r.end {
            let end = r.end.min(start.saturating_add(window));
            out.push((i, start..end));
            start = end;
        }
    };
    for (i, s) in sections.iter().enumerate() {
        let start = s.start.max(covered);
        if start >= s.end {
            continue;
        }
        match extents {
            None => cut(i, start..s.end, &mut out),
            Some(extents) => {
                for e in extents {
                    let (a, b) = (e.start.max(start), e.end.min(s.end));
                    if a < b {
                        cut(i, a..b, &mut out);
                    }
                }
            }
        }
        covered = s.end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // lists of ranges, some of one
    fn windows_follow_sections_extents_and_size() {
        type Case = (
            &'static str,
            Vec<Range<usize>>,
            Option<Vec<Range<usize>>>,
            usize,
            Vec<(usize, Range<usize>)>,
        );
        let cases: Vec<Case> = vec![
            (
                "whole, one window",
                vec![0..100],
                None,
                1000,
                vec![(0, 0..100)],
            ),
            (
                "cut into windows",
                vec![0..100],
                None,
                40,
                vec![(0, 0..40), (0, 40..80), (0, 80..100)],
            ),
            (
                "holes skipped",
                vec![0..100],
                Some(vec![0..10, 60..70]),
                1000,
                vec![(0, 0..10), (0, 60..70)],
            ),
            ("no data at all", vec![0..1 << 40], Some(vec![]), 64, vec![]),
            (
                "overlapping sections scanned once",
                vec![0..50, 20..80, 30..40],
                None,
                1000,
                vec![(0, 0..50), (1, 50..80)],
            ),
            (
                "extent spanning two sections",
                vec![0..50, 60..100],
                Some(vec![40..70]),
                1000,
                vec![(0, 40..50), (1, 60..70)],
            ),
        ];
        for (name, sections, extents, window, want) in cases {
            assert_eq!(
                scan_windows(&sections, extents.as_deref(), window),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn sparse_file_extents() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse");
        let mut f = File::create(&p).unwrap();
        f.set_len(1 << 30).unwrap();
        f.seek(SeekFrom::Start(512 << 20)).unwrap();
        f.write_all(&[1u8; 4096]).unwrap();
        drop(f);
        let f = open_regular(&p).unwrap();
        let extents = data_extents(&f, 1 << 30);
        // File systems without hole reporting give the whole file; those with it (ext4, xfs,
        // btrfs, tmpfs) give the block written.
        assert!(
            (extents.len() == 1 && extents[0] == (0..1 << 30))
                || (extents.len() == 1
                    && extents[0].start <= 512 << 20
                    && extents[0].end >= (512 << 20) + 4096
                    && extents[0].end - extents[0].start <= 1 << 20),
            "{extents:?}"
        );
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(e.to_string(), "is a FIFO (named pipe), not a regular file");
        let e = open_regular(Path::new("/dev/null")).unwrap_err();
        assert_eq!(e.to_string(), "is a character device, not a regular file");
        let e = open_regular(dir.path()).unwrap_err();
        assert_eq!(e.to_string(), "is a directory, not a regular file");
    }
}
