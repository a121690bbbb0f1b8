//! Which execution provider ran each node, from ONNX Runtime's profiler output.
//!
//! With profiling on, ONNX Runtime writes a Chrome-trace JSON array; every node execution is an
//! event with `"cat": "Node"`, a name ending in `_kernel_time` and `args.provider` naming the
//! execution provider that ran it. This is the proof that a GPU run did not quietly happen on
//! the CPU, independent of how the session was configured.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

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
}

/// Distinct nodes per execution provider (`CUDAExecutionProvider`: 12). Errors only when the
/// text is not a JSON array.
pub fn nodes_by_provider(profile_json: &str) -> Result<BTreeMap<String, usize>, serde_json::Error> {
    let events: Vec<serde_json::Value> = serde_json::from_str(profile_json)?;
    let mut nodes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for value in events {
        let Ok(e) = serde_json::from_value::<Event>(value) else {
            continue;
        };
        if e.cat != "Node" || !e.name.ends_with("_kernel_time") {
            continue;
        }
        if let Some(provider) = e.args.and_then(|a| a.provider) {
            nodes.entry(provider).or_default().insert(e.name);
        }
    }
    Ok(nodes.into_iter().map(|(k, v)| (k, v.len())).collect())
}

/// The execution provider name of the CUDA EP in profiles.
pub const CUDA_PROVIDER: &str = "CUDAExecutionProvider";

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
    }
}
