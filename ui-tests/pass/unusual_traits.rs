//! Legitimate traits the macro must take as written: an error type under another name, a
//! `Result` alias with another name, methods of one name under `#[cfg]`s that exclude each
//! other, `self: &Self`, a parameter named outside ASCII, and a deprecated trait and types
//! under `deny(warnings)`. (`ui-tests/server/pass/unusual_traits.rs` builds it with the
//! generated server too.)

#![deny(warnings)]
#![allow(deprecated)]

include!("shared/unusual_traits.rs");

fn main() {}
