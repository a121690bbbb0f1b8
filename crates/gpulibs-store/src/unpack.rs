//! Safe unpacking of tar streams and wheels into one component directory.
//!
//! The archive is hostile until proven otherwise. Every entry name is split into plain
//! components (absolute paths and `..` refused); every file is created with `openat` relative to
//! a directory descriptor reached with `O_NOFOLLOW`, so nothing is ever written through a
//! symlink, whichever symlinks the archive made; device files and fifos are refused; symlinks
//! are recreated as symlinks (the seed's `cp -L` doubled its size by copying through them) and
//! must resolve inside the component, following the component's own links, once the whole tree
//! is known; hard links may only name a regular file extracted earlier. Sizes are checked
//! before any data is read: against the manifest's per-file size when known, and against what
//! is left of the component's unpacked size, so an archive bomb stops at the entry that would
//! burst the budget. Every file is hashed as it is written (its sha256 is kept in the report);
//! a file the manifest lists must be in the archive, as a regular file, with the listed size
//! and sha256, or the component is refused before it reaches the store. Files are made
//! read-only once written: installs hard-link them.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::UnpackError;

/// How far an archive may go, from the release manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Total bytes of file contents the component unpacks to (the manifest's `unpacked_size`).
    pub max_unpacked_bytes: u64,
    /// Most entries the archive may hold.
    pub max_entries: u64,
    /// Sizes of individual files when the manifest lists them, by path inside the archive
    /// (`libs/libcudart.so.12`). Files not listed are only held to the total. A listed file
    /// must be in the archive.
    pub file_sizes: BTreeMap<String, u64>,
    /// sha256 digests (lowercase hex) of individual files when the manifest lists them, by path
    /// inside the archive. A listed file must be in the archive, as a regular file with this
    /// digest.
    pub file_sha256: BTreeMap<String, String>,
    /// The archive's own (compressed) size, when the manifest gives it.
    pub max_archive_bytes: Option<u64>,
}

impl UnpackLimits {
    /// Limits from the unpacked size alone, with a generous entry count.
    pub fn unpacked(max_unpacked_bytes: u64) -> Self {
        Self {
            max_unpacked_bytes,
            max_entries: 100_000,
            file_sizes: BTreeMap::new(),
            file_sha256: BTreeMap::new(),
            max_archive_bytes: None,
        }
    }
}

/// How a tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveFormat {
    Tar,
    TarGzip,
    TarZstd,
    /// One or more xz streams.
    TarXz,
    /// A Python wheel (zip); see [`unpack_wheel`].
    Wheel,
}

impl ArchiveFormat {
    /// From a file name: `.tar`, `.tar.gz`/`.tgz`, `.tar.zst`/`.tzst`, `.tar.xz`/`.txz`,
    /// `.whl`.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let n = name.to_ascii_lowercase();
        if n.ends_with(".tar") {
            Some(Self::Tar)
        } else if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            Some(Self::TarGzip)
        } else if n.ends_with(".tar.zst") || n.ends_with(".tzst") {
            Some(Self::TarZstd)
        } else if n.ends_with(".tar.xz") || n.ends_with(".txz") {
            Some(Self::TarXz)
        } else if n.ends_with(".whl") {
            Some(Self::Wheel)
        } else {
            None
        }
    }
}

/// What one entry became on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One unpacked path, relative to the component directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackedEntry {
    pub path: String,
    pub kind: EntryKind,
    /// Bytes of a file; 0 otherwise.
    pub size: u64,
    /// The link text of a symlink, as the archive gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// sha256 of a file's bytes, as they were written (absent in records of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executable: bool,
}

/// What an archive unpacked to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackReport {
    pub entries: Vec<UnpackedEntry>,
    pub unpacked_bytes: u64,
}

