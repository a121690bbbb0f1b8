//! The library search of glibc's `ld.so`, over plain inputs.

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};

use object::elf;
use serde::{Deserialize, Serialize};

use super::elf::{dynamic_info, dynamic_section, DynamicInfo, ElfClass, ElfIdentity};
use super::hints::missing_library_message;
use super::ldcache::LdCache;
use super::runtime_names::RuntimeNameSource;
use super::{DepsError, ParseError};

/// Everything outside the inspected files that decides where a library is found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchContext {
    /// The value of `LD_LIBRARY_PATH` (`:` or `;` separated), if set.
    pub ld_library_path: Option<String>,
    /// The parsed `/etc/ld.so.cache`, if there is one.
    pub ld_cache: Option<LdCache>,
    /// The trusted directories searched last. Candidates of the wrong class or machine are
    /// skipped, so one list can serve 32- and 64-bit objects.
    pub default_dirs: Vec<PathBuf>,
    /// What `$LIB` expands to; `None`: `lib64` for 64-bit objects, `lib` for 32-bit ones.
    pub lib_token: Option<String>,
    /// What `$PLATFORM` expands to; `None`: derived from the object's machine (`x86_64`, ...).
    pub platform_token: Option<String>,
}

impl SearchContext {
    /// This machine's: `LD_LIBRARY_PATH` from the environment, `/etc/ld.so.cache` (absent or
    /// unreadable: no cache), the default directories of glibc plus Debian's multiarch ones, and
    /// `$LIB` as the directory holding this machine's `libc.so.6`.
    pub fn from_system() -> Self {
        let ld_cache = LdCache::load(Path::new("/etc/ld.so.cache")).ok();
        let multiarch = multiarch_triplet();
        let mut default_dirs = Vec::new();
        if let Some(triplet) = multiarch {
            default_dirs.push(PathBuf::from(format!("/lib/{triplet}")));
            default_dirs.push(PathBuf::from(format!("/usr/lib/{triplet}")));
        }
        for dir in ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
            default_dirs.push(PathBuf::from(dir));
        }
        let lib_token = multiarch
            .map(|t| format!("lib/{t}"))
            .into_iter()
            .chain(["lib64".to_owned(), "lib".to_owned()])
            .find(|lib| Path::new("/").join(lib).join("libc.so.6").is_file());
        SearchContext {
            ld_library_path: std::env::var("LD_LIBRARY_PATH").ok(),
            ld_cache,
            default_dirs,
            lib_token,
            platform_token: None,
        }
    }
}

fn multiarch_triplet() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("x86_64-linux-gnu"),
        "aarch64" => Some("aarch64-linux-gnu"),
        "x86" => Some("i386-linux-gnu"),
        "powerpc64" => Some("powerpc64le-linux-gnu"),
        "s390x" => Some("s390x-linux-gnu"),
        _ => None,
    }
}

/// Access to the files the search looks at, so that tests can supply their own.
pub trait FileProbe {
    /// The first bytes of the file at `path` (at least the 20 of the ELF identification when
    /// the file is that long), or `None` when it cannot be opened, as for `open(2)` failing.
    fn head(&self, path: &Path) -> Option<Vec<u8>>;
    /// The dynamic section of the file at `path` (for the transitive closure).
    fn dynamic_section(&self, path: &Path) -> Result<DynamicInfo, DepsError>;
}

/// The real file system: reads 64 bytes to check a candidate; memory-maps for the closure.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFileSystem;

impl FileProbe for RealFileSystem {
    fn head(&self, path: &Path) -> Option<Vec<u8>> {
        // A FIFO or device among the candidates is not opened (opening a FIFO would block).
        let file = crate::read::open_regular(path).ok()?;
        let mut head = Vec::with_capacity(64);
        file.take(64).read_to_end(&mut head).ok()?;
        Some(head)
    }

