//! The install transaction, as named phases:
//!
//! 1. [`check_request`]: the manifest's rules and the order the candidates are tried in, before
//!    anything is opened;
//! 2. [`open_root`], [`take_install_lock`];
//! 3. [`try_in_turn`]: [`install_candidate`] for each candidate until one verifies, which
//!    decides a [`Selection`] from the plan alone (linked from the store, reused from this
//!    machine), returns early when it is [`up_to_date`], else leases its components, takes the
//!    store's download lock ([`take_fetch_lock`]), reads a [`FetchPlan`] (what is stored, what
//!    to fetch), then [`resolve_wheels`] → [`fetch_missing`] (fetch + stage in one pass) →
//!    [`build_generation`] → [`verify_generation`] → [`activate`] → the seed receipt.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gpulibs_fetch::{Artifact, FetchOptions, Fetched, Fetcher, PipeReader, PipeSink, Progress};
use gpulibs_inspect::KernelEntry;
use gpulibs_plan::{
    ArchiveFormat as ManifestFormat, ChosenVariant, Component, ComponentKind, Manifest, NeedSource,
    Outcome, Plan, Source, Why,
};
use gpulibs_sources::{resolve_components, PipResolver, WheelTarget, PIP_URL_SCHEME};
use gpulibs_store::{
    env_for, is_library_name, view_env, wheel_library_member, ArchiveCheck, ArchiveFormat,
    ComponentSpec, DeclaredFile, DeclaredLink, DriverRecord, Env, FetchLock, GpuRecord,
    InstallLock, InstallRecord, InstallSpec, StepHook, Store, StoreError, StoredComponent,
    SystemLibrarySpec, UnpackError, UnpackLimits, VerificationRecord, VerificationState,
    ZipListedMember, ZipListedMembers,
};
use serde::Serialize;

use crate::attempts::{self, Attempt, AttemptResult, WhyCpu};
use crate::error::{ComponentError, InstallError};

/// Directory under the store's home (`gpulibs_store::store_home`; the root itself for a
/// self-contained root) where downloads in progress (`<sha256>.partial`) live, so an
/// interrupted run, of this app or another, resumes. Emptied after every successful fetch.
pub const DOWNLOADS_DIR: &str = "downloads";

/// Runs the installed libraries before they are activated. The CLI adapts `gpulibs-verify` to
/// it; tests use fakes.
pub trait Verifier: Sync {
    /// Loads the install described by `env` (its own `installs/<id>/lib`, not yet `current`)
    /// and says whether it works. `env.lib_dirs` is the install's `lib/` followed by the
    /// directories of the libraries reused from this machine, and `env.preload` lists both in
    /// load order: search and preload in that order.
    fn verify(&self, record: &InstallRecord, env: &Env) -> Verdict;
}

/// What a [`Verifier`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub passed: bool,
    /// One line: `verified on the GPU: …`, or why not.
    pub summary: String,
    /// The verifier's own report, for `--json`.
    pub details: serde_json::Value,
}

/// Everything an install needs. Build it with [`InstallRequest::new`] and adjust the fields.
pub struct InstallRequest<'a> {
    /// The manifest the plan was made from (PyPI components may still carry `pip:` URLs).
    pub manifest: &'a Manifest,
    /// The plan; its chosen variant is installed.
    pub plan: &'a Plan,
    /// The install root (`gpulibs_store::install_root`).
    pub root: PathBuf,
    /// The home of the component store shared with other apps (`gpulibs_store::store_home`):
    /// components in `<it>/store`, partial downloads in `<it>/downloads`. `None`: the root
    /// keeps its own (`<root>/store`, `<root>/downloads`).
    pub store_home: Option<PathBuf>,
    /// The app name recorded in the install.
    pub app: String,
    /// Install from this directory instead of the network.
    pub offline_dir: Option<PathBuf>,
    /// Artifacts fetched at the same time.
    pub jobs: usize,
    /// Wait for another install's lock (`true`) or fail at once naming its pid.
    pub wait_for_lock: bool,
    /// Network settings, retries and timeouts; `partial_dir`, `offline_dir` and
    /// `keep_verified` are set by the install.
    pub fetch: FetchOptions,
    /// Write the seed-compatible receipt here (`gpulibs_store::seed_info_path`).
    pub seed_receipt: Option<PathBuf>,
    /// Resolves `pip:` URLs of the PyPI components that must be downloaded.
    pub pip: &'a dyn PipResolver,
    pub wheel_target: WheelTarget,
    /// `None`: activate without running anything (`--no-verify`).
    pub verifier: Option<&'a dyn Verifier>,
    /// The GPU and driver the install is chosen for, kept in its record.
    pub gpu: Option<GpuRecord>,
    pub driver: Option<DriverRecord>,
    /// Called at each of the store's named steps (crash tests).
    pub step_hook: Option<StepHook>,
    /// The candidates to try, in order, when the plan's choice fails verification
    /// (`gpulibs_plan::candidates`; an entry equal to the plan's choice is skipped). Each
    /// failed candidate's install is deleted; its components stay in the store.
    pub fallbacks: Vec<ChosenVariant>,
    /// Do not run the verifier on a GPU variant, say why (installing with `--gpu` for a GPU
    /// this machine does not have): the install is activated and recorded as not yet verified.
    pub defer_verification: Option<String>,
    /// The app's own models the verifier runs besides the probe, as given: recorded in
    /// `install.json` with the verdict.
    pub verify_models: Vec<String>,
    /// Detection's fix for "no usable GPU" (e.g. the `/dev/nvidia*` permissions), said when
    /// the install ends on the CPU runtime for that reason.
    pub no_gpu_fix: Option<String>,
}

