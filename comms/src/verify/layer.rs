//! Verification in front of a tower service or an axum router.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_layer::Layer;
use tower_service::Service;

use super::Verifier;

/// The default body limit of [`VerifyLayer`]: 2 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A tower layer that verifies every request before the inner service sees it.
///
/// It buffers the body (up to a limit; beyond it the answer is 413), checks it with the
/// [`Verifier`], answers 401 with `{"message": "unauthorized"}` when the check fails (the reason
/// goes to the log, not to the caller), and otherwise passes the request on with the
/// [`Caller`](super::Caller) in its extensions:
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
    verifier: Verifier,
    max_body_bytes: usize,
}

impl VerifyLayer {
    /// A layer checking requests with `verifier`, with a 2 MiB body limit.
    pub fn new(verifier: Verifier) -> VerifyLayer {
        VerifyLayer {
            verifier,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// The largest body accepted; a larger one is answered with 413.
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> VerifyLayer {
        self.max_body_bytes = limit;
        self
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> VerifyService<S> {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
            max_body_bytes: self.max_body_bytes,
        }
    }
}

/// The service [`VerifyLayer`] wraps around its inner service.
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
    max_body_bytes: usize,
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
        let verifier = self.verifier.clone();
        let limit = self.max_body_bytes;
        Box::pin(async move {
            let declared = request
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|len| len > limit as u64) {
                return Ok(reject(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                ));
            }
            let (mut parts, body) = request.into_parts();
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                    return Ok(reject(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large",
                    ));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "could not read the request body");
                    return Ok(reject(StatusCode::BAD_REQUEST, "unreadable request body"));
                }
            };
            match verifier
                .verify(&parts.method, &parts.uri, &parts.headers, &bytes)
                .await
            {
                Ok(caller) => {
                    parts.extensions.insert(caller);
                    inner
                        .call(Request::from_parts(parts, ReqBody::from(bytes)))
                        .await
                }
                Err(e) => {
                    tracing::warn!(
                        reason = %e,
                        method = %parts.method,
                        path = parts.uri.path(),
                        "refused an unverified request"
                    );
                    Ok(reject(StatusCode::UNAUTHORIZED, "unauthorized"))
                }
            }
        })
    }
}

fn reject<B: From<Bytes>>(status: StatusCode, message: &str) -> Response<B> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(B::from(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
