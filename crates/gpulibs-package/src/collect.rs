//! Collecting libraries from build directories, wheels and tarballs.
//!
//! Every `lib*.so*` regular file is staged (copied, or extracted) into a work directory under its
//! own name; symbolic links are followed to the real file and remembered as link names of it, so
//! the archive can record them as links again. Wheels carry no links, so a library's SONAME link
//! (`libonnxruntime.so.1` → `libonnxruntime.so.1.31.1`) is added later from its `DT_SONAME`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use gpulibs_inspect::deps::is_library_name;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::PackageError;

/// What an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Directory,
    Wheel,
    Tarball,
}

/// One input, as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub path: PathBuf,
    pub kind: InputKind,
    /// File name of a wheel or tarball (directory name for a directory).
    pub name: String,
    /// sha256 of a wheel or tarball as published; `None` for directories.
    pub sha256: Option<String>,
    /// Distribution name and version read from a wheel's file name (`nvidia_cublas`, `13.1.0.3`).
    pub dist: Option<(String, String)>,
    /// License texts found in a wheel's `.dist-info` (file name, text).
    pub licenses: Vec<(String, String)>,
}

/// One real library file, staged.
#[derive(Debug, Clone)]
pub struct Collected {
    /// File name: `libcublas.so.13`.
    pub name: String,
    /// The staged copy (for directories, the original file).
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Names of links to it found in the input (SONAME links are added later).
    pub links: BTreeSet<String>,
    /// Index into the inputs.
    pub input: usize,
    /// sha256 the wheel's `RECORD` lists for it, when it came from a wheel.
    pub record_sha256: Option<String>,
}

pub(crate) fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// URL-safe base64 without padding, as wheel `RECORD` files write digests.
fn b64url(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    s
}

/// Converts a hex sha256 to the `sha256=<b64url>` form of a wheel `RECORD`.
pub(crate) fn record_form(hex_digest: &str) -> String {
    let bytes: Vec<u8> = (0..hex_digest.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex_digest[2 * i..2 * i + 2], 16).ok())
        .collect();
    format!("sha256={}", b64url(&bytes))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Classifies an input by what it is on disk and its name.
pub fn classify(path: &Path) -> Result<InputKind, PackageError> {
    let meta = std::fs::metadata(path).map_err(|source| PackageError::ReadInput {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return Ok(InputKind::Directory);
    }
    let n = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if n.ends_with(".whl") || n.ends_with(".zip") {
        Ok(InputKind::Wheel)
    } else if n.ends_with(".tar")
        || n.ends_with(".tar.gz")
        || n.ends_with(".tgz")
        || n.ends_with(".tar.zst")
        || n.ends_with(".tzst")
    {
        Ok(InputKind::Tarball)
    } else {
        Err(PackageError::UnknownInput {
            path: path.to_path_buf(),
        })
    }
}

/// Collects the libraries of every input into `work`. Returns the inputs and the libraries,
/// one per distinct file name.
pub fn collect(
    inputs: &[PathBuf],
    work: &Path,
    exclude: &[String],
) -> Result<(Vec<Input>, Vec<Collected>), PackageError> {
    let mut ins = Vec::new();
    let mut libs: Vec<Collected> = Vec::new();
    for (i, p) in inputs.iter().enumerate() {
        let kind = classify(p)?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string());
        let stage = work.join(format!("in{i}"));
        std::fs::create_dir_all(&stage).map_err(io(&stage))?;
        let (mut input, found) = match kind {
            InputKind::Directory => (
                Input {
                    path: p.clone(),
                    kind,
                    name,
                    sha256: None,
                    dist: None,
                    licenses: Vec::new(),
                },
                from_dir(p, i)?,
            ),
            InputKind::Wheel => from_wheel(p, &stage, i, name)?,
            InputKind::Tarball => from_tarball(p, &stage, i, name)?,
        };
        if input.sha256.is_none() && kind != InputKind::Directory {
            input.sha256 = Some(sha256_file(p).map_err(io(p))?.0);
        }
        ins.push(input);
        for c in found {
            if excluded(&c.name, exclude) {
                continue;
            }
            match libs.iter_mut().find(|l| l.name == c.name) {
                Some(l) if l.sha256 == c.sha256 => {
                    l.links.extend(c.links);
                    // Prefer the copy from a wheel or tarball: its provenance can be checked.
                    if ins[l.input].kind == InputKind::Directory
                        && ins[c.input].kind != InputKind::Directory
                    {
                        let links = std::mem::take(&mut l.links);
                        *l = Collected { links, ..c };
                    }
                }
                Some(l) => {
                    return Err(PackageError::ConflictingFiles {
                        name: c.name.clone(),
                        first: ins[l.input].path.clone(),
                        second: ins[c.input].path.clone(),
                    })
                }
                None => libs.push(c),
            }
        }
    }
    // A link name may also be a real file's name elsewhere; the real file wins.
    let names: BTreeSet<String> = libs.iter().map(|l| l.name.clone()).collect();
    for l in &mut libs {
        l.links
            .retain(|n| !names.contains(n) && !excluded(n, exclude));
    }
    libs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((ins, libs))
}

