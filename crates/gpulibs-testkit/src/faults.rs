//! Fault tables: run every row of a table of fault or hostile-input cases, record each row's
//! outcome, and fail once at the end naming every row that failed (not only the first).
//!
//! With `GPULIBS_FAULT_LOG=<file>` set, each row appends one line to that file:
//! `suite<TAB>case<TAB>passed|FAILED<TAB>what was observed` (tabs and line breaks in the text
//! replaced by spaces). `scripts/fault-table.sh` runs the fault suites with it set and writes
//! `docs/fault-table.md` from the lines, so the published table is what the tests saw.

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The variable naming the file rows are appended to.
pub const LOG_VAR: &str = "GPULIBS_FAULT_LOG";

/// One table run: rows are checked by [`Table::row`], failures collected, [`Table::finish`]
/// panics with all of them.
pub struct Table {
    suite: String,
    failed: Vec<String>,
    passed: usize,
}

impl Table {
    /// A table named `suite` (what `docs/fault-table.md` groups rows under).
    pub fn new(suite: &str) -> Self {
        Self {
            suite: suite.to_string(),
            failed: Vec::new(),
            passed: 0,
        }
    }

    /// Runs `check` for the row `case`. The row passes when `check` returns; what it returns is
    /// recorded as what was observed (the outcome the row asserted, in a few words). A panic
    /// inside `check` fails the row; the panic's message is recorded.
    pub fn row(&mut self, case: &str, check: impl FnOnce() -> String) {
        let outcome = catch_unwind(AssertUnwindSafe(check));
        let (status, observed) = match outcome {
            Ok(observed) => {
                self.passed += 1;
                ("passed", observed)
            }
            Err(panic) => {
                let msg = panic_message(&panic);
                self.failed.push(format!("{case}: {msg}"));
                ("FAILED", msg)
            }
        };
        log_line(&self.suite, case, status, &observed);
    }

    /// Panics naming every failed row, or returns the number of rows that passed.
    pub fn finish(self) -> usize {
        assert!(
            self.failed.is_empty(),
            "{} of {} row(s) of `{}` failed:\n- {}",
            self.failed.len(),
            self.failed.len() + self.passed,
            self.suite,
            self.failed.join("\n- ")
        );
        self.passed
    }
}

/// Runs every row of a table side by side, one scoped thread each (rows are independent worlds:
/// their own server and root), records each row's outcome under `suite` and panics once,
/// naming every row that failed. `check` returns what the row observed (a few words) or panics.
pub fn run_rows<R: Send>(
    suite: &str,
    rows: Vec<R>,
    name: impl Fn(&R) -> String,
    check: impl Fn(R) -> String + Sync,
) -> usize {
    let check = &check;
    let results: Vec<(String, std::thread::Result<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .into_iter()
            .map(|row| {
                let case = name(&row);
                let handle = std::thread::Builder::new()
                    .name(case.clone())
                    .spawn_scoped(s, move || check(row))
                    .expect("spawn a row's thread");
                (case, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(case, h)| (case, h.join()))
            .collect()
    });
    let mut table = Table::new(suite);
    for (case, result) in results {
        table.row(&case, move || match result {
            Ok(observed) => observed,
            Err(panic) => std::panic::resume_unwind(panic),
        });
    }
    table.finish()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "panicked".to_string()
    }
}

fn one_line(text: &str) -> String {
    text.split(['\t', '\n', '\r'])
        .filter(|s| !s.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

fn log_line(suite: &str, case: &str, status: &str, observed: &str) {
    let Some(path) = std::env::var_os(LOG_VAR) else {
        return;
    };
    let line = format!(
        "{}\t{}\t{status}\t{}\n",
        one_line(suite),
        one_line(case),
        one_line(observed)
    );
    // O_APPEND: rows of tests running in parallel threads or processes interleave by line.
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{LOG_VAR}={}: {e}", path.to_string_lossy()));
    f.write_all(line.as_bytes())
        .unwrap_or_else(|e| panic!("{LOG_VAR}={}: {e}", path.to_string_lossy()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_runs_and_finish_names_all_failures() {
        let mut t = Table::new("demo");
        let mut ran = Vec::new();
        t.row("first fails", || panic!("boom one"));
        ran.push(1);
        t.row("second passes", || "fine".to_string());
        ran.push(2);
        t.row("third fails", || panic!("boom {}", 3));
        ran.push(3);
        assert_eq!(ran, [1, 2, 3]);
        let err = catch_unwind(AssertUnwindSafe(|| t.finish())).unwrap_err();
        let msg = panic_message(&err);
        assert!(msg.starts_with("2 of 3 row(s) of `demo` failed"), "{msg}");
        assert!(msg.contains("first fails: boom one"), "{msg}");
        assert!(msg.contains("third fails: boom 3"), "{msg}");
    }

    #[test]
    fn lines_are_one_line_each() {
        assert_eq!(one_line("a\tb\nc\r\n  d "), "a b c d");
    }
}
