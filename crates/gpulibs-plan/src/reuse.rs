//! When a library already on the machine may serve a component: the publisher's own version
//! constraint (a PEP 440 specifier such as `~=9.0`), NVIDIA's documented compatibility rules
//! between minor versions, and the SONAME. Pure functions over plain data; `docs/reuse.md`
//! states every rule with its source.
//!
//! - [`Specifier`]: PEP 440 version specifiers over release versions (`~=`, `==`, `==X.*`,
//!   `!=`, `!=X.*`, `>=`, `>`, `<=`, `<`, joined by `,`). Pre-, post-, dev- and local
//!   versions, and `===`, are refused with an error that says so: NVIDIA's wheels and
//!   libraries are versioned by release numbers only.
//! - [`nvidia_rule`]: the constraint NVIDIA documents for a library family (cuDNN, the CUDA
//!   runtime, NVRTC), or, where NVIDIA documents none, the SONAME's major alone.
//! - [`check_version`]: a found version (or an unknown one) against a list of [`Constraint`]s.

use std::cmp::Ordering;
use std::fmt;

use serde::{Serialize, Serializer};

/// A release version: `13.1.0.3` → `[13, 1, 0, 3]`. Compared as PEP 440 does, shorter ones
/// padded with zeros (`9.0` == `9.0.0`).
pub type Release = Vec<u64>;

/// Compares two releases, padding the shorter with zeros.
pub fn cmp_release(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        match x.cmp(&y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

/// A version a scan found (`13.1.0.3`, `9.19.0.56`) as numbers; `None` when it is not a
/// plain dotted release (then the version counts as unknown).
pub fn parse_found_version(text: &str) -> Option<Release> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    text.split('.')
        .map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u64>().ok())
                .flatten()
        })
        .collect()
}

/// Why a specifier could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecifierError {
    #[error("`{0}` is not a version specifier: write it as `~=9.0`, `>=12.4,<13` or `==13.*`")]
    Malformed(String),
    #[error("`{clause}`: {why}")]
    Unsupported { clause: String, why: &'static str },
}

/// The comparison of one clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `~=`
    Compatible,
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `<`
    Lt,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Compatible => "~=",
            Op::Eq => "==",
            Op::NotEq => "!=",
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
        }
    }
}

/// One clause: `>=9.0`, `==13.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub op: Op,
    pub version: Release,
    /// `==X.*` / `!=X.*`.
    pub wildcard: bool,
}

impl Clause {
    /// Whether `v` satisfies the clause.
    pub fn contains(&self, v: &[u64]) -> bool {
        let prefix = |p: &[u64]| (0..p.len()).all(|i| v.get(i).copied().unwrap_or(0) == p[i]);
        match (self.op, self.wildcard) {
            (Op::Eq, true) => prefix(&self.version),
            (Op::NotEq, true) => !prefix(&self.version),
            (Op::Eq, false) => cmp_release(v, &self.version) == Ordering::Equal,
            (Op::NotEq, false) => cmp_release(v, &self.version) != Ordering::Equal,
            (Op::Ge, _) => cmp_release(v, &self.version) != Ordering::Less,
            (Op::Gt, _) => cmp_release(v, &self.version) == Ordering::Greater,
            (Op::Le, _) => cmp_release(v, &self.version) != Ordering::Greater,
            (Op::Lt, _) => cmp_release(v, &self.version) == Ordering::Less,
            (Op::Compatible, _) => {
                cmp_release(v, &self.version) != Ordering::Less
                    && prefix(&self.version[..self.version.len() - 1])
            }
        }
    }

    /// Whether every version of major `major` satisfies the clause (what a SONAME alone
    /// proves about a library whose full version is unknown).
    pub fn accepts_whole_major(&self, major: u64) -> bool {
        let m = [major];
        let next = [major + 1];
        let v = &self.version;
        match (self.op, self.wildcard) {
            (Op::Eq, true) => v.len() == 1 && v[0] == major,
            (Op::NotEq, true) => v[0] != major,
            (Op::Eq, false) => false,
            (Op::NotEq, false) => v[0] != major,
            (Op::Ge, _) => cmp_release(v, &m) != Ordering::Greater,
            (Op::Gt, _) => cmp_release(v, &m) == Ordering::Less,
            (Op::Le, _) | (Op::Lt, _) => cmp_release(v, &next) != Ordering::Less,
            (Op::Compatible, _) => v.len() == 2 && v[0] == major && v[1] == 0,
        }
    }
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v: Vec<String> = self.version.iter().map(u64::to_string).collect();
        write!(
            f,
            "{}{}{}",
            self.op.text(),
            v.join("."),
            if self.wildcard { ".*" } else { "" }
        )
    }
}

