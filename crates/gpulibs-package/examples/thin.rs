//! Thins one library for one GPU architecture: `cargo run --release -p gpulibs-package --example
//! thin -- SRC DST sm_90 [DRIVER_CUDA]`. Writes DST (never touches SRC) and prints the report.
//! Set `THIN_JSON=1` to print the whole report (every container) as JSON, and
//! `THIN_KEEP_SMALLEST=1` to keep the smallest entry of containers with nothing for the target
//! instead of emptying them.

// An example program: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args.len() > 4 {
        eprintln!("usage: thin SRC DST sm_90 [DRIVER_CUDA, e.g. 13.0]");
        return ExitCode::from(2);
    }
    let target = match args[2].parse() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let driver = match args.get(3).map(|d| d.parse()) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (src, dst) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]));
    let options = gpulibs_package::ThinOptions {
        unloadable: if std::env::var_os("THIN_KEEP_SMALLEST").is_some() {
            gpulibs_package::Unloadable::KeepSmallest
        } else {
            gpulibs_package::Unloadable::Empty
        },
    };
    match gpulibs_package::thin_file_with(&src, &dst, target, driver, &options) {
        Ok(r) => {
            if std::env::var_os("THIN_JSON").is_some() {
                println!("{}", serde_json::to_string_pretty(&r).unwrap());
            }
            println!("{}", r.summary_line());
            let mut outcomes = std::collections::BTreeMap::new();
            for c in &r.containers {
                *outcomes.entry(format!("{:?}", c.outcome)).or_insert(0) += 1;
            }
            println!("containers by outcome: {outcomes:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
