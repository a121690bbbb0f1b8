//! What an install is: the JSON record written beside its `lib/`, and the seed-compatible
//! receipt some apps read.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_inspect::KernelEntry;
use serde::{Deserialize, Serialize};

/// Version of the `install.json` layout; bumped on incompatible changes.
pub const RECORD_SCHEMA_VERSION: u32 = 1;

/// One component of an install, as the caller (the planner) describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSpec {
    /// The manifest's component id (`cudart`, `onnxruntime-gpu`).
    pub id: String,
    pub version: String,
    /// sha256 of the archive; the key of the component in the store.
    pub sha256: String,
    /// Where the bytes came from (a URL, a wheel name, a local path), for the record only.
    pub source: String,
    /// Symbolic links the manifest declares for the component's libraries (its
    /// `files[].soname_links`), made in `lib/` next to the archive's own. A link the archive
    /// already has is left as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<DeclaredLink>,
    /// The files the manifest lists for the component (`files[]`): each must be in the stored
    /// component, a regular file with this size and sha256, or the install is not built.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<DeclaredFile>,
}

/// A file a manifest lists for a component, by its path inside the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredFile {
    /// `lib/libonnxruntime.so.1.23.2`.
    pub path: String,
    pub size: u64,
    /// 64 lowercase hex digits.
    pub sha256: String,
}

/// `lib/<name>` → `<target>`: a link a manifest declares, both bare file names (the store
/// refuses any other: a name with `/`, `..` or NUL would leave `lib/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredLink {
    /// `libonnxruntime.so.1`.
    pub name: String,
    /// The library file it points at, by its name in `lib/`: `libonnxruntime.so.1.23.2`.
    pub target: String,
}

/// The GPU an install was chosen for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuRecord {
    pub name: Option<String>,
    pub compute_capability: ComputeCapability,
    /// `sm_86`.
    pub sm: String,
}

impl GpuRecord {
    pub fn new(name: Option<String>, cc: ComputeCapability) -> Self {
        Self {
            name,
            compute_capability: cc,
            sm: cc.sm_name(),
        }
    }
}

/// The driver seen when installing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverRecord {
    /// `580.65.06`.
    pub version: Option<String>,
    /// Highest CUDA version the driver runs.
    pub cuda: Option<CudaVersion>,
}

/// What to install: everything of an [`InstallRecord`] the caller knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSpec {
    pub app: String,
    /// The manifest's variant (`modern`, `sm_89-120`, …).
    pub variant: String,
    /// The release version the components come from (`1.1.1`), if there is one.
    pub release: Option<String>,
    pub components: Vec<ComponentSpec>,
    /// Kernel targets the install's CUDA libraries carry, with PTX ISAs: what `status` checks a
    /// GPU against (through `gpulibs-inspect`'s rules).
    pub coverage: Vec<KernelEntry>,
    pub gpu: Option<GpuRecord>,
    pub driver: Option<DriverRecord>,
    /// The lowest driver CUDA version the components need.
    pub requires_driver_cuda: Option<CudaVersion>,
    /// File name of the ONNX Runtime library in `lib/`, normally `libonnxruntime.so`.
    pub ort_library: String,
    /// Libraries the install uses where they already are on this machine (the planner's
    /// `Source::System`), referenced by absolute path: never copied, linked or changed.
    #[serde(default)]
    pub system_libraries: Vec<SystemLibrarySpec>,
}

/// A library an install reuses from outside the root, as the planner found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemLibrarySpec {
    /// The manifest component it stands in for (`cublas`).
    pub component: String,
    /// The name the loader asks for: `libcublasLt.so.13`.
    pub soname: String,
    /// Absolute path as found, usually the SONAME link in its directory
    /// (`…/site-packages/nvidia/cu13/lib/libcublasLt.so.13`).
    pub path: PathBuf,
}

