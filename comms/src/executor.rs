//! The executor: the one path every call takes, generated or hand-written.
//!
//! build the URL → breaker admission → sign → send with the attempt timeout → classify →
//! retry (after backoff, within the budget and the deadline) or return.
//!
//! The executor's own files split that path by job: `builder.rs` builds an [`Executor`] once,
//! `headers.rs` decides what each attempt carries and signs it, `failure.rs` what a failed
//! attempt ends with and whether another follows, and `call_future.rs` is the state machine one
//! call runs as. What a call does before and between its attempts (`prepare`, `request`,
//! `admit`) stays here.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::breaker::{Breaker, CircuitState, Permit};
use crate::call::Call;
use crate::call_options::CallOptions;
use crate::hook::Hook;
use crate::random::random_bytes;
use crate::response::Response;
use crate::retry::RetryConfig;
use crate::retry::budget::RetryBudget;
use crate::retry::policy::{self, Outcome};
use crate::signing::{COMMS_DEADLINE_MS, IDEMPOTENCY_KEY, Signer, Signing};
use crate::stream::StreamingResponse;
use crate::telemetry::AttemptTrace;
use crate::{Error, path};

mod builder;
mod call_future;
pub(crate) mod failure;
mod headers;
mod mode;

pub use builder::ExecutorBuilder;
use call_future::CallFuture;
use headers::{covered, covered_list, refuse_ambiguous_legacy_path, refuse_repeated, sign_into};
use mode::{Streaming, Whole};

/// The target of the executor's events, whichever of its files they come from.
const TARGET: &str = "comms::executor";

/// The default timeout of one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default cap on a response body: a larger 2xx body is an [`Error::Decode`]; an error
/// status with a larger body is that status's error, without the body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How long the shared client keeps a connection idle in its pool: less than a comms server's
/// keep-alive (its header timeout), so that it is the client that gives one up.
const SHARED_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

#[cfg(feature = "server")]
const _: () = assert!(
    SHARED_POOL_IDLE_TIMEOUT.as_secs() < crate::server::DEFAULT_HEADER_TIMEOUT.as_secs(),
    "a comms client must give up an idle connection before a comms server closes it"
);

/// The process-wide connection pool that every executor uses unless given its own client.
///
/// Redirects are disabled: a signature is bound to its path and must not travel to another
/// host, so a 3xx comes back as [`Error::Status`].
///
/// # Several runtimes
///
/// A pooled connection is driven by a task on the Tokio runtime that opened it, and any
/// runtime's calls may be handed it. When that runtime shuts down, a call another runtime has
/// in flight on the connection fails with [`Error::Transport`] ("runtime dropped the dispatch
/// task"), and a call not retried (a POST) is reported failed though it may have run. A process
/// whose runtimes end while others call (test suites with one runtime a test and a server or
/// client shared between them, or a runtime per worker) should give each runtime's executors
/// a client of their own ([`ExecutorBuilder::http_client`], built like this one: no redirects).
/// A process with one runtime, however many clients, needs nothing.
///
/// The pool closes a connection idle for 20 s, from a task it starts on the runtime of the
/// first call that left one idle. A process whose first call ran on a runtime that then ended
/// (one made to fetch a configuration at start-up, say) has no such task from then on: a
/// connection is closed only when a call to its host finds it expired. Calling a fixed set of
/// services, that is one idle connection or so per service; calling an ever-changing set of
/// hosts (a base URL per tenant), it is a connection, and a file descriptor, for every host
/// ever called. Such a process gives its executors a client of its own, built on the runtime
/// that makes the calls. (Even with the task, each host called leaves its connections open for
/// up to 40 s after its last call: a process calling hundreds of new hosts a second wants a
/// shorter `pool_idle_timeout` on a client of its own.)
///
/// # Idle connections
///
/// A server closes a connection it has kept idle for its own keep-alive time, and a call that
/// takes that connection from the pool just then writes its request onto a closing socket: an
/// idempotent call is retried, a POST fails with [`Error::Transport`] though it never arrived.
/// The pool gives up an idle connection first when the server keeps it longer than 20 s:
/// `comms::server::serve` keeps one 30 s, nginx 75 s. Servers that
/// close sooner (gunicorn's 2 s, Node's 5 s) still meet the race.
pub fn shared_http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(SHARED_POOL_IDLE_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// Sends signed, retried, breaker-guarded calls to one service.
///
/// Cloning is cheap: clones share the configuration, the retry budget, the breaker and the
/// connection pool.
///
/// ```no_run
/// # async fn run() -> Result<(), comms::Error> {
/// use comms::{Call, Executor};
///
/// let users = Executor::builder()
///     .base_url("http://users.internal:8080")
///     .service_id("billing")
///     .secret("s3cr3t")
///     .build()?;
/// let user: serde_json::Value = users.execute(Call::get("/users").segment(7)).await?.json()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
    /// The overrides of a view made with [`Executor::with`].
    options: Option<Arc<CallOptions>>,
}

