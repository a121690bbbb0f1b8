//! Handing the active install to an app: environment files for shells and systemd, and
//! [`activate`], which an app calls at start-up instead of needing any variable.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::record::{InstallRecord, SystemLibraryRecord};
use crate::store::{install_root, is_library_name, RootEnv, Store};

/// What an app needs to load an install. [`view_env`] (what `gpulibs env` prints and
/// [`activate`] returns) names the root's view, stable across updates; [`env_for`] names one
/// install's own directory (`installs/<id>/lib`), for checking an install before it is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Env {
    pub install_id: String,
    /// For `LD_LIBRARY_PATH`, in order: the install's `lib/`, then the directories of the
    /// libraries it reuses from this machine.
    pub lib_dirs: Vec<PathBuf>,
    /// The ONNX Runtime library, for `ORT_DYLIB_PATH` (the `ort` crate's `load-dynamic`).
    pub ort_dylib_path: PathBuf,
    /// Libraries to `dlopen` (with `RTLD_GLOBAL`) before ONNX Runtime, in dependency order.
    pub preload: Vec<PathBuf>,
}

/// The output formats of `gpulibs env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFormat {
    /// `export` lines for `eval "$(gpulibs env)"`; `LD_LIBRARY_PATH` keeps what was set.
    Sh,
    /// `KEY=value` lines for systemd's `EnvironmentFile=` (which expands nothing).
    Systemd,
    /// One JSON object.
    Json,
}

impl std::str::FromStr for EnvFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "sh" => Ok(Self::Sh),
            "systemd" => Ok(Self::Systemd),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "`{other}` is not an env format: use sh, systemd or json"
            )),
        }
    }
}

/// The [`Env`] of install `record` under `store`: the install's own `lib/` first, then the
/// directories of the libraries it reuses from this machine; the preload list holds both, in
/// dependency order ([`preload_order`]), a library in `lib/` winning over a reused one of the
/// same name.
pub fn env_for(store: &Store, record: &InstallRecord) -> Env {
    let dir = store.install_dir(&record.id);
    let lib = dir.join("lib");
    let names: Vec<&str> = record.lib_files().collect();
    let ort_name = Path::new(&record.ort_library)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let preload = preload_paths(&lib, &names, &ort_name, &record.system_libraries);
    // System directories in load order (the directory of the first library to load first),
    // then any other recorded directory.
    let mut lib_dirs = vec![lib.clone()];
    let system_dirs = preload.iter().filter_map(|p| p.parent()).chain(
        record
            .system_libraries
            .iter()
            .filter_map(|l| l.path.parent()),
    );
    for d in system_dirs {
        if !lib_dirs.iter().any(|have| have == d) {
            lib_dirs.push(d.to_path_buf());
        }
    }
    Env {
        install_id: record.id.clone(),
        lib_dirs,
        ort_dylib_path: dir.join(&record.ort_library),
        preload,
    }
}

/// The [`Env`] of the active install `record` as the root's view names it (see `view.rs`):
/// `LD_LIBRARY_PATH` is the root alone, ONNX Runtime is `<root>/libonnxruntime.so`, and every
/// library to preload is `<root>/<name>` (reused libraries included: the install's `lib/`
/// links them). These paths stay valid across updates, rollbacks and `gc`, so an environment
/// file written once keeps working; what they load is whatever `current` names.
///
/// For an install that is not active (being verified before activation) use [`env_for`],
/// which names the install's own directory.
pub fn view_env(store: &Store, record: &InstallRecord) -> Env {
    let root = store.root();
    let mut names: Vec<&str> = record.lib_files().collect();
    for l in &record.reused_links {
        names.push(l.name.as_str());
    }
    for l in &record.system_libraries {
        if crate::view::is_view_name(&l.soname) {
            names.push(l.soname.as_str());
        }
    }
    names.sort_unstable();
    names.dedup();
    let ort_name = Path::new(&record.ort_library)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Env {
        install_id: record.id.clone(),
        lib_dirs: vec![root.to_path_buf()],
        ort_dylib_path: root.join(crate::view::ORT_UNVERSIONED),
        preload: preload_order(&names, &ort_name)
            .into_iter()
            .map(|n| root.join(n))
            .collect(),
    }
}

