//! Verification in front of a tower service or an axum router.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::BodyExt;
use tower_layer::Layer;
use tower_service::Service;

use super::{Admitted, Caller, VerifiedHead, Verifier, VerifyError};
use crate::error::{message_response as reject, unavailable_response as unavailable};
use crate::gathered::Gathered;
use crate::report::Throttle;
use crate::telemetry::ServerTrace;

/// The default body limit of [`VerifyLayer`]: 2 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The default time [`VerifyLayer`] gives a signed request to deliver its body: 10 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A tower layer that verifies every request before the inner service sees it.
///
/// It checks the signature over the request head first ([`Verifier::verify_head`]): a request
/// without a valid one is answered 401 at once, with no byte of its body read. A signed
/// request's body is then read under a size limit (413 beyond it) and a time limit (408; 504
/// when the deadline the request carries comes first), and
/// only then are the body's digest and the nonce checked. A refusal answered before a request's
/// body was read whole says `Connection: close` on HTTP/1, and the connection is closed after
/// it: no further request can follow an unread body on it. A refused signature is answered
/// 401 with `WWW-Authenticate: Signature` and `{"message": "unauthorized"}` (a nonce store that
/// cannot answer, 503 with `Retry-After: 1`); the reason goes to the log, not to the caller, as a `WARN`
/// at most once every 10 s (with the number of refusals since the last one, the others at
/// `DEBUG`). An accepted request is passed on with the [`Caller`](super::Caller) in its
/// extensions:
///
/// ```
/// use axum::{Extension, Router, routing::get};
/// use comms::verify::{Caller, Verifier, VerifyLayer};
///
/// async fn whoami(Extension(caller): Extension<Caller>) -> String {
///     caller.service_id().to_owned()
/// }
///
/// let verifier = Verifier::new().service("billing", "s3cr3t");
/// let app: Router = Router::new()
///     .route("/whoami", get(whoami))
///     .layer(VerifyLayer::new(verifier));
/// ```
///
/// Apply it to the outermost router: the signature covers the path as the caller sent it, so
/// the layer must see the request before any prefix is stripped. (With the `server` feature
/// it reads the path an axum router kept of the original request, `OriginalUri`, when there
/// is one, so a layer on a nested router checks the whole path too.)
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    gate: Gate,
}

/// What a request passes before its handler sees it: the signature over the head, the body
/// read under a size and a time limit, then its digest and nonce. [`VerifyLayer`] and a
/// generated server both check requests with one; a server built `unverified()` has a gate
/// without a verifier, which still reads the body under the same limits and honours the
/// deadline the request arrived with.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    /// `None`: requests are not checked (a generated server's `unverified()`).
    pub(crate) verifier: Option<Verifier>,
    pub(crate) max_body_bytes: usize,
    pub(crate) body_timeout: Duration,
    refusals: Arc<Refusals>,
}

impl Gate {
    /// The scheme requests reach the service by, when its verifier was told
    /// ([`Verifier::scheme`]).
    pub(crate) fn scheme(&self) -> Option<&str> {
        self.verifier.as_ref()?.scheme.as_deref()
    }
}

/// Refused requests, reported at most once every 10 s with their count (see [`Throttle`]): a
/// flood of bad requests must not become a flood of log lines.
#[derive(Debug)]
struct Refusals {
    throttle: Throttle,
    started: Instant,
}

impl Refusals {
    /// `key_id`: the key the request claims (see [`Verifier::claimed_key`]), looked for only
    /// when the line is written: a mismatch under a known key id is the trace of a secret
    /// rotated on one side only.
    fn report(
        &self,
        reason: &VerifyError,
        parts: &http::request::Parts,
        verifier: Option<&Verifier>,
    ) {
        let key_id =
            || verifier.and_then(|v| v.claimed_key(&parts.method, &parts.uri, &parts.headers));
        let now_ms = self.started.elapsed().as_millis() as u64;
        match self.throttle.count(now_ms) {
            Some(refused) => tracing::warn!(
                refused,
                reason = %reason,
                key_id = key_id(),
                method = %parts.method,
                path = parts.uri.path(),
                "refused an unverified request (`refused`: how many since the previous \
                 warning, this one included)"
            ),
            None => tracing::debug!(
                reason = %reason,
                key_id = key_id(),
                method = %parts.method,
                path = parts.uri.path(),
                "refused an unverified request"
            ),
        }
    }
}

impl Gate {
    pub(crate) fn new(verifier: Option<Verifier>) -> Gate {
        Gate {
            verifier,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            refusals: Arc::new(Refusals {
                throttle: Throttle::new(),
                started: Instant::now(),
            }),
        }
    }

