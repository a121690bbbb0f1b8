//! A driver in the plan's reasons and warnings is data (`{"version", "cuda"}`), and reads as
//! English both after "you have" (Display) and after "runs on" (`noun`).

use gpulibs_plan::{DriverRef, DriverVersion};

fn driver(version: Option<&str>, cuda: Option<&str>) -> DriverRef {
    DriverRef {
        version: version.map(|v| v.parse::<DriverVersion>().unwrap()),
        cuda: cuda.map(|c| c.parse().unwrap()),
    }
}

#[test]
fn only_the_cuda_version_known() {
    let d = driver(None, Some("12.2"));
    assert_eq!(d.to_string(), "a driver that runs CUDA 12.2");
    assert_eq!(d.noun(), "a driver that runs CUDA 12.2");
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        serde_json::json!({ "version": null, "cuda": "12.2" })
    );
}

#[test]
fn the_version_known() {
    let d = driver(Some("535.104.05"), Some("12.2"));
    assert_eq!(d.to_string(), "535.104.05");
    assert_eq!(d.noun(), "driver 535.104.05");
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        serde_json::json!({ "version": "535.104.05", "cuda": "12.2" })
    );
}

#[test]
fn nothing_known() {
    let d = driver(None, None);
    assert_eq!(d.to_string(), "an unknown driver");
    assert_eq!(d.noun(), "an unknown driver");
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        serde_json::json!({ "version": null, "cuda": null })
    );
}
