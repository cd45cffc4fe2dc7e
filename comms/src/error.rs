//! The one error type every call returns.

use std::error::Error as StdError;
use std::time::Duration;

use http::{Method, StatusCode};

mod http_error;
mod served;

pub use http_error::HttpError;
pub(crate) use http_error::RequestOf;
#[cfg(feature = "server")]
pub(crate) use http_error::char_floor;

pub use served::error_response;
pub(crate) use served::{message_response, unavailable_response};

/// A boxed error source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// How many bytes of an error response's body are kept in [`HttpError::body`].
pub const BODY_EXCERPT_LIMIT: usize = 1024;

/// The largest `details` member of a received error body that is kept (see
/// [`HttpError::details`]), in bytes of its JSON.
pub const DETAILS_LIMIT: usize = 64 * 1024;

/// Everything a call can fail with.
///
/// Status variants carry an [`HttpError`] (status, the JSON `message` field when the body has
/// one, a bounded excerpt of the body, and the request's method and URL when the error was
/// received). The secret and signatures never appear in any variant, nor in its `Display` or
/// `Debug` output.
///
/// A server handler builds the status variants with [`Error::not_found`] and its siblings; the
/// response it sends for them is decoded by a comms client into the same variant with the same
/// message:
///
/// ```
/// use comms::Error;
/// let err = Error::not_found("no user 7");
/// assert!(matches!(err, Error::NotFound(_)));
/// assert_eq!(err.to_string(), "404 Not Found: no user 7");
/// ```
///
/// Any other error a handler returns is the failure of a call it made, passed on with `?`. The
/// server answers it with its kind's status and standard reason, and nothing of the error
/// itself: 424 Failed Dependency for a 4xx that was received (the dependency refused the
/// request, and would again: callers neither retry a 424 nor count it against their breaker),
/// but a 401, 407, 408, 425 or 429; 502 Bad Gateway for those, any other status variant that was
/// received, [`Error::Transport`] and [`Error::Decode`]; 504 for [`Error::Timeout`]; 503 for
/// [`Error::CircuitOpen`]; 500 for [`Error::Encode`], [`Error::Config`] and the error a call's
/// header hook failed with. A
/// handler that means to pass a dependency's answer on builds it anew, e.g. with
/// [`Error::not_found`].
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
    ///
    /// Its message tells the two apart: `could not connect for GET …` when nothing was sent,
    /// and `connection failed during GET …` when the connection broke, or closed, after it was
    /// made: while the request was sent, before its head arrived, or (for a streamed body)
    /// while the body was read. A response the client could not read as HTTP (a head over
    /// the parser's limits, a status line that is not HTTP's, a bad chunk size) reads
    /// `invalid response to GET …`: the connection held, and the peer answered in a form no
    /// client takes. Its source says what happened underneath.
    #[error("{} {method} {url}", TransportWhen::of(*.connect, &**.source))]
    Transport {
        /// The request's method.
        method: Method,
        /// The request's URL, without its query.
        url: String,
        /// Whether the attempt could not connect, so nothing of its request was sent; `false`
        /// when the connection broke or closed after the request may have been sent (see
        /// [`Error::is_connect`]).
        connect: bool,
        /// What went wrong underneath.
        #[source]
        source: BoxError,
    },
    /// An attempt outlived its timeout, or the call its total deadline.
    ///
    /// A call that had nothing left of its deadline when it began (one made inside a served
    /// request whose own deadline has passed, say) is not sent: `after` is zero, and it reads
    /// `GET … was not sent: no time was left of its deadline`.
    #[error("{method} {url} {}", TimedOut(*.after))]
    Timeout {
        /// The request's method.
        method: Method,
        /// The request's URL, without its query.
        url: String,
        /// The timeout that expired: the attempt timeout, or the call's whole deadline. (A
        /// client given with `http_client` whose own timeout ends an attempt first is reported
        /// with the attempt timeout comms set: comms is not told that client's.)
        after: Duration,
    },
    /// The circuit breaker for the target is open: the call failed fast, without touching the
    /// network.
    #[error("circuit breaker open for {authority}; {}", NextProbe(*.retry_in))]
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
    /// A request or response could not be built (a path value that no URL can carry as a
    /// segment, a header value with a line break, a body that does not serialize). Nothing was
    /// sent.
    #[error("cannot encode: {message}")]
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

