//! What to verify: [`VerifyRequest`] and the parsing of the CLI's `--device`, `--shape` and
//! `--value` options.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Which models to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The probe model embedded in the binary ([`crate::PROBE_MODEL`]).
    Probe,
    /// These ONNX files, in order.
    Files(Vec<PathBuf>),
    /// Every `*.onnx` file directly in this directory, sorted by name (an encoder/decoder/joiner
    /// set, as speech models ship).
    Dir(PathBuf),
}

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    /// The CUDA execution provider on the GPU with this CUDA ordinal (as `CUDA_VISIBLE_DEVICES`
    /// numbers them). Only [`crate::Outcome::VerifiedGpu`] or [`crate::Outcome::Failed`] result.
    Cuda(u32),
    /// The CPU execution provider only: [`crate::Outcome::CpuOnly`] or `Failed`.
    Cpu,
    /// `cuda:0` when detection finds a usable GPU, otherwise the CPU (and `CpuOnly` says why).
    Auto,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Cpu => f.write_str("cpu"),
            Device::Auto => f.write_str("auto"),
        }
    }
}

/// A `--device`, `--shape` or `--value` option that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("`{0}` is not a device: use cuda:N, cuda, cpu or auto")]
    Device(String),
    #[error(
        "`{0}` is not NAME=DIMS: use e.g. `--shape audio=1x16000` (dimensions separated by x)"
    )]
    Shape(String),
    #[error("`{0}` is not NAME=NUMBER: use e.g. `--value sr=16000`")]
    Value(String),
    #[error(
        "`{0}` is not a size in bytes: use e.g. `8G`, `512M` or `1000000` (K, M, G, T: 1024-based)"
    )]
    Bytes(String),
}

impl FromStr for Device {
    type Err = OptionError;

    /// `cuda:N`, `cuda` (= `cuda:0`), `cpu`, `auto`.
    fn from_str(s: &str) -> Result<Self, OptionError> {
        let err = || OptionError::Device(s.to_string());
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "auto" => Ok(Device::Auto),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(err),
        }
    }
}

/// Parses `NAME=1x512` (or `NAME=1,512`) into the name and the dimensions.
pub fn parse_shape_option(s: &str) -> Result<(String, Vec<i64>), OptionError> {
    let err = || OptionError::Shape(s.to_string());
    let (name, dims) = s.split_once('=').ok_or_else(err)?;
    if name.trim().is_empty() {
        return Err(err());
    }
    let dims: Vec<i64> = if dims.trim().is_empty() {
        Vec::new() // a scalar
    } else {
        dims.split(['x', 'X', ','])
            .map(|d| d.trim().parse::<i64>().ok().filter(|d| *d >= 0))
            .collect::<Option<_>>()
            .ok_or_else(err)?
    };
    Ok((name.trim().to_string(), dims))
}

/// Parses `NAME=16000` into the name and the value.
pub fn parse_value_option(s: &str) -> Result<(String, f64), OptionError> {
    let err = || OptionError::Value(s.to_string());
    let (name, value) = s.split_once('=').ok_or_else(err)?;
    let value: f64 = value.trim().parse().map_err(|_| err())?;
    if name.trim().is_empty() || !value.is_finite() {
        return Err(err());
    }
    Ok((name.trim().to_string(), value))
}

/// Parses a size in bytes: a whole number, optionally followed by `K`, `M`, `G` or `T`
/// (powers of 1024; `KiB`, `MiB`, ... and a trailing `B` are accepted too). Overflow is an error.
pub fn parse_byte_size(s: &str) -> Result<u64, OptionError> {
    let err = || OptionError::Bytes(s.to_string());
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number.parse().map_err(|_| err())?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(err()),
    };
    number.checked_mul(1u64 << shift).ok_or_else(err)
}

