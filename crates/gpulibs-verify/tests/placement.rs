//! Placement classification (issue 11, item 1) as tables: node placements and ONNX Runtime's
//! log lines in, the verdict and each CPU node's reason out. Pure: no ONNX Runtime is loaded.
//!
//! The log lines are written in ONNX Runtime's words: `GetCapability` of the CUDA provider
//! (`cuda_execution_provider.cc`: "CUDA kernel not found in registries for Op type: X node name:
//! Y"), `GetCpuPreferredNodes` (`fallback_cpu_capability.cc`: "ORT optimization- Force fallback to
//! CPU execution for node: Y because the CPU execution path is deemed faster than overhead
//! involved with execution on other EPs  capable of executing this node") and
//! `VerifyEachNodeIsAssignedToAnEp` (`session_state.cc`), prefixed as verify records them
//! (`<severity> <location>: <message>`). Recorded reports under `tests/fixtures/placement/` are
//! classified too.

use gpulibs_verify::placement::{
    classify, is_heavy, is_placement_line, read_log, CpuReason, Placement, PlacementVerdict,
};
use gpulibs_verify::profile::NodePlacement;

const CUDA: &str = "CUDAExecutionProvider";
const CPU: &str = "CPUExecutionProvider";

fn node(name: &str, op: &str, provider: &str) -> NodePlacement {
    NodePlacement {
        name: name.into(),
        op_type: op.into(),
        provider: provider.into(),
    }
}

fn no_kernel(op: &str, name: &str) -> String {
    format!(
        "info cuda_execution_provider.cc:2702 GetCapability: CUDA kernel not found in registries \
         for Op type: {op} node name: {name}"
    )
}

fn cpu_preferred(name: &str) -> String {
    format!(
        "info fallback_cpu_capability.cc:157 GetCpuPreferredNodes: ORT optimization- Force \
         fallback to CPU execution for node: {name} because the CPU execution path is deemed \
         faster than overhead involved with execution on other EPs  capable of executing this \
         node"
    )
}

/// A speech front end: STFT without a CUDA kernel, the rest (a mel MatMul among it) on CUDA.
fn stft() -> (Vec<NodePlacement>, Vec<String>) {
    (
        vec![
            node("to_signal", "Unsqueeze", CUDA),
            node("Memcpy_token_0", "MemcpyToHost", CUDA),
            node("stft", "STFT", CPU),
            node("Memcpy_token_1", "MemcpyFromHost", CUDA),
            node("square", "Mul", CUDA),
            node("power", "ReduceSum", CUDA),
            node("mel", "MatMul", CUDA),
            node("floor", "Add", CUDA),
            node("log", "Log", CUDA),
        ],
        vec![
            no_kernel("STFT", "stft"),
            "verbose session_state.cc:1299 VerifyEachNodeIsAssignedToAnEp: Node(s) placed on \
             [CPUExecutionProvider]. Number of nodes: 1\n  STFT (stft)"
                .into(),
        ],
    )
}

/// A voice-activity model: LSTM and Conv on CUDA, the Shape → Gather → Concat chains that
/// compute reshape targets kept on the CPU by ONNX Runtime.
fn vad() -> (Vec<NodePlacement>, Vec<String>) {
    (
        vec![
            node("/encoder/Conv", "FusedConv", CUDA),
            node("/Shape", "Shape", CUDA),
            node("/Gather", "Gather", CPU),
            node("/Unsqueeze", "Unsqueeze", CPU),
            node("/Concat", "Concat", CPU),
            node("/Reshape", "Reshape", CUDA),
            node("/decoder/rnn/LSTM", "LSTM", CUDA),
            node("/If", "If", CUDA),
            node("/decoder/Sigmoid", "Sigmoid", CUDA),
        ],
        vec![
            cpu_preferred("/Gather"),
            cpu_preferred("/Unsqueeze"),
            cpu_preferred("/Concat"),
        ],
    )
}

fn reasons(p: &Placement) -> Vec<(String, CpuReason, bool)> {
    p.cpu_nodes
        .iter()
        .map(|n| (n.name.clone(), n.reason, n.heavy))
        .collect()
}

