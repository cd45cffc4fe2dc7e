//! Arguments in the shapes of HTML forms, parsed back by a generated server: a flattened query
//! struct (`#[query(flatten)]`).

use super::{Incoming, Rejection, decode, raw_pairs};

/// A type a generated server parses a `#[query(flatten)]` argument into.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be parsed back from the query by the generated server",
    label = "with the `server` feature, `#[query(flatten)]` arguments must implement `serde::Deserialize`"
)]
pub trait FlattenArg: serde::de::DeserializeOwned + Send + 'static {}

impl<T: serde::de::DeserializeOwned + Send + 'static> FlattenArg for T {}

/// Parses the `#[query(flatten)]` argument `name` from the query: every pair but those of the
/// method's plain `#[query]` arguments (`plain`), decoded as plain query values are (`%XX`, a
/// `+` kept as it is), then deserialized by `serde_html_form` (a repeated key fills a `Vec`, an
/// absent one is a `None`).
#[doc(hidden)]
pub fn query_flatten<T: FlattenArg>(
    incoming: &Incoming,
    name: &str,
    plain: &[&str],
) -> Result<T, Rejection> {
    let not_utf8 = || Rejection::bad(format_args!("the query of `{name}` is not UTF-8"));
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (key, value) in raw_pairs(incoming) {
        let key = decode(key).ok_or_else(not_utf8)?;
        if plain.contains(&key.as_str()) {
            continue;
        }
        form.append_pair(&key, &decode(value).ok_or_else(not_utf8)?);
    }
    serde_html_form::from_str(&form.finish())
        .map_err(|e| Rejection::bad(format_args!("the query of `{name}` does not parse: {e}")))
}