    fn dynamic_section(&self, path: &Path) -> Result<DynamicInfo, DepsError> {
        let map = map_file(path)?;
        dynamic_section(&map).map_err(|source| DepsError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

fn map_file(path: &Path) -> Result<memmap2::Mmap, DepsError> {
    let io = |source| DepsError::Io {
        path: path.to_owned(),
        source,
    };
    let file = crate::read::open_regular(path).map_err(io)?;
    // SAFETY: the map is only read, through bounds-checked parsers; a file truncated by another
    // process meanwhile can fault the read, which is the accepted risk of mapping.
    unsafe { memmap2::Mmap::map(&file) }.map_err(io)
}

/// `DT_NEEDED` or loaded at run time by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyKind {
    /// Loaded with the object, from its `DT_NEEDED`.
    Needed,
    /// Named in the object's data or code and loaded with `dlopen` (if the code path runs).
    Runtime,
}

/// The step of the search that found a library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundVia {
    /// The name contains `/` and is used as a path.
    Path,
    /// `DT_RPATH` of the requesting object or of an object that loaded it.
    Rpath,
    /// `LD_LIBRARY_PATH`.
    LdLibraryPath,
    /// `DT_RUNPATH` of the requesting object.
    Runpath,
    /// `/etc/ld.so.cache`.
    LdCache,
    /// A default directory (`/lib`, `/usr/lib`, ...).
    DefaultDir,
}

/// Whether the loader would get the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyStatus {
    /// A loadable file was found.
    Found,
    /// No candidate: the loader fails with "cannot open shared object file".
    Missing,
    /// The first acceptable candidate is not a loadable ELF file; the loader stops there with an
    /// error (it does not search further), see [`Dependency::problem`].
    Invalid,
}

/// Why `ld.so` passed over a file and searched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// 32-bit file for a 64-bit object or the reverse.
    WrongClass,
    /// Another `e_machine`.
    WrongMachine,
}

/// A file with the right name that the loader skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedCandidate {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: SkipReason,
}

/// One library the inspected file needs, directly or through another library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The name as requested (`libcublasLt.so.13`, or a path).
    pub name: String,
    /// `needed` or `runtime`.
    pub kind: DependencyKind,
    /// For run-time names: `string` or `code_immediate`; `None` for `DT_NEEDED`.
    pub source: Option<RuntimeNameSource>,
    /// 1 for names in the inspected file, 2 for their dependencies, and so on.
    pub depth: u32,
    /// The object whose `DT_NEEDED` (or data) names this library.
    pub required_by: PathBuf,
    /// Found, missing or invalid.
    pub status: DependencyStatus,
    /// The file the loader would open (for `found` and `invalid`).
    pub path: Option<PathBuf>,
    /// The search step that produced `path`.
    pub via: Option<FoundVia>,
    /// Files with the right name the loader would pass over.
    pub skipped: Vec<SkippedCandidate>,
    /// For `invalid`: what is wrong with the file; for a found library that could not be read
    /// for the closure: why its own dependencies are not listed.
    pub problem: Option<String>,
    /// For `missing`: "libcublasLt.so.13 not found: this library needs the CUDA 13 cuBLAS ...",
    /// when the library belongs to a known family.
    pub hint: Option<String>,
}

/// How far [`resolve_with`] follows dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// 1: only the names in the inspected file.
    pub max_depth: u32,
    /// Stop opening more libraries after this many (the inspected file included).
    pub max_objects: usize,
}

impl Limits {
    /// Only the inspected file's own names.
    pub const DIRECT: Limits = Limits {
        max_depth: 1,
        max_objects: 1,
    };
    /// The whole closure, bounded against pathological trees.
    pub const CLOSURE: Limits = Limits {
        max_depth: 32,
        max_objects: 1024,
    };
}

/// The inspected file with its dynamic information and its dependencies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyReport {
    /// The inspected file.
    pub file: PathBuf,
    /// Its dynamic information.
    pub dynamic: DynamicInfo,
    /// Breadth-first, each name once: `DT_NEEDED` closure first, then the run-time names and
    /// their closure.
    pub dependencies: Vec<Dependency>,
    /// True when [`Limits`] stopped the walk early.
    pub truncated: bool,
}

