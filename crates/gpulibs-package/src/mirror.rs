//! Copying a release (manifest, signature, archives) into a directory: offline installs and LAN
//! mirrors.
//!
//! The source is a manifest file, a directory holding `manifest.toml`, or an `http(s)://` URL
//! of a manifest (downloaded with `gpulibs-fetch`'s document fetch, with `<url>.minisig` when
//! the server has one). Archive URLs (and mirrors) that are relative resolve against the
//! manifest's directory or URL; `http(s)://` ones are downloaded with `gpulibs-fetch` (mirrors
//! in order, resumed, proxies from the environment), local ones copied. Either way every archive
//! is checked against the manifest's sha256 and size before it is given its final name, and
//! files already present with the right digest are neither copied nor downloaded again.
//!
//! Archives are stored under their URL's file name, and DEST gets a `manifest.toml` whose archive
//! URLs are those bare file names, so DEST serves the release as is (over HTTP, or with
//! `gpulibs install --offline DEST`). When the source's URLs already are bare file names (what
//! `gpulibs package` writes without `--base-url`) the manifest is copied byte for byte and its
//! signature stays valid. Otherwise the rewritten `manifest.toml` is unsigned, and the source's
//! manifest and signature are kept beside it as `manifest.upstream.toml[.minisig]`: a signed
//! manifest that `gpulibs install --offline DEST --manifest DEST/manifest.upstream.toml` still
//! verifies (offline files are found by file name).
//!
//! Components whose URL pip resolves at install time (`pip:name==version`) are refused by
//! [`mirror`]; [`mirror_with`] and [`mirror_components`] (an in-memory manifest such as the
//! embedded default, chosen components only, no manifest written) resolve them first through a
//! [`PipResolve`] the caller gives (this crate never runs pip) and store each wheel under its own
//! file name.

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
    /// The source's manifest (and its signature, `.minisig` next to it) kept byte for byte when
    /// `manifest` had to be rewritten with bare file names (it is then unsigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_manifest: Option<PathBuf>,
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

/// Where the manifest was read from: relative archive URLs resolve against it.
enum Base {
    Dir(PathBuf),
    Url(String),
}

/// An archive URL as a local path or a remote URL; relative ones are relative to `base`.
fn resolve(base: &Base, url: &str) -> String {
    match base {
        Base::Url(base) => gpulibs_fetch::resolve_url(base, url).unwrap_or_else(|| url.to_string()),
        Base::Dir(dir) => {
            if is_remote(url) || url.starts_with('/') {
                return url.to_string();
            }
            if let Some(p) = url.strip_prefix("file://") {
                return p.to_string();
            }
            dir.join(url).to_string_lossy().into_owned()
        }
    }
}

/// The last path segment of an archive URL, query and fragment removed (as written: `%XX`
/// kept), and the file name it is stored under (`%XX` decoded). `None` when there is no usable
/// name.
fn file_names(url: &str) -> Option<(String, String)> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let segment = path.rsplit('/').next().unwrap_or("");
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = segment.get(i + 1..i + 3);
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) if bytes[i] == b'%' => {
                decoded.push(b);
                i += 3;
            }
            _ => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    let name = String::from_utf8(decoded).ok()?;
    let usable = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.');
    usable.then(|| (segment.to_string(), name))
}

/// The most bytes read for a signature: a minisign signature is a few hundred.
const SIGNATURE_MAX_BYTES: u64 = 64 * 1024;

fn fetch_options(dest: &Path) -> gpulibs_fetch::FetchOptions {
    let mut opts = gpulibs_fetch::FetchOptions::new(dest.join(".partial"));
    opts.network = gpulibs_fetch::NetworkEnv::from_env();
    opts
}

/// A source's manifest bytes, its signature if published, and what relative URLs resolve
/// against.
type Source = (Vec<u8>, Option<Vec<u8>>, Base);

/// A fetch failure as one line: the message and each cause once (a FetchError's message leaves
/// the reason to its source), then its step (the network, a proxy, a CA bundle, another
/// mirror), which the error gives as its hint rather than in its message.
fn fetch_text(e: &gpulibs_fetch::FetchError) -> String {
    let text = gpulibs_hint::chain_text(e);
    match gpulibs_hint::Hint::hint(e) {
        Some(hint) => format!("{text}; {hint}"),
        None => text,
    }
}

