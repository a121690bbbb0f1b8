//! From collected libraries to components, archives and the manifest, in phases (see
//! `package_in`): collect and measure → check the closure → thin (vendor components) and
//! group the NVIDIA ones → archive → variants → check the manifest → write the manifest, its
//! signature, the notices and the report.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_inspect::deps::dynamic_info;
use gpulibs_inspect::{inspect_bytes, FileReport, InspectOptions};
use gpulibs_plan::{
    ArchiveFormat, Artifact, Component, ComponentKind, Coverage, FileEntry, Manifest, Origin,
    SecretKey, Variant, VariantDevice, SCHEMA_VERSION,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::collect::{self, record_form, Collected, Input, InputKind};
use crate::thin::{thin_with, ThinOptions, ThinReport};
use crate::PackageError;

/// Libraries every target machine has: the driver's and glibc/libstdc++'s.
pub const SYSTEM_LIBRARIES: &[&str] = gpulibs_plan::DEFAULT_SYSTEM_LIBRARIES;

/// File-name prefixes of NVIDIA's libraries, which are never modified.
pub const NVIDIA_PREFIXES: &[&str] = &[
    "libcuda.",
    "libcudart",
    "libcublas",
    "libcudnn",
    "libcufft",
    "libcurand",
    "libcusparse",
    "libcusolver",
    "libcupti",
    "libcufile",
    "libcutensor",
    "libcudss",
    "libnvrtc",
    "libnvJitLink",
    "libnvjitlink",
    "libnvinfer",
    "libnvonnxparser",
    "libnvblas",
    "libnvToolsExt",
    "libnvjpeg",
    "libnvidia-",
    "libnvshmem",
    "libnccl",
    "libnpp",
];

/// Whether a library file name is one of NVIDIA's.
pub fn is_nvidia_library(name: &str) -> bool {
    NVIDIA_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// zstd settings for the archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZstdSettings {
    pub level: i32,
    /// log2 of the match window; 27 = 128 MiB (decoders need `--long=27` or more).
    pub window_log: u32,
    pub long_distance_matching: bool,
    /// Compression threads (0: single-threaded).
    pub workers: u32,
}

impl Default for ZstdSettings {
    /// Level 19, 128 MiB window with long-distance matching, 2 threads: see docs/package.md for
    /// the measurements behind it.
    fn default() -> Self {
        Self {
            level: 19,
            window_log: 27,
            long_distance_matching: true,
            workers: 2,
        }
    }
}

/// What to package.
#[derive(Debug, Clone)]
pub struct PackageRequest {
    /// The application the release is for.
    pub app: String,
    /// The release's version.
    pub version: String,
    /// Build directories, wheels (`.whl`) and tarballs (`.tar`, `.tar.gz`, `.tar.zst`).
    pub inputs: Vec<PathBuf>,
    /// Where archives, the manifest and notices are written (created; must be empty or absent).
    pub out: PathBuf,
    /// Targets for per-architecture components of the vendor's CUDA libraries; empty: one
    /// universal component.
    pub per_arch: Vec<ComputeCapability>,
    /// Driver bound for the PTX chosen when thinning (see [`crate::thin()`]); `None`: any ISA.
    pub driver: Option<CudaVersion>,
    /// Id prefix of the vendor's components: `onnxruntime`.
    pub name: String,
    /// Component version of the vendor's libraries; default: the release version.
    pub component_version: Option<String>,
    /// CUDA runtime the libraries were built against; default: read from the packaged CUDA
    /// runtime, or from the `libcudart.so.N` they need.
    pub cuda: Option<CudaVersion>,
    /// URL prefix of the archives in the manifest (`https://downloads.example.com/app/1.0/`);
    /// empty: bare file names, to be served next to the manifest.
    pub base_url: String,
    /// Libraries expected from the system (default [`SYSTEM_LIBRARIES`]).
    pub system_libraries: Vec<String>,
    /// File names (or `prefix*suffix` patterns) to leave out: `libonnxruntime_providers_tensorrt.so`.
    pub exclude: Vec<String>,
    /// Drop NVIDIA libraries nothing in the package loads (by `DT_NEEDED` or by name).
    pub prune_unreferenced: bool,
    /// Sign the manifest with this key (writes `manifest.toml.minisig`).
    pub sign_key: Option<SecretKey>,
    pub zstd: ZstdSettings,
}

impl PackageRequest {
    /// A request with the defaults: component name `onnxruntime`, system list
    /// [`SYSTEM_LIBRARIES`], pruning on, default zstd settings.
    pub fn new(app: &str, version: &str, inputs: Vec<PathBuf>, out: PathBuf) -> Self {
        Self {
            app: app.into(),
            version: version.into(),
            inputs,
            out,
            per_arch: Vec::new(),
            driver: None,
            name: "onnxruntime".into(),
            component_version: None,
            cuda: None,
            base_url: String::new(),
            system_libraries: SYSTEM_LIBRARIES.iter().map(|s| s.to_string()).collect(),
            exclude: Vec::new(),
            prune_unreferenced: true,
            sign_key: None,
            zstd: ZstdSettings::default(),
        }
    }
}

/// One library in the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryReport {
    pub name: String,
    pub soname: Option<String>,
    pub links: Vec<String>,
    pub sha256: String,
    pub size: u64,
    /// Input it came from (file name of the wheel or tarball, or the directory).
    pub source: String,
    pub nvidia: bool,
    /// How an NVIDIA library's bytes were checked against NVIDIA's release.
    pub verified: Option<String>,
    pub has_cuda_code: bool,
    pub needed: Vec<String>,
    pub runtime_names: Vec<String>,
}

/// One written archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentReport {
    pub id: String,
    pub archive: PathBuf,
    pub sha256: String,
    /// Compressed bytes.
    pub size: u64,
    /// Bytes of the files inside.
    pub unpacked_size: u64,
    pub files: Vec<String>,
    /// Seconds spent compressing.
    pub seconds: f64,
}

