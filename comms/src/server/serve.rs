//! What runs each request of a generated server: the gate (with no verifier after `unverified()`),
//! the `Idempotency-Key` claim for an idempotent method, then the method with the verified
//! caller in a task-local ([`caller()`]) and its panics caught into a 500; a claimed method
//! runs in a task of its own, to its end, and its answer is kept for the key (see
//! `idempotency.rs`). `Settings` is what a generated `<Trait>Server` keeps of how to do that.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use tracing::Instrument;

use super::listen::ShutdownHold;
use super::{
    Answer, Claim, IdempotencyStore, Incoming, MemoryIdempotencyStore, StoredResponse,
    internal_error, ran_unanswerable, respond_message,
};
use crate::telemetry::ServerTrace;
use crate::verify::layer::{Checked, Gate};
use crate::verify::{Caller, CoveredFields, Verifier};

tokio::task_local! {
    static CALLER: Caller;
}

/// The verified caller of the request being served.
///
/// # Panics
///
/// Outside a method running in a generated server (or in one built with `unverified()`,
/// whose requests have no verified caller); [`try_caller`] is `None` there instead.
pub fn caller() -> Caller {
    try_caller().unwrap_or_else(|| {
        panic!(
            "comms::server::caller() is only available inside a method served by a generated \
             server that verifies its requests (comms::server::try_caller() is None elsewhere)"
        )
    })
}

/// The verified caller of the request being served, or `None` where [`caller`] panics:
/// outside a served method (a unit test calling the implementation, a task the method
/// spawned, a streamed answer being read) and in a server built with `unverified()`.
///
/// ```
/// // Called directly, as a unit test calls an implementation: no request, no caller.
/// assert!(comms::server::try_caller().is_none());
/// ```
pub fn try_caller() -> Option<Caller> {
    CALLER.try_with(Caller::clone).ok()
}

/// What is left of the deadline the request being served arrived with (`Comms-Deadline-Ms`):
/// `None` when it came with none, or outside a served method. Every comms call the method
/// makes is bounded by it already (those a streamed answer makes for its items, as its body is
/// sent, too); this is for work of its own.
///
/// The deadline is the serving task's: a task the method spawns (`tokio::spawn`, a `JoinSet`)
/// does not inherit it. Hand it over as a view's deadline:
///
/// ```no_run
/// # async fn handler(users: comms::Executor) -> Result<(), comms::Error> {
/// use comms::CallOptions;
///
/// let users = match comms::server::deadline() {
///     Some(left) => users.with(CallOptions::new().deadline(left)),
///     None => users,
/// };
/// tokio::spawn(async move { users.execute(comms::Call::get("/users/7")).await });
/// # Ok(())
/// # }
/// ```
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
    /// The trait served, by its path and the authority of the base URL it names, which scopes
    /// its idempotency
    /// keys: two services serving different traits from one store do not answer each other's,
    /// though the traits share a name.
    service: &'static str,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("verifier", &self.gate.verifier)
            .field("max_body_bytes", &self.gate.max_body_bytes)
            .field("body_timeout", &self.gate.body_timeout)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Settles, as `server`'s router is built, that it serves the trait `service` (its module
    /// path and the authority of the base URL it names, `api::Orders at orders:8080`); and
    /// warns when its verifier knows no key (a server given neither `.verifier(..)` nor
    /// `.unverified()`): every request it gets will be refused with a 401, which is safe, but
    /// surprising to find out only from a caller.
    pub fn serving(&mut self, service: &'static str, server: &str) {
        self.service = service;
        if self
            .gate
            .verifier
            .as_ref()
            .is_some_and(Verifier::knows_no_key)
        {
            tracing::warn!(
                server,
                "a generated server's verifier knows no key, so it refuses every request with \
                 a 401: give it `.verifier(Verifier::new().service(..))` (or `.unverified()`, \
                 for tests)"
            );
        }
    }
}