/// Constructors of the status variants, for server handlers and mocks. The errors they build
/// were not received: their [`HttpError`] has no request method or URL and an empty body.
impl Error {
    /// [`Error::BadRequest`], 400, with `message`.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::from_status(StatusCode::BAD_REQUEST, message)
    }

    /// [`Error::Unauthorized`], 401, with `message`.
    pub fn unauthorized(message: impl Into<String>) -> Error {
        Error::from_status(StatusCode::UNAUTHORIZED, message)
    }

    /// [`Error::Forbidden`], 403, with `message`.
    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::from_status(StatusCode::FORBIDDEN, message)
    }

    /// [`Error::NotFound`], 404, with `message`.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::from_status(StatusCode::NOT_FOUND, message)
    }

    /// [`Error::Conflict`], 409, with `message`.
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::from_status(StatusCode::CONFLICT, message)
    }

    /// [`Error::UnprocessableEntity`], 422, with `message`.
    pub fn unprocessable(message: impl Into<String>) -> Error {
        Error::from_status(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// [`Error::TooManyRequests`], 429, with `message`. Add the wait the caller should keep
    /// with [`Error::with_retry_after`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = comms::Error::too_many_requests("slow down").with_retry_after(Duration::from_secs(2));
    /// assert_eq!(err.status(), Some(comms::http::StatusCode::TOO_MANY_REQUESTS));
    /// ```
    pub fn too_many_requests(message: impl Into<String>) -> Error {
        Error::from_status(StatusCode::TOO_MANY_REQUESTS, message)
    }

    /// [`Error::Server`], 500, with `message`.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::from_status(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The status variant for `status`, with `message`: the named 4xx variants for their
    /// statuses, [`Error::Server`] for 5xx and [`Error::Status`] for anything else.
    ///
    /// A server sends a status outside 4xx and 5xx as 500: an error is not a success or a
    /// redirect.
    ///
    /// ```
    /// use comms::{Error, http::StatusCode};
    /// let err = Error::from_status(StatusCode::IM_A_TEAPOT, "short and stout");
    /// assert!(matches!(err, Error::Status(_)));
    /// let err = Error::from_status(StatusCode::SERVICE_UNAVAILABLE, "draining");
    /// assert!(matches!(err, Error::Server(_)));
    /// ```
    pub fn from_status(status: StatusCode, message: impl Into<String>) -> Error {
        HttpError::new(status).with_message(message).into()
    }

    /// Sets the wait a server asks for in `Retry-After` when it sends this error (whole
    /// seconds, rounded up). HTTP gives it meaning with 429 and 503; it has no effect on the
    /// variants that carry no [`HttpError`].
    ///
    /// A comms client waits that long before its retry, up to its
    /// [cap](crate::RetryConfig::max_retry_after).
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Error {
        if let Some(e) = self.http_error_mut() {
            e.set_retry_after(wait);
        }
        self
    }

    /// Sets a status variant's details (see [`HttpError::with_details`]): a value of the
    /// service's own, sent as the body's `details` member beside `message`, which a comms client
    /// reads back with [`HttpError::details`]. Another variant is returned as it is.
    ///
    /// ```
    /// use comms::Error;
    ///
    /// #[derive(serde::Serialize)]
    /// struct OutOfStock {
    ///     sku: String,
    ///     available: u32,
    /// }
    ///
    /// let err = Error::conflict("not enough in stock")
    ///     .with_details(OutOfStock { sku: "a-1".into(), available: 3 });
    /// assert_eq!(err.to_string(), "409 Conflict: not enough in stock");
    /// ```
    #[must_use]
    pub fn with_details(mut self, details: impl serde::Serialize) -> Error {
        if let Some(e) = self.http_error_mut() {
            e.set_details(details);
        }
        self
    }
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

    /// A header hook's error, as the call it ended returns it: unchanged, but that a status
    /// variant is no longer taken for one a server handler built (a handler passing it on with
    /// `?` answers a bare 500, not the hook's status and words).
    pub(crate) fn into_hook_failure(mut self) -> Error {
        if let Some(e) = self.http_error_mut() {
            e.set_ended_a_call();
        }
        self
    }

    fn http_error_mut(&mut self) -> Option<&mut HttpError> {
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
            // The variant stands for 429 (and `Server` for 5xx), as `From<HttpError>` sorts them.
            Error::TooManyRequests(_) => {
                crate::retry::policy::is_retryable_status(StatusCode::TOO_MANY_REQUESTS)
            }
            Error::Server(e) => crate::retry::policy::is_retryable_status(e.status()),
            _ => false,
        }
    }

    /// Whether this is an [`Error::Transport`] from an attempt that could not connect: nothing
    /// of its request was sent.
    ///
    /// The error is the last attempt's. An idempotent call that was retried may have been sent
    /// by an earlier attempt; a call that is not idempotent is retried only after connect
    /// errors, so for it `is_connect()` means the request never reached the service.
    ///
    /// ```
    /// use comms::{Error, http::Method};
    /// let refused = Error::Transport {
    ///     method: Method::POST,
    ///     url: "http://orders.internal/orders".into(),
    ///     connect: true,
    ///     source: "connection refused".into(),
    /// };
    /// assert!(refused.is_connect());
    /// assert!(!Error::not_found("no order 7").is_connect());
    /// ```
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Transport { connect: true, .. })
    }

    /// The method of the request the error is about, when it knows one: a received status
    /// variant's (see [`HttpError::method`]), [`Error::Transport`]'s, [`Error::Timeout`]'s, and
    /// [`Error::Decode`]'s for a received response. `None` for errors built by hand,
    /// [`Error::CircuitOpen`] (which names only the authority), [`Error::Encode`] and
    /// [`Error::Config`].
    pub fn method(&self) -> Option<&Method> {
        match self {
            Error::Transport { method, .. } | Error::Timeout { method, .. } => Some(method),
            Error::Decode { method, .. } => method.as_ref(),
            Error::CircuitOpen { .. } | Error::Encode { .. } | Error::Config { .. } => None,
            status => status.http_error().and_then(HttpError::method),
        }
    }

    /// The URL, without its query, of the request the error is about, for the same variants as
    /// [`Error::method`].
    ///
    /// ```
    /// use comms::{Error, HttpError, http::{Method, StatusCode}};
    /// let err: Error = HttpError::new(StatusCode::NOT_FOUND)
    ///     .with_request(Method::GET, "http://users/users/7")
    ///     .into();
    /// assert_eq!(err.method(), Some(&Method::GET));
    /// assert_eq!(err.url(), Some("http://users/users/7"));
    /// assert_eq!(Error::not_found("no user 7").url(), None);
    /// ```
    pub fn url(&self) -> Option<&str> {
        match self {
            Error::Transport { url, .. } | Error::Timeout { url, .. } => Some(url),
            Error::Decode { url, .. } => url.as_deref(),
            Error::CircuitOpen { .. } | Error::Encode { .. } | Error::Config { .. } => None,
            status => status.http_error().and_then(HttpError::url),
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

    /// [`Error::Encode`]: a request could not be written, as `message` says.
    pub fn encode(message: impl Into<String>) -> Error {
        Error::Encode {
            message: message.into(),
        }
    }

    /// [`Error::Timeout`] of a request to `method url` (shown without its query), after
    /// `after`.
    pub(crate) fn timeout(
        method: &Method,
        url: &reqwest::Url,
        after: std::time::Duration,
    ) -> Error {
        Error::Timeout {
            method: method.clone(),
            url: crate::response::shown(url),
            after,
        }
    }

    /// [`Error::Transport`] of a request to `method url` (shown without its query; reqwest's
    /// error carries no URL of its own). `connect`: nothing of the request was sent.
    pub(crate) fn transport(
        method: &Method,
        url: &reqwest::Url,
        e: reqwest::Error,
        connect: bool,
    ) -> Error {
        Error::Transport {
            method: method.clone(),
            url: crate::response::shown(url),
            connect,
            source: Box::new(e.without_url()),
        }
    }

    /// [`Error::Config`]: the setting `key` (a builder key or an environment variable) is
    /// missing or bad, as `message` says. For a header hook or a helper of the user's that
    /// reports its own configuration as comms does.
    ///
    /// ```
    /// let err = comms::Error::config("TOKEN_PATH", "the file is empty");
    /// assert_eq!(err.to_string(), "invalid configuration for `TOKEN_PATH`: the file is empty");
    /// ```
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }
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

/// When a [`Error::CircuitOpen`] breaker admits its next probe, as its message says it.
struct NextProbe(Duration);

/// How long a timed-out call had: none at all, and it was not sent, or its timer's duration.
struct TimedOut(Duration);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_zero() {
            f.write_str("was not sent: no time was left of its deadline")
        } else {
            write!(f, "timed out after {:?}", self.0)
        }
    }
}

