//! Where a model's nodes ran on a GPU run, why some ran on the CPU, and whether that is still a
//! GPU pass: [`classify`], a pure function over what ONNX Runtime recorded.
//!
//! Verify lets ONNX Runtime place on the CPU what it cannot or will not run on CUDA (CPU fallback
//! allowed), then reads two records of the session:
//!
//! - the profiler: every node that ran, its operator and its execution provider
//!   ([`crate::profile::node_placements`]);
//! - ONNX Runtime's own log lines about placement, captured while the session was created
//!   ([`is_placement_line`] picks them): `CUDA kernel not found in registries for Op type: STFT
//!   node name: /STFT` (the CUDA provider has no kernel for the node: `GetCapability` in
//!   `cuda_execution_provider.cc`) and `Force fallback to CPU execution for node: /Gather_1 because
//!   the CPU execution path is deemed faster …` (ONNX Runtime keeps a shape computation on the
//!   CPU on purpose: `GetCpuPreferredNodes` in `fallback_cpu_capability.cc` moves there the nodes
//!   whose inputs are already on the CPU, such as the `Shape` → `Gather` → `Concat` chains that
//!   compute a `Reshape`'s target shape).
//!
//! The verdict ([`PlacementVerdict`]): everything on CUDA is a full pass; some nodes on the CPU is a pass
//! with a warning naming each node and its reason, unless `strict` or a compute-heavy node
//! ([`HEAVY_OPS`]) is among them; no compute node on CUDA at all means the CUDA provider did not
//! do the work. Each of those is a failure.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::profile::{NodePlacement, CUDA_PROVIDER};

/// The operators whose work is the model's compute: convolutions, matrix products, recurrent
/// layers and attention. If one of them runs on the CPU, the GPU did not do the model's work and
/// verify fails, `--strict` or not.
///
/// Where the list comes from: the ONNX standard operators that are convolutions
/// (`Conv`, `ConvTranspose`, `ConvInteger`, `QLinearConv`, `DeformConv`), matrix products
/// (`MatMul`, `Gemm`, `MatMulInteger`, `QLinearMatMul`, `Einsum`), recurrent layers (`LSTM`,
/// `GRU`, `RNN`) and attention (`Attention`, opset 23), plus the operators ONNX Runtime's graph
/// optimiser fuses them into or its contrib domain (`com.microsoft`) provides for them, as the
/// profiler names them after optimisation: `FusedConv`, `NhwcConv`, `FusedMatMul`,
/// `FusedMatMulActivation`, `FusedGemm`, `QGemm`, `MatMulNBits`, `MatMulIntegerToFloat`,
/// `DynamicQuantizeMatMul`, `MatMulBnb4`, `GatedRelativePositionBias`, `DynamicQuantizeLSTM`,
/// and the attention family (`MultiHeadAttention`, `GroupQueryAttention`, `PackedAttention`,
/// `PackedMultiHeadAttention`, `DecoderAttention`, `DecoderMaskedSelfAttention`,
/// `DecoderMaskedMultiHeadAttention`, `LongformerAttention`, `QAttention`, `SparseAttention`,
/// `PagedAttention`, `Attention` of `com.microsoft`). Everything else (elementwise ops,
/// normalisation, reductions, shape and index ops, `STFT`/`DFT`, control flow) may run on the
/// CPU in a partial pass, named in the warning.
pub const HEAVY_OPS: &[&str] = &[
    // convolutions
    "Conv",
    "ConvTranspose",
    "ConvInteger",
    "QLinearConv",
    "DeformConv",
    "FusedConv",
    "NhwcConv",
    // matrix products
    "MatMul",
    "Gemm",
    "MatMulInteger",
    "QLinearMatMul",
    "Einsum",
    "FusedMatMul",
    "FusedMatMulActivation",
    "FusedGemm",
    "QGemm",
    "MatMulNBits",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
    "MatMulBnb4",
    "GatedRelativePositionBias",
    // recurrent layers
    "LSTM",
    "GRU",
    "RNN",
    "DynamicQuantizeLSTM",
    // attention
    "Attention",
    "MultiHeadAttention",
    "GroupQueryAttention",
    "PackedAttention",
    "PackedMultiHeadAttention",
    "DecoderAttention",
    "DecoderMaskedSelfAttention",
    "DecoderMaskedMultiHeadAttention",
    "LongformerAttention",
    "QAttention",
    "SparseAttention",
    "PagedAttention",
];

/// Whether `op_type` is one of [`HEAVY_OPS`].
pub fn is_heavy(op_type: &str) -> bool {
    HEAVY_OPS.contains(&op_type)
}

/// ONNX Runtime's own copy nodes between devices: they run on CUDA but are no compute.
fn is_copy(op_type: &str) -> bool {
    matches!(op_type, "MemcpyFromHost" | "MemcpyToHost")
}

