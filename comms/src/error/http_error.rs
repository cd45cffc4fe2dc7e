//! [`HttpError`]: a response outside 2xx, what it said, and which request it answered.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};

use super::BODY_EXCERPT_LIMIT;

/// A response outside 2xx: what came back and, when it was received, which request it
/// answered.
///
/// An error a server handler builds ([`Error::not_found`](super::Error::not_found) and its siblings, or
/// [`HttpError::new`]) answered no request: its [`method`](HttpError::method) and
/// [`url`](HttpError::url) are `None`.
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
    /// The wait a server asks for in `Retry-After`: when it sends the error (set with
    /// `Error::with_retry_after`), or as the received response's header said.
    retry_after: Option<Duration>,
    /// The received response's headers (none for a built error).
    headers: HeaderMap,
    /// Whether the error ended a call without being received: a header hook's. A server
    /// handler passing it on answers with none of it, as for a received one.
    ended_a_call: bool,
    /// The JSON text of the body's `details` member (see [`HttpError::details`]).
    details: Option<Box<str>>,
}

impl HttpError {
    /// Asks the client to wait `wait` before trying again (`Retry-After`, when served).
    pub(crate) fn set_retry_after(&mut self, wait: Duration) {
        self.inner.retry_after = Some(wait);
    }

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
                retry_after: None,
                headers: HeaderMap::new(),
                ended_a_call: false,
                details: None,
            }),
        }
    }

    /// Sets the request the error answered: its method and its URL, without the query. An
    /// error with a request was received, so a server handler that returns it answers 502
    /// Bad Gateway (see [`Error`](super::Error)).
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

    /// Sets the error's details: a value of the service's own that says more than its message (a
    /// code, the fields at fault, what there is instead), sent as the JSON body's `details` member
    /// beside `message`, and read back by a comms client with [`details`](Self::details) (up to
    /// [`DETAILS_LIMIT`](super::DETAILS_LIMIT) of JSON: larger ones are not kept, and read back as
    /// none). A value that does not serialize as JSON (a map with keys that are not strings) is
    /// left out, and said so in an `ERROR` log.
    #[must_use]
    pub fn with_details(mut self, details: impl serde::Serialize) -> HttpError {
        self.set_details(details);
        self
    }

    /// [`with_details`](Self::with_details), in place.
    pub(crate) fn set_details(&mut self, details: impl serde::Serialize) {
        self.inner.details = match serde_json::to_string(&details) {
            Ok(json) => Some(json.into()),
            Err(e) => {
                tracing::error!(error = %e, "an error's details do not serialize as JSON");
                None
            }
        };
    }

    /// The details the error's JSON body carried in its `details` member (up to
    /// [`DETAILS_LIMIT`](super::DETAILS_LIMIT) bytes of it), decoded as `T`: `Ok(None)` when it had
    /// none, and [`Error::Decode`](super::Error::Decode) when they are not a `T`. Those of an error
    /// built with [`with_details`](Self::with_details) are read back the same way.
    ///
    /// ```
    /// use comms::Error;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct OutOfStock {
    ///     available: u32,
    /// }
    ///
    /// let err = Error::conflict("not enough in stock").with_details(OutOfStock { available: 3 });
    /// let details = err.http_error().unwrap().details::<OutOfStock>().unwrap();
    /// assert_eq!(details, Some(OutOfStock { available: 3 }));
    /// ```
    pub fn details<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, super::Error> {
        let Some(json) = &self.inner.details else {
            return Ok(None);
        };
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| super::Error::Decode {
                method: self.method().cloned(),
                url: self.url().map(str::to_owned),
                source: e.into(),
            })
    }

    /// The JSON text of the details, for the response a server sends.
    pub(crate) fn details_json(&self) -> Option<&str> {
        self.inner.details.as_deref()
    }

    /// Keeps an excerpt of `body`: invalid UTF-8 replaced, at most [`BODY_EXCERPT_LIMIT`] bytes
    /// of text cut at a character boundary, and `…` when something was cut.
    #[must_use]
    pub fn with_body(mut self, body: &[u8]) -> HttpError {
        let cut = &body[..body.len().min(BODY_EXCERPT_LIMIT)];
        let lossy = String::from_utf8_lossy(cut);
        // Replacement characters take three bytes each: bound the text, not just the input.
        let end = char_floor(&lossy, BODY_EXCERPT_LIMIT);
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
        let mut err = HttpError::new(status)
            .with_request(method, url)
            .with_body(body);
        let (message, details) = json_members(body);
        if let Some(message) = message {
            err = err.with_message(bounded(message));
        }
        err.inner.details = details;
        err
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// The `message` field of a JSON error body, when it had one: a received one cut at
    /// [`BODY_EXCERPT_LIMIT`] bytes, with `…`. (`Display` shows it with its control characters,
    /// line separators and bidirectional formatting characters escaped.)
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

    /// Whether the error answered a request: it was received, not built.
    pub(crate) fn is_received(&self) -> bool {
        self.inner.request.is_some()
    }

    /// Marks the error as the end of a call it did not answer (see [`Self::ended_a_call`]).
    pub(crate) fn set_ended_a_call(&mut self) {
        self.inner.ended_a_call = true;
    }

    /// Whether the error ended a call without being received (a header hook's): a handler
    /// passing it on did not build it.
    pub(crate) fn ended_a_call(&self) -> bool {
        self.inner.ended_a_call
    }

    /// The wait the server asked for: a received response's `Retry-After` (its seconds, or
    /// the time from its arrival to the date it gives), or what a server handler set with
    /// [`Error::with_retry_after`](super::Error::with_retry_after). A call retries only within
    /// [`RetryConfig::max_retry_after`](crate::RetryConfig::max_retry_after); a longer wait
    /// ends it with this error, for the caller to wait out or queue.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The received response's headers: its `Location` for a 3xx (redirects are never
    /// followed), its `WWW-Authenticate` for a 401, a request id to quote. Empty for an error
    /// that was built, not received. (`Debug` shows their names, not their values.)
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }

    /// Keeps a received response's headers, and the wait its `Retry-After` asks for.
    pub(crate) fn set_received_headers(
        &mut self,
        headers: HeaderMap,
        retry_after: Option<Duration>,
    ) {
        self.inner.headers = headers;
        self.inner.retry_after = retry_after;
    }
}

