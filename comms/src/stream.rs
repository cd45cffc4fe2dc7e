//! Response bodies handed over as they arrive: [`ByteStream`], its head ([`StreamingResponse`])
//! and newline-delimited JSON read from it ([`JsonLines`]).
//!
//! A buffered call reads the whole body, under `max_response_bytes`, before it returns; a
//! streamed call returns once a 2xx head has arrived, and the body is the caller's to read at
//! its own pace, with no cap, holding one chunk at a time. Everything a call decides (retries,
//! the attempt timeout, the breaker's accounting) is over by then: the head is the attempt's
//! success, and a body that breaks later is an error from the stream, never retried (the
//! caller has had part of it). The call's deadline, when it has one, still bounds the body: the
//! body must be read by then, and a chunk asked for after it is an `Error::Timeout` even when
//! it had already arrived (a reader that is slow past the deadline loses the rest). The attempt
//! timeout does not bound the body, and without a deadline a body that stops arriving is waited
//! for as long as its connection lives.

use std::fmt;
use std::future::{Future as _, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, Method, StatusCode};
use http_body::Body as _;

use crate::Error;
use crate::executor::DEFAULT_MAX_RESPONSE_BYTES;
use crate::response::{shown, without_query};

mod json_lines;

pub use json_lines::JsonLines;

/// A response body read chunk by chunk, as it arrives: a
/// [`Stream`](futures_core::Stream) of `Result<Bytes, comms::Error>`.
///
/// What a method returning `Result<comms::ByteStream, Error>` gives (see
/// [`Executor::execute_streaming`](crate::Executor::execute_streaming) for the rules), and what
/// a served method returns to answer with a body it produces as it goes
/// ([`from_stream`](ByteStream::from_stream), [`from_chunks`](ByteStream::from_chunks)).
///
/// A body that breaks off (the connection reset, fewer bytes than announced) is an
/// [`Error::Transport`] naming the request; a chunk asked for once the call's deadline has
/// passed is an [`Error::Timeout`], whether or not it had arrived by then: the deadline bounds
/// the reading of the body, not only its arrival. After its first error the stream ends.
/// Dropping it before the end closes the connection.
///
/// Only the call's deadline makes a body's [`Error::Timeout`]: the attempt timeout ends with
/// the head. A timeout of a client given with
/// [`http_client`](crate::ExecutorBuilder::http_client) (its `read_timeout`, say) that fires
/// while the body is read is an [`Error::Transport`] whose source says so
/// (`reqwest::Error::is_timeout`), where the same timeout before the head is an
/// [`Error::Timeout`] like comms' own: comms cannot tell how long the given client waited.
///
/// ```no_run
/// # async fn run(exec: comms::Executor) -> Result<(), comms::Error> {
/// let mut body = exec.execute_streaming(comms::Call::get("/export")).await?.into_stream();
/// let mut total = 0;
/// while let Some(chunk) = body.next_chunk().await {
///     total += chunk?.len();
/// }
/// # Ok(()) }
/// ```
pub struct ByteStream {
    source: Source,
    /// The request it answers, for errors; `None` for a stream built by hand.
    request: Option<(Method, reqwest::Url)>,
    /// The longest line [`JsonLines`] reads from it.
    line_limit: usize,
}

enum Source {
    Received(Received),
    Local(Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>),
    /// Ended at its end.
    Done,
    /// Ended by an error, which it keeps (as text) for a server passing it on.
    Failed(Failure),
}

/// Why a stream ended early, kept after its error was handed to the reader: a served method
/// may return a stream it has read from, and a stream that failed must not be passed on as
/// whole (see `ByteStream::poll_passed_on`). Only a server passes streams on, so without the
/// `server` feature nothing is kept.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    #[cfg(feature = "server")]
    why: Box<str>,
}