/// `name` matches one of the patterns: exact, or with one `*` standing for any text.
pub fn excluded(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| match p.split_once('*') {
        None => p == name,
        Some((a, b)) => name.len() >= a.len() + b.len() && name.starts_with(a) && name.ends_with(b),
    })
}

fn from_dir(dir: &Path, input: usize) -> Result<Vec<Collected>, PackageError> {
    let mut files: BTreeMap<PathBuf, Collected> = BTreeMap::new();
    let mut links: Vec<(String, PathBuf)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(io(&d))? {
            let e = e.map_err(io(&d))?;
            let p = e.path();
            let ft = e.file_type().map_err(io(&p))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if ft.is_dir() {
                stack.push(p);
            } else if is_library_name(&name) {
                if ft.is_symlink() {
                    // Followed to the real file; a dangling link is not a library.
                    if let Ok(real) = p.canonicalize() {
                        links.push((name, real));
                    }
                } else if ft.is_file() {
                    let (sha256, size) = sha256_file(&p).map_err(io(&p))?;
                    let real = p.canonicalize().map_err(io(&p))?;
                    files.insert(
                        real,
                        Collected {
                            name,
                            path: p,
                            sha256,
                            size,
                            links: BTreeSet::new(),
                            input,
                            record_sha256: None,
                        },
                    );
                }
            }
        }
    }
    for (name, real) in links {
        match files.get_mut(&real) {
            Some(f) => {
                f.links.insert(name);
            }
            None => {
                // A link to a library outside the directory (or under another name): take
                // the real file under the link's name.
                let real_name = real
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if real.is_file() && is_library_name(&real_name) {
                    let (sha256, size) = sha256_file(&real).map_err(io(&real))?;
                    let mut c = Collected {
                        name: real_name,
                        path: real.clone(),
                        sha256,
                        size,
                        links: BTreeSet::new(),
                        input,
                        record_sha256: None,
                    };
                    c.links.insert(name);
                    files.insert(real, c);
                }
            }
        }
    }
    let mut out: Vec<Collected> = files.into_values().collect();
    for c in &mut out {
        let own = c.name.clone();
        c.links.remove(&own);
    }
    Ok(out)
}

/// `nvidia_cublas-13.1.0.3-py3-none-manylinux...whl` → (`nvidia_cublas`, `13.1.0.3`).
pub fn wheel_dist(name: &str) -> Option<(String, String)> {
    let stem = name.strip_suffix(".whl")?;
    let mut parts = stem.split('-');
    let dist = parts.next()?.to_string();
    let version = parts.next()?.to_string();
    Some((dist, version))
}

fn from_wheel(
    path: &Path,
    stage: &Path,
    input: usize,
    name: String,
) -> Result<(Input, Vec<Collected>), PackageError> {
    let bad = |e: zip::result::ZipError| PackageError::BadArchive {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let f = File::open(path).map_err(io(path))?;
    let mut z = zip::ZipArchive::new(f).map_err(bad)?;
    let mut record: BTreeMap<String, String> = BTreeMap::new();
    let mut licenses = Vec::new();
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut m = z.by_index(i).map_err(bad)?;
        if m.is_dir() {
            continue;
        }
        let member = m.name().to_string();
        let base = member.rsplit('/').next().unwrap_or(&member).to_string();
        let in_dist_info = member
            .split('/')
            .next()
            .is_some_and(|d| d.ends_with(".dist-info"));
        if in_dist_info && base == "RECORD" {
            let mut text = String::new();
            m.read_to_string(&mut text).map_err(io(path))?;
            for line in text.lines() {
                let mut cols = line.split(',');
                if let (Some(p), Some(h)) = (cols.next(), cols.next()) {
                    if !h.is_empty() {
                        record.insert(p.to_string(), h.to_string());
                    }
                }
            }
        } else if in_dist_info && base.to_lowercase().starts_with("licen") {
            let mut text = String::new();
            if m.read_to_string(&mut text).is_ok() {
                licenses.push((base, text));
            }
        } else if is_library_name(&base) {
            // Unix mode bits in the zip, if any, say whether this is a link (wheels have none).
            if m.unix_mode()
                .is_some_and(|mode| mode & 0o170000 == 0o120000)
            {
                continue;
            }
            let dst = stage.join(&base);
            let mut w = File::create(&dst).map_err(io(&dst))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let k = m.read(&mut buf).map_err(io(path))?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
                w.write_all(&buf[..k]).map_err(io(&dst))?;
                size += k as u64;
            }
            out.push((
                member,
                Collected {
                    name: base,
                    path: dst,
                    sha256: hex(&h.finalize()),
                    size,
                    links: BTreeSet::new(),
                    input,
                    record_sha256: None,
                },
            ));
        }
    }
    let libs = out
        .into_iter()
        .map(|(member, mut c)| {
            c.record_sha256 = record.get(&member).cloned();
            c
        })
        .collect();
    let dist = wheel_dist(&name);
    Ok((
        Input {
            path: path.to_path_buf(),
            kind: InputKind::Wheel,
            name,
            sha256: None,
            dist,
            licenses,
        },
        libs,
    ))
}

