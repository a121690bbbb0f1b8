//! Parsing fatbin containers out of raw bytes.
//!
//! Layouts are those of `cuda-facts.md` §1 (\[ZL\]\[JG\]\[CR\]\[E1\]):
//!
//! - container header, 16 bytes LE: `u32 magic 0xBA55ED50 | u16 version 1 | u16 header_size 16 |
//!   u64 fat_size` (bytes of entries following the header);
//! - entry header, at least 64 bytes, stepped by its own `header_size` (never a fixed 64):
//!   kind, version, header_size, payload size, compressed size, options offset, code version
//!   minor/major, arch, identifier offset/length, flags, …, uncompressed size at 0x38.
//!
//! Everything here works on untrusted bytes: all offsets use checked arithmetic and bounds-checked
//! slices, the number of entries per container is capped, and problems inside an accepted
//! container become warnings on that container instead of errors.

use serde::{Deserialize, Serialize};

use crate::compat::{KernelEntry, KernelTarget, PtxIsa, TargetKind, Variant};
use gpulibs_detect::ComputeCapability;

/// Container magic (\[ZL\]\[JG\]).
pub const FATBIN_MAGIC: u32 = 0xBA55_ED50;
/// Size of the container header every known producer writes.
pub const CONTAINER_HEADER_SIZE: usize = 16;
/// Bytes of an entry header that hold the fields read here (through the uncompressed size at
/// 0x38). Producers write 64 to 112 (\[E1\]).
pub const MIN_ENTRY_HEADER_SIZE: usize = 64;
/// Largest entry header accepted. Real ones are ≤ 112 bytes \[E1\]; 4 KiB leaves room for growth
/// while making a random magic hit unlikely to pass.
pub const MAX_ENTRY_HEADER_SIZE: u32 = 4096;
/// Sanity bound on entries per container. Real containers hold one entry per target and PTX
/// (well under 100); beyond this we stop and warn rather than grow memory with garbage.
pub const MAX_ENTRIES_PER_CONTAINER: usize = 4096;
/// Sanity bound on warnings kept per scan, so hostile input cannot grow them without limit.
pub const MAX_WARNINGS: usize = 64;

/// Entry kinds (\[ZL\]\[JG\]): 1 = PTX, 2 = ELF cubin.
pub const KIND_PTX: u16 = 1;
pub const KIND_ELF: u16 = 2;

/// Entry flag bits (facts §1 "Flags").
pub const FLAG_64BIT: u64 = 0x1;
pub const FLAG_DEBUG: u64 = 0x2;
pub const FLAG_COMPRESSED_LZ4: u64 = 0x2000;
pub const FLAG_COMPRESSED_ZSTD: u64 = 0x8000;
pub const FLAG_ARCH_SPECIFIC: u64 = 0x10_0000;
pub const FLAG_FAMILY_SPECIFIC: u64 = 0x20_0000;

/// How an entry's payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    /// LZ4 raw block, no frame (flag 0x2000).
    Lz4,
    /// Zstandard frame (flag 0x8000).
    Zstd,
    /// A compressed size without a known compression flag, or both flags at once.
    Unknown,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Unknown => "unknown",
        }
    }

    fn from_header(flags: u64, compressed_size: u32) -> Self {
        let lz4 = flags & FLAG_COMPRESSED_LZ4 != 0;
        let zstd = flags & FLAG_COMPRESSED_ZSTD != 0;
        match (lz4, zstd) {
            (true, false) => Compression::Lz4,
            (false, true) => Compression::Zstd,
            (true, true) => Compression::Unknown,
            (false, false) if compressed_size != 0 => Compression::Unknown,
            (false, false) => Compression::None,
        }
    }
}

/// The kind field of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Ptx,
    Elf,
    /// Any other kind, kept with its number (4 old cubin, 8 IR, … per \[NO\], UNCONFIRMED).
    Other(u16),
}