impl Failure {
    #[cfg_attr(not(feature = "server"), allow(unused_variables))]
    pub(crate) fn of(error: &Error) -> Failure {
        #[cfg(feature = "server")]
        {
            let mut why = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                why.push_str(": ");
                why.push_str(&cause.to_string());
                source = cause.source();
            }
            Failure {
                why: why.into_boxed_str(),
            }
        }
        #[cfg(not(feature = "server"))]
        Failure {}
    }

    /// The error a server passing the stream on cuts its response short with.
    #[cfg(feature = "server")]
    pub(crate) fn error(&self) -> Error {
        Error::internal(format!(
            "the stream passed on had ended on an error before it was returned: {}",
            self.why
        ))
    }
}

/// A received body, and the deadline it must arrive by.
struct Received {
    body: reqwest::Body,
    deadline: Option<Deadline>,
}

struct Deadline {
    at: Instant,
    /// The deadline the call was given, as its timeout reports it.
    total: Duration,
    /// Made when the body first waits (inside the runtime), then kept.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ByteStream {
    /// The body of a received response, bounded by `deadline` (when it must be over, and the
    /// deadline the call was given).
    pub(crate) fn received(
        body: reqwest::Body,
        method: Method,
        url: reqwest::Url,
        deadline: Option<(Instant, Duration)>,
        line_limit: usize,
    ) -> ByteStream {
        ByteStream {
            source: Source::Received(Received {
                body,
                deadline: deadline.map(|(at, total)| Deadline {
                    at,
                    total,
                    sleep: None,
                }),
            }),
            request: Some((method, url)),
            line_limit,
        }
    }

    /// A body that is already whole, as one chunk.
    pub(crate) fn whole(body: Bytes, method: Method, url: reqwest::Url, line_limit: usize) -> Self {
        ByteStream {
            request: Some((method, url)),
            line_limit,
            ..ByteStream::from_chunks([body])
        }
    }

