//! Inspecting files: find every container, summarise the kernels, and give a verdict per GPU.
//!
//! A file is memory-mapped and read once: ELF section headers are walked with `object`, and the
//! file data of every section is scanned for containers (the `.nv_fatbin` and `__nv_relfatbin`
//! sections NVIDIA's tools read, and any other section — some NVIDIA libraries keep containers
//! in `.data`). Payloads are never decompressed unless [`InspectOptions::check_payloads`] asks.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use gpulibs_detect::{ComputeCapability, CudaVersion};
use object::{Object, ObjectSection};
use serde::{Deserialize, Serialize};

use crate::compat::{
    has_per_target_variants, library_verdict, max_ptx_isa, select_entry, unreadable_choice,
    ContainerTally, KernelEntry, PtxIsa, Selection, StoredEntry, Verdict,
};
use crate::decompress::decompress_entry;
use crate::fatbin::{self, Compression, EntryKind, Scan};
use crate::read;

/// Cap on the output of one payload when [`InspectOptions::check_payloads`] is set. The largest
/// real cubins seen are a few MB uncompressed (\[E3\]); 256 MiB is far above that.
pub const PAYLOAD_CHECK_CAP: usize = 256 << 20;
/// Cap on warnings kept in one report.
const MAX_REPORT_WARNINGS: usize = 64;

/// An error that stops one file from being inspected. Problems inside a file's containers are
/// warnings in its report instead.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{}: cannot {action}", path.display())]
    Io {
        path: PathBuf,
        /// What was being done: "open the file", "list the directory", ...
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl InspectError {
    fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        InspectError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            InspectError::Io { path, .. } => path,
        }
    }
}

/// What to inspect for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectOptions {
    /// The GPUs to give a verdict for (none: kernels only).
    pub gpus: Vec<ComputeCapability>,
    /// The driver's maximum CUDA version, which bounds the PTX ISA it can JIT. `None`: unknown,
    /// and PTX is assumed loadable by ISA.
    pub driver: Option<CudaVersion>,
    /// Decompress every payload (capped at [`PAYLOAD_CHECK_CAP`]) and warn about those that fail.
    pub check_payloads: bool,
}

/// How the file was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// An ELF file whose section table was read.
    Elf,
    /// An ELF file whose section table could not be read; the whole file was scanned.
    ElfUnreadable,
    /// A bare fatbin (starts with the container magic).
    Fatbin,
    /// Anything else; the whole file was scanned.
    Other,
}

impl FileFormat {
    /// The word used in text output and JSON: `elf`, `elf_unreadable`, `fatbin`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Elf => "elf",
            FileFormat::ElfUnreadable => "elf_unreadable",
            FileFormat::Fatbin => "fatbin",
            FileFormat::Other => "other",
        }
    }
}

/// Entries of one target summed over all containers of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelSummary {
    /// `sm_90a`, `compute_90`, or `kind 8 arch 90`.
    pub target: String,
    /// `sass`, `ptx` or `other`.
    pub kind: String,
    /// `major * 10 + minor`, as in the entry header.
    pub arch: u32,
    /// The PTX ISA (`8.2`), for PTX.
    pub ptx_isa: Option<String>,
    /// Number of entries.
    pub entries: usize,
    /// Stored payload bytes (compressed, padded).
    pub bytes: u64,
    /// Uncompressed bytes the headers declare.
    pub uncompressed_bytes: u64,
    /// The compression methods seen (`none`, `lz4`, `zstd`, `unknown`).
    pub compression: Vec<Compression>,
}

/// Containers found in one ELF section (or `(file)` for non-ELF input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSummary {
    pub name: String,
    pub containers: usize,
    /// Bytes of containers (headers and entries) in this section.
    pub bytes: u64,
}

/// How many containers load one target on a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedTarget {
    pub target: String,
    /// `native` (cubin) or `jit` (PTX).
    pub mode: String,
    pub containers: usize,
}

/// The verdict of one file for one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuVerdict {
    /// `sm_90`.
    pub gpu: String,
    pub compute_capability: ComputeCapability,
    pub driver_cuda: Option<CudaVersion>,
    /// The highest PTX ISA that driver compiles, when the driver is known.
    pub max_ptx_isa: Option<PtxIsa>,
    /// `verdict` (`native`, `jit`, `no_kernel_image`, `no_cuda_code`) and its fields.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// How the containers with SASS or PTX fare on this GPU. (Not `containers`: the flattened
    /// verdict already has a field of that name.)
    pub tally: ContainerTally,
    /// Which entry the driver would load, summed over containers.
    pub loaded: Vec<LoadedTarget>,
    /// One sentence for people.
    pub message: String,
}

