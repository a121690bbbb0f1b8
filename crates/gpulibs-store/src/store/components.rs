//! The content-addressed component store shared by every root (`<store home>/store/<sha256>`)
//! and staging into it: a [`Stager`] unpacks one archive into a temp directory, checks it
//! against its sha256 and listed files, and commits it with one `rename`.

use super::{
    hex, remove_any, FaultPoint, InstallLock, Store, COMPONENT_META, COMPONENT_TREE, TMP_PREFIX,
};
use crate::error::{io_err, Result, StoreError, UnpackError};
use crate::record::RECORD_SCHEMA_VERSION;
use crate::shared::STORE_DIR;
use crate::unpack::{ArchiveFormat, EntryKind, UnpackLimits, UnpackReport, ZipListedMember};
use crate::{fsx, shared, unpack};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::{fs, io};

/// One component as kept in `store/<sha256>/component.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredComponent {
    pub schema_version: u32,
    pub sha256: String,
    pub format: ArchiveFormat,
    pub unpacked_bytes: u64,
    pub entries: Vec<unpack::UnpackedEntry>,
}

impl Store {
    /// The component's directory (its files are under `tree/`): `<store home>/store/<sha256>`,
    /// or the root's own `store/<sha256>` when only that one has it (a root made before the
    /// store was shared).
    pub fn component_dir(&self, sha256: &str) -> PathBuf {
        let shared = self.home.join(STORE_DIR).join(sha256);
        if let Some(legacy) = self.legacy_store() {
            let local = legacy.join(sha256);
            if !shared.join(COMPONENT_META).is_file() && local.join(COMPONENT_META).is_file() {
                return local;
            }
        }
        shared
    }

    /// Whether a complete component with this archive hash is in the store.
    pub fn has_component(&self, sha256: &str) -> bool {
        check_sha256(sha256).is_ok() && self.component_dir(sha256).join(COMPONENT_META).is_file()
    }

    /// The metadata of a stored component.
    pub fn component(&self, sha256: &str) -> Result<StoredComponent> {
        check_sha256(sha256)?;
        let path = self.component_dir(sha256).join(COMPONENT_META);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingComponent {
                    sha256: sha256.to_string(),
                    path: path.clone(),
                }
            } else {
                io_err("reading", &path)(e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::BadRecord { path, source })
    }
}

pub(super) fn check_sha256(sha256: &str) -> Result<()> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(StoreError::BadSha256 {
            sha256: sha256.to_string(),
        })
    }
}

impl<'s> InstallLock<'s> {
    /// Starts unpacking the component whose archive has `sha256` into a temp directory.
    /// Checks free space for `limits.max_unpacked_bytes` first.
    pub fn stage_component(&self, sha256: &str, limits: UnpackLimits) -> Result<Stager<'_>> {
        check_sha256(sha256)?;
        self.store.check_space(limits.max_unpacked_bytes)?;
        let tmp = self.store.home.join(STORE_DIR).join(format!(
            "{TMP_PREFIX}{sha256}-{}-{}",
            std::process::id(),
            shared::next_serial()
        ));
        if tmp.exists() {
            remove_any(&tmp)?;
        }
        let tree = tmp.join(COMPONENT_TREE);
        // Made before the directory, so that a failure from here on removes it (the shared
        // store's next user cleans only what processes that are gone left behind).
        let stager = Stager {
            store: self.store,
            sha256: sha256.to_string(),
            tmp,
            limits,
            unpacked: None,
            committed: false,
        };
        fs::create_dir_all(&tree).map_err(io_err("creating", &tree))?;
        self.store.step(FaultPoint::StagingStarted)?;
        Ok(stager)
    }
}

/// A component being unpacked into `store/.tmp-<sha256>-<pid>`. Dropped without
/// [`commit`](Self::commit), it removes its temp directory.
pub struct Stager<'l> {
    store: &'l Store,
    sha256: String,
    tmp: PathBuf,
    limits: UnpackLimits,
    unpacked: Option<(ArchiveFormat, UnpackReport)>,
    committed: bool,
}

impl std::fmt::Debug for Stager<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stager")
            .field("sha256", &self.sha256)
            .field("tmp", &self.tmp)
            .finish()
    }
}

