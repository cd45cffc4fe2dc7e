//! A received response.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::Error;

/// A complete response: status, headers and the whole body.
///
/// Calls that return `comms::Response` get it for any 2xx status; other statuses arrive as
/// [`Error`] variants.
#[derive(Clone, Debug)]
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    method: Method,
    url: reqwest::Url,
}

impl Response {
    pub(crate) fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        method: Method,
        url: reqwest::Url,
    ) -> Response {
        Response {
            status,
            headers,
            body,
            method,
            url,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// Takes the body bytes.
    pub fn into_bytes(self) -> Bytes {
        self.body
    }

    /// The URL that was requested, without its query.
    pub fn url(&self) -> &str {
        crate::executor::without_query(&self.url)
    }

    /// The body as UTF-8 text; [`Error::Decode`] when it is not.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|e| self.decode_error(e))
    }

    /// Decodes the body as JSON into `T`; [`Error::Decode`] when it does not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| self.decode_error(e))
    }

    fn decode_error(&self, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Decode {
            method: Some(self.method.clone()),
            url: Some(self.url().to_owned()),
            source: Box::new(e),
        }
    }
}