/// Unpacks a tar stream (already decompressed) into the empty directory `dest`.
///
/// Stops at the first refused entry; what was written before stays in `dest`, which the caller
/// (the store's stager) throws away.
pub fn unpack_tar(
    reader: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackReport, UnpackError> {
    unpack_tar_observed(reader, dest, limits, &mut |_| Ok(()))
}

/// [`unpack_tar`] with a callback after each entry (the store's crash-test hook).
pub(crate) fn unpack_tar_observed(
    reader: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
    after_entry: &mut dyn FnMut(usize) -> io::Result<()>,
) -> Result<UnpackReport, UnpackError> {
    let mut tree = Tree::open(dest, limits)?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(read_err)?;
    for (index, entry) in entries.enumerate() {
        let mut entry = entry.map_err(read_err)?;
        tree.count_entry()?;
        let raw_name = entry.path_bytes().into_owned();
        let name = display(&raw_name);
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644);
        let declared = entry.size();
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => {
                let path = normalize(&raw_name)?;
                tree.file(&path, &name, Some(declared), mode & 0o111 != 0, &mut entry)?;
            }
            T::Directory => {
                let path = normalize(&raw_name)?;
                tree.dir(&path, &name)?;
            }
            T::Symlink => {
                let path = normalize(&raw_name)?;
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                tree.symlink(&path, &name, &target)?;
            }
            T::Link => {
                let path = normalize(&raw_name)?;
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                tree.hardlink(&path, &name, &target)?;
            }
            T::Char => return Err(special(name, "character device")),
            T::Block => return Err(special(name, "block device")),
            T::Fifo => return Err(special(name, "fifo")),
            // Global PAX headers carry defaults (mtime, charset), never data.
            T::XGlobalHeader => continue,
            other => {
                return Err(UnpackError::Unsupported {
                    entry: name,
                    detail: format!("entry type {:?} is not supported", other),
                })
            }
        }
        after_entry(index).map_err(read_err)?;
    }
    tree.finish()
}

/// The wheel members a GPU install uses: ONNX Runtime's `onnxruntime/capi/*.so*` and the CUDA
/// wheels' `nvidia/*/lib/*.so*`.
pub fn wheel_library_member(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    let is_so = |f: &str| f.starts_with("lib") && (f.ends_with(".so") || f.contains(".so."));
    match parts.as_slice() {
        ["onnxruntime", "capi", file] => is_so(file),
        ["nvidia", _, "lib", file] => is_so(file),
        _ => false,
    }
}

/// Unpacks the members of the wheel at `wheel` for which `select` is true into the empty
/// directory `dest`, keeping their paths.
///
/// A wheel is read from a file, not a stream: a zip's central directory at its end is the
/// authoritative list of members, and a streaming reader that trusts local headers can be shown
/// a different set of files than `pip` would install. The fetcher writes the file anyway, and
/// the store verifies its sha256 before this runs. Every member name is checked, selected or
/// not; sizes declared in the central directory are held to the budget and the actual bytes to
/// the declared size.
pub fn unpack_wheel(
    wheel: &Path,
    dest: &Path,
    select: &dyn Fn(&str) -> bool,
    limits: &UnpackLimits,
) -> Result<UnpackReport, UnpackError> {
    let file = File::open(wheel).map_err(read_err)?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(UnpackError::Zip)?;
    let mut tree = Tree::open(dest, limits)?;
    let mut selected = 0usize;
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(UnpackError::Zip)?;
        tree.count_entry()?;
        let raw_name = member.name_raw().to_vec();
        let name = display(&raw_name);
        let path = normalize(&raw_name)?;
        if member.is_dir() {
            continue;
        }
        let mode = member.unix_mode().unwrap_or(0o644);
        check_zip_mode(&name, mode)?;
        if !select(&path.join("/")) {
            continue;
        }
        selected += 1;
        let declared = member.size();
        tree.file(&path, &name, Some(declared), mode & 0o111 != 0, &mut member)?;
    }
    if selected == 0 {
        return Err(UnpackError::NothingSelected {
            what: "no member matched the wheel filter".into(),
        });
    }
    tree.finish()
}

