//! The model catalog (TOML) and the VRAM measured on this machine (JSON).
//!
//! ```toml
//! schema_version = 1
//!
//! [[model]]
//! name = "1.1b-gpu"          # unique
//! quality_rank = 1           # 1 is the best; candidates are tried in this order
//! device = "gpu"             # or "cpu"
//! vram_mib = 6000            # VRAM the model needs (0 for cpu models)
//! ram_mib = 4000             # host memory it needs
//! files = ["1.1b/encoder.onnx", "1.1b/decoder.onnx", "1.1b/joiner.onnx"]  # relative to the root
//! ```
//!
//! Unknown fields are errors naming the field. [`Measurements`] holds the peak VRAM `verify`
//! measured per model, keyed by a hash of the model's resolved file paths, stored where the
//! caller says; [`Catalog::with_measurements`] replaces the catalog's figures with them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::report::VerifyReport;
use crate::request::{Device, ModelSource, VerifyRequest};

pub const CATALOG_SCHEMA_VERSION: u32 = 1;
const MIB: u64 = 1 << 20;

/// Where a catalog model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelDevice {
    Gpu,
    Cpu,
}

/// One model of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    pub name: String,
    pub quality_rank: u32,
    pub device: ModelDevice,
    pub vram_mib: u64,
    pub ram_mib: u64,
    pub files: Vec<PathBuf>,
    /// Set by [`Catalog::with_measurements`]: the VRAM figure is this machine's measurement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vram_measured: bool,
}

impl CatalogModel {
    /// The files, relative ones joined to `root`.
    pub fn resolved_files(&self, root: &Path) -> Vec<PathBuf> {
        self.files.iter().map(|f| root.join(f)).collect()
    }

    pub fn vram_bytes(&self) -> u64 {
        self.vram_mib * MIB
    }

    pub fn ram_bytes(&self) -> u64 {
        self.ram_mib * MIB
    }

    /// The request verifying this model: `template`'s library, preload directories, options
    /// and runs, with this model's files and device (`cuda:0` for `gpu`, `cpu` for `cpu`
    /// unless the template names a GPU).
    pub fn verify_request(&self, root: &Path, template: &VerifyRequest) -> VerifyRequest {
        VerifyRequest {
            models: ModelSource::Files(self.resolved_files(root)),
            device: match (self.device, template.device) {
                (ModelDevice::Cpu, _) => Device::Cpu,
                (ModelDevice::Gpu, Device::Cuda(n)) => Device::Cuda(n),
                (ModelDevice::Gpu, _) => Device::Cuda(0),
            },
            ..template.clone()
        }
    }

    /// The key of this model's measurements: sha256 of its resolved file paths.
    pub fn measurement_key(&self, root: &Path) -> String {
        let mut h = Sha256::new();
        for f in self.resolved_files(root) {
            h.update(f.to_string_lossy().as_bytes());
            h.update([0]);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A catalog, with the directory its relative file names start from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub schema_version: u32,
    #[serde(rename = "model")]
    pub models: Vec<CatalogModel>,
    /// Not in the file: set by the caller ([`parse_catalog`]'s `root`).
    #[serde(skip)]
    pub root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("model catalog: not valid TOML of the expected shape")]
    Toml(#[from] toml::de::Error),
    #[error("model catalog: schema_version {found} is not supported (this gpulibs reads {CATALOG_SCHEMA_VERSION})")]
    Schema { found: u32 },
    #[error("model catalog: {0}")]
    Invalid(String),
}

impl gpulibs_hint::Hint for CatalogError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            CatalogError::Schema { found } if *found > CATALOG_SCHEMA_VERSION => {
                "upgrade gpulibs, or give a catalog of the schema it reads".into()
            }
            _ => "write the catalog as docs/verify.md (recommend) shows: `schema_version = 1` and \
                  one `[[model]]` table per model"
                .into(),
        })
    }
}

/// Reads a catalog; relative file names will be resolved against `root`.
pub fn parse_catalog(text: &str, root: impl Into<PathBuf>) -> Result<Catalog, CatalogError> {
    let mut c: Catalog = toml::from_str(text)?;
    if c.schema_version != CATALOG_SCHEMA_VERSION {
        return Err(CatalogError::Schema {
            found: c.schema_version,
        });
    }
    let mut names = std::collections::HashSet::new();
    for m in &c.models {
        if !names.insert(m.name.as_str()) {
            return Err(CatalogError::Invalid(format!(
                "model `{}` appears twice",
                m.name
            )));
        }
        if m.files.is_empty() {
            return Err(CatalogError::Invalid(format!(
                "model `{}` lists no files",
                m.name
            )));
        }
    }
    if c.models.is_empty() {
        return Err(CatalogError::Invalid("no [[model]] entries".into()));
    }
    c.root = root.into();
    Ok(c)
}

/// The seed's catalog (`models/seed-catalog.toml`, embedded), files under `models_dir`.
pub fn seed_catalog(models_dir: impl Into<PathBuf>) -> Catalog {
    parse_catalog(include_str!("../models/seed-catalog.toml"), models_dir)
        .expect("the embedded seed catalog is valid (tested)")
}

