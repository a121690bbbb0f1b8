//! Inspection of CUDA binaries.
//!
//! Owns: finding every fatbin container in an ELF file (in `.nv_fatbin`, `__nv_relfatbin` and
//! embedded in other sections), summarising its SASS and PTX entries, the compatibility rules
//! that decide which entry the driver would load on a GPU (and whether the driver understands
//! that PTX), the per-library verdict (`native`, `jit`, `no kernel image`), and the dynamic
//! dependencies of a library resolved the way the loader would.
//!
//! These rules are the single source of truth: plan, install, verify and package call them.
//!
//! Must not touch: the network, the install root, or loading the libraries it reads (it parses
//! bytes; it never `dlopen`s what it inspects).
//!
//! Layout:
//! - [`fatbin`]: pure parsing of container and entry headers out of bytes (facts §1). Hostile
//!   input never panics, never reads out of bounds and never allocates beyond a bound
//!   proportional to the input; a `cargo fuzz` target in `fuzz/` at the repository root
//!   exercises it.
//! - [`compat`]: the rules of facts §2 over plain data: [`runs_on`], [`max_ptx_isa`],
//!   [`select_entry`] per container and [`library_verdict`] per library; the driver rules of
//!   `docs/driver-rules.md` ([`compression_need`]: which driver reads zstd/LZ4 entries;
//!   [`min_cuda_for_ptx`]: which driver JITs a PTX ISA).
//! - [`report`]: files and directories: memory-map, walk ELF sections, summarise per target,
//!   and give a [`GpuVerdict`] per GPU; serde-serialisable for `--json`.
//! - [`read`]: regular files only (FIFOs, sockets and devices refused before a read, never
//!   blocking), the data extents of sparse files, and the bounded windows a file is scanned in.
//! - [`decompress`]: LZ4 / zstd payload decompression with a hard size cap, only when asked.
//! - `deps`: the dynamic-dependency resolver (owned by another engineer).

pub mod compat;
pub mod decompress;
pub mod deps;
pub mod fatbin;
pub mod read;
pub mod report;

pub use compat::{
    compression_need, driver_accepts_ptx, driver_reads, library_verdict, max_ptx_isa,
    min_cuda_for_ptx, needed_targets, runs_on, select_entry, skip_reason, unreadable_choice,
    CompressionNeed, ContainerTally, DriverRule, KernelEntry, KernelTarget, PtxIsa, Selection,
    Skip, StoredEntry, TargetKind, Unreadable, Variant, Verdict, RULE_FATBIN_UNKNOWN,
    RULE_FATBIN_ZSTD, RULE_PTX_ISA,
};
pub use decompress::{decompress_entry, DecompressError};
pub use fatbin::{scan, Compression, Container, EntryKind, FatbinEntry, Scan};
pub use report::{
    elf_files_below, inspect_bytes, inspect_file, inspect_paths, scan_file_bytes, FileFormat,
    FileReport, GpuVerdict, InspectError, InspectOptions, KernelSummary, LoadedTarget,
    SectionSummary,
};
