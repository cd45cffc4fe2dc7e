//! A response whose body is being read whole: gathered chunk by chunk under the response limit.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body::Body as _;

use super::super::{Attempt, classify};

/// A response whose body is still arriving.
pub(super) struct Reading {
    status: StatusCode,
    headers: HeaderMap,
    body: reqwest::Body,
    declared: Option<u64>,
    /// The body so far is in exactly one of these: `first` while one chunk has come,
    /// `gathered` once a second one has. A body that arrives in one chunk, as small responses
    /// do, is returned as it came, without a copy.
    first: Option<Bytes>,
    gathered: BytesMut,
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
            declared,
            first: None,
            gathered: BytesMut::new(),
        })
    }

    /// Reads what has arrived; ready once the body is complete, too large or broken.
    pub(super) fn poll_body(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<Attempt> {
        loop {
            let chunk = match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => {
                    let body = self
                        .first
                        .take()
                        .unwrap_or_else(|| std::mem::take(&mut self.gathered).freeze());
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
            let so_far = self.first.as_ref().map_or(self.gathered.len(), Bytes::len);
            if so_far + chunk.len() > limit {
                let headers = std::mem::take(&mut self.headers);
                return Poll::Ready(Attempt::TooLarge(self.status, headers));
            }
            match self.first.take() {
                None if self.gathered.is_empty() => self.first = Some(chunk),
                None => self.gathered.extend_from_slice(&chunk),
                Some(head) => {
                    let expected = self.declared.map_or(0, |len| len as usize);
                    self.gathered
                        .reserve(expected.max(head.len() + chunk.len()));
                    self.gathered.extend_from_slice(&head);
                    self.gathered.extend_from_slice(&chunk);
                }
            }
        }
    }
}
