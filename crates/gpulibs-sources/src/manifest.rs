//! Where the release manifest comes from: a file, an `http(s)://` URL, or the embedded default;
//! its signature (by default next to it, `<manifest>.minisig`); and, for a URL manifest, its
//! relative archive URLs made absolute against it.
//!
//! The rules: an explicit signature must exist, the default one may be missing (the manifest is
//! then unsigned, and `gpulibs-plan`'s [`check_signature`] decides whether that is allowed); a
//! signature is at most [`SIGNATURE_MAX_BYTES`], a manifest at most [`DOCUMENT_MAX_BYTES`]; the
//! signature is checked on the bytes as read, before they are parsed.

use std::path::PathBuf;

use gpulibs_fetch::DOCUMENT_MAX_BYTES;
use gpulibs_fetch::{fetch_document, is_http_url, resolve_url, FetchError, FetchOptions};
use gpulibs_hint::Hint;
use gpulibs_plan::{check_manifest, check_signature, human_bytes, Manifest, ManifestError};
use gpulibs_plan::{SignatureError, Trust};

use crate::{embedded_default, CoverageTable, PIP_URL_SCHEME};

/// The most bytes read for a signature: a minisign signature is a few hundred.
pub const SIGNATURE_MAX_BYTES: u64 = 64 * 1024;

/// How [`LoadedManifest::source`] names the embedded default.
pub const EMBEDDED_SOURCE: &str = "embedded (official ONNX Runtime wheels through pip)";

/// Where the manifest comes from and how far to trust it.
#[derive(Debug, Clone)]
pub struct ManifestRequest {
    /// A path (`file://` allowed) or an `http(s)://` URL; `None`: the embedded default.
    pub manifest: Option<String>,
    /// The signature, a path or URL; `None`: [`default_signature`] of the manifest, which may
    /// be missing.
    pub signature: Option<String>,
    /// The minisign public key the app pins (`RW…`).
    pub public_key: Option<String>,
    /// Use a manifest that is unsigned, or not signed by the pinned key.
    pub allow_unsigned: bool,
    /// Network settings for URLs (proxies, CA bundles, retries).
    pub fetch: FetchOptions,
}

/// A manifest read, its signature checked, and validated.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    pub manifest: Manifest,
    pub trust: Trust,
    /// [`EMBEDDED_SOURCE`], the manifest's path or its URL.
    pub source: String,
    /// The directory of a local manifest: archives with relative URLs are read from there.
    /// `None` for the embedded manifest and for a URL manifest (whose relative URLs were made
    /// absolute against its URL).
    pub dir: Option<PathBuf>,
}

/// Which document a [`ManifestLoadError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    Manifest,
    Signature,
}

impl std::fmt::Display for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Document::Manifest => "manifest",
            Document::Signature => "signature",
        })
    }
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestLoadError {
    /// The manifest built into gpulibs breaks the manifest rules.
    #[error("the manifest built into gpulibs is broken")]
    Embedded(#[source] ManifestError),
    #[error("cannot read the {what} {}", path.display())]
    Read {
        what: Document,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no {what} at {url} (HTTP 404)")]
    NotFound { what: Document, url: String },
    #[error(
        "the {what} at {url} is larger than {} ({max_bytes} bytes), the most gpulibs reads for \
         one: refused",
        human_bytes(*max_bytes)
    )]
    TooLarge {
        what: Document,
        url: String,
        max_bytes: u64,
    },
    #[error("downloading the {what} {url} failed")]
    Download {
        what: Document,
        url: String,
        #[source]
        source: Box<FetchError>,
    },
    /// The signature check refused the manifest.
    #[error("the manifest {manifest} is not trusted{}", no_signature_at.as_ref().map(|s| format!(" (no signature at {s})")).unwrap_or_default())]
    Untrusted {
        manifest: String,
        /// Where the default signature was looked for, when there was none.
        no_signature_at: Option<String>,
        #[source]
        source: SignatureError,
    },
    /// The bytes are not a manifest this version reads, or break its rules.
    #[error("the manifest {manifest} was not used")]
    Manifest {
        manifest: String,
        #[source]
        source: ManifestError,
    },
}

