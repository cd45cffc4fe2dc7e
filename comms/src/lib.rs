//! Typed, signed, resilient clients for calls between services.
//!
//! Declare the remote service as a trait and let [`service_client`] generate the client:
//!
//! ```no_run
//! use comms::{service_client, Error};
//! # #[derive(serde::Deserialize, serde::Serialize)] pub struct User { pub id: u64 }
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
//! # async fn run() -> Result<(), Error> {
//! let users = UsersClient::new()?; // reads USERS_SECRET
//! let user = users.get_user(7).await?;
//! # Ok(()) }
//! ```
//!
//! Each `async fn` of the trait becomes a method returning `impl Future<Output = ...> + Send`,
//! so a call can run on any thread. The future borrows the client: to spawn a call, move a
//! clone of the client (cheap: clones share everything) into the task,
//! `tokio::spawn(async move { users.get_user(7).await })`. The method builds the request when
//! it is called (a value that
//! cannot be encoded is kept and returned as [`Error::Encode`]); nothing is sent until the
//! future is awaited.
//!
//! Every call, generated or written by hand over [`Executor`], takes the same path:
//! the target's [circuit breaker](BreakerConfig) admits it or fails it fast, each attempt is
//! [signed](signing) afresh (an RFC 9421 HTTP Message Signature, `hmac-sha256`, over method,
//! authority, path, query, the body's digest and the call's headers, with a creation time and a
//! nonce), sent with a timeout, classified, and [retried](RetryConfig) with jittered backoff
//! when that is safe. Failures arrive as [`Error`] variants that say what happened.
//!
//! The receiving side checks those signatures with [`verify::Verifier`], directly or as a
//! tower layer; any RFC 9421 library can check them too, so services in other languages can
//! take part.
//!
//! A method returning [`ByteStream`] or [`JsonLines`] hands its response body over as it
//! arrives, unbuffered and uncapped, once a 2xx head has ended the call's retries (see
//! [`StreamingResponse`] for the rules, and [`Executor::execute_streaming`] by hand).
//!
//! Calls report through `tracing`: retries, an exhausted retry budget and breaker transitions
//! as `INFO`/`WARN` events, and a `DEBUG` span per call (see [`Executor::execute`]), so a
//! service logging at `INFO` hears about trouble and pays nothing for calls that go well.
//!
//! # Features
//!
//! - `rustls` (default): TLS for `https://` base URLs through rustls.
//! - `native-tls`: TLS through the platform's library instead (reqwest prefers it when both
//!   are on; `default-features = false` leaves rustls out of the build).
//! - `redis`: `redis::RedisNonceStore` and `redis::share_breakers`, fleet-wide replay
//!   protection and breaker state; with `server` too, `redis::RedisIdempotencyStore`, a
//!   generated server's `Idempotency-Key` answers shared by its replicas.
//! - `server`: `#[service_client]` also generates `<Trait>Server`, serving the trait as an axum
//!   router (see `server`). Its `into_router()` is an axum 0.8 `Router`, and
//!   `verify::VerifyLayer` a `tower-layer` 0.3 `Layer`: the application uses those versions.
//! - `otel`: OpenTelemetry through the global providers: a CLIENT span per attempt under the
//!   HTTP semantic conventions, W3C trace context sent (and signed) on every attempt and
//!   continued in a SERVER span on the receiving side, and request-duration, retry and breaker
//!   metrics. The global providers are those of `opentelemetry` 0.33 (and the SERVER span
//!   reaches the SDK through `tracing-opentelemetry` 0.34): an application installing its
//!   providers through another minor version of them installs them where comms does not look.
//!   comms records attempt durations through the bound instruments of `opentelemetry` and
//!   `opentelemetry_sdk` 0.33, turning on their `experimental_metrics_bound_instruments`
//!   feature.
//!
//! The `reqwest` a client may be given ([`ExecutorBuilder::http_client`]) is 0.13, re-exported
//! as [`reqwest`].
//!
//! A feature whose name starts with `__` is a hook for this project's own benchmarks, not
//! public API: it may change or go away in any release.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "__internals", fuzzing, test))]
#[doc(hidden)]
#[path = "internals.rs"]
pub mod __internals;
mod breaker;
mod call;
mod call_options;
mod client;
mod deadline;
mod error;
mod executor;
mod form;
mod gathered;
mod header_map;
mod hook;
pub mod multipart;
pub mod path;
mod random;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod report;
mod response;
mod response_value;
mod retry;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
pub mod signing;
mod stream;
mod telemetry;
pub mod verify;

