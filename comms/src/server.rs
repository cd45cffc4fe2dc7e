//! The receiving side of a service trait: what a generated `<Trait>Server` runs on.
//!
//! With the `server` feature, `#[service_client]` also generates `<Trait>Server<S>`, which
//! serves any `S: Trait` as an axum router, one route per method, from the same templates the
//! client uses. Each request passes the same check as [`VerifyLayer`](crate::verify::VerifyLayer)
//! (the signature over the head before any body is read), then its arguments are parsed back
//! from the path, query, headers and body (JSON, a form or a multipart body), the method runs,
//! and its result becomes the response: `T` as JSON (200), `()` as 204, a
//! [`Response`](crate::Response) as it is, a [`ByteStream`](crate::ByteStream) or
//! [`JsonLines`](crate::JsonLines) as a 200 whose body is sent, chunked, as the stream produces
//! it (an error or a panic in the stream part way cuts the response short, and the stream runs
//! after the method has returned, without [`caller()`] in scope; the request's deadline is, and
//! bounds the comms calls the stream makes), and an
//! [`Error`] as its status with `{"message": ...}`, which a comms client receives as the same
//! variant with the same message.
//!
//! Inside a method, [`caller()`] is the verified caller of the request being served. A panic
//! in a method becomes a 500 for its request; the server keeps serving. A method marked
//! `idempotent` answers a repeated `Idempotency-Key` from an [`IdempotencyStore`] instead of
//! running again, so a retry whose first response was lost does not do the work twice.
//!
//! # The generated server
//!
//! `<Trait>Server<S>` is generated into the crate that declares the trait, so its methods are
//! documented there, not here:
//!
//! - `new(service)`: a server for `service`, which must be `Clone + Send + Sync + 'static`. It
//!   refuses every request with a 401 until it is given a verifier (and says so in a `WARN`
//!   when its router is built);
//! - `verifier(Verifier)`: checks every request as [`VerifyLayer`](crate::verify::VerifyLayer)
//!   does; `unverified()` serves requests unchecked, for tests;
//! - `idempotency_store(store)`: where the answers of `idempotent` methods are kept (a
//!   [`MemoryIdempotencyStore`] by default; a fleet's replicas share one, such as the `redis`
//!   feature's `RedisIdempotencyStore`);
//! - `max_body_bytes(limit)` (2 MiB by default, a 413 beyond) and `body_timeout(duration)`
//!   (10 s, a 408);
//! - `into_router()`: the `axum::Router`, to serve or merge with other routes. The server also
//!   converts into a router of any state type, so `app.merge(server)` works as it is.
//!
//! The server is `Clone` when its service is (a clone shares the verifier, its nonce store and
//! the idempotency store), and `Debug` whatever its service, which it leaves out.
//!
//! A trait served and called over loopback, as two services would:
//!
//! ```
//! use comms::{Error, service_client, verify::Verifier};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! pub struct User {
//!     pub id: u64,
//!     pub name: String,
//! }
//!
//! #[service_client(
//!     base_url = "http://users.internal:8080",
//!     service_id = "billing",
//!     secret_env = "USERS_SECRET",
//! )]
//! pub trait Users {
//!     #[get("/users/<id>")]
//!     async fn get_user(&self, id: u64) -> Result<User, Error>;
//! }
//!
//! #[derive(Clone)]
//! struct Directory;
//!
//! impl Users for Directory {
//!     async fn get_user(&self, id: u64) -> Result<User, Error> {
//!         // Who called: the service id the request was signed for.
//!         assert_eq!(comms::server::caller().service_id(), "billing");
//!         match id {
//!             7 => Ok(User { id, name: "Ada".into() }),
//!             _ => Err(Error::not_found(format!("no user {id}"))),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = "a secret the two services share";
//! let router = UsersServer::new(Directory)
//!     .verifier(Verifier::new().service("billing", secret))
//!     .into_router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}", listener.local_addr()?);
//! tokio::spawn(comms::server::serve(listener, router).into_future());
//!
//! // In the calling service; `UsersClient::new()` would read `USERS_SECRET`.
//! let users = UsersClient::builder().base_url(url).secret(secret).build()?;
//! assert_eq!(users.get_user(7).await?.name, "Ada");
//! match users.get_user(8).await {
//!     Err(Error::NotFound(e)) => assert_eq!(e.message(), Some("no user 8")),
//!     other => panic!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