#[test]
fn verdict_table() {
    use CpuReason::*;
    use PlacementVerdict::*;
    let all_cuda = vec![
        node("/conv1/Conv", "FusedConv", CUDA),
        node("/fc/Gemm", "Gemm", CUDA),
        node("/relu", "Relu", CUDA),
    ];
    let (stft_nodes, stft_log) = stft();
    let (vad_nodes, vad_log) = vad();
    let quantized = (
        vec![
            node("/q/DynamicQuantizeLinear", "DynamicQuantizeLinear", CPU),
            node("/q/MatMulInteger", "MatMulInteger", CPU),
            node("/q/Cast", "Cast", CUDA),
            node("/q/Mul", "Mul", CUDA),
        ],
        vec![
            no_kernel("DynamicQuantizeLinear", "/q/DynamicQuantizeLinear"),
            no_kernel("MatMulInteger", "/q/MatMulInteger"),
        ],
    );
    let copies_only = vec![
        node("Memcpy_token_0", "MemcpyFromHost", CUDA),
        node("/conv/Conv", "Conv", CPU),
        node("/relu", "Relu", CPU),
        node("Memcpy_token_1", "MemcpyToHost", CUDA),
    ];
    let all_cpu = vec![node("/conv/Conv", "Conv", CPU), node("/relu", "Relu", CPU)];
    // A fused convolution on the CPU with no logged reason: heavy, whatever the reason.
    let fused_on_cpu = vec![
        node("relu_nchwc", "FusedConv", CPU),
        node("/pool", "GlobalAveragePool", CUDA),
    ];
    let attention_on_cpu = vec![
        node("/attn/MultiHeadAttention", "MultiHeadAttention", CPU),
        node("/ln", "LayerNormalization", CUDA),
    ];

    type Row<'a> = (
        &'a str,
        &'a [NodePlacement],
        &'a [String],
        bool,
        PlacementVerdict,
        Vec<(&'a str, CpuReason, bool)>,
    );
    let table: Vec<Row> = vec![
        ("all on CUDA", &all_cuda, &[], false, AllOnGpu, vec![]),
        (
            "all on CUDA, strict",
            &all_cuda,
            &[],
            true,
            AllOnGpu,
            vec![],
        ),
        (
            "STFT has no CUDA kernel",
            &stft_nodes,
            &stft_log,
            false,
            Partial,
            vec![("stft", NoCudaKernel, false)],
        ),
        (
            "STFT, strict",
            &stft_nodes,
            &stft_log,
            true,
            StrictCpuNodes,
            vec![("stft", NoCudaKernel, false)],
        ),
        (
            "STFT without the log lines",
            &stft_nodes,
            &[],
            false,
            Partial,
            vec![("stft", Other, false)],
        ),
        (
            "shape computations kept on the CPU",
            &vad_nodes,
            &vad_log,
            false,
            Partial,
            vec![
                ("/Gather", ShapeComputation, false),
                ("/Unsqueeze", ShapeComputation, false),
                ("/Concat", ShapeComputation, false),
            ],
        ),
        (
            "quantised matrix product without a CUDA kernel",
            &quantized.0,
            &quantized.1,
            false,
            HeavyOnCpu,
            vec![
                ("/q/DynamicQuantizeLinear", NoCudaKernel, false),
                ("/q/MatMulInteger", NoCudaKernel, true),
            ],
        ),
        (
            "only ORT's copies on CUDA",
            &copies_only,
            &[],
            false,
            NoGpuWork,
            vec![("/conv/Conv", Other, true), ("/relu", Other, false)],
        ),
        (
            "everything on the CPU",
            &all_cpu,
            &[],
            false,
            NoGpuWork,
            vec![("/conv/Conv", Other, true), ("/relu", Other, false)],
        ),
        (
            "fused convolution on the CPU",
            &fused_on_cpu,
            &[],
            false,
            HeavyOnCpu,
            vec![("relu_nchwc", Other, true)],
        ),
        (
            "attention on the CPU",
            &attention_on_cpu,
            &[],
            false,
            HeavyOnCpu,
            vec![("/attn/MultiHeadAttention", Other, true)],
        ),
        ("no node recorded", &[], &[], false, NoRecord, vec![]),
    ];
    for (what, nodes, log, strict, verdict, cpu) in table {
        let p = classify(nodes, log, strict);
        assert_eq!(p.verdict, verdict, "{what}");
        let want: Vec<(String, CpuReason, bool)> = cpu
            .into_iter()
            .map(|(n, r, h)| (n.to_string(), r, h))
            .collect();
        assert_eq!(reasons(&p), want, "{what}");
        assert_eq!(
            p.cuda_nodes + p.cpu_nodes.len(),
            nodes.len(),
            "{what}: every node counted once"
        );
        assert_eq!(
            p.verdict.passed(),
            matches!(verdict, AllOnGpu | Partial),
            "{what}"
        );
    }
}