/// Everything [`package`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageReport {
    pub manifest: PathBuf,
    pub signature: Option<PathBuf>,
    pub notices: PathBuf,
    pub libraries: Vec<LibraryReport>,
    /// NVIDIA libraries left out because nothing in the package loads them.
    pub pruned: Vec<String>,
    pub components: Vec<ComponentReport>,
    /// Per target, per thinned library.
    pub thinning: Vec<(String, String, ThinReport)>,
    /// Names the code may `dlopen` that neither the package nor the system list provides,
    /// grouped by what the vendor must do about them.
    pub warnings: PackageWarnings,
}

/// Libraries the packaged code may load at run time that neither the package nor the system
/// list provides, in two groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageWarnings {
    /// NVIDIA libraries nothing in the package or on the system list provides at any version
    /// (cuDNN, cuFFT when their wheels were not given): the code fails at run time where it
    /// loads them. Add their wheel to the inputs or declare them as system libraries.
    pub must_act: Vec<RuntimeWarning>,
    /// Optional loads that need nothing: ONNX Runtime's other execution providers (TensorRT,
    /// OpenVINO, …), which it loads only when the app asks for them, and other CUDA majors'
    /// names of a library the package carries (the CUDA 12 fallback's `libcudart.so.12`).
    pub information: Vec<RuntimeWarning>,
}

impl PackageWarnings {
    /// No warning in either group.
    pub fn is_empty(&self) -> bool {
        self.must_act.is_empty() && self.information.is_empty()
    }

    /// Every warning, those to act on first.
    pub fn iter(&self) -> impl Iterator<Item = &RuntimeWarning> {
        self.must_act.iter().chain(&self.information)
    }
}

/// Which group a [`RuntimeWarning`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningAction {
    MustAct,
    Information,
}

/// A name the code may load at run time that the package and the system list lack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeWarning {
    /// The name as found in the code (`libcudnn.so.9`).
    pub library: String,
    /// The packaged libraries whose code names it.
    pub loaded_by: Vec<String>,
    pub action: WarningAction,
    /// Why it is in its group and what to do, in words.
    pub message: String,
}

struct Lib {
    c: Collected,
    soname: Option<String>,
    needed: Vec<String>,
    runtime_names: Vec<String>,
    nvidia: bool,
    verified: Option<String>,
    report: FileReport,
}

