//! A response whose body is being read whole: gathered chunk by chunk under the response limit.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, StatusCode};
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
}

impl Reading {
    /// Takes a response's head and starts reading its body; `Err` with the head when the
    /// declared length is already over `limit`.
    pub(super) fn start(
        mut response: reqwest::Response,
        limit: usize,
    ) -> Result<Reading, (StatusCode, HeaderMap)> {
        let declared = response.content_length();
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
                Some(Err(e)) => return Poll::Ready(classify(e)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(chunk) => chunk,
                    // Trailers carry no body.
                    Err(_) => continue,
                },
            };
            if self.gathered.push(chunk).is_err() {
                let headers = std::mem::take(&mut self.headers);
                return Poll::Ready(Attempt::TooLarge(self.status, headers));
            }
        }
    }
}
