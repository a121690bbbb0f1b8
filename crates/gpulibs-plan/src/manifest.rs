//! The release manifest an app vendor publishes, and the inventory of libraries already on the
//! machine: plain serde types, read from TOML (`docs/manifest.md` documents the schema).
//!
//! Reading is strict: a field this version does not know is an error that names the field, where
//! it is, the schema version the file declares and the fix, never silently ignored (a newer
//! manifest's `min_driver` dropped on the floor would plan an install that cannot run).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_inspect::{Compression, KernelEntry, KernelTarget, PtxIsa, TargetKind};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::driver::DriverVersion;

/// The schema version this gpulibs reads and writes. A file declaring a higher one is refused
/// with "upgrade gpulibs"; see `docs/manifest.md` "Versioning".
pub const SCHEMA_VERSION: u32 = 1;

/// A release: the components an app can install and the named sets of them (variants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`SCHEMA_VERSION`] of the format the file is written in.
    pub schema_version: u32,
    /// The application the release is for: `swictation`.
    pub app: String,
    /// The release's own version: `1.1.0`.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub components: Vec<Component>,
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// What `gpulibs install` proves an install with, besides the probe model (optional).
    #[serde(default, skip_serializing_if = "VerifySection::is_empty")]
    pub verify: VerifySection,
}

/// `[verify]`: the app's own models that `gpulibs install` runs on a new install before it
/// activates it, when they are present on disk (`--verify-model` overrides them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySection {
    /// ONNX files or directories of them; a relative path is taken against the directory of a
    /// local manifest, else the working directory of `gpulibs install`.
    #[serde(default)]
    pub models: Vec<String>,
}

impl VerifySection {
    /// Whether it names nothing (then it is left out when the manifest is written).
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// One archive (or wheel) of libraries, installed as a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Unique in the manifest: `ort-cuda-latest`.
    pub id: String,
    pub kind: ComponentKind,
    /// The version of what it packages: `1.23.2` for ONNX Runtime, `12.9.1` for cuBLAS.
    pub version: String,
    /// Where its bytes come from; a vendor archive unless said otherwise.
    #[serde(default)]
    pub origin: Origin,
    pub archive: Artifact,
    /// The files it unpacks to, relative to the install root.
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// The CUDA runtime major.minor it was built against (`"12.9"`); `None` for CPU-only
    /// components. The driver must run it (see [`crate::driver`]).
    #[serde(default, with = "display_opt", skip_serializing_if = "Option::is_none")]
    pub cuda: Option<CudaVersion>,
    /// A driver floor of the component's own, on top of what its CUDA runtime needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_driver: Option<DriverVersion>,
    /// The GPU kernels it carries, as `gpulibs inspect` measures them. `None`: no GPU kernels
    /// (a CPU runtime, `libcudart`, the ORT shared-provider shim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// SONAMEs it provides: `libcublas.so.12`.
    #[serde(default)]
    pub provides: Vec<String>,
    /// SONAMEs it needs from elsewhere (another component, or the system): `libcuda.so.1`.
    #[serde(default)]
    pub needs: Vec<String>,
    /// What a library already on the machine must satisfy to serve this component instead of
    /// its archive (optional; `docs/reuse.md`).
    #[serde(default, skip_serializing_if = "ReuseSpec::is_empty")]
    pub reuse: ReuseSpec,
}

/// `[components.reuse]`: the publisher's constraint on a library already on the machine that
/// would serve the component. Every field is optional; an empty table (or none) means: the
/// SONAMEs the variant's other components need from it (else every SONAME it provides), of any
/// version NVIDIA's rules accept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReuseSpec {
    /// The SONAMEs a library directory must hold to serve it, instead of the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sonames: Vec<String>,
    /// A PEP 440 version specifier the found library's version must satisfy: `~=9.0`,
    /// `>=12.4,<13` ([`crate::reuse::Specifier`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<String>,
    /// Who states `versions`, in words: `onnxruntime-gpu 1.31.1 Requires-Dist
    /// nvidia-cudnn-cu13~=9.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions_from: Option<String>,
    /// The version of this library its consumer was built against (`13.0`, `9.8`): NVIDIA's
    /// rules refuse an older minor for cuDNN and the CUDA runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_with: Option<String>,
    /// Never serve it from the machine (an archive with patched or private builds).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub never: bool,
}

