//! Newline-delimited JSON (NDJSON, JSON Lines) read from a [`ByteStream`] as it arrives, or
//! written from items as a served method produces them.
//!
//! Lines are cut wherever the chunks happen to end: a line may arrive in many chunks and a
//! chunk may hold many lines, so a chunk is split in place (its lines are slices of it, not
//! copies) and only the start of a line still waiting for its end is copied aside. That copy is
//! bounded: a line longer than the limit is an error, not a buffer that grows without end.

use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use serde::de::DeserializeOwned;

use super::{ByteStream, Failure, Items};
use crate::Error;
use crate::response::BOM;

/// A stream of `T` decoded from newline-delimited JSON as the body arrives: one JSON value
/// per line.
///
/// What a method returning `Result<comms::JsonLines<T>, Error>` gives, and what a served
/// method returns to answer with items as it produces them
/// ([`from_items`](JsonLines::from_items), [`from_stream`](JsonLines::from_stream)).
///
/// Lines end with `\n` or `\r\n`; the last line needs no newline; blank lines are skipped, and
/// so is a UTF-8 byte order mark before the first. A
/// line that is not a `T` is an [`Error::Decode`] for that item, and the lines after it are
/// read as usual. A line longer than the limit (the executor's `max_response_bytes`, 16 MiB by
/// default; [`max_line_bytes`](JsonLines::max_line_bytes) changes it) is an [`Error::Decode`]
/// that ends the stream, as does any error of the body itself.
///
/// ```
/// # async fn run() -> Result<(), comms::Error> {
/// use bytes::Bytes;
/// use comms::{ByteStream, JsonLines};
///
/// // A body that arrives in awkward pieces.
/// let body = ByteStream::from_chunks(["{\"id\":1}\n{\"i", "d\":2}\r\n\n{\"id\":3}"]);
/// let mut items = JsonLines::<serde_json::Value>::new(body);
/// let mut ids = Vec::new();
/// while let Some(item) = items.next_item().await {
///     ids.push(item?["id"].as_u64().unwrap());
/// }
/// assert_eq!(ids, [1, 2, 3]);
/// # Ok(()) }
/// ```
pub struct JsonLines<T> {
    source: Lines<T>,
}

enum Lines<T> {
    /// Lines read from a body, decoded as they are asked for.
    Reading(Box<Splitter>, PhantomData<fn() -> T>),
    /// Items given as they are (a served method's, or a mock's).
    Items(Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>>),
    /// Given items that have ended: at their end, or (with why) at their first error. The
    /// stream given is dropped then, and never polled again. Only a server reads why.
    Ended(#[cfg_attr(not(feature = "server"), allow(dead_code))] Option<Failure>),
}

/// A body cut into lines.
struct Splitter {
    bytes: ByteStream,
    /// What of the last chunk is not split into lines yet.
    pending: Bytes,
    /// The start of a line whose end has not arrived yet.
    partial: BytesMut,
    limit: usize,
    ended: bool,
    /// Whether no line has been split off yet: the first may begin with a byte order mark.
    first: bool,
}

impl<T> JsonLines<T> {
    /// The items of `bytes`, one JSON value per line. Lines may be as long as the limit of
    /// the executor that received `bytes` (`max_response_bytes`), or 16 MiB for a stream built
    /// by hand.
    pub fn new(bytes: ByteStream) -> JsonLines<T> {
        let limit = bytes.line_limit();
        JsonLines {
            source: Lines::Reading(
                Box::new(Splitter {
                    bytes,
                    pending: Bytes::new(),
                    partial: BytesMut::new(),
                    limit,
                    ended: false,
                    first: true,
                }),
                PhantomData,
            ),
        }
    }

    /// Sets the longest line read, in bytes (without its line break). No effect on items
    /// that are not read from a body.
    #[must_use]
    pub fn max_line_bytes(mut self, limit: usize) -> JsonLines<T> {
        if let Lines::Reading(splitter, _) = &mut self.source {
            splitter.limit = limit;
        }
        self
    }

