//! Which kernel entry a GPU can load, and what that means for a whole library.
//!
//! Pure rules over plain data: nothing here reads files. The rules are those of
//! `cuda-facts.md` §2 (sources \[ADA\], \[BF\], \[J3124\], \[EESSI\], \[FB\], and the experiment \[E2\] on an
//! H100 with driver 13.0); where the facts mark a rule UNCONFIRMED, so does the comment here.

use std::cmp::Ordering;
use std::fmt;

use gpulibs_detect::{ComputeCapability, CudaVersion};
use serde::{Deserialize, Serialize};

use crate::fatbin::Compression;

/// Whether an entry is machine code for one architecture or PTX the driver compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A cubin (SASS) entry: fatbin entry kind 2.
    Sass,
    /// A PTX entry: fatbin entry kind 1.
    Ptx,
}

/// The suffix of a target: none, `a` (arch-specific) or `f` (family-specific).
///
/// Read from the fatbin entry flags 0x100000 / 0x200000, never from the cubin, whose own marker is
/// inconsistent across ptxas versions (facts §1 "The `a` marker inside cubins is not consistent").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// `sm_90`, `compute_90`.
    Generic,
    /// `sm_90a`, `compute_90a`: runs only on exactly that compute capability.
    ArchSpecific,
    /// `sm_100f`, `compute_120f`: runs on the same major with a minor at least as high.
    FamilySpecific,
}

impl Variant {
    pub fn suffix(self) -> &'static str {
        match self {
            Variant::Generic => "",
            Variant::ArchSpecific => "a",
            Variant::FamilySpecific => "f",
        }
    }

    /// Preference among entries for the same compute capability: `a` beat the plain entry on
    /// CC 9.0 for both SASS and PTX (\[E2\]). Where `f` sits between them is UNCONFIRMED; it is
    /// narrower than generic code, so it is put between the two.
    fn preference(self) -> u8 {
        match self {
            Variant::Generic => 0,
            Variant::FamilySpecific => 1,
            Variant::ArchSpecific => 2,
        }
    }
}

/// One compilation target: `sm_90a`, `compute_120`, `sm_100f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KernelTarget {
    pub kind: TargetKind,
    pub cc: ComputeCapability,
    pub variant: Variant,
}

impl KernelTarget {
    pub const fn new(kind: TargetKind, cc: ComputeCapability, variant: Variant) -> Self {
        Self { kind, cc, variant }
    }

    pub const fn sass(major: u32, minor: u32) -> Self {
        Self::new(
            TargetKind::Sass,
            ComputeCapability::new(major, minor),
            Variant::Generic,
        )
    }

    pub const fn ptx(major: u32, minor: u32) -> Self {
        Self::new(
            TargetKind::Ptx,
            ComputeCapability::new(major, minor),
            Variant::Generic,
        )
    }

    pub const fn with_variant(self, variant: Variant) -> Self {
        Self { variant, ..self }
    }

    /// The name NVIDIA tools print: `sm_90a`, `compute_90`, `sm_100f`.
    pub fn name(&self) -> String {
        let prefix = match self.kind {
            TargetKind::Sass => "sm_",
            TargetKind::Ptx => "compute_",
        };
        format!("{prefix}{}{}", self.cc.number(), self.variant.suffix())
    }
}

impl fmt::Display for KernelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Does code built for `target` run on a device of compute capability `device`?
///
/// This is the architecture rule only; a PTX entry must also pass [`driver_accepts_ptx`].
/// Rules (facts §2):
/// - SASS `sm_XY`: same major, device minor ≥ Y (\[ADA\]; sm_86 fails on 9.0 \[E2\]).
/// - `a` (SASS or PTX): exactly CC X.Y (\[BF\]\[J3124\]; sm_90a and compute_90a load on 9.0 \[E2\]).
/// - `f` (SASS or PTX): same major, minor ≥ Y (\[BF\]\[EESSI\]: 100f → 10.0/10.3, 120f → 12.0/12.1).
///   Whether Thor's old CC 10.1 is in the 100f family is UNCONFIRMED; CUDA 13 renamed it 11.0.
/// - PTX `compute_XY`: any device CC ≥ X.Y, across majors (\[FB\]; compute_100 fails on 9.0 \[E2\]).
pub fn runs_on(target: KernelTarget, device: ComputeCapability) -> bool {
    let t = target.cc;
    match (target.kind, target.variant) {
        (_, Variant::ArchSpecific) => t == device,
        (_, Variant::FamilySpecific) | (TargetKind::Sass, Variant::Generic) => {
            t.major == device.major && device.minor >= t.minor
        }
        (TargetKind::Ptx, Variant::Generic) => device >= t,
    }
}

/// A PTX ISA version, as in the PTX `.version` directive and the fatbin entry's code version.
/// Serialised as the string `"9.0"`, like the other versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PtxIsa {
    pub major: u32,
    pub minor: u32,
}

impl PtxIsa {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }
}

impl fmt::Display for PtxIsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for PtxIsa {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s
            .trim()
            .split_once('.')
            .ok_or_else(|| format!("`{s}` is not a PTX ISA version: write it as `9.0`"))?;
        match (major.parse(), minor.parse()) {
            (Ok(major), Ok(minor)) => Ok(Self::new(major, minor)),
            _ => Err(format!("`{s}` is not a PTX ISA version: write it as `9.0`")),
        }
    }
}