mod forms;
mod idempotency;
pub(crate) mod listen;
mod serve;
pub(crate) mod stream;

pub use forms::{
    FlattenArg, FormArg, MultipartArg, check_query_keys, form, multipart, query_flatten, query_keys,
};
pub use idempotency::{
    Claim, DEFAULT_IDEMPOTENCY_BYTES, DEFAULT_IDEMPOTENCY_CAPACITY, DEFAULT_IDEMPOTENCY_TTL,
    IdempotencyStore, MemoryIdempotencyStore, StoredResponse,
};
pub use listen::{
    DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEAD_BYTES,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_WRITE_TIMEOUT, Serve, serve,
};
pub use serve::{Settings, caller, deadline, handle, try_caller};
pub use stream::{Answer, JsonLinesReturn, respond_byte_stream, respond_json_lines};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header::CONTENT_TYPE};

use crate::Error;
/// `{"message": ...}` with a status.
pub(crate) use crate::error::message_response as respond_message;

/// One request as a method sees it: its head and its whole body.
#[doc(hidden)]
#[derive(Debug)]
pub struct Incoming {
    /// The request head; its URI is the one the router matched (a nested router's prefix
    /// stripped).
    pub parts: http::request::Parts,
    /// The body.
    pub body: Bytes,
    /// The header fields the request's signature vouches for.
    pub(crate) covered: crate::verify::CoveredFields,
}

/// A refusal of a request whose argument did not parse: 400 naming the argument (415 for a
/// body of another type than the argument's).
#[doc(hidden)]
#[derive(Debug)]
pub struct Rejection {
    status: StatusCode,
    message: String,
    /// A refusal of a body's content coding: answered with `Accept-Encoding: identity`.
    identity_only: bool,
}

/// Marks the response of a request refused before its method ran.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Unrun;

/// Marks the 500 of a method that ran and returned what its answer could not carry (a value
/// JSON cannot write, an informational status): unlike other server errors, it is kept for an
/// idempotent method's key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ran;

