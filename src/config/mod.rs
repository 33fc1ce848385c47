//! Configuration: one YAML file, typed, validated at load.
//!
//! Loading reports **every** problem at once, each with its path (`dns.records[1].set_identifiers:
//! no entry for region us-west-2`), so an operator fixes a file in one pass instead of one error per
//! restart. It happens in three passes:
//!
//! 1. YAML syntax (one error with its line and column; nothing else can be read past it);
//! 2. shape: each top-level section is deserialised on its own, so a wrong type in one section does
//!    not hide the errors of the others, and every unknown key anywhere is reported;
//! 3. meaning (`validate.rs`): exactly two regions, every region referenced is one of them,
//!    thresholds in range, references between sections resolve.

mod duration;
mod load;
mod model;
mod secret;
mod validate;

pub use duration::{Duration, ParseDurationError};
pub use load::{load_file, parse_str, ConfigError, ConfigErrors};
pub use model::*;
pub use secret::{SecretError, SecretRef};
pub use validate::provided_plans;