pub use breaker::{BreakerConfig, BreakerSync, CircuitState};
pub use call::Call;
pub use call_options::CallOptions;
pub use client::ClientBuilder;
pub use error::{BODY_EXCERPT_LIMIT, BoxError, DETAILS_LIMIT, Error, HttpError};
pub use executor::{
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, Executor, ExecutorBuilder, shared_http_client,
};
pub use multipart::Multipart;
pub use response::{Response, ResponseBuilder};
pub use response_value::ResponseValue;
pub use retry::RetryConfig;
pub use signing::{Secret, Signing};
pub use stream::{ByteStream, JsonLines, StreamingResponse};

/// The client it generates is built with a [`ClientBuilder`] (`<Trait>Client::builder()`), its
/// calls fail with an [`Error`], and `client.with(..)` takes [`CallOptions`] for the calls of a
/// view. The crate's [front page](crate) declares and calls a trait.
#[cfg_attr(
    feature = "server",
    doc = "[`server`] shows a trait served by its generated `<Trait>Server` and called by its \
           generated client over loopback."
)]
///
// The attribute's reference below is the macro's own documentation (in `comms-macros`), which
// cannot link to this crate's items.
pub use comms_macros::service_client;

/// The `axum` crate (0.8), whose `Router` a generated server's `into_router` returns.
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use axum;
/// The `bytes` crate, whose `Bytes` bodies, streams and stored answers are.
pub use bytes;
/// The `http` crate, for methods, status codes and headers.
pub use http;
/// The `reqwest` crate (0.13), whose `Client` [`ExecutorBuilder::http_client`] takes.
pub use reqwest;

