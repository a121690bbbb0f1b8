//! Which CUDA runtime a driver runs: the minimum Linux driver per CUDA toolkit, CUDA's
//! minor-version compatibility, and driver version strings compared as numbers; and whether a
//! driver reads kernels stored zstd-compressed ([`compression_support`], `docs/driver-rules.md`).
//!
//! These rules are new in gpulibs (inspect owns the kernel rules, not the driver's); they are a
//! table plus pure functions, from `cuda-facts.md` §3 (\[RN\] release notes, \[MVC\] minor-version
//! compatibility).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use gpulibs_detect::CudaVersion;
use gpulibs_inspect::{compression_need, Compression, CompressionNeed};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A driver version as NVIDIA writes it: `535.104.05`, `580.65.06`, `570.26`.
///
/// Compared part by part as numbers (`535.104.05 < 580.65.06`, `570.26 < 570.26.1`); missing
/// trailing parts count as zero, so `580` equals `580.0.0`. The text is kept for messages.
#[derive(Debug, Clone)]
pub struct DriverVersion {
    parts: Vec<u32>,
    text: String,
}

/// A driver version string that is not dot-separated numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a driver version: write it as NVIDIA does, e.g. `580.65.06` or `535.104`")]
pub struct DriverVersionError(pub String);

impl DriverVersion {
    /// The numeric parts, most significant first.
    pub fn parts(&self) -> &[u32] {
        &self.parts
    }

    /// The branch: `580` for `580.65.06`.
    pub fn branch(&self) -> u32 {
        self.parts[0]
    }

    fn part(&self, i: usize) -> u32 {
        self.parts.get(i).copied().unwrap_or(0)
    }
}

impl FromStr for DriverVersion {
    type Err = DriverVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let parts: Option<Vec<u32>> = text
            .split('.')
            .map(|p| {
                if !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()) {
                    p.parse().ok()
                } else {
                    None
                }
            })
            .collect();
        match parts {
            Some(parts) if !parts.is_empty() && parts.len() <= 4 => Ok(Self {
                parts,
                text: text.to_string(),
            }),
            _ => Err(DriverVersionError(s.to_string())),
        }
    }
}

