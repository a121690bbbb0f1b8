//! Why no GPU is usable, in words a person can act on.
//!
//! NVML's error codes say little on their own ("driver not loaded"); the kernel's view in `/proc`
//! and `/sys` says which of the usual causes it is: nouveau holds the GPU, no NVIDIA module is
//! loaded, or the module and the user-space library come from different driver releases. The
//! roots are parameters so tests can point them at a temporary directory.

use std::path::{Path, PathBuf};

use crate::model::{Problem, ProblemCode, Severity};

/// Where `/proc` and `/sys` are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRoots {
    pub proc: PathBuf,
    pub sys: PathBuf,
}

impl Default for FsRoots {
    fn default() -> Self {
        Self {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
        }
    }
}

/// What the kernel says about NVIDIA drivers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelDriverState {
    /// `/proc/driver/nvidia` exists: the NVIDIA kernel module is loaded.
    pub nvidia_loaded: bool,
    /// The module's version from `/proc/driver/nvidia/version` (`580.159.04`).
    pub nvidia_version: Option<String>,
    /// `/sys/module/nouveau` exists.
    pub nouveau_loaded: bool,
}

impl KernelDriverState {
    pub fn read(roots: &FsRoots) -> Self {
        let version_text = std::fs::read_to_string(roots.proc.join("driver/nvidia/version")).ok();
        Self {
            nvidia_loaded: roots.proc.join("driver/nvidia").is_dir(),
            nvidia_version: version_text.as_deref().and_then(kernel_module_version),
            nouveau_loaded: roots.sys.join("module/nouveau").exists(),
        }
    }
}

/// The version on the `NVRM version:` line of `/proc/driver/nvidia/version`, which reads
/// `NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.256.02  Thu May …` or
/// `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build …`.
pub fn kernel_module_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|word| {
            word.contains('.')
                && word.starts_with(|c: char| c.is_ascii_digit())
                && word.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .map(str::to_string)
}

/// Why NVML could not be used, independent of `nvml-wrapper`'s types so the wording is tested
/// without a library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NvmlFailure {
    #[error("{library} could not be loaded: {detail}")]
    LibraryNotLoadable {
        library: String,
        detail: String,
        /// The file does not exist (as opposed to existing but failing to load).
        not_found: bool,
    },
    #[error("{library} has no function `{symbol}`")]
    SymbolMissing { library: String, symbol: String },
    #[error("NVML reports that the NVIDIA driver is not loaded")]
    DriverNotLoaded,
    #[error("NVML reports a driver/library version mismatch")]
    LibRmVersionMismatch,
    #[error("NVML reports no permission to use the GPUs")]
    NoPermission,
    #[error("NVML failed to initialise: {0}")]
    Other(String),
}

/// The loader's message without the library's name in front (`dlerror` starts with the path it
/// was given), so a problem that names the library does not name it twice.
fn without_library<'a>(library: &str, detail: &'a str) -> &'a str {
    detail
        .strip_prefix(library)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(detail)
}