impl<'a> InstallRequest<'a> {
    /// Defaults: 4 parallel downloads, wait for the lock, no receipt, no verifier, default
    /// fetch options (no proxy; the CLI passes `NetworkEnv::from_env()`).
    pub fn new(
        manifest: &'a Manifest,
        plan: &'a Plan,
        root: impl Into<PathBuf>,
        app: impl Into<String>,
        pip: &'a dyn PipResolver,
    ) -> Self {
        let root = root.into();
        let fetch = FetchOptions::new(root.join(DOWNLOADS_DIR));
        InstallRequest {
            manifest,
            plan,
            root,
            store_home: None,
            app: app.into(),
            offline_dir: None,
            jobs: 4,
            wait_for_lock: true,
            fetch,
            seed_receipt: None,
            pip,
            wheel_target: WheelTarget::default(),
            verifier: None,
            gpu: None,
            driver: None,
            step_hook: None,
            fallbacks: Vec::new(),
            defer_verification: None,
            verify_models: Vec::new(),
            no_gpu_fix: None,
        }
    }
}

/// What the install reports along the way.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Another process holds the lock; the install waits for it.
    WaitingForLock { pid: Option<u32> },
    /// pip is asked for the URLs of these wheels.
    Resolving { components: &'a [String] },
    /// What will be fetched, and what is already in the store or on the system.
    Planned {
        fetch: &'a [PendingArtifact],
        stored: &'a [String],
        system: &'a [String],
    },
    /// Bytes of one artifact (the fetcher's progress; `artifact` is the component id).
    Download(&'a Progress<'a>),
    /// A component is unpacked, verified and in the store.
    Stored { component: &'a str },
    /// The new install is built; verification starts.
    Verifying { install_id: &'a str },
    /// A candidate failed verification (its install is deleted); the next one is tried.
    TryingNext {
        failed: &'a str,
        why: &'a str,
        next: &'a str,
    },
    /// `current` now names the new install.
    Activated { install_id: &'a str },
}

/// One artifact to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingArtifact {
    pub component: String,
    pub url: String,
    pub size: u64,
}

/// How a component got into the install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Downloaded (and unpacked in the same pass).
    Downloaded,
    /// Read from the offline directory.
    Offline,
    /// Already in the store (shared with an earlier install): nothing fetched.
    Stored,
    /// Served by libraries already on this machine.
    System,
}

/// One component of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentOutcome {
    pub id: String,
    pub version: String,
    /// Empty for system components.
    pub sha256: String,
    pub action: Action,
    /// Bytes read from the network or the offline file in this run (resumed bytes excluded).
    pub bytes: u64,
    /// Bytes that came from an earlier, interrupted run.
    pub resumed_bytes: u64,
    /// HTTP requests made for it.
    pub requests: u32,
    /// URL, offline file, or system paths.
    pub source: String,
    /// Why it comes from where it does, as the candidate that was installed planned it
    /// (reused from the machine, or what prevented reuse); absent for a component that
    /// candidate does not list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<Why>,
}

/// Whether verification ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum VerifyState {
    Passed {
        summary: String,
        details: serde_json::Value,
    },
    Skipped {
        why: String,
    },
    /// Not run here: the install is for a GPU this machine does not have. `on_target` is what
    /// to run on a machine with that GPU to record the proof.
    Deferred {
        why: String,
        on_target: String,
    },
}

/// What to run on the target machine to verify a deferred install.
pub const VERIFY_ON_TARGET: &str = "gpulibs status --verify";

/// The result of a successful install.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstallReport {
    pub root: PathBuf,
    pub install_id: String,
    pub variant: String,
    pub release: Option<String>,
    /// The install that was active before (now `previous`), if any.
    pub previous: Option<String>,
    /// The chosen variant was already the active install: nothing was built or switched.
    pub up_to_date: bool,
    pub components: Vec<ComponentOutcome>,
    /// Bytes downloaded or read offline in this run.
    pub downloaded_bytes: u64,
    pub resumed_bytes: u64,
    /// Components found in the store.
    pub reused_components: usize,
    pub elapsed_ms: u64,
    pub verify: VerifyState,
    pub seed_receipt: Option<PathBuf>,
    /// What an app sets to use the install (`gpulibs env`).
    pub env: Env,
    /// Libraries the plan takes from this machine, as the planner found them. The install
    /// record keeps them (`system_libraries`: path, size, mtime, sha256), the install's `lib/`
    /// symlinks them (so the root's view reaches them and `env` preloads them by their names
    /// there), and `status` reports one that is gone or changed; they are never copied.
    pub system_paths: Vec<PathBuf>,
    /// Every candidate tried, in order; the last is the one activated (or up to date).
    pub attempts: Vec<Attempt>,
    /// Set when the install is the CPU runtime: why not the GPU, and the fix.
    pub why_cpu: Option<WhyCpu>,
}

/// One artifact's fetch and unpack.
type FetchResult = Result<Fetched, Box<ComponentError>>;

/// A component to fetch and how to unpack it.
struct Job<'m> {
    component: &'m Component,
    artifact: Artifact,
    kind: Unpack,
    limits: UnpackLimits,
}

#[derive(Clone, Copy)]
enum Unpack {
    /// Streamed into the store's tar unpacker during the download.
    Tar(ArchiveFormat),
    /// Streamed into the store's zip stager, checked against the central directory at the end.
    Zip { wheel: bool },
}

fn store_err(what: impl Into<String>) -> impl FnOnce(StoreError) -> InstallError {
    let what = what.into();
    move |source| InstallError::Store {
        what,
        source: Box::new(source),
    }
}

