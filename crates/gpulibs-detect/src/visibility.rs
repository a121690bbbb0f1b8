//! `CUDA_VISIBLE_DEVICES` and `CUDA_DEVICE_ORDER`, applied the way CUDA applies them.
//!
//! NVML ignores both variables, so detection lists every GPU through NVML and then decides here
//! which ones a CUDA program would see and under which ordinal, matching by UUID.
//!
//! The rules, as measured with `cuInit`/`cuDeviceGetCount`/`cuDeviceGetUuid` on an H100 with
//! driver 580.159.04 (each case in a fresh process):
//!
//! - Unset: every GPU, in `CUDA_DEVICE_ORDER`.
//! - A comma-separated list, read left to right.
//!   - An ordinal picks the GPU with that position in `CUDA_DEVICE_ORDER`. CUDA reads it like
//!     base-10 `strtol`: an optional `+`, decimal digits, and anything after the digits ignored
//!     (`00`, `+0`, `0x1`, `0abc` all mean 0; `010` means 10; `-1` is invalid). Tabs and spaces
//!     around an entry are ignored.
//!   - `GPU-<hex…>` picks the GPU whose UUID starts with that text; the hex digits match in either
//!     case but the `GPU-` prefix must be upper case. A prefix matching two GPUs is invalid, and
//!     `GPU-` alone is invalid.
//!   - `MIG-<uuid>` picks that MIG device; on a GPU without MIG it also matches the GPU's own
//!     UUID (measured). The legacy `MIG-GPU-<uuid>/<gi>/<ci>` form needs MIG enabled.
//!   - The first invalid entry (unknown ordinal, unknown UUID, empty entry, `-1`) and **every
//!     entry after it** are ignored. So an empty value hides every GPU, and `-1` is the usual way
//!     to hide them all.
//!   - A GPU named twice (`0,0`) makes `cuInit` fail with `CUDA_ERROR_INVALID_DEVICE`: CUDA
//!     then sees **no GPU at all**, which is what gpulibs reports. A duplicate after an invalid
//!     entry is never read (`0,abc,0` shows GPU 0). gpulibs treats one GPU named by index and
//!     by UUID as a duplicate too (not measured: the UUID case is assumed to behave alike).
//!   - The visible GPUs get ordinals in the order the list names them.
//! - `CUDA_DEVICE_ORDER=PCI_BUS_ID` numbers GPUs by PCI bus id, which is NVML's order.
//!   `FASTEST_FIRST` (the default) uses a heuristic NVIDIA does not document; gpulibs
//!   approximates it (highest compute capability first, then more memory, then PCI order) and
//!   says so with a [`ProblemCode::DeviceOrderApproximate`] note whenever the ordinals depend on
//!   it. Any other value is ignored by CUDA, which then uses the default.

use serde::{Deserialize, Serialize};

use crate::inventory::RawGpu;
use crate::model::{Problem, ProblemCode, Severity};

/// `CUDA_DEVICE_ORDER`, spelled in JSON as in the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceOrder {
    /// CUDA's default: the fastest GPU first, by an undocumented heuristic.
    #[default]
    FastestFirst,
    /// By PCI bus id, the order NVML and `nvidia-smi` use.
    PciBusId,
}

impl DeviceOrder {
    /// Reads `CUDA_DEVICE_ORDER`; a value CUDA does not know yields the default and a problem.
    pub fn parse(value: Option<&str>) -> (Self, Option<Problem>) {
        match value {
            None | Some("FASTEST_FIRST") => (Self::FastestFirst, None),
            Some("PCI_BUS_ID") => (Self::PciBusId, None),
            Some(other) => (
                Self::FastestFirst,
                Some(
                    Problem::new(
                        ProblemCode::DeviceOrderInvalid,
                        Severity::Warning,
                        format!(
                            "CUDA_DEVICE_ORDER={other:?} is not a value CUDA knows; \
                             it uses the default, FASTEST_FIRST"
                        ),
                    )
                    .hint("set CUDA_DEVICE_ORDER=PCI_BUS_ID or FASTEST_FIRST, or unset it"),
                ),
            ),
        }
    }
}