impl Default for Settings {
    /// A verifier that knows no key: every request is refused until one is given.
    fn default() -> Self {
        Settings {
            gate: Gate::new(Some(Verifier::new())),
            idempotency: Arc::new(MemoryIdempotencyStore::default()),
            service: "",
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

    /// How long a request may take to deliver its body.
    pub fn body_timeout(&mut self, timeout: std::time::Duration) {
        self.gate.body_timeout = timeout;
    }
}

/// Runs one request through the gate and then `method`, with the verified caller in scope; a
/// panic in the method is caught and becomes a 500 for this request only. `route` is the
/// method's route template; for a method marked `idempotent` (`Some`, with its route's path
/// with the parameters unnamed, `/orders/<_>`, and the names of its `#[header]` arguments), a
/// repeated `Idempotency-Key` is answered from the store. With `otel`, all of it runs in the
/// request's SERVER span.
#[doc(hidden)]
pub async fn handle<F, Fut, A>(
    settings: &Settings,
    request: axum::extract::Request,
    route: &'static str,
    idempotent: Option<(&'static str, &'static [&'static str])>,
    method: F,
) -> axum::response::Response
where
    F: FnOnce(Incoming) -> Fut,
    Fut: Future<Output = A> + Send + 'static,
    A: Into<Answer>,
{
    let (parts, body) = request.into_parts();
    // A HEAD's body is never read (axum answers it with its GET's head): its trace ends there.
    let head_only = parts.method == http::Method::HEAD;
    let http10 = parts.version < http::Version::HTTP_11;
    // The signature covers the URI as the caller sent it, prefix included.
    let uri = crate::verify::layer::signed_uri(&parts);
    // Behind `VerifyLayer`, the request is in the layer's SERVER span already, which ends it.
    let checked = settings.gate.check_head(&parts, &uri);
    let (trace, behind_layer) = match ServerTrace::behind_layer(&parts.extensions, route) {
        Some(trace) => (trace, true),
        None => {
            let scheme = settings.gate.scheme();
            let trusted = Gate::trusts_trace(&checked);
            let trace = ServerTrace::start_served(&parts, &uri, route, scheme, trusted);
            (trace, false)
        }
    };
    let served = serve(
        settings,
        checked,
        parts,
        uri,
        body,
        idempotent.map(|(shape, headers)| Idempotent { shape, headers }),
        method,
    );
    let mut response = trace
        .run(async {
            let response = served.await;
            match http10 && !head_only {
                true => super::stream::gathered_for_http10(response).await,
                false => response,
            }
        })
        .await;
    // The body is framed as it is sent: a `Content-Length` a method answered with (one it
    // received from another service, say) means the size of the resource only for a HEAD.
    if !head_only {
        response.headers_mut().remove(http::header::CONTENT_LENGTH);
    } else {
        unsized_if_empty(&mut response);
    }
    // A streamed body outlives this future: it ends the trace when it ends. Behind the layer,
    // the layer's trace is the request's, and the layer hands it to the body.
    if !behind_layer {
        crate::verify::layer::end_trace(trace, &mut response, head_only);
    }
    response
}

/// A HEAD's answer with an empty body and no `Content-Length` (a `#[head]` method's own) is
/// sent with none: axum would write `0` for an empty body, where a HEAD answer's length, when
/// sent, is the one its GET would send (RFC 9110, section 8.6). A HEAD served by a GET's method
/// has that method's body, and its length; one a method gave itself is kept.
fn unsized_if_empty(response: &mut axum::response::Response) {
    let empty = http_body::Body::size_hint(response.body()).exact() == Some(0);
    let length = response
        .headers()
        .contains_key(http::header::CONTENT_LENGTH);
    if empty && !length {
        *response.body_mut() = axum::body::Body::new(LengthUnknown);
    }
}

/// An empty body that does not say it is empty, so that no length is written for it.
struct LengthUnknown;

impl http_body::Body for LengthUnknown {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(None)
    }
}

/// [`handle`] inside the span.
async fn serve<'s, F, Fut, A>(
    settings: &'s Settings,
    checked: Checked<'s>,
    parts: http::request::Parts,
    uri: http::Uri,
    body: axum::body::Body,
    idempotent: Option<Idempotent>,
    method: F,
) -> axum::response::Response
where
    F: FnOnce(Incoming) -> Fut,
    Fut: Future<Output = A> + Send + 'static,
    A: Into<Answer>,
{
    // An Idempotency-Key the signature does not cover is refused once the request is
    // admitted (a bad signature is a 401 first): it could be anybody's, and a key is a promise
    // that runs the method once.
    // Unverified behind a `VerifyLayer`, the layer's signature is the one that vouches.
    let covered = match &checked {
        Ok(Some(head)) => head.covered_fields(),
        _ => parts
            .extensions
            .get::<Caller>()
            .map_or_else(CoveredFields::default, Caller::covered_fields),
    };
    let uncovered_key = idempotent.is_some()
        && parts.headers.contains_key(&crate::signing::IDEMPOTENCY_KEY)
        && !covered.covers("idempotency-key");
    let (caller, body, deadline) = match settings.gate.admit(checked, &parts, body).await {
        Ok(admission) => (admission.caller, admission.body, admission.deadline),
        Err(refusal) => return refusal.map(axum::body::Body::from),
    };
    if uncovered_key {
        return respond_message(
            StatusCode::BAD_REQUEST,
            "the request's signature must cover its Idempotency-Key",
        )
        .map(axum::body::Body::from);
    }
    let claim = match idempotent {
        Some(idempotent) => {
            let request = (&parts, &uri, &body, &covered);
            // Unverified behind a `VerifyLayer`, the keys are those of the caller the layer
            // verified: one caller's key must not answer another's request.
            let owner = caller.as_ref().or_else(|| parts.extensions.get::<Caller>());
            match claim(settings, idempotent, owner, request, deadline).await {
                Ok(claim) => claim,
                Err(answer) => return answer.map(axum::body::Body::from),
            }
        }
        None => None,
    };
    let path = parts.uri.path().to_owned();
    let verb = parts.method.clone();
    let hold = parts.extensions.get::<ShutdownHold>().cloned();
    let run = run_scoped(
        caller,
        deadline,
        method(Incoming {
            parts,
            body,
            covered,
        }),
    );
    if idempotent.is_none() {
        return answer(run.await, &verb, &path).into();
    }
    // A method marked `idempotent` runs to its end in a task of its own, even when this
    // request is dropped first (its caller timed out or hung up), whether or not the request
    // carries a key: the mark says its work must not stop half done. With a claimed key, its
    // answer is then kept for the retry that follows, where a method cut off halfway would
    // leave the key claimed and the work half done. Under `serve`, a graceful shutdown waits
    // for it, as it waits for the requests in flight (`hold`, dropped when the task ends, or
    // when the key is settled, should the store have to be asked again).
    let store = Arc::clone(&settings.idempotency);
    let finished = {
        let held = claim.clone();
        async move {
            let answer = answer(run.await, &verb, &path);
            if let Some(held) = &held {
                settle(&store, held, to_keep(&answer), hold).await;
            }
            answer
        }
    };
    match tokio::spawn(crate::telemetry::in_current_trace(
        finished.in_current_span(),
    ))
    .await
    {
        Ok(answer) => answer.into(),
        // A panic outside the method (whose own are caught), in keeping its answer, or the
        // runtime shutting down: the key is released, so that a retry runs the method again.
        Err(_) => {
            if let Some(held) = &claim {
                settle(&settings.idempotency, held, None, None).await;
            }
            internal_error().map(axum::body::Body::from)
        }
    }
}

/// What a method marked `idempotent` is served with: its route's path with the parameters
/// unnamed (`/orders/<_>`), and the names of its `#[header]` arguments, which tell its requests
/// apart as their path, query and body do.
#[derive(Clone, Copy)]
struct Idempotent {
    shape: &'static str,
    headers: &'static [&'static str],
}

/// Runs a served method with the verified caller and the deadline it arrived with in scope,
/// catching its panics.
async fn run_scoped<Fut: Future>(
    caller: Option<Caller>,
    deadline: Option<Instant>,
    run: Fut,
) -> Result<Fut::Output, Box<dyn std::any::Any + Send>> {
    let run = crate::deadline::scope(deadline, run);
    match caller {
        Some(caller) => CatchUnwind::new(CALLER.scope(caller, run)).await,
        None => CatchUnwind::new(run).await,
    }
}

/// What a method's outcome answers: its own answer, or a 500 for a panic (logged).
fn answer<A: Into<Answer>>(
    outcome: Result<A, Box<dyn std::any::Any + Send>>,
    verb: &http::Method,
    path: &str,
) -> Answer {
    let answer = outcome.map_or_else(
        |panic| {
            let what = panic_message(panic.as_ref());
            tracing::error!(method = %verb, path, panic = what, "a served method panicked");
            Answer::Whole(internal_error())
        },
        Into::into,
    );
    let status = match &answer {
        Answer::Whole(response) => response.status(),
        Answer::Streamed(response) => response.status(),
    };
    if !status.is_informational() {
        return answer;
    }
    // A 1xx is no final answer: hyper would send a bare 500 of its own and close the
    // connection, or a 101 without the `Upgrade` it needs. The method ran (an idempotent
    // one's key keeps this answer), and answered with what HTTP cannot carry: a logged 500.
    tracing::error!(method = %verb, path, %status, "a served method answered with an informational status");
    Answer::Whole(ran_unanswerable())
}

/// What of a claimed method's answer is kept for its key: `None` for an answer that says the
/// request was not carried out (408, 429, a 5xx, a panic's 500, a refusal of its arguments
/// before the method ran) and for a streamed one, which cannot be kept. The 500 of a method
/// that returned a value its answer could not carry ([`Ran`](super::Ran)) is kept: the work
/// was done, and a retry must not do it again.
fn to_keep(answer: &Answer) -> Option<&http::Response<Bytes>> {
    match answer {
        Answer::Whole(response)
            if (is_kept(response.status())
                || response.extensions().get::<super::Ran>().is_some())
                && response.extensions().get::<super::Unrun>().is_none() =>
        {
            Some(response)
        }
        _ => None,
    }
}

/// The copy of a kept answer a store is given.
fn stored(response: &http::Response<Bytes>) -> StoredResponse {
    StoredResponse {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.body().clone(),
    }
}

/// A key a request claimed: its scope, the key, and the claim's own name.
#[derive(Clone)]
struct Held {
    scope: String,
    key: String,
    claim: String,
}

/// How long `settle` waits before asking a store that failed again: at first, and at most.
const SETTLE_PAUSES: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// How many times `settle` asks again a store that failed: with `SETTLE_PAUSES`, for about
/// half a minute.
const SETTLE_TRIES: u32 = 12;

/// Keeps a claimed key's answer, or without one releases the key, so that a retry runs the
/// method again.
///
/// A store that fails (a Redis stalled past its timeout) is asked again in the background,
/// with pauses growing from 100 ms to 5 s, for about half a minute: a key left claimed
/// answers every retry with a 409 until the store lets its claim lapse (an hour, for
/// `RedisIdempotencyStore`), and a claim cut off by a stalled store may be carried out once
/// it answers again, after the first release. Asking again is safe: a store finishes or
/// releases only a key its claim still holds, and only once.
///
/// `hold`, the request's hold on `serve`'s graceful shutdown, is kept until the key is
/// settled: a shutdown while the store is asked again waits for it (up to its timeout), where
/// the process ending would leave the key claimed until it lapses.
async fn settle(
    store: &Arc<dyn IdempotencyStore>,
    held: &Held,
    kept: Option<&http::Response<Bytes>>,
    hold: Option<ShutdownHold>,
) {
    let Err(e) = settle_once(&**store, held, kept.map(stored)).await else {
        return;
    };
    tracing::warn!(error = %e, "could not keep or release an idempotency key; asking again");
    // A copy to ask again with, made only now: the one given the store is gone.
    let (store, held, kept) = (Arc::clone(store), held.clone(), kept.map(stored));
    tokio::spawn(async move {
        let _hold = hold;
        let mut pause = SETTLE_PAUSES.0;
        let mut last = e;
        for _ in 0..SETTLE_TRIES {
            tokio::time::sleep(pause).await;
            match settle_once(&*store, &held, kept.clone()).await {
                Ok(()) => return,
                Err(e) => last = e,
            }
            pause = (pause * 2).min(SETTLE_PAUSES.1);
        }
        tracing::warn!(
            error = %last,
            "could not keep or release an idempotency key; it stays claimed until the store lets it go"
        );
    });
}

/// Asks the store once to keep `kept` for `held`'s key, or without it to release the key.
async fn settle_once(
    store: &dyn IdempotencyStore,
    held: &Held,
    kept: Option<StoredResponse>,
) -> Result<(), crate::BoxError> {
    let Held { scope, key, claim } = held;
    match kept {
        Some(stored) => store.finish(scope, key, claim, stored).await,
        None => store.release(scope, key, claim).await,
    }
}

/// Whether an idempotent method's answer with `status` is kept for its key: not when it asks
/// for the request again (408 Request Timeout, 429 Too Many Requests), is a server error, or
/// passes on a dependency's refusal (424 Failed Dependency: the dependency may answer
/// otherwise later, a `409` of its own that its key's first run is still going among them).
fn is_kept(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::FAILED_DEPENDENCY)
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

/// How long a repeat of an idempotent request that is still running waits for its answer
/// before it is refused with a 409: well inside a comms client's default attempt timeout
/// (10 s), so that such a client is told 409 rather than timing out.
const REPEAT_WAIT: Duration = Duration::from_secs(5);

/// The longest `Idempotency-Key` a server takes, in bytes.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Claims the request's `Idempotency-Key`, if it has one: `Ok(Some(held))` to run the
/// method and keep its answer, `Ok(None)` to just run it, `Err(response)` to answer at once
/// (the kept answer, also when the first request finishes while this one waits for it; a 409
/// when it is still running after the wait; a 422 for a key reused for another request on
/// the route; a 400 for a key that is empty, longer than 255 bytes or not visible ASCII (a
/// space included); a 503 when the store cannot tell).
async fn claim(
    settings: &Settings,
    Idempotent { shape, headers }: Idempotent,
    caller: Option<&Caller>,
    (parts, uri, body, covered): (&http::request::Parts, &http::Uri, &Bytes, &CoveredFields),
    deadline: Option<Instant>,
) -> Result<Option<Held>, http::Response<Bytes>> {
    let Some(key) = parts.headers.get(&crate::signing::IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    // A key is kept as long as its answer: a bounded one, so that a caller cannot fill the
    // store with its keys. One that cannot be read is refused, not run without its promise.
    let key = match key.to_str() {
        Ok(key)
            if (1..=MAX_IDEMPOTENCY_KEY).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            key
        }
        _ => {
            return Err(respond_message(
                StatusCode::BAD_REQUEST,
                "an Idempotency-Key is 1 to 255 visible ASCII characters",
            ));
        }
    };
    // The `#[header]` arguments as the method sees them: one the signature does not cover is
    // absent to it (a proxy's own `X-Request-Id`, new on each retry, must not tell the retry
    // from its first).
    let fingerprint = request_fingerprint(uri, (headers, covered), &parts.headers, body);
    // The claim's name, unique to this request: the store lets only it answer or free the key.
    let claim = match crate::random::random_bytes() {
        Ok(bytes) => hex::encode(bytes),
        Err(e) => {
            tracing::warn!(error = %e, "no claim for an idempotency key; request refused");
            return Err(store_unavailable());
        }
    };
    // A repeat of a request that is still running waits for its answer, for as long as the
    // repeat's deadline allows and at most `REPEAT_WAIT`: the usual repeat is a client's retry
    // after its first attempt timed out, and the first, left to run, answers both.
    let until = Instant::now() + REPEAT_WAIT;
    let until = deadline.map_or(until, |deadline| deadline.min(until));
    let held = Held {
        // The service first: its path and authority hold no `|` (no valid base URL's host
        // does), and the route none (it is not a path character), so the caller's part,
        // whatever it holds, is all between the first `|` and the last.
        scope: format!(
            "{}|{}|{} {shape}",
            settings.service,
            caller.map_or("", Caller::service_id),
            parts.method
        ),
        key: key.to_owned(),
        claim,
    };
    // Dropped while the store is asked (the caller hung up), the request releases its claim,
    // which the store may have recorded: nothing would run the method or free the key.
    let mut asking = Asking {
        store: Arc::clone(&settings.idempotency),
        held: Some(held.clone()),
    };
    let claimed = claim_or_wait(&*settings.idempotency, &held, &fingerprint, until).await;
    if claimed.is_ok() {
        // Claimed, the key is the method's task's to settle (no await comes before it is
        // spawned); otherwise the store recorded nothing of this claim. After an error, the
        // claim is released, as the store may have recorded it before failing.
        asking.held = None;
    }
    drop(asking);
    match claimed {
        Ok(Claim::New) => Ok(Some(held)),
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
            Err(store_unavailable())
        }
    }
}

