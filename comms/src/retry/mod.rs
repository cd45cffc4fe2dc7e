//! Retrying transient failures: *whether* to retry ([`policy`]), *how long* to wait
//! ([`backoff`]), and *how much* retrying the target can take ([`budget`]).

pub(crate) mod backoff;
pub(crate) mod budget;
pub(crate) mod policy;

use std::time::Duration;

/// How a client retries transient failures.
///
/// Retried: connect errors for any method (nothing was sent); timeouts, other transport errors
/// and 429/500/502/503/504 responses only for idempotent methods (GET, HEAD, OPTIONS, PUT,
/// DELETE, TRACE) or calls marked idempotent. Waits are exponential with full jitter, unless the
/// response says `Retry-After`, which is honoured up to [`RetryConfig::max_retry_after`]
/// (a longer wait means no retry). A retry budget shared by the client and its clones keeps
/// retries to about a fifth of recent traffic plus a small floor, so an outage does not
/// multiply the load on the failing service.
///
/// ```
/// use std::time::Duration;
/// let retry = comms::RetryConfig::default()
///     .max_retries(5)
///     .base_delay(Duration::from_millis(50))
///     .max_delay(Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct RetryConfig {
    pub(crate) max_retries: u32,
    pub(crate) base_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) budget: Option<BudgetConfig>,
}

/// The retry budget's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BudgetConfig {
    pub(crate) ratio: f64,
    pub(crate) min_per_sec: u32,
}

impl Default for RetryConfig {
    /// 3 retries, backoff from 100 ms capped at 2 s, `Retry-After` honoured up to 30 s, and a
    /// budget of 20% of calls plus 10 retries a second.
    fn default() -> Self {
        RetryConfig {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(30),
            budget: Some(BudgetConfig {
                ratio: 0.2,
                min_per_sec: 10,
            }),
        }
    }
}

impl RetryConfig {
    /// No retries at all: every call makes exactly one attempt.
    pub fn none() -> Self {
        RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        }
    }

    /// How many retries a call may make after its first attempt.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The backoff before the first retry's upper bound; it doubles for each later retry.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The cap on the backoff's upper bound.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The longest `Retry-After` that is waited for; a response asking for longer is returned
    /// as it is, without a retry.
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// Sets the retry budget: retries may add `ratio` of the calls made recently (0.2 = 20%,
    /// taken within 0 to 1000; NaN is refused when the client is built), plus `min_per_sec`
    /// retries each second whatever the traffic.
    pub fn budget(mut self, ratio: f64, min_per_sec: u32) -> Self {
        self.budget = Some(BudgetConfig {
            ratio: ratio.clamp(0.0, 1000.0),
            min_per_sec,
        });
        self
    }

    /// Removes the retry budget: every failing call may use all of its retries.
    pub fn no_budget(mut self) -> Self {
        self.budget = None;
        self
    }
}
