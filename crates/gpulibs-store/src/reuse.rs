//! Libraries an install uses from outside the root (the planner's `Source::System`): recorded
//! by path, size, modification time and sha256 when the install is built, checked by size,
//! modification time and resolved path afterwards. Nothing here writes, links or removes
//! anything outside the root: these files are only read.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;

use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::record::{ReusedLink, SystemLibraryRecord, SystemLibrarySpec};
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

/// Library families whose entry library opens its sub-libraries from its own directory: for a
/// reused library whose name starts with the first string, every library in that directory
/// whose name starts with the second is linked too (cuDNN 9's `libcudnn.so.9` opens
/// `libcudnn_ops.so.9`, `libcudnn_engines_*.so.9`, ...; NVRTC opens `libnvrtc-builtins`).
const FAMILIES: [(&str, &str); 2] = [("libcudnn", "libcudnn"), ("libnvrtc", "libnvrtc-builtins")];

/// The symlinks an install's `lib/` gets for the libraries it reuses (pure): each reused
/// SONAME to its recorded path, then the family members found in `listings` (the names in each
/// reused library's directory), each to its absolute path there. A name in `taken` (the
/// install's own files win) or already linked is skipped; the result is sorted by name.
pub(crate) fn link_plan(
    records: &[SystemLibraryRecord],
    listings: &std::collections::BTreeMap<std::path::PathBuf, Vec<String>>,
    taken: &std::collections::BTreeSet<String>,
) -> Vec<ReusedLink> {
    let mut out: std::collections::BTreeMap<String, std::path::PathBuf> = Default::default();
    for r in records {
        if crate::view::is_view_name(&r.soname) && !taken.contains(&r.soname) {
            out.entry(r.soname.clone())
                .or_insert_with(|| r.path.clone());
        }
    }
    for r in records {
        let Some(dir) = r.path.parent() else { continue };
        for (entry, member) in FAMILIES {
            if !r.soname.starts_with(entry) {
                continue;
            }
            for name in listings.get(dir).into_iter().flatten() {
                if name.starts_with(member)
                    && crate::view::is_view_name(name)
                    && !taken.contains(name)
                {
                    out.entry(name.clone()).or_insert_with(|| dir.join(name));
                }
            }
        }
    }
    out.into_iter()
        .map(|(name, target)| ReusedLink { name, target })
        .collect()
}

/// The names in the directory of each reused library (read only; an unreadable directory
/// lists nothing).
pub(crate) fn listings(
    records: &[SystemLibraryRecord],
) -> std::collections::BTreeMap<std::path::PathBuf, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    for r in records {
        let Some(dir) = r.path.parent() else { continue };
        if out.contains_key(dir) {
            continue;
        }
        let names = fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.insert(dir.to_path_buf(), names);
    }
    out
}

/// What is wrong with a link to a reused library in an install's `lib/`, if anything: its
/// target is gone (the environment it came from was deleted or upgraded).
pub(crate) fn check_link(lib: &std::path::Path, link: &ReusedLink) -> Option<String> {
    if fs::metadata(&link.target).is_ok() {
        return None;
    }
    Some(format!(
        "{}: links to `{}`, reused from this machine, which is gone; run `gpulibs install` \
         again to choose libraries anew, or `gpulibs install --no-reuse` to download them into \
         the install root",
        lib.join(&link.name).display(),
        link.target.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    fn rec(soname: &str, dir: &str) -> SystemLibraryRecord {
        SystemLibraryRecord {
            component: "c".into(),
            soname: soname.into(),
            path: PathBuf::from(dir).join(soname),
            real_path: PathBuf::from(dir).join(soname),
            size: 1,
            mtime_ns: 1,
            sha256: String::new(),
        }
    }

    #[test]
    fn links_each_soname_and_whole_families_from_their_directory() {
        let cudnn = "/venv/nvidia/cudnn/lib";
        let cu13 = "/venv/nvidia/cu13/lib";
        let records = [
            rec("libcudnn.so.9", cudnn),
            rec("libcublasLt.so.13", cu13),
            rec("libcudart.so.13", cu13),
        ];
        let listings: BTreeMap<PathBuf, Vec<String>> = [
            (
                PathBuf::from(cudnn),
                vec![
                    "libcudnn.so.9".into(),
                    "libcudnn_ops.so.9".into(),
                    "libcudnn_graph.so.9".into(),
                    "__init__.py".into(),
                ],
            ),
            (
                PathBuf::from(cu13),
                vec![
                    "libcublasLt.so.13".into(),
                    "libcudart.so.13".into(),
                    "libcufft.so.12".into(),
                ],
            ),
        ]
        .into_iter()
        .collect();
        let taken: BTreeSet<String> = ["libcudart.so.13".to_string()].into_iter().collect();
        let got: Vec<(String, String)> = link_plan(&records, &listings, &taken)
            .into_iter()
            .map(|l| (l.name, l.target.to_string_lossy().into_owned()))
            .collect();
        let want: Vec<(String, String)> = [
            ("libcublasLt.so.13", format!("{cu13}/libcublasLt.so.13")),
            ("libcudnn.so.9", format!("{cudnn}/libcudnn.so.9")),
            (
                "libcudnn_graph.so.9",
                format!("{cudnn}/libcudnn_graph.so.9"),
            ),
            ("libcudnn_ops.so.9", format!("{cudnn}/libcudnn_ops.so.9")),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b))
        .collect();
        // cuFFT is not reused (no record), so not linked though it sits beside cuBLAS;
        // the install's own libcudart wins; non-libraries are never linked.
        assert_eq!(got, want);
    }
}