/// A PEP 440 version specifier: clauses joined by `,`, all of which must hold. Empty: any
/// version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Specifier {
    pub clauses: Vec<Clause>,
}

impl Specifier {
    /// Reads `~=9.0`, `>= 12.4, < 13`, `==13.*`, `` (any).
    pub fn parse(text: &str) -> Result<Self, SpecifierError> {
        let mut clauses = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self { clauses });
        }
        for raw in text.split(',') {
            let clause = raw.trim();
            let malformed = || SpecifierError::Malformed(text.trim().to_string());
            if clause.is_empty() {
                return Err(malformed());
            }
            if clause.starts_with("===") {
                return Err(SpecifierError::Unsupported {
                    clause: clause.into(),
                    why: "arbitrary equality (`===`) is not supported; write `==`",
                });
            }
            let (op, rest) = [
                ("~=", Op::Compatible),
                ("==", Op::Eq),
                ("!=", Op::NotEq),
                (">=", Op::Ge),
                ("<=", Op::Le),
                (">", Op::Gt),
                ("<", Op::Lt),
            ]
            .iter()
            .find_map(|(p, op)| clause.strip_prefix(p).map(|r| (*op, r.trim())))
            .ok_or_else(malformed)?;
            let (body, wildcard) = match rest.strip_suffix(".*") {
                Some(b) => (b, true),
                None => (rest, false),
            };
            if wildcard && !matches!(op, Op::Eq | Op::NotEq) {
                return Err(SpecifierError::Unsupported {
                    clause: clause.into(),
                    why: "`.*` is only allowed after `==` and `!=`",
                });
            }
            let body = body.strip_prefix(['v', 'V']).unwrap_or(body);
            let version: Option<Release> = if body.is_empty() {
                None
            } else {
                body.split('.')
                    .map(|p| {
                        (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                            .then(|| p.parse::<u64>().ok())
                            .flatten()
                    })
                    .collect()
            };
            let Some(version) = version else {
                if body.bytes().any(|b| b.is_ascii_alphabetic() || b == b'+') {
                    return Err(SpecifierError::Unsupported {
                        clause: clause.into(),
                        why: "pre-, post-, dev- and local versions are not supported in reuse \
                              ranges; write release numbers (`9.0`, `13.1.0`)",
                    });
                }
                return Err(malformed());
            };
            if op == Op::Compatible && version.len() < 2 {
                return Err(SpecifierError::Unsupported {
                    clause: clause.into(),
                    why: "`~=` needs at least two release numbers (`~=9.0`, not `~=9`)",
                });
            }
            clauses.push(Clause {
                op,
                version,
                wildcard,
            });
        }
        Ok(Self { clauses })
    }

    /// Whether `v` satisfies every clause.
    pub fn contains(&self, v: &[u64]) -> bool {
        self.clauses.iter().all(|c| c.contains(v))
    }

    /// Whether every version of major `major` satisfies it.
    pub fn accepts_whole_major(&self, major: u64) -> bool {
        self.clauses.iter().all(|c| c.accepts_whole_major(major))
    }

    /// Whether it allows any version.
    pub fn is_any(&self) -> bool {
        self.clauses.is_empty()
    }
}

impl fmt::Display for Specifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.clauses.is_empty() {
            return f.write_str("any version");
        }
        let c: Vec<String> = self.clauses.iter().map(|c| c.to_string()).collect();
        f.write_str(&c.join(","))
    }
}

