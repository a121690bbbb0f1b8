//! Dynamic dependencies of an ELF library, resolved the way the dynamic loader would.
//!
//! Owns:
//! - reading an ELF file's dynamic section from bytes ([`dynamic_info`]): `DT_SONAME`,
//!   `DT_NEEDED`, `DT_RPATH`, `DT_RUNPATH`, class, byte order and machine, for 32- and 64-bit,
//!   little- and big-endian files;
//! - finding the library names a file loads at run time by name ([`runtime_library_names`]):
//!   NUL-terminated strings in `.rodata` and, on x86-64, names the compiler built in code from
//!   immediate stores (ONNX Runtime 1.31 builds `libcudnn.so.9` and `libcufft.so.12` that way);
//! - parsing `/etc/ld.so.cache` ([`LdCache`]);
//! - the search glibc's `ld.so` does for each name (`$ORIGIN`-expanded `DT_RPATH`,
//!   `LD_LIBRARY_PATH`, `DT_RUNPATH`, the cache, the default directories), skipping candidates of
//!   the wrong class or machine as `ld.so` does, one level ([`resolve`]) or the whole closure
//!   ([`resolve_closure`], breadth-first like the loader, each name once);
//! - the explanation for a missing library ([`missing_library_hint`]): which CUDA, cuDNN, driver
//!   or ONNX Runtime component provides it.
//!
//! Must not touch: anything but reading bytes and opening files to read their first bytes. It
//! never `dlopen`s, executes or writes what it inspects, and it never runs `ldconfig`.
//!
//! What is modelled and what is not (glibc 2.3x, non-secure mode):
//! - `DT_RPATH` is used only when the object has no `DT_RUNPATH`. Like `ld.so`, the search walks
//!   the `DT_RPATH`s of the chain of objects that caused the load (the requesting object, its
//!   loader, ... up to the inspected file), each expanded with its own `$ORIGIN`. The *executable*
//!   that will load the inspected library is unknown here, so its `DT_RPATH` is not searched
//!   (unless the inspected file is that executable).
//! - `$ORIGIN` is the directory of the object's path as given (made absolute, symlinks not
//!   resolved). `LD_LIBRARY_PATH` entries that use `$ORIGIN` refer to the unknown executable and
//!   are skipped. Empty path entries mean the current directory, as in glibc.
//! - Cache entries are matched on the flags `ld.so` accepts for the object's class and machine;
//!   the baseline entry is preferred over `glibc-hwcaps` variants.
//! - `DF_1_NODEFLIB`, `LD_PRELOAD`, audit modules and secure mode are not modelled.
//! - A run-time name is searched as `dlopen` from the inspected file would: its `DT_RPATH` (when no
//!   `DT_RUNPATH`), `LD_LIBRARY_PATH`, its `DT_RUNPATH`, the cache, the default directories. If the
//!   program hands the name to another library's loader (cuDNN's, say), that library's paths apply
//!   instead; the result is the usual case, not a proof.

mod elf;
mod hints;
mod ldcache;
mod runtime_names;
mod search;

use std::path::PathBuf;

pub use elf::{dynamic_info, dynamic_section, ByteOrder, DynamicInfo, ElfClass, ElfIdentity};
pub use hints::{missing_library_hint, missing_library_message};
pub use ldcache::{LdCache, LdCacheEntry, LdCacheError};
pub use runtime_names::{is_library_name, runtime_library_names, RuntimeName, RuntimeNameSource};
pub use search::{
    inspect_file, resolve, resolve_closure, resolve_with, Dependency, DependencyKind,
    DependencyReport, DependencyStatus, FileProbe, FoundVia, Limits, RealFileSystem, SearchContext,
    SkipReason, SkippedCandidate,
};

/// Why the bytes of an ELF file could not be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes do not start with the ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// The file is shorter than a structure it declares.
    #[error("truncated ELF file: {0}")]
    Truncated(String),
    /// A header or table holds values that cannot be right.
    #[error("malformed ELF file: {0}")]
    Malformed(String),
}

/// Errors of the dependency inspection, each naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    /// The file could not be opened or mapped.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a readable ELF file.
    #[error("cannot inspect {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ParseError,
    },
    /// The loader cache could not be parsed.
    #[error("cannot read the loader cache {}", path.display())]
    LdCache {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: LdCacheError,
    },
}
