//! CUDA libraries already installed on this machine.
//!
//! [`SystemSearch`] says where to look (plain data; [`SystemSearch::from_env`] builds the default
//! from the environment, tests build their own), [`SystemSearch::scan`] looks there and returns a
//! [`SystemScan`]: every library of a known CUDA family that passed the trust checks, in search
//! order, and every candidate that did not, with the reason. [`SystemScan::inventory`] turns it
//! into the planner's [`SystemInventory`].
//!
//! A file is trusted only when all of these hold (see `docs/sources.md`):
//! 1. its name is `lib<family>.so.<version>` for a known family ([`CUDA_LIBRARY_FAMILIES`]);
//! 2. it is an ELF file of this machine's class, byte order and machine (a 32-bit or foreign
//!    library is what `ld.so` would skip too);
//! 3. it is a dynamic object with a `DT_SONAME`, of the same family as its name;
//! 4. its name is the SONAME or the SONAME followed by more version parts (`libcublas.so.13.1.0.3`
//!    for `libcublas.so.13`): the loader asks for the SONAME, so the major must agree.
//!
//! Files are read through a memory map and only the ELF headers and dynamic section are touched,
//! so multi-hundred-megabyte libraries cost a few page reads. Nothing is loaded or executed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use gpulibs_inspect::deps::{dynamic_section, ElfClass, ElfIdentity, LdCache, ParseError};
use gpulibs_plan::{SystemInventory, SystemLibrary};
use serde::{Deserialize, Serialize};

/// Library families looked for, as the part of the file name between `lib` and `.so`. cuDNN's
/// sub-libraries (`cudnn_graph`, `cudnn_engines_precompiled`, ...) match the `cudnn` prefix.
pub const CUDA_LIBRARY_FAMILIES: &[&str] = &[
    "cudart",
    "cublas",
    "cublasLt",
    "cudnn",
    "cufft",
    "cufftw",
    "curand",
    "cusparse",
    "cusolver",
    "nvrtc",
    "nvrtc-builtins",
    "nvJitLink",
];

/// Most directory entries looked at in one directory, and most conda environments or Python
/// installations per base directory: a bound on the work of a scan over a strange file system.
pub const MAX_ENTRIES_PER_DIR: usize = 20_000;
/// See [`MAX_ENTRIES_PER_DIR`].
pub const MAX_ENVIRONMENTS: usize = 64;

/// The family of a library file name: `cublasLt` for `libcublasLt.so.13.1.0.3`, `cudnn_graph`
/// for `libcudnn_graph.so.9`. `None` for other libraries and for unversioned names (`libcudnn.so`
/// is a development link the loader never asks for).
pub fn library_family(file_name: &str) -> Option<&str> {
    let rest = file_name.strip_prefix("lib")?;
    let (stem, version) = rest.split_once(".so.")?;
    if version.is_empty() || !version.split('.').all(is_number) {
        return None;
    }
    let known = CUDA_LIBRARY_FAMILIES.contains(&stem)
        || stem
            .strip_prefix("cudnn_")
            .is_some_and(|sub| !sub.is_empty());
    known.then_some(stem)
}

fn is_number(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
}

/// Where a search directory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootOrigin {
    /// `LD_LIBRARY_PATH`.
    LdLibraryPath,
    /// `$CUDA_HOME` or `$CUDA_PATH`.
    CudaHome,
    /// A CUDA toolkit under `/usr/local/cuda*`.
    CudaToolkit,
    /// A conda environment (`$CONDA_PREFIX`, or `envs/*` of a conda installation).
    Conda,
    /// A Python environment's `site-packages/nvidia/*/lib`.
    PythonEnv,
    /// `/etc/ld.so.cache`.
    LdCache,
    /// Given by the caller.
    Explicit,
}

impl RootOrigin {
    /// The name used in messages and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LdLibraryPath => "LD_LIBRARY_PATH",
            Self::CudaHome => "CUDA_HOME",
            Self::CudaToolkit => "CUDA toolkit",
            Self::Conda => "conda environment",
            Self::PythonEnv => "Python environment",
            Self::LdCache => "ld.so.cache",
            Self::Explicit => "explicit",
        }
    }
}

/// One directory to look in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchRoot {
    pub dir: PathBuf,
    pub origin: RootOrigin,
}

