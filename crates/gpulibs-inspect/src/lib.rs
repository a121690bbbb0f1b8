//! Inspection of CUDA binaries.
//!
//! Owns: finding every fatbin container in an ELF file (in `.nv_fatbin`, `__nv_relfatbin` and
//! embedded in other sections), summarising its SASS and PTX entries, the compatibility rules
//! that decide which entry the driver would load on a GPU (and whether the driver understands
//! that PTX), the per-library verdict (`native`, `jit`, `no kernel image`), and the dynamic
//! dependencies of a library resolved the way the loader would.
//!
//! These rules are the single source of truth: plan, install, verify and package call them.
//!
//! Must not touch: the network, the install root, or loading the libraries it reads (it parses
//! bytes; it never `dlopen`s what it inspects).

pub mod deps;
