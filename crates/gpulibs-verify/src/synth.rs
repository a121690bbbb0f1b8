//! Inputs synthesised from a model's metadata: pure functions over [`InputMeta`].
//!
//! Every dynamic dimension (named like `batch` or unnamed) takes its size from `--shape`: by
//! input name (the whole shape) or by the dimension's symbolic name (that size everywhere the
//! name appears); otherwise 1, and the report says so. Data is pseudo-random and deterministic
//! (seeded by the input name): floats uniform in [-1, 1), integers in [0, 8), booleans mixed;
//! `--value NAME=X` sets every element of input NAME to X instead (sample rates, flags,
//! lengths).
//!
//! Nothing is allocated before its size is known to fit: the bytes of every input (element
//! count × element size, in checked arithmetic) and of all inputs of a model together must stay
//! within a budget ([`DEFAULT_MAX_INPUT_BYTES`] unless the request says otherwise), or planning
//! fails naming the input, its shape and its size. A `--shape` typo (`1x160000000`) or a huge
//! fixed shape is then a clear error, not an abort of the whole process.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// Element types of tensors, as named in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElementType {
    Float32,
    Float64,
    Float16,
    Bfloat16,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Bool,
    /// Strings, complex and 8-bit float types: not synthesised or compared.
    Unsupported,
}

impl ElementType {
    pub fn as_str(self) -> &'static str {
        match self {
            ElementType::Float32 => "float32",
            ElementType::Float64 => "float64",
            ElementType::Float16 => "float16",
            ElementType::Bfloat16 => "bfloat16",
            ElementType::Int8 => "int8",
            ElementType::Int16 => "int16",
            ElementType::Int32 => "int32",
            ElementType::Int64 => "int64",
            ElementType::Uint8 => "uint8",
            ElementType::Uint16 => "uint16",
            ElementType::Uint32 => "uint32",
            ElementType::Uint64 => "uint64",
            ElementType::Bool => "bool",
            ElementType::Unsupported => "unsupported",
        }
    }

    /// Bytes per element (`None` for [`ElementType::Unsupported`]).
    pub fn size_bytes(self) -> Option<u64> {
        Some(match self {
            ElementType::Float64 | ElementType::Int64 | ElementType::Uint64 => 8,
            ElementType::Float32 | ElementType::Int32 | ElementType::Uint32 => 4,
            ElementType::Float16
            | ElementType::Bfloat16
            | ElementType::Int16
            | ElementType::Uint16 => 2,
            ElementType::Int8 | ElementType::Uint8 | ElementType::Bool => 1,
            ElementType::Unsupported => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            ElementType::Float32
                | ElementType::Float64
                | ElementType::Float16
                | ElementType::Bfloat16
        )
    }
}

/// One dimension as a model declares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(i64),
    /// A symbolic dimension (`batch`, `T`).
    Named(String),
    /// A dynamic dimension without a name.
    Unnamed,
}

impl Dim {
    fn text(&self) -> String {
        match self {
            Dim::Fixed(n) => n.to_string(),
            Dim::Named(s) => s.clone(),
            Dim::Unnamed => "?".into(),
        }
    }
}

/// A model input as its metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputMeta {
    pub name: String,
    /// `None`: not a tensor (a sequence, map or optional).
    pub dtype: Option<ElementType>,
    pub dims: Vec<Dim>,
}

impl InputMeta {
    /// `x float32 [batch, time, 8]`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} [{}]",
            self.name,
            self.dtype.map_or("non-tensor", ElementType::as_str),
            self.declared().join(", ")
        )
    }

    pub fn declared(&self) -> Vec<String> {
        self.dims.iter().map(Dim::text).collect()
    }

    pub fn is_dynamic(&self) -> bool {
        self.dims.iter().any(|d| !matches!(d, Dim::Fixed(_)))
    }
}

/// How an input's elements are filled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    /// Deterministic pseudo-random data from this seed.
    PseudoRandom(u64),
    /// Every element is this value (`--value`).
    Value(f64),
}

/// One input, ready to be built.
#[derive(Debug, Clone, PartialEq)]
pub struct InputPlan {
    pub meta: InputMeta,
    pub dtype: ElementType,
    pub shape: Vec<i64>,
    pub fill: Fill,
    /// Dynamic dimensions that defaulted to 1 (their declared text).
    pub defaulted_dims: Vec<String>,
}

