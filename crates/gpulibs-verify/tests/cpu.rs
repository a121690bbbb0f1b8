//! verify on the CPU execution provider with the real ONNX Runtime 1.23.2 CPU library: the
//! probe model and the fixtures (dynamic dimensions, scalars, rejected inputs, a model set).
//! One ONNX Runtime per process: every test here uses the same library.

mod common;

use std::collections::HashMap;

use gpulibs_verify::*;

fn request(models: ModelSource) -> VerifyRequest {
    VerifyRequest {
        ort_library: common::cpu_ort(),
        preload_dirs: Vec::new(),
        models,
        device: Device::Cpu,
        shapes: HashMap::new(),
        values: HashMap::new(),
        runs: 3,
        max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
    }
}

fn fixture(name: &str) -> ModelSource {
    ModelSource::Files(vec![common::fixtures().join(name)])
}

#[test]
fn probe_runs_on_the_cpu_and_reports_everything() {
    let report = verify(&request(ModelSource::Probe));
    assert_eq!(
        report.outcome,
        Outcome::CpuOnly {
            reason: "--device cpu was asked".into()
        },
        "{}",
        report.render_text()
    );
    assert_eq!(report.outcome.exit_code(), 4);
    assert_eq!(report.ort_version.as_deref(), Some(common::CPU_VERSION));
    assert_eq!(report.device.used, "cpu");
    let m = &report.models[0];
    assert_eq!(m.path, "<probe>");
    assert_eq!(m.inputs[0].name, "x");
    assert_eq!(m.inputs[0].shape, vec![1, 3, 16, 16]);
    assert_eq!(m.runs, 3);
    assert!(m.session_create_ms.unwrap() > 0.0);
    assert!(m.first_run_ms.unwrap() > 0.0);
    assert!(m.median_run_ms.unwrap() > 0.0);
    // The profiler saw every node on the CPU provider: Conv, LSTM, MatMul, Gemm, ... (ORT may
    // fuse some, so at least a handful).
    let cpu_nodes = m
        .nodes_by_provider
        .get("CPUExecutionProvider")
        .copied()
        .unwrap_or(0);
    assert!(cpu_nodes >= 5, "{:?}", m.nodes_by_provider);
    assert_eq!(m.nodes_by_provider.len(), 1);
    // JSON names are stable.
    let json: serde_json::Value = serde_json::from_str(&report.to_json_pretty()).unwrap();
    assert_eq!(json["outcome"]["status"], "cpu_only");
    assert_eq!(
        json["models"][0]["inputs"][0]["shape"],
        serde_json::json!([1, 3, 16, 16])
    );
    assert!(json["models"][0]["median_run_ms"].is_number());
}

/// The placement evidence a GPU run records (issue 11) comes from the same two sources on the
/// CPU: every node with its operator from the profiler, and ONNX Runtime's own placement line
/// from its log, which verify receives through the environment's logging function.
#[test]
fn the_report_carries_each_node_and_ort_s_own_placement_line() {
    let report = verify(&request(ModelSource::Probe));
    let m = &report.models[0];
    assert_eq!(m.nodes.len(), m.nodes_by_provider["CPUExecutionProvider"]);
    let ops: Vec<&str> = m.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert!(ops.contains(&"LSTM") && ops.contains(&"Conv"), "{ops:?}");
    assert!(m.nodes.iter().all(|n| n.provider == "CPUExecutionProvider"));
    let line = format!(
        "All nodes placed on [CPUExecutionProvider]. Number of nodes: {}",
        m.nodes.len()
    );
    assert!(
        m.ort_log.iter().any(|l| l.contains(&line)),
        "{line} not in {:#?}",
        m.ort_log
    );
    // Only placement lines are kept, not the whole verbose log.
    assert!(m.ort_log.len() < 10, "{:#?}", m.ort_log);
    // The CPU run is not classified: that is for GPU runs.
    assert_eq!(m.placement, None);
    let json: serde_json::Value = serde_json::from_str(&report.to_json_pretty()).unwrap();
    assert_eq!(json["schema_version"], 2);
    assert_eq!(
        json["models"][0]["nodes"][0]["provider"],
        "CPUExecutionProvider"
    );
}