impl Lib {
    /// Every name this library answers to: file name, SONAME, links.
    fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.c.name.as_str())
            .chain(self.soname.as_deref())
            .chain(self.c.links.iter().map(String::as_str))
    }

    /// Links to create next to the file: its input links and its SONAME when that differs.
    fn link_names(&self) -> Vec<String> {
        let mut l: BTreeSet<String> = self.c.links.clone();
        if let Some(s) = &self.soname {
            if s != &self.c.name {
                l.insert(s.clone());
            }
        }
        l.into_iter().collect()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What packaging is doing, for a progress display (the CLI's): each phase that can take
/// seconds says when it starts.
#[derive(Debug)]
pub enum PackageEvent<'a> {
    /// Reading the inputs (unpacking wheels and tarballs) and measuring every library.
    Collecting { inputs: usize },
    /// `library` being thinned to `target` (`--per-arch`).
    Thinning { library: &'a str, target: &'a str },
    /// `component`'s archive being compressed: its files' bytes before compression.
    Compressing { component: &'a str, bytes: u64 },
}

/// Packages the inputs: see the crate documentation and docs/package.md.
pub fn package(req: &PackageRequest) -> Result<PackageReport, PackageError> {
    package_with(req, &|_| {})
}

/// [`package`], saying each slow step to `progress`.
pub fn package_with(
    req: &PackageRequest,
    progress: &dyn Fn(&PackageEvent<'_>),
) -> Result<PackageReport, PackageError> {
    if req.out.exists()
        && std::fs::read_dir(&req.out)
            .map_err(io(&req.out))?
            .next()
            .is_some()
    {
        return Err(PackageError::OutNotEmpty {
            path: req.out.clone(),
        });
    }
    std::fs::create_dir_all(&req.out).map_err(io(&req.out))?;
    let work = req.out.join(".work");
    let result = package_in(req, &work, progress);
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The phases: [`collect_and_measure`] → [`check_closure`] → [`vendor_components`] (thinning)
/// and [`nvidia_components`] → [`archive`] → [`variants`] → [`check_manifest`] →
/// [`write_manifest`] → [`write_notices`] → [`write_report`].
fn package_in(
    req: &PackageRequest,
    work: &Path,
    progress: &dyn Fn(&PackageEvent<'_>),
) -> Result<PackageReport, PackageError> {
    progress(&PackageEvent::Collecting {
        inputs: req.inputs.len(),
    });
    let (inputs, libs) = collect_and_measure(req, work)?;
    let (libs, pruned, warnings) = check_closure(req, libs, &inputs)?;
    let cuda = cuda_version(req, &libs, &inputs)?;
    let (mut comps, thinning) = vendor_components(req, work, &libs, &inputs, progress)?;
    comps.extend(nvidia_components(&libs, &inputs));
    let (manifest_components, reports) = archive(req, work, &libs, &comps, cuda, progress)?;
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        app: req.app.clone(),
        version: req.version.clone(),
        description: None,
        components: manifest_components,
        variants: variants(req, &libs, &comps),
        verify: Default::default(),
    };
    check_manifest(req, &manifest)?;
    let (manifest_path, signature) = write_manifest(req, &manifest)?;
    let notices = write_notices(req, &comps)?;
    write_report(
        req,
        PackageReport {
            manifest: manifest_path,
            signature,
            notices,
            libraries: libs
                .iter()
                .map(|l| LibraryReport {
                    name: l.c.name.clone(),
                    soname: l.soname.clone(),
                    links: l.link_names(),
                    sha256: l.c.sha256.clone(),
                    size: l.c.size,
                    source: inputs[l.c.input].name.clone(),
                    nvidia: l.nvidia,
                    verified: l.verified.clone(),
                    has_cuda_code: l.report.has_cuda_code(),
                    needed: l.needed.clone(),
                    runtime_names: l.runtime_names.clone(),
                })
                .collect(),
            pruned,
            components: reports,
            thinning,
            warnings,
        },
    )
}

/// Collect: the libraries of the inputs (excluded ones left out), each measured: its SONAME,
/// `DT_NEEDED`, run-time names and kernels.
fn collect_and_measure(
    req: &PackageRequest,
    work: &Path,
) -> Result<(Vec<Input>, Vec<Lib>), PackageError> {
    let (inputs, collected) = collect::collect(&req.inputs, work, &req.exclude)?;
    if collected.is_empty() {
        return Err(PackageError::NoLibraries {
            inputs: req.inputs.clone(),
        });
    }
    let mut libs = Vec::new();
    for c in collected {
        let bytes = std::fs::read(&c.path).map_err(io(&c.path))?;
        let info = dynamic_info(&bytes).map_err(|e| PackageError::NotALibrary {
            path: c.path.clone(),
            message: e.to_string(),
        })?;
        let report = inspect_bytes(Path::new(&c.name), &bytes, &InspectOptions::default());
        let nvidia = is_nvidia_library(&c.name);
        libs.push(Lib {
            soname: info.soname,
            needed: info.needed,
            runtime_names: info.runtime_names.into_iter().map(|r| r.name).collect(),
            nvidia,
            verified: None,
            report,
            c,
        });
    }
    Ok((inputs, libs))
}

/// Check: NVIDIA libraries byte-identical to NVIDIA's release, the unreferenced ones pruned
/// (when asked), and every name the code needs found in the package or the declared system list.
fn check_closure(
    req: &PackageRequest,
    mut libs: Vec<Lib>,
    inputs: &[Input],
) -> Result<(Vec<Lib>, Vec<String>, PackageWarnings), PackageError> {
    verify_nvidia(&mut libs, inputs)?;
    let pruned = if req.prune_unreferenced {
        prune(&mut libs)
    } else {
        Vec::new()
    };
    let warnings = closure(&libs, &req.system_libraries)?;
    Ok((libs, pruned, warnings))
}

/// One archive to write: its id, kind, version, members as (library index, staged path,
/// sha256, size, the thinned library's report) and, for an NVIDIA component, its notice.
struct Comp {
    id: String,
    kind: ComponentKind,
    version: String,
    members: Vec<Member>,
    notice: Option<String>,
}

type Member = (usize, PathBuf, String, u64, Option<FileReport>);

/// What thinning did, as [`PackageReport::thinning`] lists it.
type Thinning = Vec<(String, String, ThinReport)>;

fn member(i: usize, l: &Lib) -> Member {
    (i, l.c.path.clone(), l.c.sha256.clone(), l.c.size, None)
}

/// Thin: the vendor's own libraries as one component or, per GPU architecture asked for, the
/// ones with CUDA code thinned to it (one component each) next to the plain ones.
fn vendor_components(
    req: &PackageRequest,
    work: &Path,
    libs: &[Lib],
    inputs: &[Input],
    progress: &dyn Fn(&PackageEvent<'_>),
) -> Result<(Vec<Comp>, Thinning), PackageError> {
    let vendor_version = req
        .component_version
        .clone()
        .or_else(|| onnxruntime_version(libs, inputs))
        .unwrap_or_else(|| req.version.clone());
    let vendor_kind = if libs
        .iter()
        .any(|l| !l.nvidia && l.c.name.starts_with("libonnxruntime"))
    {
        ComponentKind::Onnxruntime
    } else {
        ComponentKind::Other
    };
    let mut comps: Vec<Comp> = Vec::new();
    let mut thinning = Vec::new();
    let vendor: Vec<usize> = (0..libs.len()).filter(|&i| !libs[i].nvidia).collect();
    if req.per_arch.is_empty() {
        if !vendor.is_empty() {
            comps.push(Comp {
                id: req.name.clone(),
                kind: vendor_kind,
                version: vendor_version.clone(),
                members: vendor.iter().map(|&i| member(i, &libs[i])).collect(),
                notice: None,
            });
        }
    } else {
        let (cuda_libs, plain): (Vec<usize>, Vec<usize>) = vendor
            .iter()
            .partition(|&&i| libs[i].report.has_cuda_code());
        if cuda_libs.is_empty() {
            return Err(PackageError::NothingToThin);
        }
        if !plain.is_empty() {
            comps.push(Comp {
                id: req.name.clone(),
                kind: vendor_kind,
                version: vendor_version.clone(),
                members: plain.iter().map(|&i| member(i, &libs[i])).collect(),
                notice: None,
            });
        }
        for &target in &req.per_arch {
            let sm = target.sm_name();
            let dir = work.join(format!("thin-{sm}"));
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let mut members = Vec::new();
            for &i in &cuda_libs {
                let l = &libs[i];
                progress(&PackageEvent::Thinning {
                    library: &l.c.name,
                    target: &sm,
                });
                let mut data = std::fs::read(&l.c.path).map_err(io(&l.c.path))?;
                let r = thin_with(&mut data, target, req.driver, &ThinOptions::default()).map_err(
                    |e| PackageError::Thin {
                        library: l.c.name.clone(),
                        target: sm.clone(),
                        source: Box::new(e),
                    },
                )?;
                let dst = dir.join(&l.c.name);
                std::fs::write(&dst, &data).map_err(io(&dst))?;
                let sha = collect::hex(&Sha256::digest(&data));
                let rep = inspect_bytes(Path::new(&l.c.name), &data, &InspectOptions::default());
                members.push((i, dst, sha, data.len() as u64, Some(rep)));
                thinning.push((sm.clone(), l.c.name.clone(), r));
            }
            comps.push(Comp {
                id: format!("{}-cuda-{sm}", req.name),
                kind: vendor_kind,
                version: vendor_version.clone(),
                members,
                notice: None,
            });
        }
    }
    Ok((comps, thinning))
}

/// NVIDIA libraries: one component per source wheel or tarball, byte for byte.
fn nvidia_components(libs: &[Lib], inputs: &[Input]) -> Vec<Comp> {
    let mut comps = Vec::new();
    let mut by_input: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, l) in libs.iter().enumerate().filter(|(_, l)| l.nvidia) {
        by_input.entry(l.c.input).or_default().push(i);
    }
    for (input, members) in by_input {
        let inp = &inputs[input];
        let (id, version) = nvidia_component_name(inp);
        let names: Vec<&str> = members.iter().map(|&i| libs[i].c.name.as_str()).collect();
        comps.push(Comp {
            kind: nvidia_kind(&names),
            notice: Some(notice_for(&id, inp, members.iter().map(|&i| &libs[i]))),
            id,
            version,
            members: members.iter().map(|&i| member(i, &libs[i])).collect(),
        });
    }

    comps
}

/// Archive: each component as a `.tar.zst` in `req.out`, and what the manifest says of it.
fn archive(
    req: &PackageRequest,
    work: &Path,
    libs: &[Lib],
    comps: &[Comp],
    cuda: Option<CudaVersion>,
    progress: &dyn Fn(&PackageEvent<'_>),
) -> Result<(Vec<Component>, Vec<ComponentReport>), PackageError> {
    let mut manifest_components = Vec::new();
    let mut reports = Vec::new();
    for comp in comps {
        progress(&PackageEvent::Compressing {
            component: &comp.id,
            bytes: comp.members.iter().map(|m| m.3).sum(),
        });
        let (component, report) = archive_component(req, work, libs, comp, cuda)?;
        manifest_components.push(component);
        reports.push(report);
    }
    Ok((manifest_components, reports))
}

fn archive_component(
    req: &PackageRequest,
    work: &Path,
    libs: &[Lib],
    comp: &Comp,
    cuda: Option<CudaVersion>,
) -> Result<(Component, ComponentReport), PackageError> {
    let file_name = format!("{}-{}.tar.zst", comp.id, comp.version);
    let archive = req.out.join(&file_name);
    let mut entries: Vec<TarItem> = Vec::new();
    let mut files = Vec::new();
    let mut provides = BTreeSet::new();
    let mut needs = BTreeSet::new();
    let mut narrowest: Option<&FileReport> = None;
    for (i, path, sha, size, thinned) in &comp.members {
        let l = &libs[*i];
        let links = l.link_names();
        entries.push(TarItem::File {
            name: format!("lib/{}", l.c.name),
            path: path.clone(),
        });
        for link in &links {
            entries.push(TarItem::Link {
                name: format!("lib/{link}"),
                target: l.c.name.clone(),
            });
        }
        files.push(FileEntry {
            path: format!("lib/{}", l.c.name),
            sha256: sha.clone(),
            size: *size,
            soname_links: links,
        });
        provides.insert(l.soname.clone().unwrap_or_else(|| l.c.name.clone()));
        needs.extend(l.needed.iter().cloned());
        // A library the code loads by name, and that the vendor declared as expected from
        // the system (`--system libcudnn.so.9`), is a need like a DT_NEEDED one: the
        // planner must find it, and the install must hand its directory to the app.
        needs.extend(
            l.runtime_names
                .iter()
                .filter(|n| {
                    req.system_libraries.contains(n) && !SYSTEM_LIBRARIES.contains(&n.as_str())
                })
                .cloned(),
        );
        let rep = thinned.as_ref().unwrap_or(&l.report);
        if rep.has_cuda_code() {
            let narrower = match narrowest {
                None => true,
                Some(n) => {
                    (rep.sass_targets.len(), rep.ptx_targets.len())
                        < (n.sass_targets.len(), n.ptx_targets.len())
                }
            };
            if narrower {
                narrowest = Some(rep);
            }
        }
    }
    let notice_name = format!("share/gpulibs/{}/THIRD_PARTY_NOTICES.txt", comp.id);
    let notice_path = work.join(format!("notice-{}.txt", comp.id));
    if let Some(text) = &comp.notice {
        std::fs::write(&notice_path, text).map_err(io(&notice_path))?;
        entries.push(TarItem::File {
            name: notice_name.clone(),
            path: notice_path.clone(),
        });
    }
    let started = std::time::Instant::now();
    let (sha256, size, unpacked) = write_tar_zst(&archive, &entries, &req.zstd)?;
    let seconds = started.elapsed().as_secs_f64();
    let names_here: BTreeSet<String> = comp
        .members
        .iter()
        .flat_map(|(i, ..)| libs[*i].names().map(String::from).collect::<Vec<_>>())
        .collect();
    needs.retain(|n| !names_here.contains(n));
    let uses_cuda = narrowest.is_some()
        || comp.kind != ComponentKind::Onnxruntime
        || needs.iter().any(|n| n.starts_with("libcudart"));
    let component = Component {
        id: comp.id.clone(),
        kind: comp.kind,
        version: comp.version.clone(),
        origin: Origin::Vendor,
        archive: Artifact {
            url: format!("{}{}", req.base_url, file_name),
            mirrors: Vec::new(),
            sha256: sha256.clone(),
            size,
            unpacked_size: Some(unpacked),
            format: ArchiveFormat::TarZst,
        },
        files,
        cuda: if uses_cuda { cuda } else { None },
        min_driver: None,
        coverage: narrowest.map(coverage_of),
        provides: provides.into_iter().collect(),
        needs: needs.into_iter().collect(),
        reuse: Default::default(),
    };
    let report = ComponentReport {
        id: comp.id.clone(),
        archive,
        sha256,
        size,
        unpacked_size: unpacked,
        files: comp
            .members
            .iter()
            .map(|(i, ..)| libs[*i].c.name.clone())
            .collect(),
        seconds,
    };
    Ok((component, report))
}

/// The variants: `cpu` or `cuda` for a plain package, one per GPU architecture when thinned.
fn variants(req: &PackageRequest, libs: &[Lib], comps: &[Comp]) -> Vec<Variant> {
    let nvidia_ids: Vec<String> = comps
        .iter()
        .filter(|c| c.notice.is_some())
        .map(|c| c.id.clone())
        .collect();
    let mut variants = Vec::new();
    if req.per_arch.is_empty() && is_cpu_only(libs) {
        variants.push(Variant {
            name: "cpu".into(),
            components: comps.iter().map(|c| c.id.clone()).collect(),
            description: Some("CPU: the inputs carry no CUDA code and no CUDA provider".into()),
            device: VariantDevice::Cpu,
            min_gpu_memory_bytes: None,
        });
    } else if req.per_arch.is_empty() {
        variants.push(Variant {
            name: "cuda".into(),
            components: comps.iter().map(|c| c.id.clone()).collect(),
            description: Some("GPU: every architecture the libraries carry".into()),
            device: VariantDevice::Cuda,
            min_gpu_memory_bytes: None,
        });
    } else {
        let shared: Vec<String> = comps
            .iter()
            .filter(|c| c.id == req.name)
            .map(|c| c.id.clone())
            .collect();
        for t in &req.per_arch {
            let sm = t.sm_name();
            let mut components = shared.clone();
            components.push(format!("{}-cuda-{sm}", req.name));
            components.extend(nvidia_ids.iter().cloned());
            variants.push(Variant {
                name: sm.clone(),
                components,
                description: Some(format!(
                    "GPU: compute capability {t}, kernels thinned to {sm}"
                )),
                device: VariantDevice::Cuda,
                min_gpu_memory_bytes: None,
            });
        }
    }
    variants
}

/// The manifest's rules, and no variant that no machine could ever install.
fn check_manifest(req: &PackageRequest, manifest: &Manifest) -> Result<(), PackageError> {
    let problems = gpulibs_plan::validate(
        manifest,
        &req.system_libraries,
        &gpulibs_plan::SystemInventory::default(),
    );
    if !problems.is_empty() {
        return Err(PackageError::InvalidManifest {
            problems: problems.iter().map(|p| p.to_string()).collect(),
        });
    }
    let never = never_installable(manifest, &req.system_libraries);
    if !never.is_empty() {
        return Err(PackageError::NeverInstallable { variants: never });
    }
    Ok(())
}

/// Manifest: `manifest.toml`, signed into `manifest.toml.minisig` when a key was given.
fn write_manifest(
    req: &PackageRequest,
    manifest: &Manifest,
) -> Result<(PathBuf, Option<PathBuf>), PackageError> {
    let text = gpulibs_plan::to_toml(manifest);
    let manifest_path = req.out.join("manifest.toml");
    std::fs::write(&manifest_path, &text).map_err(io(&manifest_path))?;
    let signature = match &req.sign_key {
        Some(key) => {
            let p = req.out.join("manifest.toml.minisig");
            std::fs::write(&p, gpulibs_plan::sign_manifest(text.as_bytes(), key))
                .map_err(io(&p))?;
            Some(p)
        }
        None => None,
    };
    Ok((manifest_path, signature))
}

/// `THIRD_PARTY_NOTICES.txt`: the notices of every NVIDIA component.
fn write_notices(req: &PackageRequest, comps: &[Comp]) -> Result<PathBuf, PackageError> {
    let notices = req.out.join("THIRD_PARTY_NOTICES.txt");
    let all: String = comps
        .iter()
        .filter_map(|c| c.notice.clone())
        .collect::<Vec<_>>()
        .join("\n\n");
    std::fs::write(
        &notices,
        if all.is_empty() {
            "This package contains no third-party libraries.\n".to_string()
        } else {
            all
        },
    )
    .map_err(io(&notices))?;

    Ok(notices)
}

/// `package-report.json`, and the report returned.
fn write_report(
    req: &PackageRequest,
    report: PackageReport,
) -> Result<PackageReport, PackageError> {
    let rp = req.out.join("package-report.json");
    std::fs::write(
        &rp,
        serde_json::to_string_pretty(&report).expect("a report always serializes"),
    )
    .map_err(io(&rp))?;
    Ok(report)
}

/// NVIDIA libraries must be byte-identical to NVIDIA's release: a wheel's own `RECORD` digest,
/// or the same file in a wheel or tarball given as input.
fn verify_nvidia(libs: &mut [Lib], inputs: &[Input]) -> Result<(), PackageError> {
    for l in libs.iter_mut().filter(|l| l.nvidia) {
        let inp = &inputs[l.c.input];
        match inp.kind {
            InputKind::Wheel => match &l.c.record_sha256 {
                Some(r) if *r == record_form(&l.c.sha256) => {
                    l.verified = Some(format!(
                        "sha256 {} matches the RECORD of {} (sha256 {})",
                        l.c.sha256,
                        inp.name,
                        inp.sha256.as_deref().unwrap_or("?")
                    ));
                }
                Some(r) => {
                    return Err(PackageError::NvidiaModified {
                        name: l.c.name.clone(),
                        source_name: inp.name.clone(),
                        expected: r.clone(),
                        found: record_form(&l.c.sha256),
                    })
                }
                None => {
                    return Err(PackageError::NvidiaUnverified {
                        name: l.c.name.clone(),
                        source_name: inp.name.clone(),
                    })
                }
            },
            InputKind::Tarball => {
                l.verified = Some(format!(
                    "sha256 {}, extracted unchanged from {} (sha256 {})",
                    l.c.sha256,
                    inp.name,
                    inp.sha256.as_deref().unwrap_or("?")
                ));
            }
            // `collect` already preferred a wheel's or tarball's identical copy, so a library
            // still from a directory has no official copy among the inputs.
            InputKind::Directory => {
                return Err(PackageError::NvidiaUnverified {
                    name: l.c.name.clone(),
                    source_name: inp.name.clone(),
                })
            }
        }
    }
    Ok(())
}

/// Keeps the NVIDIA libraries reachable from the vendor's libraries through `DT_NEEDED` and
/// run-time names; returns the names of the others, which are dropped.
fn prune(libs: &mut Vec<Lib>) -> Vec<String> {
    if libs.iter().all(|l| l.nvidia) {
        return Vec::new();
    }
    let index: BTreeMap<String, usize> = libs
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            l.names()
                .map(move |n| (n.to_string(), i))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut seen: BTreeSet<usize> = (0..libs.len()).filter(|&i| !libs[i].nvidia).collect();
    let mut stack: Vec<usize> = seen.iter().copied().collect();
    while let Some(i) = stack.pop() {
        let l = &libs[i];
        for n in l.needed.iter().chain(&l.runtime_names) {
            let base = n.rsplit('/').next().unwrap_or(n);
            for (name, &j) in &index {
                if runtime_name_matches(base, name) && seen.insert(j) {
                    stack.push(j);
                }
            }
        }
    }
    let mut dropped = Vec::new();
    let mut i = 0;
    libs.retain(|l| {
        let keep = seen.contains(&i);
        i += 1;
        if !keep {
            dropped.push(l.c.name.clone());
        }
        keep
    });
    dropped
}

/// Whether a library named `name` answers a load of `wanted`: the same name, or a versioned
/// file of an unversioned name (cuDNN builds `libcudnn_ops.so` + `.9` at run time, so the name
/// in its data is `libcudnn_ops.so` and the file is `libcudnn_ops.so.9`).
pub fn runtime_name_matches(wanted: &str, name: &str) -> bool {
    name == wanted
        || (wanted.ends_with(".so")
            && name
                .strip_prefix(wanted)
                .is_some_and(|rest| rest.starts_with('.')))
}

/// Every `DT_NEEDED` must be in the package or on the system list; run-time names that are
/// neither are warnings, grouped by [`classify_runtime_name`].
fn closure(libs: &[Lib], system: &[String]) -> Result<PackageWarnings, PackageError> {
    let have: BTreeSet<&str> = libs.iter().flat_map(Lib::names).collect();
    let sys: BTreeSet<&str> = system.iter().map(String::as_str).collect();
    let available: Vec<&str> = have.iter().chain(&sys).copied().collect();
    let mut missing = Vec::new();
    let mut unmet: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in libs {
        for n in &l.needed {
            if !have.contains(n.as_str()) && !sys.contains(n.as_str()) {
                missing.push((n.clone(), l.c.name.clone()));
            }
        }
        for n in &l.runtime_names {
            let base = n.rsplit('/').next().unwrap_or(n);
            if !available.iter().any(|h| runtime_name_matches(base, h)) {
                unmet.entry(n.clone()).or_default().insert(l.c.name.clone());
            }
        }
    }
    if !missing.is_empty() {
        return Err(PackageError::Closure { missing });
    }
    let mut warnings = PackageWarnings::default();
    for (name, by) in unmet {
        let base = name.rsplit('/').next().unwrap_or(&name);
        let (action, message) = classify_runtime_name(base, &available);
        let w = RuntimeWarning {
            library: name.clone(),
            loaded_by: by.into_iter().collect(),
            action,
            message,
        };
        match action {
            WarningAction::MustAct => warnings.must_act.push(w),
            WarningAction::Information => warnings.information.push(w),
        }
    }
    Ok(warnings)
}

/// The library's name without its `.so` suffix and version: `libcudnn.so.9` → `libcudnn`.
fn library_stem(name: &str) -> &str {
    name.split_once(".so").map_or(name, |(stem, _)| stem)
}

/// Which group a name the code may load belongs to, given every name the package and the
/// system list provide, and the sentence that says why.
///
/// An NVIDIA library that nothing provides at any version must be acted on: the code that
/// loads it (cuDNN's convolutions, cuFFT's FFT ops) fails at run time. One provided at another
/// version (`libcudart.so.12` when `libcudart.so.13` is packaged) is another CUDA major's
/// fallback, and anything else (ONNX Runtime's TensorRT, OpenVINO, … providers) is an optional
/// load the app asks for by name: both are information.
pub fn classify_runtime_name(name: &str, available: &[&str]) -> (WarningAction, String) {
    let stem = library_stem(name);
    if !is_nvidia_library(name) {
        return (
            WarningAction::Information,
            format!(
                "{name} is loaded only when the app asks for it (an optional execution provider \
                 or plug-in); nothing to do unless the app uses it, then add it to --from"
            ),
        );
    }
    match available.iter().find(|a| library_stem(a) == stem) {
        Some(other) => (
            WarningAction::Information,
            format!("{name} is another version's name of {other}, which is provided"),
        ),
        None => (
            WarningAction::MustAct,
            format!(
                "{name} is neither packaged nor on the system list at any version; add the wheel \
                 or archive that carries it to --from, or declare it with --system {name}"
            ),
        ),
    }
}

/// ONNX Runtime's version, from its versioned library (`libonnxruntime.so.1.31.1`, as build
/// output and wheels name it) or else from the `onnxruntime*` wheel it came from.
fn onnxruntime_version(libs: &[Lib], inputs: &[Input]) -> Option<String> {
    let ort = libs.iter().filter(|l| !l.nvidia);
    let from_name = ort.clone().find_map(|l| {
        std::iter::once(l.c.name.as_str())
            .chain(l.c.links.iter().map(String::as_str))
            .find_map(|n| n.strip_prefix("libonnxruntime.so."))
            .filter(|v| v.split('.').count() >= 3 && v.split('.').all(|p| p.parse::<u64>().is_ok()))
            .map(String::from)
    });
    from_name.or_else(|| {
        ort.filter(|l| l.c.name.starts_with("libonnxruntime"))
            .find_map(|l| inputs[l.c.input].dist.as_ref())
            .filter(|(dist, _)| dist.to_lowercase().starts_with("onnxruntime"))
            .map(|(_, v)| v.clone())
    })
}

/// Whether the libraries make a CPU-only runtime: none carries CUDA code, none is ONNX
/// Runtime's CUDA provider, none is NVIDIA's and none links one of NVIDIA's (a provider built
/// without kernels is still a GPU build, and is refused later as a variant no GPU can run).
fn is_cpu_only(libs: &[Lib]) -> bool {
    libs.iter().all(|l| {
        !l.nvidia
            && !l.report.has_cuda_code()
            && !l.c.name.starts_with("libonnxruntime_providers_cuda")
            && !l.needed.iter().any(|n| is_nvidia_library(n))
    })
}

/// Compute capabilities a manifest's GPU variant is planned against: every one NVIDIA has
/// shipped from Kepler's 3.5 to Blackwell's 12.1.
pub const PLANNABLE_CCS: &[(u32, u32)] = &[
    (3, 5),
    (3, 7),
    (5, 0),
    (5, 2),
    (5, 3),
    (6, 0),
    (6, 1),
    (6, 2),
    (7, 0),
    (7, 2),
    (7, 5),
    (8, 0),
    (8, 6),
    (8, 7),
    (8, 9),
    (9, 0),
    (10, 0),
    (10, 3),
    (11, 0),
    (12, 0),
    (12, 1),
];

/// The GPU variants the planner would choose on no GPU: each planned alone, with the system
/// list and no other library on the machine, for one GPU of every compute capability in
/// [`PLANNABLE_CCS`], the driver unknown. Returns each such variant with the
/// planner's reasons on the newest GPU.
pub fn never_installable(
    manifest: &Manifest,
    system_libraries: &[String],
) -> Vec<(String, String)> {
    let policy = gpulibs_plan::Policy {
        system_libraries: system_libraries.to_vec(),
        reuse_system: false,
        allow_unsigned: true,
        ..Default::default()
    };
    let system = gpulibs_plan::SystemInventory::default();
    let mut never = Vec::new();
    for v in manifest
        .variants
        .iter()
        .filter(|v| v.device == VariantDevice::Cuda)
    {
        let alone = Manifest {
            variants: vec![v.clone()],
            ..manifest.clone()
        };
        let mut last_reasons = String::new();
        let runs_somewhere = PLANNABLE_CCS.iter().any(|&(major, minor)| {
            let host =
                gpulibs_plan::Host::synthetic(&[ComputeCapability::new(major, minor)], None, None);
            let plan = gpulibs_plan::plan(&host, &alone, &system, &policy);
            if plan.chosen.as_ref().is_some_and(|c| c.variant == v.name) {
                return true;
            }
            last_reasons = plan
                .rejected
                .iter()
                .filter(|r| r.variant == v.name)
                .flat_map(|r| r.reasons.iter().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join("; ");
            false
        });
        if !runs_somewhere {
            never.push((v.name.clone(), last_reasons));
        }
    }
    never
}

fn cuda_version(
    req: &PackageRequest,
    libs: &[Lib],
    inputs: &[Input],
) -> Result<Option<CudaVersion>, PackageError> {
    if req.cuda.is_some() {
        return Ok(req.cuda);
    }
    // The packaged CUDA runtime's wheel version: nvidia_cuda_runtime-13.0.96 → 13.0.
    for l in libs.iter().filter(|l| l.c.name.starts_with("libcudart.so")) {
        if let Some((_, v)) = &inputs[l.c.input].dist {
            let mut it = v.split('.');
            if let (Some(Ok(a)), Some(Ok(b))) =
                (it.next().map(str::parse), it.next().map(str::parse))
            {
                return Ok(Some(CudaVersion::new(a, b)));
            }
        }
    }
    let needs_cuda = libs
        .iter()
        .any(|l| l.report.has_cuda_code() || l.needed.iter().any(|n| n.starts_with("libcudart")));
    if !needs_cuda {
        return Ok(None);
    }
    // The major from `libcudart.so.N`.
    for l in libs {
        for n in l.needed.iter().chain(l.soname.iter()) {
            if let Some(m) = n.strip_prefix("libcudart.so.") {
                if let Ok(major) = m.split('.').next().unwrap_or("").parse() {
                    return Ok(Some(CudaVersion::new(major, 0)));
                }
            }
        }
    }
    Err(PackageError::UnknownCuda)
}

fn nvidia_component_name(inp: &Input) -> (String, String) {
    match &inp.dist {
        Some((dist, version)) => (dist.to_lowercase().replace('_', "-"), version.clone()),
        None => {
            let stem = inp
                .name
                .trim_end_matches(".tar.zst")
                .trim_end_matches(".tar.gz")
                .trim_end_matches(".tgz")
                .trim_end_matches(".tzst")
                .trim_end_matches(".tar")
                .to_string();
            // `cudnn-linux-x86_64-9.10.2.21_cuda12-archive` → version after the last `-` with
            // a digit, when there is one.
            let version = stem
                .split('-')
                .rev()
                .find(|p| p.starts_with(|c: char| c.is_ascii_digit()))
                .unwrap_or("0")
                .to_string();
            (stem.to_lowercase().replace('_', "-"), version)
        }
    }
}

fn nvidia_kind(names: &[&str]) -> ComponentKind {
    let has = |p: &str| names.iter().any(|n| n.starts_with(p));
    let kinds = [
        ("libcudnn", ComponentKind::Cudnn),
        ("libcublas", ComponentKind::Cublas),
        ("libcudart", ComponentKind::CudaRuntime),
        ("libcufft", ComponentKind::Cufft),
        ("libcurand", ComponentKind::Curand),
        ("libnvrtc", ComponentKind::Nvrtc),
    ];
    let found: Vec<ComponentKind> = kinds
        .iter()
        .filter(|(p, _)| has(p))
        .map(|(_, k)| *k)
        .collect();
    match found.as_slice() {
        [one] => *one,
        _ => ComponentKind::Other,
    }
}

fn notice_for<'a>(id: &str, inp: &Input, libs: impl Iterator<Item = &'a Lib>) -> String {
    let mut s = format!(
        "Component {id}: NVIDIA libraries, redistributed unmodified.\nSource: {} (sha256 {})\n\n",
        inp.name,
        inp.sha256.as_deref().unwrap_or("?")
    );
    for l in libs {
        s.push_str(&format!(
            "  {}  sha256 {}  {} bytes\n",
            l.c.name, l.c.sha256, l.c.size
        ));
    }
    for (name, text) in &inp.licenses {
        s.push_str(&format!("\n---- {name} (from {}) ----\n{text}\n", inp.name));
    }
    s
}

fn coverage_of(r: &FileReport) -> Coverage {
    let mut cov = Coverage::default();
    for k in &r.kernels {
        // How the kernels are stored: a driver before CUDA 12.4 cannot read zstd (rule
        // `fatbin-zstd`, docs/driver-rules.md), so the planner needs it.
        if k.kind == "sass" || k.kind == "ptx" {
            for c in &k.compression {
                if !cov.compression.contains(c) {
                    cov.compression.push(*c);
                }
            }
            if k.compression.contains(&gpulibs_inspect::Compression::Zstd)
                && !cov.zstd_targets.contains(&k.target)
            {
                cov.zstd_targets.push(k.target.clone());
            }
        }
        match k.kind.as_str() {
            "sass" => {
                if let Ok(t) = gpulibs_plan::parse_kernel_target(&k.target) {
                    let t = gpulibs_plan::SassTarget(t);
                    if !cov.sass.contains(&t) {
                        cov.sass.push(t);
                    }
                }
            }
            "ptx" => {
                if let (Ok(t), Some(Ok(isa))) = (
                    gpulibs_plan::parse_kernel_target(&k.target),
                    k.ptx_isa.as_deref().map(str::parse),
                ) {
                    let p = gpulibs_plan::PtxTarget {
                        target: gpulibs_plan::PtxTargetName(t),
                        isa: gpulibs_plan::PtxIsaText(isa),
                    };
                    if !cov.ptx.contains(&p) {
                        cov.ptx.push(p);
                    }
                }
            }
            _ => {}
        }
    }
    cov.compression.sort();
    // Every target zstd: the list says nothing the summary does not.
    let all = cov.sass.len() + cov.ptx.len();
    if cov.zstd_targets.len() >= all {
        cov.zstd_targets.clear();
    }
    cov
}

enum TarItem {
    File { name: String, path: PathBuf },
    Link { name: String, target: String },
}

/// Counts and hashes what passes through.
struct HashWriter<W: Write> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a reproducible tar (sorted as given, mtime 0, uid/gid 0) compressed with zstd;
/// returns (sha256, compressed bytes, file bytes).
fn write_tar_zst(
    dst: &Path,
    items: &[TarItem],
    z: &ZstdSettings,
) -> Result<(String, u64, u64), PackageError> {
    let f = File::create(dst).map_err(io(dst))?;
    let hw = HashWriter {
        inner: BufWriter::new(f),
        hash: Sha256::new(),
        n: 0,
    };
    let mut enc = zstd::stream::write::Encoder::new(hw, z.level).map_err(io(dst))?;
    enc.long_distance_matching(z.long_distance_matching)
        .map_err(io(dst))?;
    enc.window_log(z.window_log).map_err(io(dst))?;
    if z.workers > 0 {
        enc.multithread(z.workers).map_err(io(dst))?;
    }
    let mut tar = tar::Builder::new(enc);
    let mut unpacked = 0u64;
    let mut dirs = BTreeSet::new();
    for it in items {
        let name = match it {
            TarItem::File { name, .. } | TarItem::Link { name, .. } => name,
        };
        let mut parent = String::new();
        for part in name
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|x| x.1)
            .unwrap_or(&[])
        {
            parent.push_str(part);
            parent.push('/');
            if dirs.insert(parent.clone()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_mtime(0);
                h.set_uid(0);
                h.set_gid(0);
                tar.append_data(&mut h, &parent, std::io::empty())
                    .map_err(io(dst))?;
            }
        }
        match it {
            TarItem::File { name, path } => {
                let mut src = File::open(path).map_err(io(path))?;
                let len = src.metadata().map_err(io(path))?.len();
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if name.ends_with(".txt") { 0o644 } else { 0o755 });
                h.set_size(len);
                h.set_mtime(0);
                h.set_uid(0);
                h.set_gid(0);
                tar.append_data(&mut h, name, &mut src).map_err(io(dst))?;
                unpacked += len;
            }
            TarItem::Link { name, target } => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                h.set_mtime(0);
                h.set_uid(0);
                h.set_gid(0);
                tar.append_link(&mut h, name, target).map_err(io(dst))?;
            }
        }
    }
    let enc = tar.into_inner().map_err(io(dst))?;
    let mut hw = enc.finish().map_err(io(dst))?;
    hw.flush().map_err(io(dst))?;
    Ok((collect::hex(&hw.hash.finalize()), hw.n, unpacked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpulibs_inspect::{inspect_bytes, Compression, InspectOptions};
    use gpulibs_testkit::{container, Entry};

    fn coverage(entries: &[Entry]) -> Coverage {
        let bytes = container(entries);
        let r = inspect_bytes(
            std::path::Path::new("t.fatbin"),
            &bytes,
            &InspectOptions::default(),
        );
        coverage_of(&r)
    }

    /// The measured coverage records how the kernels are stored, and which targets are zstd when
    /// only some are (rule fatbin-zstd is judged per entry).
    #[test]
    fn coverage_records_compression_and_zstd_targets() {
        let mixed = coverage(&[
            Entry::sass(86).lz4(),
            Entry::sass(120).zstd(),
            Entry::ptx(120, (8, 8)).zstd(),
        ]);
        assert_eq!(mixed.compression, [Compression::Lz4, Compression::Zstd]);
        assert_eq!(mixed.zstd_targets, ["sm_120", "compute_120"]);
        // All zstd: the summary says it all.
        let all = coverage(&[Entry::sass(86).zstd(), Entry::sass(120).zstd()]);
        assert_eq!(all.compression, [Compression::Zstd]);
        assert!(all.zstd_targets.is_empty());
        let plain = coverage(&[Entry::sass(86)]);
        assert_eq!(plain.compression, [Compression::None]);
        assert!(plain.zstd_targets.is_empty());
    }
}
