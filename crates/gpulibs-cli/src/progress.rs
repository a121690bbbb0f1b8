//! Progress for people on stderr: bars on a terminal, plain lines otherwise, nothing with
//! `--json` or `--quiet`. `install` and `mirror` show their steps and downloads through it.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use gpulibs_fetch::Stage;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::style::{bytes, Style};

/// Progress for people: bars on a terminal, plain lines otherwise, nothing when silent.
pub struct Ui {
    pub mode: Mode,
    pub style: Style,
    state: Mutex<UiState>,
}

/// How progress is shown.
pub enum Mode {
    Quiet,
    Lines,
    Bars(MultiProgress),
}

#[derive(Default)]
struct UiState {
    bars: HashMap<String, ProgressBar>,
    started: HashMap<String, Instant>,
    announced: HashMap<String, bool>,
}

impl Ui {
    /// `silent`: `--json` or `--quiet`.
    pub fn new(silent: bool, style: Style) -> Ui {
        let mode = if silent {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Ui {
            mode,
            style,
            state: Mutex::new(UiState::default()),
        }
    }

    /// A line of its own (above the bars on a terminal).
    pub fn line(&self, text: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => eprintln!("{text}"),
            Mode::Bars(m) => {
                let _ = m.println(text);
            }
        }
    }

    /// pip is being asked for the download URLs of `components`.
    pub fn resolving(&self, components: &[String]) {
        self.line(&format!(
            "{} {}",
            self.style.dim("asking pip for the URLs of"),
            components.join(", ")
        ));
    }

    /// One download's progress: a bar on a terminal, its start and end as lines otherwise.
    pub fn download(&self, p: &gpulibs_fetch::Progress) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let name = p.artifact.to_string();
        match &self.mode {
            Mode::Bars(multi) => {
                let bar = st.bars.entry(name.clone()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(p.total.unwrap_or(0)));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(name.clone());
                    bar
                });
                if let Some(total) = p.total {
                    bar.set_length(total);
                }
                bar.set_position(p.downloaded);
                match p.stage {
                    Stage::Retrying { reason, delay } => {
                        bar.set_message(format!("retry in {:.0?}: {reason}", delay))
                    }
                    Stage::Restarting => bar.set_message("restarting"),
                    Stage::Verified => bar.finish_with_message("verified"),
                    _ => {}
                }
            }
            Mode::Lines => {
                let first = !st.announced.contains_key(&name);
                match p.stage {
                    Stage::Starting if first => {
                        st.announced.insert(name.clone(), true);
                        st.started.insert(name.clone(), Instant::now());
                        let resumed = if p.resumed_from > 0 {
                            format!(", resuming at {}", bytes(p.resumed_from))
                        } else {
                            String::new()
                        };
                        eprintln!(
                            "  {name}: {} from {}{resumed}",
                            p.total.map(bytes).unwrap_or_else(|| "?".into()),
                            p.source
                        );
                    }
                    Stage::Retrying { reason, delay } => {
                        eprintln!("  {name}: retrying in {delay:.1?}: {reason}")
                    }
                    Stage::Restarting => eprintln!("  {name}: starting over from byte 0"),
                    Stage::Verified => {
                        let secs = st
                            .started
                            .get(&name)
                            .map(|t| t.elapsed().as_secs_f64())
                            .unwrap_or(0.0)
                            .max(1e-3);
                        let fresh = p.downloaded - p.resumed_from;
                        eprintln!(
                            "  {name}: {} verified ({}/s)",
                            bytes(p.downloaded),
                            bytes((fresh as f64 / secs) as u64)
                        );
                    }
                    _ => {}
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Leaves the bars that did not finish as they are.
    pub fn finish(&self) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for bar in st.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}
