//! ONNX Runtime and the CUDA libraries, loaded into this process.
//!
//! A process holds one ONNX Runtime: the `ort` crate keeps the first library it loads for the
//! life of the process. `load_ort` therefore loads once and afterwards only accepts the same
//! file again; a request for another one is an error, not a silent reuse.
//!
//! ONNX Runtime's log goes through a logging function of verify's: every line becomes a
//! `tracing` event with target `onnxruntime` at the matching level (`tracing_level`), so the
//! application's subscriber decides what shows and how (gpulibs: warnings and errors by default,
//! more with `-v`, `GPULIBS_LOG=onnxruntime=debug`, no colour under `NO_COLOR` or off a
//! terminal), and while a capture is in force (during the creation of the verified session) the
//! lines about node placement are kept for the report.

use std::ffi::CStr;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gpulibs_inspect::deps::{Dependency, DependencyKind, DependencyReport, DependencyStatus};
use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
use ort::environment::Environment;
use ort::logging::LogLevel;

use crate::error::{VerifyError, MIN_ORT};
use crate::report::{MissingLibrary, PreloadStatus, PreloadedLibrary};

struct Loaded {
    path: PathBuf,
    version: String,
    env: Environment,
}

static ORT: Mutex<Option<Loaded>> = Mutex::new(None);
/// Preloaded libraries stay loaded for the life of the process, as the CUDA provider needs.
static PRELOADED: Mutex<Vec<Library>> = Mutex::new(Vec::new());

/// The variable ONNX Runtime reads when its environment is created to turn its telemetry off.
pub const ORT_TELEMETRY_OPT_OUT: &str = "ORT_DISABLE_TELEMETRY";

/// Turns ONNX Runtime's telemetry off for this process, unless the user already chose by setting
/// [`ORT_TELEMETRY_OPT_OUT`] themselves.
///
/// From 1.31 the Linux builds keep telemetry state on disk as soon as an environment is created:
/// a device id and an SQLite event store in `~/.cache/Microsoft/DeveloperTools/.onnxruntime/`
/// and a `.ses` file in the temporary directory. Verify only needs to run a model, so gpulibs opts
/// out; `DisableTelemetryEvents` (the `ort` crate's `with_telemetry(false)`) comes too late, after
/// the store is made. Call this at start-up, before other threads exist: it sets a process
/// environment variable.
pub fn disable_ort_telemetry() {
    if std::env::var_os(ORT_TELEMETRY_OPT_OUT).is_none() {
        std::env::set_var(ORT_TELEMETRY_OPT_OUT, "1");
    }
}

thread_local! {
    /// Placement lines kept while a capture is in force on this thread; `None` when none is.
    /// Per thread: ONNX Runtime logs a session's placement on the thread that creates it, and
    /// two verifications on two threads must not see each other's lines.
    static CAPTURE: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}
/// A capture keeps at most this many lines (a large model with thousands of CPU nodes is
/// described well enough by the first ones, and by the profile).
const CAPTURE_LIMIT: usize = 4000;

/// Starts keeping ONNX Runtime's placement lines ([`crate::placement::is_placement_line`])
/// logged on this thread, dropping any kept before.
pub(crate) fn start_capture() {
    CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
}

/// Stops keeping lines and returns those kept on this thread since [`start_capture`].
pub(crate) fn take_capture() -> Vec<String> {
    CAPTURE.with(|c| c.borrow_mut().take().unwrap_or_default())
}

fn level_word(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Verbose => "verbose",
        LogLevel::Info => "info",
        LogLevel::Warning => "warning",
        LogLevel::Error => "error",
        LogLevel::Fatal => "fatal",
    }
}

/// The `tracing` level of an ONNX Runtime severity: fatal and error are errors, warning a
/// warning, info info (`-v`), verbose debug (`-vv`).
pub(crate) fn tracing_level(level: LogLevel) -> tracing::Level {
    match level {
        LogLevel::Fatal | LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warning => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Verbose => tracing::Level::DEBUG,
    }
}

