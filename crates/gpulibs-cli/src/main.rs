//! The `gpulibs` command line.
//!
//! Owns: argument parsing, rendering the stage crates' reports for people (short aligned tables,
//! colour only on a terminal and never under `NO_COLOR`) and for machines (`--json`, the reports
//! serialised as they are), logging set-up (`-v`), and turning errors into a message with its
//! cause chain and a hint. Exit codes are defined in [`error::exit`].
//!
//! Must not touch: any rule or parsing of its own. Detection, inspection and every decision
//! live in the library crates; this crate calls them and prints what they return.

mod cmd;
mod error;
mod interrupt;
mod output;
mod progress;
mod style;
mod version;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::exit;
use crate::style::{ColorChoice, Style};

const AFTER_HELP: &str = "\
Exit codes:
  0  done, and the answer is positive
  1  failed; the message says why and what to do
  2  the command line was wrong: an unknown flag, or a value that does not
     parse (--gpu abc, --shape x, --app ../x); with --json the error is a JSON
     object on stdout as for any other failure
  3  done, but the answer is negative: no usable GPU (detect), a library that
     cannot run on the GPU asked about (inspect), nothing installable (plan,
     install), the active install no longer fits this machine (status)
  4  verify ran the model on the CPU only (no GPU, or --device cpu)
  130, 143  interrupted by SIGINT (Ctrl-C) or SIGTERM; temporary files are
     removed, the active install is unchanged, a partial download resumes
     on the next run

Environment:
  GPULIBS_HOME           the install root, instead of $XDG_DATA_HOME/APP/gpu-libs
  GPULIBS_STORE          the shared component store's home, instead of
                         $XDG_DATA_HOME/gpulibs (docs/store.md)
  XDG_DATA_HOME          where install roots live (default ~/.local/share)
  XDG_CONFIG_HOME        where `install --app` writes gpu-package-info.json
                         (default ~/.config)
  GPULIBS_PYTHON         the Python whose pip resolves wheels (default python3)
  GPULIBS_PUBLIC_KEY     the minisign public key manifests must be signed with
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY
                         proxies for downloads (lower-case names work too)
  SSL_CERT_FILE, SSL_CERT_DIR
                         extra certificate authorities to trust (PEM)
  ORT_DYLIB_PATH         the ONNX Runtime library verify loads (--ort wins)
  CUDA_VISIBLE_DEVICES   which GPUs count, as CUDA applications see them
  CUDA_DEVICE_ORDER      FASTEST_FIRST (default) or PCI_BUS_ID
  GPULIBS_NVML_LIBRARY   load this NVML library instead of libnvidia-ml.so.1
  GPULIBS_LOG            log filter, e.g. `debug` or `gpulibs_detect=trace` (like
                         -v); ONNX Runtime's own lines are `onnxruntime`
  NO_COLOR               any non-empty value turns colour off

Start with `gpulibs install` (or `gpulibs detect` to look first); `gpulibs <command> --help`\nexplains each command.";

/// Make an ONNX Runtime application run on whatever NVIDIA GPU this machine has, and prove it.
///
/// gpulibs finds the GPUs and driver (without spawning tools), reads which GPU kernels a CUDA
/// library carries, plans the smallest set of libraries that runs here (saying why every other
/// candidate was rejected), installs it atomically, and verifies it by running a model on the
/// GPU with CPU fallback forbidden. `gpulibs install` does the whole job.
#[derive(Debug, Parser)]
#[command(
    name = "gpulibs",
    version = version::SHORT.as_str(),
    after_help = AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    /// Print machine-readable JSON on stdout instead of tables (field names are stable).
    #[arg(long, global = true)]
    json: bool,

    /// Log what gpulibs does to stderr; repeat for more (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Print errors only: no tables, no progress, no warnings (the exit code still tells; the
    /// `env` and `completions` scripts are still printed).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    color: ColorChoice,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Detect(cmd::detect::Args),
    Inspect(cmd::inspect::Args),
    Plan(cmd::plan::Args),
    Install(cmd::install::Args),
    Status(cmd::lifecycle::StatusArgs),
    Rollback(cmd::lifecycle::RollbackArgs),
    Gc(cmd::lifecycle::GcArgs),
    Remove(cmd::lifecycle::RemoveArgs),
    Env(cmd::lifecycle::EnvArgs),
    Verify(cmd::verify::Args),
    Recommend(cmd::recommend::Args),
    Package(cmd::package::PackageArgs),
    Mirror(cmd::mirror::MirrorArgs),
    Version(version::Args),
    Completions(CompletionsArgs),
}

/// Print a shell completion script to stdout.
///
/// bash: `gpulibs completions bash > ~/.local/share/bash-completion/completions/gpulibs`;
/// zsh: `gpulibs completions zsh > ~/.zfunc/_gpulibs` (with `~/.zfunc` in `fpath`);
/// fish: `gpulibs completions fish > ~/.config/fish/completions/gpulibs.fish`.
#[derive(Debug, clap::Args)]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Whether the command's text is what a script consumes (`eval "$(gpulibs env)"`, a completion
/// file), printed even with `--quiet`, which silences only what people read.
fn is_product(command: &Command) -> bool {
    matches!(command, Command::Env(_) | Command::Completions(_))
}