impl Catalog {
    /// This catalog with every model's VRAM figure replaced by its measurement, when there is
    /// one (rounded up to whole MiB).
    pub fn with_measurements(&self, measured: &Measurements) -> Catalog {
        let mut c = self.clone();
        for m in &mut c.models {
            if m.device != ModelDevice::Gpu {
                continue;
            }
            if let Some(x) = measured.get(&m.measurement_key(&self.root)) {
                m.vram_mib = x.peak_vram_bytes.div_ceil(MIB);
                m.vram_measured = true;
            }
        }
        c
    }
}

/// One measurement of a model on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    /// [`CatalogModel::measurement_key`].
    pub key: String,
    pub model: String,
    /// The GPU it was measured on.
    pub gpu: Option<String>,
    pub peak_vram_bytes: u64,
    /// Seconds since the Unix epoch.
    pub measured_at: u64,
}

/// The measurements file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurements {
    pub schema_version: u32,
    pub measurements: Vec<Measurement>,
}

#[derive(Debug, thiserror::Error)]
pub enum MeasurementsError {
    #[error("cannot read measurements {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not valid measurements JSON", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Measurements {
    /// Reads the file; a file that does not exist is an empty record.
    pub fn load(path: &Path) -> Result<Self, MeasurementsError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| MeasurementsError::Json {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                schema_version: 1,
                measurements: Vec::new(),
            }),
            Err(source) => Err(MeasurementsError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the file atomically (a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> Result<(), MeasurementsError> {
        let io = |source| MeasurementsError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn get(&self, key: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.key == key)
    }

    /// Records `report`'s peak VRAM for `model` (replacing an older one). Returns false, and
    /// records nothing, unless the report verified the model on the GPU with a measurement.
    pub fn record(
        &mut self,
        catalog: &Catalog,
        model: &CatalogModel,
        report: &VerifyReport,
    ) -> bool {
        let (true, Some(peak)) = (report.outcome.is_gpu_pass(), report.peak_vram_bytes()) else {
            return false;
        };
        let key = model.measurement_key(&catalog.root);
        self.schema_version = 1;
        self.measurements.retain(|m| m.key != key);
        self.measurements.push(Measurement {
            key,
            model: model.name.clone(),
            gpu: report.device.gpu.as_ref().and_then(|g| g.name.clone()),
            peak_vram_bytes: peak,
            measured_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_catalog_is_the_seeds_rule() {
        let c = seed_catalog("/models");
        let names: Vec<_> = c
            .models
            .iter()
            .map(|m| (m.name.as_str(), m.vram_mib))
            .collect();
        assert_eq!(
            names,
            [("1.1b-gpu", 6000), ("0.6b-gpu", 3500), ("0.6b-cpu", 0)]
        );
        assert_eq!(
            c.models[0].resolved_files(&c.root)[0],
            PathBuf::from("/models/1.1b/encoder.onnx")
        );
    }

    #[test]
    fn unknown_fields_and_bad_catalogs_are_errors() {
        let e = parse_catalog(
            "schema_version = 1\n[[model]]\nname='a'\nquality_rank=1\ndevice='gpu'\nvram_mib=1\nram_mib=1\nfiles=['a.onnx']\nvram_gb=3\n",
            "/",
        )
        .unwrap_err();
        // The message says the catalog is not valid; its cause (TOML's error) names the field.
        let cause = std::error::Error::source(&e).map(|s| s.to_string());
        assert!(cause.unwrap_or_default().contains("vram_gb"), "{e:?}");
        let e = parse_catalog("schema_version = 2\nmodel = []", "/").unwrap_err();
        assert!(matches!(e, CatalogError::Schema { found: 2 }));
        let dup = "schema_version = 1\n[[model]]\nname='a'\nquality_rank=1\ndevice='cpu'\nvram_mib=0\nram_mib=1\nfiles=['a.onnx']\n";
        let e = parse_catalog(&format!("{dup}{}", &dup[19..]), "/").unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
    }

    #[test]
    fn measurements_round_trip_and_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/measured.json");
        let mut m = Measurements::load(&path).unwrap();
        assert!(m.measurements.is_empty());
        let c = seed_catalog("/models");
        m.measurements.push(Measurement {
            key: c.models[1].measurement_key(&c.root),
            model: "0.6b-gpu".into(),
            gpu: Some("NVIDIA H100 80GB HBM3".into()),
            peak_vram_bytes: 1_500 * MIB + 1,
            measured_at: 0,
        });
        m.save(&path).unwrap();
        let m = Measurements::load(&path).unwrap();
        let c2 = c.with_measurements(&m);
        assert_eq!(c2.models[1].vram_mib, 1501);
        assert!(c2.models[1].vram_measured);
        assert_eq!(c2.models[0].vram_mib, 6000);
        assert!(!c2.models[0].vram_measured);
    }
}