/// ONNX Runtime's logging function for the environment (which receives every message, verbose
/// included: the placement lines are `info` and `verbose`).
fn on_ort_log(level: LogLevel, _category: &str, id: &str, location: &str, message: &str) {
    // `tracing`'s macros take a constant level; one arm per level.
    // `[session id, code location]` as ONNX Runtime writes it; most lines have no id.
    let place = if id.is_empty() {
        location.to_string()
    } else {
        format!("{id}, {location}")
    };
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(target: "onnxruntime", $level, "[{place}] {message}")
        };
    }
    let mut to = tracing_level(level);
    // Said at ERROR when a session whose model did not load is dropped with profiling on (verify
    // profiles every session): the model's own error is the failure; this line is noise.
    if message.starts_with("Could not write a profile because no model was loaded") {
        to = tracing::Level::DEBUG;
    }
    if to == tracing::Level::ERROR {
        emit!(tracing::Level::ERROR)
    } else if to == tracing::Level::WARN {
        emit!(tracing::Level::WARN)
    } else if to == tracing::Level::INFO {
        emit!(tracing::Level::INFO)
    } else {
        emit!(tracing::Level::DEBUG)
    }
    if !crate::placement::is_placement_line(message) {
        return;
    }
    let _ = CAPTURE.try_with(|c| {
        if let Ok(mut capture) = c.try_borrow_mut() {
            if let Some(lines) = capture.as_mut().filter(|l| l.len() < CAPTURE_LIMIT) {
                lines.push(format!("{} {location}: {message}", level_word(level)));
            }
        }
    });
}

/// Loads ONNX Runtime from `path` (once per process) and returns its version and environment.
pub(crate) fn load_ort(path: &Path) -> Result<(String, Environment), VerifyError> {
    let canonical = path
        .canonicalize()
        .map_err(|e| VerifyError::OrtLibraryUnusable {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
    let mut guard = ORT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(loaded) = guard.as_ref() {
        if loaded.path == canonical {
            return Ok((loaded.version.clone(), loaded.env.clone()));
        }
        return Err(VerifyError::OrtAlreadyLoaded {
            loaded: loaded.path.clone(),
            requested: canonical,
        });
    }
    check_elf(&canonical)?;
    // Read the version ourselves first: a library too old for the C API `ort` uses gets our
    // message rather than `ort`'s, and nothing is initialised with it.
    let version = version_of(&canonical)?;
    if parse_version(&version).is_none_or(|v| v < MIN_ORT) {
        return Err(VerifyError::OrtTooOld { version });
    }
    let built = catch_unwind(AssertUnwindSafe(|| {
        ort::init_from(&canonical).map(|b| {
            b.with_name("gpulibs-verify")
                .with_telemetry(false)
                .with_logger(Arc::new(on_ort_log))
                .build()
        })
    }));
    let env = match built {
        Ok(Ok(Ok(env))) => env,
        Ok(Ok(Err(e))) => {
            return Err(VerifyError::OrtLoad {
                path: canonical,
                message: e.to_string(),
            })
        }
        Ok(Err(e)) => {
            return Err(VerifyError::OrtLoad {
                path: canonical,
                message: e.to_string(),
            })
        }
        Err(panic) => {
            return Err(VerifyError::OrtLoad {
                path: canonical,
                message: format!("the ort crate panicked: {}", panic_text(&panic)),
            })
        }
    };
    *guard = Some(Loaded {
        path: canonical,
        version: version.clone(),
        env: env.clone(),
    });
    Ok((version, env))
}

pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// `path` is a regular file that starts like an ELF library, or [`VerifyError::OrtLibraryUnusable`]
/// says why not.
pub(crate) fn check_elf(path: &Path) -> Result<(), VerifyError> {
    let unusable = |problem: String| VerifyError::OrtLibraryUnusable {
        path: path.to_path_buf(),
        problem,
    };
    let mut magic = [0u8; 4];
    // A FIFO or device is refused before it is opened (opening a FIFO blocks for a writer).
    gpulibs_inspect::read::open_regular(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| unusable(e.to_string()))?;
    if magic != *b"\x7fELF" {
        return Err(unusable("not an ELF shared library".into()));
    }
    Ok(())
}

/// `OrtGetApiBase()->GetVersionString()`, with the loader's own error when it cannot load.
fn version_of(path: &Path) -> Result<String, VerifyError> {
    let load_err = |message: String| VerifyError::OrtLoad {
        path: path.to_path_buf(),
        message,
    };
    // SAFETY: loading ONNX Runtime runs its initialisers, which is what loading it is for; the
    // handle is reference-counted by the loader and `ort` opens the same file next.
    let lib = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }
        .map_err(|e| load_err(loader_error(&e)))?;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release.
    let get_base = unsafe {
        lib.get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase\0")
    }
    .map_err(|_| load_err("the library does not export OrtGetApiBase: not ONNX Runtime".into()))?;
    // SAFETY: the base is a static table of the library; the string is static and NUL-ended.
    let version = unsafe {
        let base = get_base();
        if base.is_null() {
            return Err(load_err("OrtGetApiBase returned null".into()));
        }
        let s = ((*base).GetVersionString)();
        if s.is_null() {
            return Err(load_err("GetVersionString returned null".into()));
        }
        CStr::from_ptr(s).to_string_lossy().into_owned()
    };
    // Keep it loaded: `ort` reopens the same handle.
    PRELOADED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(lib);
    Ok(version)
}

/// The loader's own message (`libfoo.so.1: cannot open shared object file: ...`): libloading
/// puts it in the error's source, behind a generic "dlopen failed".
pub(crate) fn loader_error(e: &libloading::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(source) => source.to_string(),
        None => e.to_string(),
    }
}

