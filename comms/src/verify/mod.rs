//! The receiving side: checks signed requests and stops replays.
//!
//! [`Verifier`] checks a request's signature, clock skew, body hash and nonce; [`VerifyLayer`]
//! does it in front of any tower service or axum router and hands the authenticated [`Caller`]
//! to handlers in the request extensions.
//!
//! ```
//! use std::time::Duration;
//! use comms::verify::Verifier;
//!
//! let verifier = Verifier::new()
//!     .service("billing", "billing-secret")
//!     .service("legacy-python", "other-secret")
//!     .max_skew(Duration::from_secs(120))
//!     .accept_legacy(true);
//! ```

mod layer;
mod nonce;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, Uri};

use crate::BoxError;
use crate::signing::{self, Secret, Signer, Signing};

pub use layer::{DEFAULT_MAX_BODY_BYTES, VerifyLayer, VerifyService};
pub use nonce::{DEFAULT_NONCE_CAPACITY, MemoryNonceStore, NonceStore};

/// The default clock-skew window: a timestamp more than this far from the verifier's clock,
/// in either direction, is refused.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(300);

/// Checks signed requests from known services.
///
/// Cloning is cheap and clones share the nonce store.
#[derive(Clone)]
pub struct Verifier {
    services: Arc<HashMap<String, Signer>>,
    max_skew: Duration,
    accept_legacy: bool,
    nonces: Arc<dyn NonceStore>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut services: Vec<&str> = self.services.keys().map(String::as_str).collect();
        services.sort_unstable();
        f.debug_struct("Verifier")
            .field("services", &services)
            .field("max_skew", &self.max_skew)
            .field("accept_legacy", &self.accept_legacy)
            .finish_non_exhaustive()
    }
}

/// The authenticated caller of a verified request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    service_id: String,
    signing: Signing,
}

impl Caller {
    /// The caller's `X-Service-ID`.
    pub fn service_id(&self) -> &str {
        &self.service_id
    }

    /// The scheme the request was signed with.
    pub fn signing(&self) -> Signing {
        self.signing
    }
}