/// Refuses a zip member whose mode (from the central directory) is not a regular file.
fn check_zip_mode(name: &str, mode: u32) -> Result<(), UnpackError> {
    let file_type = mode & 0o170000;
    let dir = file_type == 0o040000 && name.ends_with('/');
    if file_type != 0 && file_type != 0o100000 && !dir {
        let kind = match file_type {
            0o120000 => "symlink (wheels install no links)",
            0o020000 => "character device",
            0o060000 => "block device",
            0o010000 => "fifo",
            _ => "special file",
        };
        return Err(special(name.to_string(), kind));
    }
    Ok(())
}

/// One zip member as a streaming reader saw it (local header, data descriptor) or as the
/// central directory lists it (`gpulibs_fetch::ZipEntry`, converted by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipListedMember {
    pub name: String,
    /// Offset of the member's local header in the zip.
    pub offset: u64,
    pub crc32: u32,
    pub size: u64,
    /// Unix mode from the central directory, when the zip was made on Unix.
    pub unix_mode: Option<u32>,
}

/// Unpacks zip members as they stream (a wheel from the network), then checks them against
/// the central directory, which arrives last. Same rules as [`unpack_wheel`]: every name is
/// checked, selected or not; only selected regular files are written, each held to its size
/// and the budget as it is written; special files and links (by the directory's modes) refuse
/// the archive.
pub(crate) struct ZipStreamUnpacker<'a> {
    tree: Tree<'a>,
    select: &'a dyn Fn(&str) -> bool,
    /// Members seen, in order.
    seen: Vec<String>,
    /// What was written, by member name: path, CRC-32 and size of the bytes on disk.
    written: BTreeMap<String, (Vec<String>, u32, u64)>,
}

impl<'a> ZipStreamUnpacker<'a> {
    pub(crate) fn new(
        dest: &Path,
        limits: &'a UnpackLimits,
        select: &'a dyn Fn(&str) -> bool,
    ) -> Result<Self, UnpackError> {
        Ok(Self {
            tree: Tree::open(dest, limits)?,
            select,
            seen: Vec::new(),
            written: BTreeMap::new(),
        })
    }

    /// One member, in stream order: `size` from its local header (`None` with a data
    /// descriptor), `data` its uncompressed bytes.
    pub(crate) fn member(
        &mut self,
        name: &str,
        size: Option<u64>,
        data: &mut dyn Read,
    ) -> Result<(), UnpackError> {
        self.tree.count_entry()?;
        self.seen.push(name.to_string());
        let path = normalize(name.as_bytes())?;
        if name.ends_with('/') || path.is_empty() {
            return Ok(());
        }
        if !(self.select)(&path.join("/")) {
            return Ok(());
        }
        let mut crc = CrcReader {
            inner: data,
            crc: flate2::Crc::new(),
        };
        self.tree.file(&path, name, size, false, &mut crc)?;
        let written = match self.tree.nodes.get(&path) {
            Some(Node::File { size, .. }) => *size,
            _ => 0,
        };
        self.written
            .insert(name.to_string(), (path, crc.crc.sum(), written));
        Ok(())
    }

