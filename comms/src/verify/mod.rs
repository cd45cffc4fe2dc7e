//! The receiving side: checks signed requests and stops replays.
//!
//! [`Verifier`] checks a request in two steps. [`Verifier::verify_head`] needs only the
//! request head: it finds a signature by a known key, checks its parameters (creation time
//! within the skew window, expiry, algorithm, nonce form), that it covers what the profile
//! requires, and the HMAC itself. Only a request that passes is worth reading the body of;
//! [`VerifiedHead::verify_body`] then checks the body against the signed `Content-Digest` and
//! records the nonce, refusing a replay. [`Verifier::verify`] does both at once, and
//! [`VerifyLayer`] does them in front of any tower service or axum router, handing the
//! authenticated [`Caller`] to handlers in the request extensions.
//!
//! ```
//! use std::time::Duration;
//! use comms::verify::Verifier;
//!
//! let verifier = Verifier::new()
//!     .service("billing", "billing-secret")
//!     // During a rotation, billing's new key is accepted beside the old one.
//!     .key("billing-2026-12", "billing", "new-billing-secret")
//!     .service("legacy-python", "other-secret")
//!     .max_skew(Duration::from_secs(120))
//!     .accept_legacy(true);
//! ```
//!
//! # What is checked
//!
//! A request with `Signature-Input` is checked as an RFC 9421 signature: of the signatures it
//! carries (under any label), the first whose `keyid` this verifier knows is used. It must
//! cover `@method`, `@authority`, `@path` and `@query`, and `content-digest` when the request
//! has a body; any other covered header (`date`, say) is checked too, and every covered field
//! must occur exactly once. `created` must be within the skew window either way, `expires`
//! (when present) not past, `alg` (when present) `hmac-sha256`, and `nonce` 16 to 128
//! characters of `A-Z a-z 0-9 - _`. `Content-Digest` may carry `sha-256` and `sha-512`; each
//! one present must match the body.
//!
//! A request with `X-Signature` and no `Signature-Input` is a legacy one, checked only when
//! [`Verifier::accept_legacy`] says so.

pub(crate) mod layer;
mod nonce;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, Method, Uri};
use sfv::{BareItem, FieldType, KeyRef, ListEntry};
use sha2::{Digest, Sha256, Sha512};

use crate::BoxError;
use crate::signing::{self, Secret, Signer, Signing};

pub use layer::{DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, VerifyLayer, VerifyService};
pub use nonce::{DEFAULT_NONCE_CAPACITY, MemoryNonceStore, NonceStore};

/// The default clock-skew window: a `created` time more than this far from the verifier's
/// clock, in either direction, is refused.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(300);

/// Checks signed requests from known services.
///
/// Cloning is cheap; clones share the keys, their usage counts and the nonce store.
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<Keys>,
    max_skew: Duration,
    accept_legacy: bool,
    nonces: Arc<dyn NonceStore>,
}

/// The keys a verifier knows, by key id and, for legacy signatures, by service.
#[derive(Clone, Default)]
struct Keys {
    by_id: HashMap<Box<str>, Arc<Key>>,
    by_service: HashMap<Arc<str>, Vec<Arc<Key>>>,
}

struct Key {
    key_id: Arc<str>,
    service_id: Arc<str>,
    signer: Signer,
    /// Requests verified with this key, and how many of them were legacy.
    uses: AtomicU64,
    legacy_uses: AtomicU64,
    /// Unix seconds of the last request verified with this key; 0 before the first.
    last_used: AtomicU64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<(&str, &str)> = self
            .keys
            .by_id
            .values()
            .map(|k| (&*k.key_id, &*k.service_id))
            .collect();
        keys.sort_unstable();
        f.debug_struct("Verifier")
            .field("keys", &keys)
            .field("max_skew", &self.max_skew)
            .field("accept_legacy", &self.accept_legacy)
            .finish_non_exhaustive()
    }
}

