//! Per-architecture thinning of fatbin containers, in place.
//!
//! For one target GPU, every fatbin container of a library keeps exactly the entry the driver
//! would load there (chosen by `gpulibs-inspect`'s [`select_entry`], the rules of facts §2) and
//! loses the rest. The file keeps its size and every ELF offset; only bytes inside containers
//! change:
//!
//! ```text
//! before: | hdr fat_size=F | e1 sm_75 | e2 sm_86 | e3 sm_90a | e4 compute_90 |
//! after:  | hdr fat_size=K | e3 sm_90a | 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 |
//! ```
//!
//! - The container header stays where it is (the `.nvFatBinSegment` wrappers and their
//!   relocations point at container starts, facts §1), and `fat_size` becomes the bytes of the
//!   kept entries, which are copied byte for byte (header and payload) to the start of the
//!   container's entry area. Everything after them, up to the old end, is zeroed, so it
//!   compresses to almost nothing.
//! - A container where nothing loads on the target (built for other GPUs only: the 292
//!   `sm_90a`-only containers of ORT 1.31.1's CUDA provider on 8.6, say) becomes an empty
//!   container, `fat_size` 0 ([`Unloadable::Empty`], the default). On an H100 with driver 580 and
//!   the CUDA 13 runtime, such a container registers, the context is created (lazy and eager
//!   module loading) and a kernel of it fails at launch with `cudaErrorNoKernelImageForDevice`
//!   while the context stays usable: exactly what a container with nothing for the GPU does
//!   (probe: `probes/empty_container.c`, results in docs/package.md). `gpulibs-inspect` does not
//!   take `fat_size` 0 as a container (it reports the magic as rejected); the re-inspection here
//!   accounts for that. [`Unloadable::KeepSmallest`] keeps the smallest SASS/PTX entry instead.
//! - Entries of other kinds (kind 8 and friends, read by NVIDIA libraries themselves, never by
//!   the driver's entry choice) are kept, as is a container holding only such entries.
//!
//! A moved entry must keep its offset modulo 8 (the entry chain is 8-byte aligned in every
//! producer's output); a container where compaction would break that is refused
//! ([`ThinError::Unaligned`]) rather than written misaligned.
//!
//! After thinning, the bytes are scanned and inspected again: every container must hold exactly
//! the kept entries, and the verdict for the target must be the source's (`native`, or `jit`
//! where the source had only PTX for it), or thinning fails ([`ThinError::Verdict`]).

use std::path::{Path, PathBuf};

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_inspect::fatbin::{Container, FatbinEntry, Scan, CONTAINER_HEADER_SIZE};
use gpulibs_inspect::{inspect_bytes, select_entry, InspectOptions, Selection, Verdict};
use serde::{Deserialize, Serialize};

/// One entry of a container, as the thinning report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// `sm_90a`, `compute_90`, `kind 8 arch 90`.
    pub target: String,
    /// Offset of the entry header in the source file.
    pub offset: u64,
    /// Header plus stored payload bytes.
    pub bytes: u64,
}

/// What happened to one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerOutcome {
    /// The driver loads the kept cubin on the target.
    Native,
    /// The driver JIT-compiles the kept PTX on the target.
    Jit,
    /// Nothing in the container loads on the target; every SASS/PTX entry was removed and the
    /// container is empty (`fat_size` 0) unless it holds entries of other kinds.
    Emptied,
    /// Nothing in the container loads on the target; its smallest SASS/PTX entry was kept
    /// ([`Unloadable::KeepSmallest`]).
    NoneKeptSmallest,
    /// The container holds no SASS or PTX (only other entry kinds); left as it was.
    Untouched,
}

/// What to do with a container where nothing loads on the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unloadable {
    /// Remove every SASS/PTX entry: the container becomes empty (`fat_size` 0). Measured to
    /// behave on the GPU like a container with nothing for it (see the module doc).
    #[default]
    Empty,
    /// Keep the container's smallest SASS/PTX entry, so it stays a container `gpulibs-inspect`
    /// recognises. Costs the bytes of those entries (44 MB of `sm_90a` in ORT 1.31.1 for sm_86).
    KeepSmallest,
}

/// Options of [`thin_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinOptions {
    pub unloadable: Unloadable,
}

/// Per-container result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerThin {
    /// Offset of the container header (unchanged by thinning).
    pub offset: u64,
    /// ELF section holding it, `(no section)` or `(file)`.
    pub section: String,
    pub outcome: ContainerOutcome,
    /// Entries kept, in their original order.
    pub kept: Vec<EntryRecord>,
    /// Entries blanked.
    pub removed: Vec<EntryRecord>,
    /// `fat_size` before and after.
    pub fat_size_before: u64,
    pub fat_size_after: u64,
}