/// Turns an NVML failure and the kernel's view into problems, most useful first.
pub fn nvml_failure_problems(failure: &NvmlFailure, kernel: &KernelDriverState) -> Vec<Problem> {
    let mut problems = Vec::new();
    match failure {
        NvmlFailure::LibraryNotLoadable {
            library,
            detail,
            not_found: true,
        } => {
            let hint = if kernel.nvidia_loaded {
                let version = kernel.nvidia_version.as_deref().unwrap_or("unknown version");
                format!(
                    "the NVIDIA kernel module ({version}) is loaded but its user-space library is \
                     not on the library path: in a container, run it with the NVIDIA Container \
                     Toolkit (`--gpus all` or the `nvidia` runtime); otherwise install the \
                     user-space driver package of the same version, or set GPULIBS_NVML_LIBRARY \
                     to the path of libnvidia-ml.so.1"
                )
            } else {
                "install the NVIDIA driver (it provides libnvidia-ml.so.1); in a container, run it \
                 with the NVIDIA Container Toolkit (`--gpus all`)"
                    .to_string()
            };
            problems.push(
                Problem::new(
                    ProblemCode::NvmlLibraryNotFound,
                    Severity::Error,
                    format!(
                        "{library} was not found ({})",
                        without_library(library, detail)
                    ),
                )
                .hint(hint),
            );
        }
        NvmlFailure::LibraryNotLoadable { library, detail, .. } => problems.push(
            Problem::new(
                ProblemCode::NvmlLibraryUnloadable,
                Severity::Error,
                format!(
                    "{library} exists but could not be loaded: {}",
                    without_library(library, detail)
                ),
            )
            .hint(
                "check that the file is the NVIDIA driver's libnvidia-ml.so.1 for this CPU \
                 architecture, or unset GPULIBS_NVML_LIBRARY",
            ),
        ),
        NvmlFailure::SymbolMissing { library, symbol } => problems.push(
            Problem::new(
                ProblemCode::NvmlSymbolMissing,
                Severity::Error,
                format!("{library} has no function `{symbol}`: it is not NVML, or a very old one"),
            )
            .hint("point GPULIBS_NVML_LIBRARY at the driver's libnvidia-ml.so.1, or update the driver"),
        ),
        NvmlFailure::DriverNotLoaded => problems.push(
            Problem::new(
                ProblemCode::DriverNotLoaded,
                Severity::Error,
                "NVML is installed but the NVIDIA kernel driver is not running",
            )
            .hint(
                "load it (`sudo modprobe nvidia`) or reboot; if that fails, reinstall the NVIDIA \
                 driver for the running kernel (its DKMS module may not have been built)",
            ),
        ),
        NvmlFailure::LibRmVersionMismatch => {
            let module = match &kernel.nvidia_version {
                Some(v) => format!(" (the loaded kernel module is {v})"),
                None => String::new(),
            };
            problems.push(
                Problem::new(
                    ProblemCode::DriverLibraryMismatch,
                    Severity::Error,
                    format!(
                        "driver/library version mismatch: the kernel module and user-space \
                         driver differ{module}, usually after a driver upgrade"
                    ),
                )
                .hint("reboot, or reload the nvidia kernel module (`sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia`)"),
            );
        }
        NvmlFailure::NoPermission => problems.push(
            Problem::new(
                ProblemCode::NoPermission,
                Severity::Error,
                "NVML may not open the GPU devices (/dev/nvidia*)",
            )
            .hint(
                "check the permissions of /dev/nvidia* (add the user to the group that owns them), \
                 or the container's device rules",
            ),
        ),
        NvmlFailure::Other(detail) => problems.push(
            Problem::new(
                ProblemCode::NvmlInitFailed,
                Severity::Error,
                format!("NVML failed to initialise: {detail}"),
            )
            .hint("run `nvidia-smi` to see the driver's own message"),
        ),
    }

    // The kernel's view explains "not found" and "not loaded"; for a mismatch it is already in
    // the message, and for the rest it would be noise.
    let explains = matches!(
        failure,
        NvmlFailure::LibraryNotLoadable { .. } | NvmlFailure::DriverNotLoaded
    );
    if explains {
        problems.extend(kernel_problems(kernel));
    }
    problems
}

/// Problems the kernel's state reveals on its own.
pub fn kernel_problems(kernel: &KernelDriverState) -> Vec<Problem> {
    let mut problems = Vec::new();
    if kernel.nouveau_loaded {
        problems.push(
            Problem::new(
                ProblemCode::NouveauLoaded,
                Severity::Error,
                "the open-source nouveau driver is loaded (/sys/module/nouveau); CUDA needs the \
                 NVIDIA driver",
            )
            .hint(
                "install the NVIDIA driver, which blacklists nouveau, then reboot \
                 (or blacklist nouveau yourself and rebuild the initramfs)",
            ),
        );
    }
    if !kernel.nvidia_loaded {
        problems.push(
            Problem::new(
                ProblemCode::KernelModuleMissing,
                Severity::Error,
                "no NVIDIA kernel driver is loaded (/proc/driver/nvidia is absent)",
            )
            .hint(
                "install the NVIDIA driver and reboot; if it is installed, `sudo modprobe nvidia` \
                 shows why it does not load (Secure Boot can block unsigned modules)",
            ),
        );
    }
    problems
}