/// A reused system library as it was when the install was built: what `check_install`
/// compares against (size and modification time; the sha256 is kept for people and audits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemLibraryRecord {
    /// The manifest component it stands in for.
    pub component: String,
    /// `libcublasLt.so.13`.
    pub soname: String,
    /// Absolute path as found; `env` and `activate` name this path and its directory.
    pub path: PathBuf,
    /// The file `path` resolved to (through any links).
    pub real_path: PathBuf,
    /// Size in bytes of the resolved file.
    pub size: u64,
    /// Modification time of the resolved file, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// sha256 of the resolved file's bytes.
    pub sha256: String,
}

/// A symlink `lib/<name> -> <target>` to a library reused from this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReusedLink {
    /// The name in `lib/`: `libcudnn_ops.so.9`.
    pub name: String,
    /// The absolute path it points at (`…/site-packages/nvidia/cudnn/lib/libcudnn_ops.so.9`).
    pub target: PathBuf,
}

/// One component as installed: the spec plus the files it put in `lib/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRecord {
    pub id: String,
    pub version: String,
    pub sha256: String,
    pub source: String,
    /// Names in the install's `lib/` that come from this component.
    pub files: Vec<String>,
}

/// `installs/<id>/install.json`: what an install holds and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRecord {
    pub schema_version: u32,
    pub id: String,
    pub app: String,
    pub variant: String,
    pub release: Option<String>,
    pub components: Vec<ComponentRecord>,
    pub coverage: Vec<KernelEntry>,
    pub gpu: Option<GpuRecord>,
    pub driver: Option<DriverRecord>,
    pub requires_driver_cuda: Option<CudaVersion>,
    /// RFC 3339, UTC: `2025-06-01T12:00:00Z`.
    pub installed_at: String,
    /// Path of the ONNX Runtime library relative to the install directory: `lib/libonnxruntime.so`.
    pub ort_library: String,
    /// Libraries used from outside the root (absent in records written before reuse was
    /// recorded: read as none).
    #[serde(default)]
    pub system_libraries: Vec<SystemLibraryRecord>,
    /// Symlinks in the install's `lib/` to libraries reused from this machine (absolute
    /// targets): each reused SONAME, and for a family whose entry library opens its
    /// sub-libraries from its own directory (cuDNN), every library of the family there; so the
    /// root's view (`LD_LIBRARY_PATH=<root>`) finds them. Absent in records written before
    /// (read as none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reused_links: Vec<ReusedLink>,
    /// Whether the install was proven to run, and how (absent in records written before
    /// installs recorded it, and in a record whose verification had not been written yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationRecord>,
}

/// What is known about whether an install runs: written by `gpulibs install` before it
/// activates the install, and again by a later verification (`gpulibs status --verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRecord {
    pub state: VerificationState,
    /// One line: what ran and what it found, or why nothing ran.
    pub summary: String,
    /// RFC 3339, UTC, when this was recorded.
    pub at: String,
    /// The app's own models that were run besides the probe (paths as given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

impl VerificationRecord {
    /// A record of `state` made now.
    pub fn now(state: VerificationState, summary: impl Into<String>, models: Vec<String>) -> Self {
        Self {
            state,
            summary: summary.into(),
            at: rfc3339_utc(now_secs()),
            models,
        }
    }
}

/// Whether an install was proven to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationState {
    /// The verifier ran it (on the device it was chosen for) and it passed.
    Verified,
    /// Not run yet: installed for a GPU this machine does not have (`install --gpu`); the
    /// proof is recorded by a verification on a machine with that GPU.
    Deferred,
    /// Not run: verification was turned off (`--no-verify`).
    Skipped,
    /// A later verification ran it and it failed.
    Failed,
}

impl InstallRecord {
    /// Every file name in the install's `lib/`.
    pub fn lib_files(&self) -> impl Iterator<Item = &str> {
        self.components
            .iter()
            .flat_map(|c| c.files.iter().map(String::as_str))
    }
}