/// The 503 for a key whose store cannot tell what became of it (or no claim for it): taken
/// once the store answers again, as the nonce store's 503 is.
fn store_unavailable() -> http::Response<Bytes> {
    crate::error::unavailable_response("idempotency store unavailable")
}

/// A claim being asked of the store: released, in a task of its own, if dropped armed.
struct Asking {
    store: Arc<dyn IdempotencyStore>,
    held: Option<Held>,
}

impl Drop for Asking {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        // Outside a runtime (the runtime shutting down) there is nothing to release it with.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&self.store);
            runtime.spawn(async move { settle(&store, &held, None, None).await });
        }
    }
}

/// Claims `held`'s key for its claim; while the store says a request with it is still
/// running, asks again (after 5 ms, then twice as long each time up to 200 ms) until it is not
/// or `until` comes.
async fn claim_or_wait(
    store: &dyn IdempotencyStore,
    held: &Held,
    fingerprint: &str,
    until: Instant,
) -> Result<Claim, crate::BoxError> {
    let Held { scope, key, claim } = held;
    let mut pause = Duration::from_millis(5);
    loop {
        match store.claim(scope, key, fingerprint, claim).await {
            Ok(Claim::InProgress) if Instant::now() + pause < until => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            claimed => return claimed,
        }
    }
}