/// Everything `gpulibs inspect` says about one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub format: FileFormat,
    /// File size in bytes.
    pub size: u64,
    /// Fatbin containers found.
    pub containers: usize,
    /// Entries in them.
    pub entries: usize,
    pub sections: Vec<SectionSummary>,
    /// Per target, sorted SASS first, then PTX, then other kinds, each by architecture.
    pub kernels: Vec<KernelSummary>,
    /// Distinct SASS target names (`sm_75`, `sm_90a`), sorted as `kernels`: the list
    /// `cuobjdump --list-elf` gives, without file names and duplicates.
    pub sass_targets: Vec<String>,
    /// Distinct PTX target names (`compute_90`): the list `cuobjdump --list-ptx` gives.
    pub ptx_targets: Vec<String>,
    /// Problems found (truncated or corrupt containers, rejected magic values, payload checks).
    pub warnings: Vec<String>,
    /// One per GPU asked for, in the order asked.
    pub verdicts: Vec<GpuVerdict>,
    /// Distinct SASS/PTX entry sets (with each entry's compression) and how many containers
    /// hold each: all the verdict needs. Not serialised, so a report read back from JSON cannot
    /// compute new verdicts.
    #[serde(skip)]
    kernel_sets: Vec<(Vec<StoredEntry>, usize)>,
}

impl FileReport {
    /// True when the file holds SASS or PTX.
    pub fn has_cuda_code(&self) -> bool {
        !self.kernel_sets.is_empty()
    }

    /// Containers holding SASS or PTX.
    pub fn kernel_containers(&self) -> usize {
        self.kernel_sets.iter().map(|(_, n)| n).sum()
    }

    /// The verdict for one GPU (also computed for [`InspectOptions::gpus`] into `verdicts`).
    pub fn verdict_for(&self, gpu: ComputeCapability, driver: Option<CudaVersion>) -> GpuVerdict {
        let sets: Vec<(Vec<KernelEntry>, &[StoredEntry], usize)> = self
            .kernel_sets
            .iter()
            .map(|(stored, n)| {
                (
                    stored.iter().map(|s| s.entry).collect(),
                    stored.as_slice(),
                    *n,
                )
            })
            .collect();
        let mut tally = ContainerTally::for_library(has_per_target_variants(
            sets.iter().map(|(e, _, _)| e.as_slice()),
        ));
        let mut loaded: BTreeMap<(u8, crate::KernelTarget), usize> = BTreeMap::new();
        for (entries, stored, count) in &sets {
            let s = select_entry(entries, gpu, driver);
            if let Some(u) = unreadable_choice(stored, &s, driver) {
                tally.add_unreadable(&u, *count);
                continue;
            }
            match &s {
                Selection::Native { target } => *loaded.entry((0, *target)).or_default() += count,
                Selection::Jit { target, .. } => *loaded.entry((1, *target)).or_default() += count,
                Selection::None { .. } => {}
            }
            tally.add(entries, &s, gpu, *count);
        }
        let verdict = library_verdict(&tally, gpu);
        let message = verdict.describe(&tally, gpu);
        GpuVerdict {
            gpu: gpu.sm_name(),
            compute_capability: gpu,
            driver_cuda: driver,
            max_ptx_isa: driver.map(max_ptx_isa),
            verdict,
            tally,
            loaded: loaded
                .into_iter()
                .map(|((mode, t), containers)| LoadedTarget {
                    target: t.name(),
                    mode: if mode == 0 { "native" } else { "jit" }.to_string(),
                    containers,
                })
                .collect(),
            message,
        }
    }

