//! `gpulibs mirror`'s results: a vendor's manifest mirrored, or the embedded default's wheels.

use std::path::Path;

use gpulibs_package::MirrorReport;
use gpulibs_sources::WheelTarget;
use serde::Serialize;

use crate::cmd::mirror::RECORD;
use crate::style::bytes;

/// What `gpulibs mirror MANIFEST DIR` answers: the library's [`MirrorReport`] at the top level.
#[derive(Debug, Serialize)]
pub struct MirrorOutput {
    pub schema_version: u32,
    #[serde(flatten)]
    pub report: MirrorReport,
}

/// One line per archive (copied or verified), then the manifest written.
pub fn render(out: &MirrorOutput) -> String {
    let mut human = String::new();
    for (file, size, copied) in &out.report.artifacts {
        human.push_str(&line(file, *size, *copied));
    }
    human.push_str(&format!("manifest  {}\n", out.report.manifest.display()));
    human
}

/// What `gpulibs mirror --embedded DIR` answers; also written to DIR as [`RECORD`].
#[derive(Debug, Serialize)]
pub struct EmbeddedMirrorOutput {
    pub schema_version: u32,
    /// Always `embedded`.
    pub source: &'static str,
    /// The variants whose wheels are in DIR, best first.
    pub variants: Vec<String>,
    /// The wheel tags pip was asked for.
    pub wheel_target: WheelTarget,
    pub wheels: Vec<StoredWheel>,
}

/// One wheel in DIR.
#[derive(Debug, Serialize)]
pub struct StoredWheel {
    pub component: String,
    /// Its file name in DIR.
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// False when it was already there and verified.
    pub copied: bool,
}

/// One line per wheel, the variants, the record and how to install from `dest` (with the same
/// `--gpu`/`--driver` options when `described` says the target was described by them).
pub fn render_embedded(out: &EmbeddedMirrorOutput, dest: &Path, described: bool) -> String {
    let mut human = String::new();
    for w in &out.wheels {
        human.push_str(&line(&dest.join(&w.file), w.size, w.copied));
    }
    human.push_str(&format!(
        "variants  {}\nrecord    {}\ninstall from it with `gpulibs install --offline {}`{}\n",
        out.variants.join(", "),
        dest.join(RECORD).display(),
        dest.display(),
        if described {
            " and the same --gpu/--driver options"
        } else {
            ""
        }
    ));
    human
}

fn line(file: &Path, size: u64, copied: bool) -> String {
    format!(
        "{}  {}  {}\n",
        if copied { "copied  " } else { "verified" },
        bytes(size),
        file.display()
    )
}