    /// Admits a request whose head's signature was `checked` ([`check_head`](Gate::check_head),
    /// which the SERVER span is opened after): its nonce, its deadline, then the body under the
    /// limits. Gives the request as admitted, or the response that refuses it: 504 when the
    /// deadline has nothing left.
    ///
    /// A request another gate admitted already (a `VerifyLayer` in front of a generated
    /// server) has its signature checked again by this gate's verifier, but its nonce is not
    /// recorded again: see [`Admitted`].
    pub(crate) async fn admit<'v, B>(
        &'v self,
        checked: Checked<'v>,
        parts: &http::request::Parts,
        body: B,
    ) -> Result<Admission, Response<Bytes>>
    where
        B: Body,
        B::Error: Into<crate::BoxError>,
    {
        let unread = |refusal| closing_unread(refusal, parts);
        let (head, deadline, uncovered_deadline) =
            self.admit_head(checked, parts).await.map_err(unread)?;
        let bytes = self
            .take_body(parts, body, deadline)
            .await
            .map_err(unread)?;
        let (caller, admitted) = match head {
            Some(head) => {
                let admitted = head.admitted();
                let caller = head
                    .verify_body(&bytes)
                    .await
                    .map_err(|e| self.refused(e, parts))?;
                // Served by `server::serve`, the connection is a caller's from now on.
                #[cfg(feature = "server")]
                if let Some(connection) = parts
                    .extensions
                    .get::<crate::server::listen::CallerConnection>()
                {
                    connection.vouched_for();
                }
                (Some(caller), Some(admitted))
            }
            None => (None, None),
        };
        Ok(Admission {
            caller,
            admitted,
            body: bytes,
            deadline,
            uncovered_deadline,
        })
    }

    /// The 401 of a request that failed verification, reported. It names the scheme the
    /// request must be authenticated with, as a 401 must (RFC 9110 §11.6.1, §15.5.2):
    /// `Signature`, an HTTP message signature; the answer says no more (which key, which
    /// check failed), to the caller or to anyone probing.
    ///
    /// A request refused because the nonce store could not answer is not one whose signature
    /// failed: it gets a 503 with `Retry-After: 1`, which a client retries when it retries
    /// 503s (a comms client: for idempotent calls), with a fresh signature and nonce, where a
    /// 401 would end its call. It also counts as a failure for the caller's breaker, which a
    /// service that cannot check signatures is.
    fn refused(&self, reason: VerifyError, parts: &http::request::Parts) -> Response<Bytes> {
        self.refusals.report(&reason, parts, self.verifier.as_ref());
        if matches!(reason, VerifyError::NonceStore(_)) {
            return unavailable("service unavailable");
        }
        let mut response = reject(StatusCode::UNAUTHORIZED, "unauthorized");
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Signature"),
        );
        response
    }

    /// The signature over a request's head, checked over `uri` (the URI as the caller sent it,
    /// before any prefix was stripped) before anything is awaited: `None` for a gate without a
    /// verifier (`.unverified()`). [`admit`](Gate::admit) takes it on.
    pub(crate) fn check_head(&self, parts: &http::request::Parts, uri: &http::Uri) -> Checked<'_> {
        let Some(verifier) = &self.verifier else {
            return Ok(None);
        };
        let mut head = verifier.verify_head(&parts.method, uri, &parts.headers)?;
        if let Some(outer) = parts.extensions.get::<Admitted>() {
            head.behind(outer);
        }
        Ok(Some(head))
    }

    /// Whether the trace context of a request whose head was `checked` may be continued: its
    /// signature held and covers it, or the gate verifies nothing.
    pub(crate) fn trusts_trace(checked: &Checked<'_>) -> bool {
        checked
            .as_ref()
            .is_ok_and(|head| head.as_ref().is_none_or(VerifiedHead::covers_trace))
    }

    /// What [`admit`](Gate::admit) checks before reading a byte of the body: the signature
    /// over the head (`checked`), whether its nonce was seen, and the deadline the request
    /// arrived with, with whether it has a `Comms-Deadline-Ms` its signature does not cover
    /// (ignored). An unsigned or wrongly signed request costs no body read, nor does the replay
    /// of a signed one whose nonce the store holds, nor a copy of one being admitted: copies
    /// take turns (see [`VerifiedHead::take_turn`]).
    async fn admit_head<'v>(
        &'v self,
        checked: Checked<'v>,
        parts: &http::request::Parts,
    ) -> Result<(Option<VerifiedHead<'v>>, Option<Instant>, bool), Response<Bytes>> {
        // What is left of a deadline counts from here, before anything is awaited.
        let arrived = Instant::now();
        let head = match checked.map_err(|e| self.refused(e, parts))? {
            Some(mut head) => {
                // Held until the request is admitted or refused: a copy arriving meanwhile
                // waits here, then is refused at its head if one before it spent the nonce.
                // Each copy ahead holds the turn for its body timeout at most; the wait, for
                // the body timeout at most too, so that copies stalled on purpose cannot chain
                // it: then a 503 with `Retry-After`, which a comms client retries afresh.
                if within(self.body_timeout, head.take_turn()).await.is_err() {
                    tracing::debug!(
                        "a request waited its body timeout while copies of it were admitted"
                    );
                    return Err(unavailable("copies of this request are being admitted"));
                }
                if head.copy_spent() {
                    return Err(self.refused(head.replay(), parts));
                }
                match head.replayed().await {
                    Ok(false) => {}
                    Ok(true) => return Err(self.refused(head.replay(), parts)),
                    Err(e) => return Err(self.refused(e, parts)),
                }
                Some(head)
            }
            None => None,
        };
        let uncovered = head.as_ref().is_some_and(|head| !head.covers_deadline())
            && parts
                .headers
                .contains_key(crate::signing::COMMS_DEADLINE_MS);
        let deadline = if uncovered {
            tracing::debug!("Comms-Deadline-Ms is not covered by the request's signature; ignored");
            None
        } else {
            arrival_deadline(&parts.headers, arrived)
                .map_err(|(status, why)| reject(status, why))?
        };
        // Behind a gate that admitted the request already (a `VerifyLayer` in front of a
        // generated server), the deadline it put in scope holds: this gate's clock started
        // later, after the body was read.
        let deadline = match (deadline, crate::deadline::inherited()) {
            (Some(own), Some(outer)) => Some(own.min(outer)),
            (own, outer) => own.or(outer),
        };
        Ok((head, deadline, uncovered))
    }

    /// Reads the body whole under the size limit, in the time limit or what is left of the
    /// `deadline` if that is less.
    async fn take_body<B>(
        &self,
        parts: &http::request::Parts,
        body: B,
        deadline: Option<Instant>,
    ) -> Result<Bytes, Response<Bytes>>
    where
        B: Body,
        B::Error: Into<crate::BoxError>,
    {
        let limit = self.max_body_bytes;
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ));
        }
        let left = deadline.map(|at| at.saturating_duration_since(Instant::now()));
        // The request's own deadline, when it is the nearer limit, ends the wait as a deadline
        // does everywhere else: a 504, the caller's time being up, not the body being slow.
        let by_deadline = left.is_some_and(|left| left < self.body_timeout);
        let time = left.map_or(self.body_timeout, |left| left.min(self.body_timeout));
        match within(time, read_body(body, limit, declared)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(BodyError::TooLarge)) => Err(reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            )),
            Ok(Err(BodyError::Unreadable(e))) => {
                tracing::debug!(error = %e, "could not read the request body");
                Err(reject(StatusCode::BAD_REQUEST, "unreadable request body"))
            }
            Err(_) if by_deadline => Err(reject(
                StatusCode::GATEWAY_TIMEOUT,
                "the deadline passed before the request's body arrived",
            )),
            Err(_) => Err(reject(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            )),
        }
    }
}