/// The authenticated caller of a verified request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    service_id: Arc<str>,
    key_id: Arc<str>,
    signing: Signing,
}

impl Caller {
    /// The calling service, as the verifier's key configuration names it.
    pub fn service_id(&self) -> &str {
        &self.service_id
    }

    /// The key that signed the request (for a legacy request, the caller's key that matched).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The scheme the request was signed with.
    pub fn signing(&self) -> Signing {
        self.signing
    }
}

/// How much one key has been used, from [`Verifier::key_usage`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUsage {
    /// The key id.
    pub key_id: String,
    /// The service the key belongs to.
    pub service_id: String,
    /// Requests verified with this key since the verifier was built.
    pub requests: u64,
    /// How many of those were legacy-signed.
    pub legacy_requests: u64,
    /// When the last of them was verified, to the second.
    pub last_used: Option<SystemTime>,
}

/// Why a request was refused. Meant for logs: the HTTP answer should stay generic, as
/// [`VerifyLayer`]'s does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header `{0}`")]
    MissingHeader(HeaderName),
    /// A header is present but not of the expected form (or repeated where it must not be).
    #[error("malformed header `{0}`")]
    MalformedHeader(HeaderName),
    /// A signature parameter is missing or of the wrong type.
    #[error("malformed signature: {0}")]
    MalformedSignature(&'static str),
    /// No signature names a key id this verifier knows; the first key id seen, if any.
    #[error("no signature with a known key id (saw {0:?})")]
    UnknownKey(Option<String>),
    /// A legacy request names a service this verifier has no key for.
    #[error("unknown service `{0}`")]
    UnknownService(String),
    /// The request is signed with the legacy scheme, which this verifier does not accept.
    #[error("legacy signatures are not accepted")]
    LegacyNotAccepted,
    /// The signature does not cover a component the profile requires.
    #[error("the signature does not cover `{0}`")]
    NotCovered(&'static str),
    /// The signature covers a component this verifier cannot check.
    #[error("unsupported covered component `{0}`")]
    UnsupportedComponent(String),
    /// A covered header field is absent or occurs more than once.
    #[error("covered field `{0}` must occur exactly once")]
    CoveredFieldNotOnce(String),
    /// The signature's `alg` is not `hmac-sha256`.
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// The `nonce` is not 16 to 128 characters of `A-Z a-z 0-9 - _`.
    #[error("malformed nonce")]
    MalformedNonce,
    /// `created` is further in the past than the skew window allows.
    #[error("signature created {0:?} ago, beyond the skew window")]
    StaleTimestamp(Duration),
    /// `created` is further in the future than the skew window allows.
    #[error("signature created {0:?} in the future, beyond the skew window")]
    FutureTimestamp(Duration),
    /// The signature's `expires` time has passed.
    #[error("signature expired")]
    Expired,
    /// `Content-Digest` does not match the body, or names no digest this verifier knows.
    #[error("body does not match its content digest")]
    ContentDigestMismatch,
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
    /// A verifier that knows no key yet, with a 300 s skew window, RFC 9421 only, and an
    /// in-memory nonce store.
    pub fn new() -> Verifier {
        Verifier {
            keys: Arc::new(Keys::default()),
            max_skew: DEFAULT_MAX_SKEW,
            accept_legacy: false,
            nonces: Arc::new(MemoryNonceStore::default()),
        }
    }

    /// Accepts requests from service `id` signed with `secret` under the key id `id` (the
    /// key id a comms client uses unless told another).
    #[must_use]
    pub fn service(self, id: impl Into<String>, secret: impl Into<Secret>) -> Verifier {
        let id = id.into();
        self.key(id.clone(), id, secret)
    }

    /// Accepts requests signed with `secret` under `key_id`, as coming from `service_id`.
    ///
    /// Several keys may map to one service: that is how a secret is rotated without
    /// downtime (the old and the new key are both accepted until callers have moved, which
    /// [`Verifier::key_usage`] shows). A key id given again replaces its earlier key.
    #[must_use]
    pub fn key(
        mut self,
        key_id: impl Into<String>,
        service_id: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> Verifier {
        let key_id: Arc<str> = key_id.into().into();
        let service_id: Arc<str> = service_id.into().into();
        let key = Arc::new(Key {
            key_id: key_id.clone(),
            service_id: service_id.clone(),
            // Both schemes key the MAC with the same secret; the scheme is chosen per request.
            signer: Signer::new(&secret.into(), Signing::Rfc9421),
            uses: AtomicU64::new(0),
            legacy_uses: AtomicU64::new(0),
            last_used: AtomicU64::new(0),
        });
        let keys = Arc::make_mut(&mut self.keys);
        if let Some(old) = keys.by_id.insert((*key_id).into(), key.clone())
            && let Some(list) = keys.by_service.get_mut(&old.service_id)
        {
            list.retain(|k| k.key_id != key_id);
        }
        keys.by_service.entry(service_id).or_default().push(key);
        self
    }

    /// How far a signature's `created` time may be from this clock, either way (300 s by
    /// default).
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

    /// Which keys requests were verified with, and how recently: after a rotation, the old
    /// key can be retired once it shows no new requests. Sorted by key id.
    ///
    /// The first request verified with each key is also reported as an `INFO` event.
    pub fn key_usage(&self) -> Vec<KeyUsage> {
        let mut usage: Vec<KeyUsage> = self
            .keys
            .by_id
            .values()
            .map(|k| {
                let last = k.last_used.load(Ordering::Relaxed);
                KeyUsage {
                    key_id: k.key_id.to_string(),
                    service_id: k.service_id.to_string(),
                    requests: k.uses.load(Ordering::Relaxed),
                    legacy_requests: k.legacy_uses.load(Ordering::Relaxed),
                    last_used: (last > 0).then(|| UNIX_EPOCH + Duration::from_secs(last)),
                }
            })
            .collect();
        usage.sort_unstable_by(|a, b| a.key_id.cmp(&b.key_id));
        usage
    }

    /// Checks a request as it arrived: method, request-line URI, headers and body bytes.
    pub async fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Caller, VerifyError> {
        self.verify_head(method, uri, headers)?
            .verify_body(body)
            .await
    }

    /// Checks everything that needs no body: the signature over the request head. A request
    /// refused here can be answered without reading its body.
    pub fn verify_head(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<VerifiedHead<'_>, VerifyError> {
        self.verify_head_at(method, uri, headers, SystemTime::now())
    }

    fn verify_head_at(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<VerifiedHead<'_>, VerifyError> {
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if headers.contains_key(signing::SIGNATURE_INPUT) {
            self.verify_rfc9421(method, uri, headers, now_secs)
        } else if headers.contains_key(signing::LEGACY_SIGNATURE_HEADER) {
            if !self.accept_legacy {
                return Err(VerifyError::LegacyNotAccepted);
            }
            self.verify_legacy(method, uri, headers, now_secs)
        } else {
            Err(VerifyError::MissingHeader(signing::SIGNATURE_INPUT))
        }
    }

    fn verify_rfc9421(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<VerifiedHead<'_>, VerifyError> {
        let inputs: sfv::Dictionary = parse_field(headers, &signing::SIGNATURE_INPUT)?;
        let signatures: sfv::Dictionary = parse_field(headers, &signing::SIGNATURE)?;

        // The first signature under a key id this verifier knows.
        let mut first_seen = None;
        let (label, list, key) = inputs
            .iter()
            .find_map(|(label, entry)| {
                let ListEntry::InnerList(list) = entry else {
                    return None;
                };
                let key_id = list.params.get(KEYID)?.as_string()?.as_str();
                match self.keys.by_id.get(key_id) {
                    Some(key) => Some((label, list, key)),
                    None => {
                        // The caller chose it: it is quoted in errors and logs, so bounded.
                        first_seen.get_or_insert_with(|| key_id.chars().take(64).collect());
                        None
                    }
                }
            })
            .ok_or(VerifyError::UnknownKey(first_seen))?;
        let signature = match signatures.get(label) {
            Some(ListEntry::Item(item)) => item
                .bare_item
                .as_byte_sequence()
                .ok_or(VerifyError::MalformedHeader(signing::SIGNATURE))?,
            _ => return Err(VerifyError::MalformedHeader(signing::SIGNATURE)),
        };

        // Parameters.
        let created = integer_param(&list.params, CREATED)?
            .ok_or(VerifyError::MalformedSignature("`created` is required"))?;
        self.check_skew(created, now)?;
        if let Some(expires) = integer_param(&list.params, EXPIRES)?
            && now > expires
        {
            return Err(VerifyError::Expired);
        }
        if let Some(alg) = list.params.get(ALG) {
            let alg = alg
                .as_string()
                .ok_or(VerifyError::MalformedSignature("`alg` must be a string"))?;
            if alg.as_str() != signing::ALGORITHM {
                return Err(VerifyError::UnsupportedAlgorithm(alg.as_str().to_owned()));
            }
        }
        let nonce = list
            .params
            .get(NONCE)
            .ok_or(VerifyError::MalformedSignature("`nonce` is required"))?
            .as_string()
            .ok_or(VerifyError::MalformedSignature("`nonce` must be a string"))?
            .as_str();
        if !is_valid_nonce(nonce) {
            return Err(VerifyError::MalformedNonce);
        }

        // Covered components: each named once, the required ones present, every value found.
        let mut components: Vec<(&str, Component<'_>)> = Vec::with_capacity(list.items.len());
        for item in &list.items {
            let name = match item.bare_item.as_string() {
                Some(name) if item.params.is_empty() => name.as_str(),
                _ => {
                    return Err(VerifyError::UnsupportedComponent(format!(
                        "{:?}",
                        item.bare_item
                    )));
                }
            };
            if components.iter().any(|(seen, _)| *seen == name) {
                return Err(VerifyError::MalformedSignature(
                    "a component is covered twice",
                ));
            }
            components.push((name, component(name, method, uri, headers)?));
        }
        for required in REQUIRED {
            if !components.iter().any(|(name, _)| *name == required) {
                return Err(VerifyError::NotCovered(required));
            }
        }
        let covers_digest = components.iter().any(|(name, _)| *name == "content-digest");
        if !covers_digest && declares_body(headers) {
            return Err(VerifyError::NotCovered("content-digest"));
        }
        let digest = if covers_digest {
            Some(ExpectedDigest::parse(headers)?)
        } else {
            None
        };

        // The signature itself, over the base rebuilt from what arrived.
        let params_line = sfv::List::from([ListEntry::InnerList(list.clone())])
            .serialize()
            .ok_or(VerifyError::MalformedHeader(signing::SIGNATURE_INPUT))?;
        let ok = key.signer.verify(
            |mac| {
                for (name, value) in &components {
                    signing::write_line(mac, name.as_bytes(), &value.pieces());
                }
                signing::write_params_line(mac, params_line.as_bytes());
            },
            signature,
        );
        if !ok {
            return Err(VerifyError::BadSignature);
        }
        // The skew check compares whole seconds: `created` passes until the clock reaches
        // `created + max_skew + 1 s`.
        let keep_until = unix_time(
            Duration::from_secs(created)
                .saturating_add(self.max_skew)
                .saturating_add(Duration::from_secs(1)),
        );
        Ok(VerifiedHead {
            verifier: self,
            key: key.clone(),
            signing: Signing::Rfc9421,
            nonce: Some((nonce.to_owned(), keep_until)),
            digest,
        })
    }

    fn verify_legacy(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<VerifiedHead<'_>, VerifyError> {
        let service_id = single(headers, &signing::SERVICE_ID_HEADER)?;
        let signature = single(headers, &signing::LEGACY_SIGNATURE_HEADER)?;
        let timestamp_text = single(headers, &signing::TIMESTAMP_HEADER)?;
        let timestamp = parse_timestamp(timestamp_text)?;
        self.check_skew(timestamp, now)?;
        let keys = self
            .keys
            .by_service
            .get(service_id)
            .filter(|keys| !keys.is_empty())
            .ok_or_else(|| VerifyError::UnknownService(service_id.to_owned()))?;
        let mut mac = [0u8; 32];
        if !is_lower_hex(signature, 64) || hex::decode_to_slice(signature, &mut mac).is_err() {
            return Err(VerifyError::MalformedHeader(
                signing::LEGACY_SIGNATURE_HEADER,
            ));
        }
        let method_text = method.as_str().to_ascii_uppercase();
        let path = uri.path();
        let signed = signing::legacy_string_to_sign(&method_text, path, timestamp);
        // The Python client signs `GET||<ts>` for a bare base URL, sent as `/`.
        let bare =
            (path == "/").then(|| signing::legacy_string_to_sign(&method_text, "", timestamp));
        let key = keys
            .iter()
            .find(|key| {
                key.signer.verify(|m| hmac::Mac::update(m, &signed), &mac)
                    || bare
                        .as_ref()
                        .is_some_and(|bare| key.signer.verify(|m| hmac::Mac::update(m, bare), &mac))
            })
            .ok_or(VerifyError::BadSignature)?;
        Ok(VerifiedHead {
            verifier: self,
            key: key.clone(),
            signing: Signing::Legacy,
            nonce: None,
            digest: None,
        })
    }

    fn check_skew(&self, created: u64, now: u64) -> Result<(), VerifyError> {
        let skew = self.max_skew.as_secs();
        if created < now && now - created > skew {
            return Err(VerifyError::StaleTimestamp(Duration::from_secs(
                now - created,
            )));
        }
        if created > now && created - now > skew {
            return Err(VerifyError::FutureTimestamp(Duration::from_secs(
                created - now,
            )));
        }
        Ok(())
    }
}

/// A request whose head carries a valid signature: what is left to check needs its body.
#[must_use = "the body and the nonce are not checked until `verify_body` is awaited"]
pub struct VerifiedHead<'a> {
    verifier: &'a Verifier,
    key: Arc<Key>,
    signing: Signing,
    /// The nonce, and until when it must be remembered (RFC 9421 only).
    nonce: Option<(String, SystemTime)>,
    /// The signed `Content-Digest`, when the signature covers one.
    digest: Option<ExpectedDigest>,
}

impl fmt::Debug for VerifiedHead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedHead")
            .field("key_id", &self.key.key_id)
            .field("service_id", &self.key.service_id)
            .field("signing", &self.signing)
            .finish_non_exhaustive()
    }
}