impl ReuseSpec {
    /// Whether it says nothing (then it is left out when the manifest is written).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl Component {
    /// Bytes on disk once unpacked: the declared `unpacked_size`, else the sum of the file
    /// sizes when files are listed, else unknown.
    pub fn unpacked_bytes(&self) -> Option<u64> {
        self.archive.unpacked_size.or_else(|| {
            (!self.files.is_empty()).then(|| {
                // Saturating: a hostile size must not wrap to a small figure.
                self.files
                    .iter()
                    .fold(0u64, |a, f| a.saturating_add(f.size))
            })
        })
    }

    /// The kernel entries of its coverage, as inspect's [`KernelEntry`] list (one container's
    /// worth): SASS entries, then PTX entries with their ISA.
    pub fn kernel_entries(&self) -> Vec<KernelEntry> {
        let Some(cov) = &self.coverage else {
            return Vec::new();
        };
        cov.sass
            .iter()
            .map(|t| KernelEntry {
                target: t.0,
                ptx_isa: None,
            })
            .chain(cov.ptx.iter().map(|p| KernelEntry {
                target: p.target.0,
                ptx_isa: Some(p.isa.0),
            }))
            .collect()
    }
}

/// What a component packages. Used for messages and to tell the ORT runtime from libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// ONNX Runtime (with or without its CUDA provider).
    Onnxruntime,
    /// `libcudart`.
    CudaRuntime,
    Cublas,
    Cudnn,
    Cufft,
    Curand,
    Nvrtc,
    /// Anything else, or several of the above in one archive (the seed's per-tier archives).
    Other,
}

impl ComponentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Onnxruntime => "onnxruntime",
            Self::CudaRuntime => "cuda-runtime",
            Self::Cublas => "cublas",
            Self::Cudnn => "cudnn",
            Self::Cufft => "cufft",
            Self::Curand => "curand",
            Self::Nvrtc => "nvrtc",
            Self::Other => "other",
        }
    }
}

/// Who serves a component's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// The vendor's release (the archive URL and mirrors).
    #[default]
    Vendor,
    /// A PyPI wheel, resolved through pip (manifests built by `gpulibs-sources`).
    Pypi,
}

/// A downloadable file and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub url: String,
    /// Other URLs serving the same bytes, tried in order after `url`.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// 64 lowercase hex digits.
    pub sha256: String,
    /// Bytes to download.
    pub size: u64,
    /// Bytes once unpacked; when absent, the sum of `files` sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_size: Option<u64>,
    pub format: ArchiveFormat,
}

/// How an artifact is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArchiveFormat {
    #[serde(rename = "tar.zst")]
    TarZst,
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "tar.xz")]
    TarXz,
    #[serde(rename = "zip")]
    Zip,
    #[serde(rename = "wheel")]
    Wheel,
}

/// One file a component unpacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the install root, `/`-separated: `modern/libs/libcublas.so.12`.
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// Symbolic links to this file, created next to it: `["libcublas.so"]`.
    #[serde(default)]
    pub soname_links: Vec<String>,
}

/// The kernels a component carries: what `gpulibs inspect` reports for its narrowest library
/// (the one with the fewest targets, usually the ORT CUDA provider).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// SASS targets: `"sm_86"`, `"sm_90a"`, `"sm_100f"`.
    #[serde(default)]
    pub sass: Vec<SassTarget>,
    /// PTX targets with the PTX ISA they are written in.
    #[serde(default)]
    pub ptx: Vec<PtxTarget>,
    /// How those kernels are stored in the library (`none`, `lz4`, `zstd`), as `gpulibs
    /// inspect` reports them. `zstd` needs a driver of CUDA 12.4 (R550) or newer (rule
    /// `fatbin-zstd`, `docs/driver-rules.md`). Empty: not recorded (older manifests), and the
    /// planner then checks nothing about it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compression: Vec<Compression>,
    /// The targets (`sm_100a`, `compute_120`) with an entry stored zstd-compressed, when not all
    /// are: NVIDIA's cuBLAS 12.9 keeps `sm_50`…`sm_90a` LZ4 and only its Blackwell entries zstd,
    /// so a driver that cannot read zstd still loads it on older GPUs. Empty while
    /// `compression` lists `zstd`: every target is taken to be zstd (the safe side).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zstd_targets: Vec<String>,
}