impl Hint for ManifestLoadError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            ManifestLoadError::Embedded(_) => {
                "the manifest built into gpulibs is broken: report it".into()
            }
            ManifestLoadError::Read { what, .. } => format!("check the path given to --{what}"),
            ManifestLoadError::NotFound { what, .. } => format!("check the URL given to --{what}"),
            ManifestLoadError::TooLarge { what, .. } => {
                format!("check the URL given to --{what}: it serves something else")
            }
            // The download's own error says what to do about the network, proxy or TLS.
            ManifestLoadError::Download { what, .. } => format!("check the URL given to --{what}"),
            ManifestLoadError::Untrusted { .. } => "pin the vendor's key with --public-key or \
                 GPULIBS_PUBLIC_KEY, or pass --allow-unsigned if you know where it came from"
                .into(),
            ManifestLoadError::Manifest {
                manifest,
                source: ManifestError::Invalid { .. },
            } => format!(
                "{manifest} breaks the rules of docs/manifest.md (Validation): report it to the \
                 vendor"
            ),
            // The manifest's own error says what to do when it knows (upgrade, spelling).
            ManifestLoadError::Manifest { source, .. } if source.hint().is_some() => return None,
            ManifestLoadError::Manifest { .. } => {
                "check that it is a gpulibs release manifest (docs/manifest.md)".into()
            }
        })
    }
}

/// Where the signature of the manifest at `source` (a path or URL) is looked for by default.
pub fn default_signature(source: &str) -> String {
    format!("{source}.minisig")
}