impl Serialize for PtxIsa {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PtxIsa {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// First CUDA release of each PTX ISA version, oldest first.
///
/// Source: the "PTX ISA release history" table of NVIDIA's PTX ISA document, as NVIDIA copies it
/// into cuda-python (`cuda/bindings/utils/_ptx_utils.py`, `_ptx_to_cuda`), which lists up to
/// 9.1 ↔ 13.1. Cross-checked with facts §2: ptxas 11.8→7.8, 12.0→8.0, 12.8→8.7, 12.9→8.8,
/// 13.0→9.0 \[E1\], 13.1→9.1 \[RN\]; driver 13.0 accepts 9.0 and rejects 9.1/9.2 \[E2\].
/// CUDA 12.6 kept PTX 8.5 and 12.7 (8.6) was never a public toolkit, hence the gap.
/// `((CUDA major, minor), (PTX ISA major, minor))`.
type CudaToIsa = ((u32, u32), (u32, u32));

const PTX_ISA_BY_CUDA: &[CudaToIsa] = &[
    ((9, 0), (6, 0)),
    ((9, 1), (6, 1)),
    ((9, 2), (6, 2)),
    ((10, 0), (6, 3)),
    ((10, 1), (6, 4)),
    ((10, 2), (6, 5)),
    ((11, 0), (7, 0)),
    ((11, 1), (7, 1)),
    ((11, 2), (7, 2)),
    ((11, 3), (7, 3)),
    ((11, 4), (7, 4)),
    ((11, 5), (7, 5)),
    ((11, 6), (7, 6)),
    ((11, 7), (7, 7)),
    ((11, 8), (7, 8)),
    ((12, 0), (8, 0)),
    ((12, 1), (8, 1)),
    ((12, 2), (8, 2)),
    ((12, 3), (8, 3)),
    ((12, 4), (8, 4)),
    ((12, 5), (8, 5)),
    ((12, 7), (8, 6)),
    ((12, 8), (8, 7)),
    ((12, 9), (8, 8)),
    ((13, 0), (9, 0)),
    ((13, 1), (9, 1)),
];

/// The highest PTX ISA a driver whose maximum CUDA version is `driver` can JIT-compile.
///
/// Within CUDA 13 the ISA minor has followed the CUDA minor (9.0 ↔ 13.0, 9.1 ↔ 13.1 in NVIDIA's
/// table; 9.4 ↔ 13.4 and 9.5 ↔ 13.5 in third-party release notes, UNCONFIRMED here), so a 13.x
/// driver newer than the table is credited with ISA 9.x. Any other version newer than the table
/// gets the latest known ISA; older than CUDA 9.0 gets ISA 5.0 (CUDA 8.0), which predates every
/// GPU this tool targets anyway.
pub fn max_ptx_isa(driver: CudaVersion) -> PtxIsa {
    let key = (driver.major, driver.minor);
    if driver.major == 13 {
        return PtxIsa::new(9, driver.minor);
    }
    let mut best = PtxIsa::new(5, 0);
    for &(cuda, (maj, min)) in PTX_ISA_BY_CUDA {
        if cuda <= key {
            best = PtxIsa::new(maj, min);
        }
    }
    best
}

/// Can a driver of maximum CUDA version `driver` load PTX of ISA `isa`? An unknown driver
/// (`None`) is assumed to accept it: the verdict then only speaks about architectures.
pub fn driver_accepts_ptx(isa: PtxIsa, driver: Option<CudaVersion>) -> bool {
    match driver {
        None => true,
        Some(d) => isa <= max_ptx_isa(d),
    }
}

/// A driver rule of `docs/driver-rules.md`: a stable id (named in messages and JSON) and the
/// document it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverRule {
    /// `fatbin-zstd`, `fatbin-unknown-compression`, `ptx-isa`.
    pub id: &'static str,
    /// Where the rule is stated.
    pub source: &'static str,
}

/// Fatbin entries compressed with Zstandard (flag 0x8000) are read only by drivers of CUDA 12.4
/// (R550, first driver 550.54.14) or newer. NVIDIA's nvcc manual says `--compress-mode` (whose
/// `size`/`balance` modes, and CUDA 13's default, write zstd, \[E1\]) does not work with
/// drivers released before the 12.4 toolkit; rapids-cmake (NVIDIA) lists 550.54.14+ for those
/// modes on CUDA 12 and 525.60.13+ for `speed` (LZ4); ollama refuses its CUDA 12 build on
/// drivers before 550 for that reason. See `docs/driver-rules.md`.
pub const RULE_FATBIN_ZSTD: DriverRule = DriverRule {
    id: "fatbin-zstd",
    source: "https://docs.nvidia.com/cuda/cuda-compiler-driver-nvcc/index.html#compress-mode-default-size-speed-balance-none-compress-mode",
};

/// A compressed entry whose flags name no compression gpulibs knows (or both): no driver is
/// known to read it, so no driver is assumed to (the safe default; UNCONFIRMED either way).
pub const RULE_FATBIN_UNKNOWN: DriverRule = DriverRule {
    id: "fatbin-unknown-compression",
    source: "docs/driver-rules.md",
};

/// A driver JIT-compiles only PTX of an ISA its CUDA version knows (PTX ISA release history;
/// `CUDA_ERROR_UNSUPPORTED_PTX_VERSION` otherwise).
pub const RULE_PTX_ISA: DriverRule = DriverRule {
    id: "ptx-isa",
    source:
        "https://docs.nvidia.com/cuda/parallel-thread-execution/#release-notes-ptx-release-history",
};

/// What a driver must be to read a fatbin entry stored with a given compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionNeed {
    /// Any driver that runs the library's CUDA runtime: uncompressed entries, and LZ4, which
    /// every CUDA 11 and 12 `nvcc` writes by default (`speed`).
    AnyDriver,
    /// A driver whose CUDA version is at least `cuda`; its first Linux driver is `driver`.
    Driver {
        cuda: CudaVersion,
        driver: &'static str,
        rule: DriverRule,
    },
    /// No driver is known to read it ([`RULE_FATBIN_UNKNOWN`]).
    Unknown { rule: DriverRule },
}

impl CompressionNeed {
    /// The rule behind the need, if any.
    pub fn rule(&self) -> Option<DriverRule> {
        match self {
            CompressionNeed::AnyDriver => None,
            CompressionNeed::Driver { rule, .. } | CompressionNeed::Unknown { rule } => Some(*rule),
        }
    }
}

/// The driver an entry of compression `c` needs (see [`RULE_FATBIN_ZSTD`]).
pub fn compression_need(c: Compression) -> CompressionNeed {
    match c {
        Compression::None | Compression::Lz4 => CompressionNeed::AnyDriver,
        Compression::Zstd => CompressionNeed::Driver {
            cuda: CudaVersion::new(12, 4),
            driver: "550.54.14",
            rule: RULE_FATBIN_ZSTD,
        },
        Compression::Unknown => CompressionNeed::Unknown {
            rule: RULE_FATBIN_UNKNOWN,
        },
    }
}

/// Can a driver of maximum CUDA version `driver` read an entry of compression `c`? An unknown
/// driver (`None`) is assumed to: the verdict then only speaks about architectures, as for PTX.
pub fn driver_reads(c: Compression, driver: Option<CudaVersion>) -> bool {
    let Some(d) = driver else { return true };
    match compression_need(c) {
        CompressionNeed::AnyDriver => true,
        CompressionNeed::Driver { cuda, .. } => d >= cuda,
        CompressionNeed::Unknown { .. } => false,
    }
}

/// The oldest CUDA version whose driver JIT-compiles PTX of ISA `isa` (the inverse of
/// [`max_ptx_isa`]): 8.2 → 12.2, 8.7 → 12.8, 9.0 → 13.0. ISA 9.x beyond the table is credited
/// to CUDA 13.x as [`max_ptx_isa`] does; an ISA of a later major is `None`: no known driver.
pub fn min_cuda_for_ptx(isa: PtxIsa) -> Option<CudaVersion> {
    if isa.major == 9 {
        return Some(CudaVersion::new(13, isa.minor));
    }
    if isa < PtxIsa::new(6, 0) {
        return Some(CudaVersion::new(9, 0));
    }
    PTX_ISA_BY_CUDA
        .iter()
        .find(|(_, (maj, min))| PtxIsa::new(*maj, *min) >= isa)
        .map(|((maj, min), _)| CudaVersion::new(*maj, *min))
}

/// A fatbin entry with the compression it is stored with: what the driver rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StoredEntry {
    pub entry: KernelEntry,
    pub compression: Compression,
}

/// The entry the driver would choose, stored in a compression the driver cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    pub target: KernelTarget,
    pub compression: Compression,
}

/// Whether the entry `selection` chose (from `stored`) is stored in a compression the driver
/// cannot read. The driver then fails to load the container (`CUDA_ERROR_INVALID_IMAGE`, "device
/// kernel image is invalid" in ollama's reports); whether it would fall back to another entry is
/// UNCONFIRMED, so it is assumed not to (the safe default). When the same target is stored
/// twice, any unreadable copy counts.
pub fn unreadable_choice(
    stored: &[StoredEntry],
    selection: &Selection,
    driver: Option<CudaVersion>,
) -> Option<Unreadable> {
    let (target, isa) = match selection {
        Selection::Native { target } => (*target, None),
        Selection::Jit { target, ptx_isa } => (*target, Some(*ptx_isa)),
        Selection::None { .. } => return None,
    };
    stored
        .iter()
        .filter(|s| s.entry.target == target && (isa.is_none() || s.entry.ptx_isa == isa))
        .find(|s| !driver_reads(s.compression, driver))
        .map(|s| Unreadable {
            target,
            compression: s.compression,
        })
}

