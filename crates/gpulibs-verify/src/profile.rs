//! Which execution provider ran each node, from ONNX Runtime's profiler output.
//!
//! With profiling on, ONNX Runtime writes a Chrome-trace JSON array; every node execution is an
//! event with `"cat": "Node"`, a name ending in `_kernel_time` and `args.provider` naming the
//! execution provider that ran it. This is the proof that a GPU run did not quietly happen on
//! the CPU, independent of how the session was configured.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    cat: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    args: Option<Args>,
}

#[derive(Deserialize)]
struct Args {
    provider: Option<String>,
    op_name: Option<String>,
}

/// One node as the profiler saw it run: its name in the optimised graph (subgraph nodes of
/// `If`/`Loop` included), its operator and the execution provider that ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlacement {
    /// The node's name (`/stft/STFT`), the event name without `_kernel_time`.
    pub name: String,
    /// The operator (`Conv`, `FusedConv`, `STFT`); empty when the profile does not say.
    pub op_type: String,
    /// `CUDAExecutionProvider`, `CPUExecutionProvider`, ….
    pub provider: String,
}

/// Every node that ran, once each, in the order of its first execution. Errors only when the
/// text is not a JSON array.
pub fn node_placements(profile_json: &str) -> Result<Vec<NodePlacement>, serde_json::Error> {
    let events: Vec<serde_json::Value> = serde_json::from_str(profile_json)?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for value in events {
        let Ok(e) = serde_json::from_value::<Event>(value) else {
            continue;
        };
        if e.cat != "Node" {
            continue;
        }
        let Some(name) = e.name.strip_suffix("_kernel_time") else {
            continue;
        };
        let Some(args) = e.args else { continue };
        let Some(provider) = args.provider else {
            continue;
        };
        if seen.insert(name.to_string()) {
            out.push(NodePlacement {
                name: name.to_string(),
                op_type: args.op_name.unwrap_or_default(),
                provider,
            });
        }
    }
    Ok(out)
}

/// Distinct nodes per execution provider, from [`node_placements`].
pub fn count_by_provider(nodes: &[NodePlacement]) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for node in nodes {
        *n.entry(node.provider.clone()).or_default() += 1;
    }
    n
}

/// Distinct nodes per execution provider (`CUDAExecutionProvider`: 12). Errors only when the
/// text is not a JSON array.
pub fn nodes_by_provider(profile_json: &str) -> Result<BTreeMap<String, usize>, serde_json::Error> {
    node_placements(profile_json).map(|n| count_by_provider(&n))
}

/// The execution provider name of the CUDA EP in profiles.
pub const CUDA_PROVIDER: &str = "CUDAExecutionProvider";
/// The execution provider name of the CPU EP in profiles.
pub const CPU_PROVIDER: &str = "CPUExecutionProvider";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_nodes_per_provider() {
        let json = r#"[
          {"cat":"Session","name":"model_loading_uri","args":{}},
          {"cat":"Node","name":"conv_fence_before","args":{"op_name":"Conv"}},
          {"cat":"Node","name":"conv_kernel_time","args":{"op_name":"Conv","provider":"CUDAExecutionProvider"}},
          {"cat":"Node","name":"conv_kernel_time","args":{"op_name":"Conv","provider":"CUDAExecutionProvider"}},
          {"cat":"Node","name":"shape_kernel_time","args":{"op_name":"Shape","provider":"CPUExecutionProvider"}},
          {"cat":"Node","name":"relu_kernel_time","args":{"op_name":"Relu","provider":"CUDAExecutionProvider"}}
        ]"#;
        let n = nodes_by_provider(json).unwrap();
        assert_eq!(n.get(CUDA_PROVIDER), Some(&2));
        assert_eq!(n.get("CPUExecutionProvider"), Some(&1));
        assert!(nodes_by_provider("{}").is_err());
        assert!(nodes_by_provider("[]").unwrap().is_empty());
        let p = node_placements(json).unwrap();
        assert_eq!(
            p,
            vec![
                NodePlacement {
                    name: "conv".into(),
                    op_type: "Conv".into(),
                    provider: CUDA_PROVIDER.into()
                },
                NodePlacement {
                    name: "shape".into(),
                    op_type: "Shape".into(),
                    provider: CPU_PROVIDER.into()
                },
                NodePlacement {
                    name: "relu".into(),
                    op_type: "Relu".into(),
                    provider: CUDA_PROVIDER.into()
                },
            ]
        );
    }
}