impl Coverage {
    /// Whether the entries of `target` may be stored zstd-compressed (see `zstd_targets`).
    pub fn zstd_for(&self, target: &KernelTarget) -> bool {
        self.compression.contains(&Compression::Zstd)
            && (self.zstd_targets.is_empty() || self.zstd_targets.contains(&target.name()))
    }
}

/// A SASS target read from `sm_XY[a|f]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SassTarget(pub KernelTarget);

/// A PTX target `compute_XY[a|f]` and its ISA (`"8.8"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PtxTarget {
    pub target: PtxTargetName,
    pub isa: PtxIsaText,
}

/// `compute_XY[a|f]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PtxTargetName(pub KernelTarget);

/// A PTX ISA written `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PtxIsaText(pub PtxIsa);

/// A named set of components installed together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Unique in the manifest: `legacy`, `modern`, `latest`, `cpu`.
    pub name: String,
    /// Component ids.
    pub components: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What it runs on; a `cpu` variant is the fallback when no GPU variant fits.
    #[serde(default)]
    pub device: VariantDevice,
    /// GPU memory the app needs with this variant (its models); GPUs with less are not
    /// covered by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gpu_memory_bytes: Option<u64>,
}

/// Where a variant's runtime computes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantDevice {
    #[default]
    Cuda,
    Cpu,
}

/// Libraries already on this machine (found by `gpulibs-sources`), by SONAME.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInventory {
    pub libraries: Vec<SystemLibrary>,
}

impl SystemInventory {
    /// The first library with this SONAME.
    pub fn find(&self, soname: &str) -> Option<&SystemLibrary> {
        self.libraries.iter().find(|l| l.soname == soname)
    }
}

/// One library on the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemLibrary {
    /// `libcublas.so.12`.
    pub soname: String,
    /// The file it resolves to.
    pub path: PathBuf,
    /// Its version when known: `12.9.1.4`.
    pub version: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Kernel target strings.

/// A kernel target string that does not read as `sm_XY[a|f]` / `compute_XY[a|f]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetParseError {
    #[error(
        "`{0}` is not a kernel target: write SASS as `sm_86`, `sm_90a`, `sm_100f` and PTX as \
         `compute_90`"
    )]
    Malformed(String),
    #[error("`{text}` is a {found} target where a {expected} target is expected")]
    WrongKind {
        text: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("`{0}` is not a PTX ISA: write it as `8.8` or `9.0`")]
    Isa(String),
}

/// Reads `sm_90a`, `compute_120`, `sm_100f` into inspect's [`KernelTarget`].
///
/// Inspect has no parser of its own for these names (it reads targets from binaries); this one
/// is the inverse of [`KernelTarget::name`].
pub fn parse_kernel_target(text: &str) -> Result<KernelTarget, TargetParseError> {
    let malformed = || TargetParseError::Malformed(text.to_string());
    let (kind, rest) = if let Some(r) = text.strip_prefix("sm_") {
        (TargetKind::Sass, r)
    } else if let Some(r) = text.strip_prefix("compute_") {
        (TargetKind::Ptx, r)
    } else {
        return Err(malformed());
    };
    let (digits, variant) = match rest.as_bytes().last() {
        Some(b'a') => (
            &rest[..rest.len() - 1],
            gpulibs_inspect::Variant::ArchSpecific,
        ),
        Some(b'f') => (
            &rest[..rest.len() - 1],
            gpulibs_inspect::Variant::FamilySpecific,
        ),
        _ => (rest, gpulibs_inspect::Variant::Generic),
    };
    if !(2..=3).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let n: u32 = digits.parse().map_err(|_| malformed())?;
    let cc = ComputeCapability::from_number(n);
    if cc.major == 0 {
        return Err(malformed());
    }
    Ok(KernelTarget::new(kind, cc, variant))
}

fn parse_of_kind(text: &str, want: TargetKind) -> Result<KernelTarget, TargetParseError> {
    let t = parse_kernel_target(text)?;
    let name = |k| match k {
        TargetKind::Sass => "SASS (`sm_`)",
        TargetKind::Ptx => "PTX (`compute_`)",
    };
    if t.kind != want {
        return Err(TargetParseError::WrongKind {
            text: text.to_string(),
            found: name(t.kind),
            expected: name(want),
        });
    }
    Ok(t)
}