/// The install's own preload names (in `lib`) merged with the reused libraries (by their
/// recorded paths), ordered as [`preload_order`] orders names.
fn preload_paths(
    lib: &Path,
    names: &[&str],
    ort_name: &str,
    system: &[SystemLibraryRecord],
) -> Vec<PathBuf> {
    let mut items: Vec<(u32, String, String, PathBuf)> = preload_order(names, ort_name)
        .into_iter()
        .map(|n| {
            let stem = split_name(&n).map(|(s, _)| s).unwrap_or(&n).to_string();
            (rank(&stem), stem, n.clone(), lib.join(&n))
        })
        .collect();
    for s in system {
        let name = s.soname.as_str();
        if !is_library_name(name)
            || names.contains(&name)
            || items.iter().any(|(_, _, n, _)| n == name)
        {
            continue;
        }
        let stem = split_name(name).map(|(s, _)| s).unwrap_or(name).to_string();
        items.push((rank(&stem), stem, name.to_string(), s.path.clone()));
    }
    items.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    items.into_iter().map(|(_, _, _, p)| p).collect()
}

impl Env {
    /// The paths this environment names that do not exist (`stat` follows links, so a SONAME
    /// link whose file is gone counts): the library directories, the ONNX Runtime library and
    /// every library to preload, in that order.
    pub fn missing_paths(&self) -> Vec<PathBuf> {
        let dirs = self.lib_dirs.iter().filter(|d| !d.is_dir());
        let files = std::iter::once(&self.ort_dylib_path)
            .chain(&self.preload)
            .filter(|f| !f.is_file());
        let mut missing: Vec<PathBuf> = Vec::new();
        for p in dirs.chain(files) {
            if !missing.contains(p) {
                missing.push(p.clone());
            }
        }
        missing
    }

    /// Fails with [`StoreError::Unusable`], naming the first missing path, when a path this
    /// environment names does not exist: an app given it would fail to load, or load something
    /// else found on its own search path. `previous_usable` says whether `gpulibs rollback` is
    /// a fix worth naming.
    pub fn check(&self, previous_usable: bool) -> Result<()> {
        let missing = self.missing_paths();
        match missing.first() {
            None => Ok(()),
            Some(first) => Err(StoreError::Unusable {
                id: self.install_id.clone(),
                missing: first.clone(),
                detail: dangling_detail(first),
                more: missing.len() - 1,
                previous_usable,
            }),
        }
    }

    /// `LD_LIBRARY_PATH`'s value for these directories alone.
    pub fn ld_library_path(&self) -> String {
        self.lib_dirs
            .iter()
            .map(|d| d.to_string_lossy())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Renders for `format`.
    pub fn render(&self, format: EnvFormat) -> String {
        let ort = self.ort_dylib_path.to_string_lossy();
        match format {
            EnvFormat::Sh => format!(
                "export LD_LIBRARY_PATH={}\"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\"\n\
                 export ORT_DYLIB_PATH={}\n",
                sh_quote(&self.ld_library_path()),
                sh_quote(&ort)
            ),
            EnvFormat::Systemd => format!(
                "LD_LIBRARY_PATH={}\nORT_DYLIB_PATH={}\n",
                systemd_quote(&self.ld_library_path()),
                systemd_quote(&ort)
            ),
            EnvFormat::Json => {
                let value = serde_json::json!({
                    "install_id": self.install_id,
                    "lib_dirs": self.lib_dirs,
                    "ld_library_path": self.ld_library_path(),
                    "ort_dylib_path": self.ort_dylib_path,
                    "preload": self.preload,
                });
                let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
                s.push('\n');
                s
            }
        }
    }
}

/// When `path` is a chain of links that ends at an absolute path outside it that is gone (a
/// reused library whose environment was deleted), says so; else empty.
fn dangling_detail(path: &Path) -> String {
    let mut at = path.to_path_buf();
    let mut reused = None;
    for _ in 0..16 {
        let Ok(text) = std::fs::read_link(&at) else {
            break;
        };
        if text.is_absolute() {
            reused = Some(text.clone());
        }
        at = match at.parent() {
            Some(dir) => dir.join(&text),
            None => text,
        };
    }
    match reused {
        Some(t) if !t.exists() => format!(
            " (it links to `{}`, a library reused from this machine, which is gone)",
            t.display()
        ),
        _ => String::new(),
    }
}

/// POSIX shell single-quoting: `it's` → `'it'\''s'`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A value for a systemd `EnvironmentFile=`: plain when it is only safe characters, else
/// double-quoted with `\` and `"` escaped (systemd's own quoting; newlines cannot occur in
/// our paths' renderings because each line is one variable).
pub fn systemd_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:+,@%=".contains(&b));
    if plain {
        s.to_string()
    } else {
        let escaped = s
            .replace('\\', r"\\")
            .replace('"', "\\\"")
            .replace('\n', r"\n");
        format!("\"{escaped}\"")
    }
}

