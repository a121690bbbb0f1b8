//! The rules across a manifest's fields, checked at the edge: every problem found, each naming
//! the component, variant or field it is about.
//!
//! [`validate_structure`] holds the rules that do not depend on the machine (digests, ids,
//! paths and links confined to the install root, sizes); every path that reads a manifest runs
//! them ([`crate::load_manifest`], and `gpulibs-install` again on the manifest it is handed).
//! [`validate()`] adds the `needs` of each variant against a list of system libraries, which
//! `gpulibs package` checks before publishing (the planner rejects a variant whose needs are
//! unmet on the machine at hand, with a reason, rather than the whole manifest).

use std::collections::{BTreeMap, HashSet};

use crate::manifest::{Manifest, SystemInventory, VariantDevice};

/// The largest size a manifest may give for an archive, a file or an unpacked component:
/// 1 TiB, far above any GPU library release (the seed's largest tier is under 4 GB). A size
/// beyond it is a mistake or an attack (`u64::MAX` once wrapped the plan's disk figure to
/// "1.05 MB"), and is refused.
pub const MAX_DECLARED_BYTES: u64 = 1 << 40;

/// SONAMEs every Linux machine with an NVIDIA driver provides, which no manifest ships:
/// the driver's `libcuda.so.1` (and NVML), and glibc's libraries.
pub const DEFAULT_SYSTEM_LIBRARIES: &[&str] = &[
    "libcuda.so.1",
    "libnvidia-ml.so.1",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "libz.so.1",
];

/// One problem in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("component `{component}`: {field} `{value}` is not a sha256 digest (64 lowercase hex digits)")]
    BadSha256 {
        component: String,
        /// `archive.sha256` or `files["lib/libx.so"].sha256`.
        field: String,
        value: String,
    },
    #[error("component id `{id}` is used {count} times; ids must be unique")]
    DuplicateComponentId { id: String, count: usize },
    #[error("variant name `{name}` is used {count} times; names must be unique")]
    DuplicateVariantName { name: String, count: usize },
    #[error(
        "variant `{variant}` names component `{component}`, which the manifest does not define"
    )]
    UnknownComponent { variant: String, component: String },
    #[error("variant `{variant}` has no components")]
    EmptyVariant { variant: String },
    #[error("path `{path}` is written by both component `{first}` and component `{second}`")]
    PathConflict {
        path: String,
        first: String,
        second: String,
    },
    #[error(
        "component `{component}`: path `{path}` is not a relative path inside the install root \
         ({why})"
    )]
    UnsafePath {
        component: String,
        path: String,
        why: &'static str,
    },
    #[error(
        "variant `{variant}`: component `{component}` needs `{soname}`, which no component of \
         the variant provides, the system library list does not name, and this machine does not \
         have"
    )]
    UnmetNeed {
        variant: String,
        component: String,
        soname: String,
    },
    #[error("{what} is empty")]
    EmptyName {
        /// `a component id`, `a variant name`, `variant `cpu`: a component id`.
        what: String,
    },
    #[error("{what} `{value}` contains a control character (NUL, newline, …); use printable text")]
    ControlCharacter { what: String, value: String },
    #[error("component `{component}`: path `{path}` is listed {count} times; list each file once")]
    DuplicateFile {
        component: String,
        path: String,
        count: usize,
    },
    #[error(
        "component `{component}`: file `{file}` declares the SONAME link `{link}`, which is not a \
         bare file name ({why}); links are created next to their file, inside the install root"
    )]
    UnsafeLink {
        component: String,
        file: String,
        link: String,
        why: &'static str,
    },
    #[error(
        "component `{component}`: {field} is {value} bytes, more than the {max} bytes (1 TiB) \
         any release may declare; fix the manifest"
    )]
    AbsurdSize {
        component: String,
        /// `archive.size`, `archive.unpacked_size`, `files["lib/libx.so"].size`.
        field: String,
        value: u64,
        max: u64,
    },
    #[error("component `{component}`: archive.size is 0; an archive is never empty")]
    EmptyArchive { component: String },
    #[error(
        "component `{component}`: archive.unpacked_size is {unpacked} bytes, less than the \
         {files} bytes its files add up to"
    )]
    UnpackedSmallerThanFiles {
        component: String,
        unpacked: u64,
        files: u64,
    },
    #[error("component `{component}`: archive.url is empty")]
    EmptyUrl { component: String },
    #[error("component `{component}` has kernel coverage but no `cuda` runtime version")]
    CoverageWithoutCuda { component: String },
    #[error(
        "component `{component}`: reuse.{field} `{value}` cannot be read ({why}); write a PEP 440 \
         specifier such as `~=9.0` or `>=12.4,<13` for `versions`, release numbers such as \
         `13.0` for `built_with` (docs/manifest.md, Reuse)"
    )]
    BadReuseRange {
        component: String,
        /// `versions` or `built_with`.
        field: &'static str,
        value: String,
        why: String,
    },
    #[error("CPU variant `{variant}` includes component `{component}`, which carries GPU kernels")]
    GpuComponentInCpuVariant { variant: String, component: String },
    #[error(
        "component `{component}`: coverage.zstd_targets names `{target}`, which is not one of \
         its sass/ptx targets or while `compression` does not list `zstd`; list the targets \
         whose entries are zstd-compressed, as `gpulibs inspect` reports them"
    )]
    BadZstdTarget { component: String, target: String },
}