impl EntryKind {
    pub fn from_raw(kind: u16) -> Self {
        match kind {
            KIND_PTX => EntryKind::Ptx,
            KIND_ELF => EntryKind::Elf,
            k => EntryKind::Other(k),
        }
    }
}

/// One entry header, with offsets absolute within the scanned buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FatbinEntry {
    /// Offset of the entry header in the scanned buffer (the file, for files).
    pub offset: u64,
    pub kind: EntryKind,
    pub header_size: u32,
    /// On-disk payload bytes (padded); the payload starts at `offset + header_size`.
    pub payload_size: u64,
    /// Compressed bytes within the payload; 0 when not compressed.
    pub compressed_size: u32,
    /// Code version (major, minor): the PTX ISA for PTX, the ELF ABI marker for cubins.
    pub code_version: (u16, u16),
    /// `major * 10 + minor` of the target (90, 100, 121).
    pub arch: u32,
    pub flags: u64,
    pub uncompressed_size: u64,
    pub compression: Compression,
}

impl FatbinEntry {
    pub fn variant(&self) -> Variant {
        // Both bits set never comes from a real producer; `a` is the narrower claim.
        if self.flags & FLAG_ARCH_SPECIFIC != 0 {
            Variant::ArchSpecific
        } else if self.flags & FLAG_FAMILY_SPECIFIC != 0 {
            Variant::FamilySpecific
        } else {
            Variant::Generic
        }
    }

    /// The target, for SASS and PTX entries.
    pub fn target(&self) -> Option<KernelTarget> {
        let kind = match self.kind {
            EntryKind::Ptx => TargetKind::Ptx,
            EntryKind::Elf => TargetKind::Sass,
            EntryKind::Other(_) => return None,
        };
        Some(KernelTarget::new(
            kind,
            ComputeCapability::from_number(self.arch),
            self.variant(),
        ))
    }

    /// The PTX ISA of a PTX entry (from the code version fields at 0x18/0x1A).
    pub fn ptx_isa(&self) -> Option<PtxIsa> {
        (self.kind == EntryKind::Ptx).then(|| {
            PtxIsa::new(
                u32::from(self.code_version.0),
                u32::from(self.code_version.1),
            )
        })
    }

    /// The selection view of this entry, for SASS and PTX entries.
    pub fn kernel_entry(&self) -> Option<KernelEntry> {
        Some(KernelEntry {
            target: self.target()?,
            ptx_isa: self.ptx_isa(),
        })
    }

    /// A display name: `sm_90a`, `compute_90`, or `kind 8 arch 90` for other kinds.
    pub fn target_name(&self) -> String {
        match (self.target(), self.kind) {
            (Some(t), _) => t.name(),
            (None, EntryKind::Other(k)) => format!("kind {k} arch {}", self.arch),
            (None, _) => unreachable!("PTX and ELF entries always have a target"),
        }
    }

    /// The byte range of the stored payload (compressed bytes if compressed) within the buffer.
    pub fn payload_range(&self) -> Option<std::ops::Range<usize>> {
        let start = self.offset.checked_add(u64::from(self.header_size))?;
        let len = if self.compression != Compression::None && self.compressed_size != 0 {
            u64::from(self.compressed_size).min(self.payload_size)
        } else {
            self.payload_size
        };
        let end = start.checked_add(len)?;
        Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
    }
}

/// One fatbin container found in a buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Offset of the container header in the scanned buffer.
    pub offset: u64,
    /// Entry bytes the header declares (`fat_size`).
    pub declared_size: u64,
    /// Entries whose header and payload lie whole inside the container and the buffer.
    pub entries: Vec<FatbinEntry>,
    /// What was wrong with the container, if anything (truncated, corrupt entry, …).
    pub warnings: Vec<String>,
}