/// The manifest, its signature if published, and what relative URLs resolve against.
fn read_source(source: &str, dest: &Path) -> Result<Source, PackageError> {
    if is_remote(source) {
        let opts = fetch_options(dest);
        let fetch_error = |url: &str, message: String| PackageError::Fetch {
            url: url.to_string(),
            message,
        };
        let manifest =
            gpulibs_fetch::fetch_document(source, gpulibs_fetch::DOCUMENT_MAX_BYTES, &opts)
                .map_err(|e| fetch_error(source, fetch_text(&e)))?
                .ok_or_else(|| {
                    fetch_error(source, "no manifest there (HTTP 404); check the URL".into())
                })?;
        let sig_url = format!("{source}.minisig");
        let signature = gpulibs_fetch::fetch_document(&sig_url, SIGNATURE_MAX_BYTES, &opts)
            .map_err(|e| fetch_error(&sig_url, fetch_text(&e)))?;
        return Ok((manifest, signature, Base::Url(source.to_string())));
    }
    let mut p = PathBuf::from(source.strip_prefix("file://").unwrap_or(source));
    if p.is_dir() {
        p = p.join("manifest.toml");
    }
    let manifest = std::fs::read(&p).map_err(|source| PackageError::ReadManifest {
        path: p.clone(),
        source,
    })?;
    let signature = std::fs::read(format!("{}.minisig", p.display())).ok();
    let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((manifest, signature, Base::Dir(base)))
}