    /// The items `stream` yields, for a served method to answer with (or a mock to return).
    /// They end at `stream`'s end or its first error, after which `stream` is dropped and
    /// never polled again, read or served.
    pub fn from_stream<S>(stream: S) -> JsonLines<T>
    where
        S: Stream<Item = Result<T, Error>> + Send + 'static,
    {
        JsonLines {
            source: Lines::Items(Box::pin(stream)),
        }
    }

    /// `items`, each taken from the iterator only when it is asked for (so they need not all
    /// be in memory at once).
    pub fn from_items<I>(items: I) -> JsonLines<T>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        T: 'static,
    {
        JsonLines::from_stream(Items::<_, T>::new(items.into_iter()))
    }

    /// What a served method's items are sent as: each serialized on a line of its own, or for
    /// items still to be read from a received body, that body's bytes as they come.
    #[cfg(feature = "server")]
    pub(crate) fn into_bytes(self) -> ByteStream
    where
        T: serde::Serialize + 'static,
    {
        match self.source {
            Lines::Reading(splitter, _) => {
                // What was held of a body that failed is not passed on: only its error is.
                let mut first = splitter.partial;
                first.extend_from_slice(&splitter.pending);
                let first = Some(first.freeze())
                    .filter(|b| !b.is_empty() && splitter.bytes.failure().is_none());
                ByteStream::from_stream(Prefixed {
                    first,
                    rest: splitter.bytes,
                })
            }
            Lines::Items(items) => ByteStream::from_stream(Encoded { items }),
            Lines::Ended(failure) => ByteStream::ended(failure),
        }
    }
}

impl<T: DeserializeOwned> JsonLines<T> {
    /// The next item: `None` once the body has ended (or after an error that ends it).
    pub async fn next_item(&mut self) -> Option<Result<T, Error>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T: DeserializeOwned> Stream for JsonLines<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let source = &mut self.get_mut().source;
        match source {
            Lines::Ended(_) => Poll::Ready(None),
            Lines::Items(items) => {
                let polled = ready!(items.as_mut().poll_next(cx));
                match &polled {
                    Some(Ok(_)) => {}
                    None => *source = Lines::Ended(None),
                    Some(Err(e)) => *source = Lines::Ended(Some(Failure::of(e))),
                }
                Poll::Ready(polled)
            }
            Lines::Reading(splitter, _) => {
                let line = match ready!(splitter.poll_line(cx)) {
                    Some(Ok(line)) => line,
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                    None => return Poll::Ready(None),
                };
                Poll::Ready(Some(
                    serde_json::from_slice(&line).map_err(|e| splitter.error(Box::new(e))),
                ))
            }
        }
    }
}

impl<T> FromIterator<T> for JsonLines<T>
where
    T: Send + 'static,
{
    /// The items, gathered now and sent in order.
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> JsonLines<T> {
        JsonLines::from_items(items.into_iter().collect::<Vec<T>>())
    }
}

impl<T> fmt::Debug for JsonLines<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Lines::Reading(splitter, _) => f
                .debug_struct("JsonLines")
                .field("bytes", &splitter.bytes)
                .field("max_line_bytes", &splitter.limit)
                .finish_non_exhaustive(),
            Lines::Items(_) | Lines::Ended(_) => {
                f.debug_struct("JsonLines").finish_non_exhaustive()
            }
        }
    }
}

