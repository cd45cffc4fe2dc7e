//! Streamed answers: a served method returning a [`ByteStream`] or [`JsonLines`] is answered
//! with a 200 head at once and its body as the method's stream produces it, in chunked
//! transfer encoding, never held whole (but for an HTTP/1.0 request, below).
//!
//! The stream is read after the method has returned, outside the request's task-locals: the
//! deadline the request arrived with is put back in scope while it is read (so the comms calls
//! it makes are bounded by it, as the method's are), but [`caller()`](super::caller) is not
//! available. An error
//! from it, or a panic while it is read, cuts the response short: the connection closes
//! before the body's end, which the caller sees as a body that broke off (a comms client: an
//! [`Error::Transport`] from its stream). What came before the error is written as far as the
//! connection takes it: a caller reading slowly may miss the last of it (the server's write
//! buffer, some hundreds of kilobytes, is dropped with the connection), but never sees a cut
//! body as a whole one. A stream that had ended on an error before the method returned it (a
//! received body that broke off, read up to its error) is cut short the same way.
//!
//! An HTTP/1.0 request is answered otherwise: HTTP/1.0 has no chunked encoding, so a body
//! sent as it is produced ends where the connection closes, and a stream cut short would reach
//! the caller as a whole body (a proxy that speaks HTTP/1.0 to its upstream, as nginx does by
//! default, would pass it on as one). The stream is gathered first, up to
//! 16 MiB (`HTTP10_GATHERED`), and sent with its length; one that fails, or grows past that,
//! is answered with a 500 and nothing of it. (A slow stream that never ends is answered only
//! when it has grown past that; one such request holds up to 16 MiB while it is gathered.)
//!
//! With `otel`, the request's SERVER span lasts as long as its body: it ends when the stream
//! ends, with `error.type` `stream_error` when it failed, and `cancelled` when the caller hung
//! up first; the stream is read inside it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http::HeaderValue;
use http::header::CONTENT_TYPE;

use super::served_error;
use crate::telemetry::ServerTrace;
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

impl From<Answer> for axum::response::Response {
    fn from(answer: Answer) -> axum::response::Response {
        match answer {
            Answer::Whole(response) => response.map(axum::body::Body::from),
            Answer::Streamed(response) => response,
        }
    }
}

/// A type whose values a generated server sends as JSON lines.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent as JSON lines by a served method",
    label = "with the `server` feature, the items of a returned `comms::JsonLines<T>` must implement `serde::Serialize`",
    note = "a trait that is only called, never served, can say so: `#[service_client(.., server = false)]`"
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

/// The most of a streamed answer gathered for an HTTP/1.0 request: a comms client's default
/// `max_response_bytes`.
pub(crate) const HTTP10_GATHERED: usize = 16 * 1024 * 1024;

/// A streamed answer to an HTTP/1.0 request, gathered and sent whole, with its length (see
/// the module's documentation); any other response as it is.
pub(crate) async fn gathered_for_http10(
    response: axum::response::Response,
) -> axum::response::Response {
    use http_body_util::BodyExt;
    // Only a served stream carries a trace slot; gathered, it is a whole answer, its trace
    // ended as one.
    if response.extensions().get::<TraceSlot>().is_none() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts.extensions.remove::<TraceSlot>();
    match http_body_util::Limited::new(body, HTTP10_GATHERED)
        .collect()
        .await
    {
        Ok(gathered) => {
            axum::response::Response::from_parts(parts, axum::body::Body::from(gathered.to_bytes()))
        }
        Err(e) => {
            if e.is::<http_body_util::LengthLimitError>() {
                tracing::warn!(
                    limit = HTTP10_GATHERED,
                    "a streamed answer to an HTTP/1.0 request outgrew what is gathered for one; \
                     answered with a 500"
                );
            }
            // A failed stream has said why already (see `Served`).
            super::internal_error().map(axum::body::Body::from)
        }
    }
}

/// A streamed answer; made by the served method (`respond_byte_stream`, `respond_json_lines`),
/// so with the deadline its request arrived with in scope, which the body's reading keeps.
fn streamed(body: ByteStream, content_type: &'static str) -> Answer {
    let trace = TraceSlot::default();
    let body = axum::body::Body::from_stream(Served {
        body: Some(body),
        failed: None,
        trace: trace.clone(),
        deadline: crate::deadline::inherited(),
    });
    // A new response is a 200.
    let mut response = axum::response::Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.extensions_mut().insert(trace);
    Answer::Streamed(response)
}

/// Where the request's trace goes for a streamed answer, whose body outlives the request's own
/// future: `handle` finds the slot in the response's extensions and puts the trace there, and
/// the body ends it (or, dropped first, drops it: its caller hung up).
#[derive(Clone, Default)]
pub(crate) struct TraceSlot(Arc<Mutex<Option<ServerTrace>>>);

impl TraceSlot {
    /// Hands the request's trace to the body.
    pub(crate) fn fill(&self, trace: ServerTrace) {
        *self.lock() = Some(trace);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ServerTrace>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in the trace's span, if it has one yet.
    fn in_span<R>(&self, f: impl FnOnce() -> R) -> R {
        match &*self.lock() {
            Some(trace) => trace.in_span(f),
            None => f(),
        }
    }

    /// Ends the trace: the body is whole, or (`failed`) was cut short.
    fn end(&self, failed: bool) {
        if let Some(trace) = self.lock().take() {
            if failed {
                trace.end_failed(http::StatusCode::OK);
            } else {
                trace.end(http::StatusCode::OK);
            }
        }
    }
}

/// A served stream: its errors reported, its panics caught, each ending the body there.
struct Served {
    body: Option<ByteStream>,
    /// The error that ends the body, after a turn for what came before it to be written.
    failed: Option<Error>,
    trace: TraceSlot,
    /// The deadline the request arrived with, in scope while the stream is read: the comms
    /// calls it makes to produce its items are bounded by it, as the method's own are.
    deadline: Option<std::time::Instant>,
}

/// How many empty chunks in a row a served stream is asked for before its task yields.
const EMPTY_CHUNKS_PER_TURN: usize = 64;

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
        let trace = &this.trace;
        let polled = crate::deadline::in_scope(this.deadline, || {
            trace.in_span(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // An empty chunk is no news, and hyper, handed one, asks again at once without
                    // yielding: a stream always ready with empty chunks would hold the thread.
                    // They are skipped here, a bounded number before the task yields its turn.
                    for _ in 0..EMPTY_CHUNKS_PER_TURN {
                        match body.poll_passed_on(cx) {
                            Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => continue,
                            polled => return polled,
                        }
                    }
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }))
            })
        });
        let error = match polled {
            Ok(Poll::Ready(Some(Err(e)))) => {
                trace.in_span(|| {
                    tracing::warn!(error = %e, "a served stream failed; its response is cut short");
                });
                e
            }
            Ok(Poll::Ready(None)) => {
                this.body = None;
                trace.end(false);
                return Poll::Ready(None);
            }
            Ok(polled) => return polled,
            Err(panic) => {
                let what = super::serve::panic_message(panic.as_ref());
                trace.in_span(|| {
                    tracing::error!(
                        panic = what,
                        "a served stream panicked; its response is cut short"
                    );
                });
                Error::internal("a served stream panicked")
            }
        };
        trace.end(true);
        // Dropped, never polled again, so no broken state of it is ever observed. The error
        // waits one turn, so that the chunks before it go into the connection's buffer first;
        // the server then aborts the connection on it.
        this.body = None;
        this.failed = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