#[test]
fn the_partial_pass_names_each_cpu_node_and_its_reason() {
    let (nodes, log) = stft();
    let p = classify(&nodes, &log, false);
    assert_eq!(p.cuda_nodes, 8);
    assert_eq!(p.heavy_cuda_nodes, 1, "the mel MatMul");
    assert_eq!(
        p.describe_cpu_nodes(8),
        "STFT `stft` (ONNX Runtime has no CUDA kernel for STFT)"
    );
    assert_eq!(p.reason_summary(), "1 without a CUDA kernel");
    let (nodes, log) = vad();
    let p = classify(&nodes, &log, false);
    assert_eq!(p.reason_summary(), "3 shape computation(s)");
    assert_eq!(
        p.describe_cpu_nodes(2),
        "Gather `/Gather` (a shape computation ONNX Runtime keeps on the CPU), Unsqueeze \
         `/Unsqueeze` (a shape computation ONNX Runtime keeps on the CPU), and 1 more"
    );
}

#[test]
fn log_lines_are_read_whatever_their_prefix() {
    let lines = vec![
        // As verify records them.
        no_kernel("STFT", "/frontend/STFT"),
        // As ONNX Runtime's own stderr logger prints them (Python, older releases).
        "2021-03-19 21:25:54.311085679 [W:onnxruntime:Default, cuda_execution_provider.cc:1885 \
         GetCapability] CUDA kernel not found in registries for Op type: Pow node name: Pow_1"
            .into(),
        // Older releases: no reason after the name.
        "2021-03-19 22:33:08.805984358 [W:onnxruntime:Default, fallback_cpu_capability.h:140 \
         GetCpuPreferedNodes] Force fallback to CPU execution for node: Gather_17"
            .into(),
        cpu_preferred("/embeddings/Unsqueeze"),
        "info graph_transformer.cc:15 Apply: GraphTransformer MemcpyTransformer modified: 0".into(),
    ];
    let facts = read_log(&lines);
    assert_eq!(
        facts.no_kernel_nodes.into_iter().collect::<Vec<_>>(),
        vec![
            ("/frontend/STFT".to_string(), "STFT".to_string()),
            ("Pow_1".to_string(), "Pow".to_string())
        ]
    );
    assert_eq!(
        facts.cpu_preferred.into_iter().collect::<Vec<_>>(),
        vec!["/embeddings/Unsqueeze".to_string(), "Gather_17".to_string()]
    );
    assert!(is_placement_line(&lines[0]));
    assert!(is_placement_line(&lines[3]));
    assert!(is_placement_line(
        "Node(s) placed on [CPUExecutionProvider]. Number of nodes: 1"
    ));
    assert!(is_placement_line(
        "Add MemcpyFromHost after v_decoder.model.Equal_8 for CUDAExecutionProvider"
    ));
    assert!(
        !is_placement_line(&lines[4]),
        "optimiser chatter is not kept"
    );
}

#[test]
fn the_heavy_set_is_the_compute() {
    for op in [
        "Conv",
        "FusedConv",
        "ConvTranspose",
        "MatMul",
        "FusedMatMul",
        "Gemm",
        "FusedGemm",
        "MatMulInteger",
        "QLinearMatMul",
        "MatMulNBits",
        "Einsum",
        "LSTM",
        "GRU",
        "RNN",
        "Attention",
        "MultiHeadAttention",
        "GroupQueryAttention",
    ] {
        assert!(is_heavy(op), "{op}");
    }
    for op in [
        "STFT",
        "DFT",
        "Shape",
        "Gather",
        "Concat",
        "Reshape",
        "If",
        "Loop",
        "Relu",
        "Softmax",
        "LayerNormalization",
        "MemcpyToHost",
        "",
    ] {
        assert!(!is_heavy(op), "{op}");
    }
}