fn from_tarball(
    path: &Path,
    stage: &Path,
    input: usize,
    name: String,
) -> Result<(Input, Vec<Collected>), PackageError> {
    let f = File::open(path).map_err(io(path))?;
    let lower = name.to_lowercase();
    let reader: Box<dyn Read> = if lower.ends_with(".gz") || lower.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(f))
    } else if lower.ends_with(".zst") || lower.ends_with(".tzst") {
        let mut d = zstd::stream::read::Decoder::new(f).map_err(io(path))?;
        d.window_log_max(31).map_err(io(path))?;
        Box::new(d)
    } else {
        Box::new(f)
    };
    let bad = |e: std::io::Error| PackageError::BadArchive {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut ar = tar::Archive::new(reader);
    let mut files: BTreeMap<String, Collected> = BTreeMap::new();
    // (link name, link target's file name)
    let mut links: Vec<(String, String)> = Vec::new();
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let member = e.path().map_err(bad)?.to_string_lossy().into_owned();
        let base = member
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        if !is_library_name(&base) {
            continue;
        }
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let dst = stage.join(&base);
                let mut w = File::create(&dst).map_err(io(&dst))?;
                std::io::copy(&mut e, &mut w).map_err(bad)?;
                drop(w);
                let (sha256, size) = sha256_file(&dst).map_err(io(&dst))?;
                files.insert(
                    base.clone(),
                    Collected {
                        name: base,
                        path: dst,
                        sha256,
                        size,
                        links: BTreeSet::new(),
                        input,
                        record_sha256: None,
                    },
                );
            }
            tar::EntryType::Symlink => {
                if let Ok(Some(t)) = e.link_name() {
                    let t = t.to_string_lossy();
                    let tb = t.rsplit('/').next().unwrap_or("").to_string();
                    links.push((base, tb));
                }
            }
            _ => {}
        }
    }
    // Follow link chains (libfoo.so → libfoo.so.1 → libfoo.so.1.2) to the real file.
    let direct: BTreeMap<String, String> = links.iter().cloned().collect();
    for (link, mut target) in links {
        for _ in 0..16 {
            if files.contains_key(&target) {
                break;
            }
            match direct.get(&target) {
                Some(t) => target = t.clone(),
                None => break,
            }
        }
        if let Some(f) = files.get_mut(&target) {
            if link != f.name {
                f.links.insert(link);
            }
        }
    }
    Ok((
        Input {
            path: path.to_path_buf(),
            kind: InputKind::Tarball,
            name,
            sha256: None,
            dist: None,
            licenses: Vec::new(),
        },
        files.into_values().collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_digest_form() {
        // sha256 of the empty string, as pip writes it in RECORD.
        let e = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            record_form(e),
            "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn patterns_and_wheel_names() {
        let p = vec![
            "libonnxruntime_providers_tensorrt.so".to_string(),
            "libnvinfer*".into(),
        ];
        assert!(excluded("libonnxruntime_providers_tensorrt.so", &p));
        assert!(excluded("libnvinfer.so.10", &p));
        assert!(!excluded("libonnxruntime.so.1", &p));
        assert_eq!(
            wheel_dist("nvidia_cublas-13.1.0.3-py3-none-manylinux_2_27_x86_64.whl"),
            Some(("nvidia_cublas".into(), "13.1.0.3".into()))
        );
    }
}