/// One entry of `CUDA_VISIBLE_DEVICES`, as CUDA reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisibleEntry {
    /// A position in `CUDA_DEVICE_ORDER`.
    Ordinal(u32),
    /// The text after `GPU-`: a UUID or a prefix of one.
    GpuUuid(String),
    /// The text after `MIG-`.
    MigUuid(String),
    /// Nothing CUDA accepts (`-1`, `abc`, an empty entry).
    Invalid,
}

/// Splits and classifies `CUDA_VISIBLE_DEVICES`; each entry comes with its trimmed text.
pub fn parse_visible_devices(value: &str) -> Vec<(String, VisibleEntry)> {
    value
        .split(',')
        .map(|raw| {
            let text = raw.trim();
            (text.to_string(), classify_entry(text))
        })
        .collect()
}

fn classify_entry(text: &str) -> VisibleEntry {
    if let Some(rest) = text.strip_prefix("GPU-") {
        return if rest.is_empty() {
            VisibleEntry::Invalid
        } else {
            VisibleEntry::GpuUuid(rest.to_string())
        };
    }
    if let Some(rest) = text.strip_prefix("MIG-") {
        return if rest.is_empty() {
            VisibleEntry::Invalid
        } else {
            VisibleEntry::MigUuid(rest.to_string())
        };
    }
    // strtol-like: optional '+', then at least one digit; trailing text ignored.
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    let digits: &str = &unsigned[..unsigned
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(unsigned.len())];
    match digits.parse::<u32>() {
        Ok(n) => VisibleEntry::Ordinal(n),
        Err(_) => VisibleEntry::Invalid,
    }
}

/// The order CUDA enumerates the GPUs in, as positions into `gpus` (which is in NVML order).
pub fn enumeration_order(gpus: &[RawGpu], order: DeviceOrder) -> Vec<usize> {
    let mut slots: Vec<usize> = (0..gpus.len()).collect();
    // PCI bus ids are fixed-width upper-case hex, so they sort as text; NVML index breaks ties
    // and stands in where the bus id is unknown.
    let pci_key = |i: usize| (gpus[i].pci_bus_id.clone(), gpus[i].nvml_index);
    match order {
        DeviceOrder::PciBusId => slots.sort_by_key(|&i| pci_key(i)),
        DeviceOrder::FastestFirst => slots.sort_by(|&a, &b| {
            let (ga, gb) = (&gpus[a], &gpus[b]);
            gb.compute_capability
                .cmp(&ga.compute_capability)
                .then(gb.memory_total_bytes.cmp(&ga.memory_total_bytes))
                .then_with(|| pci_key(a).cmp(&pci_key(b)))
        }),
    }
    slots
}

/// A GPU CUDA would see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Position in the inventory's `gpus`.
    pub slot: usize,
    /// The MIG device selected on that GPU, if a `MIG-` entry chose it.
    pub mig_device: Option<String>,
}

/// The outcome of applying `CUDA_VISIBLE_DEVICES` to an enumeration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// In CUDA ordinal order.
    pub visible: Vec<Selected>,
    /// Positions in `gpus` with the reason each is hidden, in NVML order.
    pub hidden: Vec<(usize, String)>,
    /// Whether some ordinal depends on the fastest-first order (then it is approximate).
    pub ordinals_used: bool,
    pub problems: Vec<Problem>,
}