impl InputPlan {
    /// Elements of the tensor; `None` when the product overflows (such a plan is refused by
    /// [`plan_inputs`], so planned inputs always have a count).
    pub fn element_count(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(u64::try_from(d).unwrap_or(0)))
    }

    /// Bytes of the tensor; `None` when they overflow.
    pub fn bytes(&self) -> Option<u64> {
        self.element_count()?
            .checked_mul(self.dtype.size_bytes().unwrap_or(0))
    }

    /// The values, converted by `conv` from f64 (pseudo-random or `--value`), generated into a
    /// vector allocated once: an allocation the system refuses is an error, not an abort.
    pub fn values<T>(&self, conv: impl Fn(&f64) -> T) -> Result<Vec<T>, InputError> {
        let too_large = || InputError::OutOfMemory {
            input: self.meta.name.clone(),
            shape: shape_text(&self.shape),
            bytes: self.bytes(),
        };
        let n = self
            .element_count()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(too_large)?;
        let mut out = Vec::new();
        out.try_reserve_exact(n).map_err(|_| too_large())?;
        match self.fill {
            Fill::Value(v) => out.extend((0..n).map(|_| conv(&v))),
            Fill::PseudoRandom(seed) => {
                let mut rng = SplitMix64(seed);
                out.extend((0..n).map(|_| {
                    let r = rng.next();
                    let x = match self.dtype {
                        t if t.is_float() => (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0,
                        ElementType::Bool => (r >> 63) as f64,
                        _ => (r >> 61) as f64, // 0..8
                    };
                    conv(&x)
                }));
            }
        }
        Ok(out)
    }

    /// The values as f64.
    pub fn values_f64(&self) -> Result<Vec<f64>, InputError> {
        self.values(|x| *x)
    }
}

/// Bytes all synthesised inputs of one model may take together, unless the request sets
/// another budget: 4 GiB. Real models take kilobytes to a few hundred megabytes of input; a
/// shape beyond this is almost always a typo, and ONNX Runtime needs as much again (and more)
/// for its own copies and outputs.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 4 << 30;

/// `1x3x224x224`.
fn shape_text(shape: &[i64]) -> String {
    if shape.is_empty() {
        return "a scalar".into();
    }
    shape
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// `4294967296 bytes (4.0 GiB)`.
fn bytes_text(bytes: u64) -> String {
    format!(
        "{bytes} bytes ({:.1} GiB)",
        bytes as f64 / (1u64 << 30) as f64
    )
}

/// Why inputs could not be planned: always the request's fault, named with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("input `{input}` is a {kind}, which verify cannot synthesise")]
    Unsupported { input: String, kind: String },
    #[error(
        "--shape {input}={given}: the model declares {declared} ({rank} dimension(s)); give \
         exactly {rank} dimension(s)"
    )]
    Rank {
        input: String,
        given: String,
        declared: String,
        rank: usize,
    },
    #[error(
        "--shape {input}={given}: dimension {axis} is fixed to {fixed} in the model; only \
         dynamic dimensions can be chosen"
    )]
    FixedDim {
        input: String,
        given: String,
        axis: usize,
        fixed: i64,
    },
    #[error("{option} names no input or dimension of the model(s); inputs: {inputs}")]
    UnknownName { option: String, inputs: String },
    #[error(
        "input `{input}` ({dtype} [{shape}]) would take {}, over the input budget of {}",
        bytes.map_or_else(|| "more bytes than can be counted".to_string(), bytes_text),
        bytes_text(*budget)
    )]
    TooLarge {
        input: String,
        dtype: String,
        shape: String,
        /// `None`: element count × element size overflows 64 bits.
        bytes: Option<u64>,
        budget: u64,
    },
    #[error(
        "the inputs together would take {}, over the input budget of {} ({inputs})",
        bytes_text(*bytes),
        bytes_text(*budget)
    )]
    TotalTooLarge {
        bytes: u64,
        budget: u64,
        /// `x 1x3x224x224 (602112 bytes); ...`
        inputs: String,
    },
    #[error(
        "input `{input}` ([{shape}], {}) could not be allocated: not enough memory",
        bytes.map_or_else(|| "size beyond this machine's address space".to_string(), bytes_text)
    )]
    OutOfMemory {
        input: String,
        shape: String,
        bytes: Option<u64>,
    },
}