/// One entry of a fatbin container, as far as entry selection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KernelEntry {
    pub target: KernelTarget,
    /// The PTX ISA of a PTX entry; `None` for SASS.
    pub ptx_isa: Option<PtxIsa>,
}

/// What the driver does with one container on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Selection {
    /// A compatible cubin is loaded as is.
    Native { target: KernelTarget },
    /// No compatible cubin; this PTX is JIT-compiled.
    Jit {
        target: KernelTarget,
        ptx_isa: PtxIsa,
    },
    /// Nothing loads (`cudaErrorNoKernelImageForDevice`). `ptx_too_new` lists PTX entries that
    /// would run on the architecture but whose ISA the driver does not understand
    /// (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`, \[E2\]).
    None { ptx_too_new: Vec<KernelEntry> },
}

/// Orders compatible candidates: higher compute capability first, then `a` over `f` over plain.
fn candidate_order(a: &KernelTarget, b: &KernelTarget) -> Ordering {
    a.cc.cmp(&b.cc)
        .then(a.variant.preference().cmp(&b.variant.preference()))
}

/// The entry the driver would load from one container (facts §2 "Entry choice observed on CC
/// 9.0" \[E2\]): a compatible cubin beats any PTX; an `a` entry beats the plain one for the same CC;
/// the highest compatible PTX is used \[FB\]. Among compatible cubins of different minors
/// (sm_80 and sm_86 on 8.9) the highest minor ≤ the device is assumed: UNCONFIRMED.
/// Entry order in the container does not matter \[E2\], and the result does not depend on it.
pub fn select_entry(
    entries: &[KernelEntry],
    device: ComputeCapability,
    driver: Option<CudaVersion>,
) -> Selection {
    let best_sass = entries
        .iter()
        .filter(|e| e.target.kind == TargetKind::Sass && runs_on(e.target, device))
        .map(|e| e.target)
        .max_by(candidate_order);
    if let Some(target) = best_sass {
        return Selection::Native { target };
    }
    let mut best_ptx: Option<(KernelTarget, PtxIsa)> = None;
    let mut too_new = Vec::new();
    for e in entries {
        if e.target.kind != TargetKind::Ptx || !runs_on(e.target, device) {
            continue;
        }
        // A PTX entry without an ISA cannot come from the parser; treat it as the oldest ISA.
        let isa = e.ptx_isa.unwrap_or(PtxIsa::new(0, 0));
        if !driver_accepts_ptx(isa, driver) {
            if !too_new.contains(e) {
                too_new.push(*e);
            }
            continue;
        }
        let better = match best_ptx {
            None => true,
            Some((t, i)) => candidate_order(&e.target, &t).then(isa.cmp(&i)) == Ordering::Greater,
        };
        if better {
            best_ptx = Some((e.target, isa));
        }
    }
    match best_ptx {
        Some((target, ptx_isa)) => Selection::Jit { target, ptx_isa },
        None => {
            too_new.sort_by(|a, b| a.target.cmp(&b.target).then(a.ptx_isa.cmp(&b.ptx_isa)));
            Selection::None {
                ptx_too_new: too_new,
            }
        }
    }
}

/// Why a container with nothing for a device is not held against the library on that device.
///
/// A library is many containers (one per compiled source file: ORT 1.31.1's CUDA provider has
/// 609 \[E3\]), and not all of them are built for every target: 292 of that provider's containers
/// hold only `sm_90a`, 9 only `sm_120a`, and 91 start at `sm_80` where the rest start at `sm_75`.
/// The driver only fails when a kernel of such a container is launched
/// (`cudaErrorNoKernelImageForDevice` at launch, \[ORT26181\]), so a library that picks its kernels
/// by GPU at run time works everywhere its other containers load. When at least one container
/// of the library loads on the device, a container that loads nothing there was built, by the
/// library's own build rules, for other GPUs only, and is skipped; the shapes below say how.
/// PTX meant for the device that the driver is too old to compile is never skipped: that is a
/// real failure (see [`ContainerTally::add`]). When no container loads, nothing is skipped and
/// the verdict is `no kernel image` (see [`library_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Every entry is `a` or `f`: code that runs on one CC (or one family) only, so the library
    /// must already choose it by GPU.
    ArchSpecific,
    /// Every entry targets a CC above the device: kernels for newer GPUs only (bf16 or
    /// tensor-core paths from sm_80 up, say), which the library must not launch on older ones.
    NewerGpusOnly,
    /// A one-entry container in a library that ships one container per target (several
    /// different targets among its one-entry containers): the library loads the variant for the
    /// GPU itself. cuFFT 11.4 (CUDA 12) keeps 24,453 such containers in `.ldata`, each with a
    /// single `sm_XY`, `compute_XY` or kind-8 entry (measured here on the wheel).
    PerTargetVariant,
    /// Every entry is for another architecture: older ones only (`{sm_80, sm_86}` on 9.0), or
    /// older and newer ones that leave this one out (`{sm_89, sm_120f, compute_120}` on 9.0 in
    /// cuBLASLt 13.1, `{sm_80, sm_100f}` in cuDNN 9.28: both measured on the wheels and run on an
    /// H100, see docs/gpu-runs.md). A range that jumps over an architecture was cut that way on
    /// purpose: the library has other kernels for it.
    OtherArchitectures,
}

/// Whether a container that loads nothing on `device` is skipped (see [`Skip`]). This is a
/// heuristic about how the library dispatches its kernels, which the binary cannot show: a
/// library that launched such kernels anyway would fail at that launch.
/// `per_target_variants` says whether the library ships one container per target
/// (see [`has_per_target_variants`]).
pub fn skip_reason(
    entries: &[KernelEntry],
    device: ComputeCapability,
    per_target_variants: bool,
) -> Option<Skip> {
    if entries.is_empty() {
        return None;
    }
    if entries.iter().all(|e| e.target.variant != Variant::Generic) {
        return Some(Skip::ArchSpecific);
    }
    if entries.iter().all(|e| e.target.cc > device) {
        return Some(Skip::NewerGpusOnly);
    }
    if per_target_variants && entries.len() == 1 {
        return Some(Skip::PerTargetVariant);
    }
    // Nothing here runs on the device, or `select_entry` would have chosen it: every cubin is of
    // another major or a newer minor, and every PTX is for a newer CC.
    let runnable = entries.iter().any(|e| runs_on(e.target, device));
    (!runnable).then_some(Skip::OtherArchitectures)
}

/// Whether a library's one-entry containers carry at least two different targets, the layout of
/// libraries that keep one container per target and choose among them (see
/// [`Skip::PerTargetVariant`]). A library built for one target only has one-entry containers
/// too, but all for the same target, and so does not count.
pub fn has_per_target_variants<'a>(
    containers: impl IntoIterator<Item = &'a [KernelEntry]>,
) -> bool {
    let mut first: Option<KernelTarget> = None;
    for c in containers {
        if let [only] = c {
            match first {
                None => first = Some(only.target),
                Some(t) if t != only.target => return true,
                Some(_) => {}
            }
        }
    }
    false
}