/// Everything [`crate::verify`] needs. Plain data: the CLI fills it from the active install and
/// its options; tests fill it with a wheel's library and fixtures.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyRequest {
    /// `libonnxruntime.so[.X.Y.Z]` of the active install. Its CUDA provider
    /// (`libonnxruntime_providers_cuda.so`) is expected next to it.
    pub ort_library: PathBuf,
    /// Directories holding the CUDA and cuDNN libraries (the install's, or a reused system
    /// location), searched first when preloading; names not found there are loaded by name,
    /// through the loader's usual search.
    pub preload_dirs: Vec<PathBuf>,
    pub models: ModelSource,
    pub device: Device,
    /// `--shape NAME=DIMS`: the full shape of input NAME; or, with one dimension, the size of
    /// every dynamic dimension whose symbolic name is NAME.
    pub shapes: HashMap<String, Vec<i64>>,
    /// `--value NAME=X`: every element of input NAME is X (a sample rate, a flag, a length).
    pub values: HashMap<String, f64>,
    /// Runs on the verified device: the first (timed alone) plus the steady-state ones whose
    /// median is reported. At least 1.
    pub runs: usize,
    /// The most bytes the synthesised inputs of one model may take together (each input, and
    /// their sum): larger shapes are refused before anything is allocated.
    /// [`crate::synth::DEFAULT_MAX_INPUT_BYTES`] unless the user asks (`--max-input-bytes`).
    pub max_input_bytes: u64,
}

impl VerifyRequest {
    /// The probe model on `device`, 10 runs, no options.
    pub fn probe(ort_library: impl Into<PathBuf>, device: Device) -> Self {
        Self {
            ort_library: ort_library.into(),
            preload_dirs: Vec::new(),
            models: ModelSource::Probe,
            device,
            shapes: HashMap::new(),
            values: HashMap::new(),
            runs: DEFAULT_RUNS,
            max_input_bytes: crate::synth::DEFAULT_MAX_INPUT_BYTES,
        }
    }
}

/// Checks that a model path can be read without blocking: a regular file (following links).
/// A FIFO, socket or device is refused before ONNX Runtime opens it (opening a FIFO waits for a
/// writer forever; a device never ends).
pub(crate) fn check_model_file(path: &std::path::Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    match gpulibs_inspect::read::special_kind(meta.file_type()) {
        None => Ok(()),
        Some(kind) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            gpulibs_inspect::read::NotARegularFile { kind },
        )),
    }
}

/// Runs when the caller has no opinion: enough for a stable median on small models.
pub const DEFAULT_RUNS: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        for (text, device) in [
            ("cuda:1", Some(Device::Cuda(1))),
            ("CUDA", Some(Device::Cuda(0))),
            ("cpu", Some(Device::Cpu)),
            ("auto", Some(Device::Auto)),
            ("cuda:x", None),
            ("tpu", None),
        ] {
            assert_eq!(text.parse::<Device>().ok(), device, "{text}");
        }
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn shape_options() {
        assert_eq!(
            parse_shape_option("audio=1x16000").unwrap(),
            ("audio".into(), vec![1, 16000])
        );
        assert_eq!(
            parse_shape_option("x = 2,3,4").unwrap(),
            ("x".into(), vec![2, 3, 4])
        );
        assert_eq!(parse_shape_option("sr=").unwrap(), ("sr".into(), vec![]));
        for bad in ["audio", "=1x2", "a=1x-2", "a=1xx2", "a=one"] {
            assert!(parse_shape_option(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn byte_sizes() {
        for (text, want) in [
            ("1000000", Some(1_000_000)),
            ("8G", Some(8 << 30)),
            ("512m", Some(512 << 20)),
            ("1 GiB", Some(1 << 30)),
            ("2TB", Some(2 << 40)),
            ("16K", Some(16 << 10)),
            ("0", Some(0)),
            ("", None),
            ("G", None),
            ("1.5G", None),
            ("-1", None),
            ("4X", None),
            ("99999999999999999999", None),
            ("17000000T", None), // overflows u64
        ] {
            assert_eq!(parse_byte_size(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn model_paths_must_be_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("model.onnx");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = check_model_file(&fifo).unwrap_err();
        assert_eq!(e.to_string(), "is a FIFO (named pipe), not a regular file");
        let e = check_model_file(std::path::Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.to_string(), "is a character device, not a regular file");
        let e = check_model_file(dir.path()).unwrap_err();
        assert_eq!(e.to_string(), "is a directory, not a regular file");
        std::fs::write(dir.path().join("m.onnx"), b"x").unwrap();
        check_model_file(&dir.path().join("m.onnx")).unwrap();
    }

    #[test]
    fn value_options() {
        assert_eq!(
            parse_value_option("sr=16000").unwrap(),
            ("sr".into(), 16000.0)
        );
        assert_eq!(parse_value_option("t=0.5").unwrap(), ("t".into(), 0.5));
        for bad in ["sr", "=3", "sr=abc", "sr=inf"] {
            assert!(parse_value_option(bad).is_err(), "{bad}");
        }
    }
}
