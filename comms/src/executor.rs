//! The executor: the one path every call takes, generated or hand-written.
//!
//! build the URL → breaker admission → sign → send with the attempt timeout → classify →
//! retry (after backoff, within the budget and the deadline) or return.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

use crate::breaker::{Breaker, BreakerConfig, BreakerSync, CircuitState, Permit};
use crate::call::Call;
use crate::error::HttpError;
use crate::random::random_bytes;
use crate::response::Response;
use crate::retry::budget::{RetryBudget, Withdrawal};
use crate::retry::policy::{self, Outcome};
use crate::retry::{RetryConfig, backoff};
use crate::signing::{self, Secret, Signer, Signing};
use crate::{Error, path};

mod call_future;

use call_future::CallFuture;

/// The default timeout of one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default cap on a response body; a larger one is an [`Error::Decode`].
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

use signing::{
    CONTENT_DIGEST, IDEMPOTENCY_KEY, LEGACY_SIGNATURE_HEADER, SERVICE_ID_HEADER, SIGNATURE,
    SIGNATURE_INPUT, TIMESTAMP_HEADER,
};

/// The process-wide connection pool that every executor uses unless given its own client.
///
/// Redirects are disabled: a signature is bound to its path and must not travel to another
/// host, so a 3xx comes back as [`Error::Status`].
pub fn shared_http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
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
}

struct Inner {
    name: Cow<'static, str>,
    http: reqwest::Client,
    /// `scheme://host[:port]`.
    origin: String,
    /// The base URL, parsed once; each call clones it and sets path and query.
    base: reqwest::Url,
    /// The base URL's path, without a trailing `/`.
    prefix: String,
    service_id: String,
    service_header: HeaderValue,
    /// The `keyid` of RFC 9421 signatures.
    key_id: String,
    /// The headers every attempt without a body starts from; see [`attempt_headers`].
    headers: HeaderMap,
    /// The same for an attempt with a body, with room for its type and length.
    body_headers: HeaderMap,
    /// Whether the client is comms' own, whose only default header is `Accept: */*`.
    default_client: bool,
    signer: Signer,
    retry: RetryConfig,
    budget: Option<RetryBudget>,
    breaker: Option<Arc<Breaker>>,
    timeout: Duration,
    deadline: Option<Duration>,
    max_response_bytes: usize,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Executor")
            .field("name", &i.name)
            .field("base_url", &format_args!("{}{}", i.origin, i.prefix))
            .field("service_id", &i.service_id)
            .field("key_id", &i.key_id)
            .field("signing", &i.signer.scheme())
            .field("timeout", &i.timeout)
            .field("deadline", &i.deadline)
            .field("retry", &i.retry)
            .field("breaker", &i.breaker.as_ref().map(|b| b.authority()))
            .finish_non_exhaustive()
    }
}

/// Builds an [`Executor`]. Setters never fail; [`ExecutorBuilder::build`] reports the first
/// missing or invalid setting as [`Error::Config`].
#[must_use]
pub struct ExecutorBuilder {
    name: Cow<'static, str>,
    base_url: Option<String>,
    service_id: Option<String>,
    key_id: Option<String>,
    secret: Option<Secret>,
    signing: Signing,
    timeout: Duration,
    deadline: Option<Duration>,
    retry: RetryConfig,
    breaker: BreakerConfig,
    breaker_sync: Option<BreakerSync>,
    http: Option<reqwest::Client>,
    max_response_bytes: usize,
}

impl fmt::Debug for ExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorBuilder")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("service_id", &self.service_id)
            .field("key_id", &self.key_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("signing", &self.signing)
            .finish_non_exhaustive()
    }
}