#[test]
fn dynamic_dimensions_default_to_one_and_take_shape_options() {
    let report = verify(&request(fixture("dynamic.onnx")));
    assert!(
        matches!(report.outcome, Outcome::CpuOnly { .. }),
        "{}",
        report.render_text()
    );
    let inputs = &report.models[0].inputs;
    assert_eq!(inputs[0].declared_shape, ["batch", "time", "8"]);
    assert_eq!(inputs[0].shape, vec![1, 1, 8]);
    assert_eq!(inputs[0].defaulted_dims, ["batch", "time"]);
    assert_eq!(inputs[1].declared_shape, ["?"]);

    let mut req = request(fixture("dynamic.onnx"));
    req.shapes.insert("x".into(), vec![2, 5, 8]);
    req.shapes.insert("bias".into(), vec![4]);
    let report = verify(&req);
    assert!(
        matches!(report.outcome, Outcome::CpuOnly { .. }),
        "{}",
        report.render_text()
    );
    assert_eq!(report.models[0].inputs[0].shape, vec![2, 5, 8]);
    assert!(report.models[0].inputs[0].defaulted_dims.is_empty());

    // By dimension name.
    let mut req = request(fixture("dynamic.onnx"));
    req.shapes.insert("time".into(), vec![7]);
    let report = verify(&req);
    assert_eq!(report.models[0].inputs[0].shape, vec![1, 7, 8]);
}

#[test]
fn bad_shape_options_fail_as_requests_naming_the_inputs() {
    let mut req = request(fixture("dynamic.onnx"));
    req.shapes.insert("audio".into(), vec![1, 16000]);
    let report = verify(&req);
    let (stage, reason, _) = common::failure(&report);
    assert_eq!(stage, Stage::Request);
    assert!(reason.contains("--shape audio names no input"), "{reason}");
    assert!(reason.contains("x float32 [batch, time, 8]"), "{reason}");
    assert_eq!(report.outcome.exit_code(), 2);

    let mut req = request(fixture("dynamic.onnx"));
    req.shapes.insert("x".into(), vec![1, 5, 9]);
    let report = verify(&req);
    assert!(
        matches!(&report.outcome, Outcome::Failed { stage: Stage::Request, reason, .. } if reason.contains("fixed to 8")),
        "{}",
        report.render_text()
    );
}

#[test]
fn scalar_input_needs_a_value_and_the_report_says_which() {
    let report = verify(&request(fixture("scalar.onnx")));
    let (stage, reason, hint) = common::failure(&report);
    assert_eq!(stage, Stage::Input);
    assert!(
        reason.contains("rejected the synthesised inputs on the CPU (so not a GPU problem)"),
        "{reason}"
    );
    assert!(
        reason.contains("Reshape"),
        "ONNX Runtime's own words: {reason}"
    );
    let hint = hint.unwrap();
    assert!(hint.contains("--value sr=<value>"), "{hint}");

    let mut req = request(fixture("scalar.onnx"));
    req.values.insert("sr".into(), 16000.0);
    let report = verify(&req);
    assert!(
        matches!(report.outcome, Outcome::CpuOnly { .. }),
        "{}",
        report.render_text()
    );
    assert_eq!(report.models[0].inputs[1].value, Some(16000.0));
    assert_eq!(report.models[0].inputs[1].data, "value");
}

#[test]
fn a_model_rejecting_one_sample_is_an_input_problem_with_the_shape_fix() {
    let report = verify(&request(fixture("rejects.onnx")));
    let (stage, reason, hint) = common::failure(&report);
    assert_eq!(stage, Stage::Input, "never the GPU's fault");
    assert!(reason.contains("Conv"), "{reason}");
    let hint = hint.unwrap();
    assert!(
        hint.contains("--shape audio=<batch>x<samples>"),
        "the hint names the option and the input: {hint}"
    );
    assert_eq!(report.outcome.exit_code(), 2);

    let mut req = request(fixture("rejects.onnx"));
    req.shapes.insert("audio".into(), vec![1, 16000]);
    let report = verify(&req);
    assert!(
        matches!(report.outcome, Outcome::CpuOnly { .. }),
        "{}",
        report.render_text()
    );
}

#[test]
fn a_directory_is_a_model_set() {
    let report = verify(&request(ModelSource::Dir(
        common::fixtures().join("speech"),
    )));
    assert!(
        matches!(report.outcome, Outcome::CpuOnly { .. }),
        "{}",
        report.render_text()
    );
    let names: Vec<_> = report
        .models
        .iter()
        .map(|m| m.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["decoder.onnx", "encoder.onnx", "joiner.onnx"]);
    assert_eq!(report.models[0].inputs[0].dtype, "int64");

    // A --shape for the encoder only is fine in a set.
    let mut req = request(ModelSource::Dir(common::fixtures().join("speech")));
    req.shapes.insert("T".into(), vec![50]);
    let report = verify(&req);
    assert!(
        matches!(report.outcome, Outcome::CpuOnly { .. }),
        "{}",
        report.render_text()
    );
    assert_eq!(report.models[1].inputs[0].shape, vec![1, 50, 16]);
}