struct Inner {
    name: Cow<'static, str>,
    http: reqwest::Client,
    /// The base URL, parsed once; each call clones it and sets path and query.
    base: reqwest::Url,
    /// The base URL's path, without a trailing `/`.
    prefix: String,
    service_id: String,
    service_header: HeaderValue,
    /// The `keyid` of RFC 9421 signatures.
    key_id: String,
    /// The headers each kind of attempt starts from; see [`headers::Templates`].
    templates: headers::Templates,
    /// Whether the client is comms' own, whose only default header is `Accept: */*`.
    default_client: bool,
    signer: Signer,
    retry: RetryConfig,
    budget: Option<RetryBudget>,
    breaker: Option<Arc<Breaker>>,
    /// The fleet link the breaker shares its transitions through, kept alive (and its tasks
    /// with it) by the clients using it.
    _breaker_sync: Option<crate::breaker::BreakerSync>,
    timeout: Duration,
    deadline: Option<Duration>,
    max_response_bytes: usize,
    /// Headers every call carries unless it sets them itself.
    default_headers: HeaderMap,
    /// The target as telemetry reports it (nothing without `otel`).
    target: crate::telemetry::Target,
    /// Supplies headers for every attempt (`ExecutorBuilder::header_hook`).
    hook: Option<Hook>,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Executor")
            .field("name", &i.name)
            .field("base_url", &self.base_url())
            .field("service_id", &i.service_id)
            .field("key_id", &i.key_id)
            .field("signing", &i.signer.scheme())
            .field("timeout", &i.timeout)
            .field("deadline", &i.deadline)
            .field(
                "default_headers",
                &crate::header_map::HeaderNames(&i.default_headers),
            )
            .field("retry", &i.retry)
            .field("breaker", &i.breaker.as_ref().map(|b| b.authority()))
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A call's parts that every attempt reuses.
struct Prepared {
    url: reqwest::Url,
    /// What an RFC 9421 signature covers, as the inner list of `Signature-Input` (empty for
    /// legacy signatures).
    inner_list: Cow<'static, str>,
    idempotent: bool,
    attempt_timeout: Duration,
    /// When the call must be over, and the deadline it was given.
    deadline: Option<(Instant, Duration)>,
    /// The next attempt's trace, when it was begun before its request was made: the first
    /// attempt's, by `prepare`, before the covered components were decided (so that the
    /// signature covers its context); with a header hook, a retry's, before the hook ran. An
    /// attempt's span and duration hold its hook's time, as its time limit does.
    trace: Option<AttemptTrace>,
}

/// How long the next attempt may take.
#[derive(Clone, Copy)]
struct Limit {
    /// The attempt timeout, or what is left of the deadline when that is shorter.
    time: Duration,
    /// The duration a timeout error reports: the attempt timeout or the whole deadline.
    reported: Duration,
    /// Whether it is the deadline, or what a header hook left of the attempt timeout (less than
    /// half of it): a timeout then is the caller's time running out, not the target failing.
    by_deadline: bool,
}

impl Prepared {
    /// The next attempt's limit: its timeout, shortened to what is left of the deadline.
    /// `first` for the call's first attempt.
    fn limit(&self, first: bool) -> Limit {
        let attempt = Limit {
            time: self.attempt_timeout,
            reported: self.attempt_timeout,
            by_deadline: false,
        };
        match self.deadline {
            Some((at, total)) => {
                let left = at.saturating_duration_since(Instant::now());
                if left < self.attempt_timeout {
                    Limit {
                        time: left,
                        reported: total,
                        // A first attempt under a deadline no shorter than the attempt timeout
                        // has all of that timeout but what went before sending it (microseconds,
                        // or a header hook's time): its timeout is the target's, not the
                        // caller's time running out.
                        by_deadline: !(first && total >= self.attempt_timeout),
                    }
                } else {
                    attempt
                }
            }
            None => attempt,
        }
    }