const NO_KERNEL: &str = "kernel not found in registries for Op type: ";
const NODE_NAME: &str = " node name: ";
const CPU_PREFERRED: &str = "Force fallback to CPU execution for node: ";

/// Whether a line of ONNX Runtime's log is about node placement, and so kept as evidence in the
/// report: missing kernels, nodes kept on the CPU on purpose, the placement summary
/// (`Node(s) placed on [CPUExecutionProvider]. Number of nodes: 3`), and the copies inserted
/// between devices.
pub fn is_placement_line(message: &str) -> bool {
    message.contains(NO_KERNEL)
        || message.contains(CPU_PREFERRED)
        || message.contains("placed on [")
        || message.contains("Add Memcpy")
        || message.contains("Memcpy nodes")
        || message.contains("CPU fallback")
        || message.contains("fallback to CPU")
}

/// Why a node ran on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuReason {
    /// The CUDA provider has no kernel for this operator (or for its input types): ONNX
    /// Runtime's log says "CUDA kernel not found in registries for Op type: …".
    NoCudaKernel,
    /// ONNX Runtime keeps this shape or index computation on the CPU on purpose, because its
    /// inputs are already there ("Force fallback to CPU execution for node: …").
    ShapeComputation,
    /// Neither log line names the node.
    Other,
}

impl CpuReason {
    /// The words for people, given the node's operator.
    pub fn describe(self, op_type: &str) -> String {
        match self {
            CpuReason::NoCudaKernel => format!("ONNX Runtime has no CUDA kernel for {op_type}"),
            CpuReason::ShapeComputation => {
                "a shape computation ONNX Runtime keeps on the CPU".into()
            }
            CpuReason::Other => "ONNX Runtime's log gives no reason".into(),
        }
    }
}

/// A node that ran off the GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuNode {
    pub name: String,
    pub op_type: String,
    /// The provider that ran it (`CPUExecutionProvider`).
    pub provider: String,
    pub reason: CpuReason,
    /// Whether the operator is one of [`HEAVY_OPS`].
    pub heavy: bool,
}

/// What [`classify`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum PlacementVerdict {
    /// Every node ran on CUDA.
    AllOnGpu,
    /// The compute ran on CUDA, these nodes ([`Placement::cpu_nodes`]) on the CPU: a pass with
    /// a warning.
    Partial,
    /// No node but ONNX Runtime's own copies ran on CUDA: the CUDA provider did not do the work.
    NoGpuWork,
    /// Compute-heavy nodes ran on the CPU: the GPU did not do the model's work.
    HeavyOnCpu,
    /// `--strict`: some node ran on the CPU.
    StrictCpuNodes,
    /// The profiler recorded no node: where the model ran cannot be shown.
    NoRecord,
}

impl PlacementVerdict {
    /// Whether this is a pass (full or partial).
    pub fn passed(&self) -> bool {
        matches!(self, PlacementVerdict::AllOnGpu | PlacementVerdict::Partial)
    }
}

/// Where one model's nodes ran on a GPU run, and the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    #[serde(flatten)]
    pub verdict: PlacementVerdict,
    /// Nodes that ran on CUDA, ONNX Runtime's copies included.
    pub cuda_nodes: usize,
    /// Of those, compute-heavy ones ([`HEAVY_OPS`]).
    pub heavy_cuda_nodes: usize,
    /// Nodes that ran on another provider, each with the reason.
    pub cpu_nodes: Vec<CpuNode>,
}

impl Placement {
    /// "STFT `/STFT` (ONNX Runtime has no CUDA kernel for STFT), …": at most `limit` nodes, then
    /// how many more.
    pub fn describe_cpu_nodes(&self, limit: usize) -> String {
        describe(self.cpu_nodes.iter(), limit)
    }

    /// The heavy nodes among [`Placement::cpu_nodes`], described.
    pub fn describe_heavy_cpu_nodes(&self, limit: usize) -> String {
        describe(self.cpu_nodes.iter().filter(|n| n.heavy), limit)
    }

