//! GPU against CPU: the relative error and the thresholds, pure.
//!
//! For each output element `e = |gpu - cpu| / max(|cpu|, floor)`, with
//! `floor = max(0.1 * max|cpu over the output|, 1e-6)`: elements smaller than a tenth of the
//! output's largest magnitude are judged against that tenth rather than their own size. A
//! threshold `t` is then `numpy.allclose(gpu, cpu, rtol=t, atol=0.1 * t * max|cpu|)`. Without
//! the floor, a near-zero element after a cancelling sum fails on noise: on the H100 a
//! 16-term TF32 MatMul followed by Tanh gave 1.5e-4 absolute error on a 1e-3 element (0.15
//! relative) in an output of scale 1. The output's error is the largest `e`; NaN on one side
//! only, or different shapes, make it infinite. Two NaNs, or equal infinities, agree.
//!
//! Thresholds by element type ([`threshold_for`]):
//! - `float32`: 1e-3. The CUDA session runs with TF32 off (`use_tf32=0`), so the GPU computes
//!   in full FP32 like the CPU; what remains is summation order and cuDNN's algorithm choice
//!   (~1e-6). With TF32 on (ONNX Runtime's default on Ampere and newer) the H100 was 7e-3 off on
//!   a 16-term MatMul, which says nothing about the kernels being right. A missing or wrong
//!   kernel is off by O(1).
//! - `float64`: 1e-6. `float16`: 1e-2. `bfloat16`: 4e-2 (8-bit mantissa).
//! - integers and booleans: exact (threshold 0).

use crate::synth::ElementType;

/// The tensor-relative floor of the denominator.
pub const SCALE_FLOOR: f64 = 0.1;
/// The absolute floor of the denominator.
pub const ABS_FLOOR: f64 = 1e-6;

/// The largest relative error allowed for outputs of `dtype`; `None` for types not compared.
pub fn threshold_for(dtype: ElementType) -> Option<f64> {
    match dtype {
        ElementType::Float32 => Some(1e-3),
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
        // A tiny element is measured against a tenth of the tensor's scale, not itself.
        let e = max_rel_error(&[100.0, 2e-5], &[100.0, 1e-5]);
        assert!((e - 1e-5 / 10.0).abs() < 1e-15, "{e}");
        // The H100 case: 1.5e-4 off on a 1e-3 element of a tensor of scale 1.
        let e = max_rel_error(&[1.0, 1.15e-3], &[1.0, 1e-3]);
        assert!((e - 1.5e-3).abs() < 1e-9, "{e}");
        // Garbage still fails by orders of magnitude.
        assert!(max_rel_error(&[0.3, -0.2], &[1.0, 0.5]) > 0.5);
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
        assert_eq!(threshold_for(ElementType::Float32), Some(1e-3));
        assert_eq!(threshold_for(ElementType::Int64), Some(0.0));
        assert_eq!(threshold_for(ElementType::Bool), Some(0.0));
        assert_eq!(threshold_for(ElementType::Unsupported), None);
    }
}
