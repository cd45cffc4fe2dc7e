//! Typed, signed, resilient clients for calls between services.
//!
//! Declare the remote service as a trait and let [`service_client`] generate the client:
//!
//! ```no_run
//! use comms::{service_client, Error};
//! # #[derive(serde::Deserialize)] pub struct User { pub id: u64 }
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
//! Every call, generated or written by hand over [`Executor`], takes the same path:
//! the target's [circuit breaker](BreakerConfig) admits it or fails it fast, each attempt is
//! [signed](signing) afresh (HMAC-SHA256 over method, path, query, body, caller, time and a
//! nonce), sent with a timeout, classified, and [retried](RetryConfig) with jittered backoff
//! when that is safe. Failures arrive as [`Error`] variants that say what happened.
//!
//! The receiving side checks those signatures with [`verify::Verifier`], directly or as a
//! tower layer.
//!
//! # Features
//!
//! - `rustls` (default): TLS for `https://` base URLs through rustls.
//! - `native-tls`: TLS through the platform's library instead.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod breaker;
mod call;
mod client;
mod error;
mod executor;
pub mod path;
mod response;
mod retry;
pub mod signing;
pub mod verify;

pub use breaker::BreakerConfig;
pub use call::Call;
pub use client::ClientBuilder;
pub use error::{BODY_EXCERPT_LIMIT, BoxError, Error, HttpError};
pub use executor::{
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, Executor, ExecutorBuilder, shared_http_client,
};
pub use response::Response;
pub use retry::RetryConfig;
pub use signing::{Secret, Signing};

/// Generates a typed client from an annotated trait. See the [crate documentation](crate).
pub use comms_macros::service_client;

/// The `http` crate, for methods, status codes and headers.
pub use http;

/// Support for generated code. Not public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::client::{ClientDefaults, FromExecutor};
    pub use crate::path::{push_query, push_segment, push_trailing};
    pub use crate::{Call, ClientBuilder, Error, Executor, Response, Signing};
    pub use core::fmt::Display;
    pub use core::future::Future;
    pub use core::marker::Send;
    pub use core::result::Result;
    pub use http::Method;
    pub use serde::Serialize;
    pub use serde::de::DeserializeOwned;
    pub use std::time::Duration;

    /// Decodes a JSON body.
    pub fn decode_json<T: DeserializeOwned>(response: Response) -> Result<T, Error> {
        response.json()
    }

    /// Ignores the body.
    pub fn decode_unit(_: Response) -> Result<(), Error> {
        Ok(())
    }

    /// Returns the response as it is.
    pub fn decode_response(response: Response) -> Result<Response, Error> {
        Ok(response)
    }

    /// Appends the items of a repeated query argument.
    pub fn push_query_each<I>(query: &mut String, name: &str, values: I)
    where
        I: IntoIterator,
        I::Item: Display,
    {
        for value in values {
            push_query(query, name, &value);
        }
    }

    /// Compile-time check that a path or query argument can be written.
    pub fn require_display<T: Display + ?Sized>(_: &T) {}

    /// Compile-time check that a body argument serializes.
    pub fn require_serialize<T: Serialize + ?Sized>(_: &T) {}
}