impl FromStr for SassTarget {
    type Err = TargetParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_of_kind(s, TargetKind::Sass).map(Self)
    }
}

impl FromStr for PtxTargetName {
    type Err = TargetParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_of_kind(s, TargetKind::Ptx).map(Self)
    }
}

impl FromStr for PtxIsaText {
    type Err = TargetParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TargetParseError::Isa(s.to_string());
        let (maj, min) = s.split_once('.').ok_or_else(err)?;
        let ok = |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
        if !ok(maj) || !ok(min) {
            return Err(err());
        }
        Ok(Self(PtxIsa::new(
            maj.parse().map_err(|_| err())?,
            min.parse().map_err(|_| err())?,
        )))
    }
}

impl fmt::Display for SassTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for PtxTargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for PtxIsaText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! serde_via_string {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
serde_via_string!(SassTarget, PtxTargetName, PtxIsaText);

/// `Option<CudaVersion>` written `"12.9"`.
mod display_opt {
    use gpulibs_detect::CudaVersion;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<CudaVersion>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CudaVersion>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => {
                let t = text.trim();
                // Only `major.minor`: a bare `12` would silently mean 12.0.
                match t.split_once('.') {
                    Some((a, b)) if !a.is_empty() && !b.is_empty() => t
                        .parse()
                        .map(Some)
                        .map_err(|e| serde::de::Error::custom(format!("{e}"))),
                    _ => Err(serde::de::Error::custom(format!(
                        "`{text}` is not a CUDA runtime version: write major.minor, e.g. `12.9`"
                    ))),
                }
            }
            None => Ok(None),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading and writing.

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is not UTF-8 text")]
    NotUtf8,
    #[error("the manifest has no `schema_version` (it must be the first key: `schema_version = {SCHEMA_VERSION}`)")]
    MissingSchemaVersion,
    #[error(
        "the manifest declares schema_version {declared}, newer than the {supported} this \
         gpulibs reads"
    )]
    NewerSchema { declared: u32, supported: u32 },
    #[error(
        "unknown field `{field}` at line {line} (in {context}); the manifest declares \
         schema_version {declared}, this gpulibs reads schema_version {supported}"
    )]
    UnknownField {
        field: String,
        /// Where it is: `components[2].archive`, or `the top level`.
        context: String,
        line: usize,
        declared: u32,
        supported: u32,
        /// What to do (the [`Hint`](gpulibs_hint::Hint)): "upgrade gpulibs" for a newer
        /// schema; "check the spelling" for the current one.
        fix: &'static str,
    },
    #[error("manifest line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// Read, but breaks the rules of [`crate::validate_structure`] (only [`load_manifest`]
    /// returns it).
    #[error("{}", invalid_message(problems))]
    Invalid {
        problems: Vec<crate::validate::ValidationError>,
    },
}

impl gpulibs_hint::Hint for ManifestError {
    fn hint(&self) -> Option<String> {
        match self {
            ManifestError::NewerSchema { .. } => Some("upgrade gpulibs".into()),
            ManifestError::UnknownField { fix, .. } => Some((*fix).into()),
            _ => None,
        }
    }
}

fn invalid_message(problems: &[crate::validate::ValidationError]) -> String {
    let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    match list.as_slice() {
        [one] => format!("the manifest is invalid: {one}"),
        _ => format!(
            "the manifest is invalid ({} problems): {}",
            list.len(),
            list.join("; ")
        ),
    }
}

/// Reads and validates a manifest: what every path that uses one calls (`gpulibs plan`,
/// `install`, `mirror`). Strict TOML as [`parse_manifest`], then the rules that hold on every
/// machine ([`crate::validate_structure`]: digests, unique ids, paths and links inside the
/// install root, sizes), every problem in one [`ManifestError::Invalid`].
pub fn load_manifest(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let manifest = parse_manifest_bytes(bytes)?;
    check_manifest(&manifest)?;
    Ok(manifest)
}

/// [`crate::validate_structure`] as a `Result`: for a manifest built in memory (the embedded
/// one, a resolved copy) rather than read.
pub fn check_manifest(manifest: &Manifest) -> Result<(), ManifestError> {
    let problems = crate::validate::validate_structure(manifest);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ManifestError::Invalid { problems })
    }
}

