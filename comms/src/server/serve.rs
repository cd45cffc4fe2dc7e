//! What runs each request of a generated server: the gate (with no verifier after `unverified()`),
//! the `Idempotency-Key` claim for an idempotent method, then the method with the verified
//! caller in a task-local ([`caller()`]) and its panics caught into a 500. `Settings` is what
//! a generated `<Trait>Server` keeps of how to do that.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;

use super::{
    Answer, Claim, IdempotencyStore, Incoming, MemoryIdempotencyStore, StoredResponse,
    respond_message,
};
use crate::telemetry::ServerTrace;
use crate::verify::layer::Gate;
use crate::verify::{Caller, Verifier};

tokio::task_local! {
    static CALLER: Caller;
}

/// The verified caller of the request being served.
///
/// # Panics
///
/// Outside a method running in a generated server (or in one built with `unverified()`,
/// whose requests have no verified caller).
pub fn caller() -> Caller {
    CALLER.try_with(Caller::clone).unwrap_or_else(|_| {
        panic!(
            "comms::server::caller() is only available inside a method served by a generated \
             server that verifies its requests"
        )
    })
}

/// What is left of the deadline the request being served arrived with (`Comms-Deadline-Ms`):
/// `None` when it came with none, or outside a served method. Every comms call the method
/// makes is bounded by it already; this is for work of its own.
pub fn deadline() -> Option<std::time::Duration> {
    crate::deadline::remaining()
}

/// How a generated server checks requests: the gate they pass (with or without a verifier,
/// `unverified()`) and where the answers of idempotent methods are kept.
#[doc(hidden)]
#[derive(Clone)]
pub struct Settings {
    gate: Gate,
    idempotency: Arc<dyn IdempotencyStore>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    /// A verifier that knows no key: every request is refused until one is given.
    fn default() -> Self {
        Settings {
            gate: Gate::new(Some(Verifier::new())),
            idempotency: Arc::new(MemoryIdempotencyStore::default()),
        }
    }
}

impl Settings {
    /// Checks requests with `verifier`.
    pub fn verifier(&mut self, verifier: Verifier) {
        self.gate.verifier = Some(verifier);
    }

    /// Serves requests without checking them.
    pub fn unverified(&mut self) {
        self.gate.verifier = None;
    }

    /// Keeps the answers of idempotent methods in `store`.
    pub fn idempotency_store(&mut self, store: impl IdempotencyStore) {
        self.idempotency = Arc::new(store);
    }

    /// The largest body a request may have.
    pub fn max_body_bytes(&mut self, limit: usize) {
        self.gate.max_body_bytes = limit;
    }
}

/// Runs one request through the gate and then `method`, with the verified caller in scope; a
/// panic in the method is caught and becomes a 500 for this request only. `route` is the
/// method's route template; for a method marked `idempotent`, a repeated `Idempotency-Key` is
/// answered from the store. With `otel`, all of it runs in the request's SERVER span.
#[doc(hidden)]
pub async fn handle<F, Fut, A>(
    settings: &Settings,
    request: axum::extract::Request,
    route: &'static str,
    idempotent: bool,
    method: F,
) -> axum::response::Response
where
    F: FnOnce(Incoming) -> Fut,
    Fut: Future<Output = A> + Send + 'static,
    A: Into<Answer>,
{
    let (parts, body) = request.into_parts();
    // The signature covers the URI as the caller sent it, prefix included.
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |original| original.0.clone());
    let trace = ServerTrace::start(&parts.method, &uri, &parts.headers, Some(route));
    let served = serve(
        settings,
        parts,
        uri,
        body,
        idempotent.then_some(route),
        method,
    );
    let response = trace.run(served).await;
    trace.end(response.status());
    response
}