/// Carries out `req.plan`'s chosen variant, and when its verification fails each of
/// `req.fallbacks` in turn, activating the first that verifies; see the crate doc for the steps
/// and invariants.
///
/// The phases, in order: `check_request` (the manifest's rules and the candidates' order,
/// before anything is opened), `open_root` and `take_install_lock`, then for each candidate
/// `install_candidate` until one verifies (`try_in_turn`); the module `install.rs` lists them.
pub fn install(
    req: &InstallRequest,
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<InstallReport, InstallError> {
    let started = Instant::now();
    let candidates = check_request(req)?;
    let store = open_root(req)?;
    let lock = take_install_lock(req, &store, progress)?;
    let previous = store
        .current_id()
        .map_err(store_err("reading the active install"))?;
    try_in_turn(
        req,
        &store,
        &lock,
        &candidates,
        &previous,
        started,
        progress,
    )
}

/// The manifest's rules (digests, paths and links inside the root, sizes) before anything is
/// opened or written — a caller may hand over a manifest it never validated — and the order
/// the candidates are tried in: the chosen variant, then `req.fallbacks`.
fn check_request<'r>(req: &'r InstallRequest<'_>) -> Result<Vec<&'r ChosenVariant>, InstallError> {
    gpulibs_plan::check_manifest(req.manifest).map_err(InstallError::Manifest)?;
    let first = chosen(req.plan)?;
    if let Some(dir) = &req.offline_dir {
        if !dir.is_dir() {
            return Err(InstallError::NoOfflineDir { path: dir.clone() });
        }
    }
    Ok(attempts::sequence(first, &req.fallbacks))
}

/// Opens the install root (made gpulibs' own if new) with its shared store.
fn open_root(req: &InstallRequest) -> Result<Store, InstallError> {
    let home = req.store_home.clone().unwrap_or_else(|| req.root.clone());
    let mut store =
        Store::open_in(&req.root, home).map_err(store_err("opening the install root"))?;
    if let Some(hook) = &req.step_hook {
        store = store.with_step_hook(hook.clone());
    }
    Ok(store)
}

/// The root's install lock, waited for or not as `req.wait_for_lock` says.
fn take_install_lock<'s>(
    req: &InstallRequest,
    store: &'s Store,
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<InstallLock<'s>, InstallError> {
    if req.wait_for_lock {
        store.lock(|pid| progress(&Event::WaitingForLock { pid }))
    } else {
        store.try_lock()
    }
    .map_err(store_err("taking the install lock"))
}

