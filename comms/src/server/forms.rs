//! Arguments in the shapes of HTML forms, parsed back by a generated server: a flattened query
//! struct (`#[query(flatten)]`), a form body (`#[form]`) and a multipart body
//! (`#[multipart]`).
//!
//! A body is parsed only when it says it is of the argument's type: a form parser would take
//! most other bodies for a form of unknown keys (a JSON object is one key with no value), and
//! a struct whose fields all have defaults would then be filled with them. Another type, or
//! none, is a 415.

use super::{Incoming, Rejection, decode, raw_pairs};
use crate::Multipart;
use crate::multipart::parse;

/// Whether the request's `Content-Type` is `media_type` (parameters aside, in any case).
fn has_media_type(incoming: &Incoming, media_type: &str) -> bool {
    incoming
        .parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

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

/// A type a generated server parses a `#[form]` argument into.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be parsed back from a form by the generated server",
    label = "with the `server` feature, `#[form]` arguments must implement `serde::Deserialize`"
)]
pub trait FormArg: serde::de::DeserializeOwned + Send + 'static {}

impl<T: serde::de::DeserializeOwned + Send + 'static> FormArg for T {}

/// Parses the `#[form]` argument `name` from an `application/x-www-form-urlencoded` body (415
/// for a body of another type).
#[doc(hidden)]
pub fn form<T: FormArg>(incoming: &Incoming, name: &str) -> Result<T, Rejection> {
    const FORM: &str = "application/x-www-form-urlencoded";
    if !has_media_type(incoming, FORM) {
        return Err(Rejection::unsupported(format_args!(
            "the body of `{name}` must be `{FORM}`"
        )));
    }
    serde_html_form::from_bytes(&incoming.body)
        .map_err(|e| Rejection::bad(format_args!("the form `{name}` does not parse: {e}")))
}

/// A type a generated server parses a `#[multipart]` argument into: [`Multipart`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be parsed back from a multipart body by the generated server",
    label = "`#[multipart]` arguments are `comms::Multipart` (or `&comms::Multipart`)"
)]
pub trait MultipartArg: From<Multipart> + Send + 'static {}

impl MultipartArg for Multipart {}

/// Parses the `#[multipart]` argument `name` from a `multipart/form-data` body: 415 for a body
/// of another type, 400 for one that does not parse.
#[doc(hidden)]
pub fn multipart<T: MultipartArg>(incoming: &Incoming, name: &str) -> Result<T, Rejection> {
    let content_type = incoming
        .parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = match parse::boundary(content_type) {
        Ok(Some(boundary)) => boundary,
        Ok(None) => {
            return Err(Rejection::unsupported(format_args!(
                "the body of `{name}` must be `multipart/form-data`"
            )));
        }
        Err(why) => {
            return Err(Rejection::bad(format_args!(
                "the multipart body of `{name}` does not parse: {why}"
            )));
        }
    };
    parse::parse(&boundary, &incoming.body)
        .map(T::from)
        .map_err(|why| {
            Rejection::bad(format_args!(
                "the multipart body of `{name}` does not parse: {why}"
            ))
        })
}