impl fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for DriverVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        (0..n)
            .map(|i| self.part(i).cmp(&other.part(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for DriverVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DriverVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DriverVersion {}

impl Serialize for DriverVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DriverVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn dv(s: &str) -> DriverVersion {
    s.parse().expect("driver table entries are well-formed")
}

/// Minimum Linux driver of each CUDA toolkit release (facts §3, \[RN\]), oldest first. 12.7 was
/// never released; a runtime of a version missing here takes the entry of the closest older
/// release of the same major (12.7 → 12.6's 560.28.03) for "full support", which is a lower
/// bound, and minor-version compatibility decides anyway.
pub const MIN_DRIVER_BY_CUDA: &[((u32, u32), &str)] = &[
    ((11, 8), "520.61.05"),
    ((12, 0), "525.60.13"),
    ((12, 1), "530.30.02"),
    ((12, 2), "535.54.03"),
    ((12, 3), "545.23.06"),
    ((12, 4), "550.54.14"),
    ((12, 5), "555.42.02"),
    ((12, 6), "560.28.03"),
    ((12, 8), "570.26"),
    ((12, 9), "575.51.03"),
    ((13, 0), "580.65.06"),
    ((13, 1), "590.44.01"),
];

/// The oldest driver of each CUDA major that runs every minor release of that major through
/// minor-version compatibility (\[MVC\]): 11.x ≥ 450.80.02, 12.x ≥ 525.60.13 (the 12.0 driver),
/// 13.x ≥ 580 (whose first release is 580.65.06).
pub const MINOR_VERSION_FLOOR: &[(u32, &str)] =
    &[(11, "450.80.02"), (12, "525.60.13"), (13, "580.65.06")];

/// The driver a CUDA `runtime` fully supports (its toolkit's minimum driver), when the table
/// knows its major.
pub fn full_support_driver(runtime: CudaVersion) -> Option<DriverVersion> {
    let key = (runtime.major, runtime.minor);
    MIN_DRIVER_BY_CUDA
        .iter()
        .rev()
        .filter(|((maj, _), _)| *maj == runtime.major)
        .find(|(cuda, _)| *cuda <= key)
        .map(|(_, d)| dv(d))
}

/// The oldest driver that runs a CUDA `major.x` runtime through minor-version compatibility.
pub fn minor_version_floor(major: u32) -> Option<DriverVersion> {
    MINOR_VERSION_FLOOR
        .iter()
        .find(|(m, _)| *m == major)
        .map(|(_, d)| dv(d))
}

/// The highest CUDA version a driver runs in full, from the table: `535.104.05` → 12.2.
/// `None` for drivers older than every entry (the table starts at 11.8's 520.61.05).
pub fn max_cuda_of_driver(driver: &DriverVersion) -> Option<CudaVersion> {
    MIN_DRIVER_BY_CUDA
        .iter()
        .rev()
        .find(|(_, d)| dv(d) <= *driver)
        .map(|((maj, min), _)| CudaVersion::new(*maj, *min))
}

/// How a driver runs a CUDA runtime, or why it does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "support")]
pub enum RuntimeSupport {
    /// The driver is at least the runtime's toolkit minimum (or reports a CUDA version at
    /// least as high): everything works, PTX of that toolkit included.
    Full,
    /// The driver is older than the toolkit's minimum but in the same major's
    /// minor-version-compatibility window: the runtime loads and SASS runs; PTX newer than the
    /// driver's ISA cannot be JIT-compiled and a few newer APIs return
    /// `cudaErrorCallRequiresNewerDriver`.
    MinorVersionCompatible {
        full_support_from: Option<DriverVersion>,
    },
    /// The driver cannot run it; `needs` is the oldest driver that would (the
    /// minor-version floor of its major).
    TooOld {
        needs: Option<DriverVersion>,
        needs_cuda_major: u32,
    },
    /// Neither the driver version nor its CUDA version is known: not checked.
    Unknown,
}

/// Whether a driver (its version string, and/or the highest CUDA version it reports) runs a
/// CUDA `runtime` of `major.minor`.
///
/// Order of evidence: the version string against the tables, then the reported CUDA version
/// (a driver reporting CUDA ≥ the runtime runs it fully; one reporting the same major runs it
/// through minor-version compatibility, since a driver of that major is at least its floor).
/// Newer majors run older runtimes (backward compatibility).
pub fn runtime_support(
    runtime: CudaVersion,
    driver: Option<&DriverVersion>,
    driver_cuda: Option<CudaVersion>,
) -> RuntimeSupport {
    let full = full_support_driver(runtime);
    let floor = minor_version_floor(runtime.major);
    if let Some(d) = driver {
        if let Some(f) = &full {
            if d >= f {
                return RuntimeSupport::Full;
            }
        }
        if driver_cuda.is_some_and(|c| c >= runtime) {
            return RuntimeSupport::Full;
        }
        return match &floor {
            Some(fl) if d >= fl => RuntimeSupport::MinorVersionCompatible {
                full_support_from: full,
            },
            Some(_) => RuntimeSupport::TooOld {
                needs: floor,
                needs_cuda_major: runtime.major,
            },
            // A major the tables do not know (older than 11 or newer than 13): judge by the
            // reported CUDA version alone, if any.
            None => match driver_cuda {
                Some(c) if c.major > runtime.major => RuntimeSupport::Full,
                Some(_) => RuntimeSupport::TooOld {
                    needs: None,
                    needs_cuda_major: runtime.major,
                },
                None => RuntimeSupport::Unknown,
            },
        };
    }
    match driver_cuda {
        None => RuntimeSupport::Unknown,
        Some(c) if c >= runtime => RuntimeSupport::Full,
        Some(c) if c.major == runtime.major => RuntimeSupport::MinorVersionCompatible {
            full_support_from: full,
        },
        Some(_) => RuntimeSupport::TooOld {
            needs: floor,
            needs_cuda_major: runtime.major,
        },
    }
}

/// The CUDA version to judge PTX JIT by: what the driver reports, else what its version string
/// implies from the table.
pub fn effective_driver_cuda(
    driver: Option<&DriverVersion>,
    driver_cuda: Option<CudaVersion>,
) -> Option<CudaVersion> {
    driver_cuda.or_else(|| driver.and_then(max_cuda_of_driver))
}

/// Whether a driver reads kernels stored with a compression (inspect's
/// [`gpulibs_inspect::compression_need`], rule `fatbin-zstd` of `docs/driver-rules.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "support")]
pub enum CompressionSupport {
    /// It reads them (uncompressed, LZ4, or zstd on a driver of CUDA 12.4 or newer).
    Reads,
    /// It cannot: `needs` is the oldest driver that would (`None`: no driver is known to).
    Cannot {
        compression: Compression,
        needs_cuda: Option<CudaVersion>,
        needs: Option<DriverVersion>,
        rule: &'static str,
        source: &'static str,
    },
    /// Neither the driver version nor its CUDA version is known: not checked.
    Unknown,
}

/// Whether a driver (its version string and/or the highest CUDA version it reports) reads
/// kernels stored with `compression`. As in [`runtime_support`], either piece of evidence that
/// the driver is new enough suffices; a driver known by neither is [`CompressionSupport::Unknown`].
pub fn compression_support(
    compression: Compression,
    driver: Option<&DriverVersion>,
    driver_cuda: Option<CudaVersion>,
) -> CompressionSupport {
    if driver.is_none() && driver_cuda.is_none() {
        return CompressionSupport::Unknown;
    }
    match compression_need(compression) {
        CompressionNeed::AnyDriver => CompressionSupport::Reads,
        CompressionNeed::Driver {
            cuda,
            driver: first,
            rule,
        } => {
            let first = dv(first);
            let by_version = driver.is_some_and(|d| *d >= first);
            let by_cuda = driver_cuda.is_some_and(|c| c >= cuda);
            if by_version || by_cuda {
                CompressionSupport::Reads
            } else {
                CompressionSupport::Cannot {
                    compression,
                    needs_cuda: Some(cuda),
                    needs: Some(first),
                    rule: rule.id,
                    source: rule.source,
                }
            }
        }
        CompressionNeed::Unknown { rule } => CompressionSupport::Cannot {
            compression,
            needs_cuda: None,
            needs: None,
            rule: rule.id,
            source: rule.source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuda(s: &str) -> CudaVersion {
        s.parse().unwrap()
    }

    #[test]
    fn versions_compare_as_numbers() {
        let ordered = [
            "450.80.02",
            "470.256.02",
            "525.60.13",
            "535.54.03",
            "535.104",
            "535.104.05",
            "570.26",
            "570.26.1",
            "575.51.03",
            "580",
            "580.65.06",
            "580.159.04",
            "1000.1",
        ];
        for w in ordered.windows(2) {
            assert!(dv(w[0]) < dv(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(dv("580"), dv("580.0.0"));
        assert_eq!(dv("580.65.06").to_string(), "580.65.06");
        assert_eq!(dv("535.104.05").branch(), 535);
        // Text order would get these wrong.
        assert!(dv("535.104") > dv("535.54.03"));
        assert!(dv("99.1") < dv("100.0"));
        for bad in [
            "",
            "580.",
            ".1",
            "580.x",
            "v580",
            "580 65",
            "-1",
            "1.2.3.4.5",
        ] {
            assert!(bad.parse::<DriverVersion>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn full_support_table() {
        let cases = [
            ("11.8", Some("520.61.05")),
            ("12.0", Some("525.60.13")),
            ("12.2", Some("535.54.03")),
            ("12.7", Some("560.28.03")),
            ("12.8", Some("570.26")),
            ("12.9", Some("575.51.03")),
            ("13.0", Some("580.65.06")),
            ("13.1", Some("590.44.01")),
            ("13.2", Some("590.44.01")),
            ("11.4", None),
            ("10.2", None),
        ];
        for (rt, want) in cases {
            assert_eq!(
                full_support_driver(cuda(rt)).map(|d| d.to_string()),
                want.map(String::from),
                "{rt}"
            );
        }
    }

    #[test]
    fn driver_max_cuda_table() {
        let cases = [
            ("470.256.02", None),
            ("520.61.05", Some("11.8")),
            ("525.147.05", Some("12.0")),
            ("535.104.05", Some("12.2")),
            ("550.54.14", Some("12.4")),
            ("570.26", Some("12.8")),
            ("575.51.03", Some("12.9")),
            ("580.65.06", Some("13.0")),
            ("580.159.04", Some("13.0")),
            ("590.44.01", Some("13.1")),
        ];
        for (d, want) in cases {
            assert_eq!(
                max_cuda_of_driver(&dv(d)).map(|c| c.to_string()),
                want.map(String::from),
                "{d}"
            );
        }
    }

    /// (compression, driver version, driver CUDA, expected): "reads", "needs X", "never", "?".
    /// R535 is CUDA 12.2, R550 12.4 (550.54.14 first), R570 12.8, R580 13.0 (facts §3).
    #[test]
    fn compression_support_table() {
        use Compression::{Lz4, Unknown, Zstd};
        let cases: &[(Compression, Option<&str>, Option<&str>, &str)] = &[
            (Lz4, Some("535.183.01"), Some("12.2"), "reads"),
            (Compression::None, Some("535.183.01"), None, "reads"),
            (Zstd, Some("535.183.01"), Some("12.2"), "needs 550.54.14"),
            (Zstd, Some("545.29.06"), None, "needs 550.54.14"),
            (Zstd, Some("550.54.13"), None, "needs 550.54.14"),
            (Zstd, Some("550.54.14"), None, "reads"),
            (Zstd, Some("550.163.01"), Some("12.4"), "reads"),
            (Zstd, Some("570.211.01"), Some("12.8"), "reads"),
            (Zstd, Some("580.159.04"), Some("13.0"), "reads"),
            // CUDA version only (`--driver-cuda`).
            (Zstd, None, Some("12.3"), "needs 550.54.14"),
            (Zstd, None, Some("12.4"), "reads"),
            (Zstd, None, None, "?"),
            (Lz4, None, None, "?"),
            // A compression no driver is known to read: refused whatever the driver.
            (Unknown, Some("580.159.04"), Some("13.0"), "never"),
        ];
        for (c, d, cu, want) in cases {
            let d = d.map(dv);
            let got = match compression_support(*c, d.as_ref(), cu.map(cuda)) {
                CompressionSupport::Reads => "reads".to_string(),
                CompressionSupport::Cannot {
                    needs: Some(n),
                    rule,
                    ..
                } => {
                    assert_eq!(rule, "fatbin-zstd");
                    format!("needs {n}")
                }
                CompressionSupport::Cannot {
                    needs: None, rule, ..
                } => {
                    assert_eq!(rule, "fatbin-unknown-compression");
                    "never".to_string()
                }
                CompressionSupport::Unknown => "?".to_string(),
            };
            assert_eq!(got, *want, "{c:?} on driver {d:?} / {cu:?}");
        }
    }

    /// (runtime, driver version, driver CUDA, expected) — expected: "full", "mvc", "old ≥X", "?".
    #[test]
    fn runtime_support_table() {
        let cases: &[(&str, Option<&str>, Option<&str>, &str)] = &[
            ("12.9", Some("575.51.03"), None, "full"),
            ("12.9", Some("580.159.04"), Some("13.0"), "full"),
            ("12.9", Some("535.104.05"), Some("12.2"), "mvc"),
            ("12.9", Some("525.60.13"), None, "mvc"),
            ("12.9", Some("525.60.12"), None, "old ≥525.60.13"),
            ("12.9", Some("470.256.02"), Some("11.4"), "old ≥525.60.13"),
            ("13.0", Some("535.104"), Some("12.2"), "old ≥580.65.06"),
            ("13.0", Some("575.51.03"), None, "old ≥580.65.06"),
            ("13.0", Some("580.65.06"), None, "full"),
            ("13.1", Some("580.65.06"), Some("13.0"), "mvc"),
            ("11.8", Some("470.256.02"), None, "mvc"),
            ("11.8", Some("450.80.02"), None, "mvc"),
            ("11.8", Some("450.57"), None, "old ≥450.80.02"),
            ("11.8", Some("535.104.05"), None, "full"),
            // CUDA version only (`--gpu` planning with `--driver-cuda`).
            ("12.9", None, Some("12.2"), "mvc"),
            ("12.9", None, Some("13.0"), "full"),
            ("13.0", None, Some("12.9"), "old ≥580.65.06"),
            ("12.9", None, Some("11.4"), "old ≥525.60.13"),
            ("12.9", None, None, "?"),
        ];
        for (rt, d, c, want) in cases {
            let d = d.map(dv);
            let got = match runtime_support(cuda(rt), d.as_ref(), c.map(cuda)) {
                RuntimeSupport::Full => "full".to_string(),
                RuntimeSupport::MinorVersionCompatible { .. } => "mvc".to_string(),
                RuntimeSupport::TooOld { needs, .. } => {
                    format!("old ≥{}", needs.map(|n| n.to_string()).unwrap_or_default())
                }
                RuntimeSupport::Unknown => "?".to_string(),
            };
            assert_eq!(got, *want, "CUDA {rt} on driver {d:?} / {c:?}");
        }
    }
}
