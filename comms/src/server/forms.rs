//! Arguments in the shapes of HTML forms, parsed back by a generated server: a flattened query
//! struct (`#[query(flatten)]`), a form body (`#[form]`) and a multipart body
//! (`#[multipart]`).
//!
//! A body is parsed only when it says it is of the argument's type: a form parser would take
//! most other bodies for a form of unknown keys (a JSON object is one key with no value), and
//! a struct whose fields all have defaults would then be filled with them. Another type, or
//! none, is a 415.

use super::{Incoming, Rejection, decode_query, raw_pairs, uncoded};
use crate::Multipart;
use crate::multipart::parse;

/// The request's `Content-Type` (`""` for none, or one that is not visible ASCII); a 400 when
/// it has two: a signature covers them as one field, and readers that take the first and the
/// last would read another type, or another boundary, out of the same signed request.
fn content_type<'a>(incoming: &'a Incoming, name: &str) -> Result<&'a str, Rejection> {
    let mut types = incoming
        .parts
        .headers
        .get_all(http::header::CONTENT_TYPE)
        .iter();
    let first = types.next();
    if types.next().is_some() {
        return Err(Rejection::bad(format_args!(
            "the body of `{name}` has two Content-Type headers"
        )));
    }
    Ok(first.and_then(|v| v.to_str().ok()).unwrap_or_default())
}

/// Whether `content_type` is `media_type` (parameters aside, in any case).
fn has_media_type(content_type: &str, media_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

/// A type a generated server parses a `#[query(flatten)]` argument into.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be parsed back from the query by the generated server",
    label = "with the `server` feature, `#[query(flatten)]` arguments must implement `serde::Deserialize`",
    note = "a trait that is only called, never served, can say so: `#[service_client(.., server = false)]`"
)]
pub trait FlattenArg: serde::de::DeserializeOwned + Send + 'static {}

impl<T: serde::de::DeserializeOwned + Send + 'static> FlattenArg for T {}

/// Parses the `#[query(flatten)]` argument `name` from the query: every pair but those of the
/// method's plain `#[query]` arguments (`plain`), decoded as plain query values are (a `+` a
/// space, then `%XX`), then deserialized by `serde_html_form` (a repeated key fills a `Vec`, an
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
        let key = decode_query(key).ok_or_else(not_utf8)?;
        if plain.contains(&key.as_str()) {
            continue;
        }
        form.append_pair(&key, &decode_query(value).ok_or_else(not_utf8)?);
    }
    serde_html_form::from_str(&form.finish()).map_err(|e| {
        let hint = hint(&e);
        Rejection::bad(format_args!(
            "the query of `{name}` does not parse: {e}{hint}"
        ))
    })
}

/// The query keys a `#[query(flatten)]` type is parsed from: its fields as serde names them
/// (renames applied), or `None` for a type that takes any key (a map, a struct with a
/// `#[serde(flatten)]` field) or whose keys serde does not tell.
///
/// Serde's derive hands a struct's field names to `Deserializer::deserialize_struct`; a
/// deserializer that stops there learns them without parsing anything.
#[doc(hidden)]
pub fn query_keys<T: FlattenArg>() -> Option<&'static [&'static str]> {
    match T::deserialize(FieldsProbe) {
        Err(Probed::Fields(fields)) => Some(fields),
        _ => None,
    }
}

/// A deserializer that answers every request with an error, keeping a struct's field names.
struct FieldsProbe;

/// What [`FieldsProbe`] learnt: a struct's field names, or nothing.
#[derive(Debug)]
enum Probed {
    Fields(&'static [&'static str]),
    Nothing,
}

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a probe of a type's fields")
    }
}

impl std::error::Error for Probed {}

impl serde::de::Error for Probed {
    fn custom<M: std::fmt::Display>(_: M) -> Probed {
        Probed::Nothing
    }
}

