//! A complete response: received by a call, or built by a server handler; and the URL of a
//! request as responses and errors show it (without its query).

use std::fmt::Display;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::header_map::HeaderNames;

/// A complete response: status, headers and the whole body.
///
/// Calls that return `comms::Response` get it for any 2xx status; other statuses arrive as
/// [`Error`] variants. A server handler builds one with [`Response::builder`]; a built response
/// answered no request, so its [`method`](Response::method) and [`url`](Response::url) are
/// `None`.
///
/// Its `Debug` shows the URL without its query and the headers' names, not their values: a
/// signed URL's query and a response's cookies are credentials.
#[derive(Clone)]
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// The request's method and URL, when the response was received.
    request: Option<(Method, reqwest::Url)>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &HeaderNames(&self.headers))
            .field("body_len", &self.body.len())
            .field("method", &self.method())
            .field("url", &self.url())
            .finish()
    }
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
            request: Some((method, url)),
        }
    }

    /// Starts a response with `status`, no headers and an empty body.
    ///
    /// ```
    /// use comms::{Response, http::StatusCode};
    /// let response = Response::builder(StatusCode::CREATED)
    ///     .header("location", "/users/7")
    ///     .json(&serde_json::json!({"id": 7}))
    ///     .build()?;
    /// assert_eq!(response.status(), StatusCode::CREATED);
    /// assert_eq!(response.headers()["content-type"], "application/json");
    /// assert_eq!(response.bytes().as_ref(), br#"{"id":7}"#);
    /// assert_eq!(response.url(), None);
    ///
    /// // A bad header is an error from `build`, not a panic.
    /// let bad = Response::builder(StatusCode::OK).header("x-note", "line\nbreak").build();
    /// assert!(matches!(bad, Err(comms::Error::Encode { .. })));
    /// # Ok::<(), comms::Error>(())
    /// ```
    pub fn builder(status: StatusCode) -> ResponseBuilder {
        ResponseBuilder {
            response: Response {
                status,
                headers: HeaderMap::new(),
                body: Bytes::new(),
                request: None,
            },
            error: None,
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

    /// The status, the headers and the body.
    pub(crate) fn into_parts(self) -> (StatusCode, HeaderMap, Bytes) {
        (self.status, self.headers, self.body)
    }

    /// The body bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// Takes the body bytes.
    pub fn into_bytes(self) -> Bytes {
        self.body
    }

    /// The method of the request, when the response was received.
    pub fn method(&self) -> Option<&Method> {
        self.request.as_ref().map(|(method, _)| method)
    }

    /// The URL that was requested, without its query, when the response was received.
    pub fn url(&self) -> Option<&str> {
        self.request.as_ref().map(|(_, url)| without_query(url))
    }

    /// The body as UTF-8 text; [`Error::Decode`] when it is not.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|e| self.decode_error(e))
    }

    /// Decodes the body as JSON into `T`; [`Error::Decode`] when it does not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(json_text(&self.body)).map_err(|e| self.decode_error(e))
    }

    /// [`json`](Self::json), but for a status that carries no body (204, 205, 304) sent without
    /// one, which is decoded as JSON's `null`: a `ResponseValue<Option<T>>` answered 204 by a
    /// generated server, which sends no body with such a status, holds `None`.
    pub(crate) fn json_or_none<T: DeserializeOwned>(&self) -> Result<T, Error> {
        match self.status.as_u16() {
            204 | 205 | 304 if self.body.is_empty() => {
                serde_json::from_slice(b"null").map_err(|e| self.decode_error(e))
            }
            _ => self.json(),
        }
    }

    /// The response as an `http` response, for a server to send: status, headers and body.
    ///
    /// A received response's framing and hop-by-hop headers (`Transfer-Encoding`, `Connection`
    /// and those it names, `Keep-Alive`, `TE`, `Trailer`, `Upgrade`, and `Content-Length` but
    /// in the answer to a HEAD) described the connection it came on, so they are left out: the
    /// server sending it frames the body for its own connection. That makes a received response
    /// one a gateway can answer with as it is. A built response is sent with the headers it
    /// was built with.
    pub fn into_http(self) -> http::Response<Bytes> {
        let received_head = self.method() == Some(&Method::HEAD);
        let received = self.request.is_some();
        let mut response = http::Response::new(self.body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        if received {
            crate::header_map::remove_connection_headers(response.headers_mut());
            if !received_head {
                response.headers_mut().remove(CONTENT_LENGTH);
            }
        }
        response
    }

    fn decode_error(&self, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Decode {
            method: self.method().cloned(),
            url: self.url().map(str::to_owned),
            source: Box::new(e),
        }
    }
}

