//! Hooks for the benchmarks in `bench/` and the fuzz targets in `fuzz/`: thin wrappers that let
//! them reach internals (signing as the executor does it, breaker admission, backoff, response
//! classification) without making those public API. Each calls the code a call runs, so what
//! is measured or fuzzed is what calls do.
//!
//! Compiled only with the `__internals` feature (the benchmarks), `--cfg fuzzing` (set by
//! cargo-fuzz) or for this crate's own tests. Hidden from the documentation; may change in any
//! release.

use std::time::Duration;

use crate::breaker::{self, BreakerConfig};
use crate::executor::failure::{self, Wait};
use crate::retry::policy::Outcome;
use crate::signing::Signing;
use crate::{Executor, RetryConfig};

/// Signs requests the way the executor signs each attempt.
#[derive(Debug)]
pub struct Signer {
    executor: Executor,
}

impl Signer {
    /// A signer for calls to `base_url` from `service_id` with `secret`.
    pub fn new(base_url: &str, service_id: &str, secret: &str, scheme: Signing) -> Signer {
        let executor = Executor::builder()
            .base_url(base_url)
            .service_id(service_id)
            .secret(secret)
            .signing(scheme)
            .breaker(BreakerConfig::disabled())
            .build()
            .expect("a valid signer configuration");
        Signer { executor }
    }

    /// Signs `request` in place exactly as the executor signs an attempt (fresh creation time
    /// and nonce, the same header map and values), with none of the rest of a call around it:
    /// the floor a hand-written client of this protocol could reach.
    pub fn sign_request(&self, request: &mut reqwest::Request) -> Result<(), crate::Error> {
        self.executor.sign_request(request)
    }
}

/// A breaker, closed or tripped open.
#[derive(Debug)]
pub struct Breaker(breaker::Breaker);

impl Breaker {
    /// A closed breaker with the default configuration.
    pub fn closed() -> Breaker {
        Breaker(breaker::Breaker::new(
            "http://bench:1".into(),
            BreakerConfig::default(),
        ))
    }

    /// A breaker tripped open for an hour.
    pub fn open() -> Breaker {
        let b = breaker::Breaker::new(
            "http://bench:1".into(),
            BreakerConfig::default()
                .failure_threshold(1)
                .open_for(Duration::from_secs(3600)),
        );
        if let Ok(permit) = b.admit() {
            permit.record(true);
        }
        Breaker(b)
    }

    /// Admits one attempt and records a success: the closed path of every call.
    pub fn admit_and_succeed(&self) -> bool {
        match self.0.admit() {
            Ok(permit) => {
                permit.record(false);
                true
            }
            Err(_) => false,
        }
    }

    /// Asks for admission, as a call does before failing fast with `CircuitOpen`.
    pub fn fail_fast(&self) -> Option<Duration> {
        self.0.admit().err()
    }
}

/// One backoff wait with the default settings ([`RetryConfig::default`]).
pub fn backoff_delay(retry: u32) -> Duration {
    let config = RetryConfig::default();
    crate::retry::backoff::delay(config.base_delay, config.max_delay, retry)
}

/// What the executor makes of a response to the first attempt of an idempotent `GET` with the
/// default [`RetryConfig`]: the call's result, whether the breaker counts it as a failure, and
/// whether and after what wait the call is retried, as far as the retry rules and the response
/// decide (the deadline, the breaker and the retry budget are not asked).
#[derive(Debug)]
pub struct Classified {
    /// `Ok(())` for 2xx, otherwise the error the call would return.
    pub result: Result<(), crate::Error>,
    /// Whether the call is retried: a status worth another attempt, and no `Retry-After`
    /// beyond the cap ([`RetryConfig::max_retry_after`], 30 s by default), past which the call
    /// ends with this response's error instead.
    pub retryable: bool,
    /// Whether the breaker counts it as a failure.
    pub breaker_failure: bool,
    /// The wait before that retry when `Retry-After` sets it (within the cap); `None` when the
    /// call is not retried or the backoff sets the wait.
    pub retry_after: Option<Duration>,
}