impl DependencyReport {
    /// The dependencies that are missing or invalid.
    pub fn unresolved(&self) -> impl Iterator<Item = &Dependency> {
        self.dependencies
            .iter()
            .filter(|d| d.status != DependencyStatus::Found)
    }

    /// The `DT_NEEDED` libraries, at any depth, that the loader opens when the inspected file
    /// is loaded — excluding what only the run-time (`dlopen`) names pull in, which fails later
    /// and only if that code path runs.
    pub fn needed_at_load(&self) -> impl Iterator<Item = &Dependency> {
        // `dependencies` lists the DT_NEEDED closure first (breadth-first), so every object that
        // requires one of these has been seen as found before its own needs appear.
        let mut loaded: Vec<&Path> = vec![self.file.as_path()];
        self.dependencies.iter().filter(move |d| {
            let at_load =
                d.kind == DependencyKind::Needed && loaded.contains(&d.required_by.as_path());
            if at_load {
                if let Some(path) = &d.path {
                    loaded.push(path.as_path());
                }
            }
            at_load
        })
    }

    /// Libraries the loader cannot open when the file is loaded: it will fail to load.
    pub fn missing_at_load(&self) -> impl Iterator<Item = &Dependency> {
        self.needed_at_load()
            .filter(|d| d.status != DependencyStatus::Found)
    }
}

/// Reads `path` (memory-mapped), finds its run-time names and resolves the whole closure on
/// the real file system.
pub fn inspect_file(path: &Path, ctx: &SearchContext) -> Result<DependencyReport, DepsError> {
    let map = map_file(path)?;
    let info = dynamic_info(&map).map_err(|source| DepsError::Parse {
        path: path.to_owned(),
        source,
    })?;
    drop(map);
    Ok(resolve_with(
        &RealFileSystem,
        path,
        &info,
        ctx,
        Limits::CLOSURE,
    ))
}

/// The inspected file's own names (`DT_NEEDED` and run-time), each resolved on the real file
/// system. `file_path` is where `info` was read from: it gives `$ORIGIN`.
pub fn resolve(file_path: &Path, info: &DynamicInfo, ctx: &SearchContext) -> Vec<Dependency> {
    resolve_with(&RealFileSystem, file_path, info, ctx, Limits::DIRECT).dependencies
}

/// The closure of the inspected file's dependencies on the real file system.
pub fn resolve_closure(
    file_path: &Path,
    info: &DynamicInfo,
    ctx: &SearchContext,
) -> DependencyReport {
    resolve_with(&RealFileSystem, file_path, info, ctx, Limits::CLOSURE)
}

/// A loaded (or about to be) object in the walk.
struct Node {
    path: PathBuf,
    info: DynamicInfo,
    loader: Option<usize>,
    depth: u32,
}

struct Request {
    name: String,
    kind: DependencyKind,
    source: Option<RuntimeNameSource>,
    requester: usize,
}

