//! Packaging, on the vendor side.
//!
//! Owns: collecting libraries from build output, wheels or tarballs, checking their closure,
//! measuring coverage with `gpulibs-inspect`, thinning fatbins per GPU architecture, and writing
//! zstd archives and the signed manifest.
//!
//! Must not touch: a user's install root or GPU; it runs on the vendor's machine.
//!
//! Layout:
//! - [`thin`](mod@thin): per-architecture thinning of fatbin containers in place
//!   ([`thin()`] over bytes, [`thin_file`] from one file to a new one), re-inspected after the
//!   fact.
//! - [`collect`]: `lib*.so*` files from directories, wheels and tarballs; links followed and
//!   remembered.
//! - [`package`](mod@package): [`package()`]`(&PackageRequest) -> PackageReport`: NVIDIA
//!   libraries checked byte for byte against their wheel, unreferenced ones pruned, the
//!   `DT_NEEDED` closure checked, per-arch components thinned, `tar.zst` archives, manifest
//!   (`gpulibs-plan` types, validated, signed on request), third-party notices.
//! - [`mirror`](mod@mirror): [`mirror()`] copies a manifest, its signature and its archives to a
//!   directory, verifying every digest; [`mirror_with`] and [`mirror_components`] also take
//!   `pip:` components, resolved by the caller's [`PipResolve`].
//!
//! Behaviour and measurements: `docs/package.md`.

use std::path::PathBuf;

pub mod collect;
pub mod mirror;
pub mod package;
pub mod thin;

pub use mirror::{
    mirror, mirror_components, mirror_with, ComponentsMirrorReport, MirrorEvent, MirrorProgress,
    MirrorReport, PipResolve,
};
pub use package::{
    classify_runtime_name, is_nvidia_library, never_installable, package, package_with,
    ComponentReport, LibraryReport, PackageEvent, PackageReport, PackageRequest, PackageWarnings,
    RuntimeWarning, WarningAction, ZstdSettings, NVIDIA_PREFIXES, SYSTEM_LIBRARIES,
};
pub use thin::{
    containers_with_sections, thin, thin_file, thin_file_with, thin_with, ContainerOutcome,
    ContainerThin, EntryRecord, ThinError, ThinOptions, ThinReport, Unloadable,
};