/// Each candidate in turn until one is activated (or found active); the generation of one that
/// fails verification is discarded (its components stay in the store for the next).
fn try_in_turn(
    req: &InstallRequest,
    store: &Store,
    lock: &InstallLock<'_>,
    candidates: &[&ChosenVariant],
    previous: &Option<String>,
    started: Instant,
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<InstallReport, InstallError> {
    let mut tried: Vec<Attempt> = Vec::new();
    for (i, chosen) in candidates.iter().copied().enumerate() {
        match install_candidate(req, store, lock, chosen, previous, started, progress) {
            Ok(mut report) => {
                tried.push(attempt(
                    chosen,
                    &report.install_id,
                    if report.up_to_date {
                        AttemptResult::UpToDate
                    } else {
                        AttemptResult::Activated
                    },
                    match &report.verify {
                        VerifyState::Passed { summary, .. } => summary.clone(),
                        VerifyState::Skipped { why } | VerifyState::Deferred { why, .. } => {
                            why.clone()
                        }
                    },
                ));
                report.why_cpu =
                    attempts::why_cpu(req.plan, chosen, &tried, req.no_gpu_fix.as_deref());
                report.attempts = tried;
                report.elapsed_ms = started.elapsed().as_millis() as u64;
                return Ok(report);
            }
            Err(InstallError::VerifyFailed {
                install_id, why, ..
            }) => {
                // Nothing but the components (in the store, for the next candidate) stays.
                lock.discard_install(&install_id)
                    .map_err(store_err("removing the install that failed verification"))?;
                tried.push(attempt(
                    chosen,
                    &install_id,
                    AttemptResult::VerificationFailed,
                    why,
                ));
                if let Some(next) = candidates.get(i + 1) {
                    progress(&Event::TryingNext {
                        failed: &chosen.label,
                        why: &tried.last().expect("just pushed").summary,
                        next: &next.label,
                    });
                }
            }
            Err(e) => return Err(e),
        }
    }
    match <[Attempt; 1]>::try_from(tried) {
        // One candidate: the error as it always was.
        Ok([only]) => Err(InstallError::VerifyFailed {
            install_id: only.install_id,
            why: only.summary,
            previous: previous.clone(),
        }),
        Err(tried) => Err(InstallError::NothingVerified {
            attempts: tried,
            previous: previous.clone(),
        }),
    }
}

fn attempt(chosen: &ChosenVariant, id: &str, result: AttemptResult, summary: String) -> Attempt {
    Attempt {
        variant: chosen.variant.clone(),
        label: chosen.label.clone(),
        device: chosen.device,
        reuses_system: gpulibs_plan::reuses_system(chosen),
        install_id: id.to_string(),
        result,
        summary,
    }
}

/// What one candidate is made of, decided from the plan and the manifest alone (no I/O): the
/// components its generation links from the shared store and the libraries it reuses from this
/// machine.
struct Selection {
    /// Manifest ids of the components linked from the store, in the plan's order.
    ids: Vec<String>,
    /// Manifest ids of the components the plan takes from this machine.
    system_ids: Vec<String>,
    /// Every path reused from this machine (components and needed libraries).
    system_paths: Vec<PathBuf>,
    /// The reused libraries as the generation records, preloads and checks them.
    system_libraries: Vec<SystemLibrarySpec>,
}

impl Selection {
    fn of(manifest: &Manifest, chosen: &ChosenVariant) -> Result<Self, InstallError> {
        let mut ids = Vec::new();
        let mut system_ids = Vec::new();
        let mut system_paths = Vec::new();
        let mut system_libraries = Vec::new();
        for planned in &chosen.components {
            if let Source::System { paths } = &planned.source {
                system_ids.push(planned.id.clone());
                system_paths.extend(paths.iter().cloned());
                system_libraries.extend(system_specs(manifest, &planned.id, paths));
                continue;
            }
            let c = component(manifest, &planned.id)?;
            if !gpulibs_plan::is_sha256(&c.archive.sha256) {
                return Err(InstallError::BadDigest {
                    id: c.id.clone(),
                    sha256: c.archive.sha256.clone(),
                });
            }
            ids.push(planned.id.clone());
        }
        // Libraries a component needs that the plan found on this machine (the CUDA 13 set of
        // a PyTorch environment, say) are reused the same way: recorded, preloaded, checked.
        for need in &chosen.needs {
            if let NeedSource::System { path } = &need.by {
                if !system_libraries
                    .iter()
                    .any(|s: &SystemLibrarySpec| s.soname == need.soname)
                {
                    system_paths.push(path.clone());
                    system_libraries.push(SystemLibrarySpec {
                        component: "system".to_string(),
                        soname: need.soname.clone(),
                        path: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
                    });
                }
            }
        }
        Ok(Selection {
            ids,
            system_ids,
            system_paths,
            system_libraries,
        })
    }

    /// The archive digests of the components linked from the store.
    fn sha256s(&self, manifest: &Manifest) -> Result<Vec<String>, InstallError> {
        self.ids
            .iter()
            .map(|id| component(manifest, id).map(|c| c.archive.sha256.clone()))
            .collect()
    }
}

/// What the shared store already holds of a [`Selection`] and what must be fetched: read under
/// the store's download lock (an app that waited there finds what the other stored), before
/// anything is written.
struct FetchPlan {
    /// Components to fetch, one per distinct archive, in the plan's order.
    missing: Vec<String>,
    /// Components already in the store.
    stored: Vec<String>,
}

impl FetchPlan {
    fn read(store: &Store, manifest: &Manifest, selection: &Selection) -> Self {
        let mut seen = BTreeSet::new();
        let missing: Vec<String> = selection
            .ids
            .iter()
            .filter(|id| {
                let c = component(manifest, id).expect("checked by Selection::of");
                !store.has_component(&c.archive.sha256) && seen.insert(c.archive.sha256.clone())
            })
            .cloned()
            .collect();
        let stored = selection
            .ids
            .iter()
            .filter(|id| !missing.contains(id))
            .cloned()
            .collect();
        FetchPlan { missing, stored }
    }
}

/// One candidate: decide ([`Selection`]), find it active already ([`up_to_date`]), or lease
/// its components, read what the store lacks ([`FetchPlan`]), resolve the missing wheels,
/// fetch ([`fetch_missing`]), build the generation ([`generation_spec`], [`build_generation`]),
/// verify it ([`verify_generation`]) and activate it ([`activate`]). A failed verification is
/// [`InstallError::VerifyFailed`], with the install built and left for the caller.
fn install_candidate(
    req: &InstallRequest,
    store: &Store,
    lock: &InstallLock<'_>,
    chosen: &ChosenVariant,
    previous: &Option<String>,
    started: Instant,
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<InstallReport, InstallError> {
    let selection = Selection::of(req.manifest, chosen)?;
    if let Some(report) = up_to_date(req, store, lock, chosen, &selection, started)? {
        return Ok(report);
    }

    // The components this generation will link stay in the shared store, whatever another
    // app's gc does, until the generation (whose record names them) exists.
    let _lease = lock
        .lease(&selection.sha256s(req.manifest)?)
        .map_err(store_err("recording the components this install uses"))?;
    let fetch_lock = take_fetch_lock(req, store, progress)?;
    let fetch_plan = FetchPlan::read(store, req.manifest, &selection);
    let mut manifest = req.manifest.clone();
    resolve_wheels(req, &mut manifest, &fetch_plan.missing, progress)?;
    let fetched = fetch_missing(
        req,
        lock,
        &manifest,
        &selection,
        &fetch_plan,
        previous,
        progress,
    )?;
    // Every artifact is stored: nothing in the shared downloads is worth resuming.
    clean_downloads(&store.downloads_dir());
    drop(fetch_lock);

    let Selection {
        ids,
        system_paths,
        system_libraries,
        ..
    } = selection;
    let components: Vec<&Component> = ids
        .iter()
        .map(|id| component(&manifest, id))
        .collect::<Result<_, _>>()?;
    let spec = generation_spec(req, store, chosen, &components, &fetched, system_libraries)?;
    let record = build_generation(lock, &spec, previous)?;
    let verify = verify_generation(req, store, lock, chosen, &record, previous, progress)?;
    activate(lock, &record, progress)?;
    let seed_receipt = write_receipt(lock, req)?;

    let mut outcomes: Vec<ComponentOutcome> = components
        .iter()
        .map(|c| match fetched.iter().find(|(id, _)| *id == c.id) {
            Some((_, f)) => ComponentOutcome {
                id: c.id.clone(),
                version: c.version.clone(),
                sha256: c.archive.sha256.clone(),
                action: if req.offline_dir.is_some() {
                    Action::Offline
                } else {
                    Action::Downloaded
                },
                bytes: f.bytes - f.resumed_from,
                resumed_bytes: f.resumed_from,
                requests: f.requests,
                source: f.origin.to_string(),
                why: None,
            },
            None => stored_outcome(c),
        })
        .collect();
    outcomes.extend(system_outcomes(chosen));
    explain(&mut outcomes, chosen);
    Ok(InstallReport {
        root: req.root.clone(),
        install_id: record.id.clone(),
        variant: record.variant.clone(),
        release: record.release.clone(),
        previous: previous.clone(),
        up_to_date: false,
        downloaded_bytes: outcomes.iter().map(|o| o.bytes).sum(),
        resumed_bytes: outcomes.iter().map(|o| o.resumed_bytes).sum(),
        reused_components: outcomes
            .iter()
            .filter(|o| o.action == Action::Stored)
            .count(),
        components: outcomes,
        elapsed_ms: started.elapsed().as_millis() as u64,
        verify,
        seed_receipt,
        // What `gpulibs env` prints: the root's view, stable across updates.
        env: view_env(store, &record),
        system_paths,
        attempts: Vec::new(),
        why_cpu: None,
    })
}

/// The report for a candidate that is already the active install — the same variant, the same
/// components, the same libraries from the same places on this machine, and intact — or `None`.
fn up_to_date(
    req: &InstallRequest,
    store: &Store,
    lock: &InstallLock<'_>,
    chosen: &ChosenVariant,
    selection: &Selection,
    started: Instant,
) -> Result<Option<InstallReport>, InstallError> {
    let manifest = req.manifest;
    let Some(current) = store
        .current()
        .map_err(store_err("reading the active install"))?
    else {
        return Ok(None);
    };
    let ids = &selection.ids;
    let want: BTreeSet<&str> = ids
        .iter()
        .map(|id| component(manifest, id).map(|c| c.archive.sha256.as_str()))
        .collect::<Result<_, _>>()?;
    let have: BTreeSet<&str> = current
        .components
        .iter()
        .map(|c| c.sha256.as_str())
        .collect();
    // The same libraries from the same places on this machine, too.
    let want_system: BTreeSet<(&str, &Path)> = selection
        .system_libraries
        .iter()
        .map(|l| (l.soname.as_str(), l.path.as_path()))
        .collect();
    let have_system: BTreeSet<(&str, &Path)> = current
        .system_libraries
        .iter()
        .map(|l| (l.soname.as_str(), l.path.as_path()))
        .collect();
    // Includes the reused libraries: one that changed since (a pip upgrade) makes a new
    // generation, recorded anew and verified.
    let intact = store
        .check_install(&current.id)
        .map(|p| p.is_empty())
        .unwrap_or(false);
    if !(current.variant == chosen.variant && want == have && want_system == have_system && intact)
    {
        return Ok(None);
    }
    let seed_receipt = write_receipt(lock, req)?;
    let mut outcomes: Vec<ComponentOutcome> = ids
        .iter()
        .map(|id| stored_outcome(component(manifest, id).expect("checked above")))
        .chain(system_outcomes(chosen))
        .collect();
    explain(&mut outcomes, chosen);
    Ok(Some(InstallReport {
        root: req.root.clone(),
        install_id: current.id.clone(),
        variant: current.variant.clone(),
        release: current.release.clone(),
        previous: store.previous_id().ok().flatten(),
        up_to_date: true,
        components: outcomes,
        downloaded_bytes: 0,
        resumed_bytes: 0,
        reused_components: ids.len(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        verify: VerifyState::Skipped {
            why: "already installed and active".into(),
        },
        seed_receipt,
        env: view_env(store, &current),
        system_paths: selection.system_paths.clone(),
        attempts: Vec::new(),
        why_cpu: None,
    }))
}

/// One install downloads into the shared store at a time: an app that waited here finds what
/// the other stored, and fetches only what is still missing.
fn take_fetch_lock(
    req: &InstallRequest,
    store: &Store,
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<FetchLock, InstallError> {
    if req.wait_for_lock {
        store.fetch_lock(|| progress(&Event::WaitingForLock { pid: None }))
    } else {
        store.try_fetch_lock()
    }
    .map_err(store_err("taking the store's download lock"))
}

/// pip is asked only for the wheels that must be downloaded; their URLs go into `manifest`,
/// checked again.
fn resolve_wheels(
    req: &InstallRequest,
    manifest: &mut Manifest,
    missing: &[String],
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<(), InstallError> {
    if req.offline_dir.is_some() {
        return Ok(());
    }
    let pip_ids: Vec<String> = missing
        .iter()
        .filter(|id| {
            component(manifest, id)
                .map(|c| c.archive.url.starts_with(PIP_URL_SCHEME))
                .unwrap_or(false)
        })
        .cloned()
        .collect();
    if !pip_ids.is_empty() {
        progress(&Event::Resolving {
            components: &pip_ids,
        });
        let refs: Vec<&str> = pip_ids.iter().map(String::as_str).collect();
        resolve_components(manifest, &refs, req.pip, &req.wheel_target)
            .map_err(|e| InstallError::Resolve(Box::new(e)))?;
        gpulibs_plan::check_manifest(manifest).map_err(InstallError::Manifest)?;
    }
    Ok(())
}

/// Fetches every missing component into the store (space checked first, [`Event::Planned`]
/// told), in parallel, each unpacked while it streams; what each fetch did, by component id.
fn fetch_missing(
    req: &InstallRequest,
    lock: &InstallLock<'_>,
    manifest: &Manifest,
    selection: &Selection,
    fetch_plan: &FetchPlan,
    previous: &Option<String>,
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<Vec<(String, Fetched)>, InstallError> {
    let jobs: Vec<Job> = fetch_plan
        .missing
        .iter()
        .map(|id| job(component(manifest, id)?, req.offline_dir.is_some()))
        .collect::<Result<_, _>>()?;
    let needed: u64 = jobs
        .iter()
        .fold(0u64, |a, j| a.saturating_add(j.limits.max_unpacked_bytes));
    lock.store()
        .check_space(needed)
        .map_err(store_err("checking free space"))?;

    let pending: Vec<PendingArtifact> = jobs
        .iter()
        .map(|j| PendingArtifact {
            component: j.component.id.clone(),
            url: j.artifact.urls.first().cloned().unwrap_or_default(),
            size: j.component.archive.size,
        })
        .collect();
    progress(&Event::Planned {
        fetch: &pending,
        stored: &fetch_plan.stored,
        system: &selection.system_ids,
    });

    let results = fetch_jobs(lock, &jobs, req, progress)?;
    let mut failed = Vec::new();
    let mut first_error = None;
    let mut fetched: Vec<(String, Fetched)> = Vec::new();
    for (job, result) in jobs.iter().zip(results) {
        match result {
            Ok(f) => fetched.push((job.component.id.clone(), f)),
            Err(e) => {
                failed.push(job.component.id.clone());
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(source) = first_error {
        return Err(InstallError::Fetch {
            failed,
            total: jobs.len(),
            previous: previous.clone(),
            source,
        });
    }
    Ok(fetched)
}

/// What the new generation is made of: each component with where its bytes came from, the
/// GPU and driver it is for, and the system libraries it links.
fn generation_spec(
    req: &InstallRequest,
    store: &Store,
    chosen: &ChosenVariant,
    components: &[&Component],
    fetched: &[(String, Fetched)],
    system_libraries: Vec<SystemLibrarySpec>,
) -> Result<InstallSpec, InstallError> {
    Ok(InstallSpec {
        app: req.app.clone(),
        variant: chosen.variant.clone(),
        release: Some(req.manifest.version.clone()),
        components: components
            .iter()
            .map(|c| ComponentSpec {
                id: c.id.clone(),
                version: c.version.clone(),
                sha256: c.archive.sha256.clone(),
                source: fetched
                    .iter()
                    .find(|(id, _)| *id == c.id)
                    .map(|(_, f)| f.origin.to_string())
                    .unwrap_or_else(|| c.archive.url.clone()),
                links: declared_links(c),
                files: declared_files(c),
            })
            .collect(),
        coverage: coverage(components),
        // A CPU candidate tried after GPU ones is the CPU runtime, chosen for no GPU.
        gpu: match chosen.device {
            gpulibs_plan::VariantDevice::Cuda => req.gpu.clone(),
            gpulibs_plan::VariantDevice::Cpu => None,
        },
        driver: req.driver.clone(),
        requires_driver_cuda: components.iter().filter_map(|c| c.cuda).max(),
        ort_library: ort_library(store, components)?,
        system_libraries,
    })
}

/// Builds the new generation from the store (not active yet).
fn build_generation(
    lock: &InstallLock<'_>,
    spec: &InstallSpec,
    previous: &Option<String>,
) -> Result<InstallRecord, InstallError> {
    lock.new_install(spec).map_err(store_err(format!(
        "building the new install failed; nothing was activated{}",
        previous
            .as_deref()
            .map(|id| format!(", install {id} stays active"))
            .unwrap_or_default()
    )))
}

/// Runs the verifier on the new generation before it is activated (or defers or skips it, as
/// the request says) and records what it found in `install.json`.
fn verify_generation(
    req: &InstallRequest,
    store: &Store,
    lock: &InstallLock<'_>,
    chosen: &ChosenVariant,
    record: &InstallRecord,
    previous: &Option<String>,
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<VerifyState, InstallError> {
    let env = env_for(store, record);
    let verify = match (req.verifier, &req.defer_verification) {
        (Some(_), Some(why)) if chosen.device == gpulibs_plan::VariantDevice::Cuda => {
            VerifyState::Deferred {
                why: why.clone(),
                on_target: VERIFY_ON_TARGET.into(),
            }
        }
        (None, _) => VerifyState::Skipped {
            why: "--no-verify".into(),
        },
        (Some(v), _) => {
            progress(&Event::Verifying {
                install_id: &record.id,
            });
            let verdict = v.verify(record, &env);
            if !verdict.passed {
                return Err(InstallError::VerifyFailed {
                    install_id: record.id.clone(),
                    why: verdict.summary,
                    previous: previous.clone(),
                });
            }
            VerifyState::Passed {
                summary: verdict.summary,
                details: verdict.details,
            }
        }
    };
    lock.record_verification(&record.id, verification_record(&verify, &req.verify_models))
        .map_err(store_err("recording the verification"))?;
    Ok(verify)
}

/// Makes the new generation `current` (one `rename`).
fn activate(
    lock: &InstallLock<'_>,
    record: &InstallRecord,
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<(), InstallError> {
    lock.activate(&record.id)
        .map_err(store_err("activating the new install"))?;
    progress(&Event::Activated {
        install_id: &record.id,
    });
    Ok(())
}

/// What `install.json` keeps of `verify`.
fn verification_record(verify: &VerifyState, models: &[String]) -> VerificationRecord {
    let (state, summary, models) = match verify {
        VerifyState::Passed { summary, .. } => {
            (VerificationState::Verified, summary, models.to_vec())
        }
        VerifyState::Deferred { why, .. } => (VerificationState::Deferred, why, Vec::new()),
        VerifyState::Skipped { why } => (VerificationState::Skipped, why, Vec::new()),
    };
    VerificationRecord::now(state, summary.clone(), models)
}

fn chosen(plan: &Plan) -> Result<&ChosenVariant, InstallError> {
    match (&plan.outcome, &plan.chosen) {
        (Outcome::Refused(r), _) => Err(InstallError::NothingToInstall { why: r.to_string() }),
        (_, Some(c)) => Ok(c),
        (_, None) => Err(InstallError::NothingToInstall {
            why: plan
                .cpu_fallback()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "the plan chose no variant".into()),
        }),
    }
}

fn component<'m>(manifest: &'m Manifest, id: &str) -> Result<&'m Component, InstallError> {
    manifest
        .components
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| InstallError::UnknownComponent { id: id.into() })
}

/// The libraries component `id` is served by on this machine: the planner found one path per
/// SONAME the manifest says it provides, in that order. A relative path (from a relative
/// `LD_LIBRARY_PATH` entry) is made absolute against the working directory, since the record
/// must mean the same file later.
fn system_specs(manifest: &Manifest, id: &str, paths: &[PathBuf]) -> Vec<SystemLibrarySpec> {
    let provides: &[String] = manifest
        .components
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.provides.as_slice())
        .unwrap_or_default();
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| SystemLibrarySpec {
            component: id.to_string(),
            soname: provides.get(i).cloned().unwrap_or_else(|| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            path: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
        })
        .collect()
}

fn stored_outcome(c: &Component) -> ComponentOutcome {
    ComponentOutcome {
        id: c.id.clone(),
        version: c.version.clone(),
        sha256: c.archive.sha256.clone(),
        action: Action::Stored,
        bytes: 0,
        resumed_bytes: 0,
        requests: 0,
        source: "store".into(),
        why: None,
    }
}

/// Gives each outcome the planner's why from `chosen`, the candidate that was installed.
fn explain(outcomes: &mut [ComponentOutcome], chosen: &ChosenVariant) {
    for o in outcomes {
        o.why = chosen
            .components
            .iter()
            .find(|p| p.id == o.id)
            .map(|p| p.why.clone());
    }
}

fn system_outcomes(chosen: &ChosenVariant) -> impl Iterator<Item = ComponentOutcome> + '_ {
    chosen.components.iter().filter_map(|p| match &p.source {
        Source::System { paths } => Some(ComponentOutcome {
            id: p.id.clone(),
            version: String::new(),
            sha256: String::new(),
            action: Action::System,
            bytes: 0,
            resumed_bytes: 0,
            requests: 0,
            source: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            why: None,
        }),
        _ => None,
    })
}

/// How to fetch and unpack `c`, with the manifest's limits.
fn job(c: &Component, offline: bool) -> Result<Job<'_>, InstallError> {
    let url = &c.archive.url;
    if !offline && url.starts_with(PIP_URL_SCHEME) {
        return Err(InstallError::UnresolvedPip {
            id: c.id.clone(),
            url: url.clone(),
        });
    }
    let sha256 = c
        .archive
        .sha256
        .parse()
        .map_err(|_| InstallError::BadDigest {
            id: c.id.clone(),
            sha256: c.archive.sha256.clone(),
        })?;
    let kind = match c.archive.format {
        ManifestFormat::TarZst => Unpack::Tar(ArchiveFormat::TarZstd),
        ManifestFormat::TarGz => Unpack::Tar(ArchiveFormat::TarGzip),
        ManifestFormat::Wheel => Unpack::Zip { wheel: true },
        ManifestFormat::Zip => Unpack::Zip { wheel: false },
        ManifestFormat::TarXz => Unpack::Tar(ArchiveFormat::TarXz),
    };
    // Without a declared unpacked size the budget is 20 times the archive (the plan warns).
    let budget = c
        .unpacked_bytes()
        .unwrap_or_else(|| c.archive.size.saturating_mul(20).max(1 << 20));
    let mut limits = UnpackLimits::unpacked(budget);
    limits.max_archive_bytes = Some(c.archive.size);
    // Every listed file must unpack with its size and sha256, or the component is refused.
    limits.file_sizes = c
        .files
        .iter()
        .map(|f| (gpulibs_plan::normalize_path(&f.path), f.size))
        .collect();
    limits.file_sha256 = c
        .files
        .iter()
        .map(|f| (gpulibs_plan::normalize_path(&f.path), f.sha256.clone()))
        .collect();
    let urls = std::iter::once(url.clone())
        .chain(c.archive.mirrors.iter().cloned())
        .filter(|u| !u.starts_with(PIP_URL_SCHEME))
        .collect();
    Ok(Job {
        component: c,
        artifact: Artifact {
            name: c.id.clone(),
            urls,
            sha256,
            size: Some(c.archive.size),
        },
        kind,
        limits,
    })
}

/// Fetches every job, `req.jobs` at a time, each unpacked while it streams.
fn fetch_jobs(
    lock: &InstallLock<'_>,
    jobs: &[Job],
    req: &InstallRequest,
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<Vec<FetchResult>, InstallError> {
    let mut opts = req.fetch.clone();
    opts.partial_dir = lock.store().downloads_dir();
    opts.offline_dir = req.offline_dir.clone();
    opts.keep_verified = false;
    let setup = |e| InstallError::Fetch {
        failed: vec!["network settings".into()],
        total: jobs.len(),
        previous: None,
        source: Box::new(ComponentError::Fetch {
            id: "(all)".into(),
            source: e,
        }),
    };
    let streaming = Fetcher::new(&opts).map_err(setup)?;

    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<FetchResult>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..req.jobs.clamp(1, jobs.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let result = match job.kind {
                    Unpack::Tar(format) => fetch_tar(s, lock, job, format, &streaming, progress),
                    Unpack::Zip { wheel } => fetch_zip(s, lock, job, wheel, &streaming, progress),
                };
                if result.is_ok() {
                    progress(&Event::Stored {
                        component: &job.component.id,
                    });
                }
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
            });
        }
    });
    Ok(results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every job ran")
        })
        .collect())
}

