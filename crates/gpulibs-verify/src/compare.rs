//! GPU against CPU: the relative error and the thresholds, pure.
//!
//! For each output element `e = |gpu - cpu| / max(|cpu|, floor)`, with
//! `floor = max(1e-3 * max|cpu over the output|, 1e-6)`: elements that are tiny next to the rest
//! of the tensor (where a relative error says nothing) are compared against a thousandth of the
//! tensor's scale instead of their own size. The output's error is the largest `e`; NaN on one
//! side only, or different shapes, make it infinite. Two NaNs, or equal infinities, agree.
//!
//! Thresholds by element type ([`threshold_for`]):
//! - `float32`: 1e-2. ONNX Runtime's CUDA provider uses TF32 (a 10-bit mantissa) for
//!   convolutions and matrix products on Ampere and newer by default, as the app's own sessions
//!   will; that moves results by ~1e-3 relative. A missing or wrong kernel is off by O(1).
//! - `float64`: 1e-6. `float16`: 1e-2. `bfloat16`: 4e-2 (8-bit mantissa).
//! - integers and booleans: exact (threshold 0).

use crate::synth::ElementType;

/// The tensor-relative floor of the denominator.
pub const SCALE_FLOOR: f64 = 1e-3;
/// The absolute floor of the denominator.
pub const ABS_FLOOR: f64 = 1e-6;

/// The largest relative error allowed for outputs of `dtype`; `None` for types not compared.
pub fn threshold_for(dtype: ElementType) -> Option<f64> {
    match dtype {
        ElementType::Float32 => Some(1e-2),
        ElementType::Float64 => Some(1e-6),
        ElementType::Float16 => Some(1e-2),
        ElementType::Bfloat16 => Some(4e-2),
        ElementType::Unsupported => None,
        _ => Some(0.0),
    }
}

/// The maximum relative error of `gpu` against the reference `cpu` (see the module doc).
pub fn max_rel_error(gpu: &[f64], cpu: &[f64]) -> f64 {
    if gpu.len() != cpu.len() {
        return f64::INFINITY;
    }
    let scale = cpu
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let floor = (SCALE_FLOOR * scale).max(ABS_FLOOR);
    let mut worst = 0.0f64;
    for (&a, &b) in gpu.iter().zip(cpu) {
        let e = if a.is_nan() || b.is_nan() {
            if a.is_nan() && b.is_nan() {
                0.0
            } else {
                f64::INFINITY
            }
        } else if a == b {
            0.0 // equal infinities too
        } else {
            (a - b).abs() / b.abs().max(floor)
        };
        worst = worst.max(e);
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors() {
        assert_eq!(max_rel_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((max_rel_error(&[1.001, 2.0], &[1.0, 2.0]) - 1e-3).abs() < 1e-9);
        // A tiny element is measured against the tensor's scale, not itself.
        let e = max_rel_error(&[100.0, 2e-5], &[100.0, 1e-5]);
        assert!((e - 1e-5 / 0.1).abs() < 1e-12, "{e}");
        // All zeros: the absolute floor.
        assert!((max_rel_error(&[1e-7], &[0.0]) - 0.1).abs() < 1e-12);
        assert_eq!(max_rel_error(&[f64::NAN], &[f64::NAN]), 0.0);
        assert_eq!(max_rel_error(&[f64::NAN], &[1.0]), f64::INFINITY);
        assert_eq!(max_rel_error(&[1.0], &[f64::NAN]), f64::INFINITY);
        assert_eq!(max_rel_error(&[f64::INFINITY], &[f64::INFINITY]), 0.0);
        assert_eq!(max_rel_error(&[1.0], &[1.0, 2.0]), f64::INFINITY);
        // Integers: any difference fails the exact threshold.
        assert!(max_rel_error(&[3.0], &[4.0]) > threshold_for(ElementType::Int64).unwrap());
    }

    #[test]
    fn thresholds() {
        assert_eq!(threshold_for(ElementType::Float32), Some(1e-2));
        assert_eq!(threshold_for(ElementType::Int64), Some(0.0));
        assert_eq!(threshold_for(ElementType::Bool), Some(0.0));
        assert_eq!(threshold_for(ElementType::Unsupported), None);
    }
}