/// The resolution with an explicit file system and limits: breadth-first over the objects, as
/// `ld.so` loads them; a name already requested (or the `DT_SONAME` of a loaded object) is not
/// searched again.
pub fn resolve_with(
    fs: &dyn FileProbe,
    file_path: &Path,
    info: &DynamicInfo,
    ctx: &SearchContext,
    limits: Limits,
) -> DependencyReport {
    let root = std::path::absolute(file_path).unwrap_or_else(|_| file_path.to_owned());
    let mut nodes = vec![Node {
        path: root.clone(),
        info: info.clone(),
        loader: None,
        depth: 0,
    }];
    let mut seen: HashSet<String> = HashSet::new();
    if let Some(soname) = &info.soname {
        seen.insert(soname.clone());
    }
    let mut queue: VecDeque<Request> = info
        .needed
        .iter()
        .map(|name| Request {
            name: name.clone(),
            kind: DependencyKind::Needed,
            source: None,
            requester: 0,
        })
        .collect();
    let mut runtime_pending = true;
    let mut dependencies = Vec::new();
    let mut truncated = false;

    while let Some(request) = next_request(&mut queue, &mut runtime_pending, info) {
        if !seen.insert(request.name.clone()) {
            continue;
        }
        let requester = &nodes[request.requester];
        let depth = requester.depth + 1;
        let mut dep = search(fs, &nodes, request.requester, &request.name, ctx);
        dep.kind = request.kind;
        dep.source = request.source;
        dep.depth = depth;
        dep.required_by = requester.path.clone();

        if let (DependencyStatus::Found, Some(path)) = (dep.status, &dep.path) {
            if depth >= limits.max_depth {
                truncated |= limits.max_depth > 1;
            } else if nodes.len() >= limits.max_objects {
                truncated = true;
            } else {
                match fs.dynamic_section(path) {
                    Ok(child) => {
                        if let Some(soname) = &child.soname {
                            seen.insert(soname.clone());
                        }
                        let index = nodes.len();
                        queue.extend(child.needed.iter().map(|name| Request {
                            name: name.clone(),
                            kind: DependencyKind::Needed,
                            source: None,
                            requester: index,
                        }));
                        nodes.push(Node {
                            path: path.clone(),
                            info: child,
                            loader: Some(request.requester),
                            depth,
                        });
                    }
                    Err(e) => dep.problem = Some(format!("its dependencies are not listed: {e}")),
                }
            }
        }
        dependencies.push(dep);
    }
    DependencyReport {
        file: root,
        dynamic: info.clone(),
        dependencies,
        truncated,
    }
}

/// The next name to search: the `DT_NEEDED` closure first; run-time names are `dlopen`ed
/// after it is loaded.
fn next_request(
    queue: &mut VecDeque<Request>,
    runtime_pending: &mut bool,
    info: &DynamicInfo,
) -> Option<Request> {
    if queue.is_empty() && std::mem::take(runtime_pending) {
        queue.extend(info.runtime_names.iter().map(|r| Request {
            name: r.name.clone(),
            kind: DependencyKind::Runtime,
            source: Some(r.source),
            requester: 0,
        }));
    }
    queue.pop_front()
}

/// What a candidate file is to the loader.
enum Candidate {
    Absent,
    Skip(SkipReason),
    Invalid(String),
    Loadable,
}

fn check_candidate(fs: &dyn FileProbe, path: &Path, want: &ElfIdentity) -> Candidate {
    let Some(head) = fs.head(path) else {
        return Candidate::Absent;
    };
    let identity = match ElfIdentity::from_header(&head) {
        Ok(identity) => identity,
        Err(ParseError::NotElf) => {
            return Candidate::Invalid("invalid ELF header (not an ELF file)".into())
        }
        Err(ParseError::Truncated(_)) => return Candidate::Invalid("file too short".into()),
        Err(e) => {
            // ld.so checks the class before anything else that can be wrong with the header.
            if head.get(4).is_some_and(|&c| c != class_byte(want.class)) {
                return Candidate::Skip(SkipReason::WrongClass);
            }
            return Candidate::Invalid(e.to_string());
        }
    };
    if identity.class != want.class {
        return Candidate::Skip(SkipReason::WrongClass);
    }
    if identity.byte_order != want.byte_order {
        return Candidate::Invalid("ELF file data encoding does not match".into());
    }
    if identity.machine != want.machine {
        return Candidate::Skip(SkipReason::WrongMachine);
    }
    let e_type = match (head.get(16), head.get(17)) {
        (Some(&a), Some(&b)) => match identity.byte_order {
            super::ByteOrder::Little => u16::from_le_bytes([a, b]),
            super::ByteOrder::Big => u16::from_be_bytes([a, b]),
        },
        _ => 0,
    };
    if e_type != elf::ET_DYN.0 && e_type != elf::ET_EXEC.0 {
        return Candidate::Invalid("only ET_DYN and ET_EXEC can be loaded".into());
    }
    Candidate::Loadable
}