/// The links a component's manifest entry declares (`files[].soname_links`), by the bare names
/// they get in the install's flat `lib/`.
fn declared_links(c: &Component) -> Vec<DeclaredLink> {
    c.files
        .iter()
        .flat_map(|f| {
            let target = f.path.rsplit('/').next().unwrap_or(&f.path);
            f.soname_links
                .iter()
                .filter(move |name| name.as_str() != target)
                .map(move |name| DeclaredLink {
                    name: name.clone(),
                    target: target.to_string(),
                })
        })
        .collect()
}

/// The files a component's manifest entry lists, checked again against the stored component
/// when the install is built (it may have been stored under another manifest).
fn declared_files(c: &Component) -> Vec<DeclaredFile> {
    c.files
        .iter()
        .map(|f| DeclaredFile {
            path: gpulibs_plan::normalize_path(&f.path),
            size: f.size,
            sha256: f.sha256.clone(),
        })
        .collect()
}

/// One pass: network → sha256 + `.partial` → the store's tar unpacker (on a scoped thread).
/// The stager commits only after the reader ended, which it does only after the digest matched.
fn fetch_tar<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    lock: &'env InstallLock<'env>,
    job: &Job,
    format: ArchiveFormat,
    fetcher: &Fetcher,
    progress: &(dyn Fn(&Event) + Sync),
) -> FetchResult {
    let sha = job.component.archive.sha256.clone();
    let limits = job.limits.clone();
    fetch_into_store(s, job, fetcher, progress, move |reader| {
        let mut stager = lock.stage_component(&sha, limits.clone())?;
        // The pipe's reader ends only after the fetcher matched the sha256.
        stager.unpack_tar_checked(reader, format, ArchiveCheck::VerifiedByReader)?;
        stager.commit()
    })
}