/// Resolves the `pip:` components named (their ids) to download URLs, writing the URLs into the
/// manifest, or says why it could not: the CLI passes pip (`gpulibs-sources`), tests a table.
pub type PipResolve<'a> = &'a dyn Fn(
    &mut gpulibs_plan::Manifest,
    &[String],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Copies a release to `dest` (created if needed): see the module doc. A component whose URL
/// pip resolves at install time (`pip:name==version`) is refused: [`mirror_with`] resolves
/// them.
pub fn mirror(source: &str, dest: &Path) -> Result<MirrorReport, PackageError> {
    mirror_with(source, dest, None, &|_| {})
}

/// What a mirror run is doing, for a progress display (the CLI's).
#[derive(Debug)]
pub enum MirrorEvent<'a> {
    /// pip is asked for the URLs of these components.
    Resolving { components: &'a [String] },
    /// An archive is being downloaded: `gpulibs-fetch`'s progress.
    Download(&'a gpulibs_fetch::Progress<'a>),
    /// An archive is being copied from a local directory.
    Copying { component: &'a str, bytes: u64 },
    /// An archive was in the directory already with its sha256 and size: kept.
    Present { component: &'a str },
}

/// Where a mirror run reports its [`MirrorEvent`]s.
pub type MirrorProgress<'a> = &'a dyn Fn(&MirrorEvent<'_>);

/// [`mirror`], with `pip:` components resolved by `resolve` first and stored under the wheel's
/// own file name (the URL pip answered), checked against the manifest's sha256 and size like
/// every archive.
pub fn mirror_with(
    source: &str,
    dest: &Path,
    resolve: Option<PipResolve<'_>>,
    progress: MirrorProgress<'_>,
) -> Result<MirrorReport, PackageError> {
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    let (manifest_bytes, signature, base) = read_source(source, dest)?;
    // Read and validated as every user of a manifest does: a mirror of a release whose paths
    // or digests are hostile is refused before anything is fetched.
    let mut manifest =
        gpulibs_plan::load_manifest(&manifest_bytes).map_err(|e| PackageError::BadManifest {
            source_name: source.to_string(),
            message: e.to_string(),
        })?;
    let ids: Vec<String> = manifest.components.iter().map(|c| c.id.clone()).collect();
    resolve_pip(&mut manifest, &ids, source, resolve, progress)?;

    let mut artifacts = Vec::new();
    let mut rewritten = false;
    for c in &mut manifest.components {
        let (artifact, segment) = copy_component(c, &base, dest, source, progress)?;
        artifacts.push(artifact);
        if c.archive.url != segment || !c.archive.mirrors.is_empty() {
            c.archive.url = segment;
            c.archive.mirrors.clear();
            rewritten = true;
        }
    }
    // The manifest last: a mirror with a manifest is a complete mirror.
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, PackageError> {
        let p = dest.join(name);
        std::fs::write(&p, bytes).map_err(io(&p))?;
        Ok(p)
    };
    let stale = dest.join("manifest.toml.minisig");
    let (signature, upstream_manifest, bytes) = if rewritten {
        // The source's signature does not cover the rewritten manifest: keep both, by name.
        let upstream = write("manifest.upstream.toml", &manifest_bytes)?;
        if let Some(sig) = &signature {
            write("manifest.upstream.toml.minisig", sig)?;
        }
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(io(&stale))?;
        }
        (
            None,
            Some(upstream),
            gpulibs_plan::to_toml(&manifest).into_bytes(),
        )
    } else {
        let signature = match &signature {
            Some(sig) => Some(write("manifest.toml.minisig", sig)?),
            None => {
                if stale.exists() {
                    std::fs::remove_file(&stale).map_err(io(&stale))?;
                }
                None
            }
        };
        (signature, None, manifest_bytes)
    };
    let mp = write("manifest.toml", &bytes)?;
    Ok(MirrorReport {
        manifest: mp,
        signature,
        upstream_manifest,
        artifacts,
    })
}

/// Resolves the `pip:` components among `ids` with `resolve`; without one they are refused.
fn resolve_pip(
    manifest: &mut gpulibs_plan::Manifest,
    ids: &[String],
    source: &str,
    resolve: Option<PipResolve<'_>>,
    progress: MirrorProgress<'_>,
) -> Result<(), PackageError> {
    let pip: Vec<String> = manifest
        .components
        .iter()
        .filter(|c| ids.contains(&c.id) && c.archive.url.starts_with("pip:"))
        .map(|c| c.id.clone())
        .collect();
    if pip.is_empty() {
        return Ok(());
    }
    let Some(resolve) = resolve else {
        let c = manifest
            .components
            .iter()
            .find(|c| c.id == pip[0])
            .expect("listed above");
        return Err(PackageError::BadManifest {
            source_name: source.to_string(),
            message: format!(
                "component {}: archive URL `{}` is resolved by pip at install time; a mirror \
                 holds archives with a URL",
                c.id, c.archive.url
            ),
        });
    };
    progress(&MirrorEvent::Resolving { components: &pip });
    resolve(manifest, &pip).map_err(|e| PackageError::PipResolve {
        source_name: source.to_string(),
        components: pip.join(", "),
        source: e,
    })?;
    if let Some(c) = manifest
        .components
        .iter()
        .find(|c| pip.contains(&c.id) && c.archive.url.starts_with("pip:"))
    {
        return Err(PackageError::PipResolve {
            source_name: source.to_string(),
            components: c.id.clone(),
            source: "pip gave no URL for it".into(),
        });
    }
    Ok(())
}

/// Copies (or downloads) one component's archive into `dest` under its URL's file name unless
/// it is there already with the right digest; the archive, its size, whether it was copied now,
/// and the URL's last segment as written.
fn copy_component(
    c: &gpulibs_plan::Component,
    base: &Base,
    dest: &Path,
    source: &str,
    progress: MirrorProgress<'_>,
) -> Result<((PathBuf, u64, bool), String), PackageError> {
    let a = &c.archive;
    let bad = |message: String| PackageError::BadManifest {
        source_name: source.to_string(),
        message: format!("component {}: {message}", c.id),
    };
    let (segment, file_name) = file_names(&a.url)
        .ok_or_else(|| bad(format!("archive URL `{}` has no file name", a.url)))?;
    let dst = dest.join(&file_name);
    let present = if dst.is_file() {
        let (sha, size) = sha256_file(&dst).map_err(io(&dst))?;
        sha == a.sha256 && size == a.size
    } else {
        false
    };
    if present {
        progress(&MirrorEvent::Present { component: &c.id });
        return Ok(((dst, a.size, false), segment));
    }
    let tmp = dest.join(format!(".{file_name}.partial-{}", std::process::id()));
    let from = resolve(base, &a.url);
    let got = if is_remote(&from) {
        let urls = std::iter::once(from.clone())
            .chain(a.mirrors.iter().map(|m| resolve(base, m)))
            .filter(|u| is_remote(u))
            .collect();
        download(&c.id, urls, a, &tmp, dest, progress)
    } else {
        progress(&MirrorEvent::Copying {
            component: &c.id,
            bytes: a.size,
        });
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
    Ok(((dst, size, true), segment))
}

/// What [`mirror_components`] stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentsMirrorReport {
    /// (component id, file, bytes, copied now: false when it was already there and verified).
    pub artifacts: Vec<(String, PathBuf, u64, bool)>,
}

/// Copies the archives of the components `ids` of an in-memory manifest (the embedded default)
/// into `dest`, each under its URL's file name (a wheel under its own name), `pip:` ones
/// resolved by `resolve` first; every one checked against the manifest's sha256 and size. No
/// manifest is written: the one in memory is what `gpulibs install --offline DEST` plans with.
pub fn mirror_components(
    manifest: &gpulibs_plan::Manifest,
    ids: &[String],
    dest: &Path,
    source_name: &str,
    resolve: Option<PipResolve<'_>>,
    progress: MirrorProgress<'_>,
) -> Result<ComponentsMirrorReport, PackageError> {
    let mut manifest = manifest.clone();
    for id in ids {
        if !manifest.components.iter().any(|c| &c.id == id) {
            return Err(PackageError::BadManifest {
                source_name: source_name.to_string(),
                message: format!("no component `{id}`"),
            });
        }
    }
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    resolve_pip(&mut manifest, ids, source_name, resolve, progress)?;
    let base = Base::Dir(PathBuf::new());
    let mut artifacts = Vec::new();
    for c in manifest.components.iter().filter(|c| ids.contains(&c.id)) {
        if !is_remote(&c.archive.url) {
            return Err(PackageError::BadManifest {
                source_name: source_name.to_string(),
                message: format!(
                    "component {}: archive URL `{}` is not an http(s) URL",
                    c.id, c.archive.url
                ),
            });
        }
        let ((file, size, copied), _) = copy_component(c, &base, dest, source_name, progress)?;
        artifacts.push((c.id.clone(), file, size, copied));
    }
    Ok(ComponentsMirrorReport { artifacts })
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
    urls: Vec<String>,
    a: &gpulibs_plan::Artifact,
    tmp: &Path,
    dest: &Path,
    progress: MirrorProgress<'_>,
) -> Result<(String, u64), PackageError> {
    let url = urls.first().cloned().unwrap_or_default();
    let url = url.as_str();
    let sha256 = a.sha256.parse().map_err(|_| PackageError::BadManifest {
        source_name: url.to_string(),
        message: format!("component {id}: sha256 `{}` is not 64 hex digits", a.sha256),
    })?;
    let artifact = gpulibs_fetch::Artifact {
        name: id.to_string(),
        urls,
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
    let opts = fetch_options(dest);
    gpulibs_fetch::fetch(&artifact, &mut sink, &opts, &|p| {
        progress(&MirrorEvent::Download(p))
    })
    .map_err(|e| PackageError::Fetch {
        url: url.to_string(),
        message: fetch_text(&e),
    })?;
    // gpulibs-fetch checked the digest while streaming; hash the file once more so a short
    // write cannot pass.
    sha256_file(tmp).map_err(io(tmp))
}

#[cfg(test)]
mod tests {
    //! Mirroring from a manifest URL, against a real HTTP server on 127.0.0.1.

    use super::*;
    use gpulibs_testkit::http::Server;

    /// The paths asked for since the last call.
    fn take_log(server: &Server) -> Vec<String> {
        let paths = server.log().into_iter().map(|seen| seen.path).collect();
        server.clear_log();
        paths
    }

    fn key() -> gpulibs_plan::SecretKey {
        gpulibs_plan::SecretKey::from_seed([7; 32], [1, 2, 3, 4, 5, 6, 7, 8])
    }

    /// A manifest of components (id, archive URL, mirrors, bytes) in one `cpu` variant.
    fn manifest(components: &[(&str, &str, &[&str], &[u8])]) -> String {
        let mut s = String::from("schema_version = 1\napp = \"testapp\"\nversion = \"1.0\"\n\n");
        for (id, url, mirrors, bytes) in components {
            let mirrors: Vec<String> = mirrors.iter().map(|m| format!("\"{m}\"")).collect();
            s.push_str(&format!(
                "[[components]]\nid = \"{id}\"\nkind = \"other\"\nversion = \"1\"\n\n\
                 [components.archive]\nurl = \"{url}\"\nmirrors = [{}]\nsha256 = \"{}\"\n\
                 size = {}\nformat = \"tar.zst\"\n\n",
                mirrors.join(", "),
                hex(&Sha256::digest(bytes)),
                bytes.len()
            ));
        }
        let ids: Vec<String> = components.iter().map(|c| format!("\"{}\"", c.0)).collect();
        s.push_str(&format!(
            "[[variants]]\nname = \"cpu\"\ndevice = \"cpu\"\ncomponents = [{}]\n",
            ids.join(", ")
        ));
        s
    }

    /// A hostile manifest (a file path leaving the root, a link with a slash, ids twice) is
    /// refused with every problem before anything is fetched or written to DEST.
    #[test]
    fn an_invalid_manifest_is_refused_before_fetching() {
        let server = Server::start();
        let a = vec![1u8; 3000];
        server.put("/rel/a.tar.zst", a.as_slice());
        let text = manifest(&[("a", "a.tar.zst", &[], &a), ("a", "a.tar.zst", &[], &a)])
            .replacen(
                "format = \"tar.zst\"\n",
                "format = \"tar.zst\"\n\n[[components.files]]\npath = \"../../x\"\nsha256 = \"XYZ\"\nsize = 1\nsoname_links = [\"/tmp/y\"]\n",
                1,
            );
        server.put("/rel/manifest.toml", text.as_bytes());
        let dest = tempfile::tempdir().unwrap();
        let err = mirror(&server.url("/rel/manifest.toml"), dest.path()).unwrap_err();
        let message = err.to_string();
        for want in [
            "the manifest is invalid (3 problems)",
            "component id `a` is used 2 times",
            "files[\"../../x\"].sha256 `XYZ` is not a sha256 digest",
            "path `../../x` is not a relative path inside the install root",
        ] {
            assert!(message.contains(want), "{want:?} not in: {message}");
        }
        assert!(!take_log(&server).iter().any(|p| p.ends_with(".tar.zst")));
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    }

    #[test]
    fn signed_url_release_with_bare_names_is_copied_as_is() {
        let server = Server::start();
        let (a, b) = (vec![1u8; 3000], vec![2u8; 5000]);
        server.put("/rel/a.tar.zst", a.as_slice());
        server.put("/rel/b.tar.zst", b.as_slice());
        let text = manifest(&[("a", "a.tar.zst", &[], &a), ("b", "b.tar.zst", &[], &b)]);
        let sig = gpulibs_plan::sign_manifest(text.as_bytes(), &key());
        server.put("/rel/manifest.toml", text.as_bytes());
        server.put("/rel/manifest.toml.minisig", sig.as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("mirror");

        let report = mirror(&server.url("/rel/manifest.toml"), &dest).unwrap();
        assert!(report.artifacts.iter().all(|x| x.2), "all downloaded");
        assert_eq!(std::fs::read(dest.join("a.tar.zst")).unwrap(), a);
        assert_eq!(std::fs::read(dest.join("b.tar.zst")).unwrap(), b);
        assert_eq!(std::fs::read(&report.manifest).unwrap(), text.as_bytes());
        let copied_sig = std::fs::read_to_string(report.signature.unwrap()).unwrap();
        gpulibs_plan::verify_manifest(text.as_bytes(), &copied_sig, &key().public_key()).unwrap();
        assert_eq!(report.upstream_manifest, None);
        let mut log = take_log(&server);
        log.sort();
        assert_eq!(
            log,
            [
                "/rel/a.tar.zst",
                "/rel/b.tar.zst",
                "/rel/manifest.toml",
                "/rel/manifest.toml.minisig"
            ]
        );

        // Again: only the manifest and signature are read; no archive is downloaded.
        let report = mirror(&server.url("/rel/manifest.toml"), &dest).unwrap();
        assert!(report.artifacts.iter().all(|x| !x.2), "nothing copied");
        assert_eq!(
            take_log(&server),
            ["/rel/manifest.toml", "/rel/manifest.toml.minisig"]
        );
        assert!(!dest.join(".partial").read_dir().unwrap().any(|_| true));
    }

    #[test]
    fn url_release_is_rewritten_to_bare_names_and_keeps_the_upstream_signature() {
        let server = Server::start();
        let (a, b) = (vec![3u8; 2000], vec![4u8; 7000]);
        server.put("/rel/sub/a.tar.zst", a.as_slice());
        // b's primary is missing: its relative mirror serves it.
        server.put("/other/b.tar.zst", b.as_slice());
        let text = manifest(&[
            ("a", "sub/a.tar.zst", &[], &a),
            ("b", "/gone/b.tar.zst", &["../other/b.tar.zst"], &b),
        ]);
        let sig = gpulibs_plan::sign_manifest(text.as_bytes(), &key());
        server.put("/rel/manifest.toml", text.as_bytes());
        server.put("/rel/manifest.toml.minisig", sig.as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("mirror");

        let report = mirror(&server.url("/rel/manifest.toml"), &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("a.tar.zst")).unwrap(), a);
        assert_eq!(std::fs::read(dest.join("b.tar.zst")).unwrap(), b);
        let written = std::fs::read_to_string(&report.manifest).unwrap();
        let parsed = gpulibs_plan::parse_manifest(&written).unwrap();
        let urls: Vec<(&str, usize)> = parsed
            .components
            .iter()
            .map(|c| (c.archive.url.as_str(), c.archive.mirrors.len()))
            .collect();
        assert_eq!(urls, [("a.tar.zst", 0), ("b.tar.zst", 0)]);
        // The rewritten manifest is not what was signed: no signature for it, the upstream one
        // kept with its signature, which still verifies.
        assert_eq!(report.signature, None);
        assert!(!dest.join("manifest.toml.minisig").exists());
        let upstream = report.upstream_manifest.unwrap();
        assert_eq!(std::fs::read(&upstream).unwrap(), text.as_bytes());
        let upstream_sig =
            std::fs::read_to_string(dest.join("manifest.upstream.toml.minisig")).unwrap();
        gpulibs_plan::verify_manifest(text.as_bytes(), &upstream_sig, &key().public_key()).unwrap();

        // The mirror mirrors itself: bare names, nothing to copy, the manifest kept as is.
        let again = mirror(dest.to_str().unwrap(), &dest).unwrap();
        assert!(again.artifacts.iter().all(|x| !x.2));
        assert_eq!(std::fs::read_to_string(&again.manifest).unwrap(), written);
    }

    #[test]
    fn wrong_bytes_and_missing_manifests_are_refused() {
        let server = Server::start();
        let a = vec![5u8; 4000];
        server.put("/rel/a.tar.zst", [6u8; 4000]);
        let text = manifest(&[("a", "a.tar.zst", &[], &a)]);
        server.put("/rel/manifest.toml", text.as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("mirror");
        let err = mirror(&server.url("/rel/manifest.toml"), &dest).unwrap_err();
        assert!(err.to_string().contains("sha256 mismatch"), "{err}");
        assert!(!dest.join("a.tar.zst").exists());
        assert!(!dest.join("manifest.toml").exists());

        let err = mirror(&server.url("/rel/none.toml"), &dest).unwrap_err();
        assert!(
            matches!(&err, PackageError::Fetch { url, .. } if url.ends_with("/rel/none.toml")),
            "{err}"
        );
        assert!(err.to_string().contains("no manifest there"), "{err}");
    }
}
