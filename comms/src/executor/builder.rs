//! Building an [`Executor`]: the builder's settings, checked once in
//! [`ExecutorBuilder::build`], and the base URL split into what every call reuses.
//!
//! Kept apart from what runs per call, so that a call's path reads without the configuration
//! around it: everything here runs once per executor.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use http::HeaderMap;
use http::header::HeaderValue;

use super::headers::Templates;
use super::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, Executor, Inner, shared_http_client};
use crate::Error;
use crate::breaker::{Breaker, BreakerConfig, BreakerSync};
use crate::hook::Hook;
use crate::retry::RetryConfig;
use crate::retry::budget::RetryBudget;
use crate::signing::{self, Secret, Signer, Signing};

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
    /// Headers every call carries unless it sets them itself, as given (checked in `build`).
    default_headers: Vec<(String, String)>,
    /// Headers supplied afresh for every attempt.
    hook: Option<Hook>,
}

impl fmt::Debug for ExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorBuilder")
            .field("name", &self.name)
            .field(
                "base_url",
                &self.base_url.as_deref().map(without_credentials),
            )
            .field("service_id", &self.service_id)
            .field("key_id", &self.key_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("signing", &self.signing)
            .field("header_hook", &self.hook.is_some())
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
            default_headers: Vec::new(),
            hook: None,
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

    /// The timeout of each attempt (10 s by default; zero is refused by [`build`](Self::build)).
    /// A call's own timeout takes precedence.
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
    ///
    /// The sync is part of what the breaker is shared by: clients of one target with the same
    /// configuration share a breaker when they are given the same sync, or none. Give every
    /// client of a target in the process the same sync, or one that has none keeps calling a
    /// target the others have found dead.
    pub fn breaker_sync(mut self, sync: BreakerSync) -> Self {
        self.breaker_sync = Some(sync);
        self
    }

    /// Uses this client's connection pool instead of the shared one. Configure it not to
    /// follow redirects ([`reqwest::redirect::Policy::none`]): a signed request must not be
    /// replayed to another location. (One that follows a redirect anyway has sent the request
    /// on before comms sees the answer; the call then fails with
    /// [`Error::Config`](crate::Error::Config) for `http_client` rather than hand over the
    /// other location's answer as the target's. But when the redirect's own request fails, the
    /// call sees only that failure, as the target's: a connect error there is retried, for any
    /// method, as a request that never left, though the target has run it.)
    ///
    /// The client's default headers are sent as usual. Each attempt's header map has room for
    /// one of them (its `Accept`, which reqwest sets to `*/*` unless told otherwise); more
    /// make reqwest grow the map on every request, which is measurable when many threads
    /// share the allocator. A header every call needs can go on the calls instead.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The largest response body accepted (16 MiB by default). A larger 2xx body is an
    /// [`Error::Decode`](crate::Error::Decode); an error status with a larger body is that
    /// status's error, without the body.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// A header every call carries unless it sets the same one itself (a tenant id, a token
    /// that does not expire), covered by the signature like the call's own; a view's
    /// ([`Executor::with`](crate::Executor::with)) of the same name wins. A `Content-Type`
    /// replaces the one a JSON or raw body implies, but not one the call sets, nor a form's or
    /// multipart body's own. A name comms sets
    /// itself (the signature's headers, `Host`, `Content-Length`, `Transfer-Encoding`), one
    /// that belongs to one call (`Idempotency-Key`, `Comms-Deadline-Ms`, trace context), a
    /// hop-by-hop one, a name or value HTTP cannot carry, or a name set twice, is an
    /// [`Error::Config`] from [`build`](Self::build).
    /// The values never appear in `Debug` output.
    pub fn default_header(mut self, name: impl Into<String>, value: impl fmt::Display) -> Self {
        self.default_headers.push((name.into(), value.to_string()));
        self
    }

    /// An async function that supplies headers for every attempt, called afresh each time just
    /// before the attempt is signed, so the signature covers what it returns: for credentials
    /// that expire, such as a bearer token from a cache that may have to refresh.
    ///
    /// A header it returns replaces the call's own of that name. It runs within the call's
    /// deadline and the attempt's timeout (the request gets what the hook left of it, and when
    /// that is less than half the attempt timeout, its timeout is not counted against the
    /// target by the breaker); an error it returns ends the call with that error, unsent, and
    /// so does a name comms writes itself, one that belongs to one call (`Idempotency-Key`,
    /// `Comms-Deadline-Ms`, trace context), a hop-by-hop one, a `Content-Type` for a call whose
    /// form or multipart body has its own, or a value with white space at either end, which
    /// would arrive trimmed, or outside ASCII, which a signature cannot cover (`Error::Config`,
    /// key `header_hook`). A server method passing a hook's error on with `?` answers a bare
    /// 500: the error is this service's, not a status it answers with.
    ///
    /// ```no_run
    /// use comms::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
    ///
    /// # async fn fresh_token() -> Result<String, comms::Error> { Ok("t".into()) }
    /// let users = comms::Executor::builder()
    ///     .base_url("http://users.internal:8080")
    ///     .service_id("billing")
    ///     .secret("s3cr3t")
    ///     .header_hook(|| async {
    ///         let token = fresh_token().await?;
    ///         let mut headers = HeaderMap::new();
    ///         let value = HeaderValue::try_from(format!("Bearer {token}"))
    ///             .map_err(|_| comms::Error::config("token", "not a header value"))?;
    ///         headers.insert(AUTHORIZATION, value);
    ///         Ok(headers)
    ///     })
    ///     .build()?;
    /// # Ok::<(), comms::Error>(())
    /// ```
    pub fn header_hook<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HeaderMap, Error>> + Send + 'static,
    {
        self.hook = Some(crate::hook::hook(hook));
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
        if secret.is_short() {
            tracing::warn!(
                service_id = %service_id,
                key_id = %key_id,
                "the signing secret is shorter than 32 bytes: one signed request lets a guess \
                 be tested offline; use 32 random bytes or more"
            );
        }
        // Every attempt would end unsent, as a method's `timeout_ms = 0` is refused at compile
        // time.
        if self.timeout.is_zero() {
            return Err(Error::config(
                "timeout",
                "the attempt timeout must be more than zero",
            ));
        }
        if self
            .retry
            .budget
            .is_some_and(|budget| budget.ratio.is_nan())
        {
            return Err(Error::config(
                "retry.budget",
                "the budget's ratio is not a number",
            ));
        }
        let breaker = self
            .breaker
            .enabled
            .then(|| Breaker::shared(&origin, &self.breaker, self.breaker_sync.as_ref()));
        let mut default_headers = http::HeaderMap::new();
        for (name, value) in self.default_headers {
            use crate::header_map::{Refusal, checked};
            let bad = |why: &str| Error::config("default_header", format!("`{name}` {why}"));
            // Shared by every call, like a view's headers: so not one that belongs to a
            // single call (an `Idempotency-Key` shared by every call would answer each with
            // the first one's stored result), nor a hop-by-hop one.
            let (name, value) =
                checked(&name, value, signing::is_call_owned).map_err(|refusal| match refusal {
                    Refusal::Name => bad("is not a valid header name"),
                    Refusal::Refused(_) => bad(
                        "is set by comms itself, belongs to one call or is hop-by-hop, and cannot \
                         be a default header",
                    ),
                    Refusal::Value(_, why) => bad(&format!("value {why}")),
                })?;
            // Set twice, it would be sent twice, which a signature covering it cannot be (as
            // `Call::header` refuses); which one was meant is not for comms to guess.
            if default_headers.contains_key(&name) {
                return Err(bad("is set more than once"));
            }
            default_headers.insert(name, value);
        }
        let templates = Templates::new(&base, &service_header, self.signing);
        let default_client = self.http.is_none();
        let target = crate::telemetry::Target::new(&base, &prefix);
        Ok(Executor {
            inner: Arc::new(Inner {
                name: self.name,
                http: self.http.unwrap_or_else(|| shared_http_client().clone()),
                base,
                prefix,
                service_id,
                service_header,
                key_id,
                templates,
                default_client,
                signer: Signer::new(&secret, self.signing),
                budget: self.retry.budget.map(RetryBudget::new),
                retry: self.retry,
                breaker,
                _breaker_sync: self.breaker_sync,
                timeout: self.timeout,
                deadline: self.deadline,
                max_response_bytes: self.max_response_bytes,
                default_headers,
                hook: self.hook,
                target,
            }),
            options: None,
        })
    }
}