/// Streams `job`'s artifact into `stage`, run on a scoped thread behind a pipe.
///
/// The store's error reaches the fetcher as the pipe's `io::Error`, in one of two kinds (the
/// [`gpulibs_fetch::Sink`] contract): when the store refused the bytes themselves
/// ([`refuses_bytes`]) it is `InvalidData` and carries the store's error, so the fetcher deletes
/// the bytes (no later run replays them) and names both digests, with the store's error as the
/// cause; a local failure (disk, permissions) is kept here, so the report names the store's
/// own error, and the bytes stay for the next run to resume.
fn fetch_into_store<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    job: &Job,
    fetcher: &Fetcher,
    progress: &(dyn Fn(&Event) + Sync),
    stage: impl Fn(&mut PipeReader) -> Result<StoredComponent, StoreError> + Send + Sync + 'scope,
) -> FetchResult {
    let id = job.component.id.clone();
    let store_error: Arc<Mutex<Option<StoreError>>> = Arc::default();
    let slot = Arc::clone(&store_error);
    let mut sink = PipeSink::scoped(s, move |reader: &mut PipeReader| {
        stage(reader).map_err(|e| {
            if refuses_bytes(&e) {
                return io::Error::new(io::ErrorKind::InvalidData, e);
            }
            let message = e.to_string();
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            io::Error::other(message)
        })
    });
    let forward = |p: &Progress| progress(&Event::Download(p));
    match fetcher.fetch(&job.artifact, &mut sink, &forward) {
        Ok(f) => Ok(f),
        Err(e @ gpulibs_fetch::FetchError::Sink { .. }) => {
            match store_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(source) => Err(Box::new(ComponentError::Unpack { id, source })),
                None => Err(Box::new(ComponentError::Fetch { id, source: e })),
            }
        }
        Err(source) => Err(Box::new(ComponentError::Fetch { id, source })),
    }
}

