//! `ui-tests/pass/deprecated_trait.rs` with the generated server: its server is no use of the
//! deprecated trait either.

#![deny(warnings)]

include!("../../pass/shared/deprecated_trait.rs");

fn main() {}