impl gpulibs_hint::Hint for InputError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            InputError::TooLarge { .. }
            | InputError::TotalTooLarge { .. }
            | InputError::OutOfMemory { .. } => {
                "check the --shape sizes (a typo adds digits); give the model's dynamic \
                 dimensions realistic sizes with --shape NAME=DIMS, or raise the budget with \
                 --max-input-bytes if the machine has the memory"
                    .into()
            }
            InputError::UnknownName { .. } => {
                "name one of the inputs listed in the message (or, for --shape, one of their \
                 dynamic dimensions)"
                    .into()
            }
            InputError::Unsupported { .. } => {
                "verify synthesises numeric and bool tensors only: verify this model through \
                 your app, or pass --model with other models"
                    .into()
            }
            InputError::Rank { input, rank, .. } => format!(
                "give --shape {input}= {rank} dimension(s) separated by x, e.g. `--shape \
                 {input}={}`",
                vec!["1"; *rank].join("x")
            ),
            InputError::FixedDim {
                input, axis, fixed, ..
            } => format!(
                "leave dimension {axis} of `{input}` at {fixed}: set only the dimensions the \
                 model leaves dynamic"
            ),
        })
    }
}

/// The plan for one model's inputs, and which option names it used.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub inputs: Vec<InputPlan>,
    pub used_options: BTreeSet<String>,
}

