//! Whether an attempt's outcome is worth another attempt, and what the breaker makes of it.
//!
//! The status rules live here and nowhere else: [`is_retryable_status`] (also behind
//! `Error::is_retryable`) and [`is_failure_status`].

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode};

/// Methods whose repetition has the same effect as one call (RFC 9110, section 9.2.2).
pub(crate) fn is_idempotent_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Statuses the breaker counts as a failure of the target: 500, 502, 503, 504.
pub(crate) fn is_failure_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// Statuses worth another attempt of an idempotent call: the breaker's failures, and 429.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || is_failure_status(status)
}

/// How one attempt ended, reduced to what the retry and breaker decisions need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A 2xx response.
    Success,
    /// A response outside 2xx.
    Status(StatusCode),
    /// The connection could not be made: nothing was sent.
    Connect,
    /// The request may have been sent, but no complete response came back.
    Transport,
    /// The attempt timed out.
    Timeout,
}

impl Outcome {
    /// The outcome of a received response.
    pub(crate) fn of_status(status: StatusCode) -> Outcome {
        if status.is_success() {
            Outcome::Success
        } else {
            Outcome::Status(status)
        }
    }

    /// Whether the breaker counts this as a failure of the target.
    pub(crate) fn is_failure(self) -> bool {
        match self {
            Outcome::Success => false,
            Outcome::Status(status) => is_failure_status(status),
            Outcome::Connect | Outcome::Transport | Outcome::Timeout => true,
        }
    }

    /// Whether another attempt may be made, given the call's idempotency.
    pub(crate) fn is_retryable(self, idempotent: bool) -> bool {
        match self {
            Outcome::Success => false,
            Outcome::Connect => true,
            Outcome::Transport | Outcome::Timeout => idempotent,
            Outcome::Status(status) => idempotent && is_retryable_status(status),
        }
    }
}

/// The wait a response asks for in `Retry-After`: delay-seconds or an HTTP date. A date in the
/// past means no wait; more seconds than a `u64` holds, the longest wait; an unreadable value
/// is ignored.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(5));
        assert_eq!(
            retry_after(&headers(&later), now),
            Some(Duration::from_secs(5))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(retry_after(&headers(&earlier), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&headers("-1"), now), None);
        assert_eq!(retry_after(&headers("+1"), now), None);
        assert_eq!(
            retry_after(&headers("99999999999999999999999"), now),
            Some(Duration::MAX)
        );
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn retry_rules() {
        let s = |n| Outcome::Status(StatusCode::from_u16(n).unwrap());
        assert!(Outcome::Connect.is_retryable(false));
        assert!(!Outcome::Timeout.is_retryable(false));
        assert!(Outcome::Timeout.is_retryable(true));
        assert!(!Outcome::Transport.is_retryable(false));
        assert!(s(503).is_retryable(true) && !s(503).is_retryable(false));
        assert!(s(429).is_retryable(true));
        assert!(!s(404).is_retryable(true) && !s(501).is_retryable(true));
        assert!(!Outcome::Success.is_retryable(true));
    }

    #[test]
    fn breaker_failures() {
        let s = |n| Outcome::Status(StatusCode::from_u16(n).unwrap());
        assert!(s(500).is_failure() && s(502).is_failure() && s(503).is_failure());
        assert!(s(504).is_failure());
        assert!(!s(429).is_failure() && !s(404).is_failure() && !s(501).is_failure());
        assert!(Outcome::Timeout.is_failure() && Outcome::Connect.is_failure());
        assert!(!Outcome::Success.is_failure());
    }

    #[test]
    fn the_status_lists() {
        let retryable: Vec<u16> = (100..=999)
            .filter(|&n| is_retryable_status(StatusCode::from_u16(n).unwrap()))
            .collect();
        assert_eq!(retryable, [429, 500, 502, 503, 504]);
        let failures: Vec<u16> = (100..=999)
            .filter(|&n| is_failure_status(StatusCode::from_u16(n).unwrap()))
            .collect();
        assert_eq!(failures, [500, 502, 503, 504]);
    }

    #[test]
    fn an_error_is_retryable_as_its_status_is_for_an_idempotent_call() {
        for n in 100..=999 {
            let status = StatusCode::from_u16(n).unwrap();
            let error = crate::Error::from(crate::HttpError::new(status));
            assert_eq!(
                error.is_retryable(),
                Outcome::of_status(status).is_retryable(true),
                "{status}"
            );
        }
    }

    #[test]
    fn idempotent_methods() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(is_idempotent_method(&m));
        }
        assert!(!is_idempotent_method(&Method::POST));
        assert!(!is_idempotent_method(&Method::PATCH));
    }
}
