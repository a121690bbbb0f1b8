//! Packages libraries without the CLI: `cargo run --release -p gpulibs-package --example package
//! -- --out DIR [--per-arch sm_75,sm_90] [--exclude NAME]... [--no-prune] [--level 19]
//! [--workers 2] [--app APP] [--version V] [--base-url URL] INPUT...`
//! (`gpulibs package` is the real command; this is for scripts and benchmarks.) Prints one line
//! per component: id, archive bytes, unpacked bytes, seconds.

// An example program: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use gpulibs_package::{package, PackageRequest};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut req = PackageRequest::new("app", "0.0.0", Vec::new(), PathBuf::new());
    let mut out = None;
    while let Some(a) = args.next() {
        let mut val = || args.next().expect("a value after the option");
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(val())),
            "--per-arch" => {
                req.per_arch = val()
                    .split(',')
                    .map(|s| s.parse().expect("an architecture like sm_90"))
                    .collect()
            }
            "--exclude" => req.exclude.push(val()),
            "--no-prune" => req.prune_unreferenced = false,
            "--level" => req.zstd.level = val().parse().expect("a zstd level"),
            "--workers" => req.zstd.workers = val().parse().expect("a number of threads"),
            "--window-log" => req.zstd.window_log = val().parse().expect("a window log"),
            "--app" => req.app = val(),
            "--version" => req.version = val(),
            "--component-version" => req.component_version = Some(val()),
            "--base-url" => req.base_url = val(),
            _ => req.inputs.push(PathBuf::from(a)),
        }
    }
    let Some(out) = out else {
        eprintln!("usage: package --out DIR [options] INPUT...");
        return ExitCode::from(2);
    };
    req.out = out;
    match package(&req) {
        Ok(r) => {
            for w in &r.warnings.must_act {
                eprintln!("warning (act on it): {}", w.message);
            }
            for w in &r.warnings.information {
                eprintln!("note: {}", w.message);
            }
            if !r.pruned.is_empty() {
                eprintln!("pruned (nothing loads them): {}", r.pruned.join(" "));
            }
            for c in &r.components {
                println!(
                    "{}\t{}\t{}\t{:.1}",
                    c.id, c.size, c.unpacked_size, c.seconds
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
