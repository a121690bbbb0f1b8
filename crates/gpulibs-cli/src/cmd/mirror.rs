//! `gpulibs mirror`: a directory to install from offline (`gpulibs install --offline DIR`) or to
//! serve on a LAN, from a vendor's manifest or from the embedded default.

use std::path::{Path, PathBuf};

use gpulibs_package::{mirror_components, mirror_with, MirrorEvent, MirrorProgress, PackageError};
use gpulibs_sources::{resolve_components, Pip, WheelTarget};

use super::planning::{make_plan, HostArgs, ManifestArgs};
use crate::error::{exit, CliError};
use crate::output::mirror::{
    render, render_embedded, EmbeddedMirrorOutput, MirrorOutput, StoredWheel,
};
use crate::output::{to_json, SCHEMA_VERSION};
use crate::progress::Ui;
use crate::style::bytes;
use crate::{Context, Outcome};

/// The record `gpulibs mirror --embedded` writes into DIR: what it stored and for what.
pub const RECORD: &str = "gpulibs-mirror.json";

/// Copy a release into a directory, verifying every sha256, for offline installs or a LAN server
///
/// The directory serves `gpulibs install --offline DIR`, or any web server on a LAN.
///
/// `gpulibs mirror MANIFEST DIR` copies a vendor's manifest, its signature and every archive it
/// names (components that pip resolves, `pip:name==version`, are resolved through pip).
/// `gpulibs mirror --embedded DIR` does it for the embedded default (official ONNX Runtime
/// wheels): the wheels of the variants `gpulibs install` would try for this machine, or for the
/// one `--gpu`/`--driver`/`--cpu` describe, or of every variant with `--all`, resolved through
/// pip (its index, mirrors and credentials) and stored under their own file names, with a record
/// of what was stored (`gpulibs-mirror.json`). `gpulibs install --offline DIR` then installs
/// from DIR without pip or network.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gpulibs mirror https://example.com/app/1.0/manifest.toml /srv/mirror\n  \
gpulibs mirror --embedded /media/usb/gpulibs\n  \
gpulibs mirror --embedded --gpu 8.6 --driver 550.54.14 --driver-cuda 12.4 /media/usb/gpulibs\n  \
gpulibs install --offline /media/usb/gpulibs"
)]
pub struct MirrorArgs {
    /// MANIFEST DIR: the manifest (a local path or an `http(s)://` URL; its `.minisig` is copied
    /// too) and the directory to fill. With --embedded: DIR only.
    #[arg(value_name = "MANIFEST|DIR", num_args = 1..=2, required = true)]
    paths: Vec<String>,
    /// Mirror the embedded default (official ONNX Runtime wheels, through pip) instead of a
    /// manifest.
    #[arg(long)]
    embedded: bool,
    /// With --embedded: the wheels of every variant, not only those an install would try.
    #[arg(long, requires = "embedded")]
    all: bool,
    #[command(flatten)]
    host: HostArgs,
}

/// DIR and the manifest, from the positional arguments.
fn paths(args: &MirrorArgs) -> Result<(Option<&str>, PathBuf), CliError> {
    let usage = |what: &str| {
        CliError::new(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            what.to_string(),
        ))
        .with_hint(
            "run `gpulibs mirror MANIFEST DIR` for a vendor's release, or `gpulibs mirror \
             --embedded DIR` for the official ONNX Runtime wheels",
        )
    };
    match (args.embedded, args.paths.as_slice()) {
        (true, [dir]) => Ok((None, PathBuf::from(dir))),
        (true, _) => Err(usage(
            "--embedded takes only the directory to fill, not a manifest",
        )),
        (false, [manifest, dir]) => Ok((Some(manifest.as_str()), PathBuf::from(dir))),
        (false, _) => Err(usage("give the manifest and the directory to fill")),
    }
}

pub fn mirror_cmd(args: &MirrorArgs, ctx: &Context, json: bool) -> Result<Outcome, CliError> {
    let (manifest, dest) = paths(args)?;
    let ui = Ui::new(json || ctx.quiet, ctx.style);
    let progress = |e: &MirrorEvent<'_>| show(&ui, e);
    let result = mirror_to(args, manifest, &dest, &progress);
    ui.finish();
    result
}

/// Shows what the mirror run is doing on `ui`.
fn show(ui: &Ui, e: &MirrorEvent<'_>) {
    match e {
        MirrorEvent::Resolving { components } => ui.resolving(components),
        MirrorEvent::Download(p) => ui.download(p),
        MirrorEvent::Copying {
            component,
            bytes: n,
        } => ui.line(&format!("  {component}: copying {}", bytes(*n))),
        MirrorEvent::Present { component } => {
            ui.line(&format!("  {component}: already there, sha256 verified"))
        }
    }
}