/// What [`thin`] did to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinReport {
    pub target: ComputeCapability,
    pub driver: Option<CudaVersion>,
    /// The verdict for the target, before and after (equal, or thinning fails).
    pub verdict_before: Verdict,
    pub verdict_after: Verdict,
    pub containers: Vec<ContainerThin>,
    /// Sum of kept entry bytes.
    pub kept_bytes: u64,
    /// Sum of removed entry bytes (now zeros).
    pub removed_bytes: u64,
    pub kept_entries: usize,
    pub removed_entries: usize,
}

impl ThinReport {
    /// True when the file had no CUDA code: nothing was changed and one copy serves every arch.
    pub fn is_shared(&self) -> bool {
        self.verdict_before == Verdict::NoCudaCode
    }

    /// One line for logs: `sm_90: 609 containers, kept 609 entries (45.1 MB), removed 3020 (230.2 MB); native`.
    pub fn summary_line(&self) -> String {
        format!(
            "{}: {} container(s), kept {} entries ({} bytes), removed {} ({} bytes); {}",
            self.target.sm_name(),
            self.containers.len(),
            self.kept_entries,
            self.kept_bytes,
            self.removed_entries,
            self.removed_bytes,
            self.verdict_after.label()
        )
    }
}

/// Why a file could not be thinned. Each message says what failed; what to do is its
/// [`Hint`](gpulibs_hint::Hint).
#[derive(Debug, thiserror::Error)]
pub enum ThinError {
    #[error("{}: reading or writing failed", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to thin {} onto itself: thinning writes a new file",
        path.display()
    )]
    SameFile { path: PathBuf },
    #[error(
        "container at {offset:#x} ({section}) is damaged: {warning}; thinning would guess at its \
         layout"
    )]
    DamagedContainer {
        offset: u64,
        section: String,
        warning: String,
    },
    #[error(
        "container at {offset:#x}: moving entry {entry} from {from:#x} to {to:#x} would change \
         its 8-byte alignment (entry sizes that are not multiples of 8 are not produced by \
         NVIDIA's tools); this file cannot be thinned safely"
    )]
    Unaligned {
        offset: u64,
        entry: String,
        from: u64,
        to: u64,
    },
    #[error("the source has no kernel image for {target}: {message}; thinning cannot add code")]
    NoKernelImage { target: String, message: String },
    #[error(
        "after thinning to {target}, the verdict is `{got}` where the source's was `{expected}` \
         ({message})"
    )]
    Verdict {
        target: String,
        expected: String,
        got: String,
        message: String,
    },
    #[error(
        "after thinning, the container at {offset:#x} holds [{}] instead of the kept [{}]",
        found.join(", "),
        expected.join(", ")
    )]
    Mismatch {
        offset: u64,
        expected: Vec<String>,
        found: Vec<String>,
    },
}

impl gpulibs_hint::Hint for ThinError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            ThinError::Io { .. } => {
                "check that the file exists and that this user may read it and write the \
                 destination"
                    .into()
            }
            ThinError::SameFile { .. } => "give a different destination".into(),
            ThinError::DamagedContainer { .. } => {
                "check the file with `gpulibs inspect` and rebuild it".into()
            }
            ThinError::Unaligned { .. } => "package it without --per-arch".into(),
            ThinError::NoKernelImage { .. } => "rebuild with this architecture in \
                 CMAKE_CUDA_ARCHITECTURES, or drop it from --per-arch"
                .into(),
            ThinError::Verdict { .. } | ThinError::Mismatch { .. } => {
                "this is a bug in thinning: report it with the file, and package without \
                 --per-arch meanwhile"
                    .into()
            }
        })
    }
}

/// Every container of a file's bytes and the section holding it, as `gpulibs-inspect`'s report
/// finds them ([`gpulibs_inspect::scan_file_bytes`]).
pub fn containers_with_sections(data: &[u8]) -> (Scan, Vec<String>) {
    let (_, scan, sections) = gpulibs_inspect::scan_file_bytes(data, &mut Vec::new());
    (scan, sections)
}

fn entry_bytes(e: &FatbinEntry) -> u64 {
    u64::from(e.header_size) + e.payload_size
}

fn record(e: &FatbinEntry) -> EntryRecord {
    EntryRecord {
        target: e.target_name(),
        offset: e.offset,
        bytes: entry_bytes(e),
    }
}