/// Classifies a response with the executor's own code: its outcome, the error it builds, and
/// its retry decision with the `Retry-After` cap.
pub fn classify_response(
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<Classified, http::status::InvalidStatusCode> {
    let status = http::StatusCode::from_u16(status)?;
    let outcome = Outcome::of_status(status);
    let result = if status.is_success() {
        Ok(())
    } else {
        let url = reqwest::Url::parse("http://fuzz/").expect("a valid URL");
        Err(failure::status_error(
            status,
            &http::Method::GET,
            &url,
            body,
            headers.clone(),
        ))
    };
    // As the executor reads it: from the error the response made.
    let asked = result
        .as_ref()
        .err()
        .and_then(crate::Error::http_error)
        .and_then(crate::HttpError::retry_after);
    let plan = failure::retry_plan(&RetryConfig::default(), outcome, true, 0, asked);
    Ok(Classified {
        result,
        retryable: plan.is_some(),
        breaker_failure: outcome.is_failure(),
        retry_after: match plan {
            Some(Wait::Asked(wait)) => Some(wait),
            Some(Wait::Backoff(_)) | None => None,
        },
    })
}

/// What a verified head vouches for beyond its caller, as a generated server reads it:
/// whether its `Comms-Deadline-Ms` may be taken, and (feature `server`) the header fields its
/// signature covers whole, in the order covered (`None`: every one, as under a legacy
/// signature).
#[derive(Debug)]
pub struct HeadCoverage {
    /// Whether the request's `Comms-Deadline-Ms` is vouched for.
    pub covers_deadline: bool,
    /// The header fields the signature covers whole (feature `server`; otherwise `None`).
    pub covered_fields: Option<Vec<String>>,
}

/// The coverage of a verified head (see [`HeadCoverage`]).
pub fn head_coverage(head: &crate::verify::VerifiedHead<'_>) -> HeadCoverage {
    #[cfg(feature = "server")]
    let covered_fields = head
        .covered_fields()
        .names()
        .map(|names| names.split_terminator(' ').map(str::to_owned).collect());
    #[cfg(not(feature = "server"))]
    let covered_fields = None;
    HeadCoverage {
        covers_deadline: head.covers_deadline(),
        covered_fields,
    }
}

/// A request checked by a gate in front (a `VerifyLayer`) and then by a server behind it (a
/// generated server with a verifier of its own), each as `Gate::admit` does it: the head, then
/// a replay asked of the store, then the body and the nonces. The server leaves to the gate
/// what the gate did for the same signature (`VerifiedHead::behind`). Gives the gate's answer,
/// and the server's when the gate admitted the request.
pub async fn verify_behind(
    gate: &crate::verify::Verifier,
    server: &crate::verify::Verifier,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: &[u8],
) -> (
    Result<crate::verify::Caller, crate::verify::VerifyError>,
    Option<Result<crate::verify::Caller, crate::verify::VerifyError>>,
) {
    use crate::verify::{VerifiedHead, VerifyError};
    async fn admit(
        head: Result<VerifiedHead<'_>, VerifyError>,
        body: &[u8],
    ) -> Result<crate::verify::Caller, VerifyError> {
        let head = head?;
        if head.replayed().await? {
            return Err(VerifyError::Replayed);
        }
        head.verify_body(body).await
    }
    let head = gate.verify_head(method, uri, headers);
    let admitted = head.as_ref().ok().map(VerifiedHead::admitted);
    let in_front = admit(head, body).await;
    let Some(admitted) = admitted.filter(|_| in_front.is_ok()) else {
        return (in_front, None);
    };
    let head = server.verify_head(method, uri, headers).map(|mut head| {
        head.behind(&admitted);
        head
    });
    (in_front, Some(admit(head, body).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(
        request: &reqwest::Request,
        body: &[u8],
    ) -> Result<String, crate::verify::VerifyError> {
        let verifier = crate::verify::Verifier::new().service("svc", "k");
        let uri: http::Uri = request.url().as_str().parse().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(verifier.verify(request.method(), &uri, request.headers(), body))
            .map(|caller| caller.service_id().to_owned())
    }

    #[test]
    fn a_request_signed_like_an_attempt_verifies() {
        let signer = Signer::new("http://h:1", "svc", "k", Signing::Rfc9421);
        let url = reqwest::Url::parse("http://h:1/users/1?b=2&a=1").unwrap();
        let mut get = reqwest::Request::new(http::Method::GET, url.clone());
        get.headers_mut()
            .insert(http::header::ACCEPT, "application/json".parse().unwrap());
        signer.sign_request(&mut get).unwrap();
        assert_eq!(verify(&get, b"").unwrap(), "svc");
        assert_eq!(
            get.headers()["content-digest"],
            crate::signing::EMPTY_CONTENT_DIGEST
        );
        assert_eq!(get.headers()["host"], "h:1");
        assert_eq!(get.headers()["accept"], "application/json");
        assert_eq!(get.headers().len(), 5);

        let mut post = reqwest::Request::new(http::Method::POST, url);
        *post.body_mut() = Some(reqwest::Body::from(&b"{\"a\":1}"[..]));
        signer.sign_request(&mut post).unwrap();
        assert_eq!(verify(&post, b"{\"a\":1}").unwrap(), "svc");
        assert!(verify(&post, b"{\"a\":2}").is_err(), "the body is covered");
    }

    #[test]
    fn classification_reports_the_capped_retry_decision() {
        let classify = |status, retry_after: Option<&str>| {
            let mut headers = http::HeaderMap::new();
            if let Some(value) = retry_after {
                headers.insert(http::header::RETRY_AFTER, value.parse().unwrap());
            }
            classify_response(status, &headers, br#"{"message": "busy"}"#).unwrap()
        };
        let asked = classify(503, Some("30"));
        assert!(asked.retryable && asked.breaker_failure);
        assert_eq!(asked.retry_after, Some(Duration::from_secs(30)));
        let err = asked.result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "503 Service Unavailable for GET http://fuzz/: busy"
        );

        // Past the 30 s cap the call ends with the response's error, not after the wait.
        let beyond = classify(503, Some("31"));
        assert!(!beyond.retryable && beyond.breaker_failure);
        assert_eq!(beyond.retry_after, None);

        let backoff = classify(429, None);
        assert!(backoff.retryable && !backoff.breaker_failure);
        assert_eq!(backoff.retry_after, None);
        let ok = classify(200, Some("1"));
        assert!(ok.result.is_ok() && !ok.retryable && ok.retry_after.is_none());
        assert!(!classify(404, Some("1")).retryable);
        assert!(classify_response(1000, &http::HeaderMap::new(), b"").is_err());
    }
}