/// Reports recorded from real sessions (`tests/fixtures/placement/`), classified as GPU runs.
const EXPECTED: &[(&str, PlacementVerdict)] = &[
    (
        "cpu-ep-probe-ort-1.23.2.json",
        // ONNX Runtime 1.23.2's CPU provider ran all 10 nodes of the probe (after fusion:
        // `relu_nchwc` is a Conv, `fused /MatMulAddFusion` a FusedGemm): as a GPU run, the CUDA
        // provider did no work.
        PlacementVerdict::NoGpuWork,
    ),
    // Recorded on the lent H200 (docs/gpu-runs.md, 2026-12-04): ORT 1.31.1, CUDA provider
    // thinned to sm_90, models exported there by scripts/gpu/export-models.py.
    ("gpu-h200-probe.json", PlacementVerdict::AllOnGpu),
    ("gpu-h200-resnet18.json", PlacementVerdict::AllOnGpu),
    ("gpu-h200-dynamic_reshape.json", PlacementVerdict::AllOnGpu),
    // 70 of 162 nodes on the CPU, all shape computations ORT keeps there on purpose.
    ("gpu-h200-transformer.json", PlacementVerdict::Partial),
    // GRU + LSTM on CUDA; 7 shape nodes on the CPU.
    ("gpu-h200-recurrent.json", PlacementVerdict::Partial),
    // If/Loop on CUDA; the Shape -> Gather -> Concat chain on the CPU.
    ("gpu-h200-control_flow.json", PlacementVerdict::Partial),
    // STFT has no CUDA kernel in ORT 1.31.1; the mel MatMul ran on CUDA.
    ("gpu-h200-stft.json", PlacementVerdict::Partial),
];

/// The recorded STFT run: ORT's own "CUDA kernel not found" line reached the log, so the one CPU
/// node is named with that reason and is not heavy; `--strict` turns the same evidence into a
/// failure; and moving the MatMul to the CPU (what a provider that could not run it would give)
/// is a failure naming it.
#[test]
fn the_recorded_stft_run_names_its_cpu_node_and_why() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/placement");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("gpu-h200-stft.json")).unwrap())
            .unwrap();
    let m = &report["models"][0];
    let mut nodes: Vec<NodePlacement> = serde_json::from_value(m["nodes"].clone()).unwrap();
    let log: Vec<String> = serde_json::from_value(m["ort_log"].clone()).unwrap();
    let p = classify(&nodes, &log, false);
    assert_eq!(p.verdict, PlacementVerdict::Partial);
    assert_eq!(p.cpu_nodes.len(), 1, "{:?}", p.cpu_nodes);
    assert_eq!(p.cpu_nodes[0].op_type, "STFT");
    assert_eq!(p.cpu_nodes[0].reason, CpuReason::NoCudaKernel);
    assert!(!p.cpu_nodes[0].heavy);
    assert_eq!(
        classify(&nodes, &log, true).verdict,
        PlacementVerdict::StrictCpuNodes
    );
    let matmul = nodes
        .iter_mut()
        .find(|n| n.op_type == "MatMul")
        .expect("the mel MatMul");
    matmul.provider = "CPUExecutionProvider".into();
    let heavy = classify(&nodes, &log, false);
    assert_eq!(heavy.verdict, PlacementVerdict::HeavyOnCpu);
    assert!(heavy.describe_heavy_cpu_nodes(5).contains("MatMul"));
}

#[test]
fn recorded_reports_classify_as_expected() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/placement");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let expected = EXPECTED
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name}: add its expected verdict to EXPECTED"))
            .1
            .clone();
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for m in report["models"].as_array().unwrap() {
            let nodes: Vec<NodePlacement> = serde_json::from_value(m["nodes"].clone()).unwrap();
            let log: Vec<String> = serde_json::from_value(m["ort_log"].clone()).unwrap();
            assert!(!nodes.is_empty(), "{name}: no nodes recorded");
            let p = classify(&nodes, &log, false);
            assert_eq!(p.verdict, expected, "{name} {}", m["path"]);
        }
    }
}