/// Which entries of `c` to keep on `target`, and the outcome.
fn choose(
    c: &Container,
    target: ComputeCapability,
    driver: Option<CudaVersion>,
    unloadable: Unloadable,
) -> (Vec<bool>, ContainerOutcome) {
    let kernels = c.kernel_entries();
    if kernels.is_empty() {
        return (vec![true; c.entries.len()], ContainerOutcome::Untouched);
    }
    // Entries of other kinds are always kept (see the module doc).
    let mut keep: Vec<bool> = c.entries.iter().map(|e| e.target().is_none()).collect();
    let (chosen, isa, outcome) = match select_entry(&kernels, target, driver) {
        Selection::Native { target } => (Some(target), None, ContainerOutcome::Native),
        Selection::Jit { target, ptx_isa } => (Some(target), Some(ptx_isa), ContainerOutcome::Jit),
        Selection::None { .. } => match unloadable {
            Unloadable::Empty => return (keep, ContainerOutcome::Emptied),
            Unloadable::KeepSmallest => (None, None, ContainerOutcome::NoneKeptSmallest),
        },
    };
    match chosen {
        Some(t) => {
            // Every entry equal to the chosen one (the same target, and for PTX the same ISA):
            // a container normally has one per target; if it has several, the driver's pick
            // among them is unknown, so all stay.
            for (k, e) in keep.iter_mut().zip(&c.entries) {
                if let Some(ke) = e.kernel_entry() {
                    if ke.target == t && (isa.is_none() || ke.ptx_isa == isa) {
                        *k = true;
                    }
                }
            }
        }
        None => {
            let smallest = c
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.target().is_some())
                .min_by_key(|(i, e)| (entry_bytes(e), *i))
                .map(|(i, _)| i);
            if let Some(i) = smallest {
                keep[i] = true;
            }
        }
    }
    (keep, outcome)
}

/// Thins every fatbin container in `data` (a whole file's bytes) for `target` in place, then
/// re-inspects the result. `driver` bounds the PTX ISA considered loadable, as in
/// [`select_entry`]; `None` takes any PTX ISA.
///
/// A file with no CUDA code is left unchanged and reported with verdict `no CUDA code`
/// ([`ThinReport::is_shared`]). On error, `data` may be partly modified; callers work on a copy.
pub fn thin(
    data: &mut [u8],
    target: ComputeCapability,
    driver: Option<CudaVersion>,
) -> Result<ThinReport, ThinError> {
    thin_with(data, target, driver, &ThinOptions::default())
}

