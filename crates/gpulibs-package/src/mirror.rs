//! Copying a release (manifest, signature, archives) into a directory: offline installs and LAN
//! mirrors.
//!
//! The source is a manifest file or a directory holding `manifest.toml` (a manifest on a server
//! is downloaded first, with its signature: `gpulibs-fetch` needs a digest before it downloads,
//! and a manifest has none). Archive URLs that are relative resolve against the manifest's
//! directory; `http(s)://` ones are downloaded with `gpulibs-fetch` (mirrors in order, resumed,
//! proxies from the environment).
//! Local files are copied, remote ones downloaded with `gpulibs-fetch`; either way every archive
//! is checked against the manifest's sha256 and size before it is given its final name, and
//! files already present with the right digest are not copied again. The manifest is copied
//! byte for byte (its signature stays valid); archives are stored under their URL's file name,
//! so the mirror directory serves the release as is.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::collect::{hex, sha256_file};
use crate::PackageError;

/// What [`mirror`] copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorReport {
    pub manifest: PathBuf,
    pub signature: Option<PathBuf>,
    /// (file, bytes, copied now: false when it was already there and verified).
    pub artifacts: Vec<(PathBuf, u64, bool)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn is_remote(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// An archive URL as a local path or a remote URL; relative ones are relative to `base`.
fn resolve(base: &Path, url: &str) -> String {
    if is_remote(url) || url.starts_with('/') {
        return url.to_string();
    }
    if let Some(p) = url.strip_prefix("file://") {
        return p.to_string();
    }
    base.join(url).to_string_lossy().into_owned()
}

/// Copies a release to `dest` (created if needed): see the module doc.
pub fn mirror(source: &str, dest: &Path) -> Result<MirrorReport, PackageError> {
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    if is_remote(source) {
        return Err(PackageError::RemoteManifest {
            url: source.to_string(),
        });
    }
    let mut p = PathBuf::from(source.strip_prefix("file://").unwrap_or(source));
    if p.is_dir() {
        p = p.join("manifest.toml");
    }
    let manifest_bytes = std::fs::read(&p).map_err(io(&p))?;
    let signature = std::fs::read(format!("{}.minisig", p.display())).ok();
    let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
    let text = String::from_utf8_lossy(&manifest_bytes);
    let manifest = gpulibs_plan::parse_manifest(&text).map_err(|e| PackageError::BadManifest {
        source_name: source.to_string(),
        message: e.to_string(),
    })?;

    let mut artifacts = Vec::new();
    for c in &manifest.components {
        let a = &c.archive;
        let file_name = a
            .url
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| PackageError::BadManifest {
                source_name: source.to_string(),
                message: format!(
                    "component {}: archive URL `{}` has no file name",
                    c.id, a.url
                ),
            })?;
        let dst = dest.join(file_name);
        if dst.is_file() {
            let (sha, size) = sha256_file(&dst).map_err(io(&dst))?;
            if sha == a.sha256 && size == a.size {
                artifacts.push((dst, size, false));
                continue;
            }
        }
        let tmp = dest.join(format!(".{file_name}.partial-{}", std::process::id()));
        let from = resolve(&base, &a.url);
        let got = if is_remote(&from) {
            download(&c.id, &from, a, &tmp, dest)
        } else {
            copy_hashed(Path::new(&from), &tmp)
        };
        let (sha, size) = match got {
            Ok(x) => x,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if sha != a.sha256 || size != a.size {
            let _ = std::fs::remove_file(&tmp);
            return Err(PackageError::MirrorDigest {
                component: c.id.clone(),
                from,
                expected: format!("sha256 {} ({} bytes)", a.sha256, a.size),
                found: format!("sha256 {sha} ({size} bytes)"),
            });
        }
        std::fs::rename(&tmp, &dst).map_err(io(&dst))?;
        artifacts.push((dst, size, true));
    }
    // The manifest last: a mirror with a manifest is a complete mirror.
    let signature = match signature {
        Some(sig) => {
            let p = dest.join("manifest.toml.minisig");
            std::fs::write(&p, sig).map_err(io(&p))?;
            Some(p)
        }
        None => None,
    };
    let mp = dest.join("manifest.toml");
    std::fs::write(&mp, &manifest_bytes).map_err(io(&mp))?;
    Ok(MirrorReport {
        manifest: mp,
        signature,
        artifacts,
    })
}

fn copy_hashed(from: &Path, to: &Path) -> Result<(String, u64), PackageError> {
    let mut r = File::open(from).map_err(io(from))?;
    let mut w = File::create(to).map_err(io(to))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(io(from))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        w.write_all(&buf[..k]).map_err(io(to))?;
        n += k as u64;
    }
    w.sync_all().map_err(io(to))?;
    Ok((hex(&h.finalize()), n))
}

fn download(
    id: &str,
    url: &str,
    a: &gpulibs_plan::Artifact,
    tmp: &Path,
    dest: &Path,
) -> Result<(String, u64), PackageError> {
    let sha256 = a.sha256.parse().map_err(|_| PackageError::BadManifest {
        source_name: url.to_string(),
        message: format!("component {id}: sha256 `{}` is not 64 hex digits", a.sha256),
    })?;
    let artifact = gpulibs_fetch::Artifact {
        name: id.to_string(),
        urls: std::iter::once(url.to_string())
            .chain(a.mirrors.iter().cloned())
            .collect(),
        sha256,
        size: Some(a.size),
    };
    let tmp_owned = tmp.to_path_buf();
    let mut sink = gpulibs_fetch::PipeSink::new(move |r| {
        let mut w = File::create(&tmp_owned)?;
        let n = std::io::copy(r, &mut w)?;
        w.sync_all()?;
        Ok(n)
    });
    let mut opts = gpulibs_fetch::FetchOptions::new(dest.join(".partial"));
    opts.network = gpulibs_fetch::NetworkEnv::from_env();
    gpulibs_fetch::fetch(&artifact, &mut sink, &opts, &|_| {}).map_err(|e| {
        PackageError::Fetch {
            url: url.to_string(),
            message: e.to_string(),
        }
    })?;
    // gpulibs-fetch checked the digest while streaming; hash the file once more so a short
    // write cannot pass.
    sha256_file(tmp).map_err(io(tmp))
}