/// A received message cut, as the body's excerpt is, to at most [`BODY_EXCERPT_LIMIT`] bytes
/// at a character boundary, with `…` when something was cut: it is shown and logged with the
/// error, and the response may be as large as the call allows.
fn bounded(mut message: String) -> String {
    if message.len() > BODY_EXCERPT_LIMIT {
        message.truncate(char_floor(&message, BODY_EXCERPT_LIMIT));
        message.push('…');
    }
    message
}

/// The largest character boundary of `text` at or before `at` (its end, when it is shorter).
pub(crate) fn char_floor(text: &str, at: usize) -> usize {
    let mut end = at.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// The `message` and `details` of a JSON object body: the message a string as it is, another value
/// as compact JSON; the details as the JSON text they were sent as, when they are not `null` and
/// fit in [`DETAILS_LIMIT`](super::DETAILS_LIMIT). Both are first taken as the text they were sent
/// as, so a member of any other kind costs no more than its bytes (an array of a million numbers is
/// not built as a million values).
fn json_members(body: &[u8]) -> (Option<String>, Option<Box<str>>) {
    let body = crate::response::json_text(body);
    // Each member read on its own, so that one the body has twice (which makes serde refuse
    // the struct) costs only that member.
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        message: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Details<'a> {
        #[serde(borrow)]
        details: Option<&'a serde_json::value::RawValue>,
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return (None, None);
    }
    let message = serde_json::from_slice::<Message<'_>>(body)
        .ok()
        .and_then(|m| m.message)
        .and_then(json_message);
    let details = serde_json::from_slice::<Details<'_>>(body)
        .ok()
        .and_then(|d| d.details)
        .map(serde_json::value::RawValue::get)
        .filter(|raw| *raw != "null" && raw.len() <= super::DETAILS_LIMIT)
        .map(Box::from);
    (message, details)
}

/// A `message` member: a string as it is, another value as compact JSON, cut as
/// [`bounded`] cuts any message.
fn json_message(raw: &serde_json::value::RawValue) -> Option<String> {
    let raw = raw.get();
    if raw.starts_with('"') {
        serde_json::from_str(raw).ok()
    } else if raw.len() <= BODY_EXCERPT_LIMIT {
        serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .map(|value| value.to_string())
    } else {
        // Cut to the limit as `bounded` cuts any message; whitespace stays as it was sent.
        Some(raw[..char_floor(raw, BODY_EXCERPT_LIMIT + 1)].to_owned())
    }
}

/// ` for METHOD url` when both are known, nothing otherwise.
pub(crate) struct RequestOf<'a>(pub(crate) Option<&'a Method>, pub(crate) Option<&'a str>);

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
            // Control characters escaped: a line break sent in a message must not start a line
            // of its own in a log.
            f.write_str(": ")?;
            let mut rest = message.as_str();
            while let Some(at) = rest.find(shown_escaped) {
                let c = rest[at..].chars().next().expect("found");
                write!(f, "{}{}", &rest[..at], c.escape_default())?;
                rest = &rest[at + c.len_utf8()..];
            }
            f.write_str(rest)?;
        }
        if i.ended_a_call {
            // Without it, a hook's own error reads as the target's answer.
            f.write_str(" (the call's header hook failed; nothing was sent)")?;
        }
        Ok(())
    }
}