impl Container {
    /// Offset just past the last whole entry (or the container header when none is whole).
    ///
    /// The scan resumes here rather than at the declared end, so a corrupt `fat_size` cannot
    /// hide containers that follow; trailing padding is skipped cheaply as non-magic words.
    pub fn end(&self) -> u64 {
        self.entries
            .last()
            .and_then(|e| {
                e.offset
                    .checked_add(u64::from(e.header_size))?
                    .checked_add(e.payload_size)
            })
            .unwrap_or(self.offset.saturating_add(CONTAINER_HEADER_SIZE as u64))
    }

    /// The SASS/PTX entries in the form entry selection takes.
    pub fn kernel_entries(&self) -> Vec<KernelEntry> {
        self.entries
            .iter()
            .filter_map(FatbinEntry::kernel_entry)
            .collect()
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// Why an entry header at some offset was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryProblem {
    /// Fewer than 64 bytes left before the container (or buffer) end.
    HeaderCut,
    /// `header_size` below 64 or above [`MAX_ENTRY_HEADER_SIZE`].
    BadHeaderSize(u32),
    /// The payload runs past the container (or buffer) end.
    PayloadCut,
}

/// Reads the entry header at `off`; `limit` is the end of the container as far as the buffer
/// holds it.
fn read_entry(buf: &[u8], off: usize, limit: usize) -> Result<FatbinEntry, EntryProblem> {
    let hdr_end = off
        .checked_add(MIN_ENTRY_HEADER_SIZE)
        .filter(|&e| e <= limit)
        .ok_or(EntryProblem::HeaderCut)?;
    let h = buf.get(off..hdr_end).ok_or(EntryProblem::HeaderCut)?;
    // `h` is exactly 64 bytes, so every read below is in bounds.
    let kind = u16_at(h, 0x00).ok_or(EntryProblem::HeaderCut)?;
    let header_size = u32_at(h, 0x04).ok_or(EntryProblem::HeaderCut)?;
    if (header_size as usize) < MIN_ENTRY_HEADER_SIZE || header_size > MAX_ENTRY_HEADER_SIZE {
        return Err(EntryProblem::BadHeaderSize(header_size));
    }
    let payload_size = u64_at(h, 0x08).ok_or(EntryProblem::HeaderCut)?;
    let compressed_size = u32_at(h, 0x10).ok_or(EntryProblem::HeaderCut)?;
    let minor = u16_at(h, 0x18).ok_or(EntryProblem::HeaderCut)?;
    let major = u16_at(h, 0x1A).ok_or(EntryProblem::HeaderCut)?;
    let arch = u32_at(h, 0x1C).ok_or(EntryProblem::HeaderCut)?;
    let flags = u64_at(h, 0x28).ok_or(EntryProblem::HeaderCut)?;
    let uncompressed_size = u64_at(h, 0x38).ok_or(EntryProblem::HeaderCut)?;
    (off as u64)
        .checked_add(u64::from(header_size))
        .and_then(|e| e.checked_add(payload_size))
        .filter(|&e| e <= limit as u64)
        .ok_or(EntryProblem::PayloadCut)?;
    Ok(FatbinEntry {
        offset: off as u64,
        kind: EntryKind::from_raw(kind),
        header_size,
        payload_size,
        compressed_size,
        code_version: (major, minor),
        arch,
        flags,
        uncompressed_size,
        compression: Compression::from_header(flags, compressed_size),
    })
}

/// Why bytes starting with the container magic were not taken as a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The 16-byte header is cut by the end of the buffer.
    HeaderCut,
    /// Version is not 1 or header_size is not 16.
    BadHeader { version: u16, header_size: u16 },
    /// The first entry header is not plausible.
    BadFirstEntry,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::HeaderCut => f.write_str("container header cut by end of data"),
            Rejection::BadHeader {
                version,
                header_size,
            } => write!(
                f,
                "container header has version {version} and header_size {header_size} \
                 (expected 1 and 16)"
            ),
            Rejection::BadFirstEntry => f.write_str("first entry header is not plausible"),
        }
    }
}

