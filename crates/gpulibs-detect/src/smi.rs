//! The `nvidia-smi` fallback, used only when NVML cannot be loaded.
//!
//! `nvidia-smi` itself talks to NVML, so it mostly helps where `libnvidia-ml.so.1` is installed
//! somewhere the loader does not look. It costs a process spawn (22–27 ms on an H100 host), and
//! two where the CUDA version is wanted: `--query-gpu` has no field for the driver's CUDA
//! version, so it is read from the banner of plain `nvidia-smi`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::inventory::{Inventory, RawGpu};
use crate::model::{DriverInfo, MigMode, Problem, ProblemCode, Severity, Source};
use crate::types::CudaVersion;

/// The fields asked of `--query-gpu`, in column order. `compute_cap` exists only in drivers from
/// about R510 on; older ones reject the whole query, so it is retried without it.
pub const QUERY_FIELDS: &[&str] = &[
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "memory.total",
    "memory.free",
    "mig.mode.current",
    "mig.mode.pending",
    "driver_version",
    "compute_cap",
];

const MIB: u64 = 1 << 20;

/// Why `nvidia-smi` output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmiParseError {
    #[error("line {line}: expected {expected} comma-separated fields, found {found}: {text:?}")]
    FieldCount {
        line: usize,
        expected: usize,
        found: usize,
        text: String,
    },
    #[error("line {line}: `{field}` is {value:?}, not a number")]
    NotANumber {
        line: usize,
        field: &'static str,
        value: String,
    },
}

/// One GPU row plus the driver version printed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmiRow {
    pub gpu: RawGpu,
    pub driver_version: Option<String>,
}

/// `[N/A]`, `[Not Supported]`, `[Unknown Error]`, … mean "no value".
fn value(field: &str) -> Option<&str> {
    let v = field.trim();
    let bracketed = v.starts_with('[') && v.ends_with(']');
    (!v.is_empty() && !bracketed && v != "N/A").then_some(v)
}

/// Parses `--format=csv,noheader,nounits` output of `--query-gpu=<fields>`.
pub fn parse_query_csv(text: &str, fields: &[&'static str]) -> Result<Vec<SmiRow>, SmiParseError> {
    let mut rows = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line_no = n + 1;
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != fields.len() {
            return Err(SmiParseError::FieldCount {
                line: line_no,
                expected: fields.len(),
                found: cells.len(),
                text: line.to_string(),
            });
        }
        let cell = |name: &str| {
            fields
                .iter()
                .position(|f| *f == name)
                .and_then(|i| value(cells[i]))
        };
        let number = |name: &'static str| -> Result<Option<u64>, SmiParseError> {
            cell(name)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| SmiParseError::NotANumber {
                        line: line_no,
                        field: name,
                        value: v.to_string(),
                    })
                })
                .transpose()
        };
        let nvml_index = number("index")?.unwrap_or(rows.len() as u64);
        let mig = match (cell("mig.mode.current"), cell("mig.mode.pending")) {
            (Some(current), pending) => Some(MigMode {
                current: current.eq_ignore_ascii_case("enabled"),
                pending: pending.is_some_and(|p| p.eq_ignore_ascii_case("enabled")),
            }),
            (None, _) => None,
        };
        rows.push(SmiRow {
            gpu: RawGpu {
                nvml_index: u32::try_from(nvml_index).unwrap_or(u32::MAX),
                name: cell("name").map(str::to_string),
                uuid: cell("uuid").map(str::to_string),
                pci_bus_id: cell("pci.bus_id").map(str::to_string),
                compute_capability: cell("compute_cap").and_then(|v| v.parse().ok()),
                memory_total_bytes: number("memory.total")?.map(|m| m * MIB),
                memory_free_bytes: number("memory.free")?.map(|m| m * MIB),
                mig,
                mig_devices: Vec::new(),
            },
            driver_version: cell("driver_version").map(str::to_string),
        });
    }
    Ok(rows)
}

/// The `CUDA Version: 13.0` of plain `nvidia-smi`'s banner.
pub fn parse_banner_cuda_version(text: &str) -> Option<CudaVersion> {
    let (_, after) = text.split_once("CUDA Version:")?;
    after.split_whitespace().next()?.parse().ok()
}

