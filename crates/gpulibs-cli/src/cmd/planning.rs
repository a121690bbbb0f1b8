//! What `plan` and `install` share: the manifest and host flags, calling
//! `gpulibs_sources::load_manifest` (which reads the manifest and its signature and owns their
//! rules), describing this machine, and calling the planner.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gpulibs_detect::{detect, ComputeCapability, CudaVersion, DetectOptions};
use gpulibs_fetch::{FetchOptions, NetworkEnv};
use gpulibs_plan::{
    candidates, plan_with_trust, ChosenVariant, DriverVersion, Host, Manifest, Plan, Policy,
    SystemInventory, Trust,
};
use gpulibs_sources::{LoadedManifest, ManifestRequest, SystemSearch};

use crate::error::CliError;

/// Where the manifest comes from and how far to trust it.
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    /// The vendor's release manifest (TOML): a path or an `http(s)://` URL. Relative archive
    /// URLs in it are relative to the manifest (its directory, or its URL). Without it, gpulibs
    /// plans from the official ONNX Runtime wheels, whose kernel coverage is measured and built
    /// into gpulibs.
    #[arg(long, value_name = "URL|PATH")]
    pub manifest: Option<String>,

    /// The manifest's minisign signature, a path or an `http(s)://` URL (default: the
    /// manifest's path or URL + `.minisig`; when that is missing, the manifest is unsigned).
    #[arg(long, value_name = "URL|PATH")]
    pub signature: Option<String>,

    /// The public key the app pins (minisign format, `RW…`).
    #[arg(
        long,
        env = "GPULIBS_PUBLIC_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub public_key: Option<String>,

    /// Use a manifest that is unsigned, or not signed by the pinned key. Dangerous.
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// Which machine to plan for, and what is allowed.
#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// Plan for these GPUs instead of the ones detected here (vendors planning for customers):
    /// compute capabilities like `8.6,12.0` or `sm_52`.
    #[arg(long, value_name = "CC,...")]
    pub gpu: Option<String>,

    /// With --gpu: the driver version to assume, e.g. `535.104.05`.
    #[arg(long, value_name = "VERSION", requires = "gpu")]
    pub driver: Option<DriverVersion>,

    /// With --gpu: the highest CUDA version the driver runs, e.g. `12.2`.
    #[arg(long, value_name = "VERSION", requires = "gpu")]
    pub driver_cuda: Option<CudaVersion>,

    /// Do not reuse CUDA libraries already on this machine; download everything.
    #[arg(long)]
    pub no_reuse: bool,

    /// Refuse kernels the driver would have to JIT-compile from PTX.
    #[arg(long)]
    pub no_jit: bool,

    /// Plan the CPU runtime even if a GPU is usable.
    #[arg(long)]
    pub cpu: bool,
}

/// The inputs and the answer of the planner.
pub struct Planned {
    pub manifest: Manifest,
    pub trust: Trust,
    /// `embedded`, the manifest's path or its URL.
    pub manifest_source: String,
    /// The directory of a local manifest: archives with relative URLs are read from there. `None`
    /// for the embedded manifest and for a URL manifest (whose relative URLs were made absolute
    /// against its URL when it was read).
    pub manifest_dir: Option<PathBuf>,
    pub plan: Plan,
    /// What `install` tries, best first, when verification fails (`gpulibs_plan::candidates`;
    /// the first is the plan's choice).
    pub candidates: Vec<ChosenVariant>,
    /// Detection's fix when it found no usable GPU here (`None` with `--gpu`).
    pub no_gpu_fix: Option<String>,
}

/// The manifest `args` name, read through `gpulibs_sources::load_manifest` with this user's
/// network settings.
fn load_manifest(args: &ManifestArgs) -> Result<LoadedManifest, CliError> {
    let mut fetch = FetchOptions::new(std::env::temp_dir());
    fetch.network = NetworkEnv::from_env();
    Ok(gpulibs_sources::load_manifest(&ManifestRequest {
        manifest: args.manifest.clone(),
        signature: args.signature.clone(),
        public_key: args.public_key.clone(),
        allow_unsigned: args.allow_unsigned,
        fetch,
    })?)
}

/// The host to plan for, and detection's fix for its first error (the one `no_gpu_reason`
/// names) when no GPU is usable.
fn host(args: &HostArgs, free_disk_bytes: Option<u64>) -> Result<(Host, Option<String>), CliError> {
    let Some(list) = &args.gpu else {
        let detection = detect(&DetectOptions::from_env());
        let host = Host::from_detection(&detection, free_disk_bytes);
        let fix = host
            .gpus
            .is_empty()
            .then(|| detection.errors().next().and_then(|p| p.hint.clone()))
            .flatten();
        return Ok((host, fix));
    };
    let mut ccs = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let cc: ComputeCapability = part
            .parse()
            .map_err(|e| CliError::new(e).with_hint("--gpu takes a list like `8.6,sm_120`"))?;
        ccs.push(cc);
    }
    let mut host = Host::synthetic(&ccs, args.driver.clone(), args.driver_cuda);
    host.free_disk_bytes = free_disk_bytes;
    Ok((host, None))
}

/// The archives of `manifest` already stored for the install root at `root`: in the store
/// shared by every app at `home`, or in a root-local store from before it was shared (read
/// only; a store that does not exist or cannot be read yields none: the install finds out).
pub fn stored_archives(manifest: &Manifest, at: Option<(&Path, &Path)>) -> BTreeSet<String> {
    let Some((root, home)) = at else {
        return BTreeSet::new();
    };
    let store = gpulibs_store::Store::peek(root, home);
    manifest
        .components
        .iter()
        .map(|c| &c.archive.sha256)
        .filter(|sha| store.has_component(sha))
        .cloned()
        .collect()
}

/// Reads the manifest, describes the host, scans the machine (unless `--no-reuse`) and plans.
/// `stored_at`: the install root and the store home asked which archives they already hold.
pub fn make_plan(
    m: &ManifestArgs,
    h: &HostArgs,
    free_disk_bytes: Option<u64>,
    stored_at: Option<(&Path, &Path)>,
) -> Result<Planned, CliError> {
    let LoadedManifest {
        manifest,
        trust,
        source: manifest_source,
        dir: manifest_dir,
    } = load_manifest(m)?;
    let (host, no_gpu_fix) = host(h, free_disk_bytes)?;
    let system = if h.no_reuse {
        SystemInventory::default()
    } else {
        SystemSearch::from_env().scan().inventory()
    };
    let policy = Policy {
        allow_jit: !h.no_jit,
        reuse_system: !h.no_reuse,
        allow_unsigned: m.allow_unsigned,
        cpu_only: h.cpu,
        stored_archives: stored_archives(&manifest, stored_at),
        ..Policy::default()
    };
    let plan = plan_with_trust(&host, &manifest, &trust, &system, &policy);
    let candidates = candidates(&host, &manifest, &system, &policy);
    Ok(Planned {
        manifest,
        trust,
        manifest_source,
        manifest_dir,
        plan,
        candidates,
        no_gpu_fix,
    })
}