/// [`handle`] inside the span.
async fn serve<F, Fut, A>(
    settings: &Settings,
    parts: http::request::Parts,
    uri: http::Uri,
    body: axum::body::Body,
    idempotent: Option<&'static str>,
    method: F,
) -> axum::response::Response
where
    F: FnOnce(Incoming) -> Fut,
    Fut: Future<Output = A> + Send + 'static,
    A: Into<Answer>,
{
    let (caller, body, deadline) = match settings.gate.admit(&parts, &uri, body).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.map(axum::body::Body::from),
    };
    let claim = match idempotent {
        Some(route) => match claim(settings, route, caller.as_ref(), &parts, &uri, &body).await {
            Ok(claim) => claim,
            Err(answer) => return answer.map(axum::body::Body::from),
        },
        None => None,
    };
    let path = parts.uri.path().to_owned();
    let verb = parts.method.clone();
    let run = method(Incoming { parts, body });
    let outcome = match caller {
        Some(caller) => {
            CatchUnwind::new(CALLER.scope(caller, crate::deadline::scope(deadline, run))).await
        }
        None => CatchUnwind::new(crate::deadline::scope(deadline, run)).await,
    };
    let response = match outcome.map(Into::into) {
        Ok(Answer::Whole(response)) => response,
        Ok(Answer::Streamed(response)) => {
            // A streamed answer cannot be kept to answer a retry with: the key is released.
            // (A generated server has no idempotent method returning a stream.)
            if let Some((scope, key)) = claim
                && let Err(e) = settings.idempotency.release(&scope, &key).await
            {
                tracing::warn!(error = %e, "could not release an idempotency key");
            }
            return response;
        }
        Err(panic) => {
            let what = panic_message(panic.as_ref());
            tracing::error!(method = %verb, path, panic = what, "a served method panicked");
            respond_message(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    };
    if let Some((scope, key)) = claim {
        let store = &settings.idempotency;
        let kept = if response.status().is_server_error() {
            // A failure is not an answer: a retry runs the method again.
            store.release(&scope, &key).await
        } else {
            let stored = StoredResponse {
                status: response.status(),
                headers: response.headers().clone(),
                body: response.body().clone(),
            };
            store.finish(&scope, &key, stored).await
        };
        if let Err(e) = kept {
            tracing::warn!(error = %e, "could not keep an idempotent answer");
        }
    }
    response.map(axum::body::Body::from)
}

/// What a caught panic says, when it says it in text.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

pin_project_lite::pin_project! {
    /// A future whose panics are caught, poll by poll, and returned as its output's error.
    struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

impl<F> CatchUnwind<F> {
    fn new(inner: F) -> CatchUnwind<F> {
        CatchUnwind { inner }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.project().inner;
        // The future is dropped after a panic, never polled again, so no broken state of it is
        // ever observed.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

/// Claims the request's `Idempotency-Key`, if it has one: `Ok(Some((scope, key)))` to run the
/// method and keep its answer, `Ok(None)` to just run it, `Err(response)` to answer at once
/// (the kept answer, a 409 while the first request runs, a 422 for a key reused for another
/// request, a 503 when the store cannot tell).
async fn claim(
    settings: &Settings,
    route: &'static str,
    caller: Option<&Caller>,
    parts: &http::request::Parts,
    uri: &http::Uri,
    body: &Bytes,
) -> Result<Option<(String, String)>, http::Response<Bytes>> {
    let Some(key) = parts
        .headers
        .get(&crate::signing::IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let scope = format!(
        "{}|{} {route}",
        caller.map_or("", Caller::service_id),
        parts.method
    );
    let fingerprint = request_fingerprint(uri, body);
    match settings.idempotency.claim(&scope, key, &fingerprint).await {
        Ok(Claim::New) => Ok(Some((scope, key.to_owned()))),
        Ok(Claim::Answered(stored)) => {
            let mut response = http::Response::new(stored.body);
            *response.status_mut() = stored.status;
            *response.headers_mut() = stored.headers;
            Err(response)
        }
        Ok(Claim::InProgress) => Err(respond_message(
            StatusCode::CONFLICT,
            "a request with this Idempotency-Key is still running",
        )),
        Ok(Claim::Mismatch) => Err(respond_message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this Idempotency-Key was used for a different request",
        )),
        Err(e) => {
            tracing::warn!(error = %e, "the idempotency store could not answer; request refused");
            Err(respond_message(
                StatusCode::SERVICE_UNAVAILABLE,
                "idempotency store unavailable",
            ))
        }
    }
}

/// What tells one request under an `Idempotency-Key` from another on the same route: the
/// SHA-256 of its target (path and query, as the caller sent them) and its body, hex-encoded.
/// The target's length comes first, so no split of the same bytes between the two collides.
fn request_fingerprint(uri: &http::Uri, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let target = uri.path_and_query().map_or("/", |target| target.as_str());
    let mut hash = Sha256::new();
    hash.update((target.len() as u64).to_be_bytes());
    hash.update(target.as_bytes());
    hash.update(body);
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_tells_targets_and_bodies_apart() {
        let of =
            |uri: &str, body: &str| request_fingerprint(&uri.parse().unwrap(), body.as_bytes());
        let first = of("/accounts/1/charge", "10");
        assert_eq!(first, of("/accounts/1/charge", "10"));
        assert_ne!(first, of("/accounts/2/charge", "10"), "another path");
        assert_ne!(
            first,
            of("/accounts/1/charge?currency=eur", "10"),
            "another query"
        );
        assert_ne!(first, of("/accounts/1/charge", "11"), "another body");
        // The same bytes split differently between target and body.
        assert_ne!(of("/a", "bc"), of("/ab", "c"));
    }

    #[test]
    #[should_panic(expected = "only available inside a method served")]
    fn caller_outside_a_handler_panics_saying_so() {
        let _ = caller();
    }
}