#[test]
fn missing_models_are_request_errors() {
    let report = verify(&request(ModelSource::Files(vec![
        "/nonexistent/model.onnx".into(),
    ])));
    assert!(
        matches!(
            report.outcome,
            Outcome::Failed {
                stage: Stage::Request,
                ..
            }
        ),
        "{}",
        report.render_text()
    );
    let empty = tempfile::tempdir().unwrap();
    let report = verify(&request(ModelSource::Dir(empty.path().to_path_buf())));
    assert!(
        matches!(&report.outcome, Outcome::Failed { stage: Stage::Request, reason, .. } if reason.contains("no *.onnx")),
        "{}",
        report.render_text()
    );
}

#[test]
fn a_file_that_is_not_a_model_fails_at_the_model_stage() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.onnx");
    std::fs::write(&bogus, b"not a protobuf at all").unwrap();
    let report = verify(&request(ModelSource::Files(vec![bogus])));
    assert!(
        matches!(
            report.outcome,
            Outcome::Failed {
                stage: Stage::Model,
                ..
            }
        ),
        "{}",
        report.render_text()
    );
}

#[test]
fn the_cpu_build_has_no_cuda_provider_so_a_gpu_request_fails_before_loading() {
    let mut req = request(ModelSource::Probe);
    req.device = Device::Cuda(0);
    let report = verify(&req);
    let (stage, reason, hint) = common::failure(&report);
    assert_eq!(stage, Stage::Preflight);
    assert!(reason.contains("CPU-only ONNX Runtime"), "{reason}");
    assert!(hint.unwrap().contains("--device cpu"));
    assert!(report.models.is_empty());
}

#[test]
fn auto_without_a_gpu_runs_on_the_cpu_and_says_why() {
    // This machine has no NVIDIA GPU; point NVML at nothing so the test means the same on a
    // developer's GPU machine... except that `detect` would still find nvidia-smi there, so
    // only assert when detection indeed finds none.
    let detection = gpulibs_detect::detect(&gpulibs_detect::DetectOptions::from_env());
    if detection.usable_gpus().next().is_some() {
        return;
    }
    let mut req = request(ModelSource::Probe);
    req.device = Device::Auto;
    let report = verify(&req);
    let Outcome::CpuOnly { reason } = &report.outcome else {
        panic!("{}", report.render_text())
    };
    assert!(reason.starts_with("no usable GPU was detected"), "{reason}");
    assert!(!report.device.detection_problems.is_empty());
}

#[test]
fn recommend_verifies_for_real_and_records_the_winner() {
    // A catalog of the speech fixture set: a "large" GPU entry (no GPU here) and a CPU one.
    let root = common::fixtures();
    let catalog = parse_catalog(
        r#"
schema_version = 1

[[model]]
name = "speech-gpu"
quality_rank = 1
device = "gpu"
vram_mib = 100
ram_mib = 10
files = ["speech/encoder.onnx", "speech/decoder.onnx", "speech/joiner.onnx"]

[[model]]
name = "speech-cpu"
quality_rank = 2
device = "cpu"
vram_mib = 0
ram_mib = 10
files = ["speech/encoder.onnx", "speech/decoder.onnx", "speech/joiner.onnx"]
"#,
        &root,
    )
    .unwrap();
    let template = request(ModelSource::Probe);
    let r = recommend(&catalog, None, 8 << 30, |m| {
        verify(&m.verify_request(&catalog.root, &template))
    });
    let w = r.winner.as_ref().expect("the CPU entry verifies");
    assert_eq!(w.model, "speech-cpu");
    assert!(matches!(w.report.outcome, Outcome::CpuOnly { .. }));
    assert_eq!(w.report.models.len(), 3);
    assert_eq!(r.losses[0].model, "speech-gpu");
    assert!(matches!(r.losses[0].reason, LossReason::NoGpu));
    // A CPU-only report is no VRAM measurement.
    let mut m = Measurements::default();
    assert!(!m.record(&catalog, &catalog.models[1], &w.report));
}
