//! Plain value types shared by every stage: compute capabilities, architecture families and CUDA
//! versions, with the parsers people and tools write them in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a compute capability or CUDA version string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("`{0}` is not a compute capability: write it as `9.0`, `sm_90` or `90`")]
    ComputeCapability(String),
    #[error("`{0}` is not a CUDA version: write it as `13.0`, `12.9` or `13000`")]
    CudaVersion(String),
}

/// A CUDA compute capability, `major.minor` (9.0 for H100, 12.0 for RTX PRO 6000 Blackwell).
/// Serialised as the string `"9.0"`, in JSON and manifests alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComputeCapability {
    pub major: u32,
    pub minor: u32,
}

impl ComputeCapability {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// From the packed number CUDA tools use: `90` → 9.0, `121` → 12.1.
    pub const fn from_number(n: u32) -> Self {
        Self {
            major: n / 10,
            minor: n % 10,
        }
    }

    /// The packed number: 9.0 → `90`, 12.1 → `121`.
    pub const fn number(self) -> u32 {
        self.major * 10 + self.minor
    }

    /// The SASS target name, `sm_90`.
    pub fn sm_name(self) -> String {
        format!("sm_{}", self.number())
    }

    pub fn family(self) -> ArchFamily {
        ArchFamily::of(self)
    }
}

impl fmt::Display for ComputeCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ComputeCapability {
    type Err = ParseError;

    /// Accepts `9.0`, `sm_90`, `compute_90` and `90` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::ComputeCapability(s.to_string());
        let t = s.trim().to_ascii_lowercase();
        if let Some((maj, min)) = t.split_once('.') {
            let major = maj.parse().map_err(|_| err())?;
            let minor: u32 = min.parse().map_err(|_| err())?;
            if minor > 9 || !(1..=99).contains(&major) {
                return Err(err());
            }
            return Ok(Self::new(major, minor));
        }
        let digits = t
            .strip_prefix("sm_")
            .or_else(|| t.strip_prefix("compute_"))
            .unwrap_or(&t);
        if digits.len() < 2 || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let n: u32 = digits.parse().map_err(|_| err())?;
        Ok(Self::from_number(n))
    }
}

/// NVIDIA GPU architecture generations, as far as CUDA tells them apart by compute capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchFamily {
    Kepler,
    Maxwell,
    Pascal,
    Volta,
    Turing,
    Ampere,
    Ada,
    Hopper,
    Blackwell,
    Unknown,
}

impl ArchFamily {
    pub fn of(cc: ComputeCapability) -> Self {
        match (cc.major, cc.minor) {
            (3, _) => Self::Kepler,
            (5, _) => Self::Maxwell,
            (6, _) => Self::Pascal,
            (7, 0..=2) => Self::Volta,
            (7, _) => Self::Turing,
            (8, 9) => Self::Ada,
            (8, _) => Self::Ampere,
            (9, _) => Self::Hopper,
            (10..=12, _) => Self::Blackwell,
            _ => Self::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Kepler => "Kepler",
            Self::Maxwell => "Maxwell",
            Self::Pascal => "Pascal",
            Self::Volta => "Volta",
            Self::Turing => "Turing",
            Self::Ampere => "Ampere",
            Self::Ada => "Ada",
            Self::Hopper => "Hopper",
            Self::Blackwell => "Blackwell",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ArchFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A CUDA version, `major.minor` (the runtime a library needs, or the highest the driver runs).
/// Serialised as the string `"13.0"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CudaVersion {
    pub major: u32,
    pub minor: u32,
}

impl CudaVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// From the integer `cuDriverGetVersion` and NVML report: `13000` → 13.0, `12090` → 12.9.
    pub const fn from_driver_int(v: u32) -> Self {
        Self {
            major: v / 1000,
            minor: (v % 1000) / 10,
        }
    }
}

impl fmt::Display for CudaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for CudaVersion {
    type Err = ParseError;

    /// Accepts `13.0`, `12.9`, `13` and the driver integer `13000`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::CudaVersion(s.to_string());
        let t = s.trim();
        if let Some((maj, min)) = t.split_once('.') {
            let major = maj.parse().map_err(|_| err())?;
            let minor = min.parse().map_err(|_| err())?;
            return Ok(Self::new(major, minor));
        }
        let n: u32 = t.parse().map_err(|_| err())?;
        match n {
            1..=99 => Ok(Self::new(n, 0)),
            1000..=99_999 => Ok(Self::from_driver_int(n)),
            _ => Err(err()),
        }
    }
}

/// Serde as the `Display` string, read back with `FromStr`, so JSON and TOML carry `"9.0"`.
macro_rules! serde_as_string {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(ComputeCapability);
serde_as_string!(CudaVersion);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_capability_spellings() {
        let cases = [
            ("9.0", Some((9, 0))),
            ("sm_90", Some((9, 0))),
            ("SM_120", Some((12, 0))),
            ("compute_86", Some((8, 6))),
            ("121", Some((12, 1))),
            ("12.1", Some((12, 1))),
            ("5.2", Some((5, 2))),
            ("sm_5", None),
            ("9.10", None),
            ("sm_90a", None),
            ("", None),
            ("nine", None),
        ];
        for (text, want) in cases {
            let got = text
                .parse::<ComputeCapability>()
                .ok()
                .map(|c| (c.major, c.minor));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn families_by_compute_capability() {
        let cases = [
            ("5.0", ArchFamily::Maxwell),
            ("5.2", ArchFamily::Maxwell),
            ("6.1", ArchFamily::Pascal),
            ("7.0", ArchFamily::Volta),
            ("7.2", ArchFamily::Volta),
            ("7.5", ArchFamily::Turing),
            ("8.0", ArchFamily::Ampere),
            ("8.6", ArchFamily::Ampere),
            ("8.7", ArchFamily::Ampere),
            ("8.9", ArchFamily::Ada),
            ("9.0", ArchFamily::Hopper),
            ("10.0", ArchFamily::Blackwell),
            ("11.0", ArchFamily::Blackwell),
            ("12.1", ArchFamily::Blackwell),
            ("2.0", ArchFamily::Unknown),
        ];
        for (text, want) in cases {
            let cc: ComputeCapability = text.parse().unwrap();
            assert_eq!(cc.family(), want, "{text}");
        }
    }

    #[test]
    fn cuda_versions() {
        let cases = [
            ("13.0", (13, 0)),
            ("12.9", (12, 9)),
            ("13000", (13, 0)),
            ("11040", (11, 4)),
            ("12", (12, 0)),
        ];
        for (text, (major, minor)) in cases {
            assert_eq!(
                text.parse::<CudaVersion>().unwrap(),
                CudaVersion::new(major, minor),
                "{text}"
            );
        }
        assert!("abc".parse::<CudaVersion>().is_err());
        assert_eq!(CudaVersion::from_driver_int(12090).to_string(), "12.9");
    }

    #[test]
    fn serialised_as_strings() {
        let cc = ComputeCapability::new(12, 1);
        assert_eq!(serde_json::to_string(&cc).unwrap(), "\"12.1\"");
        assert_eq!(
            serde_json::from_str::<ComputeCapability>("\"sm_90\"").unwrap(),
            ComputeCapability::new(9, 0)
        );
        let v = CudaVersion::new(13, 0);
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"13.0\"");
        assert_eq!(
            serde_json::from_str::<CudaVersion>("\"12.9\"").unwrap(),
            CudaVersion::new(12, 9)
        );
        assert!(serde_json::from_str::<CudaVersion>("\"twelve\"").is_err());
    }
}