/// Where a library sits in the load order: lower loads first. Each library comes after the
/// ones it needs (`DT_NEEDED` of CUDA 12/13 and cuDNN 9), so `dlopen` of each finds its
/// dependencies already loaded.
fn rank(stem: &str) -> u32 {
    match stem {
        "libcudart" => 0,
        "libnvJitLink" => 1,
        "libnvrtc" | "libnvrtc-builtins" => 2,
        "libcublasLt" => 3,
        "libcublas" => 4,
        "libcurand" => 5,
        "libcufft" => 6,
        "libcusparse" => 7,
        "libcusolver" => 8,
        "libnvToolsExt" | "libcupti" => 9,
        "libcudnn_graph" => 10,
        "libcudnn_engines_precompiled" => 11,
        "libcudnn_engines_runtime_compiled" => 12,
        "libcudnn_heuristic" => 13,
        "libcudnn_ops" => 14,
        "libcudnn_cnn" => 15,
        "libcudnn_adv" => 16,
        "libcudnn" => 17,
        _ => 50,
    }
}

/// `libcublasLt.so.12.9.1.4` → (`libcublasLt`, `12.9.1.4`).
fn split_name(name: &str) -> Option<(&str, &str)> {
    let at = name.find(".so")?;
    let rest = &name[at + 3..];
    Some((&name[..at], rest.strip_prefix('.').unwrap_or(rest)))
}

/// The libraries to preload, in dependency order, from the names in an install's `lib/`.
///
/// One name per library: the SONAME-like name (`libcudart.so.12`, the shortest versioned name)
/// rather than the fully versioned file or the unversioned development link, since that is the
/// name other libraries' `DT_NEEDED` entries use. ONNX Runtime itself (`ort_name`) and its
/// providers are left out: the app loads ONNX Runtime by path and ONNX Runtime opens its
/// providers from its own directory. Unknown libraries come after the known ones, by name.
pub fn preload_order(names: &[&str], ort_name: &str) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut by_stem: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for &name in names {
        if name == ort_name || !is_library_name(name) || name.starts_with("libonnxruntime") {
            continue;
        }
        if let Some((stem, version)) = split_name(name) {
            by_stem.entry(stem).or_default().push((name, version));
        }
    }
    let mut chosen: Vec<(u32, &str, &str)> = by_stem
        .into_iter()
        .filter_map(|(stem, mut candidates)| {
            // Versioned names first, fewest version parts first; the bare `.so` last.
            candidates.sort_by_key(|(n, v)| (v.is_empty(), v.split('.').count(), n.len()));
            candidates.first().map(|(n, _)| (rank(stem), stem, *n))
        })
        .collect();
    chosen.sort();
    chosen.into_iter().map(|(_, _, n)| n.to_string()).collect()
}

/// What an app needs at start-up, read from the active install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activation {
    pub install_id: String,
    /// Load ONNX Runtime from here (for the `ort` crate: `ort::init_from(path)`).
    pub ort_library: PathBuf,
    /// `dlopen` these first, in this order, with `RTLD_NOW | RTLD_GLOBAL`: the install's CUDA
    /// and cuDNN libraries and the ones it reuses from this machine (by their absolute paths).
    pub preload: Vec<PathBuf>,
    /// The install's library directory, then the directories of the libraries it reuses
    /// from this machine.
    pub lib_dirs: Vec<PathBuf>,
    pub record: InstallRecord,
}

/// Reads the active install of `app` (root from `GPULIBS_HOME` / `XDG_DATA_HOME` / `HOME`).
/// Takes no lock and changes nothing. Fails when nothing is installed, when `current` points at
/// an install that is gone ([`StoreError::CurrentGone`]), and when a library it would name is
/// missing ([`StoreError::Unusable`]), each naming the path and the fix.
///
/// ```no_run
/// let a = gpulibs_store::activate("myapp")?;
/// for lib in &a.preload {
///     // dlopen(lib, RTLD_NOW | RTLD_GLOBAL)
/// }
/// // ort::init_from(&a.ort_library)
/// # Ok::<(), gpulibs_store::StoreError>(())
/// ```
pub fn activate(app: &str) -> Result<Activation> {
    activate_at(&install_root(app, &RootEnv::from_env())?)
}

