//! Packaging, on the vendor side.
//!
//! Owns: collecting libraries from build output, wheels or tarballs, checking their closure,
//! measuring coverage with `gpulibs-inspect`, thinning fatbins per GPU architecture, and writing
//! zstd archives and the signed manifest.
//!
//! Must not touch: a user's install root or GPU; it runs on the vendor's machine.
//!
//! Layout:
//! - [`thin`]: per-architecture thinning of fatbin containers in place ([`thin::thin`] over
//!   bytes, [`thin::thin_file`] from one file to a new one), re-inspected after the fact.

pub mod thin;

pub use thin::{
    containers_with_sections, thin, thin_file, ContainerOutcome, ContainerThin, EntryRecord,
    ThinError, ThinReport,
};