/// The 500 `{"message": "internal error"}` of a request whose serving failed: a panic, a
/// stream that broke, an answer the method gave that HTTP cannot carry.
fn internal_error() -> http::Response<Bytes> {
    respond_message(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// The [`internal_error`] of a method that ran and answered with what HTTP cannot carry,
/// marked [`Ran`] so that an idempotent method's retry gets it rather than a second run.
fn ran_unanswerable() -> http::Response<Bytes> {
    let mut response = internal_error();
    response.extensions_mut().insert(Ran);
    response
}

/// The most of a refusal's message a response carries: enough to name the argument and say
/// why, not the request's own bytes back at any length (a parser's error quotes the value).
const REJECTION_LIMIT: usize = 1024;

impl Rejection {
    fn bad(what: std::fmt::Arguments<'_>) -> Rejection {
        Rejection {
            status: StatusCode::BAD_REQUEST,
            message: bounded_message(what),
            identity_only: false,
        }
    }

    fn unsupported(what: std::fmt::Arguments<'_>) -> Rejection {
        Rejection {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: bounded_message(what),
            identity_only: false,
        }
    }

    /// The response.
    pub fn into_response(self) -> http::Response<Bytes> {
        let mut response = respond_message(self.status, &self.message);
        // The method never ran: an idempotent method's key is released, not kept with this
        // answer, so that the request sent again corrected runs (see `serve::to_keep`).
        response.extensions_mut().insert(Unrun);
        if self.identity_only {
            // RFC 9110 §12.5.3: the codings a refused request may use instead.
            response.headers_mut().insert(
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        response
    }
}

/// Refuses, with a 415, a body sent with a content coding (`Content-Encoding: gzip`): a
/// generated server reads a body as the bytes that arrived (the bytes its `Content-Digest`
/// covers) and decodes none. Read as they are, compressed bytes would be a 400 that blames
/// their syntax, and bytes said to be compressed that are not would be taken as what their
/// sender said they were not. `identity`, the coding of none, is a body as it is. `what` names
/// the body.
fn uncoded(incoming: &Incoming, what: std::fmt::Arguments<'_>) -> Result<(), Rejection> {
    let coded = incoming
        .parts
        .headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity"));
    match coded {
        false => Ok(()),
        true => Err(Rejection {
            identity_only: true,
            ..Rejection::unsupported(format_args!(
                "{what} has a Content-Encoding; a generated server reads bodies as they are sent"
            ))
        }),
    }
}

/// `what`, written out up to [`REJECTION_LIMIT`] bytes (cut at a character, then `…`); the
/// writing stops there, so a long value is neither copied whole nor escaped whole.
fn bounded_message(what: std::fmt::Arguments<'_>) -> String {
    struct Bounded(String);
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            let room = REJECTION_LIMIT - self.0.len();
            if text.len() <= room {
                self.0.push_str(text);
                return Ok(());
            }
            self.0
                .push_str(&text[..crate::error::char_floor(text, room)]);
            // Full: the error stops the formatting.
            Err(std::fmt::Error)
        }
    }
    let mut out = Bounded(String::new());
    if std::fmt::write(&mut out, what).is_err() {
        out.0.push('…');
    }
    out.0
}

/// The raw (still percent-encoded) value of path segment `index` (0 for the first segment
/// after the leading `/`), or with `trailing` every segment from there on.
fn raw_segment(path: &str, index: usize, trailing: bool) -> Option<&str> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if trailing {
        let mut start = 0;
        for _ in 0..index {
            start += rest[start..].find('/')? + 1;
        }
        rest.get(start..)
    } else {
        rest.split('/').nth(index)
    }
}

/// Whether a raw path value is one a comms client could have sent, and so one a method may be
/// handed: a plain segment is not `.` or `..` once decoded (RFC 3986 removes or climbs with
/// it); a trailing value, decoded (a `/` sent encoded, as Python's `quote(.., safe="")` writes
/// it, is a `/` of the value all the same), has no `.` or `..` segment and does not start with
/// `/` (which `Path::join` takes for a new root). A value that does not decode is left to the
/// parse, which names it.
fn sendable(raw: &str, trailing: bool) -> bool {
    let Some(value) = decode(raw) else {
        return true;
    };
    let dots = |segment: &str| matches!(segment, "." | "..");
    if !trailing {
        return !dots(&value);
    }
    !(value.starts_with('/') || value.split('/').any(dots))
}

/// A path segment's text: `%XX` escapes decoded, a `+` kept (in a path it is a plus).
fn decode(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

/// A query key's or value's text, read as `application/x-www-form-urlencoded` is, as HTML forms,
/// Python's `requests` and `URLSearchParams` write it: a `+` is a space, then `%XX` escapes are
/// decoded. A comms client sends a plus as `%2B` and a space as `%20`, which read the same
/// either way.
fn decode_query(raw: &str) -> Option<String> {
    if raw.contains('+') {
        decode(&raw.replace('+', " "))
    } else {
        decode(raw)
    }
}

/// Parses path parameter `name`, segment `index` of the path (every segment from there on,
/// `/` kept, when `trailing`), percent-decoded.
#[doc(hidden)]
pub fn path<T: FromStrArg>(
    incoming: &Incoming,
    index: usize,
    trailing: bool,
    name: &str,
) -> Result<T, Rejection> {
    let raw = raw_segment(incoming.parts.uri.path(), index, trailing)
        .ok_or_else(|| Rejection::bad(format_args!("path parameter `{name}` is missing")))?;
    if !sendable(raw, trailing) {
        return Err(Rejection::bad(format_args!(
            "path parameter `{name}` is `.` or `..`, or, trailing, has such a segment or \
             starts with `/`"
        )));
    }
    let text = decode(raw)
        .ok_or_else(|| Rejection::bad(format_args!("path parameter `{name}` is not UTF-8")))?;
    T::from_str_arg(&text)
        .map_err(|why| Rejection::bad(format_args!("path parameter `{name}`: {why}")))
}

/// The query's pairs, still encoded, in order.
fn raw_pairs(incoming: &Incoming) -> impl Iterator<Item = (&str, &str)> {
    crate::form::encoded_pairs(incoming.parts.uri.query().unwrap_or(""))
}

/// The decoded values of query parameter `name`, in order.
fn query_values(incoming: &Incoming, name: &str) -> Result<Vec<String>, Rejection> {
    let mut values = Vec::new();
    for (key, value) in raw_pairs(incoming) {
        if decode_query(key).as_deref() == Some(name) {
            let value = decode_query(value).ok_or_else(|| {
                Rejection::bad(format_args!("query parameter `{name}` is not UTF-8"))
            })?;
            values.push(value);
        }
    }
    Ok(values)
}

fn parse_query<T: FromStrArg>(name: &str, text: &str) -> Result<T, Rejection> {
    T::from_str_arg(text)
        .map_err(|why| Rejection::bad(format_args!("query parameter `{name}`: {why}")))
}

/// Parses query parameter `name`, which must occur once.
#[doc(hidden)]
pub fn query<T: FromStrArg>(incoming: &Incoming, name: &str) -> Result<T, Rejection> {
    match query_values(incoming, name)?.as_slice() {
        [one] => parse_query(name, one),
        [] => Err(Rejection::bad(format_args!(
            "query parameter `{name}` is missing"
        ))),
        _ => Err(Rejection::bad(format_args!(
            "query parameter `{name}` is given more than once"
        ))),
    }
}

/// Parses query parameter `name`, which may be absent. An empty value its type cannot be
/// (`?page=` for a number: an HTML form's empty field, a `URLSearchParams` given `""`) is
/// absent too; one it can be (a `String`) is that value.
#[doc(hidden)]
pub fn query_opt<T: FromStrArg>(incoming: &Incoming, name: &str) -> Result<Option<T>, Rejection> {
    match query_values(incoming, name)?.as_slice() {
        [] => Ok(None),
        [one] if one.is_empty() => Ok(T::from_str_arg(one).ok()),
        [one] => parse_query(name, one).map(Some),
        _ => Err(Rejection::bad(format_args!(
            "query parameter `{name}` is given more than once"
        ))),
    }
}

/// Parses every value of query parameter `name`.
#[doc(hidden)]
pub fn query_all<C: FromIterator<T>, T: FromStrArg>(
    incoming: &Incoming,
    name: &str,
) -> Result<C, Rejection> {
    query_values(incoming, name)?
        .iter()
        .map(|value| parse_query(name, value))
        .collect()
}

/// Parses every value of query key `name` into an array of `N`: 400 for another count.
#[doc(hidden)]
pub fn query_array<T: FromStrArg, const N: usize>(
    incoming: &Incoming,
    name: &str,
) -> Result<[T; N], Rejection> {
    let values: Vec<T> = query_all(incoming, name)?;
    let count = values.len();
    <[T; N]>::try_from(values).map_err(|_| {
        Rejection::bad(format_args!(
            "query parameter `{name}` takes {N} values; the request has {count}"
        ))
    })
}

/// Parses header `name`, if present (once) and covered by the request's signature: one it does
/// not cover is taken as absent, as the deadline and trace context are. Something on the way
/// may have added it (a proxy's `X-Request-Id`, a client's default `Accept`), and it is not
/// the caller's to vouch for.
#[doc(hidden)]
pub fn header_opt<T: FromStrArg>(incoming: &Incoming, name: &str) -> Result<Option<T>, Rejection> {
    let mut values = incoming.parts.headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if !incoming.covered.covers(name) {
        tracing::debug!(
            header = name,
            "not covered by the request's signature; ignored"
        );
        return Ok(None);
    }
    if values.next().is_some() {
        return Err(Rejection::bad(format_args!(
            "header `{name}` is given more than once"
        )));
    }
    // UTF-8, not only visible ASCII: a comms client sends a `&str` argument's bytes as they are.
    let text = std::str::from_utf8(value.as_bytes())
        .map_err(|_| Rejection::bad(format_args!("header `{name}` is not UTF-8")))?;
    T::from_str_arg(text)
        .map(Some)
        .map_err(|why| Rejection::bad(format_args!("header `{name}`: {why}")))
}

/// Parses header `name`, which must be present.
#[doc(hidden)]
pub fn header<T: FromStrArg>(incoming: &Incoming, name: &str) -> Result<T, Rejection> {
    header_opt(incoming, name)?.ok_or_else(|| {
        if incoming.parts.headers.contains_key(name) {
            Rejection::bad(format_args!(
                "header `{name}` is not covered by the request's signature"
            ))
        } else {
            Rejection::bad(format_args!("header `{name}` is missing"))
        }
    })
}

/// Parses the JSON body, argument `name`.
#[doc(hidden)]
pub fn body<T: BodyArg>(incoming: &Incoming, name: &str) -> Result<T, Rejection> {
    uncoded(incoming, format_args!("the body"))?;
    serde_json::from_slice(crate::response::json_text(&incoming.body))
        .map_err(|e| Rejection::bad(format_args!("the body (`{name}`) does not parse: {e}")))
}

/// Hands a generated method its `#[body(raw)]` argument: the body's bytes as they came, or
/// its text (a 400 when it is not UTF-8). Whatever its `Content-Type`; a body with a content
/// coding is refused with 415, as for every other kind, since the method would get it coded.
#[doc(hidden)]
pub fn raw_body<T: RawBodyArg>(incoming: &Incoming) -> Result<T, Rejection> {
    uncoded(incoming, format_args!("the body"))?;
    T::from_raw_body(incoming.body.clone())
}

/// A type a generated server hands a `#[body(raw)]` argument in: `bytes::Bytes`, `Vec<u8>`,
/// `Box<[u8]>`, `[u8; N]` (a 400 for a body of another length) or `String` (a 400 for a body
/// that is not UTF-8); `&[u8]` and `&str` arguments are handed over as `Vec<u8>` and `String`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the raw body of a served request",
    label = "with the `server` feature, a `#[body(raw)]` argument is bytes (`bytes::Bytes`, `Vec<u8>`, `&[u8]`, `Box<[u8]>`, `[u8; N]`) or text (`String`, `&str`)",
    note = "a trait that is only called, never served, can say so: `#[service_client(.., server = false)]`"
)]
///
/// Implemented for the types above only (it is sealed): a method taking another type takes one
/// of these and converts it.
pub trait RawBodyArg: sealed::Sealed + Sized + Send + 'static {
    /// The argument made of the body's bytes.
    #[doc(hidden)]
    fn from_raw_body(body: Bytes) -> Result<Self, Rejection>;
}