impl VerifiedHead<'_> {
    /// The service whose key signed the head.
    pub fn service_id(&self) -> &str {
        &self.key.service_id
    }

    /// Checks the body against the signed `Content-Digest`, then records the nonce (a replay
    /// is refused), and gives the authenticated caller.
    pub async fn verify_body(self, body: &[u8]) -> Result<Caller, VerifyError> {
        match &self.digest {
            Some(digest) => digest.check(body)?,
            None if self.signing == Signing::Rfc9421 && !body.is_empty() => {
                return Err(VerifyError::NotCovered("content-digest"));
            }
            None => {}
        }
        let now = SystemTime::now();
        if let Some((nonce, keep_until)) = &self.nonce {
            let fresh = self
                .verifier
                .nonces
                .check_and_insert(&self.key.service_id, nonce, now, *keep_until)
                .await
                .map_err(VerifyError::NonceStore)?;
            if !fresh {
                return Err(VerifyError::Replayed);
            }
        }
        let key = &self.key;
        if key.uses.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::info!(
                key_id = %key.key_id,
                service = %key.service_id,
                signing = %self.signing,
                "first request verified with this key"
            );
        }
        if self.signing == Signing::Legacy {
            key.legacy_uses.fetch_add(1, Ordering::Relaxed);
        }
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        key.last_used.fetch_max(secs, Ordering::Relaxed);
        Ok(Caller {
            service_id: key.service_id.clone(),
            key_id: key.key_id.clone(),
            signing: self.signing,
        })
    }
}