    /// One line: `path: 609 containers; sm_75 sm_80 …; PTX none; sm_90 native, sm_100 no kernel image`.
    pub fn summary_line(&self) -> String {
        let mut s = format!("{}: ", self.path.display());
        if self.containers == 0 {
            s.push_str("no CUDA code");
        } else {
            s.push_str(&format!(
                "{} container(s); SASS {}; PTX {}",
                self.containers,
                list_or_none(&self.sass_targets),
                list_or_none(&self.ptx_targets),
            ));
        }
        if !self.verdicts.is_empty() {
            let v: Vec<String> = self
                .verdicts
                .iter()
                .map(|v| match &v.verdict {
                    Verdict::Jit { containers } => format!("{} jit ({containers})", v.gpu),
                    Verdict::NoKernelImage { containers, .. } => {
                        format!("{} no kernel image ({containers})", v.gpu)
                    }
                    Verdict::DriverCannotLoad {
                        containers,
                        compression,
                        ..
                    } => format!(
                        "{} driver cannot load ({containers}, {})",
                        v.gpu,
                        compression.name()
                    ),
                    other => format!("{} {}", v.gpu, other.label()),
                })
                .collect();
            s.push_str("; ");
            s.push_str(&v.join(", "));
        }
        if !self.warnings.is_empty() {
            s.push_str(&format!("; {} warning(s)", self.warnings.len()));
        }
        s
    }

    /// Rows of the kernel table: target, kind, PTX ISA, entries, bytes, uncompressed, compression.
    pub fn kernel_rows(&self) -> Vec<[String; 7]> {
        self.kernels
            .iter()
            .map(|k| {
                [
                    k.target.clone(),
                    k.kind.clone(),
                    k.ptx_isa.clone().unwrap_or_else(|| "-".into()),
                    k.entries.to_string(),
                    k.bytes.to_string(),
                    k.uncompressed_bytes.to_string(),
                    k.compression
                        .iter()
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join("+"),
                ]
            })
            .collect()
    }

    /// The full human-readable report.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "{} ({} bytes, {:?})\n",
            self.path.display(),
            self.size,
            self.format
        );
        if self.containers == 0 {
            out.push_str("  no CUDA code: no fatbin containers found\n");
        } else {
            out.push_str(&format!(
                "  {} fatbin container(s), {} entries, in {}\n",
                self.containers,
                self.entries,
                self.sections
                    .iter()
                    .map(|s| format!("{} ({})", s.name, s.containers))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let header = [
                "target",
                "kind",
                "ptx isa",
                "entries",
                "bytes",
                "uncompressed",
                "compression",
            ]
            .map(String::from);
            let rows = self.kernel_rows();
            let mut widths = header.clone().map(|h| h.len());
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.len());
                }
            }
            for r in std::iter::once(&header).chain(&rows) {
                out.push_str("   ");
                for (i, (c, w)) in r.iter().zip(widths).enumerate() {
                    // Numbers right-aligned, text left-aligned.
                    if (3..=5).contains(&i) {
                        out.push_str(&format!(" {c:>w$}"));
                    } else {
                        out.push_str(&format!(" {c:<w$}"));
                    }
                }
                out.truncate(out.trim_end().len());
                out.push('\n');
            }
        }
        for v in &self.verdicts {
            let driver = v
                .driver_cuda
                .map(|d| format!(", driver CUDA {d}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {} (CC {}{driver}): {}\n",
                v.gpu, v.compute_capability, v.message
            ));
            if !v.loaded.is_empty() {
                let l: Vec<String> = v
                    .loaded
                    .iter()
                    .map(|l| format!("{} {} ×{}", l.target, l.mode, l.containers))
                    .collect();
                out.push_str(&format!("    loads: {}\n", l.join(", ")));
            }
        }
        for w in &self.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
        out
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

/// A section with file data: `[start, end)` in the file, and its name.
struct SectionRange {
    start: usize,
    end: usize,
    name: String,
}

/// Section table problems reported per file at most; the rest are counted.
const MAX_SECTION_WARNINGS: usize = 8;

/// Finds every container in a file's bytes and names the section holding each: for an ELF
/// file, the file data of every section is scanned (the union once, in offset order); for
/// anything else, or an ELF file whose section table cannot be read (a warning says so), the
/// whole buffer. A section whose file range runs past the end of the buffer is scanned as far
/// as the buffer goes, with a warning naming it. What `inspect` reports and what
/// `gpulibs-package` thins are found this way.
pub fn scan_file_bytes(data: &[u8], warnings: &mut Vec<String>) -> (FileFormat, Scan, Vec<String>) {
    scan_file_data(data, None, &mut |_| {}, warnings)
}

