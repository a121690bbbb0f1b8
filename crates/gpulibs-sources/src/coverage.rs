//! The measured kernel coverage of official `onnxruntime-gpu` releases.
//!
//! The CUDA provider of an official wheel (`libonnxruntime_providers_cuda.so`, 250–770 MB) is the
//! only place its GPU kernels can be read, so `scripts/ort-coverage.py` downloads each recent
//! release once, runs `gpulibs inspect` on it and writes `data/ort-coverage.json`, which is
//! compiled in here. Nothing in this module is typed by hand: every value is the script's
//! measurement, and the tests check the shape and a few facts that other sources confirm.
//!
//! Besides the kernels, each release records what the planner and the embedded default manifest
//! need without downloading: the wheel's file name, sha256 and size; the CUDA major its provider
//! links (`libcudart.so.N`); the `cuda`/`cudnn` extras of its METADATA and the `nvidia-*` wheels
//! they resolved to when measured (with sizes, sha256 and the libraries inside); and the CPU
//! `onnxruntime` wheel of the same minor.

use std::sync::OnceLock;

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_inspect::{select_entry, Compression, KernelEntry, Selection};
use gpulibs_plan::{Coverage, PtxTarget, SassTarget};
use serde::{Deserialize, Serialize};

/// The table as shipped.
pub const EMBEDDED_JSON: &str = include_str!("../data/ort-coverage.json");

/// The schema version of the table this crate reads.
pub const TABLE_SCHEMA_VERSION: u32 = 1;

/// Why a coverage table could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    #[error("the ONNX Runtime coverage table is not valid JSON of the expected shape")]
    Json(#[from] serde_json::Error),
    #[error(
        "the ONNX Runtime coverage table has schema_version {found}, this gpulibs reads \
         {TABLE_SCHEMA_VERSION}: regenerate it with scripts/ort-coverage.py from this checkout"
    )]
    Schema { found: u32 },
    #[error("the ONNX Runtime coverage table is inconsistent: {0}")]
    Invalid(String),
}

/// `data/ort-coverage.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageTable {
    pub schema_version: u32,
    /// The day the script ran: `2026-11-24`.
    pub measured: String,
    pub measured_with: MeasuredWith,
    /// The Python version the wheels were resolved for (`3.11`).
    pub python_version: String,
    /// The Python implementation (`cp`).
    pub implementation: String,
    /// The platform tags the wheels were resolved for, in pip's order of preference.
    pub platforms: Vec<String>,
    /// The library the kernels were read from, inside the wheel.
    pub provider_library: String,
    /// Oldest first.
    pub releases: Vec<OrtRelease>,
}

/// The tools that produced the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasuredWith {
    pub pip: String,
    pub script: String,
}

/// One measured `onnxruntime-gpu` release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrtRelease {
    /// `1.31.1`.
    pub version: String,
    /// The `onnxruntime-gpu` wheel.
    pub wheel: WheelFile,
    /// From the provider's `DT_NEEDED libcudart.so.N`.
    pub cuda_major: Option<u32>,
    /// `cuda_version` of the wheel's `build_and_package_info.py` (absent before 1.21).
    pub build_cuda: Option<String>,
    /// SASS targets of the provider library, lowest first.
    pub sass: Vec<SassTarget>,
    /// PTX targets with their ISA.
    pub ptx: Vec<PtxTarget>,
    /// How the provider's SASS/PTX payloads are stored (`lz4`, `zstd`, `none`), measured by
    /// `scripts/ort-coverage.py`; empty in a table measured before it recorded them.
    #[serde(default)]
    pub compression: Vec<Compression>,
    /// CUDA-family `DT_NEEDED` of the provider, in file order.
    pub needed: Vec<String>,
    /// CUDA-family names the provider holds as strings (loaded at run time, some only in
    /// some code paths or as fallbacks).
    pub loaded_at_run_time: Vec<String>,
    /// Bytes of the provider library.
    pub provider_size: u64,
    /// The `cuda` / `cudnn` extras of the wheel's METADATA.
    pub requirements: Vec<ExtraRequirement>,
    /// The CPU `onnxruntime` wheel of the same minor, not newer.
    pub cpu_wheel: WheelFile,
    /// What the extras resolved to when measured, dependencies included; empty when they
    /// declare nothing or do not resolve.
    pub nvidia_wheels: Vec<WheelFile>,
    /// pip's error when the extras did not resolve (1.27.0 names placeholder distributions).
    #[serde(default)]
    pub extras_error: Option<String>,
}

/// A `Requires-Dist` of an extra: `nvidia-cudnn-cu13~=9.0` for `cudnn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraRequirement {
    pub extra: String,
    pub requirement: String,
}

/// One wheel file as measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WheelFile {
    /// The distribution name as the index spells it: `onnxruntime-gpu`, `nvidia-cublas`.
    pub name: String,
    pub version: String,
    pub filename: String,
    pub sha256: String,
    /// Bytes to download.
    pub size: u64,
    /// Bytes of every member once unpacked.
    pub unpacked_size: u64,
    /// The shared libraries inside.
    pub libraries: Vec<WheelLibrary>,
    /// Its own `Requires-Dist` (recorded for `nvidia-*` wheels).
    #[serde(default)]
    pub requires_dist: Vec<String>,
}