    /// Checks the members as they streamed against the central directory: each streamed
    /// member listed once, under its name, at its offset, with its CRC-32 and size; nothing
    /// listed that did not stream; the files written are those bytes. Then applies the
    /// directory's modes (special files refused, executables marked).
    pub(crate) fn finish(
        mut self,
        streamed: &[ZipListedMember],
        central: &[ZipListedMember],
    ) -> Result<UnpackReport, UnpackError> {
        let mismatch = |entry: &str, detail: String| UnpackError::ZipListing {
            entry: entry.to_string(),
            detail,
        };
        if streamed.len() != self.seen.len()
            || streamed.iter().zip(&self.seen).any(|(s, n)| s.name != *n)
        {
            return Err(mismatch(
                "",
                format!(
                    "list of {} streamed members does not match the {} unpacked",
                    streamed.len(),
                    self.seen.len()
                ),
            ));
        }
        let mut by_offset: BTreeMap<u64, &ZipListedMember> = BTreeMap::new();
        let mut names = std::collections::BTreeSet::new();
        for c in central {
            if by_offset.insert(c.offset, c).is_some() || !names.insert(c.name.as_str()) {
                return Err(mismatch(&c.name, "is listed twice".into()));
            }
        }
        for s in streamed {
            let Some(c) = by_offset.remove(&s.offset) else {
                return Err(mismatch(
                    &s.name,
                    format!("(at offset {}) is not in the central directory", s.offset),
                ));
            };
            if c.name != s.name {
                return Err(mismatch(
                    &s.name,
                    format!("(at offset {}) is listed as `{}`", s.offset, c.name),
                ));
            }
            if (c.crc32, c.size) != (s.crc32, s.size) {
                return Err(mismatch(
                    &s.name,
                    format!(
                        "streamed {} bytes with CRC-32 {:08x}; the central directory lists {} \
                         bytes with {:08x}",
                        s.size, s.crc32, c.size, c.crc32
                    ),
                ));
            }
        }
        if let Some(c) = by_offset.values().next() {
            return Err(mismatch(
                &c.name,
                format!(
                    "is in the central directory (offset {}) but did not stream",
                    c.offset
                ),
            ));
        }
        for c in central {
            check_zip_mode(&c.name, c.unix_mode.unwrap_or(0o644))?;
            if let Some((path, crc, size)) = self.written.get(&c.name) {
                if (*crc, *size) != (c.crc32, c.size) {
                    return Err(mismatch(
                        &c.name,
                        format!(
                            "was written as {size} bytes with CRC-32 {crc:08x}; the central \
                             directory lists {} bytes with {:08x}",
                            c.size, c.crc32
                        ),
                    ));
                }
                if c.unix_mode.unwrap_or(0) & 0o111 != 0 {
                    let path = path.clone();
                    self.tree.set_executable(&path, &c.name)?;
                }
            }
        }
        if self.written.is_empty() {
            return Err(UnpackError::NothingSelected {
                what: "no member matched the wheel filter".into(),
            });
        }
        self.tree.finish()
    }
}

/// sha256 of what passes: each file's digest, computed as it is written.
struct Sha256Reader<'a> {
    inner: &'a mut dyn Read,
    hasher: Sha256,
}

impl Read for Sha256Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// CRC-32 of what passes, independently of the zip reader's own check.
struct CrcReader<'a> {
    inner: &'a mut dyn Read,
    crc: flate2::Crc,
}

impl Read for CrcReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

fn read_err(e: io::Error) -> UnpackError {
    UnpackError::Read(e)
}

fn special(entry: String, kind: &'static str) -> UnpackError {
    UnpackError::SpecialFile { entry, kind }
}

fn display(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Splits an archive name into plain components: `./a//b/` → `[a, b]`.
fn normalize(raw: &[u8]) -> Result<Vec<String>, UnpackError> {
    let entry = display(raw);
    let name = std::str::from_utf8(raw).map_err(|_| UnpackError::BadName {
        entry: entry.clone(),
    })?;
    if name.starts_with('/') || name.starts_with('\\') || name.contains('\0') {
        return Err(UnpackError::AbsolutePath { entry });
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(UnpackError::ParentComponent { entry }),
            p => parts.push(p.to_string()),
        }
    }
    // A directory entry `./` names the component root itself: nothing to create.
    Ok(parts)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File {
        size: u64,
        executable: bool,
        /// Empty when not known (a tree rebuilt from an old record).
        sha256: String,
    },
    Symlink(String),
}

/// What the manifest says about one file: its size and sha256, either may be absent.
type Expected = (Option<u64>, Option<String>);

/// The manifest's per-file sizes and digests, by path split into plain components (so
/// `./lib//x.so` in the manifest is the archive's `lib/x.so`).
fn expected_files(limits: &UnpackLimits) -> BTreeMap<Vec<String>, Expected> {
    let key = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect()
    };
    let mut out: BTreeMap<Vec<String>, Expected> = BTreeMap::new();
    for (p, size) in &limits.file_sizes {
        out.entry(key(p)).or_default().0 = Some(*size);
    }
    for (p, sha) in &limits.file_sha256 {
        out.entry(key(p)).or_default().1 = Some(sha.clone());
    }
    out
}