const KEYID: &KeyRef = KeyRef::constant("keyid");
const CREATED: &KeyRef = KeyRef::constant("created");
const EXPIRES: &KeyRef = KeyRef::constant("expires");
const ALG: &KeyRef = KeyRef::constant("alg");
const NONCE: &KeyRef = KeyRef::constant("nonce");

/// The derived components every signature must cover.
const REQUIRED: [&str; 4] = ["@method", "@authority", "@path", "@query"];

/// The value of one covered component, in pieces.
enum Component<'a> {
    Text(std::borrow::Cow<'a, str>),
    Bytes(&'a [u8]),
    Query(&'a str),
}

impl Component<'_> {
    fn pieces(&self) -> [&[u8]; 2] {
        match self {
            Component::Text(text) => [text.as_bytes(), b""],
            Component::Bytes(bytes) => [bytes.trim_ascii(), b""],
            Component::Query(query) => [b"?", query.as_bytes()],
        }
    }
}

/// The value of the component `name` in the request as it arrived.
fn component<'a>(
    name: &str,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<Component<'a>, VerifyError> {
    use std::borrow::Cow;
    Ok(match name {
        "@method" => Component::Text(Cow::Borrowed(method.as_str())),
        "@authority" => {
            // The `Host` header (HTTP/1.1), or the URI's authority (HTTP/2).
            let authority = match headers.get(http::header::HOST) {
                Some(_) => single(headers, &http::header::HOST)?,
                None => uri
                    .authority()
                    .map(|a| a.as_str())
                    .ok_or(VerifyError::MissingHeader(http::header::HOST))?,
            };
            // RFC 9421 §2.2.3: the authority is normalised to lower case.
            if authority.bytes().any(|b| b.is_ascii_uppercase()) {
                Component::Text(Cow::Owned(authority.to_ascii_lowercase()))
            } else {
                Component::Text(Cow::Borrowed(authority))
            }
        }
        "@path" => Component::Text(Cow::Borrowed(match uri.path() {
            "" => "/",
            path => path,
        })),
        "@query" => Component::Query(uri.query().unwrap_or("")),
        "@request-target" => Component::Text(Cow::Borrowed(
            uri.path_and_query()
                .map_or(uri.path(), |target| target.as_str()),
        )),
        derived if derived.starts_with('@') => {
            return Err(VerifyError::UnsupportedComponent(derived.to_owned()));
        }
        field => {
            if field.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(VerifyError::UnsupportedComponent(field.to_owned()));
            }
            let mut values = headers.get_all(field).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => Component::Bytes(value.as_bytes()),
                _ => return Err(VerifyError::CoveredFieldNotOnce(field.to_owned())),
            }
        }
    })
}

