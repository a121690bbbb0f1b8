//! Whether the active install still fits this machine: a pure function of the install record
//! and a fresh detection. Kernel rules are `gpulibs-inspect`'s ([`select_entry`]); nothing here
//! re-implements them.

use gpulibs_detect::{ComputeCapability, CudaVersion, Detection};
use gpulibs_inspect::{select_entry, Selection};
use serde::Serialize;

use crate::record::{GpuRecord, InstallRecord};

/// The facts about this machine `status` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSummary {
    pub gpus: Vec<HostGpu>,
    /// Highest CUDA version the driver runs; `None` when unknown.
    pub driver_cuda: Option<CudaVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostGpu {
    pub index: u32,
    pub name: Option<String>,
    pub compute_capability: ComputeCapability,
}

impl HostSummary {
    /// The usable GPUs (with a known compute capability) and the driver of a detection.
    pub fn from_detection(d: &Detection) -> Self {
        Self {
            gpus: d
                .usable_gpus()
                .filter_map(|g| {
                    g.compute_capability.map(|cc| HostGpu {
                        index: g.index,
                        name: g.name.clone(),
                        compute_capability: cc,
                    })
                })
                .collect(),
            driver_cuda: d.driver_cuda(),
        }
    }
}

/// How the install's kernels meet one GPU; `selection` is `None` when the record carries no
/// coverage to judge by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuFit {
    pub gpu: HostGpu,
    pub selection: Option<Selection>,
}

impl GpuFit {
    fn runs(&self) -> bool {
        !matches!(self.selection, Some(Selection::None { .. }))
    }
}

/// The verdict of `gpulibs status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    NothingInstalled,
    /// No usable GPU now; the install cannot be used.
    NoGpu {
        install_id: String,
    },
    /// The driver runs an older CUDA than the install needs.
    DriverTooOld {
        install_id: String,
        required: CudaVersion,
        found: CudaVersion,
    },
    /// At least one GPU has no kernel it can load in this install.
    NotCovered {
        install_id: String,
        gpus: Vec<GpuFit>,
    },
    /// Every GPU runs it, but it was chosen for another GPU: a better variant may exist.
    GpuChanged {
        install_id: String,
        chosen_for: GpuRecord,
        gpus: Vec<GpuFit>,
    },
    Ok {
        install_id: String,
        gpus: Vec<GpuFit>,
    },
}

impl Status {
    pub fn is_ok(&self) -> bool {
        matches!(self, Status::Ok { .. } | Status::GpuChanged { .. })
    }