    /// Whether what the attempts told the service of the deadline (`Comms-Deadline-Ms`, whole
    /// milliseconds rounded down) has run out: less than that resolution is left of it.
    fn deadline_told_spent(&self) -> bool {
        self.deadline.is_some_and(|(at, _)| {
            at.saturating_duration_since(Instant::now()) < Duration::from_millis(1)
        })
    }
}

/// How one attempt ended.
enum Attempt {
    Response(StatusCode, HeaderMap, Bytes),
    Connect(reqwest::Error),
    Transport(reqwest::Error),
    Timeout,
    /// The service answered with this status and these headers, and a body over
    /// `max_response_bytes`.
    TooLarge(StatusCode, HeaderMap),
    /// The client given with `http_client` followed a redirect, which comms' own never does:
    /// this status came from the location shown (without its query), not from the target.
    Redirected(StatusCode, String),
}

impl Executor {
    /// A builder with the defaults: RFC 9421 signing, 10 s attempt timeout, [`RetryConfig::default`],
    /// [`BreakerConfig::default`](crate::BreakerConfig::default), the shared connection pool.
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::default()
    }

    /// A view of this executor whose calls use `options` (over any the executor already has):
    /// see [`CallOptions`]. Cheap: the view shares everything else.
    #[must_use = "`with` returns a view to call through; the executor itself is unchanged"]
    pub fn with(&self, options: CallOptions) -> Executor {
        let options = match &self.options {
            Some(base) => options.over(base),
            None => options,
        };
        Executor {
            inner: self.inner.clone(),
            options: Some(Arc::new(options)),
        }
    }

    /// The base URL calls are sent to, as the URL parser writes it: without a default port
    /// (`https://h/api` for `https://h:443/api/`) or a trailing `/`.
    pub fn base_url(&self) -> String {
        let base = self.inner.base.as_str();
        format!(
            "{}{}",
            base.strip_suffix('/').unwrap_or(base),
            self.inner.prefix
        )
    }

    /// The state of the target's circuit breaker; `None` when the breaker is disabled.
    pub fn circuit_state(&self) -> Option<CircuitState> {
        self.inner.breaker.as_ref().map(|b| b.state())
    }