/// `gpu-package-info.json` as the seed's install script wrote it (field names and value shapes
/// unchanged), so an app that reads it keeps working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedPackageInfo {
    /// `legacy`, `modern`, `latest`, or the manifest's variant name.
    pub variant: String,
    /// A range of SASS targets like the seed's `sm_75-86`.
    pub architectures: String,
    /// The packed compute capability as a number, `86` (the seed wrote `major * 10 + minor`).
    pub sm_version: Option<u32>,
    /// `8.6`, as `nvidia-smi` prints it.
    pub compute_cap: Option<String>,
    pub gpu_name: Option<String>,
    /// The release version.
    pub version: String,
    /// Directory holding the libraries: the stable `<root>/current/lib`.
    pub libs_path: String,
    /// JavaScript's `toISOString()`: `2025-06-01T12:00:00.000Z`.
    pub installed_at: String,
}

impl SeedPackageInfo {
    /// The seed's receipt for `record`, whose libraries are reached through `libs_path`.
    pub fn from_record(record: &InstallRecord, libs_path: &str) -> Self {
        Self {
            variant: record.variant.clone(),
            architectures: architectures(&record.coverage),
            sm_version: record.gpu.as_ref().map(|g| g.compute_capability.number()),
            compute_cap: record
                .gpu
                .as_ref()
                .map(|g| g.compute_capability.to_string()),
            gpu_name: record.gpu.as_ref().and_then(|g| g.name.clone()),
            version: record.release.clone().unwrap_or_default(),
            libs_path: libs_path.to_string(),
            installed_at: iso_millis(&record.installed_at),
        }
    }
}

/// The seed's `architectures` string: the lowest and highest SASS target, `sm_75-86`; one
/// target alone is `sm_86`; PTX-only coverage names the PTX (`compute_90`); nothing is `""`.
pub fn architectures(coverage: &[KernelEntry]) -> String {
    use gpulibs_inspect::TargetKind;
    let sass: Vec<u32> = coverage
        .iter()
        .filter(|e| e.target.kind == TargetKind::Sass)
        .map(|e| e.target.cc.number())
        .collect();
    let (list, prefix) = if sass.is_empty() {
        (
            coverage.iter().map(|e| e.target.cc.number()).collect(),
            "compute_",
        )
    } else {
        (sass, "sm_")
    };
    match (list.iter().min(), list.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => format!("{prefix}{lo}"),
        (Some(lo), Some(hi)) => format!("{prefix}{lo}-{hi}"),
        _ => String::new(),
    }
}

/// `2025-06-01T12:00:00Z` → `2025-06-01T12:00:00.000Z`; other text is kept as is.
fn iso_millis(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(base) if !base.contains('.') => format!("{base}.000Z"),
        _ => rfc3339.to_string(),
    }
}

/// Seconds since the epoch as RFC 3339 UTC, `2025-06-01T12:00:00Z`.
pub fn rfc3339_utc(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The same instant as a compact id prefix, `20250601T120000Z`.
pub(crate) fn compact_utc(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Howard Hinnant's days-to-civil algorithm: proleptic Gregorian, UTC.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpulibs_inspect::{KernelEntry, KernelTarget, PtxIsa};

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_748_779_200), "2025-06-01T12:00:00Z");
        assert_eq!(rfc3339_utc(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(compact_utc(1_748_779_200), "20250601T120000Z");
        assert_eq!(
            iso_millis("2025-06-01T12:00:00Z"),
            "2025-06-01T12:00:00.000Z"
        );
    }

    fn sass(n: u32) -> KernelEntry {
        KernelEntry {
            target: KernelTarget::sass(n / 10, n % 10),
            ptx_isa: None,
        }
    }

    #[test]
    fn architectures_reads_like_the_seed() {
        assert_eq!(architectures(&[sass(75), sass(80), sass(86)]), "sm_75-86");
        assert_eq!(architectures(&[sass(120), sass(89), sass(90)]), "sm_89-120");
        assert_eq!(architectures(&[sass(86)]), "sm_86");
        let ptx = KernelEntry {
            target: KernelTarget::ptx(9, 0),
            ptx_isa: Some(PtxIsa::new(8, 8)),
        };
        assert_eq!(architectures(&[ptx]), "compute_90");
        assert_eq!(architectures(&[]), "");
    }
}
