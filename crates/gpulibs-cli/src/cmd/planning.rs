//! What `plan` and `install` share: reading the manifest (a file, an `http(s)://` URL, or the
//! embedded default), checking its signature, making a URL manifest's relative archive URLs
//! absolute, describing this machine, and calling the planner.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gpulibs_detect::{detect, ComputeCapability, CudaVersion, DetectOptions};
use gpulibs_fetch::{
    fetch_document, resolve_url, FetchError, FetchOptions, NetworkEnv, DOCUMENT_MAX_BYTES,
};
use gpulibs_plan::{
    candidates, check_manifest, check_signature, human_bytes, plan_with_trust, ChosenVariant,
    DriverVersion, Host, Manifest, Plan, Policy, SystemInventory, Trust,
};
use gpulibs_sources::{embedded_default, CoverageTable, SystemSearch, PIP_URL_SCHEME};

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

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| {
        CliError::new(std::io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", path.display()),
        ))
        .with_hint("check the path given to --manifest / --signature")
    })
}

/// The most bytes read for a signature: a minisign signature is a few hundred.
const SIGNATURE_MAX_BYTES: u64 = 64 * 1024;

fn is_url(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Downloads a manifest or signature with the user's proxies and CA bundles; `None` on 404.
fn download(url: &str, max_bytes: u64, what: &str) -> Result<Option<Vec<u8>>, CliError> {
    let mut opts = FetchOptions::new(std::env::temp_dir());
    opts.network = NetworkEnv::from_env();
    fetch_document(url, max_bytes, &opts).map_err(|e| match e {
        FetchError::TooLarge { .. } => CliError::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the {what} at {url} is larger than {} ({max_bytes} bytes), the most gpulibs \
                 reads for one: refused",
                human_bytes(max_bytes)
            ),
        ))
        .with_hint(format!(
            "check the URL given to --{what}: it serves something else"
        )),
        e => CliError::new(e).with_hint(format!(
            "check the URL given to --{what} and the network or proxy settings (HTTPS_PROXY, \
             NO_PROXY, SSL_CERT_FILE)"
        )),
    })
}

/// The signature text from `spec` (a path or URL). A missing file or a 404 is `None` when the
/// location is the default one (`explicit` false); an explicit `--signature` must exist.
fn read_signature(spec: &str, explicit: bool) -> Result<Option<String>, CliError> {
    let bytes = if is_url(spec) {
        match download(spec, SIGNATURE_MAX_BYTES, "signature")? {
            Some(bytes) => bytes,
            None if explicit => {
                return Err(CliError::new(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no signature at {spec} (HTTP 404)"),
                ))
                .with_hint("check the URL given to --signature"))
            }
            None => return Ok(None),
        }
    } else {
        match std::fs::read(spec) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
            Err(e) => {
                return Err(CliError::new(std::io::Error::new(
                    e.kind(),
                    format!("cannot read {spec}: {e}"),
                ))
                .with_hint("check the path given to --signature"))
            }
        }
    };
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Makes every relative archive URL (and mirror) of a manifest read from `base` absolute
/// against it (RFC 3986: `a.tar.zst` next to `https://h/rel/manifest.toml` is
/// `https://h/rel/a.tar.zst`). Absolute URLs and `pip:` placeholders are left as they are.
pub fn absolutize_urls(manifest: &mut Manifest, base: &str) {
    let resolve = |url: &mut String| {
        if url.starts_with(PIP_URL_SCHEME) {
            return;
        }
        if let Some(absolute) = resolve_url(base, url) {
            *url = absolute;
        }
    };
    for component in &mut manifest.components {
        resolve(&mut component.archive.url);
        component.archive.mirrors.iter_mut().for_each(resolve);
    }
}

struct Loaded {
    manifest: Manifest,
    trust: Trust,
    source: String,
    dir: Option<PathBuf>,
}

fn load_manifest(args: &ManifestArgs) -> Result<Loaded, CliError> {
    let Some(spec) = &args.manifest else {
        let manifest = embedded_default(CoverageTable::embedded());
        check_manifest(&manifest).map_err(|e| {
            CliError::new(e).with_hint("the manifest built into gpulibs is broken: report it")
        })?;
        return Ok(Loaded {
            manifest,
            trust: Trust::BuiltLocally,
            source: "embedded (official ONNX Runtime wheels through pip)".into(),
            dir: None,
        });
    };
    let remote = is_url(spec);
    let (bytes, source, dir) = if remote {
        let bytes = download(spec, DOCUMENT_MAX_BYTES, "manifest")?.ok_or_else(|| {
            CliError::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no manifest at {spec} (HTTP 404)"),
            ))
            .with_hint("check the URL given to --manifest")
        })?;
        (bytes, spec.clone(), None)
    } else {
        let path = PathBuf::from(spec.strip_prefix("file://").unwrap_or(spec));
        let bytes = read(&path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (bytes, path.display().to_string(), Some(dir))
    };
    let sig_spec = args
        .signature
        .clone()
        .unwrap_or_else(|| format!("{source}.minisig"));
    let signature = read_signature(&sig_spec, args.signature.is_some())?;
    let missing = if signature.is_none() {
        format!(" (no signature at {sig_spec})")
    } else {
        String::new()
    };
    let trust = check_signature(
        &bytes,
        signature.as_deref(),
        args.public_key.as_deref(),
        args.allow_unsigned,
    )
    .map_err(|e| {
        CliError::new(e).with_hint(format!(
            "the manifest {source}{missing} is not trusted: pin the vendor's key with \
             --public-key or GPULIBS_PUBLIC_KEY, or pass --allow-unsigned if you know where it \
             came from"
        ))
    })?;
    // Read and validated in one step, as every user of a manifest does.
    let mut manifest = gpulibs_plan::load_manifest(&bytes).map_err(|e| {
        let hint = match &e {
            gpulibs_plan::ManifestError::Invalid { .. } => format!(
                "{source} breaks the rules of docs/manifest.md (Validation) and was not \
                 used: report it to the vendor"
            ),
            _ => format!("{source} is not a gpulibs release manifest this version reads"),
        };
        CliError::new(e).with_hint(hint)
    })?;
    if remote {
        absolutize_urls(&mut manifest, spec);
    }
    Ok(Loaded {
        manifest,
        trust,
        source,
        dir,
    })
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
    let Loaded {
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