/// Whether `s` is 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks `manifest` and returns every problem (empty: valid).
///
/// A variant's `needs` are met by a component of the same variant (its `provides`, or a file or
/// SONAME link of that name), by `system_libraries` (what every target machine has; start from
/// [`DEFAULT_SYSTEM_LIBRARIES`]) or by `system` (what this machine has). A vendor validating
/// before publishing passes an empty inventory.
pub fn validate(
    manifest: &Manifest,
    system_libraries: &[String],
    system: &SystemInventory,
) -> Vec<ValidationError> {
    let mut problems = validate_structure(manifest);
    problems.extend(unmet_needs(manifest, system_libraries, system));
    problems
}

/// The rules that hold on every machine: digests are sha256, ids and variant names are
/// unique, non-empty printable text, variants name components that exist, every file path and
/// SONAME link stays inside the install root (relative, no `..`, no NUL; links are bare file
/// names), no path is listed twice, no two components of a variant write one path, sizes are
/// below [`MAX_DECLARED_BYTES`] and add up. Every problem at once (empty: valid).
pub fn validate_structure(manifest: &Manifest) -> Vec<ValidationError> {
    let mut problems = Vec::new();

    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &manifest.components {
        *ids.entry(c.id.as_str()).or_default() += 1;
        check_name(&mut problems, "a component id", &c.id);
    }
    for v in &manifest.variants {
        check_name(&mut problems, "a variant name", &v.name);
        for id in &v.components {
            check_name(
                &mut problems,
                &format!("variant `{}`: a component id", v.name),
                id,
            );
        }
    }
    for (id, count) in &ids {
        if *count > 1 {
            problems.push(ValidationError::DuplicateComponentId {
                id: id.to_string(),
                count: *count,
            });
        }
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &manifest.variants {
        *names.entry(v.name.as_str()).or_default() += 1;
    }
    for (name, count) in &names {
        if *count > 1 {
            problems.push(ValidationError::DuplicateVariantName {
                name: name.to_string(),
                count: *count,
            });
        }
    }

    // Paths: digests, safety, and one writer per path (files and their links).
    let mut paths_of: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in &manifest.components {
        if c.archive.url.trim().is_empty() {
            problems.push(ValidationError::EmptyUrl {
                component: c.id.clone(),
            });
        }
        if !is_sha256(&c.archive.sha256) {
            problems.push(ValidationError::BadSha256 {
                component: c.id.clone(),
                field: "archive.sha256".into(),
                value: c.archive.sha256.clone(),
            });
        }
        if c.coverage.is_some() && c.cuda.is_none() {
            problems.push(ValidationError::CoverageWithoutCuda {
                component: c.id.clone(),
            });
        }
        // A misspelt zstd target would make rule fatbin-zstd pass entries it should refuse.
        if let Some(cov) = &c.coverage {
            let has_zstd = cov
                .compression
                .contains(&gpulibs_inspect::Compression::Zstd);
            for t in &cov.zstd_targets {
                let known = cov.sass.iter().any(|s| s.0.name() == *t)
                    || cov.ptx.iter().any(|p| p.target.0.name() == *t);
                if !known || !has_zstd {
                    problems.push(ValidationError::BadZstdTarget {
                        component: c.id.clone(),
                        target: t.clone(),
                    });
                }
            }
        }
        if let Some(text) = &c.reuse.versions {
            if let Err(e) = crate::reuse::Specifier::parse(text) {
                problems.push(ValidationError::BadReuseRange {
                    component: c.id.clone(),
                    field: "versions",
                    value: text.clone(),
                    why: e.to_string(),
                });
            }
        }
        if let Some(text) = &c.reuse.built_with {
            if crate::reuse::parse_found_version(text).is_none() {
                problems.push(ValidationError::BadReuseRange {
                    component: c.id.clone(),
                    field: "built_with",
                    value: text.clone(),
                    why: "not dotted release numbers".into(),
                });
            }
        }
        check_sizes(&mut problems, c);
        let mut listed: BTreeMap<String, usize> = BTreeMap::new();
        for f in &c.files {
            if unsafe_path(&f.path).is_none() {
                *listed.entry(normalize(&f.path)).or_default() += 1;
            }
        }
        for (path, count) in listed {
            if count > 1 {
                problems.push(ValidationError::DuplicateFile {
                    component: c.id.clone(),
                    path,
                    count,
                });
            }
        }
        let mut own: HashSet<String> = HashSet::new();
        for f in &c.files {
            if !is_sha256(&f.sha256) {
                problems.push(ValidationError::BadSha256 {
                    component: c.id.clone(),
                    field: format!("files[\"{}\"].sha256", f.path),
                    value: f.sha256.clone(),
                });
            }
            if let Some(why) = unsafe_path(&f.path) {
                problems.push(ValidationError::UnsafePath {
                    component: c.id.clone(),
                    path: f.path.clone(),
                    why,
                });
                continue;
            }
            let dir = f.path.rsplit_once('/').map(|(d, _)| d);
            let mut written = vec![normalize(&f.path)];
            for link in &f.soname_links {
                if let Some(why) = unsafe_link(link) {
                    problems.push(ValidationError::UnsafeLink {
                        component: c.id.clone(),
                        file: f.path.clone(),
                        link: link.clone(),
                        why,
                    });
                    continue;
                }
                written.push(match dir {
                    Some(d) => normalize(&format!("{d}/{link}")),
                    None => link.clone(),
                });
            }
            for path in written {
                // A component listing its own path twice is its own business.
                if own.insert(path.clone()) {
                    paths_of.entry(c.id.as_str()).or_default().push(path);
                }
            }
        }
    }

    // One writer per path among the components installed together: a variant. Releases that
    // are alternatives (one variant per ONNX Runtime version) may well write the same paths.
    let mut reported: HashSet<(String, String, String)> = HashSet::new();
    for v in &manifest.variants {
        let mut writers: BTreeMap<&str, &str> = BTreeMap::new();
        for id in &v.components {
            for path in paths_of.get(id.as_str()).into_iter().flatten() {
                match writers.get(path.as_str()) {
                    Some(first) if *first != id.as_str() => {
                        let key = (path.clone(), first.to_string(), id.clone());
                        if reported.insert(key) {
                            problems.push(ValidationError::PathConflict {
                                path: path.clone(),
                                first: first.to_string(),
                                second: id.clone(),
                            });
                        }
                    }
                    Some(_) => {}
                    None => {
                        writers.insert(path.as_str(), id.as_str());
                    }
                }
            }
        }
    }

    // Variants: references.
    for v in &manifest.variants {
        if v.components.is_empty() {
            problems.push(ValidationError::EmptyVariant {
                variant: v.name.clone(),
            });
        }
        for id in &v.components {
            if !manifest.components.iter().any(|c| &c.id == id) {
                problems.push(ValidationError::UnknownComponent {
                    variant: v.name.clone(),
                    component: id.clone(),
                });
            }
        }
        for c in manifest
            .components
            .iter()
            .filter(|c| v.components.contains(&c.id))
        {
            if v.device == VariantDevice::Cpu && c.coverage.is_some() {
                problems.push(ValidationError::GpuComponentInCpuVariant {
                    variant: v.name.clone(),
                    component: c.id.clone(),
                });
            }
        }
    }
    problems
}

/// Each variant's `needs` against its own components, `system_libraries` and `system`.
fn unmet_needs(
    manifest: &Manifest,
    system_libraries: &[String],
    system: &SystemInventory,
) -> Vec<ValidationError> {
    let mut problems = Vec::new();
    let system_names: HashSet<&str> = system_libraries
        .iter()
        .map(String::as_str)
        .chain(system.libraries.iter().map(|l| l.soname.as_str()))
        .collect();
    for v in &manifest.variants {
        let members: Vec<_> = v
            .components
            .iter()
            .filter_map(|id| manifest.components.iter().find(|c| &c.id == id))
            .collect();
        let mut provided: HashSet<&str> = HashSet::new();
        for c in &members {
            provided.extend(c.provides.iter().map(String::as_str));
            for f in &c.files {
                provided.insert(f.path.rsplit('/').next().unwrap_or(&f.path));
                provided.extend(f.soname_links.iter().map(String::as_str));
            }
        }
        for c in &members {
            for need in &c.needs {
                if !provided.contains(need.as_str()) && !system_names.contains(need.as_str()) {
                    problems.push(ValidationError::UnmetNeed {
                        variant: v.name.clone(),
                        component: c.id.clone(),
                        soname: need.clone(),
                    });
                }
            }
        }
    }
    problems
}

/// The default system library list as owned strings, for [`validate`] and the policy.
pub fn default_system_libraries() -> Vec<String> {
    DEFAULT_SYSTEM_LIBRARIES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn check_name(problems: &mut Vec<ValidationError>, what: &str, value: &str) {
    if value.trim().is_empty() {
        problems.push(ValidationError::EmptyName { what: what.into() });
    } else if value.chars().any(char::is_control) {
        problems.push(ValidationError::ControlCharacter {
            what: what.into(),
            value: value.escape_debug().to_string(),
        });
    }
}

fn check_sizes(problems: &mut Vec<ValidationError>, c: &crate::manifest::Component) {
    let mut absurd = |field: String, value: u64| {
        if value > MAX_DECLARED_BYTES {
            problems.push(ValidationError::AbsurdSize {
                component: c.id.clone(),
                field,
                value,
                max: MAX_DECLARED_BYTES,
            });
            true
        } else {
            false
        }
    };
    let mut sane = !absurd("archive.size".into(), c.archive.size);
    if let Some(u) = c.archive.unpacked_size {
        sane &= !absurd("archive.unpacked_size".into(), u);
    }
    for f in &c.files {
        sane &= !absurd(format!("files[\"{}\"].size", f.path), f.size);
    }
    if c.archive.size == 0 {
        problems.push(ValidationError::EmptyArchive {
            component: c.id.clone(),
        });
    }
    // Each size is below 2^40, so a sum of fewer than 2^24 of them cannot wrap; saturate anyway.
    let files = c.files.iter().fold(0u64, |a, f| a.saturating_add(f.size));
    if let Some(unpacked) = c.archive.unpacked_size {
        if sane && unpacked < files {
            problems.push(ValidationError::UnpackedSmallerThanFiles {
                component: c.id.clone(),
                unpacked,
                files,
            });
        }
    }
}

/// Why a SONAME link name is not a bare file name, if it is not.
fn unsafe_link(link: &str) -> Option<&'static str> {
    if link.is_empty() {
        Some("empty")
    } else if link.contains('/') {
        Some("it contains `/`")
    } else if link == "." || link == ".." {
        Some("`.` and `..` name directories")
    } else if link.contains('\\') {
        Some("it contains `\\`")
    } else if link.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    }
}

