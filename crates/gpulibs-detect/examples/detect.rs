//! Prints what `detect()` finds on this machine as JSON, and how long it took (on stderr).
//!
//! `cargo run -p gpulibs-detect --example detect`; honours `GPULIBS_NVML_LIBRARY`,
//! `CUDA_VISIBLE_DEVICES` and `CUDA_DEVICE_ORDER` like the CLI.

// An example program: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

fn main() {
    let options = gpulibs_detect::DetectOptions::from_env();
    let start = std::time::Instant::now();
    let detection = gpulibs_detect::detect(&options);
    let elapsed = start.elapsed();
    println!("{}", detection.to_json_pretty());
    eprintln!("detect() took {elapsed:?}");
}