/// Per-container outcomes on one device, summed over a library.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerTally {
    /// Containers that load a cubin.
    pub native: usize,
    /// Containers that load only through PTX JIT.
    pub jit: usize,
    /// Containers with nothing for the device that are not skipped.
    pub failing: usize,
    /// Of `failing`, those with PTX for the architecture whose ISA the driver is too old for.
    pub failing_ptx_too_new: usize,
    /// Containers skipped as [`Skip::ArchSpecific`].
    pub skipped_arch_specific: usize,
    /// Containers skipped as [`Skip::NewerGpusOnly`].
    pub skipped_newer_only: usize,
    /// Containers skipped as [`Skip::PerTargetVariant`].
    pub skipped_per_target_variant: usize,
    /// Containers skipped as [`Skip::OtherArchitectures`].
    pub skipped_other_architectures: usize,
    /// Of `failing`, those whose chosen entry is stored in a compression this driver cannot
    /// read ([`unreadable_choice`], [`RULE_FATBIN_ZSTD`]).
    #[serde(default)]
    pub failing_compression: usize,
    /// The compression that makes them fail (`unknown` wins over `zstd`, as no driver helps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable_compression: Option<Compression>,
    /// The lowest PTX ISA among the PTX too new for this driver (what the driver would need
    /// to compile, [`RULE_PTX_ISA`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptx_too_new_isa: Option<PtxIsa>,
    /// Whether the library has the per-target layout; set by [`ContainerTally::for_library`].
    #[serde(skip)]
    per_target_variants: bool,
}

impl ContainerTally {
    /// An empty tally for a library; `per_target_variants` from [`has_per_target_variants`].
    pub fn for_library(per_target_variants: bool) -> Self {
        Self {
            per_target_variants,
            ..Self::default()
        }
    }

    /// Adds `count` containers holding `entries`, whose selection on `device` is `selection`.
    pub fn add(
        &mut self,
        entries: &[KernelEntry],
        selection: &Selection,
        device: ComputeCapability,
        count: usize,
    ) {
        match selection {
            Selection::Native { .. } => self.native += count,
            Selection::Jit { .. } => self.jit += count,
            Selection::None { ptx_too_new } => {
                if let Some(lowest) = ptx_too_new.iter().filter_map(|e| e.ptx_isa).min() {
                    self.ptx_too_new_isa =
                        Some(self.ptx_too_new_isa.map_or(lowest, |i| i.min(lowest)));
                }
                match skip_reason(entries, device, self.per_target_variants) {
                    // PTX the driver is too old for is a real failure even in a narrow container.
                    Some(_) if !ptx_too_new.is_empty() => {
                        self.failing += count;
                        self.failing_ptx_too_new += count;
                    }
                    Some(Skip::ArchSpecific) => self.skipped_arch_specific += count,
                    Some(Skip::NewerGpusOnly) => self.skipped_newer_only += count,
                    Some(Skip::PerTargetVariant) => self.skipped_per_target_variant += count,
                    Some(Skip::OtherArchitectures) => self.skipped_other_architectures += count,
                    None => {
                        self.failing += count;
                        if !ptx_too_new.is_empty() {
                            self.failing_ptx_too_new += count;
                        }
                    }
                }
            }
        }
    }

    /// Adds `count` containers whose chosen entry the driver cannot read (see
    /// [`unreadable_choice`]): they fail whatever their layout, like PTX that is too new.
    pub fn add_unreadable(&mut self, unreadable: &Unreadable, count: usize) {
        self.failing += count;
        self.failing_compression += count;
        let worse = match self.unreadable_compression {
            Some(Compression::Unknown) => Compression::Unknown,
            _ => unreadable.compression,
        };
        self.unreadable_compression = Some(worse);
    }

    /// Containers holding SASS or PTX.
    pub fn total(&self) -> usize {
        self.native + self.jit + self.failing + self.skipped()
    }

    /// Containers left out of the verdict because they are for other GPUs (see [`Skip`]).
    pub fn skipped(&self) -> usize {
        self.skipped_arch_specific
            + self.skipped_newer_only
            + self.skipped_per_target_variant
            + self.skipped_other_architectures
    }
}

/// What a whole library means for one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Every container that is not skipped (see [`Skip`]) has a cubin for the device.
    Native,
    /// Every container that is not skipped loads, `containers` of them only through PTX JIT
    /// compilation (the first start is slow until the JIT cache is warm).
    Jit { containers: usize },
    /// `containers` containers have nothing the device can load (all of them when none loads,
    /// skipped ones included: a library with no kernel for the GPU cannot work there).
    /// `needed_targets` names what would make them load; `ptx_needs_newer_driver` counts failing
    /// containers that have PTX for the architecture which this driver's PTX ISA is too old for.
    NoKernelImage {
        containers: usize,
        needed_targets: Vec<String>,
        ptx_needs_newer_driver: usize,
    },
    /// Kernels for the GPU are there, but `containers` containers store the entry the driver
    /// would load in a compression this driver cannot read (`compression`): they need a driver
    /// of CUDA `needs_cuda` or newer (first Linux driver `needs_driver`), by rule `rule`
    /// (`docs/driver-rules.md`, `source`). Both `None` for a compression no driver is known to
    /// read.
    DriverCannotLoad {
        containers: usize,
        compression: Compression,
        needs_cuda: Option<CudaVersion>,
        needs_driver: Option<String>,
        rule: String,
        source: String,
    },
    /// The file holds no SASS or PTX at all.
    NoCudaCode,
}