    /// Counts of CPU nodes per reason: "1 without a CUDA kernel, 12 shape computations".
    pub fn reason_summary(&self) -> String {
        let mut by: BTreeMap<CpuReason, usize> = BTreeMap::new();
        for n in &self.cpu_nodes {
            *by.entry(n.reason).or_default() += 1;
        }
        by.into_iter()
            .map(|(r, n)| match r {
                CpuReason::NoCudaKernel => format!("{n} without a CUDA kernel"),
                CpuReason::ShapeComputation => format!("{n} shape computation(s)"),
                CpuReason::Other => format!("{n} for no logged reason"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn describe<'a>(nodes: impl Iterator<Item = &'a CpuNode>, limit: usize) -> String {
    let nodes: Vec<&CpuNode> = nodes.collect();
    let mut parts: Vec<String> = nodes
        .iter()
        .take(limit)
        .map(|n| {
            format!(
                "{} `{}` ({})",
                n.op_type,
                n.name,
                n.reason.describe(&n.op_type)
            )
        })
        .collect();
    if nodes.len() > limit {
        parts.push(format!("and {} more", nodes.len() - limit));
    }
    parts.join(", ")
}

/// What ONNX Runtime's placement log lines say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFacts {
    /// Node name → operator, for "CUDA kernel not found in registries for Op type: X node
    /// name: Y".
    pub no_kernel_nodes: BTreeMap<String, String>,
    /// Operators the CUDA provider had no kernel for, whatever the node.
    pub no_kernel_ops: BTreeSet<String>,
    /// Nodes ONNX Runtime moved to the CPU on purpose ("Force fallback to CPU execution for
    /// node: Y").
    pub cpu_preferred: BTreeSet<String>,
}

/// Reads ONNX Runtime's log lines (each may carry a prefix such as the severity and the code
/// location before the message).
pub fn read_log(lines: &[String]) -> LogFacts {
    let mut facts = LogFacts::default();
    for line in lines {
        if let Some(i) = line.find(NO_KERNEL) {
            let rest = &line[i + NO_KERNEL.len()..];
            let (op, node) = match rest.find(NODE_NAME) {
                Some(j) => (&rest[..j], Some(rest[j + NODE_NAME.len()..].trim())),
                None => (rest, None),
            };
            let op = op.trim().to_string();
            if let Some(node) = node.filter(|n| !n.is_empty()) {
                facts.no_kernel_nodes.insert(node.to_string(), op.clone());
            }
            if !op.is_empty() {
                facts.no_kernel_ops.insert(op);
            }
        }
        if let Some(i) = line.find(CPU_PREFERRED) {
            let rest = &line[i + CPU_PREFERRED.len()..];
            let name = rest.split(" because").next().unwrap_or(rest).trim();
            if !name.is_empty() {
                facts.cpu_preferred.insert(name.to_string());
            }
        }
    }
    facts
}

/// The verdict for one model's GPU run: `nodes` from the profiler, `log` ONNX Runtime's
/// placement lines from the session's creation, `strict` for `--strict`.
///
/// Order of the rules: no node recorded → [`PlacementVerdict::NoRecord`]; no node but copies on CUDA →
/// [`PlacementVerdict::NoGpuWork`]; a heavy node off CUDA → [`PlacementVerdict::HeavyOnCpu`]; any node off CUDA
/// with `strict` → [`PlacementVerdict::StrictCpuNodes`], without → [`PlacementVerdict::Partial`]; else
/// [`PlacementVerdict::AllOnGpu`].
pub fn classify(nodes: &[NodePlacement], log: &[String], strict: bool) -> Placement {
    let facts = read_log(log);
    let mut cuda_nodes = 0;
    let mut cuda_compute = 0;
    let mut heavy_cuda_nodes = 0;
    let mut cpu_nodes = Vec::new();
    for n in nodes {
        if n.provider == CUDA_PROVIDER {
            cuda_nodes += 1;
            if !is_copy(&n.op_type) {
                cuda_compute += 1;
            }
            if is_heavy(&n.op_type) {
                heavy_cuda_nodes += 1;
            }
            continue;
        }
        let reason = if facts.no_kernel_nodes.contains_key(&n.name)
            || facts.no_kernel_ops.contains(&n.op_type)
        {
            CpuReason::NoCudaKernel
        } else if facts.cpu_preferred.contains(&n.name) {
            CpuReason::ShapeComputation
        } else {
            CpuReason::Other
        };
        cpu_nodes.push(CpuNode {
            name: n.name.clone(),
            op_type: n.op_type.clone(),
            provider: n.provider.clone(),
            reason,
            heavy: is_heavy(&n.op_type),
        });
    }
    let verdict = if nodes.is_empty() {
        PlacementVerdict::NoRecord
    } else if cuda_compute == 0 {
        PlacementVerdict::NoGpuWork
    } else if cpu_nodes.iter().any(|n| n.heavy) {
        PlacementVerdict::HeavyOnCpu
    } else if !cpu_nodes.is_empty() && strict {
        PlacementVerdict::StrictCpuNodes
    } else if !cpu_nodes.is_empty() {
        PlacementVerdict::Partial
    } else {
        PlacementVerdict::AllOnGpu
    };
    Placement {
        verdict,
        cuda_nodes,
        heavy_cuda_nodes,
        cpu_nodes,
    }
}