    /// Sends `call` and returns its 2xx response, or the error it ended with.
    ///
    /// The returned future does nothing until polled.
    ///
    /// # Tracing
    ///
    /// Each call runs in a `comms.call` span at `DEBUG` level (target `comms::executor`), made when
    /// this method is called, as `#[tracing::instrument]` makes an `async fn`'s: a child of the
    /// span current then, wherever the future is polled (with the span enabled, a call spawned onto
    /// another task stays in its caller's trace). To put a call in a span of its own, enter that
    /// span where the call is made (`async { client.m().await }.instrument(span)`), not around the
    /// returned future alone. The span has the executor's name as `service`, `method`, the `route`
    /// template (or the path), `attempts` and the final `status`; `DEBUG` events mark the end of
    /// each call. A retry and an exhausted retry budget are `WARN` events and a breaker's
    /// transitions `INFO` or `WARN` events, each naming the service or authority, so they read well
    /// without the span. An exhausted budget is reported at most once every 10 s, with the number
    /// of retries it refused since the last report, rather than once per failing call.
    ///
    /// The span is `DEBUG`, like tower-http's request spans, because recording it costs more
    /// than the rest of the runtime does (BENCHMARKS.md has the figures). Enable it with a
    /// filter such as `comms=debug`.
    pub fn execute(&self, call: Call) -> impl Future<Output = Result<Response, Error>> + Send + '_ {
        let route = call.route.unwrap_or(call.path.as_str());
        let span = crate::telemetry::call_span(&self.inner.name, &call.method, route);
        CallFuture::<_, Whole>::new(self, call, span, reqwest::Client::execute)
    }

    /// Sends `call` and returns the head of its 2xx response as soon as it arrives, the body
    /// still to come ([`StreamingResponse::into_stream`], or
    /// [`into_json_lines`](StreamingResponse::into_json_lines)): not buffered, and not capped by
    /// `max_response_bytes`.
    ///
    /// Up to the head, the call is [`execute`](Executor::execute)'s: breaker, signing, the
    /// attempt timeout, retries, and a status outside 2xx read into its [`Error`]. A 2xx head
    /// is the attempt's success and ends the retries; see [`StreamingResponse`] for what
    /// bounds the body after it, and [`ByteStream`](crate::ByteStream) for an example. The
    /// call's `comms.call` span ends with the head.
    pub fn execute_streaming(
        &self,
        call: Call,
    ) -> impl Future<Output = Result<StreamingResponse, Error>> + Send + '_ {
        let route = call.route.unwrap_or(call.path.as_str());
        let span = crate::telemetry::call_span(&self.inner.name, &call.method, route);
        CallFuture::<_, Streaming>::new(self, call, span, reqwest::Client::execute)
    }

    /// Everything a call needs before its first attempt, in the order that lets an open breaker
    /// refuse before any other work. Returns the breaker's permit for the first attempt.
    fn prepare(&self, call: &mut Call) -> Result<(Prepared, Option<Permit<'_>>), Error> {
        let inner = &*self.inner;
        if let Some(e) = call.take_error() {
            return Err(e);
        }
        let options = self.options.as_deref();
        if let Some(e) = options.and_then(CallOptions::refusal) {
            return Err(e);
        }
        // A view's timeout replaces the call's (a method's `timeout_ms`), and either the
        // client's, which `build` made sure is not zero.
        let view_timeout = options.and_then(|o| o.timeout);
        let attempt_timeout = view_timeout.or(call.timeout).unwrap_or(inner.timeout);
        if attempt_timeout.is_zero() {
            let setting = match view_timeout {
                Some(_) => "CallOptions::timeout",
                None => "Call::timeout",
            };
            return Err(Error::config(
                setting,
                "an attempt timeout of zero would end every attempt before its request was sent",
            ));
        }
        path::check_raw_path(&call.path)?;
        // An open breaker refuses before any other work: failing fast is the point.
        let permit = self.admit(None)?;

        // The base URL was parsed once; only the path and query are set per call, and the
        // signature covers them exactly as the URL will write them on the request line.
        let mut url = inner.base.clone();
        if inner.prefix.is_empty() {
            url.set_path(&call.path);
        } else {
            let mut full = String::with_capacity(inner.prefix.len() + call.path.len());
            full.push_str(&inner.prefix);
            full.push_str(&call.path);
            url.set_path(&full);
        }
        // The base URL has no query (the builder refuses one), so only a call's own is set.
        if !call.query.is_empty() {
            url.set_query(Some(&call.query));
        }
        // The request line's URI has a length limit (`http::Uri`'s); a longer one would fail
        // inside reqwest, after the breaker's permit was spent on it, as if the service had.
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(Error::encode(format!(
                "the request URL is {} bytes, longer than the {MAX_URL_BYTES} an HTTP request \
                 line may carry here; send large values in a body",
                url.as_str().len()
            )));
        }
        // With nothing left of the deadline, nothing is sent.
        let deadline =
            crate::deadline::for_call(options.and_then(|o| o.deadline).or(inner.deadline));
        if let Some((at, _)) = deadline
            && at <= Instant::now()
        {
            // Zero: the call had none of its deadline, and was not sent (as its error says).
            return Err(Error::timeout(&call.method, &url, Duration::ZERO));
        }
        let inherently_idempotent = policy::is_idempotent_method(&call.method);
        let idempotent = call.idempotent.unwrap_or(inherently_idempotent);
        // A view's headers (one value each) beat the defaults; the call's own beat both, but
        // for a `Content-Type` its JSON or raw body only implies, which the first of them to
        // give one replaces.
        let mut implied_type = call.content_type_implied();
        let headers = &mut call.headers;
        let views = options.map(|o| &o.headers).into_iter().flatten();
        for (name, value) in views.chain(&inner.default_headers) {
            if *name == CONTENT_TYPE && implied_type {
                implied_type = false;
                headers.insert(CONTENT_TYPE, value.clone());
            } else if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        if let Some((at, _)) = deadline {
            // Covered by the signature; each attempt writes what is left then.
            headers.insert(COMMS_DEADLINE_MS, crate::deadline::header_value(at));
        }
        if idempotent && !inherently_idempotent && !headers.contains_key(&IDEMPOTENCY_KEY) {
            let key = HeaderValue::try_from(hex::encode(random_bytes()?))
                .expect("hex is a valid header value");
            headers.insert(IDEMPOTENCY_KEY, key);
        }
        // Refused before the first attempt's trace begins, so that a call that cannot be sent
        // leaves no attempt span behind. (A legacy signature covers no header, and its path
        // decoded.)
        match inner.signer.scheme() {
            Signing::Rfc9421 => refuse_repeated(headers)?,
            Signing::Legacy => refuse_ambiguous_legacy_path(&url)?,
        }
        // The first attempt's trace begins here: with `otel`, its context is written among the
        // call's headers now (replacing, so repeating nothing), so that the signature covers it.
        let first_trace = AttemptTrace::start(&inner.target, &call.method, call.route, &url, 0);
        first_trace.inject(headers, None);
        let inner_list = covered(
            inner.signer.scheme(),
            headers,
            call.body.as_deref().unwrap_or_default(),
        );

        if let Some(budget) = &inner.budget {
            budget.deposit();
        }
        let prepared = Prepared {
            url,
            inner_list,
            idempotent,
            trace: Some(first_trace),
            attempt_timeout,
            deadline,
        };
        Ok((prepared, permit))
    }

    /// The signed request of one attempt: a fresh creation time, nonce and signature each time.
    /// A retry writes its own trace context (`retrace`); headers from the executor's hook
    /// (`hooked`) are laid over the call's, and the signature then covers them too.
    fn request(
        &self,
        call: &Call,
        prepared: &Prepared,
        retrace: Option<&AttemptTrace>,
        hooked: Option<HeaderMap>,
    ) -> Result<reqwest::Request, Error> {
        let inner = &*self.inner;
        let merged;
        let (call_headers, inner_list) = match hooked {
            None => (&call.headers, Cow::Borrowed(prepared.inner_list.as_ref())),
            Some(hooked) => {
                merged = crate::hook::merge(&call.headers, hooked, call.content_type_fixed)?;
                let list = covered_list(inner.signer.scheme(), &merged)?;
                (&merged, Cow::Owned(list))
            }
        };
        let body = match call.body {
            Some(_) => headers::Body::Some,
            None if headers::announces_empty_body(&call.method) => headers::Body::Empty,
            None => headers::Body::None,
        };
        let template = inner
            .templates
            .of(body, prepared.deadline.is_some(), call_headers);
        // A name among the call's headers replaces the template's value (a caller's `Accept`,
        // say), and keeps every value it was given.
        let mut headers = crate::header_map::laid_over(template, call_headers);
        if !inner.default_client && !call_headers.contains_key(ACCEPT) {
            // The client's own default `Accept`, if it has one, goes into the room this leaves.
            headers.remove(ACCEPT);
        }
        if let Some((at, _)) = prepared.deadline {
            headers.insert(COMMS_DEADLINE_MS, crate::deadline::header_value(at));
        }
        if let Some(trace) = retrace {
            trace.inject(&mut headers, Some(call_headers));
        }
        sign_into(
            &self.inner,
            &call.method,
            &prepared.url,
            call_headers,
            &inner_list,
            &mut headers,
        )?;
        let mut request = reqwest::Request::new(call.method.clone(), prepared.url.clone());
        *request.headers_mut() = headers;
        if let Some(body) = &call.body {
            request
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            *request.body_mut() = Some(reqwest::Body::from(body.clone()));
        }
        Ok(request)
    }

    /// Asks the target's breaker for an attempt. When it refuses, the call ends with
    /// `last_error` (a retry that could not be made) or [`Error::CircuitOpen`].
    fn admit(&self, last_error: Option<Box<Error>>) -> Result<Option<Permit<'_>>, Error> {
        let Some(breaker) = &self.inner.breaker else {
            return Ok(None);
        };
        match breaker.admit() {
            Ok(permit) => Ok(Some(permit)),
            Err(retry_in) => {
                crate::telemetry::breaker_refused(&self.inner.target);
                Err(last_error.map_or_else(
                    || Error::CircuitOpen {
                        authority: breaker.authority().to_owned(),
                        retry_in,
                    },
                    |e| *e,
                ))
            }
        }
    }
}