/// The argument traits a generated server implements for a fixed list of types.
mod sealed {
    /// Implemented by the types of a sealed argument trait alone, so that no other crate
    /// implements that trait.
    pub trait Sealed {}

    impl Sealed for bytes::Bytes {}
    impl Sealed for Vec<u8> {}
    impl Sealed for Box<[u8]> {}
    impl<const N: usize> Sealed for [u8; N] {}
    impl Sealed for String {}
    impl Sealed for crate::Multipart {}
}
pub(crate) use sealed::Sealed;

impl RawBodyArg for Bytes {
    fn from_raw_body(body: Bytes) -> Result<Self, Rejection> {
        Ok(body)
    }
}

impl RawBodyArg for Vec<u8> {
    fn from_raw_body(body: Bytes) -> Result<Self, Rejection> {
        Ok(body.into())
    }
}

impl RawBodyArg for Box<[u8]> {
    fn from_raw_body(body: Bytes) -> Result<Self, Rejection> {
        Ok(Vec::from(body).into_boxed_slice())
    }
}

impl<const N: usize> RawBodyArg for [u8; N] {
    fn from_raw_body(body: Bytes) -> Result<Self, Rejection> {
        <[u8; N]>::try_from(&body[..]).map_err(|_| {
            Rejection::bad(format_args!(
                "the body is {} bytes long, not {N}",
                body.len()
            ))
        })
    }
}

