//! What a call hands over when it succeeds: the whole response, or the head of a response
//! whose body the caller reads as it arrives.
//!
//! The call's state machine (`call_future.rs`) is the same for both; a mode only decides what
//! becomes of a response head. [`Whole`]'s `Head` is uninhabited, so the buffered call compiles
//! to what it would be without modes.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::response::Response;
use crate::stream::{ByteStream, StreamingResponse};

/// What a call hands over when it succeeds: a whole response ([`Whole`]), or the head of one
/// whose body is read as it arrives ([`Streaming`]).
pub(super) trait Mode {
    /// The call's success.
    type Output;
    /// A 2xx head handed over before its body is read (for [`Whole`], none ever is).
    type Head;

    /// The head to hand over now, or the response to read whole first (to classify a status
    /// outside 2xx, or to return it whole).
    // The response passes through once per attempt; boxing it would cost an allocation.
    #[allow(clippy::result_large_err)]
    fn head(response: reqwest::Response) -> Result<Self::Head, reqwest::Response>;

    /// A head's status.
    fn status(head: &Self::Head) -> StatusCode;

    /// The success of a head handed over.
    fn streamed(head: Self::Head, request: Request, limit: usize) -> Self::Output;

    /// The success of a 2xx response read whole.
    fn whole(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        request: Request,
        limit: usize,
    ) -> Self::Output;
}

/// The request a success answers: its method, URL, and the call's deadline (when it must be
/// over, and the deadline it was given).
pub(super) type Request = (Method, reqwest::Url, Option<(Instant, Duration)>);

/// A call whose success is the whole [`Response`], its body read under `max_response_bytes`.
pub(super) enum Whole {}

impl Mode for Whole {
    type Output = Response;
    type Head = Infallible;

    fn head(response: reqwest::Response) -> Result<Infallible, reqwest::Response> {
        Err(response)
    }

    fn status(head: &Infallible) -> StatusCode {
        match *head {}
    }

    fn streamed(head: Infallible, _: Request, _: usize) -> Response {
        match head {}
    }

    fn whole(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        (method, url, _): Request,
        _: usize,
    ) -> Response {
        Response::new(status, headers, body, method, url)
    }
}

/// A call whose success is a 2xx head, handed over with its body still to come.
pub(super) enum Streaming {}

impl Mode for Streaming {
    type Output = StreamingResponse;
    type Head = reqwest::Response;

    fn head(response: reqwest::Response) -> Result<reqwest::Response, reqwest::Response> {
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(response)
        }
    }

    fn status(head: &reqwest::Response) -> StatusCode {
        head.status()
    }

    fn streamed(
        mut head: reqwest::Response,
        (method, url, deadline): Request,
        limit: usize,
    ) -> StreamingResponse {
        let status = head.status();
        let headers = std::mem::take(head.headers_mut());
        let body = http::Response::from(head).into_body();
        let body = ByteStream::received(body, method, url, deadline, limit);
        StreamingResponse::new(status, headers, body)
    }

    fn whole(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        (method, url, _): Request,
        limit: usize,
    ) -> StreamingResponse {
        let body = ByteStream::whole(body, method, url, limit);
        StreamingResponse::new(status, headers, body)
    }
}
