//! Sources of components other than a vendor's manifest.
//!
//! Owns: finding compatible CUDA libraries already installed on this machine (CUDA toolkit
//! directories, the ldconfig cache, conda environments, Python environments' `nvidia/*/lib`
//! folders), checked by SONAME and version before they are trusted; and resolving the official
//! `onnxruntime` / `onnxruntime-gpu` and `nvidia-*` wheels through `pip` (which knows the user's
//! index, mirrors and credentials), together with the measured kernel coverage of official
//! ONNX Runtime releases shipped as data.
//!
//! Must not touch: planning decisions (it reports what exists; `gpulibs-plan` chooses), the
//! install root, or downloads of artifact bytes (`gpulibs-fetch`).