impl WheelFile {
    /// `name==version`, the requirement that selects exactly this release.
    pub fn pinned_requirement(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }

    /// SONAMEs of the libraries inside.
    pub fn sonames(&self) -> impl Iterator<Item = &str> {
        self.libraries.iter().filter_map(|l| l.soname.as_deref())
    }
}

/// A shared library in a wheel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WheelLibrary {
    /// Path inside the wheel: `nvidia/cu13/lib/libcublas.so.13`.
    pub path: String,
    /// `DT_SONAME`; `None` for objects without one (Python extension modules).
    pub soname: Option<String>,
    /// `DT_NEEDED`, in file order.
    #[serde(default)]
    pub needed: Vec<String>,
    pub size: u64,
    pub sha256: String,
}

impl CoverageTable {
    /// Parses and checks a table.
    pub fn parse(json: &str) -> Result<Self, CoverageError> {
        #[derive(Deserialize)]
        struct Head {
            schema_version: u32,
        }
        let head: Head = serde_json::from_str(json)?;
        if head.schema_version != TABLE_SCHEMA_VERSION {
            return Err(CoverageError::Schema {
                found: head.schema_version,
            });
        }
        let table: CoverageTable = serde_json::from_str(json)?;
        table.validate()?;
        Ok(table)
    }

    /// The table compiled into this crate (checked by its tests, so this cannot fail in a
    /// released build).
    pub fn embedded() -> &'static CoverageTable {
        static TABLE: OnceLock<CoverageTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            CoverageTable::parse(EMBEDDED_JSON)
                .expect("data/ort-coverage.json is checked by the crate's tests")
        })
    }

    fn validate(&self) -> Result<(), CoverageError> {
        let bad = |m: String| Err(CoverageError::Invalid(m));
        let mut versions = std::collections::HashSet::new();
        for r in &self.releases {
            if !versions.insert(&r.version) {
                return bad(format!("release {} is listed twice", r.version));
            }
            for w in std::iter::once(&r.wheel)
                .chain([&r.cpu_wheel])
                .chain(&r.nvidia_wheels)
            {
                let hex = w.sha256.len() == 64
                    && w.sha256
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !hex {
                    return bad(format!(
                        "{}: sha256 `{}` is not 64 hex digits",
                        w.filename, w.sha256
                    ));
                }
                if w.size == 0 || !w.filename.ends_with(".whl") {
                    return bad(format!("{}: not a measured wheel", w.filename));
                }
            }
            if r.wheel.version != r.version {
                return bad(format!(
                    "release {} points at wheel {}",
                    r.version, r.wheel.filename
                ));
            }
            if r.cuda_major.is_none() {
                return bad(format!("release {}: no libcudart in DT_NEEDED", r.version));
            }
        }
        Ok(())
    }

    /// The release with this exact version.
    pub fn release(&self, version: &str) -> Option<&OrtRelease> {
        self.releases.iter().find(|r| r.version == version)
    }

    /// Releases, newest first.
    pub fn newest_first(&self) -> Vec<&OrtRelease> {
        let mut out: Vec<&OrtRelease> = self.releases.iter().collect();
        out.sort_by_key(|r| std::cmp::Reverse(version_key(&r.version)));
        out
    }
}

/// `1.31.1` → `[1, 31, 1]`, for ordering releases; non-numbers count as 0.
pub fn version_key(version: &str) -> Vec<u64> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

impl OrtRelease {
    /// The kernel coverage in the manifest's terms.
    pub fn coverage(&self) -> Coverage {
        Coverage {
            sass: self.sass.clone(),
            ptx: self.ptx.clone(),
            compression: self.compression.clone(),
            // Every measured release stores all its kernels one way (zstd from 1.27, LZ4
            // before): no per-target list is needed.
            zstd_targets: Vec::new(),
        }
    }

    /// The coverage as inspect's entry list (SASS, then PTX with ISA).
    pub fn kernel_entries(&self) -> Vec<KernelEntry> {
        self.sass
            .iter()
            .map(|s| KernelEntry {
                target: s.0,
                ptx_isa: None,
            })
            .chain(self.ptx.iter().map(|p| KernelEntry {
                target: p.target.0,
                ptx_isa: Some(p.isa.0),
            }))
            .collect()
    }

    /// What the driver would load for a GPU, by inspect's rules over the union of the
    /// provider's targets. A `Native` or `Jit` answer means most kernels load; a few
    /// containers built for one architecture only (ORT's `sm_90a`-only kernels) can still be
    /// missing on others, which inspect's full report on the downloaded file settles.
    pub fn selection(&self, gpu: ComputeCapability, driver: Option<CudaVersion>) -> Selection {
        select_entry(&self.kernel_entries(), gpu, driver)
    }

    /// Whether a GPU gets kernels from this release (natively or by JIT).
    pub fn covers(&self, gpu: ComputeCapability, driver: Option<CudaVersion>) -> bool {
        !matches!(self.selection(gpu, driver), Selection::None { .. })
    }

    /// The CUDA runtime this release's provider needs, as `major.0`: any runtime of that
    /// major works with it (CUDA's minor-version compatibility).
    pub fn cuda(&self) -> Option<CudaVersion> {
        self.cuda_major.map(|m| CudaVersion::new(m, 0))
    }
}