/// The script as text; with `--json`, `{"schema_version", "shell", "script"}`.
fn completions(args: &CompletionsArgs) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "gpulibs", &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    Outcome {
        json: serde_json::json!({
            "schema_version": output::SCHEMA_VERSION,
            "shell": args.shell.to_string(),
            "script": script,
        }),
        human: script,
        code: exit::OK,
    }
}

/// What a command hands back: JSON for `--json`, text for people, and the exit code.
pub struct Outcome {
    pub json: serde_json::Value,
    pub human: String,
    pub code: u8,
}

/// What every command gets besides its own arguments.
pub struct Context {
    pub style: Style,
    /// `--quiet`: no progress, no tables; errors only.
    pub quiet: bool,
}

fn init_logging(verbose: u8, quiet: bool, style: Style) {
    let default = match verbose {
        _ if quiet => "error",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("GPULIBS_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(style.color())
        .with_target(verbose >= 2);
    // Times only where the order of many lines matters (`-vv` and more): a warning shown by
    // default reads as a line of the command's output, not of a log file.
    if verbose >= 2 {
        fmt.init();
    } else {
        fmt.without_time().init();
    }
}

fn main() -> ExitCode {
    // First, while this process has one thread: verify and install load ONNX Runtime, which
    // otherwise leaves telemetry files in the user's home and temporary directory.
    gpulibs_verify::disable_ort_telemetry();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // Still one thread: a private temporary directory, and SIGINT/SIGTERM handled by cleaning
    // up and exiting 130/143 (see `interrupt`). Dropped (the directory removed) at the end.
    let _scope = interrupt::install();
    let style = if cli.json {
        Style::plain()
    } else {
        Style::new(cli.color)
    };
    init_logging(cli.verbose, cli.quiet, Style::for_stderr(cli.color));
    let ctx = Context {
        style,
        quiet: cli.quiet,
    };

    let result = match &cli.command {
        Command::Detect(args) => cmd::detect::run(args, &ctx),
        Command::Inspect(args) => cmd::inspect::run(args, &ctx),
        Command::Plan(args) => cmd::plan::run(args, &ctx),
        Command::Install(args) => cmd::install::run(args, &ctx, cli.json),
        Command::Status(args) => cmd::lifecycle::status(args, &ctx),
        Command::Rollback(args) => cmd::lifecycle::rollback(args, &ctx),
        Command::Gc(args) => cmd::lifecycle::gc(args, &ctx),
        Command::Remove(args) => cmd::lifecycle::remove(args, &ctx),
        Command::Env(args) => cmd::lifecycle::env(args, &ctx),
        Command::Verify(args) => cmd::verify::run(args, &ctx),
        Command::Recommend(args) => cmd::recommend::run(args, &ctx),
        Command::Package(args) => cmd::package::package_cmd(args, &ctx, cli.json),
        Command::Mirror(args) => cmd::mirror::mirror_cmd(args, &ctx, cli.json),
        Command::Version(args) => Ok(version::run(args)),
        Command::Completions(args) => Ok(completions(args)),
    };

    let mut stdout = std::io::stdout().lock();
    match result {
        Ok(outcome) => {
            let written = if cli.json {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&outcome.json).unwrap_or_default()
                )
            } else if cli.quiet && !is_product(&cli.command) {
                Ok(())
            } else {
                write!(stdout, "{}", outcome.human)
            };
            // A closed pipe (`gpulibs detect | head -1`) is not an error worth a message.
            let _ = written;
            ExitCode::from(outcome.code)
        }
        Err(err) => {
            if cli.json {
                let _ = writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&err.to_json()).unwrap_or_default()
                );
            } else {
                eprint!("{}", err.render(Style::for_stderr(cli.color)));
            }
            err.exit_code()
        }
    }
}

/// A command line clap refused. `--help` and `--version` print as clap does; anything else exits
/// 2 and, with `--json` anywhere before `--`, is a JSON error object on stdout like every other
/// failure (`{"error": {"message", "causes", "hint", "hints", "exit_code"}}`).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::from(exit::OK);
    }
    if !wants_json() {
        let _ = e.print();
        return ExitCode::from(exit::USAGE);
    }
    let text = e.render().to_string();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let message = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    let hints: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tip: "))
        .map(str::to_string)
        .chain(["`gpulibs --help` lists the commands and options".to_string()])
        .collect();
    let json = serde_json::json!({
        "error": {
            "message": message,
            "causes": [],
            "hint": hints.first(),
            "hints": hints,
            "exit_code": exit::USAGE,
        }
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&json).unwrap_or_default()
    );
    ExitCode::from(exit::USAGE)
}

/// Whether `--json` was on the command line clap could not parse (before any `--`).
fn wants_json() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