/// What a transport error was: no connection, so nothing sent; a response that is not HTTP's;
/// or a connection that failed after it was made.
enum TransportWhen {
    Unconnected,
    Unreadable,
    Broken,
}

impl TransportWhen {
    fn of(connect: bool, source: &(dyn std::error::Error + 'static)) -> TransportWhen {
        if connect {
            TransportWhen::Unconnected
        } else if unreadable(source) {
            TransportWhen::Unreadable
        } else {
            TransportWhen::Broken
        }
    }
}

/// Whether `error`, or an error under it, is hyper refusing what the peer sent as not HTTP
/// (its head, or a chunked body's framing, which its decoder reports as an I/O error of kind
/// invalid input, or invalid data naming a chunk), rather than the connection failing. A TLS
/// error after the handshake is invalid data too, and is not taken for one.
fn unreadable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
            let invalid = |io: &std::io::Error| match io.kind() {
                std::io::ErrorKind::InvalidInput => true,
                std::io::ErrorKind::InvalidData => io
                    .get_ref()
                    .is_some_and(|inner| inner.to_string().contains("chunk")),
                _ => false,
            };
            return hyper.is_parse()
                || std::error::Error::source(hyper)
                    .and_then(|under| under.downcast_ref::<std::io::Error>())
                    .is_some_and(invalid);
        }
        next = error.source();
    }
    false
}

impl std::fmt::Display for TransportWhen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportWhen::Unconnected => "could not connect for",
            TransportWhen::Unreadable => "invalid response to",
            TransportWhen::Broken => "connection failed during",
        })
    }
}

/// An error and the errors under it, joined by `: `, as a log line shows them. An error's own
/// `Display` leaves its source out (the convention of `std::error::Error`, which reporters
/// such as `anyhow` rely on), so a log of it alone says `error decoding response for GET …`
/// and not that a field was missing. A source whose text its error already shows is left out.
pub(crate) struct WithSources<'a>(pub(crate) &'a (dyn StdError + 'static));

impl std::fmt::Display for WithSources<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(error) = next {
            let text = error.to_string();
            if !text.is_empty() && !shown.contains(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            next = error.source();
        }
        Ok(())
    }
}

impl std::fmt::Display for NextProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_zero() {
            // Half-open, its probes all out: the next is admitted when one of them ends.
            f.write_str("waiting for a probe in flight")
        } else {
            write!(f, "next probe in {:?}", self.0)
        }
    }
}

#[cfg(test)]
mod tests;