impl Serialize for Specifier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A `Requires-Dist` line split into the distribution name and its specifier:
/// `nvidia-cudnn-cu13~=9.0`, `nvidia-cublas`, `foo (>=1.0) ; extra == "cuda"`. Extras in
/// brackets and environment markers are dropped.
pub fn split_requirement(line: &str) -> Result<(String, Specifier), SpecifierError> {
    let req = line.split(';').next().unwrap_or_default().trim();
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    let name = &req[..end];
    if name.is_empty() {
        return Err(SpecifierError::Malformed(line.trim().to_string()));
    }
    let mut rest = req[end..].trim();
    if let Some(r) = rest.strip_prefix('[') {
        rest = r
            .split_once(']')
            .map(|(_, r)| r.trim())
            .ok_or_else(|| SpecifierError::Malformed(line.trim().to_string()))?;
    }
    let rest = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(rest);
    Ok((name.to_string(), Specifier::parse(rest)?))
}

// ---------------------------------------------------------------------------------------------
// Constraints and NVIDIA's rules.

/// One rule a reused library must satisfy: who states it, and the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Constraint {
    /// Short, for tables: `publisher ~=9.0`, `NVIDIA cuDNN rule`, `SONAME major`.
    pub name: String,
    /// In full: `publisher: onnxruntime-gpu 1.31.1 Requires-Dist nvidia-cudnn-cu13~=9.0`,
    /// `NVIDIA: cuDNN API compatibility (…)`.
    pub rule: String,
    /// Where the rule is written: a URL or the distribution's metadata.
    pub source: String,
    pub specifier: Specifier,
}

/// The SONAME's major: `9` for `libcudnn.so.9`, `13` for `libnvrtc-builtins.so.13.0`.
pub fn soname_major(soname: &str) -> Option<u64> {
    soname.split_once(".so.")?.1.split('.').next()?.parse().ok()
}

/// cuDNN API compatibility (cuDNN Backend developer guide).
pub const CUDNN_RULE_URL: &str =
    "https://docs.nvidia.com/deeplearning/cudnn/latest/developer/forward-compatibility.html";
/// CUDA minor version compatibility (CUDA Compatibility guide).
pub const CUDA_MVC_URL: &str =
    "https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html";
/// The NVRTC user guide.
pub const NVRTC_URL: &str = "https://docs.nvidia.com/cuda/nvrtc/";

/// The library family NVIDIA states a rule for, by SONAME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleFamily {
    /// `libcudnn*.so.9`.
    Cudnn,
    /// `libcudart.so.N`.
    CudaRuntime,
    /// `libnvrtc.so.N`.
    Nvrtc,
    /// Every other library: the SONAME's major alone.
    Other,
}

impl RuleFamily {
    pub fn of(soname: &str) -> Self {
        let stem = soname
            .strip_prefix("lib")
            .and_then(|s| s.split_once(".so"))
            .map(|s| s.0)
            .unwrap_or_default();
        if stem == "cudnn" || stem.starts_with("cudnn_") {
            Self::Cudnn
        } else if stem == "cudart" {
            Self::CudaRuntime
        } else if stem == "nvrtc" {
            Self::Nvrtc
        } else {
            Self::Other
        }
    }
}