impl Stager<'_> {
    /// The directory files are unpacked into.
    pub fn dir(&self) -> PathBuf {
        self.tmp.join(COMPONENT_TREE)
    }

    fn unpack_err(&self, source: UnpackError) -> StoreError {
        StoreError::Unpack {
            sha256: self.sha256.clone(),
            path: self.dir(),
            source: source.with_room_evidence(),
        }
    }

    /// Unpacks a tar archive (compressed as `format` says) from `archive`, hashing the raw
    /// bytes as they pass; the sha256 must be the one this stager was opened with.
    pub fn unpack_tar(
        &mut self,
        archive: impl Read,
        format: ArchiveFormat,
    ) -> Result<&UnpackReport> {
        self.unpack_tar_checked(archive, format, ArchiveCheck::Hash)
    }

    /// [`unpack_tar`](Self::unpack_tar), with `check` saying who proves that the bytes are the
    /// ones this stager's sha256 names. With [`ArchiveCheck::VerifiedByReader`] the stager does
    /// not hash them again; it still counts them against the archive size and reads `archive`
    /// to its end, which that guarantee makes the proof.
    pub fn unpack_tar_checked(
        &mut self,
        archive: impl Read,
        format: ArchiveFormat,
        check: ArchiveCheck,
    ) -> Result<&UnpackReport> {
        let mut raw = HashingReader::new(archive, self.limits.max_archive_bytes);
        raw.hashing = check == ArchiveCheck::Hash;
        let limits = self.limits.clone();
        let stream_limit = limits
            .max_unpacked_bytes
            .saturating_add(limits.max_entries.saturating_mul(1536))
            .saturating_add(1 << 20);
        let dest = self.dir();
        let hook_error: std::cell::RefCell<Option<StoreError>> = Default::default();
        let store = self.store;
        let mut after_entry = |_: usize| -> io::Result<()> {
            store.step(FaultPoint::EntryUnpacked).map_err(|e| {
                *hook_error.borrow_mut() = Some(e);
                io::Error::other("stopped by the step hook")
            })
        };
        let result = {
            let decompressed: Box<dyn Read + '_> = match format {
                ArchiveFormat::Tar => Box::new(&mut raw),
                ArchiveFormat::TarGzip => Box::new(flate2::read::MultiGzDecoder::new(&mut raw)),
                ArchiveFormat::TarZstd => {
                    zstd_frames(&mut raw).map_err(|e| self.unpack_err(UnpackError::Read(e)))?
                }
                ArchiveFormat::TarXz => Box::new(lzma_rust2::XzReader::new(&mut raw, true)),
                ArchiveFormat::Wheel => {
                    return Err(self.unpack_err(UnpackError::Unsupported {
                        entry: String::new(),
                        detail: "a wheel is unpacked from its file with unpack_wheel".into(),
                    }))
                }
            };
            let mut limited = LimitedReader {
                inner: decompressed,
                left: stream_limit,
                tripped: false,
            };
            let r = unpack::unpack_tar_observed(&mut limited, &dest, &limits, &mut after_entry)
                .and_then(|report| {
                    // Trailing zero blocks and padding belong to the archive's hash.
                    io::copy(&mut limited, &mut io::sink()).map_err(UnpackError::Read)?;
                    Ok(report)
                });
            match r {
                Err(_) if limited.tripped => Err(UnpackError::StreamTooLong {
                    limit: stream_limit,
                }),
                other => other,
            }
        };
        if let Some(e) = hook_error.into_inner() {
            return Err(e);
        }
        let result = match result {
            Err(_) if raw.tripped => Err(UnpackError::ArchiveTooLong {
                actual: raw.count,
                limit: self.limits.max_archive_bytes.unwrap_or(0),
            }),
            other => other,
        };
        let report = result.map_err(|e| self.unpack_err(e))?;
        io::copy(&mut raw, &mut io::sink()).map_err(|e| self.unpack_err(UnpackError::Read(e)))?;
        if raw.tripped {
            return Err(self.unpack_err(UnpackError::ArchiveTooLong {
                actual: raw.count,
                limit: self.limits.max_archive_bytes.unwrap_or(0),
            }));
        }
        match check {
            ArchiveCheck::Hash => self.verified(raw.finish(), format, report),
            ArchiveCheck::VerifiedByReader => Ok(&self.unpacked.insert((format, report)).1),
        }
    }

    /// Unpacks the members of the wheel file at `wheel` that `select` accepts (usually
    /// [`unpack::wheel_library_member`]), after checking the file's sha256.
    pub fn unpack_wheel(
        &mut self,
        wheel: &Path,
        select: &dyn Fn(&str) -> bool,
    ) -> Result<&UnpackReport> {
        let file = File::open(wheel).map_err(io_err("opening", wheel))?;
        let mut raw = HashingReader::new(file, self.limits.max_archive_bytes);
        io::copy(&mut raw, &mut io::sink()).map_err(io_err("reading", wheel))?;
        if raw.tripped {
            return Err(self.unpack_err(UnpackError::ArchiveTooLong {
                actual: raw.count,
                limit: self.limits.max_archive_bytes.unwrap_or(0),
            }));
        }
        let actual = raw.finish();
        if actual != self.sha256 {
            return Err(StoreError::HashMismatch {
                expected: self.sha256.clone(),
                actual,
            });
        }
        let report = unpack::unpack_wheel(wheel, &self.dir(), select, &self.limits)
            .map_err(|e| self.unpack_err(e))?;
        self.store.step(FaultPoint::EntryUnpacked)?;
        self.verified(actual, ArchiveFormat::Wheel, report)
    }

    /// Unpacks a zip (a wheel) while it streams, in one pass: `stream` feeds every member, in
    /// archive order, to [`ZipStream::member`] (which writes the ones `select` accepts, under
    /// the same rules and limits as [`unpack_wheel`](Self::unpack_wheel)), and returns the
    /// members as they streamed and the central directory that followed them
    /// (`gpulibs_fetch::read_zip_stream_listed` gives both). The component is refused unless
    /// the directory lists exactly the streamed members, each at its offset with its size and
    /// CRC-32 — what `pip`, which trusts the directory, would install.
    ///
    /// The stager never sees the raw archive, so it cannot hash it: this is only for a caller
    /// whose reader verifies the sha256 while streaming and ends only when it matched
    /// ([`ArchiveCheck::VerifiedByReader`]), and whose `stream` returns only after reading that
    /// reader to its end (as `read_zip_stream_listed` does). A caller with a file and no such
    /// guarantee uses [`unpack_wheel`](Self::unpack_wheel).
    pub fn unpack_zip_stream(
        &mut self,
        select: &dyn Fn(&str) -> bool,
        stream: impl FnOnce(&mut ZipStream<'_>) -> Result<ZipListedMembers>,
    ) -> Result<&UnpackReport> {
        let dest = self.dir();
        let limits = self.limits.clone();
        let report = {
            let unpacker = unpack::ZipStreamUnpacker::new(&dest, &limits, select)
                .map_err(|e| self.unpack_err(e))?;
            let mut zip = ZipStream {
                inner: unpacker,
                store: self.store,
                sha256: &self.sha256,
                dir: &dest,
            };
            let listed = stream(&mut zip)?;
            zip.inner
                .finish(&listed.streamed, &listed.central)
                .map_err(|e| self.unpack_err(e))?
        };
        Ok(&self.unpacked.insert((ArchiveFormat::Wheel, report)).1)
    }

    fn verified(
        &mut self,
        actual: String,
        format: ArchiveFormat,
        report: UnpackReport,
    ) -> Result<&UnpackReport> {
        if actual != self.sha256 {
            return Err(StoreError::HashMismatch {
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(&self.unpacked.insert((format, report)).1)
    }

    /// Moves the unpacked component to `store/<sha256>` in one rename. If the store already
    /// has it, this copy is dropped.
    pub fn commit(mut self) -> Result<StoredComponent> {
        let Some((format, report)) = self.unpacked.take() else {
            return Err(self.unpack_err(UnpackError::NothingSelected {
                what: "nothing was unpacked before commit".into(),
            }));
        };
        let meta = StoredComponent {
            schema_version: RECORD_SCHEMA_VERSION,
            sha256: self.sha256.clone(),
            format,
            unpacked_bytes: report.unpacked_bytes,
            entries: report.entries,
        };
        // Durable before it can become visible: every file (whose writeback started as it was
        // written, so this mostly waits for the tail) and every directory of the tree.
        let tree = self.dir();
        for e in &meta.entries {
            match e.kind {
                EntryKind::File => fsx::sync_file(&tree.join(&e.path))?,
                EntryKind::Dir => fsx::sync_dir(&tree.join(&e.path))?,
                EntryKind::Symlink => {}
            }
        }
        fsx::sync_dir(&tree)?;
        let json = serde_json::to_vec_pretty(&meta).expect("plain structs serialize");
        fsx::write_atomic(&self.tmp.join(COMPONENT_META), &json)?;
        self.store.step(FaultPoint::ComponentUnpacked)?;
        let dest = self.store.home.join(STORE_DIR).join(&self.sha256);
        // Another app may store the same component at the same time: the check and the
        // rename are one step for every app that uses this store.
        let _store_lock = self.store.store_lock()?;
        if dest.join(COMPONENT_META).is_file() {
            return Ok(meta); // Drop removes our copy.
        }
        fs::rename(&self.tmp, &dest).map_err(io_err("renaming into place", &dest))?;
        self.committed = true;
        fsx::sync_dir(&self.store.home.join(STORE_DIR))?;
        self.store.step(FaultPoint::ComponentCommitted)?;
        Ok(meta)
    }
}

impl Drop for Stager<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// A zip being unpacked as it streams ([`Stager::unpack_zip_stream`]).
pub struct ZipStream<'a> {
    inner: unpack::ZipStreamUnpacker<'a>,
    store: &'a Store,
    sha256: &'a str,
    dir: &'a Path,
}

impl ZipStream<'_> {
    /// The next member in archive order: its name, its size when the local header gives it
    /// (`None` with a data descriptor), and a reader of its uncompressed bytes. Selected
    /// regular files are written; every name is checked.
    pub fn member(&mut self, name: &str, size: Option<u64>, data: &mut dyn Read) -> Result<()> {
        self.inner
            .member(name, size, data)
            .map_err(|source| StoreError::Unpack {
                sha256: self.sha256.to_string(),
                path: self.dir.to_path_buf(),
                source: source.with_room_evidence(),
            })?;
        self.store.step(FaultPoint::EntryUnpacked)
    }
}

/// A zip's members as they streamed and as its central directory lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZipListedMembers {
    pub streamed: Vec<ZipListedMember>,
    pub central: Vec<ZipListedMember>,
}