/// The UTF-8 byte order mark.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A JSON text without the UTF-8 byte order mark it may begin with: RFC 8259 lets a parser
/// ignore one (some serializers write it), and serde_json refuses it.
pub(crate) fn json_text(body: &[u8]) -> &[u8] {
    body.strip_prefix(BOM).unwrap_or(body)
}

/// A URL as errors show it: without its query, which may carry data that does not belong in
/// logs.
pub(crate) fn without_query(url: &reqwest::Url) -> &str {
    let text = url.as_str();
    text.split_once('?').map_or(text, |(before, _)| before)
}

/// [`without_query`], owned: the URL an error keeps.
pub(crate) fn shown(url: &reqwest::Url) -> String {
    without_query(url).to_owned()
}

/// A [`Response`] under construction, from [`Response::builder`].
///
/// Setters never fail: the first bad value (a header HTTP cannot carry, a body that does not
/// serialize) is kept and returned as [`Error::Encode`] by [`ResponseBuilder::build`].
#[derive(Debug)]
#[must_use]
pub struct ResponseBuilder {
    response: Response,
    /// The first bad value's error.
    error: Option<Error>,
}

impl ResponseBuilder {
    /// Adds a header; repeat the name for several values. A name or value that HTTP cannot
    /// carry (a line break, say), or `Content-Length` or `Transfer-Encoding`, which the server
    /// sets from the body, is an [`Error::Encode`] from [`build`](ResponseBuilder::build).
    pub fn header(mut self, name: impl AsRef<str>, value: impl Display) -> ResponseBuilder {
        use crate::header_map::{Refusal, checked_response as checked};
        let name = name.as_ref();
        let framing = |name: &HeaderName| name == CONTENT_LENGTH || name == TRANSFER_ENCODING;
        match checked(name, value.to_string(), framing) {
            Ok((name, value)) => {
                self.response.headers.append(name, value);
            }
            Err(Refusal::Refused(name)) => self.fail(Error::encode(format!(
                "response header `{name}` is set by the server from the body"
            ))),
            Err(Refusal::Name) => self.fail(Error::encode(format!(
                "`{name}` is not a valid response header name"
            ))),
            Err(Refusal::Value(name, why)) => self.fail(Error::encode(format!(
                "the value of response header `{name}` {why}"
            ))),
        }
        self
    }

    /// Sets the body to raw bytes. Set its `Content-Type` with [`header`](Self::header).
    pub fn body(mut self, bytes: impl Into<Bytes>) -> ResponseBuilder {
        self.response.body = bytes.into();
        self
    }

