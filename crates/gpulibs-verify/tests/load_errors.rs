//! ONNX Runtime libraries that cannot be used fail at the load stage with the reason; and a
//! process keeps the first ONNX Runtime it loads.

mod common;

use gpulibs_verify::*;

fn cpu(ort: std::path::PathBuf) -> VerifyReport {
    let mut req = VerifyRequest::probe(ort, Device::Cpu);
    req.runs = 1;
    verify(&req)
}

fn load_failure(report: &VerifyReport) -> String {
    match &report.outcome {
        Outcome::Failed {
            stage: Stage::Load,
            reason,
            ..
        } => reason.clone(),
        other => panic!("expected a load failure, got {other:?}"),
    }
}

// One test: the order matters (nothing loaded, then 1.23.2 loaded, then another asked for).
#[test]
fn unusable_libraries_then_one_runtime_per_process() {
    let dir = tempfile::tempdir().unwrap();

    let reason = load_failure(&cpu(dir.path().join("libonnxruntime.so")));
    assert!(reason.contains("No such file"), "{reason}");

    let text = dir.path().join("libonnxruntime.so.1");
    std::fs::write(&text, "not a library").unwrap();
    let reason = load_failure(&cpu(text));
    assert!(reason.contains("not an ELF shared library"), "{reason}");

    // An ELF library that is not ONNX Runtime: the wheel's providers_shared library.
    let good = common::cpu_ort();
    let shared = good
        .parent()
        .unwrap()
        .join("libonnxruntime_providers_shared.so");
    let reason = load_failure(&cpu(shared));
    assert!(reason.contains("does not export OrtGetApiBase"), "{reason}");

    let report = cpu(good.clone());
    assert!(
        matches!(report.outcome, Outcome::CpuOnly { .. }),
        "{}",
        report.render_text()
    );
    // The same library again is fine.
    assert!(matches!(cpu(good.clone()).outcome, Outcome::CpuOnly { .. }));

    let other = common::oldest_ort();
    let reason = load_failure(&cpu(other));
    assert!(
        reason.contains("already loaded in this process"),
        "{reason}"
    );
}