fn unsafe_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("empty");
    }
    if path.starts_with('/') {
        return Some("absolute");
    }
    if path.chars().any(char::is_control) {
        return Some("it contains a control character");
    }
    if path.contains('\\') {
        return Some("use `/` as the separator");
    }
    if path.split('/').any(|p| p == "..") {
        return Some("`..` leaves the install root");
    }
    if path.ends_with('/') {
        return Some("names a directory");
    }
    if normalize(path).is_empty() {
        return Some("names the install root itself");
    }
    None
}

/// `a/./b//c` → `a/b/c`, so two spellings of one path collide (and an archive's `./a//b` is
/// found under the manifest's `a/b`).
pub fn normalize_path(path: &str) -> String {
    normalize(path)
}

fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_shape() {
        let good = "7d1a54127b222502f5b79b5fb0803061152a44f92b37e23c6527baf665d4da9a";
        assert!(is_sha256(good));
        assert!(!is_sha256(&good.to_uppercase()));
        assert!(!is_sha256(&good[1..]));
        assert!(!is_sha256(&format!("{good}0")));
        assert!(!is_sha256(&good.replace('a', "g")));
        assert!(!is_sha256(""));
    }

    #[test]
    fn paths() {
        assert_eq!(unsafe_path("lib/libx.so"), None);
        assert_eq!(unsafe_path("/lib/libx.so"), Some("absolute"));
        assert!(unsafe_path("lib/../../etc/passwd").is_some());
        assert!(unsafe_path("lib\\x.so").is_some());
        assert!(unsafe_path("").is_some());
        assert_eq!(normalize("a/./b//c"), "a/b/c");
    }
}