/// A refusal answered before the request's body was read whole. When the request has a body
/// and came over HTTP/1, the refusal says `Connection: close`, and hyper closes the connection
/// after it. Without it, the unread rest of the body would stand between this answer and the
/// connection's next request, and hyper would close the connection anyway, but unannounced: a
/// client that had meanwhile sent its next request on it would get no answer at all.
fn closing_unread(mut refusal: Response<Bytes>, parts: &http::request::Parts) -> Response<Bytes> {
    let has_body = parts.headers.contains_key(TRANSFER_ENCODING)
        || parts
            .headers
            .get(CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0");
    if has_body && parts.version <= Version::HTTP_11 {
        refusal
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    refusal
}

/// A request head's signature as [`Gate::check_head`] found it: verified (`None` when the gate
/// verifies nothing), or why not.
pub(crate) type Checked<'v> = Result<Option<VerifiedHead<'v>>, VerifyError>;

/// A request a [`Gate`] let through.
pub(crate) struct Admission {
    /// Its authenticated caller; `None` without a verifier.
    pub(crate) caller: Option<Caller>,
    /// What a gate behind this one needs to know of it; `None` without a verifier.
    pub(crate) admitted: Option<Admitted>,
    /// Its body, read whole.
    pub(crate) body: Bytes,
    /// The deadline it arrived with (see [`deadline`](crate::deadline)).
    pub(crate) deadline: Option<Instant>,
    /// Whether it has a `Comms-Deadline-Ms` its signature does not cover, which was ignored.
    pub(crate) uncovered_deadline: bool,
}

/// The URI the caller signed: the request's own, or with the `server` feature the one an
/// axum router kept before a `nest` stripped its prefix.
pub(crate) fn signed_uri(parts: &http::request::Parts) -> http::Uri {
    #[cfg(feature = "server")]
    if let Some(original) = parts.extensions.get::<axum::extract::OriginalUri>() {
        return original.0.clone();
    }
    parts.uri.clone()
}

/// `inner`, unless `time` passes first: a timer, and the clock read at every poll. The body is
/// read in the connection's task, whose socket reads can spend the task's cooperative budget
/// before each poll (a peer streaming an endless chunk-size line of zeros, which hyper takes):
/// `tokio::time::timeout` then polls its timer under a budget spent already, and it does not
/// fire while the peer keeps sending.
async fn within<F: Future>(time: Duration, inner: F) -> Result<F::Output, ()> {
    let until = Instant::now() + time;
    let mut inner = std::pin::pin!(inner);
    let mut timer = std::pin::pin!(tokio::time::sleep(time));
    std::future::poll_fn(|cx| {
        if Instant::now() >= until {
            return Poll::Ready(Err(()));
        }
        if let Poll::Ready(out) = inner.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        timer.as_mut().poll(cx).map(Err)
    })
    .await
}

/// Why a request body was not read.
enum BodyError {
    /// More than the limit.
    TooLarge,
    /// The body broke off, or its stream failed.
    Unreadable(crate::BoxError),
}

/// Reads a request body of at most `limit` bytes (`declared` by its `Content-Length`, if it
/// has one) into one buffer (see [`Gathered`]).
async fn read_body<B>(body: B, limit: usize, declared: Option<u64>) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<crate::BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut gathered = Gathered::new(limit, declared);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let e: crate::BoxError = e.into();
            // A limit in front (tower-http's `RequestBodyLimitLayer`, `http_body_util::Limited`)
            // cut a body without a length short: too large, as a declared one would be.
            match over_a_limit(&*e) {
                true => BodyError::TooLarge,
                false => BodyError::Unreadable(e),
            }
        })?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers: not part of what was digested
        };
        // Without a copy when the body's data are `Bytes` already, as hyper's are.
        let chunk = data.copy_to_bytes(data.remaining());
        gathered.push(chunk).map_err(|_| BodyError::TooLarge)?;
    }
    Ok(gathered.take())
}

