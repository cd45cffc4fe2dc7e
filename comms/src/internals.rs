//! Hooks for the benchmarks in `bench/` and the fuzz targets in `fuzz/`: thin wrappers that let
//! them reach internals (signing as the executor does it, breaker admission, backoff, response
//! classification) without making those public API. Hidden from the documentation; may change
//! in any release.

use std::time::Duration;

use crate::Executor;
use crate::breaker::{self, BreakerConfig};
use crate::signing::Signing;

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

/// One backoff wait with the default settings.
pub fn backoff_delay(retry: u32) -> Duration {
    crate::retry::backoff::delay(Duration::from_millis(100), Duration::from_secs(2), retry)
}

/// What the executor makes of a response: the call's result, whether it may be retried (for
/// an idempotent call), whether the breaker counts it as a failure, and the `Retry-After` wait.
#[derive(Debug)]
pub struct Classified {
    /// `Ok(())` for 2xx, otherwise the error the call would return.
    pub result: Result<(), crate::Error>,
    /// Whether an idempotent call would be retried.
    pub retryable: bool,
    /// Whether the breaker counts it as a failure.
    pub breaker_failure: bool,
    /// The wait `Retry-After` asks for.
    pub retry_after: Option<Duration>,
}

/// Classifies a response exactly as the executor does.
pub fn classify_response(
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<Classified, http::status::InvalidStatusCode> {
    use crate::retry::policy::{self, Outcome};
    let status = http::StatusCode::from_u16(status)?;
    let outcome = Outcome::of_status(status);
    let result = if status.is_success() {
        Ok(())
    } else {
        Err(
            crate::HttpError::from_response(status, http::Method::GET, "http://fuzz/".into(), body)
                .into(),
        )
    };
    Ok(Classified {
        result,
        retryable: outcome.is_retryable(true),
        breaker_failure: outcome.is_failure(),
        retry_after: policy::retry_after(headers, std::time::SystemTime::now()),
    })
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
}
