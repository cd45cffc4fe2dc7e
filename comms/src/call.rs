//! One call's description: what to send, before signing and retries.

use std::fmt::Display;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method};
use serde::Serialize;

use crate::{Error, Multipart, form, path};

/// A request to make through an [`Executor`](crate::Executor).
///
/// Setters never fail: a bad value (a header with a line break, a body that does not
/// serialize, a path value that cannot be a segment) is kept and returned as
/// [`Error::Encode`] when the call is executed, before anything is sent.
///
/// ```
/// use comms::{Call, http::Method};
/// let call = Call::new(Method::GET, "/users")
///     .segment(42)
///     .query("fields", "name,email")
///     .header("x-request-id", "abc-123")
///     .timeout(std::time::Duration::from_millis(500));
/// ```
///
/// Its `Debug` shows the method, the path, the names of its query pairs and headers and the
/// length of its body, not their values: those often carry credentials or personal data.
#[must_use]
pub struct Call {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    pub(crate) idempotent: Option<bool>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) route: Option<&'static str>,
    /// Whether [`Call::header`] set `Content-Type`, which a JSON or raw body then leaves as
    /// it is.
    content_type_given: bool,
    /// Whether the body is a form or multipart one, whose `Content-Type` is its own.
    pub(crate) content_type_fixed: bool,
    /// Whether the caller ignores a success's body (a generated method returning `()`): one
    /// over the response limit is then no failure.
    pub(crate) body_ignored: bool,
    /// What few calls need, boxed: a call is moved whole (into its future, among others).
    rare: Option<Box<Rare>>,
    /// The first bad value's error, boxed: it is rare, and a call is moved whole.
    pub(crate) error: Option<Box<Error>>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let query_keys: Vec<&str> = self
            .query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').map_or(pair, |(key, _)| key))
            .collect();
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query_keys", &query_keys)
            .field("headers", &crate::header_map::HeaderNames(&self.headers))
            .field("body_len", &self.body.as_ref().map(Bytes::len))
            .field("idempotent", &self.idempotent)
            .field("timeout", &self.timeout)
            .field("route", &self.route)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// The parts of a [`Call`] few calls have.
#[derive(Debug, Default)]
struct Rare {
    /// The query keys set by flattened values (encoded), which no other pair may set.
    flattened: Vec<String>,
    /// A `Content-Type` given beside a form or multipart body, kept aside: refused when the
    /// call is made, unless a JSON or raw body replaces the form or multipart one first.
    given_content_type: Option<HeaderValue>,
}

impl Call {
    /// A call of `method` to `path`, relative to the executor's base URL.
    ///
    /// `path` is sent as it is, so it must already be percent-encoded; add values with
    /// [`Call::segment`], which encodes them.
    ///
    /// `CONNECT` is an [`Error::Encode`] at execution: it asks a proxy for a tunnel, and its
    /// request line names an authority instead of the path a signature covers.
    pub fn new(method: Method, path: impl Into<String>) -> Call {
        let tunnel = method == Method::CONNECT;
        let mut call = Call {
            method,
            path: path.into(),
            query: String::new(),
            headers: HeaderMap::new(),
            body: None,
            idempotent: None,
            timeout: None,
            route: None,
            content_type_given: false,
            content_type_fixed: false,
            body_ignored: false,
            rare: None,
            error: None,
        };
        if tunnel {
            call.fail(Error::encode(
                "a CONNECT call asks for a tunnel: its request line names an authority, not \
                 the path its signature covers",
            ));
        }
        call
    }

    /// A GET call.
    pub fn get(path: impl Into<String>) -> Call {
        Call::new(Method::GET, path)
    }

    /// A POST call.
    pub fn post(path: impl Into<String>) -> Call {
        Call::new(Method::POST, path)
    }

    /// A PUT call.
    pub fn put(path: impl Into<String>) -> Call {
        Call::new(Method::PUT, path)
    }

    /// A PATCH call.
    pub fn patch(path: impl Into<String>) -> Call {
        Call::new(Method::PATCH, path)
    }

    /// A DELETE call.
    pub fn delete(path: impl Into<String>) -> Call {
        Call::new(Method::DELETE, path)
    }

