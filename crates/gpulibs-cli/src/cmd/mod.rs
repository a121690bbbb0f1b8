//! One module per subcommand: its arguments, the library calls, and how its report reads.

pub mod detect;
pub mod inspect;
pub mod install;
pub mod lifecycle;
pub mod mirror;
pub mod package;
pub mod plan;
mod planning;
pub mod recommend;
pub mod verify;