/// [`activate`] for an explicit root.
pub fn activate_at(root: &Path) -> Result<Activation> {
    let nothing = || StoreError::NothingInstalled {
        root: root.to_path_buf(),
    };
    if !root.is_dir() {
        return Err(nothing());
    }
    let store = Store::existing(root);
    // One read of `current`: everything below is about that install, whatever happens to
    // the link meanwhile.
    let id = store.current_id()?.ok_or_else(nothing)?;
    let record = store.current_record(&id)?;
    let env = view_env(&store, &record);
    env.check(store.previous_usable())?;
    Ok(Activation {
        install_id: id,
        ort_library: env.ort_dylib_path,
        preload: env.preload,
        lib_dirs: env.lib_dirs,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_order_puts_dependencies_first_and_picks_sonames() {
        let names = [
            "libonnxruntime.so",
            "libonnxruntime.so.1.23.2",
            "libonnxruntime_providers_cuda.so",
            "libonnxruntime_providers_shared.so",
            "libcudnn.so.9",
            "libcudnn.so.9.15.1",
            "libcudnn_ops.so.9",
            "libcudnn_graph.so.9",
            "libcudnn_adv.so.9",
            "libcublas.so.12",
            "libcublas.so.12.9.1.4",
            "libcublasLt.so.12",
            "libcudart.so",
            "libcudart.so.12",
            "libcudart.so.12.9.79",
            "libcufft.so.11",
            "libzzz_vendor.so",
            "libcurand.so.10",
            "libnvrtc.so.12",
        ];
        assert_eq!(
            preload_order(&names, "libonnxruntime.so"),
            [
                "libcudart.so.12",
                "libnvrtc.so.12",
                "libcublasLt.so.12",
                "libcublas.so.12",
                "libcurand.so.10",
                "libcufft.so.11",
                "libcudnn_graph.so.9",
                "libcudnn_ops.so.9",
                "libcudnn_adv.so.9",
                "libcudnn.so.9",
                "libzzz_vendor.so",
            ]
        );
    }

    #[test]
    fn reused_libraries_interleave_by_load_order_and_lib_wins_a_name() {
        let sys = |soname: &str, dir: &str| SystemLibraryRecord {
            component: "c".into(),
            soname: soname.into(),
            path: Path::new(dir).join(soname),
            real_path: Path::new(dir).join(soname),
            size: 1,
            mtime_ns: 1,
            sha256: String::new(),
        };
        let lib = Path::new("/r/installs/i/lib");
        let names = [
            "libcudart.so.12",
            "libcublas.so.12",
            "libonnxruntime.so",
            "libonnxruntime_providers_cuda.so",
        ];
        let system = [
            sys("libcudnn.so.9", "/venv/nvidia/cudnn/lib"),
            sys("libcudart.so.12", "/venv/nvidia/cuda_runtime/lib"),
            sys("libcublasLt.so.12", "/venv/nvidia/cublas/lib"),
            sys("libcublasLt.so.12", "/venv/nvidia/cublas/lib"),
            sys("libcudnn_ops.so.9", "/venv/nvidia/cudnn/lib"),
        ];
        let got = preload_paths(lib, &names, "libonnxruntime.so", &system);
        let want: Vec<PathBuf> = [
            "/r/installs/i/lib/libcudart.so.12",
            "/venv/nvidia/cublas/lib/libcublasLt.so.12",
            "/r/installs/i/lib/libcublas.so.12",
            "/venv/nvidia/cudnn/lib/libcudnn_ops.so.9",
            "/venv/nvidia/cudnn/lib/libcudnn.so.9",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
        // Without reused libraries the order is preload_order's.
        let own = preload_paths(lib, &names, "libonnxruntime.so", &[]);
        let order: Vec<PathBuf> = preload_order(&names, "libonnxruntime.so")
            .iter()
            .map(|n| lib.join(n))
            .collect();
        assert_eq!(own, order);
    }

    #[test]
    fn quoting_survives_hostile_paths() {
        assert_eq!(sh_quote("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(systemd_quote("/home/u/.local/x"), "/home/u/.local/x");
        assert_eq!(systemd_quote("/a b/\"q\"\\"), r#""/a b/\"q\"\\""#);
    }

    #[test]
    fn formats_parse() {
        assert_eq!("sh".parse::<EnvFormat>(), Ok(EnvFormat::Sh));
        assert!("fish"
            .parse::<EnvFormat>()
            .unwrap_err()
            .contains("sh, systemd or json"));
    }
}