/// Why packaging or mirroring failed. Each message says what failed; what to do is its
/// [`Hint`](gpulibs_hint::Hint), so the CLI prints it once, as `hint:`.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{}: reading or writing failed", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the input {}", path.display())]
    ReadInput {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the manifest {}", path.display())]
    ReadManifest {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: not a directory, wheel (.whl) or tarball (.tar, .tar.gz, .tar.zst)",
        path.display()
    )]
    UnknownInput { path: PathBuf },
    #[error("{}: cannot read the archive: {message}", path.display())]
    BadArchive { path: PathBuf, message: String },
    #[error("{}: not a shared library ({message})", path.display())]
    NotALibrary { path: PathBuf, message: String },
    #[error("no lib*.so* files found in {inputs:?}")]
    NoLibraries { inputs: Vec<PathBuf> },
    #[error("{name} differs between {} and {}", first.display(), second.display())]
    ConflictingFiles {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}: not empty", path.display())]
    OutNotEmpty { path: PathBuf },
    #[error(
        "{name} (from {source_name}) is an NVIDIA library whose bytes cannot be checked against \
         NVIDIA's release (NVIDIA's libraries are shipped only byte-identical to it)"
    )]
    NvidiaUnverified { name: String, source_name: String },
    #[error(
        "{name} in {source_name} does not match the wheel's RECORD ({found}, RECORD says \
         {expected}): the wheel was modified"
    )]
    NvidiaModified {
        name: String,
        source_name: String,
        expected: String,
        found: String,
    },
    #[error(
        "the package is not closed: nothing in it provides {}",
        missing.iter().map(|(n, by)| format!("{n} (needed by {by})")).collect::<Vec<_>>().join(", ")
    )]
    Closure { missing: Vec<(String, String)> },
    #[error(
        "the CUDA version the libraries were built against is unknown (no CUDA runtime wheel \
         among the inputs and no libcudart.so.N needed)"
    )]
    UnknownCuda,
    #[error("--per-arch was given but none of the vendor's libraries carries CUDA code")]
    NothingToThin,
    #[error("thinning {library} for {target} failed")]
    Thin {
        library: String,
        target: String,
        #[source]
        source: Box<ThinError>,
    },
    #[error("the manifest written would be invalid: {}", problems.join("; "))]
    InvalidManifest { problems: Vec<String> },
    #[error(
        "no machine could ever install {}: the planner runs it on no GPU from compute capability \
         3.5 to 12.1 ({}); no manifest was written",
        variants.iter().map(|(v, _)| format!("variant `{v}`")).collect::<Vec<_>>().join(", "),
        variants.iter().map(|(v, why)| format!("`{v}`: {why}")).collect::<Vec<_>>().join("; ")
    )]
    NeverInstallable { variants: Vec<(String, String)> },
    #[error("{source_name}: {message}")]
    BadManifest {
        source_name: String,
        message: String,
    },
    #[error(
        "component {component}: {from} has {found}, the manifest says {expected}; the copy was \
         not kept"
    )]
    MirrorDigest {
        component: String,
        from: String,
        expected: String,
        found: String,
    },
    #[error("downloading {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{source_name}: pip could not give the wheels of {components}")]
    PipResolve {
        source_name: String,
        components: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl gpulibs_hint::Hint for PackageError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            PackageError::Io { .. } => {
                "check that the path exists and that this user may read it (and write the \
                 output directory)"
                    .into()
            }
            PackageError::ReadInput { .. } => "check the path given to --from".into(),
            PackageError::ReadManifest { .. } => "check the manifest given to `gpulibs mirror`: \
                 a manifest file, a directory holding manifest.toml, or an http(s) URL"
                .into(),
            PackageError::UnknownInput { .. } => "give ONNX Runtime's build output directory, an \
                 official wheel or an archive of the libraries"
                .into(),
            PackageError::BadArchive { .. } => "download or build the archive again".into(),
            PackageError::NoLibraries { .. } => {
                "point --from at the directory holding the libraries".into()
            }
            PackageError::ConflictingFiles { .. } => {
                "give one of them, or --exclude the one you do not want".into()
            }
            PackageError::OutNotEmpty { .. } => {
                "packaging writes into an empty or new directory: give another --out".into()
            }
            PackageError::NvidiaUnverified { .. } => {
                "add the official wheel or archive it comes from to --from".into()
            }
            PackageError::NvidiaModified { .. } => "download the wheel again".into(),
            PackageError::Closure { .. } => "add the libraries to --from, declare them with \
                 --system when the machine provides them, or --exclude what needs them"
                .into(),
            PackageError::UnknownCuda => "give it with --cuda (`--cuda 12.9`)".into(),
            PackageError::NothingToThin => "leave out --per-arch".into(),
            PackageError::NeverInstallable { .. } => "give the CUDA provider built with kernels \
                 (a build whose `gpulibs inspect` shows SASS or PTX), or leave it out for a \
                 CPU-only release"
                .into(),
            PackageError::InvalidManifest { .. } => {
                "this is a bug in gpulibs package: report it with the command line".into()
            }
            PackageError::MirrorDigest { .. } => "the source serves other bytes than its \
                 manifest names: mirror again later, or ask its publisher"
                .into(),
            // The thinning error's own hint says what to do.
            PackageError::NotALibrary { .. }
            | PackageError::Thin { .. }
            | PackageError::BadManifest { .. }
            | PackageError::Fetch { .. }
            | PackageError::PipResolve { .. } => return None,
        })
    }
}
