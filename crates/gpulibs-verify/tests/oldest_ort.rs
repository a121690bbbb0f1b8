//! ONNX Runtime 1.20, the oldest release verify supports, loads and runs the probe model and a
//! model set on the CPU.

mod common;

use std::collections::HashMap;

use gpulibs_verify::*;

#[test]
fn ort_1_20_runs_the_probe_and_a_model_set() {
    let mut req = VerifyRequest {
        ort_library: common::oldest_ort(),
        preload_dirs: Vec::new(),
        models: ModelSource::Probe,
        device: Device::Cpu,
        shapes: HashMap::new(),
        values: HashMap::new(),
        runs: 2,
        max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
    };
    let report = verify(&req);
    assert!(
        matches!(report.outcome, Outcome::CpuOnly { .. }),
        "{}",
        report.render_text()
    );
    assert_eq!(report.ort_version.as_deref(), Some(common::OLDEST_VERSION));
    assert!(report.models[0]
        .nodes_by_provider
        .contains_key("CPUExecutionProvider"));

    req.models = ModelSource::Dir(common::fixtures().join("speech"));
    let report = verify(&req);
    assert!(
        matches!(report.outcome, Outcome::CpuOnly { .. }),
        "{}",
        report.render_text()
    );
    assert_eq!(report.models.len(), 3);
}