    /// A HEAD call.
    pub fn head(path: impl Into<String>) -> Call {
        Call::new(Method::HEAD, path)
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path built so far, percent-encoded.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query built so far, percent-encoded.
    pub fn query_string(&self) -> &str {
        &self.query
    }

    /// Appends `/` and `value` as one percent-encoded path segment (see [`path::push_segment`]).
    pub fn segment(mut self, value: impl Display) -> Call {
        if let Err(e) = path::push_segment(&mut self.path, &value) {
            self.fail(e);
        }
        self
    }

    /// Appends `value` as trailing segments, keeping its `/` (see [`path::push_trailing`]).
    pub fn trailing(mut self, value: impl Display) -> Call {
        if let Err(e) = path::push_trailing(&mut self.path, &value) {
            self.fail(e);
        }
        self
    }

    /// Appends a query pair; repeat the name for repeated keys. A name that a value given to
    /// [`Call::query_flatten`] sets already is an [`Error::Encode`] at execution.
    pub fn query(mut self, name: &str, value: impl Display) -> Call {
        let start = self.query.len();
        path::push_query(&mut self.query, name, &value);
        if let Some(rare) = self.rare.as_deref().filter(|r| !r.flattened.is_empty()) {
            let added = &self.query[start..];
            let key = form::encoded_keys(added).next().unwrap_or_default();
            if rare.flattened.iter().any(|k| k == key) {
                let error = form::duplicate(key);
                self.query.truncate(start);
                self.fail(error);
            }
        }
        self
    }

    /// Appends the fields of `value` as query pairs: a struct (or map) whose fields are values
    /// (`Display`-like: numbers, strings, booleans, unit enum variants), `Option`s of values
    /// (no pair for `None`) or sequences of values (one pair per item, a repeated key), named
    /// as serde names them (`#[serde(rename)]` is honoured). They are percent-encoded like
    /// [`Call::query`]'s.
    ///
    /// A key may be set by one flattened value or by other pairs, not both: a key another pair
    /// of the call sets, before or after, is an [`Error::Encode`] at execution, and so is a
    /// value that does not serialize to pairs (a nested struct, say). Nothing is sent then.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Filter { q: &'static str, min: Option<u32>, tag: Vec<&'static str> }
    ///
    /// let call = comms::Call::get("/users")
    ///     .query("page", 2)
    ///     .query_flatten(&Filter { q: "a b", min: None, tag: vec!["x", "y"] });
    /// assert_eq!(call.query_string(), "page=2&q=a%20b&tag=x&tag=y");
    /// ```
    pub fn query_flatten<T: Serialize + ?Sized>(mut self, value: &T) -> Call {
        match form::push_flattened(&mut self.query, value) {
            Ok(keys) => self.rare().flattened.extend(keys),
            Err(e) => self.fail(e),
        }
        self
    }

    /// [`Call::query_flatten`], refusing a key among `plain` (see `__private::query_flatten`).
    pub(crate) fn query_flatten_beside<T: Serialize + ?Sized>(
        self,
        value: &T,
        plain: &[&str],
    ) -> Call {
        let before = self.rare.as_ref().map_or(0, |r| r.flattened.len());
        let mut call = self.query_flatten(value);
        let added = call
            .rare
            .as_ref()
            .map_or(&[][..], |r| &r.flattened[before..]);
        let clash = added.iter().find_map(|key| {
            let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            plain.iter().find(|name| **name == key).copied()
        });
        if let Some(name) = clash {
            call.fail(Error::encode(format!(
                "query key `{name}` is a field of a flattened value and the name of a plain \
                 `#[query]` argument: a server could not tell which of the two it fills"
            )));
        }
        call
    }

    /// Adds a header, which the signature covers. A `Content-Type` given here is sent in place
    /// of the one a JSON or raw body sets ([`Call::json`], [`Call::body`]), whether the body is
    /// set before or after it; a form or multipart body's is its own (a multipart one's names
    /// its boundary), and giving one beside it is an [`Error::Encode`] at execution. A name or
    /// value that HTTP cannot carry (a line break, say, or white space at either end, which a
    /// receiver strips), a value outside ASCII (which a signature cannot cover), a name comms
    /// sets itself (the signature's headers, `Host`, `Content-Length`, `Transfer-Encoding`, and
    /// those it writes from the call's deadline and trace context: `Comms-Deadline-Ms`,
    /// `traceparent`, `tracestate`), or a hop-by-hop one (`Connection`, `TE`, `Upgrade`, ...,
    /// which an intermediary removes), is an [`Error::Encode`] at execution. An `Idempotency-Key` may be given: the call's own key,
    /// sent on every attempt.
    pub fn header(mut self, name: &str, value: impl Display) -> Call {
        use crate::header_map::{Refusal, checked};
        use crate::signing::{is_context, is_hop_by_hop, is_reserved};
        match checked(name, value.to_string(), |n| {
            is_reserved(n) || is_hop_by_hop(n) || is_context(n)
        }) {
            // The caller's `Content-Type` replaces a JSON or raw body's, set before or after
            // it; beside a form or multipart body it is refused when the call is made (a body
            // set after it may still replace that one).
            Ok((name, value)) if name == CONTENT_TYPE && !self.content_type_given => {
                self.content_type_given = true;
                if self.content_type_fixed {
                    self.rare().given_content_type = Some(value);
                } else {
                    self.headers.insert(name, value);
                }
            }
            Ok((name, value)) => {
                self.headers.append(name, value);
            }
            Err(Refusal::Refused(name)) if is_hop_by_hop(&name) => {
                self.fail(Error::encode(format!(
                    "`{name}` is a hop-by-hop header, which an intermediary removes: a \
                     signature covering it would fail on the way"
                )))
            }
            Err(Refusal::Refused(name)) if is_context(&name) => self.fail(Error::encode(format!(
                "`{name}` is written by comms on every attempt, from the call's deadline \
                     or trace context, and cannot be set by a call: give it a deadline with \
                     `CallOptions::deadline`"
            ))),
            Err(Refusal::Refused(name)) => self.fail(Error::encode(format!(
                "`{name}` is set by comms itself and cannot be set by a call"
            ))),
            Err(Refusal::Name) => self.fail(Error::encode(format!(
                "`{name}` is not a valid header name"
            ))),
            Err(Refusal::Value(name, why)) => {
                self.fail(Error::encode(format!("the value of header `{name}` {why}")))
            }
        }
        self
    }

    /// Sets the body to `value` serialized as JSON, with `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Call {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                self.body_content_type(HeaderValue::from_static("application/json"));
                self.body = Some(Bytes::from(bytes));
            }
            Err(e) => self.fail(Error::encode(format!("the body does not serialize: {e}"))),
        }
        self
    }

    /// Sets the body to `value` as an HTML form, `application/x-www-form-urlencoded` (that
    /// `Content-Type` set), with the pairs [`Call::query_flatten`] would make of it. A value
    /// that does not serialize to pairs is an [`Error::Encode`] at execution.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Login { user: &'static str, remember: bool }
    ///
    /// let call = comms::Call::post("/login").form(&Login { user: "ada b", remember: true });
    /// ```
    pub fn form<T: Serialize + ?Sized>(mut self, value: &T) -> Call {
        match form::body(value) {
            Ok(text) => {
                self.own_content_type(HeaderValue::from_static(
                    "application/x-www-form-urlencoded",
                ));
                self.body = Some(Bytes::from(text));
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// Sets the body to `form` as `multipart/form-data`, with a fresh random boundary in its
    /// `Content-Type`. The body is built here, whole: every attempt sends the same bytes,
    /// covered by the signature through their `Content-Digest`. A part content type that a
    /// header cannot carry is an [`Error::Encode`] at execution.
    ///
    /// ```
    /// use comms::Multipart;
    ///
    /// let call = comms::Call::post("/photos")
    ///     .idempotent(true) // resent on a failure only when marked so (or a PUT)
    ///     .multipart(&Multipart::new()
    ///         .text("title", "Holiday")
    ///         .file("photo", "beach.jpg", "image/jpeg", vec![0xff, 0xd8, 0xff]));
    /// ```
    pub fn multipart(mut self, form: &Multipart) -> Call {
        match form.encode() {
            Ok((content_type, body)) => {
                self.own_content_type(content_type);
                self.body = Some(body);
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// Sets the body to raw bytes with the given content type. One that a header cannot carry
    /// as it is (a control character, or white space at either end, which a receiver strips)
    /// is an [`Error::Encode`] at execution.
    pub fn body(mut self, bytes: impl Into<Bytes>, content_type: &str) -> Call {
        let padded = crate::header_map::is_padded(content_type.as_bytes());
        match HeaderValue::from_str(content_type) {
            Ok(value) if !padded => {
                self.body_content_type(value);
                self.body = Some(bytes.into());
            }
            _ => self.fail(Error::encode(format!(
                "`{content_type}` is not a valid content type"
            ))),
        }
        self
    }

    /// Marks the call as safe (`true`) or unsafe (`false`) to repeat, overriding the method's
    /// default. A POST or PATCH marked idempotent is retried like a PUT and carries one
    /// `Idempotency-Key` header, the same on every attempt, so the server can deduplicate.
    pub fn idempotent(mut self, idempotent: bool) -> Call {
        self.idempotent = Some(idempotent);
        self
    }

    /// The timeout of each attempt of this call, instead of the executor's. More than zero:
    /// a call whose attempt timeout is zero would end every attempt before its request was
    /// sent, and count each against the target's breaker, so it fails with
    /// [`Error::Config`] instead, unsent.
    pub fn timeout(mut self, timeout: Duration) -> Call {
        self.timeout = Some(timeout);
        self
    }

    /// The route template (`/users/<id>`) reported in tracing instead of the concrete path.
    pub fn route(mut self, template: &'static str) -> Call {
        self.route = Some(template);
        self
    }

    /// Whether the call's `Content-Type` is only the one its JSON or raw body implies: not one
    /// the caller gave, nor a form's or multipart body's own. A view's or a default one
    /// replaces it.
    pub(crate) fn content_type_implied(&self) -> bool {
        self.body.is_some() && !self.content_type_given && !self.content_type_fixed
    }

    /// Sets a JSON or raw body's `Content-Type`, unless the caller gave one.
    fn body_content_type(&mut self, value: HeaderValue) {
        self.content_type_fixed = false;
        match self.rare.as_mut().and_then(|r| r.given_content_type.take()) {
            Some(given) => {
                self.headers.insert(CONTENT_TYPE, given);
            }
            None if !self.content_type_given => {
                self.headers.insert(CONTENT_TYPE, value);
            }
            None => {}
        }
    }

    /// Sets a form or multipart body's `Content-Type`, which no other may replace: one the
    /// caller gave is kept aside, and refused when the call is made.
    fn own_content_type(&mut self, value: HeaderValue) {
        if self.content_type_given && !self.content_type_fixed {
            let given = self.headers.remove(CONTENT_TYPE);
            self.rare().given_content_type = given;
        }
        self.content_type_fixed = true;
        self.headers.insert(CONTENT_TYPE, value);
    }

    /// The call's first error, taken when it is made: a bad value's, or a `Content-Type`
    /// given beside a form or multipart body.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        if let Some(e) = self.error.take() {
            return Some(*e);
        }
        self.rare
            .as_mut()
            .and_then(|r| r.given_content_type.take())
            .map(|_| own_content_type())
    }

    /// The rare parts, made when first needed.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    fn fail(&mut self, e: Error) {
        self.error.get_or_insert_with(|| Box::new(e));
    }
}

/// The error of a `Content-Type` given beside a form or multipart body.
fn own_content_type() -> Error {
    Error::encode(
        "a form or multipart body's `Content-Type` is its own (a multipart one names its \
         boundary): it cannot be set with `Call::header`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_types(call: &Call) -> Vec<&str> {
        call.headers
            .get_all(CONTENT_TYPE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn debug_shows_names_not_values() {
        let call = Call::post("/login")
            .query("user", "alice")
            .query("token", "q-SECRET")
            .header("authorization", "Bearer h-SECRET")
            .json(&serde_json::json!({"password": "b-SECRET"}));
        let shown = format!("{call:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        for part in [
            "POST",
            "/login",
            "\"user\", \"token\"",
            "authorization",
            "body_len: Some(23)",
        ] {
            assert!(shown.contains(part), "{part} in {shown}");
        }
    }

    #[test]
    fn a_raw_bodys_content_type_a_header_cannot_carry_as_it_is_is_an_encode_error() {
        for bad in [" text/plain", "text/plain ", "text/plain\r\nx: y"] {
            let mut call = Call::post("/x").body("x", bad);
            assert!(
                matches!(call.take_error(), Some(Error::Encode { .. })),
                "{bad:?}"
            );
        }
        assert!(
            Call::post("/x")
                .body("x", "text/plain")
                .take_error()
                .is_none()
        );
    }

    #[test]
    fn a_content_type_given_replaces_the_bodys_before_or_after_it() {
        let merge = "application/merge-patch+json";
        let before = Call::patch("/x").header("Content-Type", merge).json(&1);
        let after = Call::patch("/x").json(&1).header("content-type", merge);
        for call in [&before, &after] {
            assert_eq!(content_types(call), [merge]);
            assert!(call.error.is_none());
        }
        assert_eq!(
            content_types(&Call::post("/x").json(&1)),
            ["application/json"]
        );
        // A form's or multipart body's is its own, before or after.
        let multipart = crate::Multipart::new().text("a", "b");
        for call in [
            Call::post("/x")
                .header("content-type", "a/b")
                .multipart(&multipart),
            Call::post("/x")
                .multipart(&multipart)
                .header("content-type", "a/b"),
            Call::post("/x")
                .header("content-type", "a/b")
                .form(&[("a", "b")]),
            Call::post("/x")
                .form(&[("a", "b")])
                .header("content-type", "a/b"),
        ] {
            let mut call = call;
            assert_eq!(content_types(&call).len(), 1);
            assert!(matches!(call.take_error(), Some(Error::Encode { .. })));
        }
        // Replacing a form body with a JSON one lets a given type through again, before or
        // after.
        for mut replaced in [
            Call::post("/x")
                .form(&[("a", "b")])
                .json(&1)
                .header("content-type", merge),
            Call::post("/x")
                .header("content-type", merge)
                .form(&[("a", "b")])
                .json(&1),
        ] {
            assert!(replaced.take_error().is_none());
            assert_eq!(content_types(&replaced), [merge]);
        }
        // Given twice, it is two values, which the signature refuses at execution.
        let twice = Call::post("/x")
            .header("content-type", "a/b")
            .header("content-type", "c/d");
        assert_eq!(content_types(&twice), ["a/b", "c/d"]);
    }
}
