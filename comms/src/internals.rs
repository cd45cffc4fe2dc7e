//! Hooks for the benchmarks in `bench/` and the fuzz targets in `fuzz/`: thin wrappers that let
//! them reach internals (signing as the executor does it, breaker admission, backoff, response
//! classification) without making those public API. Hidden from the documentation; may change
//! in any release.

use std::time::Duration;

use crate::breaker::{self, BreakerConfig};
use crate::signing::{self, Secret, Signing};

/// Signs requests the way the executor does for each call and attempt.
#[derive(Debug)]
pub struct Signer {
    signer: signing::Signer,
    service_id: String,
}

impl Signer {
    /// A signer for `service_id` with `secret`.
    pub fn new(service_id: &str, secret: &str, scheme: Signing) -> Signer {
        Signer {
            signer: signing::Signer::new(&Secret::from(secret), scheme),
            service_id: service_id.to_owned(),
        }
    }

    /// Hashes the body, canonicalizes the query and signs: the per-call and per-attempt work.
    /// Returns the signature header value.
    pub fn sign(&self, method: &str, path: &str, raw_query: &str, body: &[u8]) -> String {
        self.sign_at(method, path, raw_query, body, 1_700_000_000, [7; 16])
    }

    /// [`Signer::sign`] with the given timestamp and nonce, for a signature that a verifier
    /// would accept.
    pub fn sign_at(
        &self,
        method: &str,
        path: &str,
        raw_query: &str,
        body: &[u8],
        timestamp: u64,
        nonce: [u8; 16],
    ) -> String {
        let (canonical_query, content_sha256) = match self.signer.scheme() {
            Signing::V2 => (
                signing::canonical_query(raw_query),
                signing::content_sha256(body),
            ),
            _ => (String::new(), String::new()),
        };
        let target = signing::Target {
            method,
            path,
            canonical_query: &canonical_query,
            content_sha256: &content_sha256,
        };
        let signed = self
            .signer
            .sign(&self.service_id, &target, timestamp, nonce);
        String::from_utf8(signed.signature.as_bytes().to_vec()).expect("hex is ASCII")
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
