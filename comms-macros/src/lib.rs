//! placeholder
use proc_macro::TokenStream;
/// x
#[proc_macro_attribute]
pub fn service_client(_args: TokenStream, input: TokenStream) -> TokenStream { input }