/// Why a request was refused. Meant for logs: the HTTP answer should stay generic, as
/// [`VerifyLayer`]'s does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    /// A header is present but not of the expected form.
    #[error("malformed header `{0}`")]
    MalformedHeader(&'static str),
    /// The service id is not one this verifier knows.
    #[error("unknown service `{0}`")]
    UnknownService(String),
    /// The request is signed with the legacy scheme, which this verifier does not accept.
    #[error("legacy signatures are not accepted")]
    LegacyNotAccepted,
    /// The timestamp is further in the past than the skew window allows.
    #[error("timestamp is {0:?} old, beyond the skew window")]
    StaleTimestamp(Duration),
    /// The timestamp is further in the future than the skew window allows.
    #[error("timestamp is {0:?} in the future, beyond the skew window")]
    FutureTimestamp(Duration),
    /// `X-Content-SHA256` does not match the body.
    #[error("body does not match its content hash")]
    ContentHashMismatch,
    /// The signature does not match the request.
    #[error("signature mismatch")]
    BadSignature,
    /// The nonce was already used inside the skew window.
    #[error("nonce already used")]
    Replayed,
    /// The nonce store could not answer; the request is refused rather than risk a replay.
    #[error("nonce store unavailable")]
    NonceStore(#[source] BoxError),
}

impl Verifier {
    /// A verifier that knows no service yet, with a 300 s skew window, v2 only, and an
    /// in-memory nonce store.
    pub fn new() -> Verifier {
        Verifier {
            services: Arc::new(HashMap::new()),
            max_skew: DEFAULT_MAX_SKEW,
            accept_legacy: false,
            nonces: Arc::new(MemoryNonceStore::default()),
        }
    }

    /// Accepts requests from `id` signed with `secret`.
    #[must_use]
    pub fn service(mut self, id: impl Into<String>, secret: impl Into<Secret>) -> Verifier {
        let secret = secret.into();
        // Both schemes key the MAC with the same secret; the scheme is chosen per request.
        Arc::make_mut(&mut self.services).insert(id.into(), Signer::new(&secret, Signing::V2));
        self
    }

    /// How far a timestamp may be from this clock, either way (300 s by default).
    #[must_use]
    pub fn max_skew(mut self, skew: Duration) -> Verifier {
        self.max_skew = skew;
        self
    }

    /// Whether legacy (`microservice_comms`) signatures are accepted (not by default).
    ///
    /// Legacy signatures cover neither the body nor the query and carry no nonce, so a
    /// captured legacy request can be replayed within the skew window: accept them only while
    /// migrating callers.
    #[must_use]
    pub fn accept_legacy(mut self, accept: bool) -> Verifier {
        self.accept_legacy = accept;
        self
    }

    /// Replaces the in-memory nonce store, for instance with one shared by all replicas.
    #[must_use]
    pub fn nonce_store(mut self, store: impl NonceStore) -> Verifier {
        self.nonces = Arc::new(store);
        self
    }

    /// Checks a request as it arrived: method, request-line URI, headers and body bytes.
    pub async fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Caller, VerifyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.verify_at(method, uri, headers, body, now).await
    }

    async fn verify_at(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<Caller, VerifyError> {
        let service_id = header(headers, signing::SERVICE_ID_HEADER)?;
        let signature = header(headers, signing::SIGNATURE_HEADER)?;
        let timestamp_text = header(headers, signing::TIMESTAMP_HEADER)?;
        let timestamp = parse_timestamp(timestamp_text)?;
        let scheme = if signature.starts_with(signing::V2_PREFIX) {
            Signing::V2
        } else if self.accept_legacy {
            Signing::Legacy
        } else {
            return Err(VerifyError::LegacyNotAccepted);
        };
        self.check_skew(timestamp, now)?;
        let signer = self
            .services
            .get(service_id)
            .ok_or_else(|| VerifyError::UnknownService(service_id.to_owned()))?;
        let method_text = upper(method);
        let path = uri.path();

        match scheme {
            Signing::V2 => {
                let nonce = header(headers, signing::NONCE_HEADER)?;
                if !is_lower_hex(nonce, 32) {
                    return Err(VerifyError::MalformedHeader(signing::NONCE_HEADER));
                }
                let claimed_hash = header(headers, signing::CONTENT_SHA256_HEADER)?;
                if !is_lower_hex(claimed_hash, 64) {
                    return Err(VerifyError::MalformedHeader(signing::CONTENT_SHA256_HEADER));
                }
                let mac = decode_mac(&signature[signing::V2_PREFIX.len()..])?;
                if signing::content_sha256(body) != claimed_hash {
                    return Err(VerifyError::ContentHashMismatch);
                }
                let canonical = signing::canonical_query(uri.query().unwrap_or(""));
                if !signer.verify_v2(
                    &method_text,
                    path,
                    &canonical,
                    service_id,
                    timestamp_text,
                    nonce,
                    claimed_hash,
                    &mac,
                ) {
                    return Err(VerifyError::BadSignature);
                }
                // The skew check compares whole seconds: `timestamp` passes until `now` reaches
                // `timestamp + max_skew + 1 s`.
                let keep_until = Duration::from_secs(timestamp)
                    .saturating_add(self.max_skew)
                    .saturating_add(Duration::from_secs(1));
                let fresh = self
                    .nonces
                    .check_and_insert(
                        service_id,
                        nonce,
                        unix_time(Duration::from_secs(now)),
                        unix_time(keep_until),
                    )
                    .await
                    .map_err(VerifyError::NonceStore)?;
                if !fresh {
                    return Err(VerifyError::Replayed);
                }
            }
            _ => {
                let mac = decode_mac(signature)?;
                let signed = signing::legacy_string_to_sign(&method_text, path, timestamp);
                // The Python client signs `GET||<ts>` for a bare base URL, sent as `/`.
                let ok = signer.verify_raw(&[&signed], &mac)
                    || (path == "/"
                        && signer.verify_raw(
                            &[&signing::legacy_string_to_sign(&method_text, "", timestamp)],
                            &mac,
                        ));
                if !ok {
                    return Err(VerifyError::BadSignature);
                }
            }
        }
        Ok(Caller {
            service_id: service_id.to_owned(),
            signing: scheme,
        })
    }

    fn check_skew(&self, timestamp: u64, now: u64) -> Result<(), VerifyError> {
        let skew = self.max_skew.as_secs();
        if timestamp < now && now - timestamp > skew {
            return Err(VerifyError::StaleTimestamp(Duration::from_secs(
                now - timestamp,
            )));
        }
        if timestamp > now && timestamp - now > skew {
            return Err(VerifyError::FutureTimestamp(Duration::from_secs(
                timestamp - now,
            )));
        }
        Ok(())
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(VerifyError::MissingHeader(name))?;
    if values.next().is_some() {
        return Err(VerifyError::MalformedHeader(name));
    }
    let text = value
        .to_str()
        .map_err(|_| VerifyError::MalformedHeader(name))?;
    if text.is_empty() {
        return Err(VerifyError::MalformedHeader(name));
    }
    Ok(text)
}

fn parse_timestamp(text: &str) -> Result<u64, VerifyError> {
    if text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedHeader(signing::TIMESTAMP_HEADER));
    }
    text.parse()
        .map_err(|_| VerifyError::MalformedHeader(signing::TIMESTAMP_HEADER))
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn decode_mac(text: &str) -> Result<[u8; 32], VerifyError> {
    let mut mac = [0u8; 32];
    if !is_lower_hex(text, 64) || hex::decode_to_slice(text, &mut mac).is_err() {
        return Err(VerifyError::MalformedHeader(signing::SIGNATURE_HEADER));
    }
    Ok(mac)
}

/// The instant `since_epoch` after the Unix epoch. One the platform cannot represent (from a
/// skew window of centuries) becomes 2106-02-07 (`u32::MAX` Unix seconds), past the life of any
/// request this verifier accepts.
fn unix_time(since_epoch: Duration) -> SystemTime {
    UNIX_EPOCH
        .checked_add(since_epoch)
        .unwrap_or_else(|| UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)))
}