/// Reads `nvidia-smi`'s complaint into a problem with a code of its own where one fits.
pub fn failure_problem(program: &Path, output: &str) -> Problem {
    let first_line = output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output");
    let lower = output.to_ascii_lowercase();
    if lower.contains("version mismatch") {
        return Problem::new(
            ProblemCode::DriverLibraryMismatch,
            Severity::Error,
            format!(
                "driver/library version mismatch: the kernel module and user-space driver \
                 differ, usually after a driver upgrade ({}: {first_line})",
                program.display()
            ),
        )
        .hint("reboot, or reload the nvidia kernel module");
    }
    if lower.contains("couldn't communicate with the nvidia driver") {
        return Problem::new(
            ProblemCode::DriverNotLoaded,
            Severity::Error,
            format!(
                "{} cannot reach the NVIDIA kernel driver: {first_line}",
                program.display()
            ),
        )
        .hint("make sure the latest NVIDIA driver is installed and loaded (`sudo modprobe nvidia`), then retry");
    }
    if lower.contains("no devices were found") {
        return Problem::new(
            ProblemCode::NoGpu,
            Severity::Error,
            format!("{} found no NVIDIA GPU", program.display()),
        )
        .hint(
            "check that the GPU is seated and powered and that `lspci | grep -i nvidia` lists it",
        );
    }
    if lower.contains("insufficient permissions") {
        return Problem::new(
            ProblemCode::NoPermission,
            Severity::Error,
            format!("{}: {first_line}", program.display()),
        )
        .hint("check the permissions of /dev/nvidia*");
    }
    Problem::new(
        ProblemCode::NvidiaSmiFailed,
        Severity::Error,
        format!("{} failed: {first_line}", program.display()),
    )
}

/// Finds `nvidia-smi` on `PATH` without spawning `which`.
pub fn find_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nvidia-smi"))
        .find(|candidate| candidate.is_file())
}

