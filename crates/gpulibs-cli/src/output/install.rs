//! `gpulibs install`'s result: the install, or why nothing was installed.

use gpulibs_install::{Action, AttemptResult, InstallReport, VerifyState};
use gpulibs_plan::{Plan, Trust, Warning};
use gpulibs_store::Adopted;
use serde::Serialize;

use crate::cmd::plan::why_words;
use crate::style::{bytes, table, Cell, Style};

/// What `gpulibs install` answers when it installed (or found the install up to date): the
/// library's [`InstallReport`] (each component with why it comes from where it does), and how
/// far the manifest was trusted.
#[derive(Debug, Serialize)]
pub struct InstallOutput {
    pub schema_version: u32,
    /// Always true here; false in [`InstallRefused`].
    pub installed: bool,
    #[serde(flatten)]
    pub report: InstallReport,
    pub trust: Trust,
    pub warnings: Vec<Warning>,
    /// The seed's flat libraries taken over into a generation (`--app`), when that happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted: Option<Adopted>,
}

/// The install for people: the adoption (once), the summary, then the warnings.
pub fn render(out: &InstallOutput, app: Option<&str>, style: Style) -> String {
    let mut human = out
        .adopted
        .as_ref()
        .map(|a| {
            format!(
                "{} {} libraries the seed's installer left in {} into install {} ({}), not \
                 verified; `gpulibs rollback` returns to them\n",
                style.dim("adopted"),
                a.files.len(),
                out.report.root.display(),
                a.id,
                a.lib.display()
            )
        })
        .unwrap_or_default();
    human.push_str(&summary(&out.report, app, style));
    for w in &out.warnings {
        human.push_str(&style.warn(&format!("warning: {w}")));
        human.push('\n');
    }
    human
}

/// What `gpulibs install` answers when nothing may be installed (exit 3): the plan, whose
/// outcome says why.
#[derive(Debug, Serialize)]
pub struct InstallRefused {
    pub schema_version: u32,
    /// Always false.
    pub installed: bool,
    pub plan: Plan,
}

pub fn render_refused(out: &InstallRefused) -> String {
    let mut human = out.plan.lines().join("\n");
    human.push_str("\nnothing was installed\n");
    human
}

fn summary(r: &InstallReport, app: Option<&str>, style: Style) -> String {
    let mut out = String::new();
    let secs = r.elapsed_ms as f64 / 1000.0;
    if r.up_to_date {
        out.push_str(&format!(
            "{} install {} ({}) is already active; nothing to do ({secs:.1} s)\n",
            style.good("up to date:"),
            r.install_id,
            r.variant
        ));
    } else {
        out.push_str(&format!(
            "{} {} (variant {}, release {}) in {secs:.1} s\n",
            style.good("installed"),
            r.install_id,
            r.variant,
            r.release.as_deref().unwrap_or("-")
        ));
    }
    let mut rows = vec![["component", "version", "how", "why", "bytes"]
        .map(|h| Cell::styled(h, Style::dim))
        .into_iter()
        .collect::<Vec<_>>()];
    for c in &r.components {
        let why = c.why.as_ref().map(why_words).unwrap_or_default();
        let how = match c.action {
            Action::Downloaded if c.resumed_bytes > 0 => {
                format!("downloaded (resumed at {})", bytes(c.resumed_bytes))
            }
            Action::Downloaded => "downloaded".into(),
            Action::Offline => "offline file".into(),
            Action::Stored => "already in the store".into(),
            Action::System => format!("this machine: {}", c.source),
        };
        rows.push(vec![
            Cell::styled(c.id.clone(), Style::bold),
            Cell::new(c.version.clone()),
            Cell::new(how),
            Cell::new(why),
            Cell::new(if c.bytes > 0 {
                bytes(c.bytes)
            } else {
                "-".into()
            }),
        ]);
    }
    out.push_str(&table(style, &rows));
    // `downloaded_bytes` also counts what was read from `--offline DIR`: say which is which.
    let offline: u64 = r
        .components
        .iter()
        .filter(|c| c.action == Action::Offline)
        .map(|c| c.bytes)
        .sum();
    let fetched = if offline > 0 && offline == r.downloaded_bytes {
        format!("read {} from the offline directory", bytes(offline))
    } else if offline > 0 {
        format!(
            "downloaded {}, read {} from the offline directory",
            bytes(r.downloaded_bytes - offline),
            bytes(offline)
        )
    } else {
        format!("downloaded {}", bytes(r.downloaded_bytes))
    };
    out.push_str(&format!(
        "{fetched}{}, {} component(s) reused from the store\n",
        if r.resumed_bytes > 0 {
            format!(" (+{} resumed)", bytes(r.resumed_bytes))
        } else {
            String::new()
        },
        r.reused_components
    ));
    if r.attempts.len() > 1 {
        for (i, a) in r.attempts.iter().enumerate() {
            let result = match a.result {
                AttemptResult::Activated => style.good("activated"),
                AttemptResult::UpToDate => style.good("up to date"),
                AttemptResult::VerificationFailed => style.bad("failed verification"),
            };
            out.push_str(&format!(
                "{} {}. {}{}: {result}: {}\n",
                style.dim("attempt:"),
                i + 1,
                a.label,
                if a.reuses_system {
                    " (reusing libraries of this machine)"
                } else {
                    ""
                },
                a.summary
            ));
        }
    }
    match &r.verify {
        VerifyState::Passed { summary, .. } => {
            out.push_str(&format!("{} {summary}\n", style.good("verify:")))
        }
        VerifyState::Skipped { why } => {
            out.push_str(&format!("{} skipped ({why})\n", style.dim("verify:")))
        }
        VerifyState::Deferred { why, on_target } => out.push_str(&format!(
            "{} deferred: {why}; the install is recorded as not yet verified. On a machine \
             with that GPU, after copying the root, run `{on_target}` to prove it and record \
             the proof (`gpulibs status` shows it until then)\n",
            style.warn("verify:")
        )),
    }
    if let Some(w) = &r.why_cpu {
        out.push_str(&format!(
            "{} CPU runtime: {}\n",
            style.warn("not GPU:"),
            w.reason
        ));
        if let Some(fix) = &w.fix {
            out.push_str(&format!("{} {fix}\n", style.dim("fix:    ")));
        }
    }
    if let Some(prev) = &r.previous {
        out.push_str(&format!(
            "{} {prev} (`gpulibs rollback` returns to it)\n",
            style.dim("previous:")
        ));
    }
    if let Some(receipt) = &r.seed_receipt {
        out.push_str(&format!(
            "{} {}\n",
            style.dim("receipt: "),
            receipt.display()
        ));
    }
    if !r.system_paths.is_empty() {
        out.push_str(&format!(
            "{} reused from this machine, not copied: `gpulibs env` and `activate()` preload them \
             and `gpulibs status` reports them if they go or change (then run `gpulibs install` \
             again, or with --no-reuse): {}\n",
            style.dim("system:"),
            r.system_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push_str(&format!(
        "{} {}\n{} {}\n",
        style.dim("root:    "),
        r.root.display(),
        style.dim("library: "),
        // The view's name, stable across updates and rollbacks (what `gpulibs env` prints).
        r.root.join(gpulibs_store::ORT_UNVERSIONED).display()
    ));
    out.push_str(&format!(
        "{} eval \"$(gpulibs env{})\"\n",
        style.dim("use it:  "),
        app.map(|a| format!(" --app {a}")).unwrap_or_default()
    ));
    out
}