impl Verdict {
    /// The short words used in summaries: `native`, `jit`, `no kernel image`, `no CUDA code`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Native => "native",
            Verdict::Jit { .. } => "jit",
            Verdict::NoKernelImage { .. } => "no kernel image",
            Verdict::DriverCannotLoad { .. } => "driver cannot load",
            Verdict::NoCudaCode => "no CUDA code",
        }
    }

    /// A sentence a person can act on.
    pub fn describe(&self, tally: &ContainerTally, device: ComputeCapability) -> String {
        let total = tally.total();
        let sm = device.sm_name();
        let mut s = match self {
            Verdict::Native => format!(
                "native: {} of {total} container(s) have SASS for {sm}",
                tally.native
            ),
            Verdict::Jit { containers } => format!(
                "jit: {containers} of {total} container(s) have no SASS for {sm} and will be \
                 compiled from PTX by the driver; the first start will be slow"
            ),
            Verdict::NoKernelImage {
                containers,
                needed_targets,
                ptx_needs_newer_driver,
            } => {
                let mut s = format!(
                    "no kernel image: {containers} of {total} container(s) have nothing {sm} \
                     can load; they would need {}",
                    needed_targets.join(" or ")
                );
                if *ptx_needs_newer_driver > 0 {
                    s.push_str(&format!(
                        "; {ptx_needs_newer_driver} of them carry PTX this driver is too old \
                         to compile (a newer driver would JIT it"
                    ));
                    if let Some(isa) = tally.ptx_too_new_isa {
                        match min_cuda_for_ptx(isa) {
                            Some(c) => s.push_str(&format!(
                                ": PTX ISA {isa} needs a driver of CUDA {c} or newer"
                            )),
                            None => {
                                s.push_str(&format!(": no known driver compiles PTX ISA {isa}"))
                            }
                        }
                        s.push_str(&format!(
                            ", rule {} ({})",
                            RULE_PTX_ISA.id, RULE_PTX_ISA.source
                        ));
                    }
                    s.push(')');
                }
                s
            }
            Verdict::DriverCannotLoad {
                containers,
                compression,
                needs_cuda,
                needs_driver,
                rule,
                source,
            } => {
                let mut s = match (needs_cuda, needs_driver) {
                    (Some(c), Some(d)) => format!(
                        "cannot load on this driver: {containers} of {total} container(s) store \
                         the kernels for {sm} {}-compressed, which drivers before CUDA {c} \
                         (R{}, {d}) cannot read; update the driver to {d} or newer, or use a \
                         build whose kernels are LZ4-compressed or uncompressed",
                        compression.name(),
                        d.split('.').next().unwrap_or(d),
                    ),
                    _ => format!(
                        "cannot load on this driver: {containers} of {total} container(s) store \
                         the kernels for {sm} with a compression no driver is known to read"
                    ),
                };
                s.push_str(&format!(" (rule {rule}: {source})"));
                let other = tally.failing.saturating_sub(*containers);
                if other > 0 {
                    s.push_str(&format!(
                        "; {other} more container(s) have nothing {sm} can load"
                    ));
                }
                s
            }
            Verdict::NoCudaCode => return "no CUDA code: the file holds no CUDA kernels".into(),
        };
        let loads = tally.native + tally.jit > 0;
        if loads && tally.skipped_arch_specific > 0 {
            s.push_str(&format!(
                "; {} container(s) hold only arch-specific code for other GPUs and are not \
                 counted",
                tally.skipped_arch_specific
            ));
        }
        if loads && tally.skipped_per_target_variant > 0 {
            s.push_str(&format!(
                "; {} one-target container(s) are variants for other GPUs (the library picks \
                 its variant at run time) and are not counted",
                tally.skipped_per_target_variant
            ));
        }
        if loads && tally.skipped_newer_only > 0 {
            s.push_str(&format!(
                "; {} container(s) hold kernels only for newer GPUs and are not counted",
                tally.skipped_newer_only
            ));
        }
        if loads && tally.skipped_other_architectures > 0 {
            s.push_str(&format!(
                "; {} container(s) hold kernels only for other architectures and are not \
                 counted: the library is expected to use other kernels on {sm}, and would fail \
                 with \"no kernel image\" if it launched one of these",
                tally.skipped_other_architectures
            ));
        }
        s
    }
}

/// What would let a failing container load on `device`: a cubin for its exact CC (plain, or with
/// `a`), or PTX for any CC up to it.
pub fn needed_targets(device: ComputeCapability) -> Vec<String> {
    let n = device.number();
    vec![
        format!("sm_{n}"),
        format!("sm_{n}a"),
        format!("compute_{n} (or older PTX)"),
    ]
}