/// The constraint NVIDIA's documents put on a library with SONAME major `major` serving a
/// consumer built against `built_with` (when the manifest says), as a range:
///
/// - cuDNN (API compatibility, cuDNN ≥ 7): same major; a minor release serves applications
///   built against the same or an earlier minor, not a later one → `>=built,==major.*`.
/// - CUDA runtime: within a major family the runtime is backward compatible (minor version
///   compatibility is about the driver); a runtime older than the one the consumer was built
///   with may lack what it calls → `>=built,==major.*`.
/// - NVRTC: `libnvrtc.so.N` is versioned by major only and serves any consumer of that major;
///   it loads `libnvrtc-builtins.so.N.M` of its own minor from its own directory (checked
///   separately, [`nvrtc_builtins_for`]) → `==major.*`.
/// - Others (cuBLAS, cuFFT, cuRAND, nvJitLink): NVIDIA states no cross-minor guarantee that
///   gpulibs found; the SONAME's major alone, and the publisher's range → `==major.*`.
///   Verification decides (a reused library is proved before activation).
pub fn nvidia_rule(soname: &str, built_with: Option<&[u64]>) -> Option<Constraint> {
    let major = soname_major(soname)?;
    let same_major = Clause {
        op: Op::Eq,
        version: vec![major],
        wildcard: true,
    };
    let built = built_with.filter(|b| b.first() == Some(&major) && b.len() >= 2);
    let floor = |b: &[u64]| Clause {
        op: Op::Ge,
        version: b.to_vec(),
        wildcard: false,
    };
    let (name, rule, source, clauses) = match RuleFamily::of(soname) {
        RuleFamily::Cudnn => (
            "NVIDIA cuDNN rule",
            "NVIDIA: cuDNN API compatibility (same major, minor not older than the build's)",
            CUDNN_RULE_URL,
            built
                .map(|b| vec![floor(b), same_major.clone()])
                .unwrap_or_else(|| vec![same_major.clone()]),
        ),
        RuleFamily::CudaRuntime => (
            "NVIDIA CUDA runtime rule",
            "NVIDIA: CUDA runtime within its major family (not older than the build's)",
            CUDA_MVC_URL,
            built
                .map(|b| vec![floor(b), same_major.clone()])
                .unwrap_or_else(|| vec![same_major.clone()]),
        ),
        RuleFamily::Nvrtc => (
            "NVIDIA NVRTC rule",
            "NVIDIA: NVRTC is versioned by major (libnvrtc.so.N), builtins of its own minor",
            NVRTC_URL,
            vec![same_major.clone()],
        ),
        RuleFamily::Other => (
            "SONAME major",
            "SONAME major (no cross-minor rule published by NVIDIA; verification decides)",
            "the library's DT_SONAME",
            vec![same_major.clone()],
        ),
    };
    Some(Constraint {
        name: name.into(),
        rule: rule.into(),
        source: source.into(),
        specifier: Specifier { clauses },
    })
}

/// The builtins library a `libnvrtc.so.N` of version `N.M…` loads from its own directory:
/// `libnvrtc-builtins.so.N.M`. `None` for other libraries or an unknown version.
pub fn nvrtc_builtins_for(soname: &str, version: Option<&[u64]>) -> Option<String> {
    if RuleFamily::of(soname) != RuleFamily::Nvrtc {
        return None;
    }
    let v = version.filter(|v| v.len() >= 2)?;
    Some(format!("libnvrtc-builtins.so.{}.{}", v[0], v[1]))
}

/// Why a found library does not satisfy a constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The refusing constraint's short name.
    pub name: String,
    pub rule: String,
    pub source: String,
    pub specifier: String,
    /// In words: `9.19.0.56 is not in >=9.20,==9.*`.
    pub detail: String,
}

