//! The `#[service_client]` attribute of the [`comms`](https://docs.rs/comms) crate.
//!
//! Use it through `comms::service_client`; the generated code refers to `::comms` paths. The
//! macro parses the trait into a model (`ast`, `attr`, `template`), checks what needs more than
//! one attribute (`valid`), and generates the client (`expand`). Every mistake is reported, at
//! its token, in one build; set `COMMS_MACROS_DEBUG=1` to print the expansion.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod ast;
mod attr;
mod ctxt;
mod expand;
#[cfg(feature = "server")]
mod server;
mod suggest;
mod template;
mod valid;

use proc_macro::TokenStream;

/// Generates a typed, signed, retrying HTTP client from an annotated trait.
///
/// See the `comms` crate documentation for the attribute's keys, the verb attributes and the
/// argument kinds.
#[proc_macro_attribute]
pub fn service_client(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::service_client(args.into(), input.into()).into()
}