/// What tells one request under an `Idempotency-Key` from another on the same route: the
/// SHA-256 of its target (path and query, as the caller sent them), the values of the headers
/// `named` (the method's `#[header]` arguments; none for one the signature does not cover,
/// which the method does not see), its `Content-Type` (a multipart body's boundary is there:
/// the same bytes under another boundary are other parts) and its body, hex-encoded. Each
/// part is preceded by its length (a header by its count of values), so that no two requests
/// that differ share one input.
fn request_fingerprint(
    uri: &http::Uri,
    (named, covered): (&[&str], &CoveredFields),
    headers: &http::HeaderMap,
    body: &[u8],
) -> String {
    use sha2::{Digest, Sha256};
    fn part(hash: &mut Sha256, bytes: &[u8]) {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    }
    fn field(hash: &mut Sha256, values: http::header::GetAll<'_, http::HeaderValue>) {
        hash.update((values.iter().count() as u64).to_be_bytes());
        for value in values {
            part(hash, value.as_bytes());
        }
    }
    let mut hash = Sha256::new();
    let target = uri.path_and_query().map_or("/", |target| target.as_str());
    part(&mut hash, target.as_bytes());
    for name in named {
        // Each in its place, one not covered as absent (no values).
        if covered.covers(name) {
            field(&mut hash, headers.get_all(*name));
        } else {
            hash.update(0u64.to_be_bytes());
        }
    }
    // Covered or not: the server reads the body by it either way.
    field(&mut hash, headers.get_all(http::header::CONTENT_TYPE));
    part(&mut hash, body);
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_repeat_waits_for_the_running_request_until_it_answers_or_time_is_up() {
        let store = Arc::new(MemoryIdempotencyStore::default());
        let held = Held {
            scope: "Orders|billing|POST /orders".into(),
            key: "k".into(),
            claim: "h".into(),
        };
        let claim = |until| claim_or_wait(&*store, &held, "f", until);
        let soon = || Instant::now() + Duration::from_millis(60);
        assert!(matches!(claim(soon()).await, Ok(Claim::New)));
        // Still running when the time is up: in progress, after waiting.
        let started = Instant::now();
        assert!(matches!(claim(soon()).await, Ok(Claim::InProgress)));
        assert!(started.elapsed() >= Duration::from_millis(30), "it waited");
        // Answered while the repeat waits: the answer.
        let answering = tokio::spawn({
            let store = store.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let stored = StoredResponse {
                    status: StatusCode::CREATED,
                    headers: http::HeaderMap::new(),
                    body: Bytes::from_static(b"1"),
                };
                store
                    .finish("Orders|billing|POST /orders", "k", "h", stored)
                    .await
            }
        });
        let later = Instant::now() + Duration::from_secs(5);
        match claim(later).await {
            Ok(Claim::Answered(stored)) => assert_eq!(stored.status, StatusCode::CREATED),
            other => panic!("expected the answer, got {other:?}"),
        }
        answering.await.unwrap().unwrap();
    }

    #[test]
    fn answers_that_ask_for_the_request_again_are_not_kept() {
        for kept in [200, 201, 204, 400, 404, 409, 422] {
            assert!(is_kept(StatusCode::from_u16(kept).unwrap()), "{kept}");
        }
        for released in [408, 424, 429, 500, 502, 503, 504] {
            assert!(
                !is_kept(StatusCode::from_u16(released).unwrap()),
                "{released}"
            );
        }
    }

    #[test]
    fn a_fingerprint_tells_targets_and_bodies_apart() {
        let of = |uri: &str, body: &str| {
            let none = http::HeaderMap::new();
            request_fingerprint(
                &uri.parse().unwrap(),
                (&[], &CoveredFields::default()),
                &none,
                body.as_bytes(),
            )
        };
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
    fn a_fingerprint_tells_the_named_headers_apart_and_no_others() {
        let uri: http::Uri = "/orders".parse().unwrap();
        let of = |pairs: &[(&str, &str)]| {
            let mut headers = http::HeaderMap::new();
            for (name, value) in pairs {
                headers.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            request_fingerprint(
                &uri,
                (&["X-Tenant"], &CoveredFields::default()),
                &headers,
                b"{}",
            )
        };
        let acme = of(&[("x-tenant", "acme")]);
        assert_eq!(acme, of(&[("x-tenant", "acme"), ("x-request-id", "1")]));
        assert_ne!(acme, of(&[("x-tenant", "globex")]));
        assert_ne!(acme, of(&[]), "absent");
        assert_ne!(
            acme,
            of(&[("x-tenant", "acme"), ("x-tenant", "acme")]),
            "twice"
        );
    }

    #[test]
    #[should_panic(expected = "only available inside a method served")]
    fn caller_outside_a_handler_panics_saying_so() {
        let _ = caller();
    }
}
