//! Streamed answers: a served method returning a [`ByteStream`] or [`JsonLines`] is answered
//! with a 200 head at once and its body as the method's stream produces it, in chunked
//! transfer encoding, never held whole.
//!
//! The stream is read after the method has returned, outside the request's task-locals
//! ([`caller()`](super::caller) and the deadline are not in scope while it is read). An error
//! from it, or a panic while it is read, cuts the response short: the connection closes
//! before the body's end, which the caller sees as a body that broke off (a comms client: an
//! [`Error::Transport`] from its stream).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http::HeaderValue;
use http::header::CONTENT_TYPE;

use super::served_error;
use crate::{ByteStream, Error, JsonLines};

/// What a served method answers with: a whole response (every return type but the streams),
/// or a head whose body is a stream.
#[doc(hidden)]
#[derive(Debug)]
pub enum Answer {
    /// A whole response, which an idempotent method's store can keep.
    Whole(http::Response<Bytes>),
    /// A streamed one.
    Streamed(axum::response::Response),
}

impl From<http::Response<Bytes>> for Answer {
    fn from(response: http::Response<Bytes>) -> Answer {
        Answer::Whole(response)
    }
}

/// A type whose values a generated server sends as JSON lines.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent as JSON lines by a served method",
    label = "with the `server` feature, the items of a returned `comms::JsonLines<T>` must implement `serde::Serialize`"
)]
pub trait JsonLinesReturn: serde::Serialize + Send + 'static {}

impl<T: serde::Serialize + Send + 'static> JsonLinesReturn for T {}

/// The answer for a method returning a [`ByteStream`]: 200, `application/octet-stream`, the
/// body as it is produced; or the error's response.
#[doc(hidden)]
pub fn respond_byte_stream(result: Result<ByteStream, Error>) -> Answer {
    match result {
        Ok(body) => streamed(body, "application/octet-stream"),
        Err(e) => Answer::Whole(served_error(&e)),
    }
}

/// The answer for a method returning [`JsonLines<T>`]: 200, `application/x-ndjson`, each item
/// on a line of its own as it is produced; or the error's response.
#[doc(hidden)]
pub fn respond_json_lines<T: JsonLinesReturn>(result: Result<JsonLines<T>, Error>) -> Answer {
    match result {
        Ok(items) => streamed(items.into_bytes(), "application/x-ndjson"),
        Err(e) => Answer::Whole(served_error(&e)),
    }
}

fn streamed(body: ByteStream, content_type: &'static str) -> Answer {
    let body = axum::body::Body::from_stream(Served {
        body: Some(body),
        failed: None,
    });
    // A new response is a 200.
    let mut response = axum::response::Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Answer::Streamed(response)
}

/// A served stream: its errors reported, its panics caught, each ending the body there.
struct Served {
    body: Option<ByteStream>,
    /// The error that ends the body, once what came before it has been flushed.
    failed: Option<Error>,
}

impl Stream for Served {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(e) = this.failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        let Some(body) = &mut this.body else {
            return Poll::Ready(None);
        };
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pin::new(&mut *body).poll_next(cx)
        }));
        let error = match polled {
            Ok(Poll::Ready(Some(Err(e)))) => {
                tracing::warn!(error = %e, "a served stream failed; its response is cut short");
                e
            }
            Ok(polled) => return polled,
            Err(panic) => {
                let what = super::serve::panic_message(panic.as_ref());
                tracing::error!(
                    panic = what,
                    "a served stream panicked; its response is cut short"
                );
                Error::internal("a served stream panicked")
            }
        };
        // Dropped, never polled again, so no broken state of it is ever observed. The error
        // waits one turn: the server aborts the connection on it, dropping whatever it has not
        // written yet, so it first writes out the head and the chunks before the error.
        this.body = None;
        this.failed = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