/// Reads a manifest from TOML text. Syntax and types only: a manifest that is going to be used
/// is read with [`load_manifest`], which also validates it; [`crate::validate()`] adds the
/// needs.
pub fn parse_manifest(text: &str) -> Result<Manifest, ManifestError> {
    let declared = declared_schema(text)?;
    if declared > SCHEMA_VERSION {
        // Parse anyway: when a field is what is new, name it.
        return Err(match toml::from_str::<Manifest>(text) {
            Err(e) => match unknown_field(text, &e, declared) {
                Some(err) => err,
                None => ManifestError::NewerSchema {
                    declared,
                    supported: SCHEMA_VERSION,
                },
            },
            Ok(_) => ManifestError::NewerSchema {
                declared,
                supported: SCHEMA_VERSION,
            },
        });
    }
    toml::from_str::<Manifest>(text).map_err(|e| {
        unknown_field(text, &e, declared).unwrap_or_else(|| ManifestError::Syntax {
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
            message: e.message().trim().to_string(),
        })
    })
}

/// Reads a manifest from bytes (as downloaded).
pub fn parse_manifest_bytes(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)?;
    parse_manifest(text)
}

/// Writes a manifest as TOML (what `gpulibs package` publishes).
pub fn to_toml(manifest: &Manifest) -> String {
    toml::to_string_pretty(manifest).expect("a manifest always serializes")
}

fn declared_schema(text: &str) -> Result<u32, ManifestError> {
    #[derive(Deserialize)]
    struct Head {
        schema_version: Option<toml::Value>,
    }
    let head: Head = toml::from_str(text).map_err(|e| ManifestError::Syntax {
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
        message: e.message().trim().to_string(),
    })?;
    match head.schema_version {
        None => Err(ManifestError::MissingSchemaVersion),
        Some(toml::Value::Integer(n)) if n >= 1 && n <= u32::MAX as i64 => Ok(n as u32),
        Some(other) => Err(ManifestError::Syntax {
            line: 0,
            message: format!("`schema_version` must be a positive integer, not `{other}`"),
        }),
    }
}

fn unknown_field(text: &str, e: &toml::de::Error, declared: u32) -> Option<ManifestError> {
    let msg = e.message();
    let rest = msg.strip_prefix("unknown field `")?;
    let field = rest.split('`').next()?.to_string();
    let start = e.span().map(|s| s.start).unwrap_or(0);
    Some(ManifestError::UnknownField {
        field,
        context: context_at(text, start),
        line: line_of(text, start),
        declared,
        supported: SCHEMA_VERSION,
        fix: if declared > SCHEMA_VERSION {
            "upgrade gpulibs to read it"
        } else {
            "check the spelling against docs/manifest.md, or upgrade gpulibs if the field is from \
             a newer release of the schema"
        },
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The table a byte offset sits in, from the last `[header]` before it: `components[2].archive`.
fn context_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut current: Option<String> = None;
    for line in before.lines() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            *n += 1;
            current = Some(format!("{name}[{}]", *n - 1));
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            let name = name.trim();
            // `[components.archive]` belongs to the last `[[components]]`.
            current = Some(match name.split_once('.') {
                Some((parent, child)) => match counts.get(parent) {
                    Some(n) => format!("{parent}[{}].{child}", n - 1),
                    None => name.to_string(),
                },
                None => name.to_string(),
            });
        }
    }
    current.unwrap_or_else(|| "the top level".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_target_names_round_trip() {
        for name in [
            "sm_50",
            "sm_52",
            "sm_90a",
            "sm_100f",
            "sm_121",
            "compute_90",
            "compute_120a",
        ] {
            assert_eq!(parse_kernel_target(name).unwrap().name(), name);
        }
        for bad in [
            "sm_5", "sm_1000", "sm90", "sm_90b", "compute_", "sm_", "SM_90", "sm_09", "", "90",
        ] {
            assert!(parse_kernel_target(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            "compute_90".parse::<SassTarget>(),
            Err(TargetParseError::WrongKind { .. })
        ));
        assert!("sm_90".parse::<PtxTargetName>().is_err());
        assert_eq!("8.8".parse::<PtxIsaText>().unwrap().0, PtxIsa::new(8, 8));
        assert!("8".parse::<PtxIsaText>().is_err());
    }
}