/// The component directory being filled, and what the archive put in it so far.
struct Tree<'a> {
    root: PathBuf,
    root_fd: OwnedFd,
    nodes: BTreeMap<Vec<String>, Node>,
    limits: &'a UnpackLimits,
    /// [`expected_files`] of `limits`.
    expected: BTreeMap<Vec<String>, Expected>,
    written: u64,
    entries: u64,
    flusher: crate::fsx::Flusher,
}

impl<'a> Tree<'a> {
    fn open(dest: &Path, limits: &'a UnpackLimits) -> Result<Self, UnpackError> {
        let root_fd = rustix::fs::open(
            dest,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| UnpackError::Write {
            path: dest.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Self {
            root: dest.to_path_buf(),
            root_fd,
            nodes: BTreeMap::new(),
            limits,
            expected: expected_files(limits),
            written: 0,
            entries: 0,
            flusher: crate::fsx::Flusher::new(),
        })
    }

    fn count_entry(&mut self) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    fn write_err(&self, path: &[String], e: impl Into<io::Error>) -> UnpackError {
        UnpackError::Write {
            path: self.root.join(path.join("/")),
            source: e.into(),
        }
    }

    /// The descriptor of the directory that holds `path`, creating missing directories and
    /// refusing to pass through anything but a real directory.
    fn parent_fd(&mut self, path: &[String], entry: &str) -> Result<OwnedFd, UnpackError> {
        let mut fd = rustix::io::dup(&self.root_fd).map_err(|e| self.write_err(&[], e))?;
        for depth in 0..path.len().saturating_sub(1) {
            let prefix = path[..=depth].to_vec();
            match self.nodes.get(&prefix) {
                Some(Node::Dir) => {}
                Some(Node::Symlink(_)) => {
                    return Err(UnpackError::ThroughSymlink {
                        entry: entry.to_string(),
                        through: prefix.join("/"),
                    })
                }
                Some(Node::File { .. }) => {
                    return Err(UnpackError::Duplicate {
                        entry: entry.to_string(),
                    })
                }
                None => {
                    rustix::fs::mkdirat(&fd, prefix[depth].as_str(), Mode::from_raw_mode(0o755))
                        .map_err(|e| self.write_err(&prefix, e))?;
                    self.nodes.insert(prefix.clone(), Node::Dir);
                }
            }
            fd = rustix::fs::openat(
                &fd,
                prefix[depth].as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                // Our map says directory; the disk disagrees: something raced us. Refuse.
                Errno::LOOP | Errno::NOTDIR => UnpackError::ThroughSymlink {
                    entry: entry.to_string(),
                    through: prefix.join("/"),
                },
                e => self.write_err(&prefix, e),
            })?;
        }
        Ok(fd)
    }

    fn claim(&self, path: &[String], entry: &str) -> Result<(), UnpackError> {
        if path.is_empty() || self.nodes.contains_key(path) {
            return Err(UnpackError::Duplicate {
                entry: entry.to_string(),
            });
        }
        Ok(())
    }