impl<'de> serde::Deserializer<'de> for FieldsProbe {
    type Error = Probed;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        Err(Probed::Nothing)
    }

    // A newtype around a struct is parsed as that struct.
    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Probed> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Probed> {
        Err(Probed::Fields(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Checks, as a generated server builds its router, that no query key of `method` could fill
/// two of its arguments: `plain` are its plain `#[query]` keys, `flattened` its
/// `#[query(flatten)]` arguments with their keys ([`query_keys`]). A key shared by two of them
/// would be handed to both (or a flattened field never set, its key taken by a plain argument):
/// a client could send a value the method would see in the wrong place.
///
/// # Panics
///
/// On such a key, naming it and the arguments, as a router with overlapping routes panics.
#[doc(hidden)]
pub fn check_query_keys(
    method: &str,
    plain: &[&str],
    flattened: &[(&str, Option<&'static [&'static str]>)],
) {
    for (i, (arg, keys)) in flattened.iter().enumerate() {
        let others = flattened.iter().enumerate().filter(|(j, _)| *j != i);
        let Some(keys) = keys else {
            if let Some((_, (other, _))) = others.clone().next() {
                panic!(
                    "`{method}`: the `#[query(flatten)]` argument `{arg}` takes any query key \
                     (a map, or a struct with `#[serde(flatten)]`), so `{other}` beside it could \
                     not be told apart from it; flatten one value per method"
                );
            }
            continue;
        };
        for key in *keys {
            if plain.contains(key) {
                panic!(
                    "`{method}`: query key `{key}` is a field of `{arg}` (`#[query(flatten)]`) \
                     and a plain `#[query]` argument; rename one of them"
                );
            }
            for (_, (other, other_keys)) in others.clone().filter(|(j, _)| *j > i) {
                if other_keys.is_some_and(|theirs| theirs.contains(key)) {
                    panic!(
                        "`{method}`: query key `{key}` is a field of both `{arg}` and `{other}` \
                         (`#[query(flatten)]`), so a value of one would fill the other too; \
                         rename one of the fields"
                    );
                }
            }
        }
    }
}

/// What a parse error most likely means when a comms client sent the form: a missing field,
/// an empty `Vec` (of which a form has no pair); an unsupported 128-bit integer, a type the
/// client writes and `serde_html_form` does not read.
fn hint(error: &serde::de::value::Error) -> &'static str {
    let error = error.to_string();
    if error.starts_with("missing field") {
        " (an empty `Vec` is sent as no pair: give such a field `#[serde(default)]`)"
    } else if error.starts_with("i128 is not supported")
        || error.starts_with("u128 is not supported")
    {
        // serde_html_form (0.4) parses integers up to 64 bits; a comms client writes any.
        " (the generated server reads integers of up to 64 bits from a query struct or a form: \
         make a 128-bit field a `String`, or a plain `#[query]` argument)"
    } else {
        ""
    }
}

/// A type a generated server parses a `#[form]` argument into.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be parsed back from a form by the generated server",
    label = "with the `server` feature, `#[form]` arguments must implement `serde::Deserialize`",
    note = "a trait that is only called, never served, can say so: `#[service_client(.., server = false)]`"
)]
pub trait FormArg: serde::de::DeserializeOwned + Send + 'static {}

impl<T: serde::de::DeserializeOwned + Send + 'static> FormArg for T {}

/// Parses the `#[form]` argument `name` from an `application/x-www-form-urlencoded` body (415
/// for a body of another type or with a content coding; 400 for one whose text, decoded, is not
/// UTF-8, as for a query).
#[doc(hidden)]
pub fn form<T: FormArg>(incoming: &Incoming, name: &str) -> Result<T, Rejection> {
    const FORM: &str = "application/x-www-form-urlencoded";
    if !has_media_type(content_type(incoming, name)?, FORM) {
        return Err(Rejection::unsupported(format_args!(
            "the body of `{name}` must be `{FORM}`"
        )));
    }
    uncoded(incoming, format_args!("the body of `{name}`"))?;
    // The parser reads bytes that are not UTF-8 as U+FFFD, so that different values would
    // reach the method as one. `&`, `=` and `+` are ASCII, which no UTF-8 sequence has inside
    // it: the body decoded whole is UTF-8 exactly when each of its keys and values is.
    if percent_encoding::percent_decode(&incoming.body)
        .decode_utf8()
        .is_err()
    {
        return Err(Rejection::bad(format_args!(
            "the form `{name}` does not parse: it is not UTF-8"
        )));
    }
    serde_html_form::from_bytes(&incoming.body).map_err(|e| {
        let hint = hint(&e);
        Rejection::bad(format_args!("the form `{name}` does not parse: {e}{hint}"))
    })
}

/// A type a generated server parses a `#[multipart]` argument into: [`Multipart`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be parsed back from a multipart body by the generated server",
    label = "`#[multipart]` arguments are `comms::Multipart` (or `&comms::Multipart`)",
    note = "a trait that is only called, never served, can say so: `#[service_client(.., server = false)]`"
)]
///
/// Implemented for [`Multipart`] only (it is sealed).
pub trait MultipartArg: super::Sealed + From<Multipart> + Send + 'static {}

impl MultipartArg for Multipart {}

/// Parses the `#[multipart]` argument `name` from a `multipart/form-data` body: 415 for a body
/// of another type or with a content coding, 400 for one that does not parse.
#[doc(hidden)]
pub fn multipart<T: MultipartArg>(incoming: &Incoming, name: &str) -> Result<T, Rejection> {
    // The boundary is in the `Content-Type`: another one would read other parts out of the
    // same signed bytes.
    let headers = &incoming.parts.headers;
    if headers.contains_key(http::header::CONTENT_TYPE) && !incoming.covered.covers("content-type")
    {
        return Err(Rejection::bad(format_args!(
            "the Content-Type of `{name}`'s multipart body is not covered by the request's signature"
        )));
    }
    let content_type = content_type(incoming, name)?;
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
    uncoded(incoming, format_args!("the body of `{name}`"))?;
    parse::parse(&boundary, &incoming.body)
        .map(T::from)
        .map_err(|why| {
            Rejection::bad(format_args!(
                "the multipart body of `{name}` does not parse: {why}"
            ))
        })
}
