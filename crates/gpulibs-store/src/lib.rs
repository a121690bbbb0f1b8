//! The install root.
//!
//! Owns: the on-disk layout under the XDG data directory (`$XDG_DATA_HOME/<app>/gpu-libs`), the
//! content-addressed component store, safe unpacking, atomic activation by renaming `current`,
//! the install lock, metadata records, rollback, garbage collection and removal.
//!
//! Must not touch: the network (bytes arrive from `gpulibs-fetch`) or anything outside the
//! install root.
//!
//! Status: named in the workspace; the implementation arrives with the install issue.
