//! What `plan` and `install` share: reading the manifest (or building the embedded default),
//! checking its signature, describing this machine, and calling the planner.

use std::path::{Path, PathBuf};

use gpulibs_detect::{detect, ComputeCapability, CudaVersion, DetectOptions};
use gpulibs_plan::{
    check_signature, parse_manifest_bytes, plan_with_trust, DriverVersion, Host, Manifest, Plan,
    Policy, SystemInventory, Trust,
};
use gpulibs_sources::{embedded_default, CoverageTable, SystemSearch};

use crate::error::CliError;

/// Where the manifest comes from and how far to trust it.
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    /// The vendor's release manifest (TOML). Without it, gpulibs plans from the official ONNX
    /// Runtime wheels, whose kernel coverage is measured and built into gpulibs.
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,

    /// The manifest's minisign signature (default: the manifest's path + `.minisig`).
    #[arg(long, value_name = "PATH")]
    pub signature: Option<PathBuf>,

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
    /// `embedded` or the manifest's path.
    pub manifest_source: String,
    pub plan: Plan,
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| {
        CliError::new(std::io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", path.display()),
        ))
        .with_hint("check the path given to --manifest / --signature")
    })
}

fn load_manifest(args: &ManifestArgs) -> Result<(Manifest, Trust, String), CliError> {
    let Some(path) = &args.manifest else {
        let manifest = embedded_default(CoverageTable::embedded());
        return Ok((
            manifest,
            Trust::BuiltLocally,
            "embedded (official ONNX Runtime wheels through pip)".into(),
        ));
    };
    let bytes = read(path)?;
    let sig_path = args.signature.clone().unwrap_or_else(|| {
        let mut p = path.clone().into_os_string();
        p.push(".minisig");
        PathBuf::from(p)
    });
    let signature = match std::fs::read_to_string(&sig_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.signature.is_none() => None,
        Err(e) => {
            return Err(CliError::new(std::io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", sig_path.display()),
            )))
        }
    };
    let trust = check_signature(&bytes, signature.as_deref(), args.public_key.as_deref(), args.allow_unsigned)
        .map_err(|e| {
            CliError::new(e).with_hint(format!(
                "the manifest {} is not trusted: pin the vendor's key with --public-key or GPULIBS_PUBLIC_KEY, \
                 or pass --allow-unsigned if you know where it came from",
                path.display()
            ))
        })?;
    let manifest = parse_manifest_bytes(&bytes).map_err(|e| {
        CliError::new(e).with_hint(format!(
            "{} is not a gpulibs release manifest this version reads",
            path.display()
        ))
    })?;
    Ok((manifest, trust, path.display().to_string()))
}

fn host(args: &HostArgs, free_disk_bytes: Option<u64>) -> Result<Host, CliError> {
    let Some(list) = &args.gpu else {
        return Ok(Host::from_detection(
            &detect(&DetectOptions::from_env()),
            free_disk_bytes,
        ));
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
    Ok(host)
}

pub fn make_plan(
    m: &ManifestArgs,
    h: &HostArgs,
    free_disk_bytes: Option<u64>,
) -> Result<Planned, CliError> {
    let (manifest, trust, manifest_source) = load_manifest(m)?;
    let host = host(h, free_disk_bytes)?;
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
        ..Policy::default()
    };
    let plan = plan_with_trust(&host, &manifest, &trust, &system, &policy);
    Ok(Planned {
        manifest,
        trust,
        manifest_source,
        plan,
    })
}
