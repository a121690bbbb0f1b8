//! The results of the install root's life cycle: `status`, `rollback`, `gc`, `remove`, `env`.

use std::path::{Path, PathBuf};

use gpulibs_install::{Health, Verdict};
use gpulibs_store::{Env, EnvFormat, GcReport, InstallRecord, RemoveReport};
use serde::{Deserialize, Serialize};

use crate::style::{bytes, Style};

/// What `gpulibs status` answers.
#[derive(Debug, Serialize)]
pub struct StatusOutput {
    pub schema_version: u32,
    /// The app's install root.
    pub root: String,
    /// The shared store's component directory.
    pub store: String,
    /// The active install against this machine.
    pub health: Health,
    /// The active install's record (`install.json`); null when nothing is installed.
    pub install: Option<InstallRecord>,
    /// With `--verify`: what the verification found; null otherwise.
    pub verified: Option<Verdict>,
}

/// `ok:`/`not ok:` and the health message, the verification, then the install and what is
/// missing of it.
pub fn render_status(out: &StatusOutput, s: Style) -> String {
    let health = &out.health;
    let mut human = format!(
        "{} {}\n",
        if health.ok {
            s.good("ok:")
        } else {
            s.warn("not ok:")
        },
        health.message
    );
    if let Some(v) = &out.verified {
        human.push_str(&format!(
            "{} {}\n",
            if v.passed {
                s.good("verified:")
            } else {
                s.bad("verification failed:")
            },
            v.summary
        ));
    }
    if let Some(r) = &out.install {
        human.push_str(&format!(
            "{} {} (release {}, installed {})\n{} {}\n{} {}\n",
            s.dim("variant"),
            r.variant,
            r.release.as_deref().unwrap_or("-"),
            r.installed_at,
            s.dim("root   "),
            out.root,
            s.dim("store  "),
            out.store
        ));
        for p in &health.problems {
            human.push_str(&format!("  {} {p}\n", s.bad("missing:")));
        }
    }
    human
}

/// What `gpulibs rollback` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOutput {
    pub schema_version: u32,
    /// The install id now active.
    pub active: String,
    /// Its variant.
    pub variant: String,
    /// The install id now previous (what a second rollback returns to); null when none.
    pub previous: Option<String>,
}

pub fn render_rollback(out: &RollbackOutput, s: Style) -> String {
    format!(
        "{} {} ({}) is active again{}\n",
        s.good("rolled back:"),
        out.active,
        out.variant,
        out.previous
            .as_ref()
            .map(|p| format!("; {p} is now previous"))
            .unwrap_or_default()
    )
}

/// What `gpulibs gc` answers: the store's report, its fields at the top level.
#[derive(Debug, Serialize)]
pub struct GcOutput {
    pub schema_version: u32,
    #[serde(flatten)]
    pub report: GcReport,
}

pub fn render_gc(out: &GcOutput, s: Style) -> String {
    let report = &out.report;
    let mut human = format!(
        "{} {} install(s), {} component(s), {} temporary leftover(s); freed {}\n",
        s.good("removed"),
        report.removed_installs.len(),
        report.removed_components.len(),
        report.removed_temporaries.len(),
        bytes(report.freed_bytes)
    );
    for id in &report.removed_installs {
        human.push_str(&format!("  {} {id}\n", s.dim("install  ")));
    }
    for sha in &report.removed_components {
        human.push_str(&format!("  {} {sha}\n", s.dim("component")));
    }
    human.push_str(&shared_store_lines(
        s,
        &report.kept_for_others,
        &report.other_roots,
        &report.unreadable_roots,
    ));
    for r in &report.dropped_roots {
        human.push_str(&format!(
            "  {} {} (it no longer exists)\n",
            s.dim("forgot   "),
            r.display()
        ));
    }
    human
}

/// What `gpulibs remove --yes` answers: the store's report, its fields at the top level, and
/// whether there was anything to remove.
#[derive(Debug, Serialize)]
pub struct RemoveOutput {
    pub schema_version: u32,
    /// False when nothing was installed under the root (the report is then empty).
    pub removed: bool,
    #[serde(flatten)]
    pub report: RemoveReport,
}

impl RemoveOutput {
    /// Nothing installed under `root`: nothing removed.
    pub fn nothing(root: &Path) -> Self {
        Self {
            schema_version: super::SCHEMA_VERSION,
            removed: false,
            report: RemoveReport {
                root: root.to_path_buf(),
                ..RemoveReport::default()
            },
        }
    }
}