/// Who proves that the archive bytes a [`Stager`] reads are the ones its sha256 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveCheck {
    /// The stager hashes the bytes as they pass and refuses the component on a mismatch.
    Hash,
    /// The caller's reader verifies them: it ends (returns `Ok(0)`) only after every byte
    /// matched this same sha256 and fails otherwise (`gpulibs-fetch` hashing while streaming,
    /// its sink ending the reader only in `finish`). The stager reads it to its end before it
    /// reports success and skips its own hash.
    VerifiedByReader,
}

/// Hashes and counts the raw archive bytes; stops at the manifest's archive size.
pub(super) struct HashingReader<R> {
    inner: R,
    hashing: bool,
    hasher: Sha256,
    count: u64,
    limit: Option<u64>,
    tripped: bool,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R, limit: Option<u64>) -> Self {
        Self {
            inner,
            hashing: true,
            hasher: Sha256::new(),
            count: 0,
            limit,
            tripped: false,
        }
    }

    fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.hashing {
            self.hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        if let Some(limit) = self.limit {
            if self.count > limit {
                self.tripped = true;
                return Err(io::Error::other("archive longer than the manifest says"));
            }
        }
        Ok(n)
    }
}

/// Stops a decompressed stream after `left` bytes: a bomb made of headers or padding, which
/// no per-file size catches.
pub(super) struct LimitedReader<R> {
    inner: R,
    left: u64,
    tripped: bool,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.tripped = true;
            return Err(io::Error::other("decompressed stream too long"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// zstd over any number of frames (`pzstd` and `zstd -T --rsyncable` write several), skippable
/// frames skipped, checksums checked: libzstd's streaming decoder. Windows above libzstd's
/// default limit (128 MiB) are refused rather than allocated.
pub(super) fn zstd_frames<'a>(inner: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let source = io::BufReader::with_capacity(128 * 1024, inner);
    Ok(Box::new(zstd::stream::read::Decoder::with_buffer(source)?))
}
