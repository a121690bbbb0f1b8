//! Feeds arbitrary bytes through everything `gpulibs inspect` does to a file: the ELF section
//! walk, the container scan, the summary, verdicts for a spread of GPUs and drivers, and capped
//! decompression of every entry found.
#![no_main]

use std::path::Path;

use gpulibs_detect::{ComputeCapability, CudaVersion};
use gpulibs_inspect::{decompress_entry, inspect_bytes, scan, InspectOptions};
use libfuzzer_sys::fuzz_target;

/// Small, so a hostile uncompressed size is refused instead of allocated.
const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let opts = InspectOptions {
        gpus: [(5, 2), (8, 6), (9, 0), (10, 0), (12, 1)]
            .iter()
            .map(|&(a, b)| ComputeCapability::new(a, b))
            .collect(),
        driver: Some(CudaVersion::new(13, 0)),
        check_payloads: false,
    };
    let report = inspect_bytes(Path::new("fuzz"), data, &opts);
    let _ = report.render_text();
    let _ = report.summary_line();
    let _ = report.verdict_for(ComputeCapability::new(12, 0), None);

    // The raw scan, and capped decompression of what it finds.
    let s = scan(data);
    for c in &s.containers {
        assert!(c.entries.len() <= gpulibs_inspect::fatbin::MAX_ENTRIES_PER_CONTAINER);
        for e in &c.entries {
            // Entries the parser accepts lie inside the buffer.
            let end = e.offset + u64::from(e.header_size) + e.payload_size;
            assert!(end <= data.len() as u64);
            if let Ok(out) = decompress_entry(data, e, CAP) {
                assert!(out.len() <= CAP);
            }
        }
    }
});