pub fn render_remove(out: &RemoveOutput, s: Style) -> String {
    let report = &out.report;
    if !out.removed {
        return format!("nothing is installed under {}\n", report.root.display());
    }
    let mut human = if report.root_removed {
        format!(
            "{} {} ({})\n",
            s.good("removed"),
            report.root.display(),
            bytes(report.freed_bytes)
        )
    } else {
        format!(
            "{} gpulibs' files from {} ({}); the directory stays, holding {} entr{} gpulibs did \
             not put there:\n",
            s.good("removed"),
            report.root.display(),
            bytes(report.freed_bytes),
            report.kept.len(),
            if report.kept.len() == 1 { "y" } else { "ies" }
        )
    };
    for p in &report.kept {
        human.push_str(&format!("  {} {}\n", s.warn("kept"), p.display()));
    }
    if !report.removed_components.is_empty() {
        human.push_str(&format!(
            "{} {} component(s) no other app uses from the shared store\n",
            s.good("removed"),
            report.removed_components.len()
        ));
    }
    human.push_str(&shared_store_lines(
        s,
        &report.kept_for_others,
        &[],
        &report.unreadable_roots,
    ));
    if let Some(p) = &report.seed_info_removed {
        human.push_str(&format!("{} {}\n", s.good("removed"), p.display()));
    }
    if let Some(p) = &report.seed_info_kept {
        human.push_str(&format!(
            "{} {} was edited since gpulibs wrote it; left in place\n",
            s.warn("kept"),
            p.display()
        ));
    }
    human
}

/// What `gc` and `remove` left in the shared store for other apps, and why.
fn shared_store_lines(
    s: Style,
    kept_for_others: &[String],
    other_roots: &[PathBuf],
    unreadable: &[PathBuf],
) -> String {
    let mut out = String::new();
    if !kept_for_others.is_empty() {
        out.push_str(&format!(
            "{} {} component(s) another app's install still uses\n",
            s.warn("kept"),
            kept_for_others.len()
        ));
    }
    if !other_roots.is_empty() {
        out.push_str(&format!(
            "  {} {}\n",
            s.dim("shared with"),
            other_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for r in unreadable {
        out.push_str(&format!(
            "{} {} uses the shared store but could not be read; no shared component was \
             deleted (make it readable, or remove it, and run `gpulibs gc` again)\n",
            s.warn("kept"),
            r.display()
        ));
    }
    out
}

/// What `gpulibs env` answers: the same object for `--json` and `--format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvOutput {
    pub schema_version: u32,
    /// The active install.
    pub install_id: String,
    /// The directories for `LD_LIBRARY_PATH`, in order.
    pub lib_dirs: Vec<String>,
    /// `lib_dirs` joined with `:`.
    pub ld_library_path: String,
    /// The ONNX Runtime library, for `ORT_DYLIB_PATH`.
    pub ort_dylib_path: String,
    /// Libraries to `dlopen` (with `RTLD_GLOBAL`) before ONNX Runtime, in dependency order.
    pub preload: Vec<String>,
}

impl EnvOutput {
    pub fn new(env: &Env) -> Self {
        let text = |p: &PathBuf| p.to_string_lossy().into_owned();
        Self {
            schema_version: super::SCHEMA_VERSION,
            install_id: env.install_id.clone(),
            lib_dirs: env.lib_dirs.iter().map(text).collect(),
            ld_library_path: env.ld_library_path(),
            ort_dylib_path: text(&env.ort_dylib_path),
            preload: env.preload.iter().map(text).collect(),
        }
    }

    fn env(&self) -> Env {
        Env {
            install_id: self.install_id.clone(),
            lib_dirs: self.lib_dirs.iter().map(PathBuf::from).collect(),
            ort_dylib_path: PathBuf::from(&self.ort_dylib_path),
            preload: self.preload.iter().map(PathBuf::from).collect(),
        }
    }
}

/// The environment in `format`: export lines, systemd lines, or this object as JSON.
pub fn render_env(out: &EnvOutput, format: EnvFormat) -> String {
    match format {
        EnvFormat::Json => {
            let mut s = serde_json::to_string_pretty(out).unwrap_or_default();
            s.push('\n');
            s
        }
        EnvFormat::Sh | EnvFormat::Systemd => out.env().render(format),
    }
}
