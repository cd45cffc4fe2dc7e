//! Verification in front of a tower service or an axum router.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_layer::Layer;
use tower_service::Service;

use super::{Caller, Verifier, VerifyError};
use crate::error::message_response as reject;
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
/// request's body is then read under a size limit (413 beyond it) and a time limit (408), and
/// only then are the body's digest and the nonce checked. A refusal is answered with
/// `{"message": "unauthorized"}`; the reason goes to the log, not to the caller, as a `WARN`
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
/// the layer must see the request before any prefix is stripped.
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

/// Refused requests, reported at most once every 10 s with their count (see [`Throttle`]): a
/// flood of bad requests must not become a flood of log lines.
#[derive(Debug)]
struct Refusals {
    throttle: Throttle,
    started: Instant,
}

impl Refusals {
    fn report(&self, reason: &VerifyError, parts: &http::request::Parts) {
        let now_ms = self.started.elapsed().as_millis() as u64;
        match self.throttle.count(now_ms) {
            Some(refused) => tracing::warn!(
                refused,
                reason = %reason,
                method = %parts.method,
                path = parts.uri.path(),
                "refused unverified requests since the last report; the latest"
            ),
            None => tracing::debug!(
                reason = %reason,
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

    /// Checks a request whose signature covers `uri` (the URI as the caller sent it, before
    /// any prefix was stripped): the head first, then the body under the limits. Gives the
    /// caller (`None` without a verifier), the body and the deadline the request arrived with
    /// (see [`deadline`](crate::deadline)), or the response that refuses the request: 504 when
    /// the deadline has nothing left.
    pub(crate) async fn admit<B>(
        &self,
        parts: &http::request::Parts,
        uri: &http::Uri,
        body: B,
    ) -> Result<(Option<Caller>, Bytes, Option<Instant>), Response<Bytes>>
    where
        B: Body,
        B::Error: Into<crate::BoxError>,
    {
        let refused = |e: VerifyError| {
            self.refusals.report(&e, parts);
            reject(StatusCode::UNAUTHORIZED, "unauthorized")
        };
        // The head first: an unsigned or wrongly signed request costs no body read.
        let head = match &self.verifier {
            Some(verifier) => Some(
                verifier
                    .verify_head(&parts.method, uri, &parts.headers)
                    .map_err(refused)?,
            ),
            None => None,
        };
        let deadline =
            arrival_deadline(&parts.headers).map_err(|(status, why)| reject(status, why))?;
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
        // The body may take the time limit, or what is left of the deadline if that is less.
        let time = deadline.map_or(self.body_timeout, |at| {
            self.body_timeout
                .min(at.saturating_duration_since(Instant::now()))
        });
        let read = tokio::time::timeout(time, Limited::new(body, limit).collect());
        let bytes = match read.await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(reject(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                ));
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "could not read the request body");
                return Err(reject(StatusCode::BAD_REQUEST, "unreadable request body"));
            }
            Err(_) => {
                return Err(reject(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                ));
            }
        };
        let caller = match head {
            Some(head) => Some(head.verify_body(&bytes).await.map_err(refused)?),
            None => None,
        };
        Ok((caller, bytes, deadline))
    }
}

/// The deadline a request arrives with (`Comms-Deadline-Ms` from now), or the status and
/// message that refuse it: 400 for a malformed value, 504 for nothing left.
pub(crate) fn arrival_deadline(
    headers: &http::HeaderMap,
) -> Result<Option<Instant>, (StatusCode, &'static str)> {
    match crate::deadline::from_headers(headers) {
        Ok(None) => Ok(None),
        Ok(Some(left)) if left.is_zero() => Err((
            StatusCode::GATEWAY_TIMEOUT,
            "the deadline passed before the request arrived",
        )),
        Ok(Some(left)) => Ok(Some(Instant::now() + left)),
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

    /// How long a signed request may take to deliver its body; after that it is answered 408.
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
            let uri = parts.uri.clone();
            // The layer runs before routing: the span has no route.
            let trace = ServerTrace::start(&parts.method, &uri, &parts.headers, None);
            let served = trace.run(async move {
                match gate.admit(&parts, &uri, body).await {
                    Ok((caller, bytes, deadline)) => {
                        // Always a caller: this gate has a verifier.
                        if let Some(caller) = caller {
                            parts.extensions.insert(caller);
                        }
                        let served = inner.call(Request::from_parts(parts, ReqBody::from(bytes)));
                        crate::deadline::scope(deadline, served).await
                    }
                    Err(refusal) => Ok(refusal.map(ResBody::from)),
                }
            });
            let response = served.await;
            if let Ok(response) = &response {
                trace.end(response.status());
            }
            response
        })
    }
}
