//! Libraries an install uses from outside the root (the planner's `Source::System`): recorded
//! by path, size, modification time and sha256 when the install is built, checked by size,
//! modification time and resolved path afterwards. Nothing here writes, links or removes
//! anything outside the root: these files are only read.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;

use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::record::{SystemLibraryRecord, SystemLibrarySpec};
use crate::store::hex;

/// Reads each library of `specs` once (sha256) and records what it is now. Files are hashed in
/// parallel, a few at a time: a 500 MB cuBLAS costs about 0.3 s.
pub(crate) fn record_all(specs: &[SystemLibrarySpec]) -> Result<Vec<SystemLibraryRecord>> {
    let width = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    let mut out = Vec::with_capacity(specs.len());
    for chunk in specs.chunks(width) {
        let results: Vec<Result<SystemLibraryRecord>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk.iter().map(|spec| s.spawn(|| record(spec))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("hashing a file does not panic"))
                .collect()
        });
        for r in results {
            out.push(r?);
        }
    }
    Ok(out)
}

fn record(spec: &SystemLibrarySpec) -> Result<SystemLibraryRecord> {
    let fail = |why: &str, source: Option<io::Error>| StoreError::SystemLibrary {
        soname: spec.soname.clone(),
        path: spec.path.clone(),
        why: why.to_string(),
        source,
    };
    if !spec.path.is_absolute() {
        return Err(fail("is not an absolute path", None));
    }
    let real_path = spec
        .path
        .canonicalize()
        .map_err(|e| fail("cannot be resolved", Some(e)))?;
    let mut file = File::open(&real_path).map_err(|e| fail("cannot be opened", Some(e)))?;
    let meta = file
        .metadata()
        .map_err(|e| fail("cannot be inspected", Some(e)))?;
    if !meta.is_file() {
        return Err(fail("is not a regular file", None));
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail("cannot be read", Some(e))),
        };
        hasher.update(&buf[..n]);
    }
    Ok(SystemLibraryRecord {
        component: spec.component.clone(),
        soname: spec.soname.clone(),
        path: spec.path.clone(),
        real_path,
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
        sha256: hex(&hasher.finalize()),
    })
}

fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// What is wrong with a reused library now, if anything: gone, unreadable, resolving to another
/// file, or another size or modification time than when the install was built. Cheap: one
/// `stat` and one `realpath`, no reading.
pub(crate) fn check(rec: &SystemLibraryRecord) -> Option<String> {
    let what = format!(
        "{}: `{}` of component {}, reused from this machine,",
        rec.path.display(),
        rec.soname,
        rec.component
    );
    let fix = "run `gpulibs install` again to choose libraries anew, or `gpulibs install \
               --no-reuse` to download them into the install root";
    let meta = match fs::metadata(&rec.path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Some(format!("{what} is gone; {fix}"))
        }
        Err(e) => return Some(format!("{what} cannot be read ({e}); {fix}")),
    };
    if let Ok(real) = rec.path.canonicalize() {
        if real != rec.real_path {
            return Some(format!(
                "{what} now resolves to {} instead of {}; {fix}",
                real.display(),
                rec.real_path.display()
            ));
        }
    }
    let (size, mtime) = (meta.len(), mtime_ns(&meta));
    if size != rec.size || mtime != rec.mtime_ns {
        return Some(format!(
            "{what} changed since it was installed ({}); {fix}",
            changes(rec, size, mtime)
        ));
    }
    None
}

fn changes(rec: &SystemLibraryRecord, size: u64, mtime: i64) -> String {
    let mut parts = Vec::new();
    if size != rec.size {
        parts.push(format!("{} bytes, was {}", size, rec.size));
    }
    if mtime != rec.mtime_ns {
        parts.push("modified since".to_string());
    }
    parts.join(", ")
}
