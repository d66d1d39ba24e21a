//! brorl-core: the pure-Rust part of brorl. No Python types live here, so `cargo test` and the
//! criterion benches run without an interpreter; `brorl-py` is only a translation layer.

pub mod advantages;
pub mod code;
pub mod error;
pub mod groups;
pub mod math;
pub mod packing;
pub mod ragged;

pub use error::{CoreError, Result};
