//! The table of explanations for missing libraries.

use gpulibs_inspect::deps::{missing_library_hint, missing_library_message};

#[test]
fn cuda_major_follows_the_soname_where_that_is_the_rule() {
    let table = [
        (
            "libcublasLt.so.13",
            "the CUDA 13 cuBLAS (pip: nvidia-cublas 13.x; or the CUDA 13 toolkit)",
        ),
        (
            "libcublas.so.13",
            "the CUDA 13 cuBLAS (pip: nvidia-cublas 13.x; or the CUDA 13 toolkit)",
        ),
        (
            "libcublas.so.12",
            "the CUDA 12 cuBLAS (pip: nvidia-cublas-cu12; or the CUDA 12 toolkit)",
        ),
        (
            "libcublasLt.so.11",
            "the CUDA 11 cuBLAS (pip: nvidia-cublas-cu11; or the CUDA 11 toolkit)",
        ),
        (
            "libcudart.so.12",
            "the CUDA 12 runtime (pip: nvidia-cuda-runtime-cu12; or the CUDA 12 toolkit)",
        ),
        (
            "libcudart.so.13",
            "the CUDA 13 runtime (pip: nvidia-cuda-runtime 13.x; or the CUDA 13 toolkit)",
        ),
        (
            "libnvrtc.so.12",
            "the CUDA 12 NVRTC (pip: nvidia-cuda-nvrtc-cu12; or the CUDA 12 toolkit)",
        ),
        (
            "libnvrtc.so.13",
            "the CUDA 13 NVRTC (pip: nvidia-cuda-nvrtc 13.x; or the CUDA 13 toolkit)",
        ),
        (
            "libnvrtc-builtins.so.13.0",
            "the CUDA 13 NVRTC (pip: nvidia-cuda-nvrtc 13.x; or the CUDA 13 toolkit)",
        ),
        (
            "libnvJitLink.so.12",
            "the CUDA 12 nvJitLink (pip: nvidia-nvjitlink-cu12; or the CUDA 12 toolkit)",
        ),
        (
            "libcublas.so.14",
            "the CUDA 14 cuBLAS (the CUDA 14 toolkit)",
        ),
    ];
    for (name, hint) in table {
        assert_eq!(missing_library_hint(name).as_deref(), Some(hint), "{name}");
    }
}

#[test]
fn cufft_is_one_major_behind_cuda_and_curand_is_shared() {
    let table = [
        (
            "libcufft.so.10",
            "the CUDA 11 cuFFT (pip: nvidia-cufft-cu11; or the CUDA 11 toolkit)",
        ),
        (
            "libcufft.so.11",
            "the CUDA 12 cuFFT (pip: nvidia-cufft-cu12; or the CUDA 12 toolkit)",
        ),
        (
            "libcufft.so.12",
            "the CUDA 13 cuFFT (pip: nvidia-cufft 12.x; or the CUDA 13 toolkit)",
        ),
        (
            "libcufftw.so.11",
            "the CUDA 12 cuFFT (pip: nvidia-cufft-cu12; or the CUDA 12 toolkit)",
        ),
    ];
    for (name, hint) in table {
        assert_eq!(missing_library_hint(name).as_deref(), Some(hint), "{name}");
    }
    let curand = missing_library_hint("libcurand.so.10").unwrap();
    assert!(
        curand.starts_with("cuRAND 10, which CUDA 11, 12 and 13 all ship"),
        "{curand}"
    );
}

#[test]
fn cudnn_tensorrt_driver_and_onnxruntime() {
    let cudnn9 = "cuDNN 9 (pip: nvidia-cudnn-cu12 for CUDA 12, nvidia-cudnn-cu13 for CUDA 13)";
    for name in [
        "libcudnn.so.9",
        "libcudnn_graph.so.9",
        "libcudnn_engines_precompiled.so.9.14.0",
    ] {
        assert_eq!(
            missing_library_hint(name).as_deref(),
            Some(cudnn9),
            "{name}"
        );
    }
    assert!(missing_library_hint("libcudnn.so.8")
        .unwrap()
        .starts_with("cuDNN 8"));
    assert!(missing_library_hint("libcudnn.so")
        .unwrap()
        .starts_with("cuDNN (an unversioned"));
    assert_eq!(
        missing_library_hint("libnvinfer.so.10").as_deref(),
        Some("TensorRT 10")
    );
    assert_eq!(
        missing_library_hint("libnvinfer_plugin.so.10").as_deref(),
        Some("TensorRT 10")
    );
    assert_eq!(
        missing_library_hint("libcuda.so.1").as_deref(),
        Some(
            "the NVIDIA driver (libcuda.so.1 comes with the driver, not with CUDA toolkits; install \
             the NVIDIA driver or, in a container, the NVIDIA container toolkit)"
        )
    );
    assert!(missing_library_hint("libnvidia-ml.so.1")
        .unwrap()
        .starts_with("the NVIDIA driver (libnvidia-ml.so.1"));
    assert!(missing_library_hint("libonnxruntime.so.1")
        .unwrap()
        .starts_with("the ONNX Runtime library"));
    assert!(missing_library_hint("libonnxruntime_providers_shared.so")
        .unwrap()
        .starts_with("ONNX Runtime's provider bridge"));
    assert!(missing_library_hint("libonnxruntime_providers_cuda.so")
        .unwrap()
        .starts_with("an ONNX Runtime execution provider"));
    // A path is judged by its file name.
    assert_eq!(
        missing_library_hint("/usr/local/cuda/lib64/libcudart.so.12"),
        missing_library_hint("libcudart.so.12")
    );
}

#[test]
fn unknown_libraries_have_no_hint() {
    for name in [
        "libz.so.1",
        "libcublasXt.so.12",
        "libcudart",
        "libfoo.so.x",
        "",
        "libcublas.so.bad",
    ] {
        assert_eq!(missing_library_hint(name), None, "{name}");
    }
}

#[test]
fn messages_use_the_agreed_format() {
    assert!(missing_library_message("libcublasLt.so.13")
        .starts_with("libcublasLt.so.13 not found: this library needs the CUDA 13 cuBLAS"));
    assert_eq!(missing_library_message("libz.so.1"), "libz.so.1 not found");
}