    /// Writes one regular file. `declared` is the size the archive gives before the data;
    /// `None` when it comes after (a zip member with a data descriptor): the data is then held
    /// to the manifest's size for the file, or else to what is left of the budget, as it is
    /// read.
    fn file(
        &mut self,
        path: &[String],
        entry: &str,
        declared: Option<u64>,
        executable: bool,
        data: &mut dyn Read,
    ) -> Result<(), UnpackError> {
        self.claim(path, entry)?;
        let (listed, listed_sha256) = self.expected.get(path).cloned().unwrap_or_default();
        if let (Some(declared), Some(expected)) = (declared, listed) {
            if declared != expected {
                return Err(UnpackError::SizeMismatch {
                    entry: entry.to_string(),
                    declared,
                    expected,
                });
            }
        }
        let budget = self.limits.max_unpacked_bytes;
        let remaining = budget.saturating_sub(self.written);
        let cap = declared.or(listed).unwrap_or(remaining);
        if cap > remaining {
            return Err(UnpackError::SizeBudget {
                entry: entry.to_string(),
                declared: cap,
                remaining,
                budget,
            });
        }
        let parent = self.parent_fd(path, entry)?;
        let name = path[path.len() - 1].as_str();
        let fd = rustix::fs::openat(
            &parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| match e {
            Errno::EXIST | Errno::LOOP => UnpackError::Duplicate {
                entry: entry.to_string(),
            },
            e => self.write_err(path, e),
        })?;
        let mut out = File::from(fd);
        let full_path = self.root.join(path.join("/"));
        let flusher = &mut self.flusher;
        let mut hashing = Sha256Reader {
            inner: data,
            hasher: Sha256::new(),
        };
        // One byte more than declared tells a lying size (zip) from an honest one.
        let copied = copy(
            &mut (&mut hashing).take(cap.saturating_add(1)),
            &mut out,
            |file, step| {
                flusher.wrote(&full_path, file, step);
            },
        )
        .map_err(|e| match e {
            CopyError::Read(e) => UnpackError::Read(e),
            CopyError::Write(e) => self.write_err(path, e),
        })?;
        match (declared, listed) {
            (None, None) if copied > cap => {
                return Err(UnpackError::SizeBudget {
                    entry: entry.to_string(),
                    declared: copied,
                    remaining,
                    budget,
                })
            }
            (None, None) => {}
            _ if copied != cap => {
                return Err(UnpackError::SizeMismatch {
                    entry: entry.to_string(),
                    declared: copied,
                    expected: cap,
                })
            }
            _ => {}
        }
        let sha256 = crate::store::hex(&hashing.hasher.finalize());
        if let Some(expected) = listed_sha256 {
            if expected != sha256 {
                return Err(UnpackError::FileDigest {
                    entry: entry.to_string(),
                    expected,
                    actual: sha256,
                });
            }
        }
        let mode = if executable { 0o555 } else { 0o444 };
        rustix::fs::fchmod(out.as_fd(), Mode::from_raw_mode(mode))
            .map_err(|e| self.write_err(path, e))?;
        // Not durable yet: the stager's commit fsyncs every file and directory before the rename
        // that publishes the tree. Start writing the tail now.
        crate::fsx::start_writeback(&out, copied & !(WRITEBACK_STEP - 1), 0);
        self.written += copied;
        self.nodes.insert(
            path.to_vec(),
            Node::File {
                size: copied,
                executable,
                sha256,
            },
        );
        Ok(())
    }

    /// Makes a file this tree wrote executable (`0o555`): a zip says so only in its central
    /// directory, after the data.
    fn set_executable(&mut self, path: &[String], entry: &str) -> Result<(), UnpackError> {
        let Some(Node::File { size, sha256, .. }) = self.nodes.get(path).cloned() else {
            return Err(UnpackError::Duplicate {
                entry: entry.to_string(),
            });
        };
        let parent = self.parent_fd(path, entry)?;
        let fd = rustix::fs::openat(
            &parent,
            path[path.len() - 1].as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.write_err(path, e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o555)).map_err(|e| self.write_err(path, e))?;
        self.nodes.insert(
            path.to_vec(),
            Node::File {
                size,
                executable: true,
                sha256,
            },
        );
        Ok(())
    }

