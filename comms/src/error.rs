//! The one error type every call returns.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::{Method, StatusCode};

/// A boxed error source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// How many bytes of an error response's body are kept in [`HttpError::body`].
pub const BODY_EXCERPT_LIMIT: usize = 1024;

/// Everything a call can fail with.
///
/// Status variants carry an [`HttpError`] (status, the JSON `message` field when the body has
/// one, a bounded excerpt of the body, and the request's method and URL when the error was
/// received). The secret and signatures never appear in any variant, nor in its `Display` or
/// `Debug` output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 400 Bad Request.
    #[error("{0}")]
    BadRequest(HttpError),
    /// 401 Unauthorized: the callee rejected the signature or does not know this caller.
    #[error("{0}")]
    Unauthorized(HttpError),
    /// 403 Forbidden.
    #[error("{0}")]
    Forbidden(HttpError),
    /// 404 Not Found.
    #[error("{0}")]
    NotFound(HttpError),
    /// 409 Conflict.
    #[error("{0}")]
    Conflict(HttpError),
    /// 422 Unprocessable Entity.
    #[error("{0}")]
    UnprocessableEntity(HttpError),
    /// 429 Too Many Requests (after any retries).
    #[error("{0}")]
    TooManyRequests(HttpError),
    /// Any 5xx (after any retries).
    #[error("{0}")]
    Server(HttpError),
    /// Any other status outside 2xx, including 3xx: redirects are never followed.
    #[error("{0}")]
    Status(HttpError),
    /// The request could not be sent or its response not received (after any retries).
    #[error("error sending request for {method} {url}")]
    Transport {
        /// The request's method.
        method: Method,
        /// The request's URL, without its query.
        url: String,
        /// What went wrong underneath.
        #[source]
        source: BoxError,
    },
    /// An attempt outlived its timeout, or the call its total deadline.
    #[error("{method} {url} timed out after {after:?}")]
    Timeout {
        /// The request's method.
        method: Method,
        /// The request's URL, without its query.
        url: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The circuit breaker for the target is open: the call failed fast, without touching the
    /// network.
    #[error("circuit breaker open for {authority}; next probe in {retry_in:?}")]
    CircuitOpen {
        /// `scheme://host:port` of the target.
        authority: String,
        /// Time until the breaker admits a probe (zero while a probe is in flight).
        retry_in: Duration,
    },
    /// The response body could not be decoded into the expected type, or was too large.
    #[error("error decoding response{}", RequestOf(.method.as_ref(), .url.as_deref()))]
    Decode {
        /// The request's method; `None` for a [`Response`](crate::Response) built by hand.
        method: Option<Method>,
        /// The request's URL, without its query; `None` for a built response.
        url: Option<String>,
        /// What went wrong underneath.
        #[source]
        source: BoxError,
    },
    /// The request could not be built (a path value that no URL can carry as a segment, a
    /// header value with a line break, a body that does not serialize). Nothing was sent.
    #[error("cannot encode request: {message}")]
    Encode {
        /// What could not be encoded, and why.
        message: String,
    },
    /// A missing or invalid setting. `key` names the environment variable or builder key.
    #[error("invalid configuration for `{key}`: {message}")]
    Config {
        /// The environment variable or builder key at fault.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    /// The response status, for the status variants.
    pub fn status(&self) -> Option<StatusCode> {
        self.http_error().map(HttpError::status)
    }

    /// The [`HttpError`] of a status variant.
    pub fn http_error(&self) -> Option<&HttpError> {
        match self {
            Error::BadRequest(e)
            | Error::Unauthorized(e)
            | Error::Forbidden(e)
            | Error::NotFound(e)
            | Error::Conflict(e)
            | Error::UnprocessableEntity(e)
            | Error::TooManyRequests(e)
            | Error::Server(e)
            | Error::Status(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the failure is transient: a transport error, a timeout, 429, or 500/502/503/504.
    ///
    /// Whether the executor actually retried also depends on the method's idempotency, the retry
    /// budget and the configured number of retries.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::TooManyRequests(_) => true,
            Error::Server(e) => is_retryable_status(e.status()),
            _ => false,
        }
    }

    /// Whether this is [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether this is [`Error::CircuitOpen`].
    pub fn is_circuit_open(&self) -> bool {
        matches!(self, Error::CircuitOpen { .. })
    }

    pub(crate) fn encode(message: impl Into<String>) -> Error {
        Error::Encode {
            message: message.into(),
        }
    }

    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Statuses worth another attempt of an idempotent call.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

impl From<HttpError> for Error {
    /// Picks the variant that matches the status, so mocks can build realistic errors.
    fn from(e: HttpError) -> Error {
        match e.status().as_u16() {
            400 => Error::BadRequest(e),
            401 => Error::Unauthorized(e),
            403 => Error::Forbidden(e),
            404 => Error::NotFound(e),
            409 => Error::Conflict(e),
            422 => Error::UnprocessableEntity(e),
            429 => Error::TooManyRequests(e),
            500..=599 => Error::Server(e),
            _ => Error::Status(e),
        }
    }
}

/// A response outside 2xx: what came back and, when it was received, which request it
/// answered.
///
/// An error built with [`HttpError::new`] and no [`with_request`](HttpError::with_request)
/// answered no request: its [`method`](HttpError::method) and [`url`](HttpError::url) are
/// `None`.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpError {
    inner: Box<HttpErrorInner>,
}

#[derive(Clone, PartialEq, Eq)]
struct HttpErrorInner {
    status: StatusCode,
    message: Option<String>,
    body: String,
    /// The request's method and URL, when the error was received.
    request: Option<(Method, String)>,
}

impl HttpError {
    /// An error for `status`, with no message, an empty body and no request.
    ///
    /// ```
    /// use comms::{Error, HttpError, http::{Method, StatusCode}};
    /// let err: Error = HttpError::new(StatusCode::NOT_FOUND)
    ///     .with_request(Method::GET, "http://users/users/7")
    ///     .with_message("no such user")
    ///     .into();
    /// assert!(matches!(err, Error::NotFound(_)));
    /// assert_eq!(err.to_string(), "404 Not Found for GET http://users/users/7: no such user");
    /// ```
    pub fn new(status: StatusCode) -> HttpError {
        HttpError {
            inner: Box::new(HttpErrorInner {
                status,
                message: None,
                body: String::new(),
                request: None,
            }),
        }
    }

    /// Sets the request the error answered: its method and its URL, without the query.
    #[must_use]
    pub fn with_request(mut self, method: Method, url: impl Into<String>) -> HttpError {
        self.inner.request = Some((method, url.into()));
        self
    }

    /// Sets the message (what a JSON body's `message` field said).
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> HttpError {
        self.inner.message = Some(message.into());
        self
    }

    /// Keeps an excerpt of `body`: invalid UTF-8 replaced, at most [`BODY_EXCERPT_LIMIT`] bytes
    /// of text cut at a character boundary, and `…` when something was cut.
    #[must_use]
    pub fn with_body(mut self, body: &[u8]) -> HttpError {
        let cut = &body[..body.len().min(BODY_EXCERPT_LIMIT)];
        let lossy = String::from_utf8_lossy(cut);
        // Replacement characters take three bytes each: bound the text, not just the input.
        let mut end = lossy.len().min(BODY_EXCERPT_LIMIT);
        while !lossy.is_char_boundary(end) {
            end -= 1;
        }
        let mut text = lossy[..end].to_owned();
        let truncated = body.len() > cut.len() || end < lossy.len();
        if truncated {
            // A multi-byte character split by the cut decodes as U+FFFD at the end: drop it.
            if body.len() > cut.len()
                && end == lossy.len()
                && std::str::from_utf8(cut).is_err_and(|e| e.error_len().is_none())
            {
                text.pop();
            }
            text.push('…');
        }
        self.inner.body = text;
        self
    }

    /// Builds the error for a received response, pulling `message` out of a JSON body.
    pub(crate) fn from_response(
        status: StatusCode,
        method: Method,
        url: String,
        body: &[u8],
    ) -> HttpError {
        let err = HttpError::new(status)
            .with_request(method, url)
            .with_body(body);
        match json_message(body) {
            Some(message) => err.with_message(message),
            None => err,
        }
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// The `message` field of a JSON error body, when it had one.
    pub fn message(&self) -> Option<&str> {
        self.inner.message.as_deref()
    }

    /// The start of the response body (see [`HttpError::with_body`]).
    pub fn body(&self) -> &str {
        &self.inner.body
    }

    /// The request's method, when the error was received.
    pub fn method(&self) -> Option<&Method> {
        self.inner.request.as_ref().map(|(method, _)| method)
    }

    /// The request's URL, without its query, when the error was received.
    pub fn url(&self) -> Option<&str> {
        self.inner.request.as_ref().map(|(_, url)| url.as_str())
    }
}

fn json_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        message: Option<serde_json::Value>,
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    match serde_json::from_slice::<Body>(body).ok()?.message? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// ` for METHOD url` when both are known, nothing otherwise.
struct RequestOf<'a>(Option<&'a Method>, Option<&'a str>);

impl fmt::Display for RequestOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(method), Some(url)) => write!(f, " for {method} {url}"),
            (None, Some(url)) => write!(f, " for {url}"),
            (Some(method), None) => write!(f, " for {method}"),
            (None, None) => Ok(()),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        write!(f, "{}{}", i.status, RequestOf(self.method(), self.url()))?;
        if let Some(message) = &i.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("HttpError")
            .field("status", &i.status)
            .field("message", &i.message)
            .field("body", &i.body)
            .field("method", &self.method())
            .field("url", &self.url())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16) -> Error {
        HttpError::new(StatusCode::from_u16(status).unwrap())
            .with_request(Method::GET, "http://x/y")
            .into()
    }

    #[test]
    fn status_maps_to_variant() {
        assert!(matches!(err(400), Error::BadRequest(_)));
        assert!(matches!(err(401), Error::Unauthorized(_)));
        assert!(matches!(err(403), Error::Forbidden(_)));
        assert!(matches!(err(404), Error::NotFound(_)));
        assert!(matches!(err(409), Error::Conflict(_)));
        assert!(matches!(err(422), Error::UnprocessableEntity(_)));
        assert!(matches!(err(429), Error::TooManyRequests(_)));
        assert!(matches!(err(500), Error::Server(_)));
        assert!(matches!(err(599), Error::Server(_)));
        assert!(matches!(err(302), Error::Status(_)));
        assert!(matches!(err(418), Error::Status(_)));
        assert_eq!(err(418).status(), Some(StatusCode::IM_A_TEAPOT));
    }

    #[test]
    fn display_names_the_request_only_when_there_was_one() {
        let built: Error = HttpError::new(StatusCode::NOT_FOUND)
            .with_message("no user 7")
            .into();
        assert_eq!(built.to_string(), "404 Not Found: no user 7");
        let bare: Error = HttpError::new(StatusCode::CONFLICT).into();
        assert_eq!(bare.to_string(), "409 Conflict");
        let received: Error = HttpError::new(StatusCode::NOT_FOUND)
            .with_request(Method::GET, "http://h/users/7")
            .with_message("no user 7")
            .into();
        assert_eq!(
            received.to_string(),
            "404 Not Found for GET http://h/users/7: no user 7"
        );
        let decode = Error::Decode {
            method: Some(Method::POST),
            url: Some("http://h/users".into()),
            source: "eof".into(),
        };
        assert_eq!(
            decode.to_string(),
            "error decoding response for POST http://h/users"
        );
    }

    #[test]
    fn retryable_statuses() {
        for s in [429, 500, 502, 503, 504] {
            assert!(err(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 404, 409, 501, 505, 302] {
            assert!(!err(s).is_retryable(), "{s}");
        }
    }

    #[test]
    fn message_is_extracted_from_json() {
        let e = HttpError::from_response(
            StatusCode::NOT_FOUND,
            Method::GET,
            "http://x/users/1".into(),
            br#" {"message": "no such user", "code": 7}"#,
        );
        assert_eq!(e.message(), Some("no such user"));
        assert_eq!(
            e.to_string(),
            "404 Not Found for GET http://x/users/1: no such user"
        );
        let plain =
            HttpError::from_response(StatusCode::NOT_FOUND, Method::GET, "u".into(), b"nope");
        assert_eq!(plain.message(), None);
        assert_eq!(plain.body(), "nope");
    }

    #[test]
    fn body_excerpt_of_binary_is_bounded() {
        let e = HttpError::new(StatusCode::BAD_GATEWAY).with_body(&[0xff; 5000]);
        assert!(e.body().len() <= BODY_EXCERPT_LIMIT + '…'.len_utf8());
        assert!(e.body().ends_with('…'));
        let short = HttpError::new(StatusCode::BAD_GATEWAY).with_body(b"tiny");
        assert_eq!(short.body(), "tiny");
    }

    #[test]
    fn body_excerpt_is_bounded_at_a_char_boundary() {
        let body = "é".repeat(BODY_EXCERPT_LIMIT);
        let e = HttpError::new(StatusCode::BAD_GATEWAY).with_body(body.as_bytes());
        assert!(e.body().len() <= BODY_EXCERPT_LIMIT + '…'.len_utf8());
        assert!(e.body().ends_with('…'));
        assert!(!e.body().contains('\u{FFFD}'));
    }
}