/// Reads the manifest `req` names (or the embedded default), checks its signature on the bytes
/// as read, validates it, and makes a URL manifest's relative archive URLs absolute.
pub fn load_manifest(req: &ManifestRequest) -> Result<LoadedManifest, ManifestLoadError> {
    let Some(spec) = &req.manifest else {
        let manifest = embedded_default(CoverageTable::embedded());
        check_manifest(&manifest).map_err(ManifestLoadError::Embedded)?;
        return Ok(LoadedManifest {
            manifest,
            trust: Trust::BuiltLocally,
            source: EMBEDDED_SOURCE.into(),
            dir: None,
        });
    };
    let remote = is_http_url(spec);
    let (bytes, source, dir) = if remote {
        let bytes = download(spec, DOCUMENT_MAX_BYTES, Document::Manifest, &req.fetch)?
            .ok_or_else(|| ManifestLoadError::NotFound {
                what: Document::Manifest,
                url: spec.clone(),
            })?;
        (bytes, spec.clone(), None)
    } else {
        let path = PathBuf::from(spec.strip_prefix("file://").unwrap_or(spec));
        let bytes = std::fs::read(&path).map_err(|source| ManifestLoadError::Read {
            what: Document::Manifest,
            path: path.clone(),
            source,
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (bytes, path.display().to_string(), Some(dir))
    };
    let sig_spec = req
        .signature
        .clone()
        .unwrap_or_else(|| default_signature(&source));
    let signature = read_signature(&sig_spec, req.signature.is_some(), &req.fetch)?;
    let trust = check_signature(
        &bytes,
        signature.as_deref(),
        req.public_key.as_deref(),
        req.allow_unsigned,
    )
    .map_err(|e| ManifestLoadError::Untrusted {
        manifest: source.clone(),
        no_signature_at: signature.is_none().then(|| sig_spec.clone()),
        source: e,
    })?;
    // Read and validated in one step, as every user of a manifest does.
    let mut manifest =
        gpulibs_plan::load_manifest(&bytes).map_err(|e| ManifestLoadError::Manifest {
            manifest: source.clone(),
            source: e,
        })?;
    if remote {
        absolutize_urls(&mut manifest, spec);
    }
    Ok(LoadedManifest {
        manifest,
        trust,
        source,
        dir,
    })
}

/// Downloads a manifest or signature; `None` on 404.
fn download(
    url: &str,
    max_bytes: u64,
    what: Document,
    opts: &FetchOptions,
) -> Result<Option<Vec<u8>>, ManifestLoadError> {
    fetch_document(url, max_bytes, opts).map_err(|e| match e {
        FetchError::TooLarge { .. } => ManifestLoadError::TooLarge {
            what,
            url: url.to_string(),
            max_bytes,
        },
        source => ManifestLoadError::Download {
            what,
            url: url.to_string(),
            source: Box::new(source),
        },
    })
}

/// The signature text from `spec` (a path or URL). A missing file or a 404 is `None` when the
/// location is the default one (`explicit` false); an explicit signature must exist.
fn read_signature(
    spec: &str,
    explicit: bool,
    opts: &FetchOptions,
) -> Result<Option<String>, ManifestLoadError> {
    let bytes = if is_http_url(spec) {
        match download(spec, SIGNATURE_MAX_BYTES, Document::Signature, opts)? {
            Some(bytes) => bytes,
            None if explicit => {
                return Err(ManifestLoadError::NotFound {
                    what: Document::Signature,
                    url: spec.to_string(),
                })
            }
            None => return Ok(None),
        }
    } else {
        match std::fs::read(spec) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
            Err(source) => {
                return Err(ManifestLoadError::Read {
                    what: Document::Signature,
                    path: PathBuf::from(spec),
                    source,
                })
            }
        }
    };
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Makes every relative archive URL (and mirror) of a manifest read from `base` absolute
/// against it (RFC 3986: `a.tar.zst` next to `https://h/rel/manifest.toml` is
/// `https://h/rel/a.tar.zst`). Absolute URLs and `pip:` placeholders are left as they are.
pub fn absolutize_urls(manifest: &mut Manifest, base: &str) {
    let resolve = |url: &mut String| {
        if url.starts_with(PIP_URL_SCHEME) {
            return;
        }
        if let Some(absolute) = resolve_url(base, url) {
            *url = absolute;
        }
    };
    for component in &mut manifest.components {
        resolve(&mut component.archive.url);
        component.archive.mirrors.iter_mut().for_each(resolve);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(manifest: Option<String>) -> ManifestRequest {
        ManifestRequest {
            manifest,
            signature: None,
            public_key: None,
            allow_unsigned: false,
            fetch: FetchOptions::new(std::env::temp_dir()),
        }
    }

    #[test]
    fn the_default_signature_sits_next_to_the_manifest() {
        assert_eq!(default_signature("m/x.toml"), "m/x.toml.minisig");
        assert_eq!(
            default_signature("https://h/rel/x.toml"),
            "https://h/rel/x.toml.minisig"
        );
    }

    #[test]
    fn the_embedded_manifest_is_built_locally() {
        let loaded = load_manifest(&request(None)).unwrap();
        assert_eq!(loaded.source, EMBEDDED_SOURCE);
        assert!(loaded.dir.is_none());
        assert!(matches!(loaded.trust, Trust::BuiltLocally));
    }

    #[test]
    fn a_missing_manifest_file_names_its_path_and_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nothing.toml");
        let e = load_manifest(&request(Some(path.display().to_string()))).unwrap_err();
        assert!(matches!(
            e,
            ManifestLoadError::Read {
                what: Document::Manifest,
                ..
            }
        ));
        assert!(e.to_string().contains("nothing.toml"), "{e}");
        assert_eq!(e.hint().unwrap(), "check the path given to --manifest");
        assert_eq!(gpulibs_hint::repeated_cause(&e), None);
    }

    #[test]
    fn an_explicit_signature_must_exist_and_a_default_one_may_not() {
        let dir = tempfile::tempdir().unwrap();
        let opts = FetchOptions::new(dir.path());
        let gone = dir.path().join("x.minisig").display().to_string();
        assert_eq!(read_signature(&gone, false, &opts).unwrap(), None);
        let e = read_signature(&gone, true, &opts).unwrap_err();
        assert!(matches!(
            e,
            ManifestLoadError::Read {
                what: Document::Signature,
                ..
            }
        ));
        assert_eq!(e.hint().unwrap(), "check the path given to --signature");
    }

    #[test]
    fn an_unsigned_manifest_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        // Not a manifest at all: the signature is checked first, on the bytes as read.
        std::fs::write(&path, "not toml").unwrap();
        let mut req = request(Some(path.display().to_string()));
        let e = load_manifest(&req).unwrap_err();
        let ManifestLoadError::Untrusted {
            no_signature_at, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            no_signature_at.as_deref(),
            Some(default_signature(&path.display().to_string()).as_str())
        );
        assert!(e.hint().unwrap().contains("--allow-unsigned"));
        req.allow_unsigned = true;
        let e = load_manifest(&req).unwrap_err();
        assert!(matches!(e, ManifestLoadError::Manifest { .. }), "{e:?}");
        assert_eq!(gpulibs_hint::repeated_cause(&e), None);
    }

    #[test]
    fn relative_urls_are_made_absolute_against_the_manifest_url() {
        let mut manifest = embedded_default(CoverageTable::embedded());
        let c = &mut manifest.components[0];
        c.archive.url = "a.tar.zst".into();
        c.archive.mirrors = vec!["../b.tar.zst".into(), "https://m/c.tar.zst".into()];
        manifest.components[1].archive.url = format!("{PIP_URL_SCHEME}x");
        absolutize_urls(&mut manifest, "https://h/rel/manifest.toml");
        let c = &manifest.components[0];
        assert_eq!(c.archive.url, "https://h/rel/a.tar.zst");
        assert_eq!(
            c.archive.mirrors,
            vec!["https://h/b.tar.zst", "https://m/c.tar.zst"]
        );
        assert!(manifest.components[1]
            .archive
            .url
            .starts_with(PIP_URL_SCHEME));
    }
}