/// Whether the store refused an archive's bytes themselves (they do not decompress, or break an
/// unpacking rule), rather than failing for a local reason (writing a file, the disk, an
/// injected fault). Before the digest is known, refused bytes are most likely not the
/// manifest's archive at all; either way they are worth nothing to a later run.
fn refuses_bytes(e: &StoreError) -> bool {
    match e {
        StoreError::Unpack {
            source: UnpackError::Write { .. },
            ..
        } => false,
        StoreError::Unpack { .. } | StoreError::HashMismatch { .. } => true,
        _ => false,
    }
}

/// Zips (wheels), one pass too: network → sha256 + `.partial` → `read_zip_stream_listed` →
/// the store's zip stager, which writes the selected members as they arrive and, once the
/// central directory (at the end) has arrived, refuses the component unless it lists exactly
/// the members that streamed. The pipe's reader ends only after the digest matched.
fn fetch_zip<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    lock: &'env InstallLock<'env>,
    job: &Job,
    wheel: bool,
    fetcher: &Fetcher,
    progress: &(dyn Fn(&Event) + Sync),
) -> FetchResult {
    let sha = job.component.archive.sha256.clone();
    let limits = job.limits.clone();
    fetch_into_store(s, job, fetcher, progress, move |reader| {
        let select: &dyn Fn(&str) -> bool = if wheel {
            &wheel_library_member
        } else {
            &|name: &str| is_library_name(name.rsplit('/').next().unwrap_or(name))
        };
        let mut stager = lock.stage_component(&sha, limits.clone())?;
        stager.unpack_zip_stream(select, |zip| {
            let mut member_error = None;
            let listing = gpulibs_fetch::read_zip_stream_listed(&mut *reader, |m, data| {
                zip.member(&m.name, m.size, data).map_err(|e| {
                    let message = e.to_string();
                    member_error = Some(e);
                    io::Error::other(message)
                })
            });
            let listing = match (listing, member_error) {
                (_, Some(e)) => return Err(e),
                (Ok(listing), None) => listing,
                (Err(e), None) => {
                    return Err(StoreError::Unpack {
                        sha256: sha.clone(),
                        path: PathBuf::new(),
                        source: UnpackError::Read(e),
                    })
                }
            };
            let convert = |entries: Vec<gpulibs_fetch::ZipEntry>| {
                entries
                    .into_iter()
                    .map(|e| ZipListedMember {
                        name: e.name,
                        offset: e.offset,
                        crc32: e.crc32,
                        size: e.size,
                        unix_mode: e.unix_mode,
                    })
                    .collect()
            };
            Ok(ZipListedMembers {
                streamed: convert(listing.streamed),
                central: convert(listing.central),
            })
        })?;
        stager.commit()
    })
}