/// The whole buffer, window by window (see [`scan_file_data`]).
fn scan_whole(
    data: &[u8],
    extents: Option<&[std::ops::Range<usize>]>,
    done: &mut dyn FnMut(std::ops::Range<usize>),
) -> Scan {
    let mut scan = Scan::default();
    let mut next = 0usize;
    for (_, w) in read::scan_windows(
        std::slice::from_ref(&(0..data.len())),
        extents,
        read::SCAN_WINDOW,
    ) {
        if next < w.end {
            next = fatbin::scan_part(data, data.len(), next.max(w.start)..w.end, &mut scan);
        }
        done(w);
    }
    scan
}

/// [`scan_file_bytes`] reading only `extents` of `data` (the rest is known to be zeros: holes
/// of a sparse file), in windows of at most [`read::SCAN_WINDOW`] bytes; `done` is called with
/// each window once it is scanned, so that the caller can let its pages go.
fn scan_file_data(
    data: &[u8],
    extents: Option<&[std::ops::Range<usize>]>,
    done: &mut dyn FnMut(std::ops::Range<usize>),
    warnings: &mut Vec<String>,
) -> (FileFormat, Scan, Vec<String>) {
    let is_elf = data.starts_with(b"\x7fELF");
    if is_elf {
        match object::File::parse(data) {
            Ok(obj) => {
                let mut past_end = 0usize;
                let mut ranges: Vec<SectionRange> = obj
                    .sections()
                    .filter_map(|s| {
                        let (off, size) = s.file_range()?;
                        let name = s.name().unwrap_or("(unnamed)");
                        let claimed_end = off.checked_add(size);
                        if claimed_end.is_none_or(|e| e > data.len() as u64) {
                            past_end += 1;
                            if past_end <= MAX_SECTION_WARNINGS {
                                warnings.push(format!(
                                    "section {name} claims {size} bytes at offset {off:#x}, past \
                                     the end of the file ({} bytes); only the bytes in the file \
                                     were scanned",
                                    data.len()
                                ));
                            }
                        }
                        let start = usize::try_from(off).ok()?.min(data.len());
                        let end = usize::try_from(claimed_end?).ok()?.min(data.len());
                        (end > start).then(|| SectionRange {
                            start,
                            end,
                            name: name.to_string(),
                        })
                    })
                    .collect();
                if past_end > MAX_SECTION_WARNINGS {
                    warnings.push(format!(
                        "{} more section(s) run past the end of the file",
                        past_end - MAX_SECTION_WARNINGS
                    ));
                }
                if !ranges.is_empty() {
                    ranges.sort_by_key(|r| (r.start, r.end));
                    let mut scan = Scan::default();
                    // The union of the sections is scanned once, even if a hostile file makes
                    // them overlap, so time stays proportional to the file's data.
                    let spans: Vec<_> = ranges.iter().map(|r| r.start..r.end).collect();
                    let mut next = (usize::MAX, 0usize); // (section, where its scan goes on)
                    for (i, w) in read::scan_windows(&spans, extents, read::SCAN_WINDOW) {
                        let from = if next.0 == i {
                            next.1.max(w.start)
                        } else {
                            w.start
                        };
                        if from < w.end {
                            next = (
                                i,
                                fatbin::scan_part(data, spans[i].end, from..w.end, &mut scan),
                            );
                        }
                        done(w);
                    }
                    let names = scan
                        .containers
                        .iter()
                        .map(|c| {
                            ranges
                                .iter()
                                .find(|r| (r.start as u64) <= c.offset && c.offset < r.end as u64)
                                .map_or_else(|| "(no section)".to_string(), |r| r.name.clone())
                        })
                        .collect();
                    return (FileFormat::Elf, scan, names);
                }
                // No section has file data (stripped section table): scan everything.
                let scan = scan_whole(data, extents, done);
                let names = vec!["(no section)".to_string(); scan.containers.len()];
                return (FileFormat::Elf, scan, names);
            }
            Err(e) => warnings.push(format!(
                "ELF section table unreadable ({e}); scanned the whole file"
            )),
        }
    }
    let format = if is_elf {
        FileFormat::ElfUnreadable
    } else if data.starts_with(&fatbin::FATBIN_MAGIC.to_le_bytes()) {
        FileFormat::Fatbin
    } else {
        FileFormat::Other
    };
    let scan = scan_whole(data, extents, done);
    let names = vec!["(file)".to_string(); scan.containers.len()];
    (format, scan, names)
}

