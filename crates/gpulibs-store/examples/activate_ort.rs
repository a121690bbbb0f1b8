//! A Rust app's start-up with gpulibs: [`gpulibs_store::activate`] says where the active
//! install's ONNX Runtime is and what to load before it; the app loads those, then ONNX Runtime.
//!
//! ```sh
//! cargo run -p gpulibs-store --example activate_ort -- APP
//! ```
//!
//! An app using the `ort` crate (feature `load-dynamic`) does the same and then calls
//! `ort::init_from(&activation.ort_library)` (docs/vendor.md shows the code). This example stays
//! free of `ort`: it opens the library with `dlopen` and calls ONNX Runtime's C entry point,
//! `OrtGetApiBase`, then `CreateEnv`, which is what `ort::init_from(..)?.build()` does first.
//!
//! Prints `ONNX Runtime <version> loaded from <path>` and exits 0; exits 1 with activate()'s
//! message (which names the path and the fix) when nothing usable is installed, or 2 when the
//! library does not load.

// An example program: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::ffi::{c_char, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

/// `OrtApiBase` of `onnxruntime_c_api.h`, the same in every release.
#[repr(C)]
struct OrtApiBase {
    get_api: unsafe extern "C" fn(version: u32) -> *const c_void,
    get_version_string: unsafe extern "C" fn() -> *const c_char,
}

/// `OrtStatus* CreateEnv(OrtLoggingLevel, const char* logid, OrtEnv** out)`: the fourth entry of
/// `OrtApi` (after `CreateStatus`, `GetErrorCode`, `GetErrorMessage`), stable since API 1.
type CreateEnv = unsafe extern "C" fn(i32, *const c_char, *mut *mut c_void) -> *mut c_void;
/// `const char* GetErrorMessage(const OrtStatus*)`, the third entry.
type GetErrorMessage = unsafe extern "C" fn(*const c_void) -> *const c_char;
const ORT_LOGGING_LEVEL_WARNING: i32 = 2;

fn last_dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string owned by the loader.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

/// `dlopen(path, RTLD_NOW | RTLD_GLOBAL)`; the handle is kept for the life of the process.
fn load(path: &Path) -> Result<*mut c_void, String> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: loading a library runs its initialisers, which is the point of loading it.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        Err(format!("{}: {}", path.display(), last_dl_error()))
    } else {
        Ok(handle)
    }
}

/// Loads ONNX Runtime from `path`, creates an environment, returns its version.
fn init_ort(path: &Path) -> Result<String, String> {
    let handle = load(path)?;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release; the base and
    // the version string are static in the library; API version 1 is served by every release,
    // and its table starts with CreateStatus, GetErrorCode, GetErrorMessage, CreateEnv.
    unsafe {
        let sym = libc::dlsym(handle, c"OrtGetApiBase".as_ptr());
        if sym.is_null() {
            return Err(format!(
                "{} does not export OrtGetApiBase: not ONNX Runtime",
                path.display()
            ));
        }
        let get_base: unsafe extern "C" fn() -> *const OrtApiBase = std::mem::transmute(sym);
        let base = get_base();
        if base.is_null() {
            return Err("OrtGetApiBase returned null".into());
        }
        let version = CStr::from_ptr(((*base).get_version_string)())
            .to_string_lossy()
            .into_owned();
        let api = ((*base).get_api)(1) as *const *const c_void;
        if api.is_null() {
            return Err(format!("ONNX Runtime {version} serves no API version 1"));
        }
        let get_error_message: GetErrorMessage = std::mem::transmute(*api.add(2));
        let create_env: CreateEnv = std::mem::transmute(*api.add(3));
        let mut env: *mut c_void = std::ptr::null_mut();
        let status = create_env(
            ORT_LOGGING_LEVEL_WARNING,
            c"activate_ort".as_ptr(),
            &mut env,
        );
        if !status.is_null() {
            let message = CStr::from_ptr(get_error_message(status)).to_string_lossy();
            return Err(format!("CreateEnv failed: {message}"));
        }
        if env.is_null() {
            return Err("CreateEnv returned no environment".into());
        }
        Ok(version)
    }
}

fn main() -> ExitCode {
    let app = std::env::args().nth(1).unwrap_or_else(|| "gpulibs".into());
    // 1. Where the active install is (GPULIBS_HOME, else $XDG_DATA_HOME/APP/gpu-libs).
    let activation = match gpulibs_store::activate(&app) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    // 2. The CUDA libraries first, in the order given, so ONNX Runtime's CUDA provider finds
    //    them already loaded (empty for a CPU install).
    for lib in &activation.preload {
        if let Err(e) = load(lib) {
            eprintln!("error: preloading {e}");
            return ExitCode::from(2);
        }
    }
    // 3. ONNX Runtime itself; with the `ort` crate: `ort::init_from(&activation.ort_library)`.
    match init_ort(&activation.ort_library) {
        Ok(version) => {
            println!(
                "ONNX Runtime {version} loaded from {} (install {}, variant {})",
                activation.ort_library.display(),
                activation.install_id,
                activation.record.variant
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: loading ONNX Runtime: {e}");
            ExitCode::from(2)
        }
    }
}