/// Splits a base URL into its origin as a URL (path `/`), the origin as text
/// (`scheme://host:port`) and the path prefix. What a base URL may be is `comms_uri`'s rule, the
/// one the macro applies to `base_url = ".."` at compile time; the URL parser then normalizes
/// the host (IDNA, IPv6) and refuses what is not a URL at all.
fn parse_base_url(raw: &str) -> Result<(reqwest::Url, String, String), Error> {
    let bad = |message: String| Error::config("base_url", message);
    let shown = without_credentials(raw);
    let credentials = raw.contains('@');
    comms_uri::BaseUrl::parse(raw).map_err(|why| {
        use comms_uri::BaseUrlError::{Address, Host, NotAscii, Port};
        match (credentials, why) {
            // The reason would quote a piece of what is hidden: a password with a `/` in it
            // (`svc:hun/ter2@`) is read as a host and a port (`hun`) before the path.
            (true, Host(_) | NotAscii(_) | Address(_) | Port(_)) => bad(format!(
                "`{shown}` is not a base URL: its host or port is not one (not shown: what \
                 comes before an `@` may be a password)"
            )),
            (_, why) => bad(format!("`{shown}` is not a base URL: {why}")),
        }
    })?;
    let url = reqwest::Url::parse(raw).map_err(|e| bad(format!("`{shown}` is not a URL: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| bad(format!("`{shown}` has no host")))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| bad(format!("`{shown}` has no port")))?;
    let origin = format!("{}://{}:{}", url.scheme(), host, port);
    let prefix = url.path().trim_end_matches('/').to_owned();
    let mut base = url;
    base.set_path("/");
    Ok((base, origin, prefix))
}

/// A base URL as an error may show it: whatever precedes an `@` (a user and a password, which
/// a base URL may not carry) is replaced by `***`, and so is a query or fragment (an API key,
/// say, which a base URL may not carry either), so that a URL refused for carrying them, from
/// the environment perhaps, does not put them in a log.
///
/// A password may hold a `/`, `?`, `#` or `@` (which a URL parser then takes for the path's,
/// the query's or the host's start), so everything before the last `@` is hidden, wherever it
/// is. When a `?` or `#` comes before that `@`, the `@` may as well be in the query (`?key=a@b`)
/// as in a password, and all but the scheme is hidden. A base URL with an `@` in its path has
/// more hidden than it needs; none that is accepted has one there.
fn without_credentials(raw: &str) -> Cow<'_, str> {
    let start = raw.find("://").map_or(0, |at| at + 3);
    let (scheme, rest) = raw.split_at(start);
    let query_at = rest.find(['?', '#']);
    let (credentials, from) = match rest.rfind('@') {
        Some(at) if query_at.is_some_and(|query| query < at) => {
            return format!("{scheme}***").into();
        }
        Some(at) => ("***", at),
        None => ("", 0),
    };
    // A query or fragment starts past the `@` (or there is none): shown up to it.
    let (shown, query) = match query_at {
        Some(at) => (&rest[from..at], &rest[at..=at]),
        None => (&rest[from..], ""),
    };
    match (credentials, query) {
        ("", "") => raw.into(),
        (_, "") => format!("{scheme}{credentials}{shown}").into(),
        _ => format!("{scheme}{credentials}{shown}{query}***").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_base_url_is_shown_without_its_credentials() {
        for (raw, shown) in [
            (
                "http://svc:hunter2@users.internal:8080/api",
                "http://***@users.internal:8080/api",
            ),
            ("svc:hunter2@users.internal", "***@users.internal"),
            ("http://a@b@users.internal", "http://***@users.internal"),
        ] {
            assert_eq!(without_credentials(raw), shown);
            let err = parse_base_url(raw).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(shown), "{err}");
        }
        // A password with a `/`, `?` or `#` in it (after a `?` or `#`, an `@` may be the
        // query's: all is hidden).
        for (raw, shown_as) in [
            (
                "http://svc:hun/ter2@users.internal:8080",
                "http://***@users.internal:8080",
            ),
            ("http://svc:hun?ter2@users.internal:8080", "http://***"),
            ("http://svc:hun#ter2@users.internal:8080/api", "http://***"),
            ("http://users.internal/api?key=abc@s3cr3tTail", "http://***"),
        ] {
            let shown = without_credentials(raw);
            assert_eq!(shown, shown_as);
            // Nor does the reason the URL is refused quote the password's first piece, which a
            // URL parser reads as a port.
            let err = parse_base_url(raw).map(|_| ()).unwrap_err().to_string();
            assert!(!err.contains("hun") && !err.contains("s3cr3t"), "{err}");
        }
        // A password with both an `@` and a `/`.
        let shown = without_credentials("http://svc:p@ss/w0rd@users.internal:8080/api");
        assert_eq!(shown, "http://***@users.internal:8080/api");
        // A query or fragment is hidden too.
        for (raw, shown) in [
            (
                "http://users.internal/a?key=k3y#c",
                "http://users.internal/a?***",
            ),
            ("http://users.internal/a#k3y", "http://users.internal/a#***"),
            (
                "http://svc:pw@users.internal?k3y",
                "http://***@users.internal?***",
            ),
        ] {
            assert_eq!(without_credentials(raw), shown);
            let err = parse_base_url(raw).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(shown) && !err.contains("k3y"), "{err}");
        }
        // Without either, nothing is hidden.
        let raw = "http://users.internal:8080/a/b";
        assert_eq!(without_credentials(raw), raw);
    }

    #[test]
    fn a_builders_debug_shows_its_base_url_without_credentials() {
        let builder = ExecutorBuilder::default()
            .base_url("http://svc:hunter2@users.internal:8080")
            .secret("s3cr3t");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("***@users.internal:8080"), "{shown}");
    }

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
            "http://h:99999",
            "http://h /x",
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
        let err = Executor::builder()
            .base_url("http://h")
            .service_id("svc")
            .secret("x")
            .timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Config { key, .. } if key == "timeout"));
        let err = Executor::builder()
            .base_url("http://h")
            .service_id("svc")
            .secret("x")
            .retry(crate::RetryConfig::default().budget(f64::NAN, 10))
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Config { key, .. } if key == "retry.budget"));
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

    /// What the shared rule accepts (and so the macro at compile time), the URL parser
    /// accepts too, with the same host and port: a `base_url` that compiles builds.
    #[test]
    fn what_the_shared_rule_accepts_the_url_parser_reads_alike() {
        let mut hosts: Vec<String> = [
            "h",
            "[::1]",
            "[zz]",
            "[fe80::1%25eth0]",
            "::1",
            "a:b",
            "127.0.0.1",
            "127.0.0.1.",
            "10.1",
            "999",
            "1.2.3.999",
            "010.0.0.1",
            "0x7f.0.0.1",
            "h.0x7f",
            "v1.2x",
            "bücher.de",
            "[::ffff:10.0.0.1]",
            "h%41x",
            "xn--bcher-kva.de",
            "0xcafe-svc",
            "0x",
            "0xg",
            "１０.１",
            "a.１",
            "ｂ.c",
            "10\u{3002}1",
            "0\u{ff58}7f",
            "-",
            "_",
            "a..b",
            ".",
            "..",
        ]
        .map(String::from)
        .to_vec();
        for b in 0x21..0x7fu8 {
            let c = char::from(b);
            hosts.extend([format!("a{c}b"), format!("{c}"), format!("a{c}")]);
        }
        for host in &hosts {
            for port in ["", ":80", ":+80", ":0080", ":", ":65536", ":8a"] {
                for path in ["", "/", "/api", "/a\\b", "/%41/x"] {
                    let raw = format!("http://{host}{port}{path}");
                    let Ok(shared) = comms_uri::BaseUrl::parse(&raw) else {
                        continue;
                    };
                    let url = reqwest::Url::parse(&raw).unwrap_or_else(|e| {
                        panic!("{raw:?}: accepted by comms_uri, not a URL: {e}")
                    });
                    assert!(parse_base_url(&raw).is_ok(), "{raw:?}");
                    assert_eq!(
                        url.port_or_known_default(),
                        Some(shared.port.unwrap_or(80)),
                        "{raw:?}"
                    );
                    let host = shared.host.strip_suffix('.').unwrap_or(shared.host);
                    if let Some(ip) = host.strip_prefix('[') {
                        let ip: std::net::Ipv6Addr = ip.trim_end_matches(']').parse().unwrap();
                        assert_eq!(
                            url.host(),
                            Some(
                                reqwest::Url::parse(&format!("http://[{ip}]"))
                                    .unwrap()
                                    .host()
                                    .unwrap()
                            ),
                            "{raw:?}"
                        );
                    } else if host.is_ascii() {
                        assert!(
                            url.host_str().unwrap().eq_ignore_ascii_case(host)
                                || url.host_str() == Some(&format!("{host}.")),
                            "{raw:?}: {:?}",
                            url.host_str()
                        );
                    }
                }
            }
        }
    }
}