/// Where [`SystemSearch::scan`] looks, in order; earlier finds come first in the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemSearch {
    /// Directories, searched in order. Missing ones are skipped silently.
    pub roots: Vec<SearchRoot>,
    /// The loader cache; its CUDA entries are candidates after every root.
    pub ld_cache: Option<LdCache>,
    /// The ELF identity a library must have to be usable by this process.
    pub identity: ElfIdentity,
}

/// The environment [`SystemSearch::from_env_with`] reads: every input as data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchEnv {
    pub ld_library_path: Option<String>,
    pub cuda_home: Option<PathBuf>,
    pub cuda_path: Option<PathBuf>,
    pub conda_prefix: Option<PathBuf>,
    pub virtual_env: Option<PathBuf>,
    pub pyenv_root: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// The file-system root every absolute default (`/usr/local`, `/usr/lib`, `/opt`) is
    /// taken under: `/` in production, a temporary directory in tests.
    pub fs_root: PathBuf,
    /// The loader cache file; `None`: none.
    pub ld_cache_file: Option<PathBuf>,
}

impl SearchEnv {
    /// This process's environment and `/`.
    pub fn from_process() -> Self {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        SearchEnv {
            ld_library_path: std::env::var("LD_LIBRARY_PATH").ok(),
            cuda_home: path("CUDA_HOME"),
            cuda_path: path("CUDA_PATH"),
            conda_prefix: path("CONDA_PREFIX"),
            virtual_env: path("VIRTUAL_ENV"),
            pyenv_root: path("PYENV_ROOT"),
            home: path("HOME"),
            fs_root: PathBuf::from("/"),
            ld_cache_file: Some(PathBuf::from("/etc/ld.so.cache")),
        }
    }
}

/// The ELF identity of this process (x86-64: 64-bit little-endian machine 62).
pub fn host_identity() -> ElfIdentity {
    use gpulibs_inspect::deps::ByteOrder;
    let machine = match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        "powerpc64" => 21,
        "s390x" => 22,
        "x86" => 3,
        _ => 0,
    };
    ElfIdentity {
        class: if cfg!(target_pointer_width = "64") {
            ElfClass::Elf64
        } else {
            ElfClass::Elf32
        },
        byte_order: if cfg!(target_endian = "big") {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        },
        machine,
    }
}

impl SystemSearch {
    /// The default search of this machine; see [`SystemSearch::from_env_with`].
    pub fn from_env() -> Self {
        Self::from_env_with(&SearchEnv::from_process())
    }

