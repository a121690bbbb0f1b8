//! What a missing library is and where it comes from, for the families an ONNX Runtime CUDA
//! application needs.
//!
//! The rules, as data ([`FAMILIES`]):
//! - cuBLAS, cuBLASLt, the CUDA runtime, NVRTC and nvJitLink carry the CUDA major version as
//!   their soname major (`libcublasLt.so.13` is CUDA 13's);
//! - cuFFT is one behind: `libcufft.so.10` is CUDA 11's, `.11` CUDA 12's, `.12` CUDA 13's;
//! - cuRAND is `libcurand.so.10` in CUDA 11, 12 and 13 alike;
//! - cuDNN and TensorRT carry their own major (`libcudnn.so.9` is cuDNN 9 for any CUDA);
//! - `libcuda.so.1` and `libnvidia-ml.so.1` come with the driver, never with a toolkit.
//!
//! Pip packages: for CUDA 11 and 12 NVIDIA publishes `nvidia-<lib>-cu11`/`-cu12`; for CUDA 13 the
//! unsuffixed `nvidia-<lib>` (whose version major is the library's); cuDNN keeps the suffix
//! (`nvidia-cudnn-cu13`).

/// How to describe one library family.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Soname major = CUDA major. `what` names the component, `pip` the package stem.
    CudaMajor {
        what: &'static str,
        pip: &'static str,
    },
    /// cuFFT: soname major + 1 = CUDA major.
    Cufft,
    /// cuRAND 10, shared by CUDA 11, 12 and 13.
    Curand,
    /// cuDNN: its own major.
    Cudnn,
    /// TensorRT: its own major.
    TensorRt,
    /// A fixed explanation.
    Fixed(&'static str),
}