/// A signed `Content-Digest`: the digests it names that this verifier can compute.
struct ExpectedDigest {
    sha256: Option<Vec<u8>>,
    sha512: Option<Vec<u8>>,
}

impl ExpectedDigest {
    fn parse(headers: &HeaderMap) -> Result<ExpectedDigest, VerifyError> {
        let field: sfv::Dictionary = parse_field(headers, &signing::CONTENT_DIGEST)?;
        let bytes = |alg: &str| -> Result<Option<Vec<u8>>, VerifyError> {
            match field.get(KeyRef::constant(alg)) {
                None => Ok(None),
                Some(ListEntry::Item(item)) => match item.bare_item.as_byte_sequence() {
                    Some(bytes) => Ok(Some(bytes.to_vec())),
                    None => Err(VerifyError::MalformedHeader(signing::CONTENT_DIGEST)),
                },
                Some(_) => Err(VerifyError::MalformedHeader(signing::CONTENT_DIGEST)),
            }
        };
        Ok(ExpectedDigest {
            sha256: bytes("sha-256")?,
            sha512: bytes("sha-512")?,
        })
    }

    /// Every digest named must match; at least one must be named.
    fn check(&self, body: &[u8]) -> Result<(), VerifyError> {
        if self.sha256.is_none() && self.sha512.is_none() {
            return Err(VerifyError::ContentDigestMismatch);
        }
        if let Some(expected) = &self.sha256
            && Sha256::digest(body).as_slice() != expected.as_slice()
        {
            return Err(VerifyError::ContentDigestMismatch);
        }
        if let Some(expected) = &self.sha512
            && Sha512::digest(body).as_slice() != expected.as_slice()
        {
            return Err(VerifyError::ContentDigestMismatch);
        }
        Ok(())
    }
}