fn mirror_to(
    args: &MirrorArgs,
    manifest: Option<&str>,
    dest: &Path,
    progress: MirrorProgress<'_>,
) -> Result<Outcome, CliError> {
    let pip = Pip::from_env();
    let target = WheelTarget::default();
    let resolve = |m: &mut gpulibs_plan::Manifest,
                   ids: &[String]|
     -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        resolve_components(m, &refs, &pip, &target)?;
        Ok(())
    };
    let Some(manifest) = manifest else {
        return embedded(args, dest, &resolve, &target, progress);
    };
    let h = &args.host;
    if h.gpu.is_some() || h.cpu || h.no_jit || h.no_reuse {
        return Err(CliError::new(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "--gpu, --cpu, --no-jit and --no-reuse choose what to mirror of the embedded default",
        ))
        .with_hint("a manifest is mirrored whole: leave them out, or mirror with --embedded"));
    }
    let out = MirrorOutput {
        schema_version: SCHEMA_VERSION,
        report: mirror_with(manifest, dest, Some(&resolve), progress).map_err(package_error)?,
    };
    Ok(Outcome {
        json: to_json(&out),
        human: render(&out),
        code: exit::OK,
    })
}

fn package_error(e: PackageError) -> CliError {
    let pip = matches!(e, PackageError::PipResolve { .. });
    let err = CliError::new(e);
    // pip's own error says what to do when it knows (`PipError`'s hint); else where pip looks.
    if pip && err.hints().is_empty() {
        err.with_hint(
            "pip resolves the wheels with its own configuration (`pip config list`): check the \
             index it uses, or set GPULIBS_PYTHON to a Python whose pip can reach one",
        )
    } else {
        err
    }
}

/// `--embedded`: the wheels of the variants an install would try (or all), through pip.
fn embedded(
    args: &MirrorArgs,
    dest: &Path,
    resolve: gpulibs_package::PipResolve<'_>,
    target: &WheelTarget,
    progress: MirrorProgress<'_>,
) -> Result<Outcome, CliError> {
    let none = ManifestArgs {
        manifest: None,
        signature: None,
        public_key: None,
        allow_unsigned: false,
    };
    let planned = make_plan(&none, &args.host, None, None)?;
    let manifest = &planned.manifest;
    let variants: Vec<String> = if args.all {
        manifest.variants.iter().map(|v| v.name.clone()).collect()
    } else {
        planned
            .candidates
            .iter()
            .map(|c| c.variant.clone())
            .collect()
    };
    if variants.is_empty() {
        let mut why = planned.plan.lines().join("\n");
        why.push_str("\nnothing to mirror: no variant of the embedded default runs there");
        return Err(CliError::new(std::io::Error::other(why)).with_hint(
            "describe the target with --gpu, --driver and --driver-cuda, or pass --all",
        ));
    }
    // Every component of those variants, not only what the plan here would download: the
    // machine installing from DIR may have none of the CUDA libraries this one has.
    let mut ids: Vec<String> = Vec::new();
    for v in manifest
        .variants
        .iter()
        .filter(|v| variants.contains(&v.name))
    {
        for id in &v.components {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
    }
    let report = mirror_components(manifest, &ids, dest, "embedded", Some(resolve), progress)
        .map_err(package_error)?;
    let wheels: Vec<StoredWheel> = report
        .artifacts
        .iter()
        .map(|(id, file, size, copied)| StoredWheel {
            component: id.clone(),
            file: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: manifest
                .components
                .iter()
                .find(|c| &c.id == id)
                .map(|c| c.archive.sha256.clone())
                .unwrap_or_default(),
            size: *size,
            copied: *copied,
        })
        .collect();
    let record = EmbeddedMirrorOutput {
        schema_version: SCHEMA_VERSION,
        source: "embedded",
        variants,
        wheel_target: target.clone(),
        wheels,
    };
    let json = to_json(&record);
    let record_path = dest.join(RECORD);
    let tmp = dest.join(format!(".{RECORD}.{}", std::process::id()));
    let text = serde_json::to_string_pretty(&json)?;
    std::fs::write(&tmp, text + "\n")
        .and_then(|()| std::fs::rename(&tmp, &record_path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CliError::new(PackageError::Io {
                path: record_path.clone(),
                source: e,
            })
        })?;
    let human = render_embedded(&record, dest, args.host.gpu.is_some());
    Ok(Outcome {
        json,
        human,
        code: exit::OK,
    })
}
