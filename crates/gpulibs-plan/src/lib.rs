//! Release manifests and planning.
//!
//! Owns: the versioned release manifest an app vendor publishes (components, variants, kernel
//! coverage, driver and CUDA requirements), its validation and signature check, and the pure
//! planning function from (detected host, manifest, policy) to a plan with a reason for every
//! rejected candidate.
//!
//! Must not touch: the network, the file system beyond reading a manifest it is handed, or
//! compatibility rules of its own — kernel and driver rules are `gpulibs-inspect`'s and are
//! called, never copied.
//!
//! Status: named in the workspace; the manifest and planner arrive with the planning issue.