/// Whether the head announces a body: a non-zero `Content-Length`, or any `Transfer-Encoding`.
fn declares_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get_all(http::header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes().iter().any(|b| *b != b'0'))
}

/// Parses a Structured Field dictionary; several field lines are one dictionary, joined with
/// commas (RFC 9651 §4.2).
fn parse_field(headers: &HeaderMap, name: &HeaderName) -> Result<sfv::Dictionary, VerifyError> {
    let malformed = || VerifyError::MalformedHeader(name.clone());
    let mut values = headers.get_all(name).iter();
    let first = values
        .next()
        .ok_or_else(|| VerifyError::MissingHeader(name.clone()))?;
    let parsed = match values.next() {
        None => sfv::Parser::new(first.as_bytes()).parse(),
        Some(second) => {
            let mut joined = first.as_bytes().to_vec();
            for value in std::iter::once(second).chain(values) {
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(value.as_bytes());
            }
            sfv::Parser::new(&joined).parse()
        }
    };
    parsed.map_err(|_| malformed())
}

/// A non-negative integer parameter, if present.
fn integer_param(params: &sfv::Parameters, name: &KeyRef) -> Result<Option<u64>, VerifyError> {
    match params.get(name) {
        None => Ok(None),
        Some(BareItem::Integer(n)) => u64::try_from(i64::from(*n))
            .map(Some)
            .map_err(|_| VerifyError::MalformedSignature("a time parameter is negative")),
        Some(_) => Err(VerifyError::MalformedSignature(
            "`created` and `expires` must be integers",
        )),
    }
}