    /// The default search for the given environment, in this order:
    ///
    /// 1. `LD_LIBRARY_PATH` entries (what the user already points the loader at);
    /// 2. `$CUDA_HOME`, then `$CUDA_PATH`: `lib64` and `targets/<arch>-linux/lib`;
    /// 3. `/usr/local/cuda`, then `/usr/local/cuda-*` newest version first: the same two dirs;
    /// 4. conda: `$CONDA_PREFIX/lib`, then `lib` and `envs/*/lib` of `~/miniconda3`,
    ///    `~/anaconda3`, `~/miniforge3`, `~/mambaforge`, `~/micromamba` and `/opt/conda`;
    /// 5. Python environments, without running Python: the `site-packages` (and
    ///    `dist-packages`) of `$VIRTUAL_ENV`, `~/.local`, pyenv versions (`$PYENV_ROOT` or
    ///    `~/.pyenv`), the conda environments above, `/usr/local` and `/usr`; in each,
    ///    `nvidia/*/lib` (pip's per-library layout and CUDA 13's `nvidia/cu13/lib`);
    /// 6. the loader cache (`/etc/ld.so.cache`).
    ///
    /// Python is not spawned: which interpreter the app uses is unknown anyway, and scanning
    /// the well-known prefixes finds every environment a spawned `python3` would report plus
    /// the ones it would not (other versions, other virtual environments).
    pub fn from_env_with(env: &SearchEnv) -> Self {
        let mut roots = Vec::new();
        let mut add = |dir: PathBuf, origin| {
            roots.push(SearchRoot { dir, origin });
        };
        let arch_dir = format!("targets/{}-linux/lib", std::env::consts::ARCH);
        let under = |p: &str| env.fs_root.join(p.trim_start_matches('/'));

        for dir in env
            .ld_library_path
            .iter()
            .flat_map(|p| p.split([':', ';']))
            .filter(|p| !p.is_empty() && !p.contains("$ORIGIN"))
        {
            add(PathBuf::from(dir), RootOrigin::LdLibraryPath);
        }
        for home in [&env.cuda_home, &env.cuda_path].into_iter().flatten() {
            add(home.join("lib64"), RootOrigin::CudaHome);
            add(home.join(&arch_dir), RootOrigin::CudaHome);
        }
        let mut toolkits = vec![under("/usr/local/cuda")];
        toolkits.extend(versioned_children(&under("/usr/local"), "cuda-"));
        for toolkit in toolkits {
            add(toolkit.join("lib64"), RootOrigin::CudaToolkit);
            add(toolkit.join(&arch_dir), RootOrigin::CudaToolkit);
        }

        let mut prefixes: Vec<PathBuf> = Vec::new(); // Python prefixes, in order
        let mut conda_envs: Vec<PathBuf> = env.conda_prefix.iter().cloned().collect();
        let mut conda_bases: Vec<PathBuf> = Vec::new();
        if let Some(home) = &env.home {
            for base in [
                "miniconda3",
                "anaconda3",
                "miniforge3",
                "mambaforge",
                "micromamba",
            ] {
                conda_bases.push(home.join(base));
            }
        }
        conda_bases.push(under("/opt/conda"));
        for base in &conda_bases {
            if base.is_dir() {
                conda_envs.push(base.clone());
                conda_envs.extend(sorted_children(&base.join("envs")));
            }
        }
        for env_dir in dedup_paths(conda_envs) {
            add(env_dir.join("lib"), RootOrigin::Conda);
            prefixes.push(env_dir);
        }

        let mut python_prefixes: Vec<PathBuf> = Vec::new();
        python_prefixes.extend(env.virtual_env.iter().cloned());
        if let Some(home) = &env.home {
            python_prefixes.push(home.join(".local"));
        }
        let pyenv = env
            .pyenv_root
            .clone()
            .or_else(|| env.home.as_ref().map(|h| h.join(".pyenv")));
        if let Some(pyenv) = pyenv {
            python_prefixes.extend(sorted_children(&pyenv.join("versions")));
        }
        python_prefixes.extend(prefixes);
        python_prefixes.push(under("/usr/local"));
        python_prefixes.push(under("/usr"));
        for prefix in dedup_paths(python_prefixes) {
            for site in site_packages(&prefix) {
                for lib in nvidia_lib_dirs(&site) {
                    add(lib, RootOrigin::PythonEnv);
                }
            }
        }

        let ld_cache = env
            .ld_cache_file
            .as_deref()
            .and_then(|p| LdCache::load(p).ok());
        SystemSearch {
            roots,
            ld_cache,
            identity: host_identity(),
        }
    }

    /// A search of exactly these directories, no loader cache, this machine's identity.
    pub fn explicit(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        SystemSearch {
            roots: dirs
                .into_iter()
                .map(|dir| SearchRoot {
                    dir,
                    origin: RootOrigin::Explicit,
                })
                .collect(),
            ld_cache: None,
            identity: host_identity(),
        }
    }

    /// Looks at every root, then the loader cache. Never fails: what cannot be read is a
    /// [`RejectedCandidate`].
    pub fn scan(&self) -> SystemScan {
        let mut scan = Scanner {
            identity: self.identity,
            seen_dirs: HashSet::new(),
            seen_files: HashMap::new(),
            versions: PipVersions::default(),
            out: SystemScan::default(),
        };
        for root in &self.roots {
            scan.directory(&root.dir, root.origin);
        }
        if let Some(cache) = &self.ld_cache {
            let flags = LdCache::flags_for(&self.identity);
            for entry in &cache.entries {
                if library_family(&entry.name).is_none() {
                    continue;
                }
                if flags.is_some_and(|f| entry.flags != f) || entry.hwcap != 0 {
                    continue; // another ABI's, or an hwcap variant of one that is listed anyway
                }
                scan.candidate(&entry.path, &entry.name, RootOrigin::LdCache);
            }
        }
        scan.out
    }
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemScan {
    /// Trusted libraries, in search order, one per real file.
    pub found: Vec<FoundLibrary>,
    /// Candidates that failed a trust check.
    pub rejected: Vec<RejectedCandidate>,
}

/// A trusted library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundLibrary {
    /// `DT_SONAME`: `libcublasLt.so.13`.
    pub soname: String,
    /// `cublasLt`.
    pub family: String,
    /// The directory it was found in.
    pub dir: PathBuf,
    /// `dir/<soname>` when that name exists there (what the loader opens with `dir` on its
    /// path); otherwise the file as found.
    pub path: PathBuf,
    /// Whether `dir` holds an entry named by the SONAME. Without it, `LD_LIBRARY_PATH=dir` does
    /// not find the library; a link must be made elsewhere.
    pub soname_link: bool,
    /// The file after resolving links.
    pub real_path: PathBuf,
    /// The full version when known: `13.1.0.3`.
    pub version: Option<String>,
    /// Where `version` came from.
    pub version_source: Option<VersionSource>,
    pub origin: RootOrigin,
}