/// The kernels the install carries: the ONNX Runtime component's coverage (the narrowest
/// library), else the narrowest declared coverage of any component.
fn coverage(components: &[&Component]) -> Vec<KernelEntry> {
    let with: Vec<&&Component> = components.iter().filter(|c| c.coverage.is_some()).collect();
    with.iter()
        .find(|c| c.kind == ComponentKind::Onnxruntime)
        .or_else(|| with.iter().min_by_key(|c| c.kernel_entries().len()))
        .map(|c| c.kernel_entries())
        .unwrap_or_default()
}

/// The ONNX Runtime library's name in `lib/`: `libonnxruntime.so` when an archive has it,
/// else its SONAME `libonnxruntime.so.1`, else the versioned file a wheel ships
/// (`libonnxruntime.so.1.23.2`).
fn ort_library(store: &Store, components: &[&Component]) -> Result<String, InstallError> {
    let mut names = Vec::new();
    for c in components {
        let meta = store
            .component(&c.archive.sha256)
            .map_err(store_err(format!("reading component {}", c.id)))?;
        names.extend(
            meta.entries
                .iter()
                .map(|e| e.path.rsplit('/').next().unwrap_or(&e.path).to_string())
                .filter(|n| n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so.")),
        );
    }
    names.sort_by_key(|n| (n.len(), n.clone()));
    Ok(names
        .into_iter()
        .next()
        .unwrap_or_else(|| "libonnxruntime.so".into()))
}

fn write_receipt(
    lock: &InstallLock<'_>,
    req: &InstallRequest,
) -> Result<Option<PathBuf>, InstallError> {
    match &req.seed_receipt {
        None => Ok(None),
        Some(path) => {
            lock.write_seed_info(path)
                .map_err(store_err("writing the seed-compatible receipt"))?;
            Ok(Some(path.clone()))
        }
    }
}

/// Removes what downloads left (every artifact of this install is stored by now).
fn clean_downloads(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