/// 16 to 128 characters of `A-Z a-z 0-9 - _`: comms' 32 hex digits, the 22 base64url
/// characters of Python's `requests-http-signature`, and others of that form.
fn is_valid_nonce(nonce: &str) -> bool {
    (16..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A header that must occur once, as non-empty text.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or_else(|| VerifyError::MissingHeader(name.clone()))?;
    if values.next().is_some() {
        return Err(VerifyError::MalformedHeader(name.clone()));
    }
    match value.to_str() {
        Ok(text) if !text.is_empty() => Ok(text),
        _ => Err(VerifyError::MalformedHeader(name.clone())),
    }
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

/// The instant `since_epoch` after the Unix epoch. One the platform cannot represent (from a
/// skew window of centuries) becomes 2106-02-07 (`u32::MAX` Unix seconds), past the life of any
/// request this verifier accepts.
fn unix_time(since_epoch: Duration) -> SystemTime {
    UNIX_EPOCH
        .checked_add(since_epoch)
        .unwrap_or_else(|| UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// A GET to `/x` on host `h`, signed by `svc` with secret `k`.
    fn signed(created: u64, nonce: &str) -> HeaderMap {
        let fields = [("content-digest", signing::EMPTY_CONTENT_DIGEST)];
        let message = signing::Message {
            method: "GET",
            authority: "h",
            path: "/x",
            query: "",
            fields: &fields,
        };
        let params = signing::Params {
            created,
            key_id: "svc",
            nonce,
        };
        let base = signing::signature_base(&message, &params);
        let mut h = HeaderMap::new();
        for (name, value) in [
            (http::header::HOST, "h".to_owned()),
            (
                signing::CONTENT_DIGEST,
                signing::EMPTY_CONTENT_DIGEST.to_owned(),
            ),
            (
                signing::SIGNATURE_INPUT,
                signing::signature_input(&message, &params),
            ),
            (
                signing::SIGNATURE,
                signing::signature(&Secret::from("k"), &base),
            ),
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

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn skew_window_both_ways() {
        let v = Verifier::new()
            .service("svc", "k")
            .max_skew(Duration::from_secs(10));
        let uri: Uri = "/x".parse().unwrap();
        let nonce = "0123456789abcdef0123456789abcdef";
        let head =
            |created, now| v.verify_head_at(&Method::GET, &uri, &signed(created, nonce), at(now));
        assert!(matches!(
            head(1000, 1011),
            Err(VerifyError::StaleTimestamp(_))
        ));
        assert!(matches!(
            head(1011, 1000),
            Err(VerifyError::FutureTimestamp(_))
        ));
        assert!(head(1000, 1010).is_ok());
        assert!(head(1010, 1000).is_ok());
    }

    #[test]
    fn the_nonce_is_kept_until_created_can_no_longer_pass() {
        let v = Verifier::new()
            .service("svc", "k")
            .max_skew(Duration::from_secs(10));
        let uri: Uri = "/x".parse().unwrap();
        let head = v
            .verify_head_at(&Method::GET, &uri, &signed(1000, &"a".repeat(16)), at(1000))
            .unwrap();
        // `created` passes while the clock reads 1010.999: the nonce is kept until 1011.
        assert_eq!(head.nonce.as_ref().unwrap().1, at(1011));
    }

    #[test]
    fn key_usage_counts_what_was_verified() {
        let v = Verifier::new()
            .service("svc", "k")
            .key("svc-next", "svc", "k2");
        let uri: Uri = "/x".parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let headers = signed(now, &"b".repeat(16));
        let caller = run(v.verify(&Method::GET, &uri, &headers, b"")).unwrap();
        assert_eq!((caller.service_id(), caller.key_id()), ("svc", "svc"));
        // A refusal is not a use.
        assert!(run(v.verify(&Method::GET, &uri, &headers, b"")).is_err());
        let usage = v.key_usage();
        assert_eq!(usage.len(), 2);
        assert_eq!((usage[0].key_id.as_str(), usage[0].requests), ("svc", 1));
        assert!(usage[0].last_used.is_some());
        assert_eq!(
            (usage[1].key_id.as_str(), usage[1].requests),
            ("svc-next", 0)
        );
        assert_eq!(usage[1].last_used, None);
    }

    #[test]
    fn malformed_timestamps() {
        for bad in ["", "+1", "-1", "1.5", "99999999999999999999", " 1"] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_timestamp("1700000000").unwrap(), 1_700_000_000);
    }

    #[test]
    fn nonce_forms() {
        assert!(is_valid_nonce("0123456789abcdef0123456789abcdef"));
        assert!(is_valid_nonce("Ab-_0123456789xyzQRS9w")); // 22 base64url characters
        assert!(is_valid_nonce(&"n".repeat(128)));
        for bad in [
            "short",
            &"n".repeat(15),
            &"n".repeat(129),
            "0123456789abcdef+/",
            "0123456789abcdef==",
        ] {
            assert!(!is_valid_nonce(bad), "{bad}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let v = Verifier::new().service("svc", "topsecret-value");
        let shown = format!("{v:?}");
        assert!(shown.contains("svc") && !shown.contains("topsecret"));
    }

    #[test]
    fn a_key_given_again_replaces_the_old_one() {
        let v = Verifier::new().key("k1", "a", "s1").key("k1", "b", "s2");
        assert_eq!(v.keys.by_id.len(), 1);
        assert!(v.keys.by_service.get("a").unwrap().is_empty());
        assert_eq!(v.keys.by_service.get("b").unwrap().len(), 1);
    }
}