fn run(program: &Path, args: &[String]) -> Result<(bool, String, String), std::io::Error> {
    let out = Command::new(program).args(args).output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn query_args(fields: &[&str]) -> Vec<String> {
    vec![
        format!("--query-gpu={}", fields.join(",")),
        "--format=csv,noheader,nounits".to_string(),
    ]
}

/// Asks `program` for the GPUs. `Err` carries the problems when it gave no usable answer.
pub fn query(program: &Path) -> Result<Inventory, Vec<Problem>> {
    let not_runnable = |e: std::io::Error| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            ProblemCode::NvidiaSmiNotFound
        } else {
            ProblemCode::NvidiaSmiFailed
        };
        vec![Problem::new(
            code,
            Severity::Warning,
            format!("{} could not be run: {e}", program.display()),
        )]
    };

    let mut fields: Vec<&'static str> = QUERY_FIELDS.to_vec();
    let (mut ok, mut stdout, mut stderr) =
        run(program, &query_args(&fields)).map_err(not_runnable)?;
    let mut problems = Vec::new();
    if !ok && format!("{stdout}{stderr}").contains("compute_cap") {
        fields.retain(|f| *f != "compute_cap");
        (ok, stdout, stderr) = run(program, &query_args(&fields)).map_err(not_runnable)?;
    }
    if !ok {
        return Err(vec![failure_problem(
            program,
            &format!("{stdout}\n{stderr}"),
        )]);
    }
    let rows = parse_query_csv(&stdout, &fields).map_err(|e| {
        vec![Problem::new(
            ProblemCode::NvidiaSmiUnreadable,
            Severity::Error,
            format!(
                "{} printed something gpulibs cannot read: {e}",
                program.display()
            ),
        )]
    })?;

    let driver_version = rows.iter().find_map(|r| r.driver_version.clone());
    let cuda = match run(program, &[]) {
        Ok((true, banner, _)) => parse_banner_cuda_version(&banner),
        _ => None,
    };
    if cuda.is_none() && !rows.is_empty() {
        problems.push(
            Problem::new(
                ProblemCode::CudaVersionUnknown,
                Severity::Warning,
                format!(
                    "the highest CUDA version of the driver is unknown: {} showed none",
                    program.display()
                ),
            )
            .hint("the driver release notes list the CUDA version of each driver branch"),
        );
    }
    for row in &rows {
        let index = row.gpu.nvml_index;
        if row.gpu.compute_capability.is_none() {
            let why = if fields.contains(&"compute_cap") {
                "it printed no value"
            } else {
                "this driver's nvidia-smi has no `compute_cap` field (drivers before R510)"
            };
            problems.push(
                Problem::new(
                    ProblemCode::ComputeCapabilityUnknown,
                    Severity::Error,
                    format!(
                        "{} did not report the compute capability of GPU {index}: {why}, so \
                         gpulibs cannot choose kernels for it",
                        program.display()
                    ),
                )
                .hint("make NVML loadable (set GPULIBS_NVML_LIBRARY to the driver's libnvidia-ml.so.1), or update the driver")
                .gpu(index),
            );
        }
        if row.gpu.memory_total_bytes.is_none() {
            problems.push(
                Problem::new(
                    ProblemCode::MemoryUnknown,
                    Severity::Warning,
                    format!("{} did not report the memory of GPU {index}", program.display()),
                )
                .hint("integrated GPUs (Jetson) share system memory; plans treat this GPU's memory as unknown")
                .gpu(index),
            );
        }
    }
    if rows.is_empty() {
        problems.push(
            Problem::new(
                ProblemCode::NoGpu,
                Severity::Error,
                format!("{} lists no GPU", program.display()),
            )
            .hint("check that the GPU is seated and powered and that `lspci | grep -i nvidia` lists it"),
        );
    }
    Ok(Inventory {
        source: Source::NvidiaSmi,
        driver: DriverInfo {
            version: driver_version,
            cuda,
        },
        gpus: rows.into_iter().map(|r| r.gpu).collect(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ComputeCapability;

    fn cc(text: &str) -> Option<ComputeCapability> {
        text.parse().ok()
    }

    #[test]
    fn parses_query_rows() {
        // As printed on the H100 host (driver 580.159.04), plus a Jetson-like row.
        let text = "0, NVIDIA H100 80GB HBM3, GPU-82c4bd45-e6fe-25fc-e029-7df7c8b7376b, 00000000:00:06.0, 81559, 81079, Disabled, Disabled, 580.159.04, 9.0\n\
                    1, Orin, GPU-7a1b2c3d, [N/A], [Not Supported], [Not Supported], [N/A], [N/A], 540.4.0, 8.7\n";
        let rows = parse_query_csv(text, QUERY_FIELDS).unwrap();
        assert_eq!(rows.len(), 2);
        let h100 = &rows[0].gpu;
        assert_eq!(h100.nvml_index, 0);
        assert_eq!(h100.name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(h100.pci_bus_id.as_deref(), Some("00000000:00:06.0"));
        assert_eq!(h100.compute_capability, cc("9.0"));
        assert_eq!(h100.memory_total_bytes, Some(85_520_809_984));
        assert_eq!(h100.memory_free_bytes, Some(81079 * MIB));
        assert_eq!(
            h100.mig,
            Some(MigMode {
                current: false,
                pending: false
            })
        );
        assert_eq!(rows[0].driver_version.as_deref(), Some("580.159.04"));

        let orin = &rows[1].gpu;
        assert_eq!(orin.compute_capability, cc("8.7"));
        assert_eq!(
            (orin.memory_total_bytes, orin.memory_free_bytes),
            (None, None)
        );
        assert_eq!((orin.pci_bus_id.as_deref(), orin.mig), (None, None));
    }

    #[test]
    fn parses_rows_without_compute_cap() {
        let fields: Vec<_> = QUERY_FIELDS
            .iter()
            .copied()
            .filter(|f| *f != "compute_cap")
            .collect();
        let text = "0, NVIDIA GeForce GTX 970, GPU-6e2d8a14, 00000000:01:00.0, 4096, 4036, [N/A], [N/A], 470.256.02\n";
        let rows = parse_query_csv(text, &fields).unwrap();
        assert_eq!(rows[0].gpu.compute_capability, None);
        assert_eq!(rows[0].gpu.memory_total_bytes, Some(4096 * MIB));
    }

    #[test]
    fn rejects_malformed_rows() {
        assert!(matches!(
            parse_query_csv("0, only, three\n", QUERY_FIELDS),
            Err(SmiParseError::FieldCount { found: 3, .. })
        ));
        let text = "x, N, GPU-1, 00000000:01:00.0, 4096, 4036, [N/A], [N/A], 470.256.02, 5.2\n";
        assert!(matches!(
            parse_query_csv(text, QUERY_FIELDS),
            Err(SmiParseError::NotANumber { field: "index", .. })
        ));
        assert_eq!(parse_query_csv("\n\n", QUERY_FIELDS), Ok(vec![]));
    }

    #[test]
    fn banner_cuda_version() {
        let banner = "+----+\n| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |\n";
        assert_eq!(
            parse_banner_cuda_version(banner),
            Some(CudaVersion::new(13, 0))
        );
        assert_eq!(
            parse_banner_cuda_version(
                "| NVIDIA-SMI 470.256.02   Driver Version: 470.256.02   CUDA Version: 11.4     |"
            ),
            Some(CudaVersion::new(11, 4))
        );
        assert_eq!(parse_banner_cuda_version("CUDA Version: N/A"), None);
        assert_eq!(parse_banner_cuda_version("nothing"), None);
    }

    #[test]
    fn failure_messages() {
        let smi = Path::new("nvidia-smi");
        let cases = [
            (
                "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.159",
                ProblemCode::DriverLibraryMismatch,
            ),
            (
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
                ProblemCode::DriverNotLoaded,
            ),
            ("No devices were found", ProblemCode::NoGpu),
            ("Failed to initialize NVML: Insufficient Permissions", ProblemCode::NoPermission),
            ("Segmentation fault", ProblemCode::NvidiaSmiFailed),
        ];
        for (output, code) in cases {
            assert_eq!(failure_problem(smi, output).code, code, "{output}");
        }
    }
}