/// `true` when `path` names a file (as `GPULIBS_NVML_LIBRARY` does) rather than a bare library
/// name for the dynamic loader to search.
pub(crate) fn is_path(library: &Path) -> bool {
    library.components().count() > 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_module_versions() {
        let cases = [
            (
                "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  \nGCC version:  gcc version 15.3.0 (GCC)\n",
                Some("580.159.04"),
            ),
            (
                "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.256.02  Thu May  2 14:39:47 UTC 2024\n",
                Some("470.256.02"),
            ),
            (
                "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  540.4.0  Release Build\n",
                Some("540.4.0"),
            ),
            ("GCC version: 12.2\n", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(kernel_module_version(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn kernel_state_from_directories() {
        let dir = tempfile::tempdir().unwrap();
        let roots = FsRoots {
            proc: dir.path().join("proc"),
            sys: dir.path().join("sys"),
        };
        assert_eq!(
            KernelDriverState::read(&roots),
            KernelDriverState::default()
        );

        std::fs::create_dir_all(roots.sys.join("module/nouveau")).unwrap();
        std::fs::create_dir_all(roots.proc.join("driver/nvidia")).unwrap();
        std::fs::write(
            roots.proc.join("driver/nvidia/version"),
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.256.02  Thu May  2 2024\n",
        )
        .unwrap();
        let state = KernelDriverState::read(&roots);
        assert!(state.nvidia_loaded && state.nouveau_loaded);
        assert_eq!(state.nvidia_version.as_deref(), Some("470.256.02"));
    }

    #[test]
    fn a_problem_names_the_library_once() {
        let failure = NvmlFailure::LibraryNotLoadable {
            library: "/opt/no-nvml.so".into(),
            detail: "/opt/no-nvml.so: cannot open shared object file: No such file or directory"
                .into(),
            not_found: true,
        };
        let problems = nvml_failure_problems(&failure, &KernelDriverState::default());
        assert_eq!(
            problems[0].message,
            "/opt/no-nvml.so was not found (cannot open shared object file: No such file or \
             directory)"
        );
        let broken = NvmlFailure::LibraryNotLoadable {
            library: "libnvidia-ml.so.1".into(),
            detail: "libcuda.so.1: cannot open shared object file".into(),
            not_found: false,
        };
        let problems = nvml_failure_problems(&broken, &KernelDriverState::default());
        assert_eq!(
            problems[0].message,
            "libnvidia-ml.so.1 exists but could not be loaded: libcuda.so.1: cannot open shared \
             object file"
        );
    }

    /// (failure, kernel state, expected problem codes in order)
    #[test]
    fn failure_table() {
        use ProblemCode::*;
        let not_found = NvmlFailure::LibraryNotLoadable {
            library: "libnvidia-ml.so.1".into(),
            detail: "cannot open shared object file".into(),
            not_found: true,
        };
        let nothing = KernelDriverState::default();
        let nouveau = KernelDriverState {
            nouveau_loaded: true,
            ..KernelDriverState::default()
        };
        let nvidia = KernelDriverState {
            nvidia_loaded: true,
            nvidia_version: Some("580.159.04".into()),
            nouveau_loaded: false,
        };
        let cases: Vec<(NvmlFailure, &KernelDriverState, Vec<ProblemCode>)> = vec![
            (
                not_found.clone(),
                &nothing,
                vec![NvmlLibraryNotFound, KernelModuleMissing],
            ),
            (
                not_found.clone(),
                &nouveau,
                vec![NvmlLibraryNotFound, NouveauLoaded, KernelModuleMissing],
            ),
            (not_found, &nvidia, vec![NvmlLibraryNotFound]),
            (
                NvmlFailure::DriverNotLoaded,
                &nouveau,
                vec![DriverNotLoaded, NouveauLoaded, KernelModuleMissing],
            ),
            (
                NvmlFailure::LibRmVersionMismatch,
                &nvidia,
                vec![DriverLibraryMismatch],
            ),
            (NvmlFailure::NoPermission, &nvidia, vec![NoPermission]),
            (
                NvmlFailure::Other("unknown".into()),
                &nvidia,
                vec![NvmlInitFailed],
            ),
        ];
        for (failure, kernel, want) in cases {
            let got: Vec<_> = nvml_failure_problems(&failure, kernel)
                .iter()
                .map(|p| p.code)
                .collect();
            assert_eq!(got, want, "{failure:?} with {kernel:?}");
        }
    }

    #[test]
    fn messages_name_what_to_do() {
        let kernel = KernelDriverState {
            nvidia_loaded: true,
            nvidia_version: Some("580.65.06".into()),
            nouveau_loaded: false,
        };
        let p = &nvml_failure_problems(&NvmlFailure::LibRmVersionMismatch, &kernel)[0];
        assert!(
            p.message.contains("driver/library version mismatch"),
            "{p:?}"
        );
        assert!(p.message.contains("580.65.06"), "{p:?}");
        assert!(
            p.hint.as_deref().unwrap_or_default().contains("reboot"),
            "{p:?}"
        );

        let p = &nvml_failure_problems(
            &NvmlFailure::LibraryNotLoadable {
                library: "libnvidia-ml.so.1".into(),
                detail: "no such file".into(),
                not_found: true,
            },
            &kernel,
        )[0];
        assert!(p.message.contains("libnvidia-ml.so.1"), "{p:?}");
        let hint = p.hint.as_deref().unwrap_or_default();
        assert!(
            hint.contains("Container Toolkit") && hint.contains("580.65.06"),
            "{p:?}"
        );
    }
}