/// Applies `CUDA_VISIBLE_DEVICES` (`None` = unset) to `gpus` enumerated in `enumeration`.
pub fn select_visible(
    gpus: &[RawGpu],
    enumeration: &[usize],
    cuda_visible_devices: Option<&str>,
) -> Selection {
    let Some(value) = cuda_visible_devices else {
        return Selection {
            visible: enumeration
                .iter()
                .map(|&slot| Selected {
                    slot,
                    mig_device: None,
                })
                .collect(),
            ordinals_used: true,
            ..Selection::default()
        };
    };

    let mut selection = Selection::default();
    let mut stopped_at: Option<String> = None;
    for (text, entry) in parse_visible_devices(value) {
        let resolved = match &entry {
            VisibleEntry::Ordinal(n) => {
                selection.ordinals_used = true;
                enumeration.get(*n as usize).map(|&slot| Selected {
                    slot,
                    mig_device: None,
                })
            }
            VisibleEntry::GpuUuid(prefix) => unique_uuid_match(gpus, prefix).map(|slot| Selected {
                slot,
                mig_device: None,
            }),
            VisibleEntry::MigUuid(rest) => resolve_mig(gpus, &text, rest, &mut selection.problems),
            VisibleEntry::Invalid => None,
        };
        let Some(selected) = resolved else {
            stopped_at = Some(text);
            break;
        };
        let duplicate = selection
            .visible
            .iter()
            .any(|s| s.slot == selected.slot && s.mig_device == selected.mig_device);
        if duplicate {
            return duplicate_selection(gpus, value, &text, selected.slot, selection.ordinals_used);
        }
        selection.visible.push(selected);
    }

    let reason = match &stopped_at {
        _ if value.trim().is_empty() => "CUDA_VISIBLE_DEVICES is set to an empty value".to_string(),
        Some(text) => format!(
            "not among the entries of CUDA_VISIBLE_DEVICES={value:?} before `{text}`, \
             where CUDA stops reading"
        ),
        None => format!("not listed in CUDA_VISIBLE_DEVICES={value:?}"),
    };
    for slot in 0..gpus.len() {
        if !selection.visible.iter().any(|s| s.slot == slot) {
            selection.hidden.push((slot, reason.clone()));
        }
    }
    if let (Some(text), false) = (&stopped_at, value.trim().is_empty()) {
        selection.problems.push(
            Problem::new(
                ProblemCode::VisibleDevicesInvalidEntry,
                Severity::Warning,
                format!(
                    "CUDA_VISIBLE_DEVICES={value:?}: `{text}` names no GPU of this machine, \
                     so CUDA ignores it and every entry after it"
                ),
            )
            .hint(
                "list GPUs by index (0,1) or UUID (GPU-…) as `gpulibs detect` or \
                 `nvidia-smi -L` shows them",
            ),
        );
    }
    if selection.visible.is_empty() && !gpus.is_empty() {
        selection.problems.push(all_hidden(value));
    }
    selection
}

fn all_hidden(value: &str) -> Problem {
    Problem::new(
        ProblemCode::AllGpusHidden,
        Severity::Error,
        format!("this machine has GPUs, but CUDA_VISIBLE_DEVICES={value:?} hides all of them"),
    )
    .hint("unset CUDA_VISIBLE_DEVICES, or list the GPUs to use, e.g. CUDA_VISIBLE_DEVICES=0")
}

fn duplicate_selection(
    gpus: &[RawGpu],
    value: &str,
    text: &str,
    slot: usize,
    ordinals_used: bool,
) -> Selection {
    let reason = format!(
        "CUDA_VISIBLE_DEVICES={value:?} names GPU {} twice (again as `{text}`), \
         so CUDA initialises no GPU at all",
        gpus[slot].nvml_index
    );
    Selection {
        visible: Vec::new(),
        hidden: (0..gpus.len()).map(|s| (s, reason.clone())).collect(),
        ordinals_used,
        problems: vec![
            Problem::new(
                ProblemCode::VisibleDevicesDuplicate,
                Severity::Error,
                reason,
            )
            .hint("name each GPU once in CUDA_VISIBLE_DEVICES"),
            all_hidden(value),
        ],
    }
}