/// Parses the container whose magic is at `off`.
///
/// Returns `Err` when the bytes do not look like a container at all (so a stray magic value in
/// `.rodata` is not reported as kernels). Once the header and first entry are plausible, the
/// container is accepted and later problems become warnings on it.
pub fn parse_container(buf: &[u8], off: usize) -> Result<Container, Rejection> {
    let h = buf
        .get(
            off..off
                .checked_add(CONTAINER_HEADER_SIZE)
                .ok_or(Rejection::HeaderCut)?,
        )
        .ok_or(Rejection::HeaderCut)?;
    let magic = u32_at(h, 0).ok_or(Rejection::HeaderCut)?;
    debug_assert_eq!(magic, FATBIN_MAGIC);
    let version = u16_at(h, 4).ok_or(Rejection::HeaderCut)?;
    let header_size = u16_at(h, 6).ok_or(Rejection::HeaderCut)?;
    let fat_size = u64_at(h, 8).ok_or(Rejection::HeaderCut)?;
    if magic != FATBIN_MAGIC || version != 1 || usize::from(header_size) != CONTAINER_HEADER_SIZE {
        return Err(Rejection::BadHeader {
            version,
            header_size,
        });
    }
    if fat_size == 0 {
        // A valid container with no entries: what `gpulibs package --per-arch` leaves where a
        // container had nothing for the target. The CUDA runtime registers it like any other
        // (checked on an H100, docs/package.md); it simply holds no kernels.
        return Ok(Container {
            offset: off as u64,
            declared_size: 0,
            entries: Vec::new(),
            warnings: Vec::new(),
        });
    }
    let start = off + CONTAINER_HEADER_SIZE;
    let declared_end = (start as u64).checked_add(fat_size);
    let mut warnings = Vec::new();
    let limit = match declared_end {
        Some(e) if e <= buf.len() as u64 => e as usize,
        _ => {
            warnings.push(format!(
                "container at {off:#x} declares {fat_size} bytes of entries but only {} remain; \
                 it is truncated",
                buf.len() - start
            ));
            buf.len()
        }
    };

    // The first entry decides whether this is a container at all: its header must be whole and
    // of plausible size. Its payload may be cut (that is a truncated container, not garbage).
    match read_entry(buf, start, limit) {
        Err(EntryProblem::HeaderCut) | Err(EntryProblem::BadHeaderSize(_)) => {
            return Err(Rejection::BadFirstEntry)
        }
        Err(EntryProblem::PayloadCut) | Ok(_) => {}
    }

    let mut entries = Vec::new();
    let mut pos = start;
    while pos < limit {
        if entries.len() >= MAX_ENTRIES_PER_CONTAINER {
            warnings.push(format!(
                "container at {off:#x} has more than {MAX_ENTRIES_PER_CONTAINER} entries; \
                 the rest were not read"
            ));
            break;
        }
        match read_entry(buf, pos, limit) {
            Ok(e) => {
                // read_entry checked that this sum is ≤ limit, so it fits in usize.
                pos = (e.offset + u64::from(e.header_size) + e.payload_size) as usize;
                entries.push(e);
            }
            Err(problem) => {
                // Trailing zero bytes are padding, not a broken entry.
                if buf
                    .get(pos..limit)
                    .is_some_and(|rest| rest.iter().all(|&b| b == 0))
                {
                    break;
                }
                let what = match problem {
                    EntryProblem::HeaderCut => "entry header is cut".to_string(),
                    EntryProblem::BadHeaderSize(n) => {
                        format!("entry header_size {n} is not plausible")
                    }
                    EntryProblem::PayloadCut => {
                        "entry payload runs past the end of the container".to_string()
                    }
                };
                warnings.push(format!(
                    "container at {off:#x}, entry {} at {pos:#x}: {what}; the rest of the \
                     container was not read",
                    entries.len()
                ));
                break;
            }
        }
    }
    Ok(Container {
        offset: off as u64,
        declared_size: fat_size,
        entries,
        warnings,
    })
}