impl RawBodyArg for String {
    fn from_raw_body(body: Bytes) -> Result<Self, Rejection> {
        String::from_utf8(body.into()).map_err(|e| {
            Rejection::bad(format_args!(
                "the body is not UTF-8 text: {}",
                e.utf8_error()
            ))
        })
    }
}

/// A type a generated server parses a path, query or header value into.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be parsed back by the generated server",
    label = "with the `server` feature, path, query and header arguments must implement `std::str::FromStr` (references are parsed as their owned type: `&str` as `String`)",
    note = "serde's derives do not make a type `FromStr`: implement `std::str::FromStr` for it, the inverse of its `Display`",
    note = "a trait that is only called, never served, can say so: `#[service_client(.., server = false)]`"
)]
pub trait FromStrArg: Sized + Send + 'static {
    /// Parses `text`, or says why not.
    fn from_str_arg(text: &str) -> Result<Self, String>;
}

impl<T> FromStrArg for T
where
    T: std::str::FromStr + Send + 'static,
    T::Err: std::fmt::Display,
{
    fn from_str_arg(text: &str) -> Result<Self, String> {
        text.parse().map_err(|e: T::Err| e.to_string())
    }
}

/// A type a generated server parses a `#[body]` argument into.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the body of a served request",
    label = "with the `server` feature, `#[body]` arguments must implement `serde::Deserialize`",
    note = "a trait that is only called, never served, can say so: `#[service_client(.., server = false)]`"
)]
pub trait BodyArg: serde::de::DeserializeOwned + Send + 'static {}

