//! Bodies a loopback server sends piece by piece: as the test feeds them ([`fed`]), or one
//! piece every so often ([`paced`]), so that a test knows what the server has sent so far.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use comms::ByteStream;
use tokio::sync::mpsc;

/// What a test feeds a [`fed`] body with.
pub type Feeder = mpsc::UnboundedSender<Result<Bytes, comms::Error>>;

/// A body that sends what the test feeds it, when it is fed, and ends when the feeder is
/// dropped.
pub fn fed() -> (Feeder, ByteStream) {
    let (feeder, chunks) = mpsc::unbounded_channel();
    (feeder, ByteStream::from_stream(Fed(chunks)))
}

struct Fed(mpsc::UnboundedReceiver<Result<Bytes, comms::Error>>);

impl futures_core::Stream for Fed {
    type Item = Result<Bytes, comms::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A body of `pieces`, one every `every` (the first at once), ending after the last.
pub fn paced(pieces: Vec<Bytes>, every: Duration) -> ByteStream {
    let (feeder, body) = fed();
    tokio::spawn(async move {
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(every).await;
            }
            if feeder.send(Ok(piece)).is_err() {
                return;
            }
        }
    });
    body
}

/// Serves `GET /stream` with the bodies `next` makes, one per request (chunked: no
/// `Content-Length`); the base URL.
pub async fn serve_stream(next: impl Fn() -> ByteStream + Send + Sync + 'static) -> String {
    let next = Arc::new(next);
    let app = axum::Router::new().route(
        "/stream",
        axum::routing::get(move || {
            let body = next();
            async move { axum::body::Body::from_stream(body) }
        }),
    );
    crate::serve(app).await
}