impl Default for ExecutorBuilder {
    fn default() -> Self {
        ExecutorBuilder {
            name: Cow::Borrowed("service"),
            base_url: None,
            service_id: None,
            key_id: None,
            secret: None,
            signing: Signing::Rfc9421,
            timeout: DEFAULT_TIMEOUT,
            deadline: None,
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            breaker_sync: None,
            http: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl ExecutorBuilder {
    /// The remote service's name, reported in tracing spans.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The base URL: `http` or `https`, a host, an optional port and path prefix, no query or
    /// fragment. Call paths are appended to it.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// This caller's identity: the default key id of its signatures, and the `X-Service-ID`
    /// of legacy ones.
    pub fn service_id(mut self, id: impl Into<String>) -> Self {
        self.service_id = Some(id.into());
        self
    }

    /// The key id RFC 9421 signatures name (`keyid`), by default the service id. Receivers map
    /// it to the service and the secret ([`Verifier::key`](crate::verify::Verifier::key)), so a
    /// new secret can be rolled out under a new key id while the old one is still accepted.
    pub fn key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// The shared secret that signs requests.
    pub fn secret(mut self, secret: impl Into<Secret>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// The signing scheme ([`Signing::Rfc9421`] by default).
    pub fn signing(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    /// The timeout of each attempt (10 s by default). A call's own timeout takes precedence.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A deadline for the whole call, all attempts and waits included (none by default).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// How transient failures are retried.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// How the target's circuit breaker behaves.
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Shares this target's breaker state with the other replicas of this service (see
    /// [`BreakerSync`]).
    pub fn breaker_sync(mut self, sync: BreakerSync) -> Self {
        self.breaker_sync = Some(sync);
        self
    }

    /// Uses this client's connection pool instead of the shared one. Configure it not to
    /// follow redirects ([`reqwest::redirect::Policy::none`]): a signed request must not be
    /// replayed to another location.
    ///
    /// The client's default headers are sent as usual. Each attempt's header map has room for
    /// one of them (its `Accept`, which reqwest sets to `*/*` unless told otherwise); more
    /// make reqwest grow the map on every request, which is measurable when many threads
    /// share the allocator. A header every call needs can go on the calls instead.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The largest response body accepted (16 MiB by default).
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    pub(crate) fn has_base_url(&self) -> bool {
        self.base_url.is_some()
    }

    pub(crate) fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    pub(crate) fn has_service_id(&self) -> bool {
        self.service_id.is_some()
    }

    pub(crate) fn has_key_id(&self) -> bool {
        self.key_id.is_some()
    }

    /// Checks the settings and builds the executor.
    pub fn build(self) -> Result<Executor, Error> {
        let base = self
            .base_url
            .ok_or_else(|| Error::config("base_url", "no base URL was given"))?;
        let (base, origin, prefix) = parse_base_url(&base)?;
        let service_id = self
            .service_id
            .ok_or_else(|| Error::config("service_id", "no service id was given"))?;
        let service_header = match HeaderValue::from_str(&service_id) {
            Ok(v) if !service_id.is_empty() && !service_id.contains(char::is_whitespace) => v,
            _ => {
                return Err(Error::config(
                    "service_id",
                    "must be non-empty visible ASCII without spaces",
                ));
            }
        };
        let key_id = self.key_id.unwrap_or_else(|| service_id.clone());
        if !signing::is_valid_key_id(&key_id) {
            return Err(Error::config(
                "key_id",
                "must be 1 to 256 visible ASCII characters other than `\"` and `\\`",
            ));
        }
        let secret = self
            .secret
            .ok_or_else(|| Error::config("secret", "no secret was given"))?;
        if secret.is_empty() {
            return Err(Error::config("secret", "the secret is empty"));
        }
        let breaker = self
            .breaker
            .enabled
            .then(|| Breaker::shared(&origin, &self.breaker, self.breaker_sync.as_ref()));
        let headers = attempt_headers(&base, &service_header, self.signing, false);
        let body_headers = attempt_headers(&base, &service_header, self.signing, true);
        let default_client = self.http.is_none();
        Ok(Executor {
            inner: Arc::new(Inner {
                name: self.name,
                http: self.http.unwrap_or_else(|| shared_http_client().clone()),
                origin,
                base,
                prefix,
                service_id,
                service_header,
                key_id,
                headers,
                body_headers,
                default_client,
                signer: Signer::new(&secret, self.signing),
                budget: self.retry.budget.map(RetryBudget::new),
                retry: self.retry,
                breaker,
                timeout: self.timeout,
                deadline: self.deadline,
                max_response_bytes: self.max_response_bytes,
            }),
        })
    }
}

/// The headers every attempt starts from: every header the request will carry, so that neither
/// comms, reqwest nor hyper grows the map on the way to the wire.
///
/// The signature headers are here with placeholder values that [`sign_into`] replaces on every
/// attempt. `Host` is what hyper would add itself (the host, and the port unless it is the
/// scheme's default), and what an RFC 9421 signature covers as `@authority`. `Accept: */*` is
/// what reqwest adds by default; with a client of the user's, the executor takes it out of each
/// attempt's copy again, leaving its room for the client's own default.
///
/// With `body`, `Content-Type` and `Content-Length` are here too: a call with a body always
/// sets its type, and the executor sets the length, which hyper would otherwise add.
///
/// Each attempt clones this map. A clone's entries are sized to fit exactly, so an insert
/// that adds a header would make it reallocate (into a block too large for glibc's per-thread
/// cache, which costs a quarter of the throughput when threads share the allocator) and
/// rehash; an insert that replaces a value does not.
pub(crate) fn attempt_headers(
    base: &reqwest::Url,
    service_header: &HeaderValue,
    signing: Signing,
    body: bool,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(9);
    let host = base.host_str().unwrap_or_default();
    let host = match base.port() {
        Some(port) => HeaderValue::try_from(format!("{host}:{port}")),
        None => HeaderValue::try_from(host),
    };
    if let Ok(host) = host {
        headers.insert(http::header::HOST, host);
    }
    headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
    match signing {
        Signing::Rfc9421 => {
            headers.insert(
                CONTENT_DIGEST,
                HeaderValue::from_static(signing::EMPTY_CONTENT_DIGEST),
            );
            headers.insert(SIGNATURE_INPUT, HeaderValue::from_static(""));
            headers.insert(SIGNATURE, HeaderValue::from_static(""));
        }
        Signing::Legacy => {
            headers.insert(SERVICE_ID_HEADER, service_header.clone());
            headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static("0"));
            headers.insert(LEGACY_SIGNATURE_HEADER, HeaderValue::from_static(""));
        }
    }
    if signing == Signing::Legacy || body {
        // The Python library sends it on every request; a call's own replaces it.
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if body {
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    headers
}

/// A clone of `template` with `headers` laid over it: a name in `headers` replaces the
/// template's value (a caller's `Accept`, say), and keeps every value it was given.
pub(crate) fn over_template(template: &HeaderMap, headers: &HeaderMap) -> HeaderMap {
    let mut out = template.clone();
    let mut previous: Option<&HeaderName> = None;
    for (name, value) in headers {
        if previous == Some(name) {
            out.append(name.clone(), value.clone());
        } else {
            out.insert(name.clone(), value.clone());
        }
        previous = Some(name);
    }
    out
}

/// Splits a base URL into its origin as a URL (path `/`), the origin as text
/// (`scheme://host:port`) and the path prefix, refusing anything a base URL should not have.
fn parse_base_url(raw: &str) -> Result<(reqwest::Url, String, String), Error> {
    let bad = |message: String| Error::config("base_url", message);
    let url = reqwest::Url::parse(raw).map_err(|e| bad(format!("`{raw}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("`{raw}` must use http or https")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!("`{raw}` must not have a query or fragment")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(format!("`{raw}` must not carry credentials")));
    }
    let host = url
        .host_str()
        .ok_or_else(|| bad(format!("`{raw}` has no host")))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| bad(format!("`{raw}` has no port")))?;
    let origin = format!("{}://{}:{}", url.scheme(), host, port);
    let prefix = url.path().trim_end_matches('/').to_owned();
    let mut base = url;
    base.set_path("/");
    Ok((base, origin, prefix))
}

/// A call's parts that every attempt reuses.
struct Prepared {
    url: reqwest::Url,
    /// What an RFC 9421 signature covers, as the inner list of `Signature-Input` (empty for
    /// legacy signatures).
    inner_list: String,
    idempotent: bool,
    attempt_timeout: Duration,
    /// When the call must be over, and the deadline it was given.
    deadline: Option<(Instant, Duration)>,
}

impl Prepared {
    /// The next attempt's timeout, shortened to what is left of the deadline, and the
    /// duration a timeout error reports (the attempt timeout or the whole deadline).
    fn limit(&self) -> (Duration, Duration) {
        match self.deadline {
            Some((at, total)) => {
                let left = at.saturating_duration_since(Instant::now());
                if left < self.attempt_timeout {
                    (left, total)
                } else {
                    (self.attempt_timeout, self.attempt_timeout)
                }
            }
            None => (self.attempt_timeout, self.attempt_timeout),
        }
    }
}

/// How one attempt ended.
enum Attempt {
    Response(StatusCode, HeaderMap, Bytes),
    Connect(reqwest::Error),
    Transport(reqwest::Error),
    Timeout,
    TooLarge,
}

impl Executor {
    /// A builder with the defaults: RFC 9421 signing, 10 s attempt timeout, [`RetryConfig::default`],
    /// [`BreakerConfig::default`], the shared connection pool.
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::default()
    }

    /// The base URL calls are sent to.
    pub fn base_url(&self) -> String {
        format!("{}{}", self.inner.origin, self.inner.prefix)
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
    /// Each call runs in a `comms.call` span at `DEBUG` level (target `comms::executor`), with
    /// the executor's name as `service`, `method`, the `route` template (or the path),
    /// `attempts` and the final `status`; `DEBUG` events mark the end of each call. A retry
    /// and an exhausted retry budget are `WARN` events and a breaker's transitions `INFO` or
    /// `WARN` events, each naming the service or authority, so they read well without the
    /// span. An exhausted budget is reported at most once every 10 s, with the number of
    /// retries it refused since the last report, rather than once per failing call.
    ///
    /// The span is `DEBUG`, like tower-http's request spans, because recording it costs more
    /// than the rest of the runtime: with tracing-subscriber's `fmt`, 0.8 µs to open and close
    /// it, and about 3 µs of CPU per call on loopback once its fields are recorded. Enable it
    /// with a filter such as `comms=debug`.
    pub fn execute(&self, call: Call) -> impl Future<Output = Result<Response, Error>> + Send + '_ {
        let span = tracing::debug_span!(
            "comms.call",
            service = %self.inner.name,
            method = %call.method,
            route = %call.route.unwrap_or(call.path.as_str()),
            attempts = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        CallFuture::new(self, call, span, reqwest::Client::execute)
    }

    /// Everything a call needs before its first attempt, in the order that lets an open breaker
    /// refuse before any other work. Returns the breaker's permit for the first attempt.
    fn prepare(&self, call: &mut Call) -> Result<(Prepared, Option<Permit<'_>>), Error> {
        let inner = &*self.inner;
        if let Some(e) = call.error.take() {
            return Err(*e);
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
        let inherently_idempotent = policy::is_idempotent_method(&call.method);
        let idempotent = call.idempotent.unwrap_or(inherently_idempotent);
        let headers = &mut call.headers;
        if idempotent && !inherently_idempotent && !headers.contains_key(&IDEMPOTENCY_KEY) {
            let key = HeaderValue::try_from(hex::encode(random_bytes()?))
                .expect("hex is a valid header value");
            headers.insert(IDEMPOTENCY_KEY, key);
        }
        let inner_list = covered(
            inner.signer.scheme(),
            headers,
            call.body.as_deref().unwrap_or_default(),
        )?;

        if let Some(budget) = &inner.budget {
            budget.deposit();
        }
        let prepared = Prepared {
            url,
            inner_list,
            idempotent,
            attempt_timeout: call.timeout.unwrap_or(inner.timeout),
            deadline: inner.deadline.map(|d| (Instant::now() + d, d)),
        };
        Ok((prepared, permit))
    }

    /// The signed request of one attempt: a fresh creation time, nonce and signature each time.
    fn request(&self, call: &Call, prepared: &Prepared) -> Result<reqwest::Request, Error> {
        let inner = &*self.inner;
        let template = match call.body {
            Some(_) => &inner.body_headers,
            None => &inner.headers,
        };
        let mut headers = over_template(template, &call.headers);
        if !inner.default_client && !call.headers.contains_key(ACCEPT) {
            // The client's own default `Accept`, if it has one, goes into the room this leaves.
            headers.remove(ACCEPT);
        }
        sign_into(
            &self.inner,
            &call.method,
            &prepared.url,
            &call.headers,
            &prepared.inner_list,
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

    /// The error an attempt that did not succeed ends with, and the response headers to read
    /// `Retry-After` from.
    fn failure(
        &self,
        attempt: Attempt,
        call: &Call,
        prepared: &Prepared,
        limit_reported: Duration,
    ) -> (Error, HeaderMap) {
        let (method, url) = (&call.method, &prepared.url);
        match attempt {
            Attempt::Response(status, headers, bytes) => {
                let err = HttpError::from_response(status, method.clone(), shown(url), &bytes);
                (Error::from(err), headers)
            }
            Attempt::Connect(e) | Attempt::Transport(e) => {
                (self.transport(method, url, e), HeaderMap::new())
            }
            Attempt::Timeout => {
                let err = Error::Timeout {
                    method: method.clone(),
                    url: shown(url),
                    after: limit_reported,
                };
                (err, HeaderMap::new())
            }
            Attempt::TooLarge => {
                let err = Error::Decode {
                    method: Some(method.clone()),
                    url: Some(shown(url)),
                    source: format!(
                        "the response body is larger than the {} byte limit",
                        self.inner.max_response_bytes
                    )
                    .into(),
                };
                (err, HeaderMap::new())
            }
        }
    }

    /// Whether a failed attempt is retried, and after how long: the retry rules, `Retry-After`
    /// and its cap, the deadline, the breaker, the budget. `Err` ends the call with the
    /// attempt's error.
    fn retry_wait(
        &self,
        (err, headers): (Error, HeaderMap),
        outcome: Outcome,
        retry: u32,
        prepared: &Prepared,
    ) -> Result<(Error, Duration), Error> {
        let inner = &*self.inner;
        if retry >= inner.retry.max_retries || !outcome.is_retryable(prepared.idempotent) {
            return Err(err);
        }
        let wait = match policy::retry_after(&headers, SystemTime::now()) {
            Some(asked) if asked > inner.retry.max_retry_after => {
                tracing::debug!(?asked, "Retry-After beyond the cap; not retrying");
                return Err(err);
            }
            Some(asked) => asked,
            None => backoff::delay(inner.retry.base_delay, inner.retry.max_delay, retry),
        };
        if let Some((at, _)) = prepared.deadline
            && Instant::now() + wait >= at
        {
            tracing::debug!("no time left before the deadline; not retrying");
            return Err(err);
        }
        // A retry the breaker would refuse ends the call now, with the same error, instead of
        // after the wait; and it takes nothing from the budget.
        if let Some(breaker) = &inner.breaker
            && breaker.open_past(wait)
        {
            tracing::debug!("the breaker stays open past the wait; not retrying");
            return Err(err);
        }
        if let Some(budget) = &inner.budget
            && let Withdrawal::Refused { report } = budget.withdraw()
        {
            match report {
                Some(refused) => tracing::warn!(
                    service = %inner.name,
                    refused,
                    error = %err,
                    "retry budget exhausted; retries refused since the last report"
                ),
                None => tracing::debug!(error = %err, "retry budget exhausted; not retrying"),
            }
            return Err(err);
        }
        Ok((err, wait))
    }

    /// Asks the target's breaker for an attempt. When it refuses, the call ends with
    /// `last_error` (a retry that could not be made) or [`Error::CircuitOpen`].
    fn admit(&self, last_error: Option<Box<Error>>) -> Result<Option<Permit<'_>>, Error> {
        let Some(breaker) = &self.inner.breaker else {
            return Ok(None);
        };
        match breaker.admit() {
            Ok(permit) => Ok(Some(permit)),
            Err(retry_in) => Err(last_error.map_or_else(
                || Error::CircuitOpen {
                    authority: breaker.authority().to_owned(),
                    retry_in,
                },
                |e| *e,
            )),
        }
    }

    fn transport(&self, method: &Method, url: &reqwest::Url, e: reqwest::Error) -> Error {
        Error::Transport {
            method: method.clone(),
            url: shown(url),
            source: Box::new(e.without_url()),
        }
    }
}

impl Attempt {
    fn outcome(&self) -> Outcome {
        match self {
            Attempt::Response(status, ..) => Outcome::of_status(*status),
            Attempt::Connect(_) => Outcome::Connect,
            Attempt::Transport(_) => Outcome::Transport,
            Attempt::Timeout => Outcome::Timeout,
            // The service answered; the body is just more than this client accepts.
            Attempt::TooLarge => Outcome::Success,
        }
    }
}

/// What an RFC 9421 signature of a call covers, fixed for all its attempts: the inner list of
/// covered components for `Signature-Input`. Adds the body's `Content-Digest` to the call's
/// headers (none for a legacy signature), and refuses a covered header the call set more than
/// once, which a verifier would refuse.
fn covered(scheme: Signing, call_headers: &mut HeaderMap, body: &[u8]) -> Result<String, Error> {
    if scheme == Signing::Legacy {
        return Ok(String::new());
    }
    if let Some(name) = signing::covered_fields(call_headers)
        .find(|name| call_headers.get_all(*name).iter().nth(1).is_some())
    {
        return Err(Error::encode(format!(
            "header `{name}` is set more than once; a signed header must occur once"
        )));
    }
    let digest = match body {
        [] => HeaderValue::from_static(signing::EMPTY_CONTENT_DIGEST),
        body => HeaderValue::try_from(signing::content_digest(body))
            .expect("base64 is a valid header value"),
    };
    call_headers.insert(CONTENT_DIGEST, digest);
    Ok(signing::inner_list(
        signing::covered_fields(call_headers).map(HeaderName::as_str),
    ))
}

impl Executor {
    /// Signs `request` as the one attempt of a call with its method, URL, headers and body,
    /// into this executor's header template: the signed request a hand-written client of the
    /// protocol would send, with nothing else of a call around it (for the benchmarks).
    pub(crate) fn sign_request(&self, request: &mut reqwest::Request) -> Result<(), Error> {
        let inner = &*self.inner;
        let mut call_headers = std::mem::take(request.headers_mut());
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .unwrap_or_default();
        let inner_list = covered(inner.signer.scheme(), &mut call_headers, body)?;
        let template = match body {
            [] => &inner.headers,
            _ => &inner.body_headers,
        };
        let mut headers = over_template(template, &call_headers);
        if !body.is_empty() {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        sign_into(
            inner,
            request.method(),
            request.url(),
            &call_headers,
            &inner_list,
            &mut headers,
        )?;
        *request.headers_mut() = headers;
        Ok(())
    }
}

/// Signs one attempt into `headers`, which hold everything the request will carry: a fresh
/// creation time and nonce, the signature over them, and the headers that carry it.
///
/// For RFC 9421, `inner_list` names the covered components, fixed for the call (see
/// [`covered`]); the signature base is written straight into the MAC from the values in
/// `headers`, so what is signed is what is sent.
fn sign_into(
    inner: &Inner,
    method: &Method,
    url: &reqwest::Url,
    call_headers: &HeaderMap,
    inner_list: &str,
    headers: &mut HeaderMap,
) -> Result<(), Error> {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // The attempt's values share one buffer. reqwest clones the request headers (for a
    // redirect it will not follow), and a clone of a value that owns its own vector
    // allocates; pieces split off a shared buffer are cloned by a reference count.
    let mut buf = BytesMut::with_capacity(160 + inner_list.len() + inner.key_id.len());
    let mut value = |bytes: &[u8]| {
        buf.extend_from_slice(bytes);
        HeaderValue::from_maybe_shared(buf.split().freeze()).expect("ASCII is a header value")
    };
    match inner.signer.scheme() {
        Signing::Rfc9421 => {
            let mut nonce = [0u8; 32];
            hex::encode_to_slice(random_bytes()?, &mut nonce).expect("16 bytes are 32 digits");
            let params = signing::Params {
                created,
                key_id: &inner.key_id,
                nonce: std::str::from_utf8(&nonce).expect("hex is ASCII"),
            };
            let authority = headers
                .get(http::header::HOST)
                .map_or(&b""[..], HeaderValue::as_bytes);
            let fields = signing::covered_fields(call_headers).map(|name| {
                let value = headers.get(name).map_or(&b""[..], HeaderValue::as_bytes);
                (name.as_str().as_bytes(), value)
            });
            let mac = inner.signer.mac(|mac| {
                signing::write_base(
                    mac,
                    method.as_str().as_bytes(),
                    authority,
                    url.path().as_bytes(),
                    url.query().unwrap_or("").as_bytes(),
                    fields,
                );
                signing::write_params(mac, inner_list, &params);
            });
            let mut input = Vec::with_capacity(inner_list.len() + 120);
            input.extend_from_slice(signing::LABEL.as_bytes());
            input.push(b'=');
            signing::write_params_value(&mut input, inner_list, &params);
            headers.insert(SIGNATURE_INPUT, value(&input));
            let mut signature = value(signing::signature_value(&mac).as_bytes());
            signature.set_sensitive(true);
            headers.insert(SIGNATURE, signature);
        }
        Signing::Legacy => {
            let mut digits = itoa::Buffer::new();
            let timestamp = digits.format(created);
            let mac = inner.signer.mac(|mac| {
                hmac::Mac::update(
                    mac,
                    &signing::legacy_string_to_sign(method.as_str(), url.path(), created),
                );
            });
            let mut hex_mac = [0u8; 64];
            hex::encode_to_slice(mac, &mut hex_mac).expect("32 bytes are 64 digits");
            headers.insert(SERVICE_ID_HEADER, inner.service_header.clone());
            headers.insert(TIMESTAMP_HEADER, value(timestamp.as_bytes()));
            let mut signature = value(&hex_mac);
            signature.set_sensitive(true);
            headers.insert(LEGACY_SIGNATURE_HEADER, signature);
        }
    }
    Ok(())
}

/// A URL as errors show it: without its query, which may carry data that does not belong in
/// logs.
pub(crate) fn without_query(url: &reqwest::Url) -> &str {
    let text = url.as_str();
    text.split_once('?').map_or(text, |(before, _)| before)
}

fn shown(url: &reqwest::Url) -> String {
    without_query(url).to_owned()
}

fn classify(e: reqwest::Error) -> Attempt {
    if e.is_timeout() {
        Attempt::Timeout
    } else if e.is_connect() {
        Attempt::Connect(e)
    } else {
        Attempt::Transport(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let (url, origin, prefix) = parse_base_url("http://users.internal:8080").unwrap();
        assert_eq!(
            (url.as_str(), origin.as_str(), prefix.as_str()),
            (
                "http://users.internal:8080/",
                "http://users.internal:8080",
                ""
            )
        );
        let (url, origin, prefix) = parse_base_url("https://h/api/v1/").unwrap();
        assert_eq!(
            (url.as_str(), origin.as_str(), prefix.as_str()),
            ("https://h/", "https://h:443", "/api/v1")
        );
        for bad in [
            "users.internal",
            "ftp://h",
            "http://h/?q=1",
            "http://h/#f",
            "http://u:p@h/",
        ] {
            let err = parse_base_url(bad).unwrap_err();
            assert!(
                matches!(&err, Error::Config { key, .. } if key == "base_url"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn builder_reports_missing_settings() {
        let err = Executor::builder().build().unwrap_err();
        assert!(matches!(err, Error::Config { key, .. } if key == "base_url"));
        let err = Executor::builder()
            .base_url("http://h")
            .service_id("a b")
            .secret("x")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Config { key, .. } if key == "service_id"));
        let err = Executor::builder()
            .base_url("http://h")
            .service_id("svc")
            .secret("")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Config { key, .. } if key == "secret"));
        for bad in ["", "a\"b", "a\\b", "a b"] {
            let err = Executor::builder()
                .base_url("http://h")
                .service_id("svc")
                .key_id(bad)
                .secret("x")
                .build()
                .unwrap_err();
            assert!(
                matches!(&err, Error::Config { key, .. } if key == "key_id"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn a_call_future_stays_small() {
        // The future is moved into its caller's state when awaited, and every call in flight
        // keeps one: 4.2 KiB as a first `async fn`, 1.6 KiB once slimmed, under 900 bytes
        // written out by hand (`call_future.rs`).
        let e = Executor::builder()
            .base_url("http://h")
            .service_id("svc")
            .secret("s")
            .build()
            .unwrap();
        let call = e.execute(Call::get("/x"));
        let size = std::mem::size_of_val(&call);
        assert!(size <= 900, "the call's future is {size} bytes");
    }

    #[test]
    fn the_host_header_is_what_hyper_would_write() {
        let host = |url: &str| {
            let url = reqwest::Url::parse(url).unwrap();
            let v = HeaderValue::from_static("svc");
            attempt_headers(&url, &v, Signing::Rfc9421, false)[http::header::HOST].clone()
        };
        assert_eq!(
            host("http://users.internal:8080/api"),
            "users.internal:8080"
        );
        assert_eq!(host("http://users.internal:80"), "users.internal");
        assert_eq!(host("https://users.internal:443"), "users.internal");
        assert_eq!(host("https://users.internal:80"), "users.internal:80");
        assert_eq!(host("http://[::1]:9000"), "[::1]:9000");
        assert_eq!(host("http://bücher.example"), "xn--bcher-kva.example");
    }

    #[test]
    fn legacy_attempts_carry_only_legacy_headers() {
        let url = reqwest::Url::parse("http://h:1").unwrap();
        let v = HeaderValue::from_static("svc");
        let headers = attempt_headers(&url, &v, Signing::Legacy, false);
        let mut names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        let expected = [
            "accept",
            "content-type",
            "host",
            "x-service-id",
            "x-signature",
            "x-timestamp",
        ];
        assert_eq!(names, expected);
        assert_eq!(headers[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn debug_hides_the_secret() {
        let builder = Executor::builder()
            .base_url("http://h")
            .service_id("svc")
            .secret("hunter2-secret");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let exec = builder.build().unwrap();
        let shown = format!("{exec:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("svc"));
    }
}