/// Checks a found library's version (`None`: unknown) against every constraint. An unknown
/// version passes only a constraint that every version of the SONAME's major satisfies (the
/// SONAME proves the major, nothing more). Returns the constraints that accepted it (all of
/// them), or the first that refused it.
pub fn check_version(
    found: Option<&[u64]>,
    major: u64,
    constraints: &[Constraint],
) -> Result<Vec<Constraint>, Refused> {
    let mut accepted = Vec::new();
    for c in constraints {
        let ok = match found {
            Some(v) => c.specifier.contains(v),
            None => c.specifier.accepts_whole_major(major),
        };
        if !ok {
            let detail = match found {
                Some(v) => {
                    let v: Vec<String> = v.iter().map(u64::to_string).collect();
                    format!("{} is not in {}", v.join("."), c.specifier)
                }
                None => format!(
                    "its version is unknown and {} is narrower than major {major}",
                    c.specifier
                ),
            };
            return Err(Refused {
                name: c.name.clone(),
                rule: c.rule.clone(),
                source: c.source.clone(),
                specifier: c.specifier.to_string(),
                detail,
            });
        }
        accepted.push(c.clone());
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Release {
        parse_found_version(s).unwrap()
    }

    #[test]
    fn specifiers_contain_versions() {
        // (specifier, version, expected)
        let cases = [
            ("~=9.0", "9.0", true),
            ("~=9.0", "9.19.0.56", true),
            ("~=9.0", "10.0", false),
            ("~=9.0", "8.9.7", false),
            ("~=13.0", "13.1.0.3", true),
            ("~=12.0", "12.0.0.61", true),
            ("~=10.0", "10.4.0.35", true),
            ("~=9.1.0", "9.1.5", true),
            ("~=9.1.0", "9.2.0", false),
            ("~=9.1.0", "9.0.9", false),
            ("==9.19.0.56", "9.19.0.56", true),
            ("==9.19", "9.19.0", true),
            ("==9.19", "9.19.1", false),
            ("==13.*", "13.5.37", true),
            ("==13.*", "12.9", false),
            ("==13.0.*", "13.0.88", true),
            ("==13.0.*", "13.1", false),
            ("!=13.0.88", "13.0.88", false),
            ("!=13.0.88", "13.0.96", true),
            ("!=13.0.*", "13.0.96", false),
            ("!=13.0.*", "13.1", true),
            (">=12.4", "12.4", true),
            (">=12.4", "12.3.9", false),
            (">12.4", "12.4.0", false),
            (">12.4", "12.4.1", true),
            ("<13", "12.9.86", true),
            ("<13", "13.0", false),
            ("<=13.0", "13.0.0", true),
            ("<=13.0", "13.0.1", false),
            (">=12.4, <13", "12.8", true),
            (">=12.4,<13", "13.0", false),
            (" >= 9.3 , == 9.* ", "9.19", true),
            ("", "1.2.3", true),
        ];
        for (spec, version, want) in cases {
            let s = Specifier::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(s.contains(&v(version)), want, "{spec} ∋ {version}");
        }
    }

    #[test]
    fn bad_specifiers_are_named() {
        let cases = [
            "~=9",
            "=9.0",
            "9.0",
            ">=",
            ">=9.0,",
            ">=9.x",
            "===9.0",
            ">=9.0rc1",
            "==9.0+cu13",
            ">=9.*",
            "~=9.0.*",
        ];
        for spec in cases {
            let e = Specifier::parse(spec).expect_err(spec);
            assert!(!e.to_string().is_empty(), "{spec}");
        }
        assert!(matches!(
            Specifier::parse("~=9"),
            Err(SpecifierError::Unsupported { .. })
        ));
        assert!(matches!(
            Specifier::parse(">=9.0rc1"),
            Err(SpecifierError::Unsupported { .. })
        ));
    }

    #[test]
    fn whole_major_acceptance() {
        // (specifier, major, accepts every version of that major)
        let cases = [
            ("", 9, true),
            ("~=9.0", 9, true),
            ("~=9.1", 9, false),
            ("~=9.0.0", 9, false),
            ("~=8.0", 9, false),
            ("==9.*", 9, true),
            ("==9.0.*", 9, false),
            ("==9.19", 9, false),
            (">=9", 9, true),
            (">=9.0.0", 9, true),
            (">=8.5", 9, true),
            (">=9.1", 9, false),
            (">8.9", 9, true),
            (">9", 9, false),
            ("<10", 9, true),
            ("<9.9", 9, false),
            ("<=10.0", 9, true),
            ("<=9.99", 9, false),
            ("!=8.1", 9, true),
            ("!=9.1", 9, false),
            ("!=9.*", 9, false),
            ("!=8.*", 9, true),
            (">=9,<10", 9, true),
        ];
        for (spec, major, want) in cases {
            let s = Specifier::parse(spec).unwrap();
            assert_eq!(s.accepts_whole_major(major), want, "{spec} ⊇ {major}.*");
            // Consistent with `contains` on a sample of that major.
            if want {
                for sample in ["0", "0.1", "5.2.1", "99.0.1"] {
                    let mut ver = vec![major];
                    ver.extend(v(sample));
                    assert!(s.contains(&ver), "{spec} ∋ {ver:?}");
                }
            }
        }
    }

    #[test]
    fn requirements_split() {
        let cases = [
            ("nvidia-cudnn-cu13~=9.0", "nvidia-cudnn-cu13", "~=9.0"),
            ("nvidia-cublas", "nvidia-cublas", "any version"),
            (
                "nvidia-cuda-nvrtc (~=13.0) ; extra == \"cuda\"",
                "nvidia-cuda-nvrtc",
                "~=13.0",
            ),
            ("foo[bar]>=1.0,<2", "foo", ">=1.0,<2"),
        ];
        for (line, name, spec) in cases {
            let (n, s) = split_requirement(line).unwrap();
            assert_eq!(
                (n.as_str(), s.to_string()),
                (name, spec.to_string()),
                "{line}"
            );
        }
        assert!(split_requirement("~=9.0").is_err());
    }

    #[test]
    fn nvidia_rules_by_family() {
        // (soname, built with, found, accepted)
        let cases: [(&str, Option<&str>, Option<&str>, bool); 16] = [
            // cuDNN: a newer minor serves an older build, an older minor does not.
            ("libcudnn.so.9", Some("9.8"), Some("9.19.0.56"), true),
            ("libcudnn.so.9", Some("9.8"), Some("9.8.0"), true),
            ("libcudnn.so.9", Some("9.20"), Some("9.19.0.56"), false),
            ("libcudnn.so.9", None, Some("9.19.0.56"), true),
            ("libcudnn.so.9", None, Some("8.9.7"), false),
            ("libcudnn_graph.so.9", Some("9.8"), None, false),
            ("libcudnn.so.9", None, None, true),
            // CUDA runtime: not older than the build's.
            ("libcudart.so.13", Some("13.0"), Some("13.0.96"), true),
            ("libcudart.so.13", Some("13.1"), Some("13.0.96"), false),
            ("libcudart.so.13", Some("13.0"), None, true),
            ("libcudart.so.13", Some("13.1"), None, false),
            // NVRTC: any minor of the major.
            ("libnvrtc.so.13", Some("13.5"), Some("13.0.88"), true),
            ("libnvrtc.so.13", None, Some("12.9.86"), false),
            // Others: the SONAME's major.
            ("libcublas.so.13", None, Some("13.1.0.3"), true),
            ("libcublasLt.so.13", Some("13.10"), Some("13.1.0.3"), true),
            ("libcufft.so.12", None, None, true),
        ];
        for (soname, built, found, want) in cases {
            let built = built.map(v);
            let rule = nvidia_rule(soname, built.as_deref()).unwrap();
            let found = found.map(v);
            let got = check_version(found.as_deref(), soname_major(soname).unwrap(), &[rule]);
            assert_eq!(
                got.is_ok(),
                want,
                "{soname} built {built:?} found {found:?}: {got:?}"
            );
        }
    }

    #[test]
    fn nvrtc_builtins_names() {
        assert_eq!(
            nvrtc_builtins_for("libnvrtc.so.13", Some(&[13, 0, 88])),
            Some("libnvrtc-builtins.so.13.0".into())
        );
        assert_eq!(nvrtc_builtins_for("libnvrtc.so.13", None), None);
        assert_eq!(nvrtc_builtins_for("libcublas.so.13", Some(&[13, 1])), None);
        assert_eq!(soname_major("libnvrtc-builtins.so.13.5"), Some(13));
        assert_eq!(
            RuleFamily::of("libnvrtc-builtins.so.13.5"),
            RuleFamily::Other
        );
    }

    #[test]
    fn publisher_and_nvidia_together() {
        let publisher = Constraint {
            name: "publisher ~=9.0".into(),
            rule: "publisher".into(),
            source: "METADATA".into(),
            specifier: Specifier::parse("~=9.0").unwrap(),
        };
        let nvidia = nvidia_rule("libcudnn.so.9", None).unwrap();
        let both = [publisher, nvidia];
        let ok = check_version(Some(&v("9.19.0.56")), 9, &both).unwrap();
        assert_eq!(ok.len(), 2);
        let err = check_version(Some(&v("8.9.7")), 8, &both).unwrap_err();
        assert_eq!(err.rule, "publisher");
        assert!(err.detail.contains("8.9.7"), "{}", err.detail);
        // An unknown version passes a range that is the whole major, and only that.
        assert!(check_version(None, 9, &both).is_ok());
        let narrow = Constraint {
            name: "narrow".into(),
            rule: "narrow".into(),
            source: "vendor".into(),
            specifier: Specifier::parse(">=9.10,<10").unwrap(),
        };
        let err = check_version(None, 9, &[narrow]).unwrap_err();
        assert!(err.detail.contains("unknown"), "{}", err.detail);
    }
}