/// `1.23.2` → (1, 23).
pub(crate) fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The CUDA libraries the provider needs, in the order they must be loaded, and whether it
/// cannot work without each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PreloadItem {
    pub name: String,
    pub required: bool,
}

/// Load order by family: the driver and runtime first, then what builds on them.
fn rank(stem: &str) -> Option<u32> {
    Some(match stem {
        "libcuda" => 0,
        "libcudart" => 1,
        "libnvJitLink" => 2,
        "libnvrtc" => 3,
        "libcublasLt" => 4,
        "libcublas" => 5,
        "libcurand" => 6,
        "libcufft" => 7,
        "libcudnn" => 10,
        "libcudnn_graph" => 11,
        "libcudnn_engines_precompiled" => 12,
        "libcudnn_engines_runtime_compiled" => 13,
        "libcudnn_heuristic" => 14,
        "libcudnn_ops" => 15,
        "libcudnn_cnn" => 16,
        "libcudnn_adv" => 17,
        _ => return None,
    })
}

fn major(name: &str) -> Option<u32> {
    name.split(".so.").nth(1)?.split('.').next()?.parse().ok()
}

fn stem(name: &str) -> &str {
    name.split(".so").next().unwrap_or(name)
}

/// From the provider's own dependencies (depth 1): the CUDA libraries, ordered for loading.
/// `DT_NEEDED` ones and cuDNN itself are required; other run-time names (cuFFT, NVRTC in
/// recent releases) are loaded if present.
pub(crate) fn preload_plan(deps: &DependencyReport) -> Vec<PreloadItem> {
    let mut items: Vec<(u32, PreloadItem)> = Vec::new();
    for d in deps.dependencies.iter().filter(|d| d.depth == 1) {
        let file = d.name.rsplit('/').next().unwrap_or(&d.name);
        let Some(r) = rank(stem(file)) else { continue };
        if stem(file) == "libcuda" {
            continue; // the driver's: never preloaded from an install, only checked
        }
        let versioned = !file.ends_with(".so");
        let required = versioned && (d.kind == DependencyKind::Needed || stem(file) == "libcudnn");
        if let Some((_, existing)) = items.iter_mut().find(|(_, i)| i.name == file) {
            existing.required |= required;
            continue;
        }
        items.push((
            r,
            PreloadItem {
                name: file.to_string(),
                required,
            },
        ));
    }
    // A development name (`libcudnn.so`) is only worth trying when no versioned name of the
    // family is listed: runtime packages ship `libcudnn.so.9`, not the bare name.
    let versioned: Vec<String> = items
        .iter()
        .filter(|(_, i)| !i.name.ends_with(".so"))
        .map(|(_, i)| stem(&i.name).to_string())
        .collect();
    items
        .retain(|(_, i)| !i.name.ends_with(".so") || !versioned.iter().any(|v| v == stem(&i.name)));
    // Run-time names of another CUDA major (1.31 names `libcudart.so.12` and `libnvrtc.so.12`
    // next to its CUDA 13 ones) are not what this build loads.
    let cuda_major = items
        .iter()
        .filter(|(_, i)| {
            i.required && matches!(stem(&i.name), "libcudart" | "libcublas" | "libcublasLt")
        })
        .find_map(|(_, i)| major(&i.name));
    if let Some(cuda) = cuda_major {
        items.retain(|(_, i)| {
            i.required
                || !matches!(
                    stem(&i.name),
                    "libcudart" | "libnvrtc" | "libcublas" | "libcublasLt"
                )
                || major(&i.name) == Some(cuda)
        });
    }
    items.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.name.cmp(&b.1.name)));
    items.into_iter().map(|(_, i)| i).collect()
}