fn push_warning(warnings: &mut Vec<String>, dropped: &mut usize, w: String) {
    if warnings.len() < MAX_REPORT_WARNINGS {
        warnings.push(w);
    } else {
        *dropped += 1;
    }
}

/// Inspects bytes already in memory. `path` is only used to label the report. Never panics,
/// whatever the bytes.
pub fn inspect_bytes(path: &Path, data: &[u8], opts: &InspectOptions) -> FileReport {
    inspect_data(path, data, None, &mut |_| {}, opts)
}

/// [`inspect_bytes`] over the `extents` of `data` that hold data (see [`scan_file_data`]).
fn inspect_data(
    path: &Path,
    data: &[u8],
    extents: Option<&[std::ops::Range<usize>]>,
    done: &mut dyn FnMut(std::ops::Range<usize>),
    opts: &InspectOptions,
) -> FileReport {
    let mut warnings = Vec::new();
    let (format, scan, section_names) = scan_file_data(data, extents, done, &mut warnings);
    let mut dropped = 0usize;

    let mut sections: Vec<SectionSummary> = Vec::new();
    let mut kernels: BTreeMap<(u8, u32, String, Option<PtxIsa>), KernelSummary> = BTreeMap::new();
    let mut sets: BTreeMap<Vec<StoredEntry>, usize> = BTreeMap::new();
    let mut entries = 0usize;

    for (c, name) in scan.containers.iter().zip(&section_names) {
        let bytes = c.end().saturating_sub(c.offset);
        match sections.iter_mut().find(|s| &s.name == name) {
            Some(s) => {
                s.containers += 1;
                s.bytes += bytes;
            }
            None => sections.push(SectionSummary {
                name: name.clone(),
                containers: 1,
                bytes,
            }),
        }
        for w in &c.warnings {
            push_warning(&mut warnings, &mut dropped, format!("{name}: {w}"));
        }
        entries += c.entries.len();
        for e in &c.entries {
            let (order, kind) = match e.kind {
                EntryKind::Elf => (0, "sass"),
                EntryKind::Ptx => (1, "ptx"),
                EntryKind::Other(_) => (2, "other"),
            };
            // Sort key: kind, then architecture, then variant/name, then ISA.
            let key = (order, e.arch, e.target_name(), e.ptx_isa());
            let k = kernels.entry(key).or_insert_with(|| KernelSummary {
                target: e.target_name(),
                kind: kind.to_string(),
                arch: e.arch,
                ptx_isa: e.ptx_isa().map(|i| i.to_string()),
                entries: 0,
                bytes: 0,
                uncompressed_bytes: 0,
                compression: Vec::new(),
            });
            k.entries += 1;
            k.bytes = k.bytes.saturating_add(e.payload_size);
            k.uncompressed_bytes = k.uncompressed_bytes.saturating_add(e.uncompressed_size);
            if !k.compression.contains(&e.compression) {
                k.compression.push(e.compression);
                k.compression.sort();
            }
            // Only SASS and PTX are checked: kind-8 entries in cuFFT carry flag 0x10000 and do
            // not decode as plain LZ4 blocks (measured on the cuFFT 11.4 wheel); their format is
            // unknown.
            if opts.check_payloads && e.target().is_some() {
                if let Err(err) = decompress_entry(data, e, PAYLOAD_CHECK_CAP) {
                    push_warning(
                        &mut warnings,
                        &mut dropped,
                        format!(
                            "{name}: {} entry at {:#x} does not decompress: {err}",
                            e.target_name(),
                            e.offset
                        ),
                    );
                }
            }
        }
        let mut ks: Vec<StoredEntry> = c
            .entries
            .iter()
            .filter_map(|e| {
                Some(StoredEntry {
                    entry: e.kernel_entry()?,
                    compression: e.compression,
                })
            })
            .collect();
        if !ks.is_empty() {
            ks.sort_by(|a, b| {
                a.entry
                    .target
                    .cmp(&b.entry.target)
                    .then(a.entry.ptx_isa.cmp(&b.entry.ptx_isa))
                    .then(a.compression.cmp(&b.compression))
            });
            ks.dedup();
            *sets.entry(ks).or_default() += 1;
        } else if !c.entries.is_empty() {
            push_warning(
                &mut warnings,
                &mut dropped,
                format!(
                    "{name}: container at {:#x} holds no SASS or PTX (only other entry kinds); \
                     it is left out of the verdict",
                    c.offset
                ),
            );
        }
    }
    if scan.rejected_total > 0 {
        let examples: Vec<String> = scan
            .rejected
            .iter()
            .take(3)
            .map(|(off, why)| format!("{off:#x} ({why})"))
            .collect();
        push_warning(
            &mut warnings,
            &mut dropped,
            format!(
                "{} place(s) hold the fatbin magic but no valid container, e.g. {}",
                scan.rejected_total,
                examples.join(", ")
            ),
        );
    }
    if dropped > 0 {
        warnings.push(format!("{dropped} more warning(s) not shown"));
    }

    let kernels: Vec<KernelSummary> = kernels.into_values().collect();
    let mut sass_targets = Vec::new();
    let mut ptx_targets = Vec::new();
    for k in &kernels {
        let list = match k.kind.as_str() {
            "sass" => &mut sass_targets,
            "ptx" => &mut ptx_targets,
            _ => continue,
        };
        if !list.contains(&k.target) {
            list.push(k.target.clone());
        }
    }
    let mut report = FileReport {
        path: path.to_path_buf(),
        format,
        size: data.len() as u64,
        containers: scan.containers.len(),
        entries,
        sections,
        kernels,
        sass_targets,
        ptx_targets,
        warnings,
        verdicts: Vec::new(),
        kernel_sets: sets.into_iter().collect(),
    };
    report.verdicts = opts
        .gpus
        .iter()
        .map(|&g| report.verdict_for(g, opts.driver))
        .collect();
    report
}