/// Whether a body's error is, or is caused by, `http_body_util`'s length limit.
fn over_a_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source())
        .any(|e| e.is::<http_body_util::LengthLimitError>())
}

/// The deadline a request arrives with (`Comms-Deadline-Ms` from when it `arrived`), or the
/// status and message that refuse it: 400 for a malformed value, 504 for nothing left.
pub(crate) fn arrival_deadline(
    headers: &http::HeaderMap,
    arrived: Instant,
) -> Result<Option<Instant>, (StatusCode, &'static str)> {
    match crate::deadline::from_headers(headers) {
        Ok(None) => Ok(None),
        Ok(Some(left)) if left.is_zero() => Err((
            StatusCode::GATEWAY_TIMEOUT,
            "the deadline passed before the request arrived",
        )),
        // A deadline too far for the clock to hold is none.
        Ok(Some(left)) => Ok(arrived.checked_add(left)),
        Err(()) => Err((StatusCode::BAD_REQUEST, "malformed Comms-Deadline-Ms")),
    }
}

impl VerifyLayer {
    /// A layer checking requests with `verifier`, with a 2 MiB body limit and 10 s to read
    /// the body.
    pub fn new(verifier: Verifier) -> VerifyLayer {
        VerifyLayer {
            gate: Gate::new(Some(verifier)),
        }
    }

    /// The largest body accepted; a larger one is answered with 413.
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> VerifyLayer {
        self.gate.max_body_bytes = limit;
        self
    }