    /// One line a person can act on.
    pub fn message(&self) -> String {
        let gpu_list = |gpus: &[GpuFit], pred: &dyn Fn(&GpuFit) -> bool| {
            gpus.iter()
                .filter(|f| pred(f))
                .map(|f| {
                    format!(
                        "GPU {} ({}, {})",
                        f.gpu.index,
                        f.gpu.name.as_deref().unwrap_or("unnamed"),
                        f.gpu.compute_capability.sm_name()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Status::NothingInstalled => "nothing is installed; run `gpulibs install`".to_string(),
            Status::NoGpu { install_id } => format!(
                "install {install_id} is active, but no usable NVIDIA GPU is visible now; run \
                 `gpulibs detect` to see why"
            ),
            Status::DriverTooOld {
                install_id,
                required,
                found,
            } => format!(
                "install {install_id} needs a driver that runs CUDA {required}, this one runs \
                 CUDA {found}; update the NVIDIA driver or run `gpulibs install` to choose \
                 libraries for this driver"
            ),
            Status::NotCovered { install_id, gpus } => format!(
                "install {install_id} has no kernels for {}; run `gpulibs install` to choose \
                 libraries for this GPU",
                gpu_list(gpus, &|f| !f.runs())
            ),
            Status::GpuChanged {
                install_id,
                chosen_for,
                gpus,
            } => format!(
                "install {install_id} was chosen for {} ({}) and still runs on {}; `gpulibs \
                 install` may find a better fit",
                chosen_for.name.as_deref().unwrap_or("another GPU"),
                chosen_for.sm,
                gpu_list(gpus, &|_| true)
            ),
            Status::Ok { install_id, gpus } => {
                format!("install {install_id} runs on {}", gpu_list(gpus, &|_| true))
            }
        }
    }
}

/// Judges the active install `record` against `host`.
pub fn status(record: Option<&InstallRecord>, host: &HostSummary) -> Status {
    let Some(record) = record else {
        return Status::NothingInstalled;
    };
    let install_id = record.id.clone();
    if host.gpus.is_empty() {
        return Status::NoGpu { install_id };
    }
    if let (Some(required), Some(found)) = (record.requires_driver_cuda, host.driver_cuda) {
        if found < required {
            return Status::DriverTooOld {
                install_id,
                required,
                found,
            };
        }
    }
    let gpus: Vec<GpuFit> = host
        .gpus
        .iter()
        .map(|g| GpuFit {
            gpu: g.clone(),
            selection: (!record.coverage.is_empty())
                .then(|| select_entry(&record.coverage, g.compute_capability, host.driver_cuda)),
        })
        .collect();
    if gpus.iter().any(|f| !f.runs()) {
        return Status::NotCovered { install_id, gpus };
    }
    if let Some(chosen) = &record.gpu {
        let same = host.gpus.iter().any(|g| {
            g.compute_capability == chosen.compute_capability
                && (chosen.name.is_none() || g.name == chosen.name)
        });
        if !same {
            return Status::GpuChanged {
                install_id,
                chosen_for: chosen.clone(),
                gpus,
            };
        }
    }
    Status::Ok { install_id, gpus }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RECORD_SCHEMA_VERSION;
    use gpulibs_inspect::{KernelEntry, KernelTarget, PtxIsa};

    fn record(coverage: Vec<KernelEntry>, gpu: Option<(&str, u32)>) -> InstallRecord {
        InstallRecord {
            schema_version: RECORD_SCHEMA_VERSION,
            id: "i1".into(),
            app: "app".into(),
            variant: "modern".into(),
            release: Some("1.1.1".into()),
            components: vec![],
            coverage,
            gpu: gpu.map(|(n, cc)| {
                GpuRecord::new(Some(n.to_string()), ComputeCapability::from_number(cc))
            }),
            driver: None,
            requires_driver_cuda: Some(CudaVersion::new(12, 0)),
            reused_links: Vec::new(),
            verification: None,
            installed_at: "2025-06-01T12:00:00Z".into(),
            ort_library: "lib/libonnxruntime.so".into(),
            system_libraries: vec![],
        }
    }

    fn host(gpus: &[(&str, u32)], cuda: (u32, u32)) -> HostSummary {
        HostSummary {
            gpus: gpus
                .iter()
                .zip(0..)
                .map(|((n, cc), i)| HostGpu {
                    index: i,
                    name: Some(n.to_string()),
                    compute_capability: ComputeCapability::from_number(*cc),
                })
                .collect(),
            driver_cuda: Some(CudaVersion::new(cuda.0, cuda.1)),
        }
    }

    fn sass(n: u32) -> KernelEntry {
        KernelEntry {
            target: KernelTarget::sass(n / 10, n % 10),
            ptx_isa: None,
        }
    }

    fn ptx(n: u32, isa: (u32, u32)) -> KernelEntry {
        KernelEntry {
            target: KernelTarget::ptx(n / 10, n % 10),
            ptx_isa: Some(PtxIsa::new(isa.0, isa.1)),
        }
    }

    /// The seed's "modern" tier: sm_75, sm_80, sm_86, no PTX.
    fn modern() -> Vec<KernelEntry> {
        vec![sass(75), sass(80), sass(86)]
    }

    #[test]
    fn verdicts_read_like_the_rules() {
        let a4000 = ("NVIDIA RTX A4000", 86);
        let cases: Vec<(&str, Option<InstallRecord>, HostSummary, &str)> = vec![
            (
                "nothing",
                None,
                host(&[a4000], (12, 9)),
                "nothing_installed",
            ),
            (
                "no gpu",
                Some(record(modern(), Some(a4000))),
                host(&[], (12, 9)),
                "no_gpu",
            ),
            (
                "same gpu",
                Some(record(modern(), Some(a4000))),
                host(&[a4000], (12, 9)),
                "ok",
            ),
            (
                "8.9 runs sm_86 SASS (same major, higher minor)",
                Some(record(modern(), Some(a4000))),
                host(&[("NVIDIA L4", 89)], (12, 9)),
                "gpu_changed",
            ),
            (
                "H100 has no kernel in the modern tier",
                Some(record(modern(), Some(a4000))),
                host(&[("NVIDIA H100", 90)], (12, 9)),
                "not_covered",
            ),
            (
                "PTX compute_80 JITs on 9.0 with a new enough driver",
                Some(record(vec![sass(80), ptx(80, (8, 8))], Some(a4000))),
                host(&[("NVIDIA H100", 90)], (12, 9)),
                "gpu_changed",
            ),
            (
                "PTX 8.8 is too new for a CUDA 12.4 driver",
                Some(record(vec![sass(80), ptx(80, (8, 8))], Some(a4000))),
                host(&[("NVIDIA H100", 90)], (12, 4)),
                "not_covered",
            ),
            (
                "driver older than the components",
                Some(record(modern(), Some(a4000))),
                host(&[a4000], (11, 8)),
                "driver_too_old",
            ),
            (
                "one of two GPUs not covered",
                Some(record(modern(), Some(a4000))),
                host(&[a4000, ("Tesla V100", 70)], (12, 9)),
                "not_covered",
            ),
            (
                "no coverage recorded: judged by driver only",
                Some(record(vec![], Some(a4000))),
                host(&[("NVIDIA H100", 90)], (12, 9)),
                "gpu_changed",
            ),
        ];
        for (what, rec, host, want) in cases {
            let s = status(rec.as_ref(), &host);
            let json = serde_json::to_value(&s).unwrap();
            assert_eq!(json["state"], want, "{what}: {}", s.message());
        }
    }

    #[test]
    fn messages_name_the_gpu_and_the_fix() {
        let s = status(
            Some(&record(modern(), Some(("NVIDIA RTX A4000", 86)))),
            &host(&[("NVIDIA H100", 90)], (12, 9)),
        );
        assert_eq!(
            s.message(),
            "install i1 has no kernels for GPU 0 (NVIDIA H100, sm_90); run `gpulibs install` \
             to choose libraries for this GPU"
        );
        assert!(!s.is_ok());
    }
}