/// Every container found in a buffer, plus notes on magic hits that were not containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub containers: Vec<Container>,
    /// `(offset, why)` for magic values at aligned offsets that were rejected, at most
    /// [`MAX_WARNINGS`] of them; `rejected_total` counts all.
    pub rejected: Vec<(u64, Rejection)>,
    pub rejected_total: usize,
}

/// Scans `buf[range]` for containers at 8-byte aligned offsets (containers are 8-aligned,
/// facts §1: `.nv_fatbin` has align 8, containers follow each other with no gaps \[E3\]).
/// Alignment is taken relative to the buffer start (the file start for files: ELF places a
/// section's file offset congruent to its address modulo its alignment).
///
/// After an accepted container the scan resumes at its end, so payload bytes are never scanned
/// for magic. Results are appended to `out`.
pub fn scan_range(buf: &[u8], range: std::ops::Range<usize>, out: &mut Scan) {
    scan_part(buf, range.end, range.start..range.end, out);
}

/// Scans for containers whose header starts at an 8-aligned offset in `starts`, each parsed
/// within `buf[..limit]` (its section), and returns the offset where the scan of the same
/// section goes on: `starts.end` or past the last container found, whichever is later.
///
/// Scanning a section in consecutive windows this way finds exactly what [`scan_range`] over
/// the whole section finds, and so does skipping bytes known to be zero (holes of a sparse
/// file): a zero word is never the magic.
pub fn scan_part(
    buf: &[u8],
    limit: usize,
    starts: std::ops::Range<usize>,
    out: &mut Scan,
) -> usize {
    let end = limit.min(buf.len());
    // A container belongs to its section: nothing past the range is read, so a corrupt
    // `fat_size` in one section cannot pull the next section's bytes in as entries.
    let buf = &buf[..end];
    let stop = starts.end.min(end);
    // First 8-aligned offset ≥ starts.start.
    let mut pos = match starts.start.checked_add(7) {
        Some(p) => p & !7,
        None => return usize::MAX,
    };
    while pos < stop {
        let Some(word) = buf.get(pos..pos + 4) else {
            break;
        };
        if u32::from_le_bytes([word[0], word[1], word[2], word[3]]) != FATBIN_MAGIC {
            pos += 8;
            continue;
        }
        match parse_container(buf, pos) {
            Ok(c) => {
                let next = c.end();
                out.containers.push(c);
                // `end` is > pos (header is 16 bytes); round up to the next 8-byte boundary.
                let next = usize::try_from(next).unwrap_or(usize::MAX);
                pos = match next.checked_add(7) {
                    Some(p) => (p & !7).max(pos + 8),
                    None => return usize::MAX,
                };
            }
            Err(why) => {
                out.rejected_total += 1;
                if out.rejected.len() < MAX_WARNINGS {
                    out.rejected.push((pos as u64, why));
                }
                pos += 8;
            }
        }
    }
    pos.max(starts.end)
}