/// Plans every input of one model. Options naming nothing in *this* model are not an error
/// here (they may belong to another model of a set): see [`unused_options`]. An input, or all
/// inputs together, taking more than `max_bytes` is refused before anything is allocated.
pub fn plan_inputs(
    metas: &[InputMeta],
    shapes: &HashMap<String, Vec<i64>>,
    values: &HashMap<String, f64>,
    max_bytes: u64,
) -> Result<Planned, InputError> {
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    for meta in metas {
        let dtype = match meta.dtype {
            Some(ElementType::Unsupported) => {
                return Err(InputError::Unsupported {
                    input: meta.name.clone(),
                    kind: "tensor of an unsupported element type (string, complex or 8-bit float)"
                        .into(),
                })
            }
            Some(t) => t,
            None => {
                return Err(InputError::Unsupported {
                    input: meta.name.clone(),
                    kind: "sequence, map or optional".into(),
                })
            }
        };
        let mut defaulted = Vec::new();
        let shape = if let Some(given) = shapes.get(&meta.name) {
            used.insert(format!("--shape {}", meta.name));
            let text = || {
                given
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join("x")
            };
            if given.len() != meta.dims.len() {
                return Err(InputError::Rank {
                    input: meta.name.clone(),
                    given: text(),
                    declared: format!("[{}]", meta.declared().join(", ")),
                    rank: meta.dims.len(),
                });
            }
            for (axis, (d, g)) in meta.dims.iter().zip(given).enumerate() {
                if let Dim::Fixed(f) = d {
                    if f != g {
                        return Err(InputError::FixedDim {
                            input: meta.name.clone(),
                            given: text(),
                            axis,
                            fixed: *f,
                        });
                    }
                }
            }
            given.clone()
        } else {
            meta.dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n,
                    Dim::Named(sym) => match shapes.get(sym).filter(|v| v.len() == 1) {
                        Some(v) => {
                            used.insert(format!("--shape {sym}"));
                            v[0]
                        }
                        None => {
                            defaulted.push(sym.clone());
                            1
                        }
                    },
                    Dim::Unnamed => {
                        defaulted.push("?".into());
                        1
                    }
                })
                .collect()
        };
        let fill = match values.get(&meta.name) {
            Some(v) => {
                used.insert(format!("--value {}", meta.name));
                Fill::Value(*v)
            }
            None => Fill::PseudoRandom(seed_for(&meta.name)),
        };
        let plan = InputPlan {
            meta: meta.clone(),
            dtype,
            shape,
            fill,
            defaulted_dims: defaulted,
        };
        match plan.bytes() {
            Some(b) if b <= max_bytes => {}
            bytes => {
                return Err(InputError::TooLarge {
                    input: meta.name.clone(),
                    dtype: dtype.as_str().into(),
                    shape: shape_text(&plan.shape),
                    bytes,
                    budget: max_bytes,
                })
            }
        }
        out.push(plan);
    }
    // Each input fits: the sum of at most a few thousand values ≤ u64::MAX / 2 does not overflow,
    // but stay checked anyway.
    let total = out
        .iter()
        .try_fold(0u64, |t, p| t.checked_add(p.bytes()?))
        .unwrap_or(u64::MAX);
    if total > max_bytes {
        return Err(InputError::TotalTooLarge {
            bytes: total,
            budget: max_bytes,
            inputs: out
                .iter()
                .map(|p| {
                    format!(
                        "{} {} ({} bytes)",
                        p.meta.name,
                        shape_text(&p.shape),
                        p.bytes().unwrap_or(u64::MAX)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(Planned {
        inputs: out,
        used_options: used,
    })
}

/// The `--shape`/`--value` options no model used, as errors naming the inputs there are.
pub fn unused_options(
    shapes: &HashMap<String, Vec<i64>>,
    values: &HashMap<String, f64>,
    used: &BTreeSet<String>,
    all_inputs: &[InputMeta],
) -> Option<InputError> {
    let mut options: Vec<String> = shapes
        .keys()
        .map(|k| format!("--shape {k}"))
        .chain(values.keys().map(|k| format!("--value {k}")))
        .filter(|o| !used.contains(o))
        .collect();
    options.sort();
    let first = options.into_iter().next()?;
    Some(InputError::UnknownName {
        option: first,
        inputs: all_inputs
            .iter()
            .map(InputMeta::describe)
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// What to tell someone whose model rejected the synthesised inputs: which inputs were guessed
/// and which option sets them.
pub fn rejection_hint(plans: &[InputPlan]) -> String {
    let mut parts = Vec::new();
    for p in plans {
        if !p.defaulted_dims.is_empty() {
            let example: Vec<String> = p
                .meta
                .dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => n.to_string(),
                    Dim::Named(s) => format!("<{s}>"),
                    Dim::Unnamed => "<n>".into(),
                })
                .collect();
            parts.push(format!(
                "input `{}` had its dynamic dimension(s) {} set to 1: give real sizes with \
                 --shape {}={}",
                p.meta.name,
                p.defaulted_dims.join(", "),
                p.meta.name,
                example.join("x")
            ));
        }
        if p.shape.is_empty() && matches!(p.fill, Fill::PseudoRandom(_)) {
            parts.push(format!(
                "scalar input `{}` got an arbitrary value: set it with --value {}=<value> (a \
                 sample rate, say)",
                p.meta.name, p.meta.name
            ));
        }
    }
    if parts.is_empty() {
        "the inputs were synthesised from the model's declared shapes; set realistic sizes with \
         --shape NAME=DIMS and values with --value NAME=X"
            .into()
    } else {
        parts.join("; ")
    }
}

fn seed_for(name: &str) -> u64 {
    // FNV-1a: stable across platforms and releases, unlike `DefaultHasher`.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, dtype: ElementType, dims: Vec<Dim>) -> InputMeta {
        InputMeta {
            name: name.into(),
            dtype: Some(dtype),
            dims,
        }
    }

    fn x() -> InputMeta {
        meta(
            "x",
            ElementType::Float32,
            vec![
                Dim::Named("batch".into()),
                Dim::Named("time".into()),
                Dim::Fixed(8),
            ],
        )
    }

    #[test]
    fn defaults_dynamic_dims_to_one_and_says_so() {
        let p = plan_inputs(
            &[x()],
            &HashMap::new(),
            &HashMap::new(),
            DEFAULT_MAX_INPUT_BYTES,
        )
        .unwrap();
        assert_eq!(p.inputs[0].shape, vec![1, 1, 8]);
        assert_eq!(p.inputs[0].defaulted_dims, vec!["batch", "time"]);
        let hint = rejection_hint(&p.inputs);
        assert!(hint.contains("--shape x=<batch>x<time>x8"), "{hint}");
    }

    #[test]
    fn shape_by_input_and_by_dimension_name() {
        let shapes = HashMap::from([("x".to_string(), vec![2, 5, 8])]);
        let p = plan_inputs(&[x()], &shapes, &HashMap::new(), DEFAULT_MAX_INPUT_BYTES).unwrap();
        assert_eq!(p.inputs[0].shape, vec![2, 5, 8]);
        assert!(p.inputs[0].defaulted_dims.is_empty());

        let shapes = HashMap::from([("time".to_string(), vec![7])]);
        let p = plan_inputs(&[x()], &shapes, &HashMap::new(), DEFAULT_MAX_INPUT_BYTES).unwrap();
        assert_eq!(p.inputs[0].shape, vec![1, 7, 8]);
        assert_eq!(p.inputs[0].defaulted_dims, vec!["batch"]);
        assert!(p.used_options.contains("--shape time"));
    }

    #[test]
    fn shape_errors_name_the_fix() {
        let shapes = HashMap::from([("x".to_string(), vec![2, 5])]);
        let e = plan_inputs(&[x()], &shapes, &HashMap::new(), DEFAULT_MAX_INPUT_BYTES).unwrap_err();
        assert!(e.to_string().contains("give exactly 3 dimension(s)"), "{e}");
        let shapes = HashMap::from([("x".to_string(), vec![2, 5, 9])]);
        let e = plan_inputs(&[x()], &shapes, &HashMap::new(), DEFAULT_MAX_INPUT_BYTES).unwrap_err();
        assert!(e.to_string().contains("dimension 2 is fixed to 8"), "{e}");
    }

    #[test]
    fn unknown_option_lists_the_inputs() {
        let shapes = HashMap::from([("audio".to_string(), vec![1, 16000])]);
        let p = plan_inputs(&[x()], &shapes, &HashMap::new(), DEFAULT_MAX_INPUT_BYTES).unwrap();
        let e = unused_options(&shapes, &HashMap::new(), &p.used_options, &[x()]).unwrap();
        assert_eq!(
            e.to_string(),
            "--shape audio names no input or dimension of the model(s); inputs: x float32 \
             [batch, time, 8]"
        );
    }

    #[test]
    fn values_and_scalars() {
        let sr = meta("sr", ElementType::Int64, vec![]);
        let p = plan_inputs(
            std::slice::from_ref(&sr),
            &HashMap::new(),
            &HashMap::new(),
            DEFAULT_MAX_INPUT_BYTES,
        )
        .unwrap();
        assert_eq!(p.inputs[0].element_count(), Some(1));
        assert!(rejection_hint(&p.inputs).contains("--value sr=<value>"));
        let values = HashMap::from([("sr".to_string(), 16000.0)]);
        let p = plan_inputs(&[sr], &HashMap::new(), &values, DEFAULT_MAX_INPUT_BYTES).unwrap();
        assert_eq!(p.inputs[0].values_f64().unwrap(), vec![16000.0]);
    }

    #[test]
    fn data_is_deterministic_and_in_range() {
        let p = plan_inputs(
            &[x()],
            &HashMap::from([("x".into(), vec![1, 64, 8])]),
            &HashMap::new(),
            DEFAULT_MAX_INPUT_BYTES,
        )
        .unwrap();
        let a = p.inputs[0].values_f64().unwrap();
        assert_eq!(a, p.inputs[0].values_f64().unwrap());
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        assert!(a.iter().any(|v| *v < 0.0) && a.iter().any(|v| *v > 0.0));
        let t = meta("tokens", ElementType::Int64, vec![Dim::Fixed(100)]);
        let p = plan_inputs(
            &[t],
            &HashMap::new(),
            &HashMap::new(),
            DEFAULT_MAX_INPUT_BYTES,
        )
        .unwrap();
        let v = p.inputs[0].values_f64().unwrap();
        assert!(v.iter().all(|v| (0.0..8.0).contains(v) && v.fract() == 0.0));
    }

    #[test]
    fn inputs_over_the_budget_are_refused_before_allocation() {
        const G: u64 = 1 << 30;
        let big = meta(
            "big",
            ElementType::Float64,
            vec![Dim::Fixed(10_000_000_000)],
        );
        let half = |name: &str| meta(name, ElementType::Uint8, vec![Dim::Fixed(3 * G as i64)]);
        // (case, inputs, --shape, budget, Ok(total bytes) or Err(the message's end))
        type Case = (
            &'static str,
            Vec<InputMeta>,
            Vec<(&'static str, Vec<i64>)>,
            u64,
            Result<u64, &'static str>,
        );
        let cases: Vec<Case> =
            vec![
            ("defaults fit", vec![x()], vec![], DEFAULT_MAX_INPUT_BYTES, Ok(32)),
            (
                "exactly the budget fits",
                vec![x()],
                vec![("x", vec![1, 134_217_728, 8])],
                DEFAULT_MAX_INPUT_BYTES,
                Ok(4 * G),
            ),
            (
                "a --shape typo",
                vec![x()],
                vec![("x", vec![1, 160_000_000, 8])],
                DEFAULT_MAX_INPUT_BYTES,
                Err("input `x` (float32 [1x160000000x8]) would take 5120000000 bytes (4.8 GiB), \
                     over the input budget of 4294967296 bytes (4.0 GiB)"),
            ),
            (
                "a dimension-name typo",
                vec![x()],
                vec![("time", vec![1_000_000_000_000])],
                DEFAULT_MAX_INPUT_BYTES,
                Err("input `x` (float32 [1x1000000000000x8]) would take 32000000000000 bytes \
                     (29802.3 GiB), over the input budget of 4294967296 bytes (4.0 GiB)"),
            ),
            (
                "the element count overflows",
                vec![x()],
                vec![("x", vec![i64::MAX, i64::MAX, 8])],
                DEFAULT_MAX_INPUT_BYTES,
                Err("would take more bytes than can be counted, over the input budget of \
                     4294967296 bytes (4.0 GiB)"),
            ),
            (
                "the bytes overflow",
                vec![x()],
                vec![("x", vec![1 << 31, 1 << 28, 8])],
                DEFAULT_MAX_INPUT_BYTES,
                Err("would take more bytes than can be counted, over the input budget of \
                     4294967296 bytes (4.0 GiB)"),
            ),
            (
                "a huge fixed shape",
                vec![big.clone()],
                vec![],
                DEFAULT_MAX_INPUT_BYTES,
                Err("input `big` (float64 [10000000000]) would take 80000000000 bytes (74.5 GiB), \
                     over the input budget of 4294967296 bytes (4.0 GiB)"),
            ),
            ("a raised budget", vec![big], vec![], 80_000_000_000, Ok(80_000_000_000)),
            (
                "each fits, not together",
                vec![half("a"), half("b")],
                vec![],
                DEFAULT_MAX_INPUT_BYTES,
                Err("the inputs together would take 6442450944 bytes (6.0 GiB), over the input \
                     budget of 4294967296 bytes (4.0 GiB) (a 3221225472 (3221225472 bytes); \
                     b 3221225472 (3221225472 bytes))"),
            ),
            (
                "a lowered budget",
                vec![x()],
                vec![],
                31,
                Err("would take 32 bytes (0.0 GiB), over the input budget of 31 bytes (0.0 GiB)"),
            ),
        ];
        for (name, metas, shapes, budget, want) in cases {
            let shapes: HashMap<String, Vec<i64>> = shapes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let got = plan_inputs(&metas, &shapes, &HashMap::new(), budget);
            match (got, want) {
                (Ok(p), Ok(total)) => assert_eq!(
                    p.inputs.iter().map(|i| i.bytes().unwrap()).sum::<u64>(),
                    total,
                    "{name}"
                ),
                (Err(e), Err(end)) => {
                    assert!(e.to_string().ends_with(end), "{name}: {e}");
                    let hint = gpulibs_hint::Hint::hint(&e).unwrap_or_default();
                    assert!(hint.contains("--max-input-bytes"), "{name}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn values_are_generated_in_the_element_type() {
        let t = meta("t", ElementType::Int32, vec![Dim::Fixed(5)]);
        let p = plan_inputs(
            &[t],
            &HashMap::new(),
            &HashMap::from([("t".into(), 7.0)]),
            100,
        )
        .unwrap();
        assert_eq!(p.inputs[0].values(|x| *x as i32).unwrap(), vec![7; 5]);
        assert_eq!(p.inputs[0].bytes(), Some(20));
    }

    #[test]
    fn non_tensor_inputs_are_refused() {
        let m = InputMeta {
            name: "seq".into(),
            dtype: None,
            dims: vec![],
        };
        assert!(matches!(
            plan_inputs(
                &[m],
                &HashMap::new(),
                &HashMap::new(),
                DEFAULT_MAX_INPUT_BYTES
            ),
            Err(InputError::Unsupported { .. })
        ));
    }
}