/// Inspects one file: a regular file only (a FIFO, socket or device is refused before it is
/// opened for reading, see [`read::open_regular`]), memory-mapped and read once, holes of a
/// sparse file skipped, and the pages read let go window by window, so memory stays bounded
/// whatever the file's size.
pub fn inspect_file(path: &Path, opts: &InspectOptions) -> Result<FileReport, InspectError> {
    let file = read::open_regular(path).map_err(|e| InspectError::io(path, "open the file", e))?;
    let meta = file
        .metadata()
        .map_err(|e| InspectError::io(path, "read the file's metadata", e))?;
    if meta.len() == 0 {
        // mmap of an empty file fails on Linux; there is nothing to scan anyway.
        return Ok(inspect_bytes(path, &[], opts));
    }
    // SAFETY: the map is read-only and private to this call. If another process truncates the
    // file while we read it, the OS may raise SIGBUS; that is the accepted cost of not copying
    // hundreds of MB, the same trade every mmap-based reader (cuobjdump, readelf) makes.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| InspectError::io(path, "map the file into memory", e))?;
    let extents: Vec<std::ops::Range<usize>> = read::data_extents(&file, meta.len())
        .into_iter()
        .filter_map(|e| Some(usize::try_from(e.start).ok()?..usize::try_from(e.end).ok()?))
        .collect();
    let mut release = |w: std::ops::Range<usize>| {
        // SAFETY: MADV_DONTNEED on a read-only, private file mapping only drops this process's
        // copy of the pages; a later read faults them in again from the file, unchanged.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, w.start, w.len())
        };
    };
    Ok(inspect_data(path, &map, Some(&extents), &mut release, opts))
}

fn is_elf_file(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    read::open_regular(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Every ELF file below `dir`, sorted. Symbolic links are not followed (a wheel's `libfoo.so`
/// → `libfoo.so.1` would otherwise be inspected twice, and links can loop); FIFOs, sockets and
/// devices are skipped without being opened.
pub fn elf_files_below(dir: &Path) -> Result<Vec<PathBuf>, InspectError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd =
            std::fs::read_dir(&d).map_err(|e| InspectError::io(&d, "list the directory", e))?;
        for entry in rd {
            let entry = entry.map_err(|e| InspectError::io(&d, "list the directory", e))?;
            let p = entry.path();
            let ft = entry
                .file_type()
                .map_err(|e| InspectError::io(&p, "read the file type", e))?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && is_elf_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Inspects files and directories (every ELF file below each directory), one result per file,
/// in argument order.
pub fn inspect_paths(
    paths: &[PathBuf],
    opts: &InspectOptions,
) -> Vec<Result<FileReport, InspectError>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            match elf_files_below(p) {
                Ok(files) => out.extend(files.iter().map(|f| inspect_file(f, opts))),
                Err(e) => out.push(Err(e)),
            }
        } else {
            out.push(inspect_file(p, opts));
        }
    }
    out
}