    /// A stream of the chunks `stream` yields, for a served method to answer with (or a mock
    /// to return). It ends at `stream`'s end or after its first error.
    pub fn from_stream<S>(stream: S) -> ByteStream
    where
        S: Stream<Item = Result<Bytes, Error>> + Send + 'static,
    {
        ByteStream {
            source: Source::Local(Box::pin(stream)),
            request: None,
            line_limit: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// A stream that has ended already, at its end or (with why) on an error: its reader gets
    /// `None`, and a server passing it on, the error when there was one.
    #[cfg(feature = "server")]
    pub(crate) fn ended(failure: Option<Failure>) -> ByteStream {
        ByteStream {
            source: failure.map_or(Source::Done, Source::Failed),
            request: None,
            line_limit: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// A stream of `chunks`, each taken from the iterator only when the reader asks for it, so
    /// a large body need never be in memory at once:
    ///
    /// ```
    /// # async fn run() {
    /// use bytes::Bytes;
    /// static BLOCK: [u8; 4096] = [0; 4096];
    /// // 1 GiB, of one static block repeated: nothing is allocated for it.
    /// let mut body = comms::ByteStream::from_chunks(std::iter::repeat_n(
    ///     Bytes::from_static(&BLOCK),
    ///     256 * 1024,
    /// ));
    /// assert_eq!(body.next_chunk().await.unwrap().unwrap().len(), 4096);
    /// # }
    /// ```
    pub fn from_chunks<I>(chunks: I) -> ByteStream
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
        I::IntoIter: Send + 'static,
    {
        ByteStream::from_stream(Items::<_, Bytes>::new(chunks.into_iter()))
    }

    /// The next chunk: `None` once the body has ended (or after an error).
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, Error>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The method of the request, when the stream is a received body.
    pub fn method(&self) -> Option<&Method> {
        self.request.as_ref().map(|(method, _)| method)
    }

    /// The URL that was requested, without its query, when the stream is a received body.
    pub fn url(&self) -> Option<&str> {
        self.request.as_ref().map(|(_, url)| without_query(url))
    }

    /// The request's method and URL for an error about this body.
    pub(crate) fn request_for_error(&self) -> (Option<Method>, Option<String>) {
        match &self.request {
            Some((method, url)) => (Some(method.clone()), Some(shown(url))),
            None => (None, None),
        }
    }

    /// When the call's deadline has passed, ends the stream and gives the timeout a read now
    /// ends with: what a reader of lines checks before each line it has at hand, so that what
    /// arrived in time is not read after the deadline. `None` while there is time, or for a
    /// stream that is not a received body under a deadline.
    pub(crate) fn overdue(&mut self) -> Option<Error> {
        let Source::Received(received) = &self.source else {
            return None;
        };
        let total = received.overdue()?;
        let (method, url) = self.request.as_ref()?;
        let error = Broken::Deadline(total).into_error(method, url);
        self.source = Source::Failed(Failure::of(&error));
        Some(error)
    }

    pub(crate) fn line_limit(&self) -> usize {
        self.line_limit
    }

    /// Ends the stream now on `error`, which a reader of it was given: what is left of a
    /// received body is dropped (and its connection closed).
    pub(crate) fn fail(&mut self, error: &Error) {
        self.source = Source::Failed(Failure::of(error));
    }

    /// Why the stream ended early, if it did.
    #[cfg(feature = "server")]
    pub(crate) fn failure(&self) -> Option<&Failure> {
        match &self.source {
            Source::Failed(failure) => Some(failure),
            _ => None,
        }
    }

    /// The next chunk for a server passing the stream on: as [`poll_next`](Stream::poll_next),
    /// but a stream that had ended on an error before (its reader was given the error, then
    /// `None`) ends on an error again, so its response is cut short rather than ended as
    /// whole.
    #[cfg(feature = "server")]
    pub(crate) fn poll_passed_on(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Error>>> {
        if let Source::Failed(failure) = &self.source {
            let error = failure.error();
            self.source = Source::Done;
            return Poll::Ready(Some(Err(error)));
        }
        Pin::new(self).poll_next(cx)
    }
}

impl Stream for ByteStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = match &mut this.source {
            Source::Done | Source::Failed(_) => return Poll::Ready(None),
            Source::Local(stream) => std::task::ready!(stream.as_mut().poll_next(cx)),
            Source::Received(received) => match std::task::ready!(received.poll_chunk(cx)) {
                None => None,
                Some(Ok(chunk)) => Some(Ok(chunk)),
                Some(Err(broken)) => {
                    let request = this.request.as_ref();
                    let (method, url) = request.expect("a received body keeps its request");
                    Some(Err(broken.into_error(method, url)))
                }
            },
        };
        // The end, or an error: what is left of the body is dropped (and its connection
        // closed), and the stream stays ended.
        match &polled {
            Some(Ok(_)) => {}
            None => this.source = Source::Done,
            Some(Err(e)) => {
                tracing::debug!(target: "comms::stream", error = %e, "a streamed body failed");
                this.source = Source::Failed(Failure::of(e));
            }
        }
        Poll::Ready(polled)
    }
}

/// Why a received body ended early.
enum Broken {
    Body(reqwest::Error),
    /// The call's deadline passed; the deadline it was given.
    Deadline(Duration),
}

impl Broken {
    /// The error the body of a request to `method url` ends with: a body that broke off is
    /// a transport error after the request was sent.
    fn into_error(self, method: &Method, url: &reqwest::Url) -> Error {
        match self {
            Broken::Body(e) => Error::transport(method, url, e, false),
            Broken::Deadline(after) => Error::timeout(method, url, after),
        }
    }
}

impl Received {
    /// When the call's deadline has passed: the deadline it was given.
    fn overdue(&self) -> Option<Duration> {
        let deadline = self.deadline.as_ref()?;
        (Instant::now() >= deadline.at).then_some(deadline.total)
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Broken>>> {
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Broken::Body(e)))),
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry no body, and an empty chunk is no news.
                    let Ok(chunk) = frame.into_data() else {
                        continue;
                    };
                    if let Some(total) = self.overdue() {
                        return Poll::Ready(Some(Err(Broken::Deadline(total))));
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Pending => {
                    let Some(deadline) = &mut self.deadline else {
                        return Poll::Pending;
                    };
                    let at = tokio::time::Instant::from_std(deadline.at);
                    let sleep = deadline
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                    return match sleep.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Some(Err(Broken::Deadline(deadline.total)))),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// An iterator's items as a stream of `T`, one per poll, none of them an error: the
    /// stream of [`ByteStream::from_chunks`] (items into `Bytes`) and
    /// [`JsonLines::from_items`] (items as they are).
    pub(crate) struct Items<I, T> {
        items: I,
        into: std::marker::PhantomData<fn() -> T>,
    }
}

impl<I, T> Items<I, T> {
    pub(crate) fn new(items: I) -> Self {
        Items {
            items,
            into: std::marker::PhantomData,
        }
    }
}

impl<I, T> Stream for Items<I, T>
where
    I: Iterator,
    I::Item: Into<T>,
{
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.project().items.next().map(|item| Ok(item.into())))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Received(_) => "received",
            Source::Local(_) => "local",
            Source::Done => "ended",
            Source::Failed(_) => "failed",
        };
        f.debug_struct("ByteStream")
            .field("source", &source)
            .field("method", &self.method())
            .field("url", &self.url())
            .finish()
    }
}

