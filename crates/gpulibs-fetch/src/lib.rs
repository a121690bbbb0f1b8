//! Downloads.
//!
//! Owns: getting the bytes of an artifact from a URL or an offline directory into a sink, in one
//! pass: resumable (HTTP Range into a `.partial` file), retried with backoff, mirrors in order,
//! proxies and custom CA bundles honoured, and hashed with sha256 while streaming.
//!
//! Must not touch: the install layout or activation (that is `gpulibs-store`), or decide what to
//! download (that is `gpulibs-plan`).
//!
//! Status: named in the workspace; the implementation arrives with the install issue.
