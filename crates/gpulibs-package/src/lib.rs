//! Packaging, on the vendor side.
//!
//! Owns: collecting libraries from build output, wheels or tarballs, checking their closure,
//! measuring coverage with `gpulibs-inspect`, thinning fatbins per GPU architecture, and writing
//! zstd archives and the signed manifest.
//!
//! Must not touch: a user's install root or GPU; it runs on the vendor's machine.
//!
//! Status: named in the workspace; the implementation arrives with the package issue.