/// How a library's full version was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionSource {
    /// The real file's name: `libcublas.so.13.1.0.3`.
    FileName,
    /// The pip distribution whose `RECORD` lists the file: `nvidia_cublas-13.1.0.3.dist-info`.
    PipRecord,
}

/// A candidate that was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedCandidate {
    pub path: PathBuf,
    pub origin: RootOrigin,
    pub reason: RejectReason,
}

/// Why a candidate was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum RejectReason {
    #[error("cannot read it: {message}")]
    Unreadable { message: String },
    #[error("not an ELF file")]
    NotElf,
    #[error("not a readable ELF file: {message}")]
    BadElf { message: String },
    #[error("built for another machine ({found}), this one needs {expected}")]
    WrongIdentity { found: String, expected: String },
    #[error("has no DT_SONAME, so the loader cannot match it by name")]
    NoSoname,
    #[error("its DT_SONAME is `{soname}`, which `{name}` cannot stand for")]
    SonameMismatch { name: String, soname: String },
}

impl SystemScan {
    /// The planner's view: one entry per trusted file, in search order.
    pub fn inventory(&self) -> SystemInventory {
        SystemInventory {
            libraries: self
                .found
                .iter()
                .map(|f| SystemLibrary {
                    soname: f.soname.clone(),
                    path: f.path.clone(),
                    version: f.version.clone(),
                })
                .collect(),
        }
    }

    /// Trusted libraries with this SONAME, in search order.
    pub fn by_soname<'a>(&'a self, soname: &'a str) -> impl Iterator<Item = &'a FoundLibrary> {
        self.found.iter().filter(move |f| f.soname == soname)
    }
}

struct Scanner {
    identity: ElfIdentity,
    seen_dirs: HashSet<PathBuf>,
    /// Canonical path → index in `out.found`.
    seen_files: HashMap<PathBuf, usize>,
    versions: PipVersions,
    out: SystemScan,
}

impl Scanner {
    fn directory(&mut self, dir: &Path, origin: RootOrigin) {
        let Ok(canonical) = dir.canonicalize() else {
            return;
        };
        if !self.seen_dirs.insert(canonical) {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        // Sorted, so that the result does not depend on directory order.
        let mut names: Vec<String> = entries
            .take(MAX_ENTRIES_PER_DIR)
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| library_family(n).is_some())
            .collect();
        names.sort();
        for name in names {
            self.candidate(&dir.join(&name), &name, origin);
        }
    }

    fn candidate(&mut self, path: &Path, name: &str, origin: RootOrigin) {
        let reject = |reason| RejectedCandidate {
            path: path.to_owned(),
            origin,
            reason,
        };
        let real = match path.canonicalize() {
            Ok(real) => real,
            Err(e) => {
                self.out.rejected.push(reject(RejectReason::Unreadable {
                    message: e.to_string(),
                }));
                return;
            }
        };
        if let Some(&index) = self.seen_files.get(&real) {
            // The same file under another name: keep the SONAME-named entry as its path.
            let found = &mut self.out.found[index];
            if !found.soname_link && name == found.soname && path.parent() == Some(&found.dir) {
                found.path = path.to_owned();
                found.soname_link = true;
            }
            return;
        }
        let soname = match self.check(&real, name) {
            Ok(soname) => soname,
            Err(reason) => {
                self.out.rejected.push(reject(reason));
                return;
            }
        };
        let dir = path.parent().map(Path::to_owned).unwrap_or_default();
        let link = dir.join(&soname);
        let soname_link = link.canonicalize().is_ok_and(|l| l == real);
        let (version, version_source) = match self.full_version(&real, &soname) {
            Some((v, s)) => (Some(v), Some(s)),
            None => (None, None),
        };
        self.seen_files.insert(real.clone(), self.out.found.len());
        self.out.found.push(FoundLibrary {
            family: library_family(&soname).unwrap_or_default().to_owned(),
            soname,
            path: if soname_link { link } else { path.to_owned() },
            dir,
            soname_link,
            real_path: real,
            version,
            version_source,
            origin,
        });
    }

