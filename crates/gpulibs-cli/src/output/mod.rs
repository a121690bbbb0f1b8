//! The typed results of the commands whose JSON used to be built by hand: one struct per
//! command, serialised for `--json` and rendered to text by one function from the same value,
//! so the two cannot say different things. Their shapes are documented in `docs/json.md`.

pub mod install;
pub mod lifecycle;
pub mod mirror;
pub mod package;
pub mod plan;
pub mod recommend;

use serde::Serialize;

/// The `schema_version` of every result in this module. Raised when a field is removed or
/// changes its type or meaning; adding a field does not raise it (`docs/json.md`).
pub const SCHEMA_VERSION: u32 = 1;

/// `value` as the JSON `--json` prints.
pub fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("a typed result serialises to JSON")
}