/// The head of a 2xx response whose body is still to come: what
/// [`Executor::execute_streaming`](crate::Executor::execute_streaming) returns.
///
/// Its status and headers are here; its body is [`into_stream`](StreamingResponse::into_stream)
/// (bytes as they arrive) or [`into_json_lines`](StreamingResponse::into_json_lines)
/// (newline-delimited JSON items as they arrive).
///
/// The call is over: retries, the attempt timeout and the breaker's accounting end at the head,
/// which was the attempt's success. The body is not buffered and has no size cap; it arrives
/// as fast as it is read. A body that breaks off is an [`Error::Transport`] from the stream,
/// and is not retried (part of it was delivered). The attempt timeout does not apply to the
/// body; the call's deadline, when it has one
/// ([`ExecutorBuilder::deadline`](crate::ExecutorBuilder::deadline),
/// [`CallOptions::deadline`](crate::CallOptions::deadline), or what is left of the deadline a
/// served request arrived with), does: a body still arriving then is an [`Error::Timeout`]
/// from the stream. Without one, a body that stops arriving is waited for as long as its
/// connection lives (a feed may be quiet for long): bound each read with a timeout of your own
/// where that is not wanted.
///
/// Its `Debug` shows the headers' names, not their values (cookies, tokens).
pub struct StreamingResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: ByteStream,
}

impl fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("status", &self.status)
            .field("headers", &crate::header_map::HeaderNames(&self.headers))
            .field("body", &self.body)
            .finish()
    }
}

impl StreamingResponse {
    pub(crate) fn new(status: StatusCode, headers: HeaderMap, body: ByteStream) -> Self {
        StreamingResponse {
            status,
            headers,
            body,
        }
    }

    /// The status code (a 2xx).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The method of the request.
    pub fn method(&self) -> Option<&Method> {
        self.body.method()
    }

    /// The URL that was requested, without its query.
    pub fn url(&self) -> Option<&str> {
        self.body.url()
    }

    /// The body, as it arrives.
    pub fn into_stream(self) -> ByteStream {
        self.body
    }

    /// The body as newline-delimited JSON items of `T`, as they arrive (see [`JsonLines`]).
    pub fn into_json_lines<T: serde::de::DeserializeOwned>(self) -> JsonLines<T> {
        JsonLines::new(self.body)
    }
}

/// The body as bytes.
#[doc(hidden)]
pub fn decode_byte_stream(response: StreamingResponse) -> Result<ByteStream, Error> {
    Ok(response.into_stream())
}

/// The body as JSON lines.
#[doc(hidden)]
pub fn decode_json_lines<T: serde::de::DeserializeOwned>(
    response: StreamingResponse,
) -> Result<JsonLines<T>, Error> {
    Ok(response.into_json_lines())
}

#[cfg(test)]
mod tests;