impl Splitter {
    /// The next line that is not blank, without its line break.
    fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            // The lines at hand arrived in time, but are read now: the deadline bounds the
            // reading, as it does a chunk's.
            if let Some(timeout) = self.bytes.overdue() {
                self.ended = true;
                return Poll::Ready(Some(Err(timeout)));
            }
            if let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                // The limit is on the line without its break, `\r\n` as well as `\n`.
                let carriage_return = match at {
                    0 => self.partial.last() == Some(&b'\r'),
                    _ => self.pending[at - 1] == b'\r',
                };
                let uncounted = usize::from(carriage_return) + self.bom_ahead();
                if self.partial.len() + at - uncounted > self.limit {
                    return Poll::Ready(Some(Err(self.too_long())));
                }
                let mut line = self.pending.split_to(at + 1);
                line.truncate(at);
                if !self.partial.is_empty() {
                    self.partial.extend_from_slice(&line);
                    line = self.partial.split().freeze();
                }
                if let Some(line) = self.content(line) {
                    return Poll::Ready(Some(Ok(line)));
                }
                continue;
            }
            if !self.pending.is_empty() {
                // A `\r` last may be the first half of the line's break.
                let break_begun = self.pending.last() == Some(&b'\r');
                let uncounted = usize::from(break_begun) + self.bom_ahead();
                if self.partial.len() + self.pending.len() > self.limit.saturating_add(uncounted) {
                    return Poll::Ready(Some(Err(self.too_long())));
                }
                self.partial.extend_from_slice(&self.pending);
                self.pending = Bytes::new();
            }
            match ready!(Pin::new(&mut self.bytes).poll_next(cx)) {
                Some(Ok(chunk)) => self.pending = chunk,
                Some(Err(e)) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    // The last line needs no line break.
                    self.ended = true;
                    let last = self.partial.split().freeze();
                    return Poll::Ready(self.content(last).map(Ok));
                }
            }
        }
    }

    /// The length of the byte order mark the line being read begins with, which is skipped and
    /// so not counted against the limit: when it is the first line, 3 for a whole mark, or the
    /// bytes held so far when they are all the start of one (a mark cut across chunks).
    fn bom_ahead(&self) -> usize {
        if !self.first {
            return 0;
        }
        let start = self
            .partial
            .iter()
            .chain(self.pending.iter())
            .take(BOM.len());
        let mut held = 0;
        for (got, want) in start.zip(BOM) {
            if got != want {
                return 0;
            }
            held += 1;
        }
        held
    }

    /// A line without its `\r`, or `None` when it is blank; the first without the UTF-8 byte
    /// order mark a body may begin with (RFC 8259 lets a parser ignore it, and serde_json does
    /// not).
    fn content(&mut self, mut line: Bytes) -> Option<Bytes> {
        if std::mem::take(&mut self.first) && line.starts_with(BOM) {
            line = line.slice(BOM.len()..);
        }
        content(line)
    }

    /// The error of a line over the limit, which ends the stream, and lets go of the body: the
    /// connection, and the producer at its other end, are not held for the rest of the stream's
    /// life.
    fn too_long(&mut self) -> Error {
        self.ended = true;
        let limit = self.limit;
        let error = self.error(format!("a JSON line is longer than the {limit} byte limit").into());
        self.bytes.fail(&error);
        error
    }

    fn error(&self, source: crate::BoxError) -> Error {
        let (method, url) = self.bytes.request_for_error();
        Error::Decode {
            method,
            url,
            source,
        }
    }
}

/// A line without its `\r`, or `None` when it is blank.
fn content(mut line: Bytes) -> Option<Bytes> {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    (!line.iter().all(u8::is_ascii_whitespace)).then_some(line)
}

/// Items serialized one per line.
#[cfg(feature = "server")]
struct Encoded<T> {
    items: Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>>,
}

#[cfg(feature = "server")]
impl<T: serde::Serialize> Stream for Encoded<T> {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(match ready!(self.items.as_mut().poll_next(cx)) {
            None => None,
            Some(Err(e)) => Some(Err(e)),
            Some(Ok(item)) => {
                let mut line = match serde_json::to_vec(&item) {
                    Ok(line) => line,
                    Err(e) => {
                        return Poll::Ready(Some(Err(Error::encode(format!(
                            "a JSON line does not serialize: {e}"
                        )))));
                    }
                };
                // One item, one line: a value serialized with line breaks of its own (a
                // `RawValue` passed on as it was received, pretty-printed) has them only
                // between tokens, where a space means the same (inside strings they are
                // escaped).
                for byte in &mut line {
                    if matches!(*byte, b'\n' | b'\r') {
                        *byte = b' ';
                    }
                }
                line.push(b'\n');
                Some(Ok(Bytes::from(line)))
            }
        })
    }
}

/// A body whose start was read already: that start, then the rest.
#[cfg(feature = "server")]
struct Prefixed {
    first: Option<Bytes>,
    rest: ByteStream,
}

#[cfg(feature = "server")]
impl Stream for Prefixed {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.first.take() {
            Some(first) => Poll::Ready(Some(Ok(first))),
            None => self.rest.poll_passed_on(cx),
        }
    }
}
