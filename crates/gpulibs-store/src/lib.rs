//! The install root.
//!
//! Owns: the on-disk layout under the XDG data directory (`$XDG_DATA_HOME/<app>/gpu-libs`, or
//! `GPULIBS_HOME`), the content-addressed component store shared by every app root of a user
//! (`$XDG_DATA_HOME/gpulibs/store`, or `GPULIBS_STORE`; see [`store_home`]) with its registry
//! of roots, leases and locks, safe unpacking of tar streams and
//! wheels, atomic activation by renaming `current`, the install lock, the install records,
//! rollback, garbage collection and removal; what an app needs to load the active install
//! (`gpulibs env` formats and [`activate`]); and whether the active install still fits this GPU
//! and driver ([`status()`], which asks `gpulibs-inspect` for the kernel rules).
//!
//! Must not touch: the network (bytes arrive from `gpulibs-fetch` as a `Read` or a verified
//! file), planning decisions (`gpulibs-plan` says which components), or anything outside the
//! install root and the store's home — with one opt-in exception: the seed-compatible receipt
//! `$XDG_CONFIG_HOME/<app>/gpu-package-info.json`, written only by
//! [`InstallLock::write_seed_info`] and deleted by `remove` only if unchanged since. Libraries
//! an install reuses from the machine ([`InstallSpec::system_libraries`]) are read (hashed when
//! the install is built, `stat`ed by [`Store::check_install`]) and symlinked to from the
//! install's `lib/`; they are never written, copied, or removed.
//!
//! The root itself is a flat view of the active install (`<root>/<name> -> current/lib/<name>`,
//! `<root>/libonnxruntime.so` always), what the seed's consumers put on `LD_LIBRARY_PATH`;
//! [`view_env`] and [`activate`] name only those stable paths. The contract for consumers is
//! `docs/layout.md`; [`Store::open_adopting_seed`] takes over the seed's flat directory.
//!
//! Layout, invariants and the crash-safety argument: `docs/store.md`.
//!
//! # API
//!
//! ```no_run
//! use gpulibs_store::*;
//! /// Stores one verified archive (its sha256 is `sha`) and makes `spec` the active install.
//! fn install_one(sha: &str, archive: std::fs::File, spec: &InstallSpec) -> Result<(), StoreError> {
//! let store = Store::open_app("myapp")?;
//! let lock = store.lock(|pid| eprintln!("waiting for another gpulibs install (pid {pid:?})"))?;
//! if !store.has_component(sha) {
//!     let mut stager = lock.stage_component(sha, UnpackLimits::unpacked(3 << 30))?;
//!     stager.unpack_tar(archive, ArchiveFormat::TarZstd)?;
//!     stager.commit()?;
//! }
//! let record = lock.new_install(spec)?;
//! lock.activate(&record.id)?;
//! print!("{}", view_env(&store, &record).render(EnvFormat::Sh));
//! Ok(())
//! }
//! ```
//!
//! Reading (`current`, [`activate`], [`Store::installs`]) takes no lock: every change a reader
//! can observe is a single `rename(2)`.

mod adopt;
mod env;
mod error;
mod fsx;
mod owner;
mod record;
mod reuse;
mod shared;
mod status;
mod store;
pub mod unpack;
mod view;

pub use adopt::{Adopted, SEED_COMPONENT, SEED_ORIGIN};
pub use env::{
    activate, activate_at, env_for, preload_order, sh_quote, systemd_quote, view_env, Activation,
    Env, EnvFormat,
};
pub use error::{Result, StoreError, UnpackError};
pub use fsx::{available_space, fs_free, FsFree};
pub use owner::{RootMarker, ROOT_FORMAT, ROOT_MARKER};
pub use record::{
    architectures, rfc3339_utc, ComponentRecord, ComponentSpec, DeclaredFile, DeclaredLink,
    DriverRecord, GpuRecord, InstallRecord, InstallSpec, ReusedLink, SeedPackageInfo,
    SystemLibraryRecord, SystemLibrarySpec, VerificationRecord, VerificationState,
    RECORD_SCHEMA_VERSION,
};
pub use shared::{FetchLock, Lease, STORE_ENV};
pub use status::{status, GpuFit, HostGpu, HostSummary, Status};
pub use store::{
    check_app_name, install_root, is_library_name, seed_info_path, store_home, ArchiveCheck,
    FaultPoint, GcReport, InstallLock, RemoveReport, RootEnv, Stager, StepHook, Store,
    StoredComponent, ZipListedMembers, ZipStream, DEFAULT_APP, HOME_ENV,
};
pub use unpack::{
    unpack_tar, unpack_wheel, wheel_library_member, ArchiveFormat, EntryKind, UnpackLimits,
    UnpackReport, UnpackedEntry, ZipListedMember,
};
pub use view::ORT_UNVERSIONED;