/// The one GPU whose UUID (after `GPU-`) starts with `prefix`, ignoring hex case.
fn unique_uuid_match(gpus: &[RawGpu], prefix: &str) -> Option<usize> {
    let prefix = prefix.to_ascii_lowercase();
    let mut matches = gpus.iter().enumerate().filter(|(_, g)| {
        g.uuid
            .as_deref()
            .and_then(|u| u.strip_prefix("GPU-"))
            .is_some_and(|u| u.to_ascii_lowercase().starts_with(&prefix))
    });
    match (matches.next(), matches.next()) {
        (Some((slot, _)), None) => Some(slot),
        _ => None,
    }
}

fn resolve_mig(
    gpus: &[RawGpu],
    text: &str,
    rest: &str,
    problems: &mut Vec<Problem>,
) -> Option<Selected> {
    // Legacy form MIG-GPU-<uuid>/<gi>/<ci>: the parent GPU, which must have MIG enabled.
    if let Some(legacy) = rest.strip_prefix("GPU-") {
        let parent = legacy.split('/').next().unwrap_or_default();
        let slot = unique_uuid_match(gpus, parent)?;
        let mig_on = gpus[slot].mig.is_some_and(|m| m.current);
        return mig_on.then(|| Selected {
            slot,
            mig_device: Some(text.to_string()),
        });
    }
    let wanted = text.to_ascii_lowercase();
    let mut matches = gpus.iter().enumerate().flat_map(|(slot, g)| {
        g.mig_devices
            .iter()
            .filter(|m| m.to_ascii_lowercase().starts_with(&wanted))
            .map(move |m| (slot, m.clone()))
    });
    match (matches.next(), matches.next()) {
        (Some((slot, mig)), None) => {
            return Some(Selected {
                slot,
                mig_device: Some(mig),
            })
        }
        (Some(_), Some(_)) => return None,
        (None, _) => {}
    }
    // On a GPU without MIG, CUDA accepts `MIG-` followed by the GPU's own UUID.
    if let Some(slot) = unique_uuid_match(gpus, rest) {
        if !gpus[slot].mig.is_some_and(|m| m.current) {
            return Some(Selected {
                slot,
                mig_device: None,
            });
        }
    }
    let unlisted_mig = gpus
        .iter()
        .any(|g| g.mig.is_some_and(|m| m.current) && g.mig_devices.is_empty());
    if unlisted_mig {
        problems.push(
            Problem::new(
                ProblemCode::VisibleDevicesMigUnresolved,
                Severity::Warning,
                format!(
                    "CUDA_VISIBLE_DEVICES entry `{text}` may name a MIG device, but the MIG \
                     devices of this machine could not be listed; gpulibs treats it as invalid"
                ),
            )
            .hint("make NVML available (libnvidia-ml.so.1) so MIG devices can be listed"),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MigMode;
    use crate::types::ComputeCapability;

    fn gpu(nvml_index: u32, uuid: &str, pci: &str, cc: (u32, u32), mem_gib: u64) -> RawGpu {
        RawGpu {
            nvml_index,
            uuid: Some(uuid.to_string()),
            pci_bus_id: Some(pci.to_string()),
            compute_capability: Some(ComputeCapability::new(cc.0, cc.1)),
            memory_total_bytes: Some(mem_gib << 30),
            ..RawGpu::default()
        }
    }

    /// NVML order: a GTX 1080 at 01:00.0, an RTX 3060 at 02:00.0, an RTX 3060 Ti at 03:00.0 with
    /// less memory than the 3060.
    fn three() -> Vec<RawGpu> {
        vec![
            gpu(0, "GPU-1b7e3d92-aaaa", "00000000:01:00.0", (6, 1), 8),
            gpu(1, "GPU-a4f09c6b-bbbb", "00000000:02:00.0", (8, 6), 12),
            gpu(2, "GPU-a4f1cccc-cccc", "00000000:03:00.0", (8, 6), 8),
        ]
    }

    #[test]
    fn entries_are_read_like_cuda_reads_them() {
        use VisibleEntry::*;
        let cases: &[(&str, &[VisibleEntry])] = &[
            ("0", &[Ordinal(0)]),
            ("1,0", &[Ordinal(1), Ordinal(0)]),
            (" 0 , 2", &[Ordinal(0), Ordinal(2)]),
            ("00", &[Ordinal(0)]),
            ("+0", &[Ordinal(0)]),
            ("0x0", &[Ordinal(0)]),
            ("0x1", &[Ordinal(0)]),
            ("0abc", &[Ordinal(0)]),
            ("010", &[Ordinal(10)]),
            ("\t0", &[Ordinal(0)]),
            (" ", &[Invalid]),
            ("-1", &[Invalid]),
            ("abc", &[Invalid]),
            ("", &[Invalid]),
            ("0,", &[Ordinal(0), Invalid]),
            ("GPU-", &[Invalid]),
            ("gpu-82c4", &[Invalid]),
            ("GPU-82c4", &[GpuUuid("82c4".into())]),
            ("MIG-1111", &[MigUuid("1111".into())]),
            ("MIG-GPU-82c4/1/0", &[MigUuid("GPU-82c4/1/0".into())]),
            ("99999999999", &[Invalid]),
        ];
        for (text, want) in cases {
            let got: Vec<_> = parse_visible_devices(text)
                .into_iter()
                .map(|(_, e)| e)
                .collect();
            assert_eq!(&got, want, "{text:?}");
        }
    }

    #[test]
    fn device_order_values() {
        assert_eq!(DeviceOrder::parse(None), (DeviceOrder::FastestFirst, None));
        assert_eq!(
            DeviceOrder::parse(Some("PCI_BUS_ID")).0,
            DeviceOrder::PciBusId
        );
        let (order, problem) = DeviceOrder::parse(Some("pci_bus_id"));
        assert_eq!(order, DeviceOrder::FastestFirst);
        assert_eq!(
            problem.map(|p| p.code),
            Some(ProblemCode::DeviceOrderInvalid)
        );
    }

    #[test]
    fn enumeration_orders() {
        let gpus = three();
        assert_eq!(enumeration_order(&gpus, DeviceOrder::PciBusId), [0, 1, 2]);
        // 8.6 before 6.1; between the two 8.6, more memory first.
        assert_eq!(
            enumeration_order(&gpus, DeviceOrder::FastestFirst),
            [1, 2, 0]
        );
        // Equal GPUs keep PCI order.
        let same = vec![
            gpu(0, "GPU-a", "00000000:81:00.0", (9, 0), 80),
            gpu(1, "GPU-b", "00000000:01:00.0", (9, 0), 80),
        ];
        assert_eq!(enumeration_order(&same, DeviceOrder::FastestFirst), [1, 0]);
    }

    /// (CUDA_VISIBLE_DEVICES, visible NVML indices in ordinal order, problem codes)
    #[test]
    fn visible_devices_table() {
        use ProblemCode::*;
        let cases: &[(Option<&str>, &[u32], &[ProblemCode])] = &[
            (None, &[0, 1, 2], &[]),
            (Some("0"), &[0], &[]),
            (Some("2,0"), &[2, 0], &[]),
            (Some("0,1,2"), &[0, 1, 2], &[]),
            (Some(""), &[], &[AllGpusHidden]),
            (
                Some("-1"),
                &[],
                &[VisibleDevicesInvalidEntry, AllGpusHidden],
            ),
            (Some("1,-1,0"), &[1], &[VisibleDevicesInvalidEntry]),
            (Some("0,7,1"), &[0], &[VisibleDevicesInvalidEntry]),
            (
                Some("abc,0"),
                &[],
                &[VisibleDevicesInvalidEntry, AllGpusHidden],
            ),
            (Some("0,"), &[0], &[VisibleDevicesInvalidEntry]),
            (Some("0,0"), &[], &[VisibleDevicesDuplicate, AllGpusHidden]),
            (Some("1,GPU-1b7e"), &[1, 0], &[]),
            (Some("GPU-1B7E3D92"), &[0], &[]),
            (
                Some("1,GPU-1b7e3d92-aaaa,0"),
                &[],
                &[VisibleDevicesDuplicate, AllGpusHidden],
            ),
            // `GPU-a4f` matches two GPUs: ambiguous, so invalid.
            (
                Some("GPU-a4f,0"),
                &[],
                &[VisibleDevicesInvalidEntry, AllGpusHidden],
            ),
            (Some("GPU-a4f0,GPU-a4f1"), &[1, 2], &[]),
            (
                Some("GPU-ffff"),
                &[],
                &[VisibleDevicesInvalidEntry, AllGpusHidden],
            ),
            // MIG- followed by the UUID of a GPU without MIG selects the GPU (measured).
            (Some("MIG-1b7e3d92"), &[0], &[]),
            (Some("0,MIG-deadbeef"), &[0], &[VisibleDevicesInvalidEntry]),
            // A duplicate after the first invalid entry is never read.
            (Some("0,x,0"), &[0], &[VisibleDevicesInvalidEntry]),
        ];
        let gpus = three();
        let order = enumeration_order(&gpus, DeviceOrder::PciBusId);
        for (value, want, codes) in cases {
            let s = select_visible(&gpus, &order, *value);
            let got: Vec<u32> = s.visible.iter().map(|v| gpus[v.slot].nvml_index).collect();
            assert_eq!(&got, want, "{value:?}");
            let got_codes: Vec<_> = s.problems.iter().map(|p| p.code).collect();
            assert_eq!(&got_codes, codes, "{value:?}");
            assert_eq!(
                s.visible.len() + s.hidden.len(),
                gpus.len(),
                "{value:?}: every GPU is visible or hidden"
            );
        }
    }

    #[test]
    fn ordinals_follow_device_order() {
        let gpus = three();
        let fastest = enumeration_order(&gpus, DeviceOrder::FastestFirst);
        let s = select_visible(&gpus, &fastest, Some("0"));
        assert_eq!(s.visible[0].slot, 1, "ordinal 0 is the 'fastest' GPU");
        assert!(s.ordinals_used);
        let s = select_visible(&gpus, &fastest, Some("GPU-1b7e"));
        assert!(!s.ordinals_used, "UUIDs do not depend on the order");
    }

    #[test]
    fn mig_devices_resolve_to_their_gpu() {
        let mut gpus = three();
        gpus[1].mig = Some(MigMode {
            current: true,
            pending: true,
        });
        gpus[1].mig_devices = vec!["MIG-11111111-2222".into(), "MIG-33333333-4444".into()];
        let order = enumeration_order(&gpus, DeviceOrder::PciBusId);

        let s = select_visible(&gpus, &order, Some("MIG-33333333"));
        assert_eq!(s.visible.len(), 1);
        assert_eq!(s.visible[0].slot, 1);
        assert_eq!(
            s.visible[0].mig_device.as_deref(),
            Some("MIG-33333333-4444")
        );

        // Two MIG devices of one GPU are two CUDA devices, not a duplicate.
        let s = select_visible(&gpus, &order, Some("MIG-11111111,MIG-33333333"));
        assert_eq!(s.visible.len(), 2);
        assert!(s.problems.is_empty());

        // Legacy form needs MIG on the parent.
        let s = select_visible(&gpus, &order, Some("MIG-GPU-a4f09c6b-bbbb/1/0"));
        assert_eq!(s.visible.len(), 1);
        let s = select_visible(&gpus, &order, Some("MIG-GPU-1b7e3d92-aaaa/1/0"));
        assert!(s.visible.is_empty());

        // Without the MIG device list (nvidia-smi source), a MIG entry cannot be checked.
        gpus[1].mig_devices.clear();
        let s = select_visible(&gpus, &order, Some("MIG-11111111"));
        assert!(s.visible.is_empty());
        assert!(s
            .problems
            .iter()
            .any(|p| p.code == ProblemCode::VisibleDevicesMigUnresolved));
    }
}
