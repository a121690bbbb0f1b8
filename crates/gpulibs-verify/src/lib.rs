//! Verification.
//!
//! Owns: loading ONNX Runtime at run time from an install, creating a session on the CUDA
//! execution provider with CPU fallback forbidden, running a model on it and on the CPU, and
//! comparing the outputs, timings and VRAM.
//!
//! Must not touch: fatbinaries or ELF parsing (it asks `gpulibs-inspect`), or the install layout
//! beyond reading what `gpulibs-store` reports as active.
//!
//! Status: named in the workspace; the implementation arrives with the verify issue.
