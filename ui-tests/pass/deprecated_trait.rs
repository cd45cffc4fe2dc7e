//! A `#[deprecated]` trait compiles under `deny(warnings)` without an `allow` of the user's:
//! its own generated client is no use of it.

#![deny(warnings)]

include!("shared/deprecated_trait.rs");

fn main() {}