impl<T: serde::de::DeserializeOwned + Send + 'static> BodyArg for T {}

/// A type a generated server answers with, as JSON.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a served method",
    label = "with the `server` feature, a method's success type must implement `serde::Serialize` (or be `()`, `comms::Response`, a stream, or `Option<T>` or `comms::ResponseValue<T>` of a `T` that does, or `()`)",
    note = "a trait that is only called, never served, can say so: `#[service_client(.., server = false)]`"
)]
pub trait JsonReturn: serde::Serialize {}

impl<T: serde::Serialize> JsonReturn for T {}

/// The response for a method returning `T`: 200 with `T` as JSON, or the error's response.
#[doc(hidden)]
pub fn respond_json<T: JsonReturn>(result: Result<T, Error>) -> http::Response<Bytes> {
    match result {
        Ok(value) => match serde_json::to_vec(&value) {
            Ok(bytes) => {
                let mut response = http::Response::new(Bytes::from(bytes));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
            Err(e) => {
                tracing::error!(error = %e, "a served method's result does not serialize");
                ran_unanswerable()
            }
        },
        Err(e) => served_error(&e),
    }
}

/// The response for a method returning `Option<T>`: 200 with `T` as JSON, a 404 for `None`
/// (which a comms client receives as `None`), or the error's response.
#[doc(hidden)]
pub fn respond_optional<T: JsonReturn>(result: Result<Option<T>, Error>) -> http::Response<Bytes> {
    match result {
        Ok(Some(value)) => respond_json(Ok(value)),
        Ok(None) => respond_message(StatusCode::NOT_FOUND, "not found"),
        Err(e) => respond_json::<T>(Err(e)),
    }
}

/// The response for a method returning `Option<()>`: 204 for `Some(())`, 404 for `None`, or
/// the error's response.
#[doc(hidden)]
pub fn respond_optional_unit(result: Result<Option<()>, Error>) -> http::Response<Bytes> {
    match result {
        Ok(Some(())) => respond_unit(Ok(())),
        Ok(None) => respond_message(StatusCode::NOT_FOUND, "not found"),
        Err(e) => served_error(&e),
    }
}

/// The response for a method returning `()`: 204, or the error's response.
#[doc(hidden)]
pub fn respond_unit(result: Result<(), Error>) -> http::Response<Bytes> {
    match result {
        Ok(()) => {
            let mut response = http::Response::new(Bytes::new());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err(e) => served_error(&e),
    }
}

/// The response for a method returning `ResponseValue<T>`: its status and headers, with `T`
/// as JSON, or the error's response.
#[doc(hidden)]
pub fn respond_value<T: JsonReturn>(
    result: Result<crate::ResponseValue<T>, Error>,
) -> http::Response<Bytes> {
    match result {
        Ok(value) => {
            let received = value.was_received();
            let (status, mut headers, value) = value.into_parts();
            // A status that carries no body is sent without one (and without its type). A
            // value other than `None` is then lost to the caller, which decodes a bodiless
            // answer as `null`: said, since the method meant to send it.
            let response = if matches!(status.as_u16(), 204 | 205 | 304) {
                if serde_json::to_vec(&value).is_ok_and(|json| json != b"null") {
                    tracing::warn!(
                        status = status.as_u16(),
                        "a served method answered a value with a status that carries no body: \
                         the value is not sent (answer `ResponseValue<()>`, or `None` of a \
                         `ResponseValue<Option<T>>`, with this status)"
                    );
                }
                http::Response::new(Bytes::new())
            } else {
                // The body is serialized here: a length the value came with (another service's,
                // for its own serialization) is not this body's, not even for a HEAD.
                headers.remove(http::header::CONTENT_LENGTH);
                respond_json(Ok(value))
            };
            with_parts(response, status, headers, received)
        }
        Err(e) => served_error(&e),
    }
}

/// The response for a method returning `ResponseValue<()>`: its status and headers, no body.
#[doc(hidden)]
pub fn respond_value_unit(
    result: Result<crate::ResponseValue<()>, Error>,
) -> http::Response<Bytes> {
    match result {
        Ok(value) => {
            let received = value.was_received();
            let (status, headers, ()) = value.into_parts();
            with_parts(http::Response::new(Bytes::new()), status, headers, received)
        }
        Err(e) => served_error(&e),
    }
}

/// `response` with `status` and `headers` added (a header of `headers` replaces the
/// response's own of that name, such as its `Content-Type`), but `Transfer-Encoding` (the body
/// is serialized here), and of `received` headers, those of the connection they came on.
/// (`handle` leaves out a `Content-Length` but in the answer to a HEAD.) A body that failed to
/// serialize keeps its 500.
fn with_parts(
    mut response: http::Response<Bytes>,
    status: StatusCode,
    mut headers: HeaderMap,
    received: bool,
) -> http::Response<Bytes> {
    if response.status() != StatusCode::OK {
        return response;
    }
    *response.status_mut() = status;
    headers.remove(http::header::TRANSFER_ENCODING);
    if received {
        crate::header_map::remove_connection_headers(&mut headers);
    }
    crate::header_map::lay_over(response.headers_mut(), &headers);
    response
}

/// The response for a method returning a [`Response`](crate::Response): as it is, but that a
/// status that carries no content (204, 205, 304) is sent without a body, and a 204 or 205
/// without a `Content-Length` (RFC 9110 §8.6, §15.3.6).
#[doc(hidden)]
pub fn respond_raw(result: Result<crate::Response, Error>) -> http::Response<Bytes> {
    match result {
        Ok(response) => {
            let mut response = response.into_http();
            if matches!(response.status().as_u16(), 204 | 205 | 304) {
                *response.body_mut() = Bytes::new();
                if response.status() != StatusCode::NOT_MODIFIED {
                    response.headers_mut().remove(http::header::CONTENT_LENGTH);
                }
            }
            response
        }
        Err(e) => served_error(&e),
    }
}

/// An [`Error`] answered from a hand-written axum handler (one beside a generated server, or
/// behind a [`VerifyLayer`](crate::verify::VerifyLayer)) as a generated server answers it: an
/// error the handler built with its status and `{"message": ...}` (and `"details"`), which a
/// comms client receives as the same variant; a failed call to another service, propagated
/// with `?`, as a gateway status (or a 424, for a refusal the other service answered) without
/// its words, which are logged here instead.
///
/// ```
/// use comms::Error;
/// use comms::axum::{self, extract::Path};
///
/// async fn user(Path(id): Path<u64>) -> Result<String, Error> {
///     if id == 0 {
///         return Err(Error::not_found("no user 0"));
///     }
///     Ok(format!("user {id}"))
/// }
///
/// let app: axum::Router = axum::Router::new().route("/users/{id}", axum::routing::get(user));
/// ```
impl axum::response::IntoResponse for Error {
    fn into_response(self) -> axum::response::Response {
        served_error(&self).map(axum::body::Body::from)
    }
}

/// The response for a method's error (see `Error`'s own mapping); the error itself, which the
/// caller never sees in full, goes to the log, with the errors under it, when it is the
/// server's own failure or a dependency's refusal passed on (a 424).
fn served_error(error: &Error) -> http::Response<Bytes> {
    let response = crate::__private::error_response(error);
    let status = response.status();
    if status.is_server_error() || status == http::StatusCode::FAILED_DEPENDENCY {
        tracing::warn!(
            error = %crate::error::WithSources(error),
            %status,
            "a served method failed"
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_a_comms_client_sends_is_handed_over_as_it_was() {
        // Every value of up to four of these pieces that the client's path encoder takes, as a
        // plain segment and as a trailing value: the server finds it sendable and decodes it
        // back to itself.
        let pieces = [
            "a", ".", "/", "%", "2F", "2f", "é", " ", "..", "%2e", "~", "+",
        ];
        let values = crate::path::tests::strings_of(&pieces, 4);
        let (mut plain, mut trailing) = (0, 0);
        for value in &values {
            let mut path = String::new();
            if crate::path::push_segment(&mut path, value).is_ok() {
                plain += 1;
                let raw = raw_segment(&path, 0, false).unwrap();
                assert!(sendable(raw, false), "{value:?} as {path}");
                assert_eq!(decode(raw).as_deref(), Some(value.as_str()));
            }
            let mut path = String::from("/f");
            if crate::path::push_trailing(&mut path, value).is_ok() {
                trailing += 1;
                let raw = raw_segment(&path, 1, true).unwrap();
                assert!(sendable(raw, true), "{value:?} as {path}");
                assert_eq!(decode(raw).as_deref(), Some(value.as_str()));
            }
        }
        assert!(plain > 10_000 && trailing > 5_000, "{plain} {trailing}");
        // What no client sends.
        assert!(!sendable("..", false) && !sendable("%2E", false));
        assert!(!sendable("a/../b", true) && !sendable("a%2F..%2Fb", true));
        assert!(!sendable("/etc", true) && !sendable("%2Fetc", true));
        // A `/` sent encoded in a trailing value is the value's own; a plain value may hold one.
        assert!(sendable("docs%2Fa.txt", true) && sendable("..%2Fx", false));
    }

    #[test]
    fn segments_are_found_by_position() {
        assert_eq!(raw_segment("/users/7", 1, false), Some("7"));
        assert_eq!(raw_segment("/users/7/teams/a%2Fb", 3, false), Some("a%2Fb"));
        assert_eq!(raw_segment("/files/a/b%20c/d", 1, true), Some("a/b%20c/d"));
        assert_eq!(raw_segment("/files/", 1, true), Some(""));
        assert_eq!(raw_segment("/x", 3, false), None);
        assert_eq!(decode("a%2Fb%20%C3%A9").as_deref(), Some("a/b é"));
        assert_eq!(decode("%FF"), None);
        assert_eq!(decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_query("a+b%2B+%20c").as_deref(), Some("a b+  c"));
        assert_eq!(decode_query("%FF+"), None);
    }

    #[test]
    fn a_rejection_says_at_most_its_limit() {
        let long = "é".repeat(REJECTION_LIMIT);
        let rejection = Rejection::bad(format_args!("the body of `x` does not parse: {long:?}"));
        assert!(rejection.message.len() <= REJECTION_LIMIT + '…'.len_utf8());
        assert!(rejection.message.ends_with("é…"), "{}", rejection.message);
        assert!(
            rejection
                .message
                .starts_with("the body of `x` does not parse: \"é")
        );
        let short = Rejection::unsupported(format_args!("the body of `{}` must be JSON", "x"));
        assert_eq!(short.message, "the body of `x` must be JSON");
    }
}
