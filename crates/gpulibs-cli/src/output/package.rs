//! `gpulibs package`'s result.

use gpulibs_package::PackageReport;
use serde::Serialize;

use crate::style::{bytes, table, Cell, Style};

/// What `gpulibs package` answers: the library's [`PackageReport`] at the top level.
#[derive(Debug, Serialize)]
pub struct PackageOutput {
    pub schema_version: u32,
    #[serde(flatten)]
    pub report: PackageReport,
}

/// The archives written, the manifest, its signature and notices, what was pruned, then the
/// warnings in their two groups.
pub fn render(out: &PackageOutput, style: Style) -> String {
    let report = &out.report;
    let mut rows = vec![["component", "archive", "files", "unpacked"]
        .map(|h| Cell::styled(h, Style::dim))
        .into_iter()
        .collect::<Vec<_>>()];
    for c in &report.components {
        rows.push(vec![
            Cell::styled(c.id.clone(), Style::bold),
            Cell::new(bytes(c.size)),
            Cell::new(c.files.len().to_string()),
            Cell::new(bytes(c.unpacked_size)),
        ]);
    }
    let mut human = table(style, &rows);
    human.push_str(&format!("\nmanifest  {}\n", report.manifest.display()));
    if let Some(sig) = &report.signature {
        human.push_str(&format!("signature {}\n", sig.display()));
    }
    human.push_str(&format!("notices   {}\n", report.notices.display()));
    for p in &report.pruned {
        human.push_str(&format!(
            "{} {p} (nothing in the package loads it)\n",
            style.dim("pruned:")
        ));
    }
    let groups = [
        (
            &report.warnings.must_act,
            style.warn("must act: the code loads these and fails where they are missing"),
            format!("{} ", style.warn("warning:")),
        ),
        (
            &report.warnings.information,
            style.dim("for information: optional loads, nothing to do unless the app uses them"),
            String::new(),
        ),
    ];
    for (warnings, title, mark) in groups.iter().filter(|g| !g.0.is_empty()) {
        human.push_str(&format!("\n{title}\n"));
        for w in warnings.iter() {
            human.push_str(&format!(
                "  {mark}{} (loaded by {})\n",
                w.message,
                w.loaded_by.join(", ")
            ));
        }
    }
    human
}