    /// How long a signed request may take to deliver its body; after that it is answered 408
    /// (504 when what is left of the deadline the request carries is shorter, and runs out).
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> VerifyLayer {
        self.gate.body_timeout = timeout;
        self
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> VerifyService<S> {
        VerifyService {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// The service [`VerifyLayer`] wraps around its inner service.
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    inner: S,
    gate: Gate,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for VerifyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<crate::BoxError>,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The readied service handles this request; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let head_only = parts.method == http::Method::HEAD;
            let uri = signed_uri(&parts);
            let checked = gate.check_head(&parts, &uri);
            // Added with `Router::layer`, the layer runs after routing, and the span has the
            // route axum matched; a generated server behind it names it with its own template.
            let trace = ServerTrace::start_layer(
                &mut parts,
                &uri,
                gate.scheme(),
                Gate::trusts_trace(&checked),
            );
            let served = trace.run(async {
                match gate.admit(checked, &parts, body).await {
                    Ok(admission) => {
                        // Always a caller: this gate has a verifier.
                        if let Some(caller) = admission.caller {
                            parts.extensions.insert(caller);
                        }
                        if let Some(admitted) = admission.admitted {
                            parts.extensions.insert(admitted);
                        }
                        // Ignored here, so not passed on for a service behind to take (a
                        // generated server without a verifier, a handler reading it).
                        if admission.uncovered_deadline {
                            parts.headers.remove(crate::signing::COMMS_DEADLINE_MS);
                        }
                        let body = ReqBody::from(admission.body);
                        let served = inner.call(Request::from_parts(parts, body));
                        crate::deadline::scope(admission.deadline, served).await
                    }
                    Err(refusal) => Ok(refusal.map(ResBody::from)),
                }
            });
            let mut response = served.await;
            match &mut response {
                Ok(response) => end_trace(trace, response, head_only),
                // No answer, but not for the caller's hanging up.
                Err(_) => trace.end_unanswered(),
            }
            response
        })
    }
}

/// Ends the request's trace with its answer's status; or, for a generated server's streamed
/// answer, hands it to the body, which ends it (a HEAD's body is never read). The layer's, and
/// the generated server's when no layer is in front of it.
pub(crate) fn end_trace<B>(trace: ServerTrace, response: &mut Response<B>, head_only: bool) {
    #[cfg(feature = "server")]
    if let Some(slot) = response
        .extensions_mut()
        .remove::<crate::server::stream::TraceSlot>()
        && !head_only
    {
        slot.fill(trace);
        return;
    }
    let _ = head_only;
    trace.end(response.status());
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http_body::Frame;

    use super::*;

    /// A body whose frames are given.
    struct Frames(VecDeque<Bytes>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    /// A future polled with its task's cooperative budget spent first, as the body's read is
    /// when the connection's socket reads have spent it (a peer streaming chunk-size padding).
    struct Starved<F>(Pin<Box<F>>);

    impl<F: Future> Future for Starved<F> {
        type Output = F::Output;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            while let Poll::Ready(spent) = tokio::task::coop::poll_proceed(cx) {
                spent.made_progress();
            }
            self.0.as_mut().poll(cx)
        }
    }

    #[tokio::test]
    async fn the_body_timeout_ends_a_read_polled_with_its_tasks_budget_spent() {
        let body = std::future::pending::<()>();
        let starved = Starved(Box::pin(within(Duration::from_millis(50), body)));
        // The guard around it polls its own timer with the budget it finds spent: it fires.
        let ended = tokio::time::timeout(Duration::from_secs(5), starved).await;
        assert_eq!(ended, Ok(Err(())), "the body's timeout never fired");
    }

    fn read(frames: Vec<Bytes>, limit: usize) -> Result<Bytes, BodyError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(read_body(Frames(frames.into()), limit, None))
    }

    #[test]
    fn a_body_of_many_small_frames_is_copied_into_one_buffer() {
        // Each frame a byte of one large buffer, as a reader's buffer would be: the body read
        // holds none of it.
        let buffer = Bytes::from(vec![7u8; 4096]);
        let frames = (0..100).map(|i| buffer.slice(i..i + 1)).collect();
        let body = read(frames, 1024).ok().expect("under the limit");
        assert_eq!(&body[..], &[7u8; 100][..]);
        let held = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
        assert!(
            !held.contains(&(body.as_ptr() as usize)),
            "a copy, not a slice"
        );
        // One frame is kept as it came.
        let one = read(vec![buffer.slice(..10)], 1024).ok().unwrap();
        assert_eq!(one.as_ptr(), buffer.as_ptr());
    }

    #[test]
    fn a_body_over_the_limit_is_refused_whatever_its_frames() {
        let frames = (0..11).map(|_| Bytes::from_static(b"0123456789")).collect();
        assert!(matches!(read(frames, 100), Err(BodyError::TooLarge)));
        assert!(matches!(
            read(vec![Bytes::from(vec![0u8; 101])], 100),
            Err(BodyError::TooLarge)
        ));
        assert_eq!(
            read(vec![Bytes::from(vec![0u8; 100])], 100)
                .ok()
                .unwrap()
                .len(),
            100
        );
    }
}
