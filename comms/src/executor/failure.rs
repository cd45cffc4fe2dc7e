//! After an attempt that did not succeed: the error the call ends with if it ends there, and
//! whether another attempt follows, and when.
//!
//! The part of that decision the retry rules and the response make ([`retry_plan`]: retries
//! left, the outcome, `Retry-After` and its cap, the backoff) is a function of its own, apart
//! from the state the executor adds (the deadline, the breaker, the budget), so that the
//! `__internals` hook the fuzz targets classify responses with runs the same code as calls do;
//! so is the error of a response outside 2xx ([`status_error`]).

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, Method, StatusCode};

use super::{Attempt, Executor, Prepared, TARGET};
use crate::Error;
use crate::call::Call;
use crate::error::HttpError;
use crate::response::shown;
use crate::retry::budget::Withdrawal;
use crate::retry::policy::{self, Outcome};
use crate::retry::{RetryConfig, backoff};

/// The wait before the next attempt, and what set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// What the response's `Retry-After` asked for, within the cap.
    Asked(Duration),
    /// The jittered backoff.
    Backoff(Duration),
}

impl Wait {
    /// How long the wait is, whatever set it.
    pub(crate) fn duration(self) -> Duration {
        match self {
            Wait::Asked(wait) | Wait::Backoff(wait) => wait,
        }
    }
}

/// The wait before retrying a failed attempt, as far as the retry rules and its response
/// decide (`asked`, the wait its `Retry-After` asks for): `None` ends the call (no retries
/// left, an outcome this call does not retry, or a `Retry-After` beyond
/// [`RetryConfig::max_retry_after`]). The deadline, the breaker and the budget have their say
/// after this.
pub(crate) fn retry_plan(
    config: &RetryConfig,
    outcome: Outcome,
    idempotent: bool,
    retry: u32,
    asked: Option<Duration>,
) -> Option<Wait> {
    if retry >= config.max_retries || !outcome.is_retryable(idempotent) {
        return None;
    }
    match asked {
        Some(asked) if asked > config.max_retry_after => {
            tracing::debug!(target: TARGET, ?asked, "Retry-After beyond the cap; not retrying");
            None
        }
        Some(asked) => Some(Wait::Asked(asked)),
        None => Some(Wait::Backoff(backoff::delay(
            config.base_delay,
            config.max_delay,
            retry,
        ))),
    }
}

/// The error a response outside 2xx ends a call with: the status variant, with the JSON
/// `message`, an excerpt of the body, the response's headers and the wait its `Retry-After`
/// asks for.
pub(crate) fn status_error(
    status: StatusCode,
    method: &Method,
    url: &reqwest::Url,
    body: &[u8],
    headers: HeaderMap,
) -> Error {
    let mut err = HttpError::from_response(status, method.clone(), shown(url), body);
    let asked = policy::retry_after(&headers, SystemTime::now());
    err.set_received_headers(headers, asked);
    Error::from(err)
}

impl Executor {
    /// The error an attempt that did not succeed ends with (a received status's carries the
    /// wait its `Retry-After` asks for).
    pub(super) fn failure(
        &self,
        attempt: Attempt,
        call: &Call,
        prepared: &Prepared,
        limit_reported: Duration,
    ) -> Error {
        let (method, url) = (&call.method, &prepared.url);
        match attempt {
            Attempt::Response(status, headers, bytes) => {
                status_error(status, method, url, &bytes, headers)
            }
            Attempt::Connect(e) => Error::transport(method, url, e, true),
            Attempt::Transport(e) => Error::transport(method, url, e, false),
            Attempt::Timeout => Error::timeout(method, url, limit_reported),
            // An error status is that status's error, whatever its body: retried and counted
            // by the breaker as the status is. (Its body excerpt is left empty.)
            Attempt::TooLarge(status, headers) if !status.is_success() => {
                status_error(status, method, url, &[], headers)
            }
            Attempt::Redirected(_, location) => Error::config(
                "http_client",
                format!(
                    "the client followed a redirect of {method} {} to {location}: build it \
                         with `redirect(reqwest::redirect::Policy::none())`, since a signed \
                         request must not travel to another location (comms' own client never \
                         follows one)",
                    shown(url)
                ),
            ),
            Attempt::TooLarge(..) => Error::Decode {
                method: Some(method.clone()),
                url: Some(shown(url)),
                source: format!(
                    "the response body is larger than the {} byte limit",
                    self.inner.max_response_bytes
                )
                .into(),
            },
        }
    }

