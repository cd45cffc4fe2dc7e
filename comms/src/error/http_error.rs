//! [`HttpError`]: a response outside 2xx, what it said, and which request it answered.

use std::fmt;
use std::time::Duration;

use http::{Method, StatusCode};

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
    /// The wait a server asks for in `Retry-After` when it sends the error.
    retry_after: Option<Duration>,
    /// Whether the error ended a call without being received: a header hook's. A server
    /// handler passing it on answers with none of it, as for a received one.
    ended_a_call: bool,
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
                ended_a_call: false,
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
        let err = HttpError::new(status)
            .with_request(method, url)
            .with_body(body);
        match json_message(body) {
            Some(message) => err.with_message(bounded(message)),
            None => err,
        }
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

    /// The wait set with [`Error::with_retry_after`](super::Error::with_retry_after).
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
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

/// The `message` of a JSON object body: a string as it is, another value as compact JSON. The
/// value is first taken as the text it was sent as, so a message of any other kind costs no
/// more than its bytes (an array of a million numbers is not built as a million values).
fn json_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        message: Option<&'a serde_json::value::RawValue>,
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    let raw = serde_json::from_slice::<Body<'_>>(body)
        .ok()?
        .message?
        .get();
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
            .finish()
    }
}

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
            assert_eq!(json_message(body.as_bytes()).as_deref(), expected, "{body}");
        }
    }

    /// A large message of another kind is taken as the text it was sent as, cut, never built
    /// as JSON values (an array of a million numbers would cost far more than its bytes).
    #[test]
    fn a_large_message_that_is_no_string_is_cut_as_sent() {
        let body = format!(r#"{{"message": [0{}]}}"#, ", 0".repeat(1_000_000));
        let message = json_message(body.as_bytes()).unwrap();
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