fn upper(method: &Method) -> std::borrow::Cow<'_, str> {
    let text = method.as_str();
    if text.bytes().any(|b| b.is_ascii_lowercase()) {
        std::borrow::Cow::Owned(text.to_ascii_uppercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn signed(ts: u64, nonce: &str) -> HeaderMap {
        let secret = Secret::from("k");
        let hash = signing::content_sha256(b"");
        let sts = signing::v2_string_to_sign("GET", "/x", "", "svc", ts, nonce, &hash);
        let mut h = HeaderMap::new();
        for (name, value) in [
            (signing::SERVICE_ID_HEADER, "svc".to_owned()),
            (signing::TIMESTAMP_HEADER, ts.to_string()),
            (signing::NONCE_HEADER, nonce.to_owned()),
            (signing::CONTENT_SHA256_HEADER, hash),
            (signing::SIGNATURE_HEADER, signing::sign_v2(&secret, &sts)),
        ] {
            h.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        h
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn skew_window_both_ways() {
        let v = Verifier::new()
            .service("svc", "k")
            .max_skew(Duration::from_secs(10));
        let uri: Uri = "/x".parse().unwrap();
        let nonce = "0123456789abcdef0123456789abcdef";
        let at = |ts, now| run(v.verify_at(&Method::GET, &uri, &signed(ts, nonce), b"", now));
        assert!(matches!(
            at(1000, 1011),
            Err(VerifyError::StaleTimestamp(_))
        ));
        assert!(matches!(
            at(1011, 1000),
            Err(VerifyError::FutureTimestamp(_))
        ));
        assert!(at(1000, 1010).is_ok());
        assert!(matches!(at(1000, 1010), Err(VerifyError::Replayed)));
    }

    #[test]
    fn malformed_timestamps() {
        for bad in ["", "+1", "-1", "1.5", "99999999999999999999", " 1"] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_timestamp("1700000000").unwrap(), 1_700_000_000);
    }

    #[test]
    fn debug_shows_no_secret() {
        let v = Verifier::new().service("svc", "topsecret-value");
        let shown = format!("{v:?}");
        assert!(shown.contains("svc") && !shown.contains("topsecret"));
    }
}