/// Support for generated code. Not public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    /// What a generated server runs on.
    #[cfg(feature = "server")]
    pub mod server {
        pub use crate::server::{
            Answer, Incoming, Rejection, Settings, body, check_query_keys, form, handle, header,
            header_opt, multipart, path, query, query_all, query_array, query_flatten, query_keys,
            query_opt, raw_body, respond_byte_stream, respond_json, respond_json_lines,
            respond_optional, respond_optional_unit, respond_raw, respond_unit, respond_value,
            respond_value_unit,
        };
        pub use axum::Router;
        pub use axum::extract::Request;
        pub use axum::routing::{MethodFilter, on};
    }

    /// Met by no type: the bound of the `<Trait>Server` that `#[service_client]` puts in its
    /// place while the `server` feature is off, so that using it says what to turn on (where
    /// the type missing would only be an unknown name).
    #[cfg(not(feature = "server"))]
    #[diagnostic::on_unimplemented(
        message = "a generated `<Trait>Server` needs comms' `server` feature, which is off",
        label = "cannot be served without the `server` feature",
        note = "turn it on in Cargo.toml: `comms = {{ version = \"..\", features = [\"server\"] }}`"
    )]
    pub trait ServerFeatureOff {
        /// Never called: no type implements the trait.
        fn never(self) -> core::convert::Infallible;
    }

    pub use crate::client::{ClientDefaults, FromExecutor};
    pub use crate::error::error_response;
    pub use crate::stream::{decode_byte_stream, decode_json_lines};
    pub use crate::{Call, CallOptions, ClientBuilder, Error, Executor, Response, Signing};
    use bytes::Bytes;
    pub use core::fmt::Display;
    pub use core::future::Future;
    pub use core::marker::Send;
    pub use core::result::Result;
    pub use http::Method;
    pub use serde::de::DeserializeOwned;
    pub use std::time::Duration;

    /// `call` with the pairs of a `#[query(flatten)]` argument, none of whose keys may be
    /// among `plain`, the method's plain `#[query]` names: with such a key, a server could not
    /// tell which of the two arguments a pair fills, even when the plain one sends none.
    pub fn query_flatten<T: FlattenParam + ?Sized>(call: Call, value: &T, plain: &[&str]) -> Call {
        value.flatten_into(call, plain)
    }

    /// A value of a `#[query(flatten)]` argument.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be flattened into the query",
        label = "the fields of a `#[query(flatten)]` value are sent as the query's pairs, so its type must implement `serde::Serialize`",
        note = "for a type of your own, add `#[derive(serde::Serialize)]`; for one of another crate, see whether that crate has a `serde` feature"
    )]
    pub trait FlattenParam {
        /// `call` with this value's pairs, none of whose keys may be among `plain`.
        fn flatten_into(&self, call: Call, plain: &[&str]) -> Call;
    }

    impl<T: serde::Serialize + ?Sized> FlattenParam for T {
        fn flatten_into(&self, call: Call, plain: &[&str]) -> Call {
            call.query_flatten_beside(self, plain)
        }
    }

    /// `call`, whose success's body its method ignores (it returns `()`, `Option<()>` or
    /// `ResponseValue<()>`): a body over the response limit does not fail it.
    pub fn ignoring_body(mut call: Call) -> Call {
        call.body_ignored = true;
        call
    }

    /// `call` with `text`, route text the macro checked at compile time, appended to its path.
    pub fn literal(mut call: Call, text: &str) -> Call {
        call.path.push_str(text);
        call
    }

    pin_project_lite::pin_project! {
        /// A call's future whose response (`R`: a [`Response`], or a streamed call's
        /// [`StreamingResponse`](crate::StreamingResponse)) is decoded when it arrives: what a
        /// generated method returns.
        pub struct Decoded<F, R, T> {
            #[pin]
            call: F,
            decode: fn(R) -> Result<T, Error>,
        }
    }

    impl<F, R, T> Future for Decoded<F, R, T>
    where
        F: Future<Output = Result<R, Error>>,
    {
        type Output = Result<T, Error>;

        fn poll(
            self: core::pin::Pin<&mut Self>,
            cx: &mut core::task::Context<'_>,
        ) -> core::task::Poll<Self::Output> {
            let this = self.project();
            this.call
                .poll(cx)
                .map(|result| result.and_then(*this.decode))
        }
    }

    /// `call`'s future, with its response decoded by `decode`.
    pub fn decoded<F, R, T>(call: F, decode: fn(R) -> Result<T, Error>) -> Decoded<F, R, T>
    where
        F: Future<Output = Result<R, Error>>,
    {
        Decoded { call, decode }
    }

    pin_project_lite::pin_project! {
        /// A call's future for a method returning `Option<T>`: a 404 is `None`, a success is
        /// decoded into `Some`, every other error stays an error.
        pub struct DecodedOptional<F, T> {
            #[pin]
            call: F,
            decode: fn(Response) -> Result<T, Error>,
        }
    }

    impl<F, T> Future for DecodedOptional<F, T>
    where
        F: Future<Output = Result<Response, Error>>,
    {
        type Output = Result<Option<T>, Error>;

        fn poll(
            self: core::pin::Pin<&mut Self>,
            cx: &mut core::task::Context<'_>,
        ) -> core::task::Poll<Self::Output> {
            let this = self.project();
            this.call.poll(cx).map(|result| match result {
                Ok(response) => (*this.decode)(response).map(Some),
                // The target's 404; not one a header hook failed with, nothing sent.
                Err(Error::NotFound(e)) if e.is_received() => Ok(None),
                Err(e) => Err(e),
            })
        }
    }

    /// `call`'s future, with a 404 as `None` and a success decoded by `decode` into `Some`.
    pub fn decoded_optional<F, T>(
        call: F,
        decode: fn(Response) -> Result<T, Error>,
    ) -> DecodedOptional<F, T>
    where
        F: Future<Output = Result<Response, Error>>,
    {
        DecodedOptional { call, decode }
    }

    /// Decodes a JSON body.
    pub fn decode_json<T: JsonOutput>(response: Response) -> Result<T, Error> {
        response.json()
    }

    /// A method's success type that is decoded from a JSON body.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be decoded from a response",
        label = "a method's success type is decoded from the response's JSON body, so it must implement `serde::Deserialize` (or be `()`, `comms::Response`, `comms::ByteStream`, or `Option<T>`, `comms::ResponseValue<T>` or `comms::JsonLines<T>` of a `T` that does, or `()`)",
        note = "for a type of your own, add `#[derive(serde::Deserialize)]`; for one of another crate, see whether that crate has a `serde` feature",
        note = "a web framework's `Json<T>` is not needed: a method returning `T` reads it from JSON"
    )]
    pub trait JsonOutput: DeserializeOwned {}

    impl<T: DeserializeOwned> JsonOutput for T {}

    /// Ignores the body.
    pub fn decode_unit(_: Response) -> Result<(), Error> {
        Ok(())
    }

    /// Returns the response as it is.
    pub fn decode_response(response: Response) -> Result<Response, Error> {
        Ok(response)
    }

    /// Decodes a JSON body, keeping the status and headers.
    pub fn decode_value<T: DeserializeOwned>(
        response: Response,
    ) -> Result<crate::ResponseValue<T>, Error> {
        let value = response.json_or_none()?;
        let (status, headers, _) = response.into_parts();
        Ok(crate::ResponseValue::received(status, headers, value))
    }

    /// Keeps the status and headers, ignoring the body.
    pub fn decode_value_unit(response: Response) -> Result<crate::ResponseValue<()>, Error> {
        let (status, headers, _) = response.into_parts();
        Ok(crate::ResponseValue::received(status, headers, ()))
    }

    /// What a method's return type must be when the user's scope says what it names: an alias
    /// `Result<T>`, or a bare `Error`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not `Result<T, comms::Error>`",
        label = "a method of a `#[service_client]` trait returns `Result<T, comms::Error>`",
        note = "the `Error` or `Result` in scope here is another; write `comms::Error`, or use an alias `type Result<T> = std::result::Result<T, comms::Error>;`"
    )]
    pub trait CommsResult {}

    impl<T> CommsResult for Result<T, Error> {}

    /// Checks that a method's return type named in the user's scope is
    /// `Result<T, comms::Error>`.
    pub fn comms_result<R: CommsResult>() {}

    /// What a method's success type written as a bare `Response` must be.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not `comms::Response`",
        label = "a method returning the response as it is returns `comms::Response`",
        note = "the `Response` in scope here is another; write `comms::Response` (or a path to a type of your own, which is decoded from JSON)"
    )]
    pub trait CommsResponse {}

    impl CommsResponse for Response {}

    /// Checks that a method's success type written as a bare `Response` is `comms::Response`.
    pub fn comms_response<R: CommsResponse>() {}

    /// A value that fills a `<param>` of a route.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot fill a route parameter",
        label = "this argument fills a `<param>` of the route, so it must implement `std::fmt::Display`",
        note = "serde's derives do not make a type `Display`: implement `std::fmt::Display` for it (for an enum, writing each variant's name)"
    )]
    pub trait PathParam {
        /// The value to encode.
        fn as_display(&self) -> &dyn Display;
    }

    impl<T: Display> PathParam for T {
        fn as_display(&self) -> &dyn Display {
            self
        }
    }

    /// Checks and passes on a route parameter's value.
    pub fn path_param<T: PathParam>(value: &T) -> &dyn Display {
        value.as_display()
    }

    /// A value of a `#[query]` argument.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a query value",
        label = "`#[query]` values must implement `std::fmt::Display`, or be an `Option` or a `Vec` or slice of such values",
        note = "for a struct whose fields are the query's pairs, use `#[query(flatten)]`",
        note = "an `Option` or a list is known by the type as written: an alias of one (`type Ids = Vec<u64>`) is taken for a single value, so write the type out",
        note = "serde's derives do not make a type `Display`: implement `std::fmt::Display` for it (for an enum, writing each variant's name)"
    )]
    pub trait QueryParam {
        /// The value to encode.
        fn as_display(&self) -> &dyn Display;
    }

    impl<T: Display> QueryParam for T {
        fn as_display(&self) -> &dyn Display {
            self
        }
    }

    /// Checks and passes on a query value.
    pub fn query_param<T: QueryParam>(value: &T) -> &dyn Display {
        value.as_display()
    }

    /// A value of a `#[body]` or `#[form]` argument.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the body of a request",
        label = "a `#[body]` is sent as JSON and a `#[form]` as an HTML form, so its type must implement `serde::Serialize`",
        note = "for a type of your own, add `#[derive(serde::Serialize)]`; for one of another crate, see whether that crate has a `serde` feature"
    )]
    pub trait BodyParam {
        /// `call` with this value as its JSON body.
        fn json_into(&self, call: Call) -> Call;
        /// `call` with this value as its form body.
        fn form_into(&self, call: Call) -> Call;
    }

    impl<T: serde::Serialize + ?Sized> BodyParam for T {
        fn json_into(&self, call: Call) -> Call {
            call.json(self)
        }

        fn form_into(&self, call: Call) -> Call {
            call.form(self)
        }
    }

    /// `call` with a `#[body]` argument's value as its JSON body.
    pub fn json_body<T: BodyParam + ?Sized>(call: Call, value: &T) -> Call {
        value.json_into(call)
    }

    /// `call` with a `#[form]` argument's value as its form body.
    pub fn form_body<T: BodyParam + ?Sized>(call: Call, value: &T) -> Call {
        value.form_into(call)
    }

    /// A value of a `#[body(raw)]` argument: bytes, sent as `application/octet-stream`, or
    /// text, sent as `text/plain; charset=utf-8`, as they are (a `Content-Type` header
    /// argument names another type).
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a raw body",
        label = "a `#[body(raw)]` is sent as it is, so it must be bytes (`bytes::Bytes`, `Vec<u8>`, `&[u8]`, `Box<[u8]>`, `[u8; N]`) or text (`String`, `&str`)",
        note = "for a value sent as JSON, write `#[body]`"
    )]
    pub trait RawBodyParam {
        /// The body, and its type unless an argument gives one.
        fn into_raw_body(self) -> (Bytes, &'static str);
    }

    const OCTETS: &str = "application/octet-stream";
    const TEXT: &str = "text/plain; charset=utf-8";

    impl RawBodyParam for Bytes {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (self, OCTETS)
        }
    }

    impl RawBodyParam for &Bytes {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (self.clone(), OCTETS)
        }
    }

    impl RawBodyParam for Vec<u8> {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (Bytes::from(self), OCTETS)
        }
    }

    impl RawBodyParam for &Vec<u8> {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (Bytes::copy_from_slice(self), OCTETS)
        }
    }

    impl RawBodyParam for &[u8] {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (Bytes::copy_from_slice(self), OCTETS)
        }
    }

    impl RawBodyParam for Box<[u8]> {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (Bytes::from(self), OCTETS)
        }
    }

    impl<const N: usize> RawBodyParam for [u8; N] {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (Bytes::copy_from_slice(&self), OCTETS)
        }
    }

    impl<const N: usize> RawBodyParam for &[u8; N] {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (Bytes::copy_from_slice(self), OCTETS)
        }
    }

    impl RawBodyParam for String {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (Bytes::from(self), TEXT)
        }
    }

    impl RawBodyParam for &String {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (Bytes::copy_from_slice(self.as_bytes()), TEXT)
        }
    }

    impl RawBodyParam for &str {
        fn into_raw_body(self) -> (Bytes, &'static str) {
            (Bytes::copy_from_slice(self.as_bytes()), TEXT)
        }
    }

    /// `call` with a `#[body(raw)]` argument's value as its body.
    pub fn raw_body<T: RawBodyParam>(call: Call, value: T) -> Call {
        let (body, content_type) = value.into_raw_body();
        call.body(body, content_type)
    }

    /// A value of a `#[multipart]` argument.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a multipart body",
        label = "`#[multipart]` arguments are `comms::Multipart` (or `&comms::Multipart`)"
    )]
    pub trait MultipartParam {
        /// The body's parts.
        fn as_multipart(&self) -> &crate::Multipart;
    }

    impl MultipartParam for crate::Multipart {
        fn as_multipart(&self) -> &crate::Multipart {
            self
        }
    }

    impl MultipartParam for &crate::Multipart {
        fn as_multipart(&self) -> &crate::Multipart {
            self
        }
    }

    /// Checks and passes on a `#[multipart]` argument's value.
    pub fn multipart_param<T: MultipartParam>(value: &T) -> &crate::Multipart {
        value.as_multipart()
    }

    /// A value of a `#[header]` argument.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a header value",
        label = "`#[header]` values must implement `std::fmt::Display` (or be an `Option` of such a value)",
        note = "serde's derives do not make a type `Display`: implement `std::fmt::Display` for it (for an enum, writing each variant's name)"
    )]
    pub trait HeaderParam {
        /// The value to send.
        fn as_display(&self) -> &dyn Display;
    }

    impl<T: Display> HeaderParam for T {
        fn as_display(&self) -> &dyn Display {
            self
        }
    }

    /// Checks and passes on a header value.
    pub fn header_param<T: HeaderParam>(value: &T) -> &dyn Display {
        value.as_display()
    }
}