/// How a family's sonames are recognised: the part before `.so`.
#[derive(Debug, Clone, Copy)]
enum Stem {
    Exact(&'static str),
    Prefix(&'static str),
}

const DRIVER: &str = "the NVIDIA driver (libcuda.so.1 comes with the driver, not with CUDA \
                      toolkits; install the NVIDIA driver or, in a container, the NVIDIA \
                      container toolkit)";
const NVML: &str = "the NVIDIA driver (libnvidia-ml.so.1, NVML, comes with the driver, not with \
                    CUDA toolkits; install the NVIDIA driver or, in a container, the NVIDIA \
                    container toolkit)";
const ORT_BRIDGE: &str = "ONNX Runtime's provider bridge (libonnxruntime_providers_shared.so \
                          ships next to libonnxruntime_providers_cuda.so in onnxruntime/capi/ of \
                          the onnxruntime-gpu wheel; keep the two in the same directory)";
const ORT_PROVIDER: &str = "an ONNX Runtime execution provider (it ships in onnxruntime/capi/ of \
                            the onnxruntime-gpu wheel, next to libonnxruntime.so)";
const ORT: &str = "the ONNX Runtime library (it ships in onnxruntime/capi/ of the onnxruntime or \
                   onnxruntime-gpu wheel, or in the ONNX Runtime release archive's lib/)";

/// The families, first match wins (so exact stems come before the prefixes that cover them).
const FAMILIES: &[(Stem, Rule)] = &[
    (
        Stem::Exact("libcublasLt"),
        Rule::CudaMajor {
            what: "cuBLAS",
            pip: "nvidia-cublas",
        },
    ),
    (
        Stem::Exact("libcublas"),
        Rule::CudaMajor {
            what: "cuBLAS",
            pip: "nvidia-cublas",
        },
    ),
    (
        Stem::Exact("libcudart"),
        Rule::CudaMajor {
            what: "runtime",
            pip: "nvidia-cuda-runtime",
        },
    ),
    (
        Stem::Exact("libnvrtc"),
        Rule::CudaMajor {
            what: "NVRTC",
            pip: "nvidia-cuda-nvrtc",
        },
    ),
    (
        Stem::Exact("libnvrtc-builtins"),
        Rule::CudaMajor {
            what: "NVRTC",
            pip: "nvidia-cuda-nvrtc",
        },
    ),
    (
        Stem::Exact("libnvJitLink"),
        Rule::CudaMajor {
            what: "nvJitLink",
            pip: "nvidia-nvjitlink",
        },
    ),
    (Stem::Exact("libcufft"), Rule::Cufft),
    (Stem::Exact("libcufftw"), Rule::Cufft),
    (Stem::Exact("libcurand"), Rule::Curand),
    (Stem::Prefix("libcudnn"), Rule::Cudnn),
    (Stem::Prefix("libnvinfer"), Rule::TensorRt),
    (Stem::Prefix("libnvonnxparser"), Rule::TensorRt),
    (Stem::Exact("libcuda"), Rule::Fixed(DRIVER)),
    (Stem::Exact("libnvidia-ml"), Rule::Fixed(NVML)),
    (
        Stem::Exact("libonnxruntime_providers_shared"),
        Rule::Fixed(ORT_BRIDGE),
    ),
    (
        Stem::Prefix("libonnxruntime_providers_"),
        Rule::Fixed(ORT_PROVIDER),
    ),
    (Stem::Exact("libonnxruntime"), Rule::Fixed(ORT)),
];

/// Splits `libfoo.so.12.3` into (`libfoo`, `Some(12)`); `libfoo.so` gives (`libfoo`, `None`).
fn split_soname(name: &str) -> Option<(&str, Option<u32>)> {
    let at = name.rfind(".so")?;
    let (stem, rest) = (&name[..at], &name[at + 3..]);
    if rest.is_empty() {
        return Some((stem, None));
    }
    let major = rest.strip_prefix('.')?.split('.').next()?.parse().ok()?;
    Some((stem, Some(major)))
}

/// The pip package for a CUDA library family, where the naming is known.
fn pip_package(stem: &str, cuda_major: u32, lib_major: u32) -> Option<String> {
    match cuda_major {
        11 | 12 => Some(format!("{stem}-cu{cuda_major}")),
        13 => Some(format!("{stem} {lib_major}.x")),
        _ => None,
    }
}

fn with_sources(what: String, pip: Option<String>, cuda_major: u32) -> String {
    match pip {
        Some(pip) => format!("{what} (pip: {pip}; or the CUDA {cuda_major} toolkit)"),
        None => format!("{what} (the CUDA {cuda_major} toolkit)"),
    }
}

/// What provides a missing library, e.g. `libcublasLt.so.13` → "the CUDA 13 cuBLAS (pip:
/// nvidia-cublas 13.x; or the CUDA 13 toolkit)". `None` for libraries outside the known families.
pub fn missing_library_hint(name: &str) -> Option<String> {
    let file = name.rsplit('/').next().unwrap_or(name);
    let (stem, major) = split_soname(file)?;
    let rule = FAMILIES.iter().find_map(|(pattern, rule)| {
        let hit = match pattern {
            Stem::Exact(s) => stem == *s,
            Stem::Prefix(p) => stem.starts_with(p),
        };
        hit.then_some(*rule)
    })?;
    Some(match rule {
        Rule::Fixed(text) => text.to_owned(),
        Rule::CudaMajor { what, .. } if major.is_none() => format!(
            "the CUDA {what} (an unversioned name is a development symlink; runtime packages \
             ship the versioned file)"
        ),
        Rule::CudaMajor { what, pip } => {
            let m = major?;
            with_sources(format!("the CUDA {m} {what}"), pip_package(pip, m, m), m)
        }
        Rule::Cufft => {
            let m = major?;
            let cuda = m + 1;
            with_sources(
                format!("the CUDA {cuda} cuFFT"),
                pip_package("nvidia-cufft", cuda, m),
                cuda,
            )
        }
        Rule::Curand => match major? {
            10 => "cuRAND 10, which CUDA 11, 12 and 13 all ship (pip: nvidia-curand-cu12 for \
                   CUDA 12, nvidia-curand 10.x for CUDA 13; or any of those CUDA toolkits)"
                .to_owned(),
            m => format!("cuRAND {m}"),
        },
        Rule::Cudnn => match major {
            None => "cuDNN (an unversioned name is a development symlink; runtime packages ship \
                     libcudnn*.so.N)"
                .to_owned(),
            Some(9) => {
                "cuDNN 9 (pip: nvidia-cudnn-cu12 for CUDA 12, nvidia-cudnn-cu13 for CUDA 13)"
                    .to_owned()
            }
            Some(8) => "cuDNN 8 (pip: nvidia-cudnn-cu11 8.x or nvidia-cudnn-cu12 8.x)".to_owned(),
            Some(m) => format!("cuDNN {m}"),
        },
        Rule::TensorRt => format!("TensorRT {}", major?),
    })
}

/// The sentence shown for a missing library: "`name` not found: this library needs `hint`", or
/// "`name` not found" when the family is unknown.
pub fn missing_library_message(name: &str) -> String {
    match missing_library_hint(name) {
        Some(hint) => format!("{name} not found: this library needs {hint}"),
        None => format!("{name} not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        assert_eq!(
            split_soname("libcublasLt.so.13"),
            Some(("libcublasLt", Some(13)))
        );
        assert_eq!(
            split_soname("libnvrtc-builtins.so.13.0"),
            Some(("libnvrtc-builtins", Some(13)))
        );
        assert_eq!(split_soname("libnvrtc.so"), Some(("libnvrtc", None)));
        assert_eq!(split_soname("libfoo.so.x"), None);
        assert_eq!(split_soname("libfoo"), None);
    }
}