/// The library verdict from its containers' tally on `device`.
pub fn library_verdict(tally: &ContainerTally, device: ComputeCapability) -> Verdict {
    if tally.total() == 0 {
        return Verdict::NoCudaCode;
    }
    if tally.failing_compression > 0 {
        let compression = tally.unreadable_compression.unwrap_or(Compression::Unknown);
        let need = compression_need(compression);
        let (needs_cuda, needs_driver) = match need {
            CompressionNeed::Driver { cuda, driver, .. } => (Some(cuda), Some(driver.to_string())),
            _ => (None, None),
        };
        let rule = need.rule().unwrap_or(RULE_FATBIN_UNKNOWN);
        return Verdict::DriverCannotLoad {
            containers: tally.failing_compression,
            compression,
            needs_cuda,
            needs_driver,
            rule: rule.id.to_string(),
            source: rule.source.to_string(),
        };
    }
    let loads = tally.native + tally.jit;
    if loads == 0 {
        return Verdict::NoKernelImage {
            containers: tally.total(),
            needed_targets: needed_targets(device),
            ptx_needs_newer_driver: tally.failing_ptx_too_new,
        };
    }
    if tally.failing > 0 {
        Verdict::NoKernelImage {
            containers: tally.failing,
            needed_targets: needed_targets(device),
            ptx_needs_newer_driver: tally.failing_ptx_too_new,
        }
    } else if tally.jit > 0 {
        Verdict::Jit {
            containers: tally.jit,
        }
    } else {
        Verdict::Native
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(s: &str) -> ComputeCapability {
        s.parse().unwrap()
    }

    /// Parses `sm_90a`, `compute_100f`, ... for the tables below.
    fn t(name: &str) -> KernelTarget {
        let (kind, rest) = if let Some(r) = name.strip_prefix("sm_") {
            (TargetKind::Sass, r)
        } else {
            (TargetKind::Ptx, name.strip_prefix("compute_").unwrap())
        };
        let (digits, variant) = match rest.as_bytes().last() {
            Some(b'a') => (&rest[..rest.len() - 1], Variant::ArchSpecific),
            Some(b'f') => (&rest[..rest.len() - 1], Variant::FamilySpecific),
            _ => (rest, Variant::Generic),
        };
        KernelTarget::new(
            kind,
            ComputeCapability::from_number(digits.parse().unwrap()),
            variant,
        )
    }

    #[test]
    fn target_names_round_trip() {
        for name in [
            "sm_50",
            "sm_90a",
            "sm_100f",
            "compute_90",
            "compute_120a",
            "sm_121f",
        ] {
            assert_eq!(t(name).name(), name);
        }
    }

    const DEVICES: [&str; 20] = [
        "5.0", "5.2", "5.3", "6.0", "6.1", "6.2", "7.0", "7.2", "7.5", "8.0", "8.6", "8.7", "8.8",
        "8.9", "9.0", "10.0", "10.3", "11.0", "12.0", "12.1",
    ];

    /// For each target, the devices (from `DEVICES`, sm_50..sm_121) it runs on; every other device
    /// in `DEVICES` must refuse it. Written out by hand from facts §2, not computed.
    #[test]
    fn architecture_rules_table() {
        let table: &[(&str, &[&str])] = &[
            ("sm_50", &["5.0", "5.2", "5.3"]),
            ("sm_52", &["5.2", "5.3"]),
            ("sm_53", &["5.3"]),
            ("sm_60", &["6.0", "6.1", "6.2"]),
            ("sm_61", &["6.1", "6.2"]),
            ("sm_62", &["6.2"]),
            ("sm_70", &["7.0", "7.2", "7.5"]),
            ("sm_72", &["7.2", "7.5"]),
            ("sm_75", &["7.5"]),
            ("sm_80", &["8.0", "8.6", "8.7", "8.8", "8.9"]),
            ("sm_86", &["8.6", "8.7", "8.8", "8.9"]),
            ("sm_87", &["8.7", "8.8", "8.9"]),
            ("sm_88", &["8.8", "8.9"]),
            ("sm_89", &["8.9"]),
            ("sm_90", &["9.0"]),
            ("sm_90a", &["9.0"]),
            ("sm_100", &["10.0", "10.3"]),
            ("sm_100a", &["10.0"]),
            ("sm_100f", &["10.0", "10.3"]),
            ("sm_103", &["10.3"]),
            ("sm_103a", &["10.3"]),
            ("sm_103f", &["10.3"]),
            ("sm_110", &["11.0"]),
            ("sm_110f", &["11.0"]),
            ("sm_120", &["12.0", "12.1"]),
            ("sm_120a", &["12.0"]),
            ("sm_120f", &["12.0", "12.1"]),
            ("sm_121", &["12.1"]),
            ("sm_121a", &["12.1"]),
            ("sm_121f", &["12.1"]),
            (
                "compute_50",
                &[
                    "5.0", "5.2", "5.3", "6.0", "6.1", "6.2", "7.0", "7.2", "7.5", "8.0", "8.6",
                    "8.7", "8.8", "8.9", "9.0", "10.0", "10.3", "11.0", "12.0", "12.1",
                ],
            ),
            (
                "compute_75",
                &[
                    "7.5", "8.0", "8.6", "8.7", "8.8", "8.9", "9.0", "10.0", "10.3", "11.0",
                    "12.0", "12.1",
                ],
            ),
            (
                "compute_86",
                &[
                    "8.6", "8.7", "8.8", "8.9", "9.0", "10.0", "10.3", "11.0", "12.0", "12.1",
                ],
            ),
            (
                "compute_90",
                &["9.0", "10.0", "10.3", "11.0", "12.0", "12.1"],
            ),
            ("compute_90a", &["9.0"]),
            ("compute_100", &["10.0", "10.3", "11.0", "12.0", "12.1"]),
            ("compute_100a", &["10.0"]),
            ("compute_100f", &["10.0", "10.3"]),
            ("compute_110", &["11.0", "12.0", "12.1"]),
            ("compute_120", &["12.0", "12.1"]),
            ("compute_120a", &["12.0"]),
            ("compute_120f", &["12.0", "12.1"]),
            ("compute_121", &["12.1"]),
        ];
        for (target, runs) in table {
            for dev in DEVICES {
                let want = runs.contains(&dev);
                assert_eq!(
                    runs_on(t(target), cc(dev)),
                    want,
                    "{target} on {dev}: expected {}",
                    if want { "runs" } else { "refused" }
                );
            }
        }
    }

    #[test]
    fn ptx_isa_per_driver() {
        let table = [
            ("11.0", (7, 0)),
            ("11.8", (7, 8)),
            ("12.0", (8, 0)),
            ("12.2", (8, 2)),
            ("12.5", (8, 5)),
            ("12.6", (8, 5)),
            ("12.8", (8, 7)),
            ("12.9", (8, 8)),
            ("13.0", (9, 0)),
            ("13.1", (9, 1)),
            ("13.2", (9, 2)),
            ("14.0", (9, 1)),
            ("8.0", (5, 0)),
        ];
        for (drv, (maj, min)) in table {
            assert_eq!(
                max_ptx_isa(drv.parse().unwrap()),
                PtxIsa::new(maj, min),
                "driver {drv}"
            );
        }
        // Driver 13.0 accepts PTX 8.8 and 9.0 and rejects 9.1 and 9.2 ([E2]).
        let d13 = Some(CudaVersion::new(13, 0));
        assert!(driver_accepts_ptx(PtxIsa::new(8, 8), d13));
        assert!(driver_accepts_ptx(PtxIsa::new(9, 0), d13));
        assert!(!driver_accepts_ptx(PtxIsa::new(9, 1), d13));
        assert!(!driver_accepts_ptx(PtxIsa::new(9, 2), d13));
        assert!(driver_accepts_ptx(PtxIsa::new(9, 2), None));
    }

    fn sass(name: &str) -> KernelEntry {
        KernelEntry {
            target: t(name),
            ptx_isa: None,
        }
    }

    fn ptx(name: &str, isa: (u32, u32)) -> KernelEntry {
        KernelEntry {
            target: t(name),
            ptx_isa: Some(PtxIsa::new(isa.0, isa.1)),
        }
    }

    fn chosen(entries: &[KernelEntry], dev: &str, driver: Option<&str>) -> Option<String> {
        let driver = driver.map(|d| d.parse().unwrap());
        match select_entry(entries, cc(dev), driver) {
            Selection::Native { target } | Selection::Jit { target, .. } => Some(target.name()),
            Selection::None { .. } => None,
        }
    }

    /// facts §2 "Entry choice observed on CC 9.0" \[E2\], in both entry orders, plus cases beyond it.
    #[test]
    fn entry_selection_table() {
        let d = Some("13.0");
        // (entries, device, driver, entry expected to load)
        type Case<'a> = (&'a [KernelEntry], &'a str, Option<&'a str>, Option<&'a str>);
        let cases: &[Case] = &[
            (
                &[sass("sm_90"), ptx("compute_90", (9, 0))],
                "9.0",
                d,
                Some("sm_90"),
            ),
            (&[sass("sm_90"), sass("sm_90a")], "9.0", d, Some("sm_90a")),
            (
                &[sass("sm_90a"), ptx("compute_90", (9, 0))],
                "9.0",
                d,
                Some("sm_90a"),
            ),
            (
                &[ptx("compute_80", (9, 0)), ptx("compute_90", (9, 0))],
                "9.0",
                d,
                Some("compute_90"),
            ),
            (
                &[ptx("compute_90", (9, 0)), ptx("compute_90a", (9, 0))],
                "9.0",
                d,
                Some("compute_90a"),
            ),
            (
                &[sass("sm_80"), ptx("compute_80", (9, 0))],
                "9.0",
                d,
                Some("compute_80"),
            ),
            // Highest compatible minor (UNCONFIRMED rule).
            (&[sass("sm_80"), sass("sm_86")], "8.9", d, Some("sm_86")),
            (&[sass("sm_86"), sass("sm_80")], "8.6", d, Some("sm_86")),
            (&[sass("sm_86"), sass("sm_80")], "8.0", d, Some("sm_80")),
            // `a` only on its exact CC; falls back to PTX elsewhere.
            (
                &[sass("sm_90a"), ptx("compute_90", (8, 2))],
                "12.0",
                d,
                Some("compute_90"),
            ),
            (&[sass("sm_120a")], "12.1", d, None),
            (&[sass("sm_120f")], "12.1", d, Some("sm_120f")),
            (
                &[sass("sm_100f"), sass("sm_103")],
                "10.3",
                d,
                Some("sm_103"),
            ),
            // PTX ISA too new for the driver.
            (&[ptx("compute_90", (9, 1))], "9.0", d, None),
            (
                &[ptx("compute_90", (9, 1))],
                "9.0",
                Some("13.1"),
                Some("compute_90"),
            ),
            (
                &[ptx("compute_90", (9, 1))],
                "9.0",
                None,
                Some("compute_90"),
            ),
            (
                &[ptx("compute_80", (8, 0)), ptx("compute_90", (9, 1))],
                "9.0",
                d,
                Some("compute_80"),
            ),
            (&[ptx("compute_90", (8, 2))], "8.9", d, None),
            (&[sass("sm_75"), sass("sm_86")], "5.2", d, None),
            (&[], "9.0", d, None),
        ];
        for (i, (entries, dev, driver, want)) in cases.iter().enumerate() {
            let got = chosen(entries, dev, *driver);
            assert_eq!(got.as_deref(), *want, "case {i} on {dev}");
            let mut rev = entries.to_vec();
            rev.reverse();
            assert_eq!(chosen(&rev, dev, *driver), got, "case {i} reversed");
        }
    }

    /// Tallies containers given as lists of entries, as `FileReport` does.
    fn verdict_of(containers: &[&[KernelEntry]], dev: &str) -> (Verdict, ContainerTally) {
        let dev = cc(dev);
        let mut tally =
            ContainerTally::for_library(has_per_target_variants(containers.iter().copied()));
        for c in containers {
            let s = select_entry(c, dev, Some(CudaVersion::new(13, 0)));
            tally.add(c, &s, dev, 1);
        }
        (library_verdict(&tally, dev), tally)
    }

    #[test]
    fn ptx_too_new_is_reported() {
        let (v, tally) = verdict_of(&[&[ptx("compute_90", (9, 2))]], "9.0");
        assert_eq!(tally.failing_ptx_too_new, 1);
        match v {
            Verdict::NoKernelImage {
                containers,
                ptx_needs_newer_driver,
                ..
            } => assert_eq!((containers, ptx_needs_newer_driver), (1, 1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn library_verdicts() {
        let full: &[KernelEntry] = &[sass("sm_80"), sass("sm_90a"), sass("sm_120a")];
        let with_ptx: &[KernelEntry] = &[sass("sm_80"), ptx("compute_90", (8, 2))];
        let sm80: &[KernelEntry] = &[sass("sm_80")];
        let hopper_only: &[KernelEntry] = &[sass("sm_90a")];
        let newer_only: &[KernelEntry] = &[sass("sm_86"), sass("sm_90")];

        assert_eq!(verdict_of(&[], "9.0").0, Verdict::NoCudaCode);
        assert_eq!(verdict_of(&[full, full], "9.0").0, Verdict::Native);
        // sm_120a loads natively; the other two containers JIT their compute_90.
        assert_eq!(
            verdict_of(&[full, with_ptx, with_ptx], "12.0").0,
            Verdict::Jit { containers: 2 }
        );
        // An sm_80-only container on 9.0, where other containers load, holds kernels for other
        // architectures (cuBLASLt and cuDNN ship such containers and run on an H100): it is
        // skipped, and the message says what would happen if it were launched anyway.
        let (v, t) = verdict_of(&[full, sm80], "9.0");
        assert_eq!(v, Verdict::Native);
        assert_eq!(t.skipped_other_architectures, 1);
        assert!(v
            .describe(&t, cc("9.0"))
            .contains("only for other architectures"));
        // The same container alone is a library without kernels for 9.0.
        let (v, _) = verdict_of(&[sm80], "9.0");
        assert_eq!(
            v,
            Verdict::NoKernelImage {
                containers: 1,
                needed_targets: vec![
                    "sm_90".into(),
                    "sm_90a".into(),
                    "compute_90 (or older PTX)".into()
                ],
                ptx_needs_newer_driver: 0
            }
        );
        assert!(v.describe(&t, cc("9.0")).contains("1 of 2"));
        // Arch-specific and newer-only containers are skipped where others load…
        let (v, t) = verdict_of(&[full, hopper_only, newer_only], "8.0");
        assert_eq!(v, Verdict::Native);
        assert_eq!((t.skipped_arch_specific, t.skipped_newer_only), (1, 1));
        assert!(v.describe(&t, cc("8.0")).contains("not counted"));
        // …but not when nothing loads.
        let (v, _) = verdict_of(&[hopper_only, newer_only], "8.0");
        assert!(
            matches!(v, Verdict::NoKernelImage { containers: 2, .. }),
            "{v:?}"
        );
        // On 10.0, `full` (sm_80, sm_90a, sm_120a) jumps over the architecture while the other
        // containers JIT: it is skipped as other-architecture code.
        let (v, t) = verdict_of(&[full, with_ptx, with_ptx], "10.0");
        assert_eq!(v, Verdict::Jit { containers: 2 });
        assert_eq!((t.jit, t.skipped_other_architectures), (2, 1));
        // PTX the driver cannot compile stays a failure even where other containers load.
        let too_new: &[KernelEntry] = &[sass("sm_80"), ptx("compute_90", (9, 5))];
        let (v, t) = verdict_of(&[full, too_new], "9.0");
        assert!(
            matches!(
                v,
                Verdict::NoKernelImage {
                    containers: 1,
                    ptx_needs_newer_driver: 1,
                    ..
                }
            ),
            "{v:?}"
        );
        assert_eq!(t.failing_ptx_too_new, 1);
        let (v, t) = verdict_of(&[with_ptx, with_ptx], "12.0");
        assert_eq!(v, Verdict::Jit { containers: 2 });
        assert!(v
            .describe(&t, cc("12.0"))
            .contains("first start will be slow"));
        assert_eq!(Verdict::Jit { containers: 2 }.label(), "jit");
    }

    /// Which driver (by its CUDA version) reads which compression: rule `fatbin-zstd`
    /// (docs/driver-rules.md). R535 = 12.2, R545 = 12.3, R550 = 12.4, R570 = 12.8, R580 = 13.0.
    #[test]
    fn compression_rules_table() {
        use Compression::*;
        let drivers = ["11.8", "12.2", "12.3", "12.4", "12.8", "13.0"];
        // (compression, per driver above: reads?)
        let table: &[(Compression, [bool; 6])] = &[
            (None, [true; 6]),
            (Lz4, [true; 6]),
            (Zstd, [false, false, false, true, true, true]),
            (Unknown, [false; 6]),
        ];
        for (c, reads) in table {
            for (d, want) in drivers.iter().zip(reads) {
                assert_eq!(
                    driver_reads(*c, Some(d.parse().unwrap())),
                    *want,
                    "{c:?} on a CUDA {d} driver"
                );
            }
            // An unknown driver is not held against anything.
            assert!(driver_reads(*c, Option::None));
        }
        match compression_need(Zstd) {
            CompressionNeed::Driver { cuda, driver, rule } => {
                assert_eq!(
                    (cuda, driver, rule.id),
                    (CudaVersion::new(12, 4), "550.54.14", "fatbin-zstd")
                );
                assert!(rule.source.starts_with("https://docs.nvidia.com/"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(compression_need(Lz4), CompressionNeed::AnyDriver);
        assert_eq!(
            compression_need(Unknown).rule().map(|r| r.id),
            Some("fatbin-unknown-compression")
        );
    }

    /// PTX ISA → the oldest CUDA whose driver JITs it (PTX ISA release history, facts §2).
    #[test]
    fn ptx_isa_needs_driver_table() {
        let table = [
            ((5, 0), Some("9.0")),
            ((7, 0), Some("11.0")),
            ((7, 8), Some("11.8")),
            ((8, 0), Some("12.0")),
            ((8, 2), Some("12.2")),
            ((8, 5), Some("12.5")),
            ((8, 6), Some("12.7")),
            ((8, 7), Some("12.8")),
            ((8, 8), Some("12.9")),
            ((9, 0), Some("13.0")),
            ((9, 1), Some("13.1")),
            ((9, 4), Some("13.4")),
            // No toolkit wrote ISA 8.9; by ISA order the first driver above it is 13.0's,
            // consistent with `driver_accepts_ptx`.
            ((8, 9), Some("13.0")),
            ((10, 0), Option::None),
        ];
        for ((maj, min), want) in table {
            let isa = PtxIsa::new(maj, min);
            assert_eq!(
                min_cuda_for_ptx(isa).map(|c| c.to_string()),
                want.map(String::from),
                "ISA {isa}"
            );
            // Consistent with the forward rule: that driver accepts it, the one before does not.
            if let Some(c) = min_cuda_for_ptx(isa) {
                assert!(driver_accepts_ptx(isa, Some(c)), "ISA {isa} on {c}");
            }
        }
        // ollama's rule: a CUDA 12.8 build's PTX (ISA 8.7) needs R570; R565 (12.7 at most) fails.
        assert!(!driver_accepts_ptx(
            PtxIsa::new(8, 7),
            Some(CudaVersion::new(12, 6))
        ));
        assert!(driver_accepts_ptx(
            PtxIsa::new(8, 7),
            Some(CudaVersion::new(12, 8))
        ));
    }

    fn stored(e: KernelEntry, c: Compression) -> StoredEntry {
        StoredEntry {
            entry: e,
            compression: c,
        }
    }

    /// The chosen entry, not any entry, decides whether the driver can read a container.
    #[test]
    fn unreadable_choice_looks_at_the_chosen_entry() {
        let d122 = Some(CudaVersion::new(12, 2));
        let d124 = Some(CudaVersion::new(12, 4));
        let c: &[StoredEntry] = &[
            stored(sass("sm_86"), Compression::Zstd),
            stored(sass("sm_75"), Compression::Lz4),
            stored(ptx("compute_75", (8, 2)), Compression::Lz4),
        ];
        let entries: Vec<KernelEntry> = c.iter().map(|s| s.entry).collect();
        // 8.6 picks sm_86, stored zstd: unreadable on 12.2, fine on 12.4.
        let s86 = select_entry(&entries, cc("8.6"), d122);
        assert_eq!(
            unreadable_choice(c, &s86, d122),
            Some(Unreadable {
                target: t("sm_86"),
                compression: Compression::Zstd
            })
        );
        assert_eq!(unreadable_choice(c, &s86, d124), Option::None);
        assert_eq!(unreadable_choice(c, &s86, Option::None), Option::None);
        // 7.5 picks sm_75 (LZ4): readable on 12.2 though the container also holds zstd.
        let s75 = select_entry(&entries, cc("7.5"), d122);
        assert_eq!(unreadable_choice(c, &s75, d122), Option::None);
        // Nothing chosen: nothing to read.
        let s52 = select_entry(&entries, cc("5.2"), d122);
        assert_eq!(unreadable_choice(c, &s52, d122), Option::None);
        // JIT of zstd PTX.
        let p: &[StoredEntry] = &[stored(ptx("compute_80", (8, 2)), Compression::Zstd)];
        let e: Vec<KernelEntry> = p.iter().map(|s| s.entry).collect();
        let s = select_entry(&e, cc("8.6"), d122);
        assert!(matches!(s, Selection::Jit { .. }));
        assert!(unreadable_choice(p, &s, d122).is_some());
    }

    /// A library whose chosen kernels are zstd on a CUDA 12.2 driver: `driver cannot load`,
    /// naming the rule, the driver it needs, and other failures besides.
    #[test]
    fn driver_cannot_load_verdict() {
        let dev = cc("8.6");
        let d122 = Some(CudaVersion::new(12, 2));
        let zstd: &[StoredEntry] = &[stored(sass("sm_86"), Compression::Zstd)];
        let lz4: &[StoredEntry] = &[stored(sass("sm_86"), Compression::Lz4)];
        let tally_of = |sets: &[&[StoredEntry]], driver: Option<CudaVersion>| {
            let mut tally = ContainerTally::for_library(false);
            for set in sets {
                let e: Vec<KernelEntry> = set.iter().map(|s| s.entry).collect();
                let sel = select_entry(&e, dev, driver);
                match unreadable_choice(set, &sel, driver) {
                    Some(u) => tally.add_unreadable(&u, 1),
                    Option::None => tally.add(&e, &sel, dev, 1),
                }
            }
            tally
        };
        let t = tally_of(&[zstd, zstd, lz4], d122);
        let v = library_verdict(&t, dev);
        assert_eq!(
            v,
            Verdict::DriverCannotLoad {
                containers: 2,
                compression: Compression::Zstd,
                needs_cuda: Some(CudaVersion::new(12, 4)),
                needs_driver: Some("550.54.14".into()),
                rule: "fatbin-zstd".into(),
                source: RULE_FATBIN_ZSTD.source.into(),
            }
        );
        assert_eq!(v.label(), "driver cannot load");
        let msg = v.describe(&t, dev);
        for want in [
            "cannot load on this driver",
            "zstd-compressed",
            "CUDA 12.4",
            "R550",
            "550.54.14",
            "rule fatbin-zstd",
            "docs.nvidia.com",
        ] {
            assert!(msg.contains(want), "{want:?} not in {msg}");
        }
        // The same library on R550 (12.4) loads natively.
        assert_eq!(
            library_verdict(
                &tally_of(&[zstd, zstd, lz4], Some(CudaVersion::new(12, 4))),
                dev
            ),
            Verdict::Native
        );
        // Unknown compression: refused, no driver named.
        let unk: &[StoredEntry] = &[stored(sass("sm_86"), Compression::Unknown)];
        let t = tally_of(&[unk], Some(CudaVersion::new(13, 0)));
        let v = library_verdict(&t, dev);
        assert!(matches!(
            &v,
            Verdict::DriverCannotLoad { needs_cuda: Option::None, rule, .. } if rule == "fatbin-unknown-compression"
        ));
        assert!(v.describe(&t, dev).contains("no driver is known to read"));
    }

    /// PTX too new for the driver: the message names the ISA, the CUDA it needs and the rule.
    #[test]
    fn ptx_too_new_message_names_the_driver_it_needs() {
        let (v, t) = verdict_of(&[&[sass("sm_75"), ptx("compute_90", (9, 1))]], "9.0");
        assert_eq!(t.ptx_too_new_isa, Some(PtxIsa::new(9, 1)));
        let msg = v.describe(&t, cc("9.0"));
        assert!(
            msg.contains("PTX ISA 9.1 needs a driver of CUDA 13.1"),
            "{msg}"
        );
        assert!(msg.contains("rule ptx-isa"), "{msg}");
    }

    #[test]
    fn per_target_variant_layout() {
        let (a, b, c): (&[KernelEntry], &[KernelEntry], &[KernelEntry]) = (
            &[sass("sm_75")],
            &[sass("sm_86")],
            &[ptx("compute_70", (7, 0))],
        );
        assert!(has_per_target_variants([a, b]));
        assert!(!has_per_target_variants([a, a]));
        assert!(!has_per_target_variants([
            &[sass("sm_75"), sass("sm_86")][..],
            a
        ]));
        // cuFFT's layout: one container per target; on 8.6 the sm_75 variant is not a gap.
        let (v, t) = verdict_of(&[a, b, c], "8.6");
        assert_eq!(v, Verdict::Jit { containers: 1 });
        assert_eq!(t.skipped_per_target_variant, 1);
        // A library built for sm_75 alone is not that layout: on 8.6 nothing loads.
        let (v, t) = verdict_of(&[a, a], "8.6");
        assert!(matches!(v, Verdict::NoKernelImage { containers: 2, .. }));
        assert_eq!(t.skipped_per_target_variant, 0);
        // One sm_75-only container among containers that load on 9.0 is code for another
        // architecture, not a gap.
        let full: &[KernelEntry] = &[sass("sm_75"), sass("sm_90")];
        let (v, t) = verdict_of(&[full, full, a], "9.0");
        assert_eq!(v, Verdict::Native);
        assert_eq!(t.skipped_other_architectures, 1);
    }
}