/// [`thin`] with options.
pub fn thin_with(
    data: &mut [u8],
    target: ComputeCapability,
    driver: Option<CudaVersion>,
    options: &ThinOptions,
) -> Result<ThinReport, ThinError> {
    let opts = InspectOptions {
        gpus: vec![target],
        driver,
        check_payloads: false,
    };
    let label = Path::new("(thin)");
    let before = inspect_bytes(label, data, &opts);
    let vb = before.verdicts[0].clone();
    let mut report = ThinReport {
        target,
        driver,
        verdict_before: vb.verdict.clone(),
        verdict_after: vb.verdict.clone(),
        containers: Vec::new(),
        kept_bytes: 0,
        removed_bytes: 0,
        kept_entries: 0,
        removed_entries: 0,
    };
    match &vb.verdict {
        Verdict::NoCudaCode => {
            // Containers with only other entry kinds are left alone too.
            return Ok(report);
        }
        // Kernels the driver cannot read (zstd on a driver before CUDA 12.4) are refused like
        // missing ones: the message says which rule.
        Verdict::NoKernelImage { .. } | Verdict::DriverCannotLoad { .. } => {
            return Err(ThinError::NoKernelImage {
                target: target.sm_name(),
                message: vb.message,
            })
        }
        Verdict::Native | Verdict::Jit { .. } => {}
    }

    let (scan, sections) = containers_with_sections(data);
    let mut expected: Vec<(u64, Vec<String>)> = Vec::new();
    // Containers left with no entry: `gpulibs-inspect` reports their magic as rejected.
    let mut emptied: Vec<u64> = Vec::new();
    for (c, section) in scan.containers.iter().zip(&sections) {
        if let Some(w) = c.warnings.first() {
            return Err(ThinError::DamagedContainer {
                offset: c.offset,
                section: section.clone(),
                warning: w.clone(),
            });
        }
        let (keep, outcome) = choose(c, target, driver, options.unloadable);
        let area = c.offset + CONTAINER_HEADER_SIZE as u64;
        // The scan accepted the container without warnings, so its declared end lies inside
        // the buffer and every entry lies inside it.
        let old_end = area + c.declared_size;
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        let mut pos = area;
        let mut moves = Vec::new();
        for (e, &k) in c.entries.iter().zip(&keep) {
            if k {
                if (e.offset - pos) % 8 != 0 {
                    return Err(ThinError::Unaligned {
                        offset: c.offset,
                        entry: e.target_name(),
                        from: e.offset,
                        to: pos,
                    });
                }
                moves.push((e.offset, pos, entry_bytes(e)));
                pos += entry_bytes(e);
                kept.push(record(e));
            } else {
                removed.push(record(e));
            }
        }
        if !removed.is_empty() {
            // Moves go to lower (or equal) offsets in increasing order, so `copy_within`
            // (memmove) never overwrites an entry before it is moved.
            for &(from, to, len) in &moves {
                let (from, to, len) = (from as usize, to as usize, len as usize);
                data.copy_within(from..from + len, to);
            }
            data[pos as usize..old_end as usize].fill(0);
            let fat_size = pos - area;
            let h = c.offset as usize;
            data[h + 8..h + 16].copy_from_slice(&fat_size.to_le_bytes());
        }
        report.kept_bytes += kept.iter().map(|r| r.bytes).sum::<u64>();
        report.removed_bytes += removed.iter().map(|r| r.bytes).sum::<u64>();
        report.kept_entries += kept.len();
        report.removed_entries += removed.len();
        if kept.is_empty() {
            emptied.push(c.offset);
        } else {
            expected.push((c.offset, kept.iter().map(|r| r.target.clone()).collect()));
        }
        report.containers.push(ContainerThin {
            offset: c.offset,
            section: section.clone(),
            outcome,
            fat_size_before: c.declared_size,
            fat_size_after: if removed.is_empty() {
                c.declared_size
            } else {
                pos - area
            },
            kept,
            removed,
        });
    }

    // Check: the same containers, each with exactly the kept entries, and the same verdict.
    let (after_scan, _) = containers_with_sections(data);
    // An emptied container is either rejected by the scan ("declares no entries", inspect
    // today) or found with no entries, should inspect come to accept empty containers.
    let empty_found = after_scan
        .containers
        .iter()
        .filter(|c| c.entries.is_empty() && emptied.contains(&c.offset))
        .count();
    let found: Vec<(u64, Vec<String>)> = after_scan
        .containers
        .iter()
        .filter(|c| !(c.entries.is_empty() && emptied.contains(&c.offset)))
        .map(|c| {
            (
                c.offset,
                c.entries.iter().map(|e| e.target_name()).collect(),
            )
        })
        .collect();
    let want_rejected = scan.rejected_total + emptied.len() - empty_found;
    if found.len() != expected.len() || after_scan.rejected_total != want_rejected {
        return Err(ThinError::Mismatch {
            offset: 0,
            expected: vec![format!(
                "{} containers, {want_rejected} rejected magic value(s)",
                expected.len(),
            )],
            found: vec![format!(
                "{} containers, {} rejected magic value(s)",
                found.len(),
                after_scan.rejected_total
            )],
        });
    }
    for ((eo, ek), (fo, fk)) in expected.iter().zip(&found) {
        if eo != fo || ek != fk {
            return Err(ThinError::Mismatch {
                offset: *eo,
                expected: ek.clone(),
                found: fk.clone(),
            });
        }
    }
    let after = inspect_bytes(label, data, &opts);
    let va = &after.verdicts[0];
    report.verdict_after = va.verdict.clone();
    let same = matches!(
        (&report.verdict_before, &va.verdict),
        (Verdict::Native, Verdict::Native) | (Verdict::Jit { .. }, Verdict::Jit { .. })
    );
    if !same {
        return Err(ThinError::Verdict {
            target: target.sm_name(),
            expected: report.verdict_before.label().to_string(),
            got: va.verdict.label().to_string(),
            message: va.message.clone(),
        });
    }
    Ok(report)
}

/// Reads `src`, thins a copy for `target` with default options ([`thin`]) and writes it to `dst` (through a temporary file in
/// `dst`'s directory, renamed into place, with `src`'s permissions). `src` is never modified.
pub fn thin_file(
    src: &Path,
    dst: &Path,
    target: ComputeCapability,
    driver: Option<CudaVersion>,
) -> Result<ThinReport, ThinError> {
    thin_file_with(src, dst, target, driver, &ThinOptions::default())
}

/// [`thin_file`] with options.
pub fn thin_file_with(
    src: &Path,
    dst: &Path,
    target: ComputeCapability,
    driver: Option<CudaVersion>,
    options: &ThinOptions,
) -> Result<ThinReport, ThinError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ThinError::Io { path, source }
    };
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize()) {
        if a == b {
            return Err(ThinError::SameFile { path: a });
        }
    }
    let mut data = std::fs::read(src).map_err(io(src))?;
    let perms = std::fs::metadata(src).map_err(io(src))?.permissions();
    let report = thin_with(&mut data, target, driver, options)?;
    let dir = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "thin".into());
    let tmp = dir.join(format!(".{name}.thin-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, &data)?;
        std::fs::set_permissions(&tmp, perms)?;
        std::fs::rename(&tmp, dst)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(ThinError::Io {
            path: dst.to_path_buf(),
            source: e,
        });
    }
    Ok(report)
}