impl Attempt {
    /// The attempt's response status, or the kind of its failure, for its span.
    fn traced(&self) -> (Option<StatusCode>, Option<&'static str>) {
        match self {
            Attempt::Response(status, ..) => (Some(*status), None),
            Attempt::Connect(_) => (None, Some("connect")),
            Attempt::Transport(_) => (None, Some("transport")),
            Attempt::Timeout => (None, Some("timeout")),
            Attempt::TooLarge(status, _) => (Some(*status), Some("response_too_large")),
            // The call fails with `Error::Config` for the client it was given.
            Attempt::Redirected(status, _) => (Some(*status), Some("config")),
        }
    }

    fn outcome(&self) -> Outcome {
        match self {
            // A body over the limit too: the service answered, and its status says how; the
            // body is just more than this client accepts (a proxy's error page for a 503, say).
            Attempt::Response(status, ..) | Attempt::TooLarge(status, _) => {
                Outcome::of_status(*status)
            }
            Attempt::Connect(_) => Outcome::Connect,
            Attempt::Transport(_) => Outcome::Transport,
            Attempt::Timeout => Outcome::Timeout,
            // The target answered, with a redirect: no failure of its, and nothing to retry
            // (the client would follow it again).
            Attempt::Redirected(..) => Outcome::Success,
        }
    }
}

/// The longest URL a request may have: what `http::Uri`, which reqwest sends through, holds.
const MAX_URL_BYTES: usize = u16::MAX as usize - 1;

/// What a failed send says of its attempt. A connection that could not be made is asked about
/// first: the connect timeout of a client given by the user is both a timeout and a connect
/// error, and since nothing was sent it is retried as a connect error, for any method.
///
/// A timeout is a timer's: that of a client given by the user (comms' own ends an attempt
/// without a send error). reqwest also calls an error a timeout when an I/O error of kind
/// `TimedOut` is among its causes, which is the operating system giving up on a connection
/// (`ETIMEDOUT`, retransmissions or keepalive probes unanswered): a broken connection, no
/// timer of the call's, and reported as one, or it would name a timeout that never ran.
fn classify(e: reqwest::Error) -> Attempt {
    if e.is_connect() {
        Attempt::Connect(e)
    } else if e.is_timeout() && !connection_timed_out(&e) {
        Attempt::Timeout
    } else {
        Attempt::Transport(e)
    }
}

/// Whether an I/O error of kind `TimedOut` is among `e`'s causes.
fn connection_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = e.source();
    while let Some(err) = cause {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = err.source();
    }
    false
}

#[cfg(test)]
mod tests;