    /// The trust checks of the module doc; the SONAME when they pass.
    fn check(&self, real: &Path, name: &str) -> Result<String, RejectReason> {
        let unreadable = |e: std::io::Error| RejectReason::Unreadable {
            message: e.to_string(),
        };
        let file = File::open(real).map_err(unreadable)?;
        let mut head = [0u8; 20];
        let n = (&file).take(20).read(&mut head).map_err(unreadable)?;
        let identity = ElfIdentity::from_header(&head[..n]).map_err(|e| match e {
            ParseError::NotElf => RejectReason::NotElf,
            other => RejectReason::BadElf {
                message: other.to_string(),
            },
        })?;
        if identity != self.identity {
            return Err(RejectReason::WrongIdentity {
                found: describe(&identity),
                expected: describe(&self.identity),
            });
        }
        // SAFETY: the map is read-only and dropped before returning; a file truncated meanwhile
        // can raise SIGBUS, the accepted risk of every mmap-based reader (inspect does the same).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(unreadable)?;
        let info = dynamic_section(&map).map_err(|e| RejectReason::BadElf {
            message: e.to_string(),
        })?;
        let soname = info.soname.ok_or(RejectReason::NoSoname)?;
        let stands_for = name
            .strip_prefix(soname.as_str())
            .is_some_and(|rest| rest.is_empty() || version_suffix(rest));
        if !stands_for || library_family(&soname) != library_family(name) {
            return Err(RejectReason::SonameMismatch {
                name: name.to_owned(),
                soname,
            });
        }
        Ok(soname)
    }

    fn full_version(&mut self, real: &Path, soname: &str) -> Option<(String, VersionSource)> {
        let file_name = real.file_name()?.to_str()?;
        if let Some(rest) = file_name.strip_prefix(soname) {
            if version_suffix(rest) {
                // `libcublas.so.13` + `.1.0.3`: the full version is the SONAME's part + rest.
                let major = soname.split_once(".so.")?.1;
                return Some((format!("{major}{rest}"), VersionSource::FileName));
            }
        }
        self.versions
            .lookup(real)
            .map(|v| (v, VersionSource::PipRecord))
    }
}

/// `.1.0.3`: dot-separated numbers.
fn version_suffix(rest: &str) -> bool {
    rest.strip_prefix('.')
        .is_some_and(|r| r.split('.').all(is_number))
}

fn describe(identity: &ElfIdentity) -> String {
    let class = match identity.class {
        ElfClass::Elf32 => "32-bit",
        ElfClass::Elf64 => "64-bit",
    };
    let machine = match identity.machine {
        3 => "i386".to_owned(),
        62 => "x86-64".to_owned(),
        183 => "AArch64".to_owned(),
        21 => "PowerPC64".to_owned(),
        m => format!("machine {m}"),
    };
    format!("{class} {machine}")
}

/// Versions of files installed by pip, from the `RECORD` of `nvidia_*` distributions next to
/// the `nvidia` package (read once per `site-packages`).
#[derive(Default)]
struct PipVersions {
    /// site-packages → (canonical file → version).
    sites: HashMap<PathBuf, BTreeMap<PathBuf, String>>,
}

impl PipVersions {
    fn lookup(&mut self, real: &Path) -> Option<String> {
        // `<site>/nvidia/<pkg>/lib/<file>`
        let site = real.ancestors().find(|a| {
            a.file_name().is_some_and(|n| n == "nvidia")
                && real
                    .strip_prefix(a)
                    .is_ok_and(|r| r.components().count() == 3)
        })?;
        let site = site.parent()?.to_owned();
        let records = self
            .sites
            .entry(site.clone())
            .or_insert_with(|| read_records(&site));
        records.get(real).cloned()
    }
}