    /// Whether a failed attempt is retried, and after how long: the retry rules, `Retry-After`
    /// and its cap, the deadline, the breaker, the budget. `Err` ends the call with the
    /// attempt's error.
    pub(super) fn retry_wait(
        &self,
        err: Error,
        outcome: Outcome,
        retry: u32,
        prepared: &Prepared,
    ) -> Result<(Error, Duration), Error> {
        let inner = &*self.inner;
        let asked = err.http_error().and_then(HttpError::retry_after);
        let plan = retry_plan(&inner.retry, outcome, prepared.idempotent, retry, asked);
        let Some(wait) = plan.map(Wait::duration) else {
            return Err(err);
        };
        if let Some((at, _)) = prepared.deadline
            && Instant::now().checked_add(wait).is_none_or(|end| end >= at)
        {
            tracing::debug!(target: TARGET, "no time left before the deadline; not retrying");
            return Err(err);
        }
        // A retry the breaker would refuse ends the call now, with the same error, instead of
        // after the wait; and it takes nothing from the budget. It is counted as refused.
        if let Some(breaker) = &inner.breaker
            && breaker.refuses_after(wait)
        {
            tracing::debug!(target: TARGET, "the breaker would refuse the retry; not retrying");
            crate::telemetry::breaker_refused(&inner.target);
            return Err(err);
        }
        if let Some(budget) = &inner.budget
            && let Withdrawal::Refused { report } = budget.withdraw()
        {
            crate::telemetry::budget_refused(&inner.target);
            match report {
                Some(refused) => tracing::warn!(
                    target: TARGET,
                    service = %inner.name,
                    refused,
                    error = %crate::error::WithSources(&err),
                    "retry budget exhausted; retries refused since the last report"
                ),
                None => tracing::debug!(
                    target: TARGET,
                    error = %err,
                    "retry budget exhausted; not retrying"
                ),
            }
            return Err(err);
        }
        Ok((err, wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn asking(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_str(retry_after).unwrap(),
        );
        headers
    }

    #[test]
    fn retry_after_within_the_cap_sets_the_wait_and_beyond_it_ends_the_call() {
        let config = RetryConfig::default().max_retry_after(Duration::from_secs(30));
        let unavailable = Outcome::Status(StatusCode::SERVICE_UNAVAILABLE);
        let now = SystemTime::now();
        let plan = |headers: &HeaderMap| {
            let asked = policy::retry_after(headers, now);
            retry_plan(&config, unavailable, true, 0, asked)
        };
        assert_eq!(
            plan(&asking("30")),
            Some(Wait::Asked(Duration::from_secs(30)))
        );
        assert_eq!(plan(&asking("31")), None);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(3600));
        assert_eq!(plan(&asking(&later)), None);
        match plan(&HeaderMap::new()) {
            Some(Wait::Backoff(wait)) => assert!(wait <= Duration::from_millis(100)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_retry_rules_come_first() {
        let config = RetryConfig::default().max_retries(2);
        let now = SystemTime::now();
        let headers = policy::retry_after(&asking("1"), now);
        let unavailable = Outcome::Status(StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry_plan(&config, unavailable, true, 1, headers).is_some());
        assert_eq!(retry_plan(&config, unavailable, true, 2, headers), None);
        assert_eq!(retry_plan(&config, unavailable, false, 0, headers), None);
        let not_found = Outcome::Status(StatusCode::NOT_FOUND);
        assert_eq!(retry_plan(&config, not_found, true, 0, headers), None);
        assert_eq!(
            retry_plan(&config, Outcome::Success, true, 0, headers),
            None
        );
        assert_eq!(
            retry_plan(&config, Outcome::Connect, false, 0, headers),
            Some(Wait::Asked(Duration::from_secs(1)))
        );
    }
}