/// Whether `Display` shows `c` escaped: control characters, the line and paragraph separators
/// (which some log viewers break lines at), and the bidirectional formatting characters (which
/// reorder how the rest of a line reads, to hide or fake what follows).
fn shown_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Details as `Debug` shows them: their start, as the body's excerpt is cut (a received
/// error's details may be up to [`DETAILS_LIMIT`](super::DETAILS_LIMIT) long).
struct Excerpt<'a>(&'a str);

impl fmt::Debug for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = char_floor(self.0, BODY_EXCERPT_LIMIT);
        match end < self.0.len() {
            true => write!(f, "{:?}…", &self.0[..end]),
            false => write!(f, "{:?}", self.0),
        }
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
            .field("retry_after", &i.retry_after)
            .field("headers", &crate::header_map::HeaderNames(&i.headers))
            .field("details", &i.details.as_deref().map(Excerpt))
            .finish()
    }
}

/// An `HttpError` alone is an error too: a helper may return one, boxed or with `?`, before it
/// becomes the [`Error`](super::Error) variant its status names.
impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_a_string_or_other_json_compacted() {
        let cases = [
            (r#"{"message":"no user 7"}"#, Some("no user 7")),
            (r#"{"message":"a\"b\u00e9"}"#, Some("a\"bé")),
            (r#"{"message":null}"#, None),
            (r#"{"other":1}"#, None),
            (r#"{"message": 42}"#, Some("42")),
            (
                r#"{"message": {"code": 1, "why": ["x"]}}"#,
                Some(r#"{"code":1,"why":["x"]}"#),
            ),
            (r#"{"message":"x""#, None),
            (r#"["message"]"#, None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                json_members(body.as_bytes()).0.as_deref(),
                expected,
                "{body}"
            );
        }
    }

    /// `details` is kept as the JSON text it came as, but `null` and one over the limit, and
    /// decoded as the caller asks; a body that is no JSON object has none.
    #[test]
    fn details_are_kept_as_sent_and_decoded_on_demand() {
        let received = |body: &str| {
            HttpError::from_response(
                StatusCode::CONFLICT,
                Method::POST,
                "http://h/orders".into(),
                body.as_bytes(),
            )
        };
        let err = received(r#"{"message":"short","details":{"available": 3,"sku":"a-1"}}"#);
        assert_eq!(err.message(), Some("short"));
        assert_eq!(err.details_json(), Some(r#"{"available": 3,"sku":"a-1"}"#));
        let value = err.details::<serde_json::Value>().unwrap().unwrap();
        assert_eq!(value["available"], 3);
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Other {
            missing: String,
        }
        let wrong = err.details::<Other>().unwrap_err();
        assert!(
            matches!(wrong, super::super::Error::Decode { .. }),
            "{wrong:?}"
        );
        assert!(
            wrong.to_string().contains("POST http://h/orders"),
            "{wrong}"
        );

        for body in [
            r#"{"message":"m"}"#,
            r#"{"message":"m","details":null}"#,
            r#"["details"]"#,
            "details",
        ] {
            let err = received(body);
            assert_eq!(err.details_json(), None, "{body}");
            assert!(
                matches!(err.details::<serde_json::Value>(), Ok(None)),
                "{body}"
            );
        }
        // Twice: the message stays.
        let twice = received(r#"{"message":"m","details":{"a":1},"details":{"a":2}}"#);
        assert_eq!(twice.message(), Some("m"));
        // Debug shows a long one's start only.
        let long = format!(r#"{{"message":"m","details":"{}"}}"#, "y".repeat(4096));
        let shown = format!("{:?}", received(&long));
        assert!(shown.len() < 3 * BODY_EXCERPT_LIMIT, "{}", shown.len());
        assert!(shown.contains("yyy…"), "{shown}");
        let big = format!(
            r#"{{"message":"m","details":"{}"}}"#,
            "x".repeat(super::super::DETAILS_LIMIT)
        );
        let err = received(&big);
        assert_eq!(err.details_json(), None);
        assert_eq!(err.message(), Some("m"));
    }

    /// A large message of another kind is taken as the text it was sent as, cut, never built
    /// as JSON values (an array of a million numbers would cost far more than its bytes).
    #[test]
    fn a_large_message_that_is_no_string_is_cut_as_sent() {
        let body = format!(r#"{{"message": [0{}]}}"#, ", 0".repeat(1_000_000));
        let message = json_members(body.as_bytes()).0.unwrap();
        assert_eq!(message.len(), BODY_EXCERPT_LIMIT + 1);
        assert!(message.starts_with("[0, 0, 0"), "{message}");
        let err = HttpError::from_response(
            StatusCode::BAD_REQUEST,
            Method::GET,
            "http://h/x".into(),
            body.as_bytes(),
        );
        assert_eq!(
            err.message().map(str::len),
            Some(BODY_EXCERPT_LIMIT + '…'.len_utf8())
        );
    }
}