    fn dir(&mut self, path: &[String], entry: &str) -> Result<(), UnpackError> {
        match self.nodes.get(path) {
            _ if path.is_empty() => Ok(()),
            Some(Node::Dir) => Ok(()),
            Some(_) => Err(UnpackError::Duplicate {
                entry: entry.to_string(),
            }),
            None => {
                let parent = self.parent_fd(path, entry)?;
                let name = path[path.len() - 1].as_str();
                rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)).map_err(
                    |e| match e {
                        Errno::EXIST => UnpackError::Duplicate {
                            entry: entry.to_string(),
                        },
                        e => self.write_err(path, e),
                    },
                )?;
                self.nodes.insert(path.to_vec(), Node::Dir);
                Ok(())
            }
        }
    }

    fn symlink(&mut self, path: &[String], entry: &str, target: &[u8]) -> Result<(), UnpackError> {
        self.claim(path, entry)?;
        let target_text = display(target);
        let escapes = || UnpackError::SymlinkEscapes {
            entry: entry.to_string(),
            target: target_text.clone(),
        };
        let target_str = std::str::from_utf8(target).map_err(|_| escapes())?;
        if target_str.is_empty() || target_str.starts_with('/') || target_str.contains('\0') {
            return Err(escapes());
        }
        // Early, lexical check: the full one, through the component's own links, runs in
        // `finish` once every link is known.
        if resolve(&self.nodes, &path[..path.len() - 1], target_str).is_none() {
            return Err(escapes());
        }
        let parent = self.parent_fd(path, entry)?;
        let name = path[path.len() - 1].as_str();
        rustix::fs::symlinkat(target_str, &parent, name).map_err(|e| match e {
            Errno::EXIST => UnpackError::Duplicate {
                entry: entry.to_string(),
            },
            e => self.write_err(path, e),
        })?;
        self.nodes
            .insert(path.to_vec(), Node::Symlink(target_str.to_string()));
        Ok(())
    }

    fn hardlink(&mut self, path: &[String], entry: &str, target: &[u8]) -> Result<(), UnpackError> {
        self.claim(path, entry)?;
        let target_text = display(target);
        let target_path = match normalize(target) {
            Ok(p) if !p.is_empty() => p,
            _ => {
                return Err(UnpackError::HardlinkEscapes {
                    entry: entry.to_string(),
                    target: target_text,
                })
            }
        };
        let Some(Node::File {
            size,
            executable,
            sha256,
        }) = self.nodes.get(&target_path).cloned()
        else {
            return Err(UnpackError::HardlinkDangling {
                entry: entry.to_string(),
                target: target_text,
            });
        };
        let old_parent = self.parent_fd(&target_path, entry)?;
        let new_parent = self.parent_fd(path, entry)?;
        rustix::fs::linkat(
            &old_parent,
            target_path[target_path.len() - 1].as_str(),
            &new_parent,
            path[path.len() - 1].as_str(),
            AtFlags::empty(),
        )
        .map_err(|e| match e {
            Errno::EXIST => UnpackError::Duplicate {
                entry: entry.to_string(),
            },
            e => self.write_err(path, e),
        })?;
        // A listed file may be a hard link: its bytes are those of its target.
        if let Some((listed, listed_sha256)) = self.expected.get(path) {
            if listed.is_some_and(|l| l != size) {
                return Err(UnpackError::SizeMismatch {
                    entry: entry.to_string(),
                    declared: size,
                    expected: listed.unwrap_or(0),
                });
            }
            if let Some(expected) = listed_sha256.as_ref().filter(|e| **e != sha256) {
                return Err(UnpackError::FileDigest {
                    entry: entry.to_string(),
                    expected: expected.clone(),
                    actual: sha256,
                });
            }
        }
        self.nodes.insert(
            path.to_vec(),
            Node::File {
                size,
                executable,
                sha256,
            },
        );
        Ok(())
    }

    fn finish(self) -> Result<UnpackReport, UnpackError> {
        self.flusher
            .finish()
            .map_err(|(path, source)| UnpackError::Write { path, source })?;
        // Every file the manifest lists is here, as a regular file (its size and digest were
        // checked as it was written).
        for path in self.expected.keys() {
            if !matches!(self.nodes.get(path), Some(Node::File { .. })) {
                return Err(UnpackError::ListedFileMissing {
                    path: path.join("/"),
                    found: match self.nodes.get(path) {
                        None => "nothing",
                        Some(Node::Dir) => "a directory",
                        Some(Node::Symlink(_)) => "a symbolic link",
                        Some(Node::File { .. }) => unreachable!(),
                    },
                });
            }
        }
        let mut entries = Vec::with_capacity(self.nodes.len());
        for (path, node) in &self.nodes {
            let name = path.join("/");
            let entry = match node {
                Node::Dir => UnpackedEntry {
                    path: name,
                    kind: EntryKind::Dir,
                    size: 0,
                    target: None,
                    sha256: None,
                    executable: false,
                },
                Node::File {
                    size,
                    executable,
                    sha256,
                } => UnpackedEntry {
                    path: name,
                    kind: EntryKind::File,
                    size: *size,
                    target: None,
                    sha256: Some(sha256.clone()),
                    executable: *executable,
                },
                Node::Symlink(target) => {
                    if resolve(&self.nodes, &path[..path.len() - 1], target).is_none() {
                        return Err(UnpackError::SymlinkEscapes {
                            entry: name,
                            target: target.clone(),
                        });
                    }
                    UnpackedEntry {
                        path: name,
                        kind: EntryKind::Symlink,
                        size: 0,
                        target: Some(target.clone()),
                        sha256: None,
                        executable: false,
                    }
                }
            };
            entries.push(entry);
        }
        Ok(UnpackReport {
            entries,
            unpacked_bytes: self.written,
        })
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Writeback of a file being written is started every this many bytes (a power of two), so
/// that dirty pages go to disk while the archive is still arriving instead of piling up for
/// the final `fsync`s.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Copies `from` into `to`, starting writeback every [`WRITEBACK_STEP`] bytes; `wrote` is told
/// how many bytes each step (and the tail at the end) covered.
fn copy(
    from: &mut dyn Read,
    to: &mut File,
    mut wrote: impl FnMut(&File, u64),
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut flushed = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => {
                wrote(to, total - flushed);
                return Ok(total);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
        if total - flushed >= WRITEBACK_STEP {
            let end = total & !(WRITEBACK_STEP - 1);
            crate::fsx::start_writeback(to, flushed, end - flushed);
            wrote(to, end - flushed);
            flushed = end;
        }
    }
}

/// Resolves `target` from directory `from` inside a tree, following the tree's own symlinks;
/// `None` when it leaves the tree (or loops). Parts not in the tree resolve lexically, which is
/// sound because the tree is sealed once unpacked.
fn resolve(
    nodes: &BTreeMap<Vec<String>, Node>,
    from: &[String],
    target: &str,
) -> Option<Vec<String>> {
    let mut cur: Vec<String> = from.to_vec();
    let mut queue: VecDeque<String> = target.split('/').map(str::to_string).collect();
    let mut hops = 0;
    while let Some(part) = queue.pop_front() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                cur.pop()?;
            }
            name => {
                cur.push(name.to_string());
                if let Some(Node::Symlink(t)) = nodes.get(&cur) {
                    hops += 1;
                    if hops > 40 || t.starts_with('/') {
                        return None;
                    }
                    cur.pop();
                    for p in t.split('/').rev() {
                        queue.push_front(p.to_string());
                    }
                }
            }
        }
    }
    Some(cur)
}

/// What `path` (relative to a component directory) finally names, following the component's
/// symlinks: the resolved path and its kind; `None` when it leaves the component or names
/// nothing in it.
pub(crate) fn resolve_in_report(report: &UnpackReport, path: &str) -> Option<(String, EntryKind)> {
    let nodes: BTreeMap<Vec<String>, Node> = report
        .entries
        .iter()
        .map(|e| {
            let key: Vec<String> = e.path.split('/').map(str::to_string).collect();
            let node = match e.kind {
                EntryKind::Dir => Node::Dir,
                EntryKind::File => Node::File {
                    size: e.size,
                    executable: e.executable,
                    sha256: e.sha256.clone().unwrap_or_default(),
                },
                EntryKind::Symlink => Node::Symlink(e.target.clone().unwrap_or_default()),
            };
            (key, node)
        })
        .collect();
    let resolved = resolve(&nodes, &[], path)?;
    let kind = match nodes.get(&resolved)? {
        Node::Dir => EntryKind::Dir,
        Node::File { .. } => EntryKind::File,
        Node::Symlink(_) => EntryKind::Symlink,
    };
    Some((resolved.join("/"), kind))
}