/// Scans a whole buffer (a raw fatbin file, or any non-ELF file).
pub fn scan(buf: &[u8]) -> Scan {
    let mut s = Scan::default();
    scan_range(buf, 0..buf.len(), &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: u16, arch: u32, flags: u64, isa: (u16, u16), payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[0..2].copy_from_slice(&kind.to_le_bytes());
        h[2..4].copy_from_slice(&0x0101u16.to_le_bytes());
        h[4..8].copy_from_slice(&64u32.to_le_bytes());
        h[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        h[0x18..0x1A].copy_from_slice(&isa.1.to_le_bytes());
        h[0x1A..0x1C].copy_from_slice(&isa.0.to_le_bytes());
        h[0x1C..0x20].copy_from_slice(&arch.to_le_bytes());
        h[0x28..0x30].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x40].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        h.extend_from_slice(payload);
        h
    }

    fn container(entries: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = entries.concat();
        let mut c = Vec::new();
        c.extend_from_slice(&FATBIN_MAGIC.to_le_bytes());
        c.extend_from_slice(&1u16.to_le_bytes());
        c.extend_from_slice(&16u16.to_le_bytes());
        c.extend_from_slice(&(body.len() as u64).to_le_bytes());
        c.extend_from_slice(&body);
        c
    }

    #[test]
    fn parses_entries_and_flags() {
        let c = container(&[
            entry(2, 90, 0x11 | FLAG_ARCH_SPECIFIC, (1, 8), &[1; 8]),
            entry(
                2,
                100,
                0x11 | FLAG_FAMILY_SPECIFIC | FLAG_COMPRESSED_ZSTD,
                (1, 8),
                &[2; 16],
            ),
            entry(1, 90, 0x11 | FLAG_COMPRESSED_LZ4, (8, 2), &[3; 24]),
            entry(8, 90, 0x11, (0, 0), &[4; 8]),
        ]);
        let s = scan(&c);
        assert_eq!(s.containers.len(), 1);
        let names: Vec<String> = s.containers[0]
            .entries
            .iter()
            .map(|e| e.target_name())
            .collect();
        assert_eq!(names, ["sm_90a", "sm_100f", "compute_90", "kind 8 arch 90"]);
        let e = &s.containers[0].entries;
        assert_eq!(e[1].compression, Compression::Zstd);
        assert_eq!(e[2].compression, Compression::Lz4);
        assert_eq!(e[2].ptx_isa(), Some(PtxIsa::new(8, 2)));
        assert_eq!(e[0].ptx_isa(), None);
        assert!(s.containers[0].warnings.is_empty());
    }

    #[test]
    fn back_to_back_and_unaligned() {
        let a = container(&[entry(2, 75, 1, (1, 8), &[0; 8])]);
        let b = container(&[entry(2, 86, 1, (1, 8), &[0; 8])]);
        let mut buf = a.clone();
        buf.extend_from_slice(&b);
        assert_eq!(scan(&buf).containers.len(), 2);
        // At an offset that is not 8-aligned the container is not found.
        let mut odd = vec![0u8; 4];
        odd.extend_from_slice(&a);
        assert_eq!(scan(&odd).containers.len(), 0);
    }

    #[test]
    fn rejects_non_containers() {
        let mut bogus = FATBIN_MAGIC.to_le_bytes().to_vec();
        bogus.extend_from_slice(&[1, 0, 16, 0]);
        bogus.extend_from_slice(&1000u64.to_le_bytes());
        bogus.extend_from_slice(&[0xff; 64]); // header_size 0xffffffff
        let s = scan(&bogus);
        assert!(s.containers.is_empty());
        assert_eq!(s.rejected_total, 1);
        assert_eq!(s.rejected[0].1, Rejection::BadFirstEntry);
        // Just the magic, at the very end.
        let s = scan(&FATBIN_MAGIC.to_le_bytes());
        assert_eq!(s.rejected[0].1, Rejection::HeaderCut);
    }

    #[test]
    fn truncated_payload_is_a_warning() {
        let c = container(&[
            entry(2, 75, 1, (1, 8), &[0; 8]),
            entry(2, 86, 1, (1, 8), &[0; 64]),
        ]);
        let cut = &c[..c.len() - 10];
        let s = scan(cut);
        assert_eq!(s.containers.len(), 1);
        assert_eq!(s.containers[0].entries.len(), 1);
        assert_eq!(
            s.containers[0].warnings.len(),
            2,
            "{:?}",
            s.containers[0].warnings
        );
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let mut e = entry(2, 75, 1, (1, 8), &[0; 8]);
        e[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut c = container(&[e]);
        c[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let s = scan(&c);
        assert_eq!(s.containers.len(), 1);
        assert!(s.containers[0].entries.is_empty());
        assert!(!s.containers[0].warnings.is_empty());
    }
}