    /// Sets the body to `value` serialized as JSON, with `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> ResponseBuilder {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                self.response
                    .headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                self.response.body = Bytes::from(bytes);
            }
            Err(e) => self.fail(Error::encode(format!(
                "the response body does not serialize: {e}"
            ))),
        }
        self
    }

    /// The response, or the first bad value's [`Error::Encode`].
    pub fn build(self) -> Result<Response, Error> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.response),
        }
    }

    fn fail(&mut self, error: Error) {
        self.error.get_or_insert(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_response_has_what_was_set_and_no_request() {
        let response = Response::builder(StatusCode::CREATED)
            .header("x-tag", "a")
            .header("x-tag", 2)
            .header(http::header::LOCATION, "/users/7")
            .body(&b"\x00raw"[..])
            .build()
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let tags: Vec<_> = response.headers().get_all("x-tag").iter().collect();
        assert_eq!(tags, ["a", "2"]);
        assert_eq!(response.headers()["location"], "/users/7");
        assert!(!response.headers().contains_key("content-type"));
        assert_eq!(response.bytes().as_ref(), b"\x00raw");
        assert_eq!((response.method(), response.url()), (None, None));
    }

    #[test]
    fn json_sets_the_body_and_its_type() {
        let response = Response::builder(StatusCode::OK)
            .json(&serde_json::json!({"id": 7}))
            .build()
            .unwrap();
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.json::<serde_json::Value>().unwrap()["id"], 7);
        assert_eq!(response.text().unwrap(), r#"{"id":7}"#);
    }

    #[test]
    fn bad_values_surface_from_build() {
        // A map with keys that are not strings does not serialize as JSON.
        let unserializable: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let bad = [
            Response::builder(StatusCode::OK).header("x-note", "line\nbreak"),
            Response::builder(StatusCode::OK).header("bad name", "v"),
            Response::builder(StatusCode::OK).header("", "v"),
            Response::builder(StatusCode::OK).header("content-length", 3),
            Response::builder(StatusCode::OK).header("Transfer-Encoding", "chunked"),
            Response::builder(StatusCode::OK).json(&unserializable),
        ];
        for builder in bad {
            let err = builder.build().unwrap_err();
            assert!(matches!(err, Error::Encode { .. }), "{err}");
        }
    }

    #[test]
    fn the_first_bad_value_is_kept() {
        let err = Response::builder(StatusCode::OK)
            .header("x-first", "a\rb")
            .header("x-second", "c\nd")
            .header("x-fine", "ok")
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("x-first") && !text.contains("x-second"),
            "{text}"
        );
    }

    #[test]
    fn a_built_response_decode_error_names_no_request() {
        let response = Response::builder(StatusCode::OK)
            .body("not json")
            .build()
            .unwrap();
        let err = response.json::<u32>().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Decode {
                    method: None,
                    url: None,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "error decoding response");
        let invalid = Response::builder(StatusCode::OK)
            .body(&[0xff][..])
            .build()
            .unwrap();
        assert!(matches!(invalid.text(), Err(Error::Decode { .. })));
    }

    #[test]
    fn into_http_leaves_out_the_framing_and_hop_by_hop_headers_of_a_received_response() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("content-length", "3"),
            ("transfer-encoding", "chunked"),
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("x-kept", "2"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let url = reqwest::Url::parse("http://a.test/x").unwrap();
        let received = |method| {
            Response::new(
                StatusCode::OK,
                headers.clone(),
                Bytes::from("hello"),
                method,
                url.clone(),
            )
            .into_http()
        };
        let names = |http: &http::Response<Bytes>| -> Vec<String> {
            http.headers().keys().map(HeaderName::to_string).collect()
        };
        let http = received(Method::GET);
        assert_eq!(names(&http), ["x-kept"]);
        assert_eq!(http.body().as_ref(), b"hello");
        // In the answer to a HEAD, the length is the resource's.
        assert_eq!(names(&received(Method::HEAD)), ["content-length", "x-kept"]);
        // A built response keeps what it was built with.
        let built = Response::builder(StatusCode::OK)
            .header("connection", "close")
            .build()
            .unwrap()
            .into_http();
        assert_eq!(built.headers()["connection"], "close");
    }

    #[test]
    fn into_http_keeps_status_headers_and_body() {
        let http = Response::builder(StatusCode::ACCEPTED)
            .header("x-a", "1")
            .body("queued")
            .build()
            .unwrap()
            .into_http();
        assert_eq!(http.status(), StatusCode::ACCEPTED);
        assert_eq!(http.headers()["x-a"], "1");
        assert_eq!(http.body().as_ref(), b"queued");
    }
}
