//! A response whose body is being read whole: gathered chunk by chunk under the response limit.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body::Body as _;

use super::super::{Attempt, classify};
use crate::gathered::Gathered;

/// A response whose body is still arriving.
pub(super) struct Reading {
    status: StatusCode,
    headers: HeaderMap,
    body: reqwest::Body,
    /// The body so far.
    gathered: Gathered,
    /// Whether the call's method ignores a success's body.
    body_ignored: bool,
}

impl Reading {
    /// Takes a response's head and starts reading its body; `Err` with the head when the
    /// declared length is already over `limit` (the attempt ends as [`over_limit`] says).
    ///
    /// The answer to a HEAD request declares no length of its own: its `Content-Length` is
    /// that of the body a GET would get, and it has none. (hyper reads it as the body's length
    /// over HTTP/2 before 1.13, and a large file's HEAD was refused as too large.)
    pub(super) fn start(
        mut response: reqwest::Response,
        method: &Method,
        limit: usize,
        body_ignored: bool,
    ) -> Result<Reading, (StatusCode, HeaderMap)> {
        let declared = match *method {
            Method::HEAD => None,
            _ => response.content_length(),
        };
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err((status, headers));
        }
        Ok(Reading {
            status,
            headers,
            body: http::Response::from(response).into_body(),
            gathered: Gathered::new(limit, declared),
            body_ignored,
        })
    }

    /// Reads what has arrived; ready once the body is complete, too large or broken.
    pub(super) fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Attempt> {
        loop {
            let chunk = match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => {
                    let body = self.gathered.take();
                    let headers = std::mem::take(&mut self.headers);
                    return Poll::Ready(Attempt::Response(self.status, headers, body));
                }
                // The head's status is the answer when the body is only an error's excerpt, or
                // one the method ignores: a 503 whose body broke off is that 503 (retried, or
                // not, as its `Retry-After` says), not a connection failing with no answer.
                Some(Err(_)) if !self.status.is_success() || self.body_ignored => {
                    let body = self.gathered.take();
                    let headers = std::mem::take(&mut self.headers);
                    return Poll::Ready(Attempt::Response(self.status, headers, body));
                }
                Some(Err(e)) => return Poll::Ready(classify(e)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(chunk) => chunk,
                    // Trailers carry no body.
                    Err(_) => continue,
                },
            };
            if self.gathered.push(chunk).is_err() {
                let headers = std::mem::take(&mut self.headers);
                return Poll::Ready(over_limit(self.status, headers, self.body_ignored));
            }
        }
    }
}

/// How an attempt whose body is over the limit ends: as [`Attempt::TooLarge`], but for a
/// success whose method ignores its body, which is that success (the service did what was
/// asked), the body dropped unread.
pub(super) fn over_limit(status: StatusCode, headers: HeaderMap, body_ignored: bool) -> Attempt {
    if body_ignored && status.is_success() {
        Attempt::Response(status, headers, Bytes::new())
    } else {
        Attempt::TooLarge(status, headers)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body::{Frame, SizeHint};

    use super::*;

    /// A body that declares a length and holds nothing, as hyper before 1.13 made the body of
    /// an answer to HEAD over HTTP/2 from its `Content-Length`.
    struct Declared(u64);

    impl http_body::Body for Declared {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(None)
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.0)
        }
    }

    fn declaring(len: u64) -> reqwest::Response {
        http::Response::new(reqwest::Body::wrap(Declared(len))).into()
    }

    #[test]
    fn the_length_an_answer_to_head_declares_is_not_its_body() {
        let limit = 1024;
        let response = declaring(100_000_000);
        assert_eq!(response.content_length(), Some(100_000_000));
        assert!(Reading::start(response, &Method::HEAD, limit, false).is_ok());
        assert!(Reading::start(declaring(100_000_000), &Method::GET, limit, false).is_err());
        assert!(Reading::start(declaring(1000), &Method::GET, limit, false).is_ok());
    }
}