fn class_byte(class: ElfClass) -> u8 {
    match class {
        ElfClass::Elf32 => elf::ELFCLASS32.0,
        ElfClass::Elf64 => elf::ELFCLASS64.0,
    }
}

/// The directory of an object, for `$ORIGIN`.
fn origin_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Expands `$ORIGIN`, `$LIB` and `$PLATFORM` (also in `${...}` form). `None` when a token
/// cannot be expanded (the loader drops such an entry).
fn expand_tokens(
    s: &str,
    origin: Option<&Path>,
    lib: &str,
    platform: Option<&str>,
) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (token, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let value = match token {
            "ORIGIN" => Some(origin?.to_string_lossy().into_owned()),
            "LIB" => Some(lib.to_owned()),
            "PLATFORM" => Some(platform?.to_owned()),
            _ => None,
        };
        match value {
            Some(v) => {
                out.push_str(&v);
                rest = &after[len..];
            }
            None => {
                // Not a known token: kept literally, as ld.so does.
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Splits a search path; empty entries mean the current directory, as in glibc.
fn split_path_list<'a>(
    list: &'a str,
    separators: &'a [char],
) -> impl Iterator<Item = &'a str> + 'a {
    list.split(separators)
        .map(|d| if d.is_empty() { "." } else { d })
}

fn platform_for(machine: u16) -> Option<&'static str> {
    match machine {
        m if m == elf::EM_X86_64.0 => Some("x86_64"),
        m if m == elf::EM_386.0 => Some("i686"),
        m if m == elf::EM_AARCH64.0 => Some("aarch64"),
        m if m == elf::EM_PPC64.0 => Some("powerpc64le"),
        m if m == elf::EM_S390.0 => Some("s390x"),
        _ => None,
    }
}

/// Searches for `name` requested by `nodes[requester]`, in `ld.so`'s order.
fn search(
    fs: &dyn FileProbe,
    nodes: &[Node],
    requester: usize,
    name: &str,
    ctx: &SearchContext,
) -> Dependency {
    let object = &nodes[requester];
    let want = object.info.identity;
    let lib = ctx.lib_token.clone().unwrap_or_else(|| {
        match want.class {
            ElfClass::Elf64 => "lib64",
            ElfClass::Elf32 => "lib",
        }
        .to_owned()
    });
    let platform = ctx.platform_token.as_deref().or(platform_for(want.machine));
    let mut dep = Dependency {
        name: name.to_owned(),
        kind: DependencyKind::Needed,
        source: None,
        depth: 0,
        required_by: PathBuf::new(),
        status: DependencyStatus::Missing,
        path: None,
        via: None,
        skipped: Vec::new(),
        problem: None,
        hint: None,
    };

    // Tries one candidate; true when the search is over (found or fatal).
    let mut attempt = |dep: &mut Dependency, path: PathBuf, via: FoundVia| -> bool {
        match check_candidate(fs, &path, &want) {
            Candidate::Absent => false,
            Candidate::Skip(reason) => {
                if !dep.skipped.iter().any(|s| s.path == path) {
                    dep.skipped.push(SkippedCandidate { path, reason });
                }
                false
            }
            Candidate::Invalid(problem) => {
                dep.status = DependencyStatus::Invalid;
                dep.problem = Some(format!("{}: {problem}", path.display()));
                dep.path = Some(path);
                dep.via = Some(via);
                true
            }
            Candidate::Loadable => {
                dep.status = DependencyStatus::Found;
                dep.path = Some(path);
                dep.via = Some(via);
                true
            }
        }
    };
    let in_dirs = |dep: &mut Dependency,
                   attempt: &mut dyn FnMut(&mut Dependency, PathBuf, FoundVia) -> bool,
                   list: &str,
                   separators: &[char],
                   origin: Option<&Path>,
                   via: FoundVia|
     -> bool {
        for dir in split_path_list(list, separators) {
            let Some(dir) = expand_tokens(dir, origin, &lib, platform) else {
                continue;
            };
            if attempt(dep, Path::new(&dir).join(name), via) {
                return true;
            }
        }
        false
    };

    if name.contains('/') {
        let origin = origin_of(&object.path);
        if let Some(path) = expand_tokens(name, Some(&origin), &lib, platform) {
            attempt(&mut dep, PathBuf::from(path), FoundVia::Path);
        }
        return finish(dep);
    }

    // DT_RPATH of the requester and of its loaders, unless the requester has DT_RUNPATH.
    // (An object's DT_RPATH is ignored altogether when it has DT_RUNPATH.)
    if object.info.runpath.is_none() {
        let mut at = Some(requester);
        while let Some(index) = at {
            let node = &nodes[index];
            if let (Some(rpath), None) = (&node.info.rpath, &node.info.runpath) {
                let origin = origin_of(&node.path);
                if in_dirs(
                    &mut dep,
                    &mut attempt,
                    rpath,
                    &[':'],
                    Some(&origin),
                    FoundVia::Rpath,
                ) {
                    return finish(dep);
                }
            }
            at = node.loader;
        }
    }
    // LD_LIBRARY_PATH; its $ORIGIN would be the executable's, which is unknown here.
    if let Some(list) = &ctx.ld_library_path {
        if in_dirs(
            &mut dep,
            &mut attempt,
            list,
            &[':', ';'],
            None,
            FoundVia::LdLibraryPath,
        ) {
            return finish(dep);
        }
    }
    if let Some(runpath) = &object.info.runpath {
        let origin = origin_of(&object.path);
        if in_dirs(
            &mut dep,
            &mut attempt,
            runpath,
            &[':'],
            Some(&origin),
            FoundVia::Runpath,
        ) {
            return finish(dep);
        }
    }
    if let Some(cache) = &ctx.ld_cache {
        if let Some(entry) = cache.lookup(name, LdCache::flags_for(&want)) {
            if attempt(&mut dep, entry.path.clone(), FoundVia::LdCache) {
                return finish(dep);
            }
        }
    }
    for dir in &ctx.default_dirs {
        if attempt(&mut dep, dir.join(name), FoundVia::DefaultDir) {
            return finish(dep);
        }
    }
    finish(dep)
}

fn finish(mut dep: Dependency) -> Dependency {
    if dep.status == DependencyStatus::Missing {
        dep.hint =
            Some(missing_library_message(&dep.name)).filter(|m| m.contains(": this library needs"));
    }
    dep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_expansion() {
        let o = Path::new("/opt/app/lib");
        let e = |s| expand_tokens(s, Some(o), "lib64", Some("x86_64"));
        assert_eq!(e("$ORIGIN/../sub").as_deref(), Some("/opt/app/lib/../sub"));
        assert_eq!(
            e("${ORIGIN}/x:$LIB").as_deref(),
            Some("/opt/app/lib/x:lib64")
        );
        assert_eq!(e("/p/$PLATFORM/${LIB}").as_deref(), Some("/p/x86_64/lib64"));
        assert_eq!(e("$ORIGINAL/x").as_deref(), Some("$ORIGINAL/x"));
        assert_eq!(e("/a/$").as_deref(), Some("/a/$"));
        assert_eq!(e("${ORIGIN").as_deref(), Some("${ORIGIN"));
        assert_eq!(expand_tokens("$ORIGIN/x", None, "lib", None), None);
        assert_eq!(expand_tokens("$PLATFORM/x", Some(o), "lib", None), None);
    }

    #[test]
    fn empty_entries_mean_current_directory() {
        assert_eq!(
            split_path_list("/a::/b:", &[':']).collect::<Vec<_>>(),
            ["/a", ".", "/b", "."]
        );
        assert_eq!(
            split_path_list("/a;/b", &[':', ';']).collect::<Vec<_>>(),
            ["/a", "/b"]
        );
    }
}
