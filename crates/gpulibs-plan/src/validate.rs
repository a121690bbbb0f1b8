//! The rules across a manifest's fields, checked once at the edge: every problem found, each
//! naming the component, variant or field it is about.

use std::collections::{BTreeMap, HashSet};

use crate::manifest::{Manifest, SystemInventory, VariantDevice};

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
    #[error("component `{component}`: archive.url is empty")]
    EmptyUrl { component: String },
    #[error("component `{component}` has kernel coverage but no `cuda` runtime version")]
    CoverageWithoutCuda { component: String },
    #[error("CPU variant `{variant}` includes component `{component}`, which carries GPU kernels")]
    GpuComponentInCpuVariant { variant: String, component: String },
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
    let mut problems = Vec::new();

    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &manifest.components {
        *ids.entry(c.id.as_str()).or_default() += 1;
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
                if link.contains('/') || link == "." || link == ".." || link.is_empty() {
                    problems.push(ValidationError::UnsafePath {
                        component: c.id.clone(),
                        path: link.clone(),
                        why: "a SONAME link is a bare file name, created next to its file",
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

    // Variants: references and needs.
    let system_names: HashSet<&str> = system_libraries
        .iter()
        .map(String::as_str)
        .chain(system.libraries.iter().map(|l| l.soname.as_str()))
        .collect();
    for v in &manifest.variants {
        if v.components.is_empty() {
            problems.push(ValidationError::EmptyVariant {
                variant: v.name.clone(),
            });
        }
        let members: Vec<_> = v
            .components
            .iter()
            .filter_map(|id| {
                let found = manifest.components.iter().find(|c| &c.id == id);
                if found.is_none() {
                    problems.push(ValidationError::UnknownComponent {
                        variant: v.name.clone(),
                        component: id.clone(),
                    });
                }
                found
            })
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
            if v.device == VariantDevice::Cpu && c.coverage.is_some() {
                problems.push(ValidationError::GpuComponentInCpuVariant {
                    variant: v.name.clone(),
                    component: c.id.clone(),
                });
            }
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

fn unsafe_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("empty");
    }
    if path.starts_with('/') {
        return Some("absolute");
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
    None
}

/// `a/./b//c` → `a/b/c`, so two spellings of one path collide.
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