fn read_records(site: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(site) else {
        return out;
    };
    for entry in entries.take(MAX_ENTRIES_PER_DIR).flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(dist) = name
            .strip_suffix(".dist-info")
            .filter(|d| d.starts_with("nvidia_"))
        else {
            continue;
        };
        let Some((_, version)) = dist.rsplit_once('-') else {
            continue;
        };
        let Ok(record) = std::fs::read_to_string(entry.path().join("RECORD")) else {
            continue;
        };
        for line in record.lines() {
            let file = line.split(',').next().unwrap_or_default();
            if library_family(file.rsplit('/').next().unwrap_or_default()).is_none() {
                continue;
            }
            if let Ok(real) = site.join(file).canonicalize() {
                out.insert(real, version.to_owned());
            }
        }
    }
    out
}

/// Children of `dir` named `<prefix><version>`, newest version first (`cuda-13.0` before
/// `cuda-12.9`), bounded.
fn versioned_children(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .take(MAX_ENTRIES_PER_DIR)
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name.strip_prefix(prefix)?;
            let parts: Option<Vec<u32>> = version.split('.').map(|p| p.parse().ok()).collect();
            Some((parts?, e.path()))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found
        .into_iter()
        .take(MAX_ENVIRONMENTS)
        .map(|f| f.1)
        .collect()
}

/// Sub-directories of `dir`, sorted by name, bounded.
fn sorted_children(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .take(MAX_ENTRIES_PER_DIR)
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.truncate(MAX_ENVIRONMENTS);
    dirs
}

/// `lib/python3*/site-packages` and `dist-packages`, and Debian's `lib/python3/dist-packages`.
fn site_packages(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for lib in ["lib", "lib64"] {
        for python in sorted_children(&prefix.join(lib)) {
            let is_python3 = python
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "python3" || n.starts_with("python3."));
            if !is_python3 {
                continue;
            }
            for site in ["site-packages", "dist-packages"] {
                let dir = python.join(site);
                if dir.is_dir() {
                    out.push(dir);
                }
            }
        }
    }
    out
}

/// `nvidia/*/lib` of a `site-packages`: `nvidia/cublas/lib`, `nvidia/cu13/lib`, ...
fn nvidia_lib_dirs(site: &Path) -> Vec<PathBuf> {
    sorted_children(&site.join("nvidia"))
        .into_iter()
        .map(|p| p.join("lib"))
        .filter(|p| p.is_dir())
        .collect()
}

fn dedup_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    paths
        .into_iter()
        .filter(|p| seen.insert(p.canonicalize().unwrap_or_else(|_| p.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_file_names() {
        let cases = [
            ("libcublasLt.so.13", Some("cublasLt")),
            ("libcublas.so.13.1.0.3", Some("cublas")),
            ("libcudnn.so.9", Some("cudnn")),
            (
                "libcudnn_engines_precompiled.so.9",
                Some("cudnn_engines_precompiled"),
            ),
            ("libnvrtc-builtins.so.13.0", Some("nvrtc-builtins")),
            ("libnvJitLink.so.13", Some("nvJitLink")),
            ("libcudart.so", None),
            ("libcudart.so.", None),
            ("libcudart.so.12.x", None),
            ("libcudnn_.so.9", None),
            ("libz.so.1", None),
            ("cublas.so.13", None),
            ("libcublas.a", None),
        ];
        for (name, family) in cases {
            assert_eq!(library_family(name), family, "{name}");
        }
    }

    #[test]
    fn version_suffixes() {
        assert!(version_suffix(".1.0.3"));
        assert!(version_suffix(".9"));
        assert!(!version_suffix(""));
        assert!(!version_suffix("1"));
        assert!(!version_suffix(".1..2"));
        assert!(!version_suffix(".1a"));
    }

    #[test]
    fn versioned_toolkits_newest_first() {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["cuda-12.9", "cuda-13.0", "cuda-12.10", "cuda-x", "cudax-1"] {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
        }
        let names: Vec<String> = versioned_children(tmp.path(), "cuda-")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["cuda-13.0", "cuda-12.10", "cuda-12.9"]);
    }
}