/// `dlopen`s each library (`RTLD_NOW | RTLD_GLOBAL`) from the first preload directory that has
/// it, else by name through the loader's search; cuDNN's sub-libraries next to a preloaded
/// `libcudnn.so.N` follow it. Returns what happened to each and the failures of required ones.
pub(crate) fn preload(
    plan: &[PreloadItem],
    dirs: &[PathBuf],
) -> (Vec<PreloadedLibrary>, Vec<(String, String)>) {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut queue: Vec<PreloadItem> = plan.to_vec();
    let mut i = 0;
    while i < queue.len() {
        let item = queue[i].clone();
        i += 1;
        let path = dirs
            .iter()
            .map(|d| d.join(&item.name))
            .find(|p| p.is_file());
        let target: &std::ffi::OsStr = match &path {
            Some(p) => p.as_os_str(),
            None => std::ffi::OsStr::new(&item.name),
        };
        // SAFETY: these are the CUDA libraries the CUDA provider is about to load anyway;
        // loading them runs their initialisers, which is the point.
        let result = unsafe { Library::open(Some(target), RTLD_NOW | RTLD_GLOBAL) };
        match result {
            Ok(lib) => {
                PRELOADED
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(lib);
                if stem(&item.name) == "libcudnn" {
                    if let Some(dir) = path.as_ref().and_then(|p| p.parent()) {
                        let suffix = &item.name["libcudnn".len()..]; // `.so.9`
                        let mut subs: Vec<String> = std::fs::read_dir(dir)
                            .into_iter()
                            .flatten()
                            .flatten()
                            .filter_map(|e| e.file_name().into_string().ok())
                            .filter(|n| {
                                n.starts_with("libcudnn_")
                                    && n.ends_with(suffix)
                                    && rank(stem(n)).is_some()
                            })
                            .collect();
                        subs.sort_by_key(|n| rank(stem(n)));
                        for name in subs {
                            if !queue.iter().any(|q| q.name == name) {
                                queue.push(PreloadItem {
                                    name,
                                    required: false,
                                });
                            }
                        }
                    }
                }
                report.push(PreloadedLibrary {
                    name: item.name.clone(),
                    path,
                    required: item.required,
                    status: PreloadStatus::Loaded,
                    error: None,
                });
            }
            Err(e) => {
                let error = loader_error(&e);
                if item.required {
                    failures.push((item.name.clone(), error.clone()));
                }
                report.push(PreloadedLibrary {
                    name: item.name.clone(),
                    path,
                    required: item.required,
                    status: PreloadStatus::Failed,
                    error: Some(error),
                });
            }
        }
    }
    (report, failures)
}

/// What the loader would not find for `deps.file` when it is loaded (and, as `runtime`, the
/// libraries of `plan` it would `dlopen` by name and not find), explained.
pub(crate) fn missing_libraries(
    deps: &DependencyReport,
    plan: &[PreloadItem],
) -> Vec<MissingLibrary> {
    let at_load: Vec<&Dependency> = deps.missing_at_load().collect();
    let runtime = deps.dependencies.iter().filter(|d| {
        d.depth == 1
            && d.kind == DependencyKind::Runtime
            && d.status != DependencyStatus::Found
            && plan.iter().any(|p| p.name == d.name)
    });
    at_load
        .into_iter()
        .chain(runtime)
        .map(|d| MissingLibrary {
            name: d.name.clone(),
            required_by: d.required_by.clone(),
            kind: match d.kind {
                DependencyKind::Needed => "needed",
                DependencyKind::Runtime => "runtime",
            }
            .into(),
            message: d
                .hint
                .clone()
                .unwrap_or_else(|| gpulibs_inspect::deps::missing_library_message(&d.name)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ort_log_levels() {
        use tracing::Level;
        let cases = [
            (LogLevel::Fatal, Level::ERROR),
            (LogLevel::Error, Level::ERROR),
            (LogLevel::Warning, Level::WARN),
            (LogLevel::Info, Level::INFO),
            (LogLevel::Verbose, Level::DEBUG),
        ];
        for (ort, want) in cases {
            assert_eq!(tracing_level(ort), want, "{ort:?}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.23.2"), Some((1, 23)));
        assert_eq!(parse_version("1.20.0-dev"), Some((1, 20)));
        assert_eq!(parse_version("x"), None);
        assert!(parse_version("1.19.2").unwrap() < MIN_ORT);
    }

    #[test]
    fn load_order() {
        let mut order: Vec<&str> = vec![
            "libcudnn.so.9",
            "libcublas.so.13",
            "libcudart.so.13",
            "libcublasLt.so.13",
            "libcufft.so.12",
            "libcudnn_ops.so.9",
            "libcudnn_graph.so.9",
        ];
        order.sort_by_key(|n| rank(stem(n)));
        assert_eq!(
            order,
            [
                "libcudart.so.13",
                "libcublasLt.so.13",
                "libcublas.so.13",
                "libcufft.so.12",
                "libcudnn.so.9",
                "libcudnn_graph.so.9",
                "libcudnn_ops.so.9"
            ]
        );
        assert_eq!(rank("libstdc++"), None);
    }
}
