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
//! carries (under any label), the first whose `keyid` this verifier knows is used; the others
//! by keys it knows (at most four, each key once) are checked too, and each in the profile
//! must pass (one outside it by its own parameters or coverage, another application's, is left
//! alone), and the nonce of each is recorded with its own, so that the request passes once
//! whichever comes first. A request line naming no path (authority- or asterisk-form, but for
//! a `CONNECT`) is refused, whatever its signature. It must
//! cover `@method`, `@authority`, `@path` and `@query`, and `content-digest` when the request
//! has a body; any other covered header (`date`, say) is checked too, and every covered field
//! must occur exactly once. Other signers' choices are checked as RFC 9421 defines them:
//! `@request-target`, `@query-param` (a parameter that occurs once), a Dictionary field's
//! member (`;key`), a field as a Byte Sequence (`;bs`), and `@scheme` and `@target-uri` once
//! the verifier knows the scheme ([`Verifier::scheme`]). What cannot be checked is refused,
//! never skipped: a field's Structured Field form (`;sf` alone, which needs the field's type),
//! trailers (`;tr`), and the components of responses. Since components are looked at before
//! the signature is, a signature may cover at most 64, and what they parse is parsed once.
//! `created` must be within the skew window either way, `expires` (when present) not past,
//! `alg` (when present) `hmac-sha256`, and `nonce` 16 to 128 characters of `A-Z a-z 0-9 - _`.
//! `Content-Digest` may carry `sha-256` and `sha-512`; each one present must match the body.
//!
//! A request with `X-Signature` and no `Signature-Input` is a legacy one, checked only when
//! [`Verifier::accept_legacy`] says so.

mod error;
mod in_flight;
pub(crate) mod layer;
mod legacy;
mod nonce;
mod rfc9421;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, Method, Uri};

use crate::signing::{self, Secret, Signer, Signing};
use in_flight::{InFlight, Turn};
use rfc9421::ExpectedDigest;

pub use error::VerifyError;
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
    /// The store's [`NonceStore::location`], read once.
    nonce_location: Option<Arc<str>>,
    /// The `@authority` values accepted (lower case); any, when empty.
    authorities: Arc<[Box<str>]>,
    /// The scheme requests reach this service by (lower case), for `@scheme` and `@target-uri`.
    pub(super) scheme: Option<Arc<str>>,
    /// The nonces of the requests being admitted, whose copies wait their turn.
    in_flight: Arc<InFlight>,
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
            .field("authorities", &self.authorities)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

/// The authenticated caller of a verified request.
///
/// Two callers are equal when they are the same service signing with the same key under the
/// same scheme, whatever their requests' signatures covered.
#[derive(Clone, Debug)]
pub struct Caller {
    service_id: Arc<str>,
    key_id: Arc<str>,
    signing: Signing,
    /// The header fields the signature covers whole, lower case, each followed by a space;
    /// `None` under a legacy signature, which covers none.
    covered: Option<Arc<str>>,
}

impl PartialEq for Caller {
    fn eq(&self, other: &Caller) -> bool {
        (&self.service_id, &self.key_id, self.signing)
            == (&other.service_id, &other.key_id, other.signing)
    }
}

impl Eq for Caller {}

impl Caller {
    /// Whether the request's signature covers the header field `name` (in any case), whole:
    /// what a handler behind a [`VerifyLayer`] may trust a header for. A header it does not
    /// cover may have been added on the way (a proxy's `X-Request-Id`, or anybody's
    /// `X-Tenant`). Every header a comms client's call sets is covered; under a legacy
    /// signature, none is.
    ///
    /// ```
    /// use comms::http::HeaderMap;
    /// use comms::verify::Caller;
    ///
    /// fn tenant<'a>(caller: &Caller, headers: &'a HeaderMap) -> Option<&'a str> {
    ///     if !caller.covers("x-tenant") {
    ///         return None;
    ///     }
    ///     headers.get("x-tenant")?.to_str().ok()
    /// }
    /// ```
    pub fn covers(&self, name: &str) -> bool {
        self.covered
            .as_deref()
            .is_some_and(|covered| lists(covered, name))
    }

    /// The header fields the signature vouches for (see [`CoveredFields`]), for a generated
    /// server that verifies nothing itself behind the gate that admitted this caller.
    #[cfg(feature = "server")]
    pub(crate) fn covered_fields(&self) -> CoveredFields {
        CoveredFields(self.covered.clone())
    }

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

/// Whether `covered`, header field names each followed by a space, lists `name` (in any case).
fn lists(covered: &str, name: &str) -> bool {
    covered
        .split_terminator(' ')
        .any(|field| field.eq_ignore_ascii_case(name))
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

impl Verifier {
    /// A verifier that knows no key yet, with a 300 s skew window, RFC 9421 only, and an
    /// in-memory nonce store.
    pub fn new() -> Verifier {
        Verifier {
            keys: Arc::new(Keys::default()),
            max_skew: DEFAULT_MAX_SKEW,
            accept_legacy: false,
            nonces: Arc::new(MemoryNonceStore::default()),
            nonce_location: None,
            authorities: Arc::new([]),
            scheme: None,
            in_flight: Arc::default(),
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
    ///
    /// An empty secret (an unset variable read as `""`, say) is no key: anyone could sign
    /// with it. The key id then verifies nothing, its earlier key included, and an error is
    /// logged naming it.
    #[must_use]
    pub fn key(
        mut self,
        key_id: impl Into<String>,
        service_id: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> Verifier {
        let key_id: Arc<str> = key_id.into().into();
        let service_id: Arc<str> = service_id.into().into();
        let secret = secret.into();
        if secret.is_empty() {
            tracing::error!(
                key_id = %key_id,
                service_id = %service_id,
                "Verifier: the secret of this key is empty; requests signed under its key id are refused"
            );
            let keys = Arc::make_mut(&mut self.keys);
            if let Some(old) = keys.by_id.remove(&*key_id)
                && let Some(list) = keys.by_service.get_mut(&old.service_id)
            {
                list.retain(|k| k.key_id != key_id);
            }
            return self;
        }
        if secret.is_short() {
            tracing::warn!(
                key_id = %key_id,
                service_id = %service_id,
                "Verifier: the secret of this key is shorter than 32 bytes: one signed request \
                 lets a guess be tested offline; use 32 random bytes or more"
            );
        }
        let key = Arc::new(Key {
            key_id: key_id.clone(),
            service_id: service_id.clone(),
            // Both schemes key the MAC with the same secret; the scheme is chosen per request.
            signer: Signer::new(&secret, Signing::Rfc9421),
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

    /// Accepts RFC 9421 requests signed for `authority` (`host` or `host:port`, as callers
    /// write it in their base URL); once one is given, a request signed for any other is
    /// refused. Call it once for each name the service is reached by.
    ///
    /// Without it, the signed `@authority` is only checked against the request's own (its
    /// `Host`, or the authority of an absolute-form request line, which must then agree):
    /// a caller that signs for several services with one secret then has a request captured
    /// on its way to one accepted by another that serves the same method and path, unless the
    /// two share a nonce store. (A legacy signature covers no authority.)
    ///
    /// A default port may be written or left out: a client writes `http://users.internal:80`
    /// as `users.internal`, which is what it signs, and `users.internal:443` accepts that too
    /// (with [`scheme`](Self::scheme) set, only the scheme's own default port is left out).
    #[must_use]
    pub fn authority(mut self, authority: impl Into<String>) -> Verifier {
        let mut all: Vec<Box<str>> = self.authorities.iter().cloned().collect();
        all.push(authority.into().to_ascii_lowercase().into_boxed_str());
        self.authorities = all.into();
        self
    }

    /// The scheme requests reach this service by, `http` or `https` as its callers write it,
    /// for signatures that cover `@scheme` or `@target-uri` (comms clients cover neither; other
    /// signers may). An HTTP/1.1 request line does not carry the scheme (but in the absolute
    /// form a proxy is sent), and behind a proxy that ends TLS the service could not tell it
    /// anyway. Without it, the request URI's own scheme is used when it has one (HTTP/2's, or an
    /// absolute-form request line's, which is the client's word for it, not the connection's),
    /// and such a signature is otherwise refused with [`VerifyError::UnknownScheme`]. Set it
    /// when `@scheme` should say how the request really came. It also tells the verifier which
    /// port in `Host` is the default one, which `@authority` leaves out (an empty port is left
    /// out always): without it, a signature over `users.internal` from a caller that sent
    /// `Host: users.internal:80` is refused.
    #[must_use]
    pub fn scheme(mut self, scheme: impl Into<String>) -> Verifier {
        self.scheme = Some(scheme.into().to_ascii_lowercase().into());
        self
    }

    /// Replaces the in-memory nonce store, for instance with one shared by all replicas.
    #[must_use]
    pub fn nonce_store(mut self, store: impl NonceStore) -> Verifier {
        self.nonce_location = store.location().map(Arc::from);
        self.nonces = Arc::new(store);
        // Which copies were admitted is said of a store: a clone given another store takes
        // turns of its own, or a request one store admitted would read as spent to the other.
        self.in_flight = Arc::default();
        self
    }

    /// Whether the verifier knows no key, so that it refuses every request.
    #[cfg(feature = "server")]
    pub(crate) fn knows_no_key(&self) -> bool {
        self.keys.by_id.is_empty() && self.keys.by_service.is_empty()
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
        // A request line naming no path (`GET host:80`, `OPTIONS *`) is routed elsewhere than
        // `/` (axum: to its fallback), while a signature over `/` would pass for it.
        if method != Method::CONNECT && !uri.path().starts_with('/') {
            return Err(VerifyError::NoPath);
        }
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
    /// The nonces of the request's other signatures by keys this verifier knows, recorded
    /// with the one checked: the request must pass once, whichever of them is put first.
    others: Vec<(Arc<Key>, String, SystemTime)>,
    /// The signed `Content-Digest`, when the signature covers one.
    digest: Option<ExpectedDigest>,
    /// Whether `verify_body` counts the use of the key (not when a gate in front did).
    count_use: bool,
    /// Whether a gate in front recorded this nonce in a store other than this verifier's,
    /// which records it too.
    recorded_in_front: bool,
    /// Whether a `Comms-Deadline-Ms` the request has is one its signer vouches for: covered
    /// by an RFC 9421 signature, or under a legacy one, which covers no header.
    covers_deadline: bool,
    /// Likewise for the trace context the request carries (every field of the global
    /// propagator's it has): a SERVER span continues the caller's trace only when it is.
    covers_trace: bool,
    /// The header fields an RFC 9421 signature covers whole, each followed by a space (see
    /// [`Caller::covers`]); `None` under a legacy one. What a generated server hands a method
    /// from a header must be among them.
    covered: Option<Arc<str>>,
    /// This request's turn among its copies, once a gate took it ([`take_turn`]).
    ///
    /// [`take_turn`]: VerifiedHead::take_turn
    turn: Option<Turn<'a>>,
}

/// The header fields a request's signature vouches for, for what a generated server takes
/// from its headers: every one without a verifier or under a legacy signature (which covers no
/// header, its headers taken as sent), else those an RFC 9421 signature covers whole. One
/// added on the way (an argument's header, an `Idempotency-Key`, a multipart body's
/// `Content-Type` and its boundary) would change what a signed request means.
///
/// Held as the names an RFC 9421 signature covers whole, lower case, each followed by a space
/// (shared: the gate in front and the server behind it hand it on), or `None` for every one.
#[cfg(feature = "server")]
#[derive(Clone, Debug, Default)]
pub(crate) struct CoveredFields(Option<Arc<str>>);

#[cfg(feature = "server")]
impl CoveredFields {
    /// The names of the fields vouched for, each followed by a space; `None` for every one.
    #[cfg(any(fuzzing, test, feature = "__internals"))]
    pub(crate) fn names(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether the field `name` (in any case) is vouched for.
    pub(crate) fn covers(&self, name: &str) -> bool {
        self.0.as_deref().is_none_or(|covered| lists(covered, name))
    }
}

/// What a gate in front did for a request it admitted, kept in the request's extensions: a
/// generated server merged under a [`VerifyLayer`] checks the signature again with its own
/// verifier, but does not count a key's use twice, nor record the nonce again in the store the
/// gate recorded it in (which would take the request for its own replay). In a store of its
/// own, it does: the gate's may be this process's memory, and the server's the one the fleet
/// shares.
#[derive(Clone)]
pub(crate) struct Admitted {
    key: Arc<Key>,
    /// The nonce the gate recorded; `None` for a legacy request, which has none.
    nonce: Option<String>,
    /// The nonces of the other signatures by keys it knows, which it recorded too, by service.
    others: Vec<(Arc<str>, String)>,
    /// The store the gate recorded it in, and where that keeps its nonces.
    nonces: Arc<dyn NonceStore>,
    nonce_location: Option<Arc<str>>,
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

impl<'a> VerifiedHead<'a> {
    /// The service whose key signed the head.
    pub fn service_id(&self) -> &str {
        &self.key.service_id
    }

    /// Whether the request's `Comms-Deadline-Ms`, if it has one, may be taken: one an RFC 9421
    /// signature does not cover could have been added on the way, to cut the request short.
    pub(crate) fn covers_deadline(&self) -> bool {
        self.covers_deadline
    }

    /// Whether the request's trace context, if it has one, may be continued: one an RFC 9421
    /// signature does not cover could be anybody's, to join a trace or to have it sampled.
    pub(crate) fn covers_trace(&self) -> bool {
        self.covers_trace
    }

    /// The header fields the signature vouches for (see [`CoveredFields`]): those it covers,
    /// or every one under a legacy signature, whose headers are taken as sent.
    #[cfg(feature = "server")]
    pub(crate) fn covered_fields(&self) -> CoveredFields {
        CoveredFields(self.covered.clone())
    }

    /// What the gate that admits this request leaves in its extensions for one behind it.
    pub(crate) fn admitted(&self) -> Admitted {
        Admitted {
            key: self.key.clone(),
            nonce: self.nonce.as_ref().map(|(nonce, _)| nonce.clone()),
            others: self
                .others
                .iter()
                .map(|(key, nonce, _)| (key.service_id.clone(), nonce.clone()))
                .collect(),
            nonces: self.verifier.nonces.clone(),
            nonce_location: self.verifier.nonce_location.clone(),
        }
    }

    /// Leaves to the gate in front, which admitted this request, what it did for the signature
    /// this head checked, when it checked this signature too (the same key and nonce: two
    /// verifiers knowing different keys may each pick another of a request's signatures): the
    /// nonce it recorded, when it recorded it in this verifier's store, and the key's use when
    /// it counted it on this very key.
    pub(crate) fn behind(&mut self, outer: &Admitted) {
        // A request's RFC 9421 signatures each have a nonce; its one legacy signature none.
        let same_signature = outer.key.key_id == self.key.key_id
            && outer.key.service_id == self.key.service_id
            && outer.nonce.as_deref() == self.nonce.as_ref().map(|(nonce, _)| nonce.as_str());
        let one_store = Arc::ptr_eq(&outer.nonces, &self.verifier.nonces)
            || outer
                .nonce_location
                .as_ref()
                .is_some_and(|outer| self.verifier.nonce_location.as_ref() == Some(outer));
        if one_store {
            // What the gate recorded in this store, of the signature checked or the others,
            // is not recorded again: it would be taken for its own replay.
            let recorded = |service: &str, nonce: &str| {
                (*outer.key.service_id == *service && outer.nonce.as_deref() == Some(nonce))
                    || outer
                        .others
                        .iter()
                        .any(|(s, n)| **s == *service && n == nonce)
            };
            let service = self.key.service_id.clone();
            if self
                .nonce
                .as_ref()
                .is_some_and(|(nonce, _)| recorded(&service, nonce))
            {
                self.nonce = None;
            }
            self.others
                .retain(|(key, nonce, _)| !recorded(&key.service_id, nonce));
        } else if same_signature {
            self.recorded_in_front = self.nonce.is_some();
        }
        if same_signature {
            self.count_use &= !Arc::ptr_eq(&outer.key, &self.key);
        }
    }

    /// The refusal of a replay; said at length when the gate in front recorded the nonce in
    /// another store, which may be this one under another instance.
    fn replay(&self) -> VerifyError {
        if self.recorded_in_front {
            tracing::warn!(
                service = %self.key.service_id,
                "a request the VerifyLayer in front admitted is a replay to this server's nonce \
                 store: when the two are one store, give them one instance (the same Verifier, \
                 cloned), or have NonceStore::location say the same place for both"
            );
        }
        VerifyError::Replayed
    }

    /// Waits until no copy of this request (the same nonce, from the same service) is being
    /// admitted by a gate of this verifier, and takes the turn, held until the request is
    /// admitted or refused (this head dropped, or [`verify_body`] done): copies of one signed
    /// head are admitted one at a time, so that one has its body read, and the next is refused
    /// at its head once one spent the nonce ([`copy_spent`], whatever the store). A legacy
    /// request, which has no nonce, takes none. A copy's body timeout starts once it has its
    /// turn; the gate bounds the wait for it (see `Gate::admit_head`).
    ///
    /// [`verify_body`]: VerifiedHead::verify_body
    /// [`copy_spent`]: VerifiedHead::copy_spent
    pub(crate) async fn take_turn(&mut self) {
        if let Some((nonce, _)) = &self.nonce {
            let turn = self.verifier.in_flight.turn(&self.key.service_id, nonce);
            self.turn = Some(turn.await);
        }
    }

    /// Whether a copy of this request, admitted while this one waited for its turn, spent the
    /// nonce: a replay, refused at its head whatever the store.
    pub(crate) fn copy_spent(&self) -> bool {
        self.turn.as_ref().is_some_and(Turn::after_spent)
    }

    /// Whether the nonce store already holds this request's nonce: a replay, refused before
    /// its body is read. (Recording the nonce waits for the body's digest, `verify_body`: a
    /// request whose body does not match must not use up its nonce.) Stores that do not look
    /// nonces up without recording them answer `false` here.
    pub(crate) async fn replayed(&self) -> Result<bool, VerifyError> {
        let now = SystemTime::now();
        let checked = self.nonce.iter().map(|(nonce, _)| (&self.key, nonce));
        let others = self.others.iter().map(|(key, nonce, _)| (key, nonce));
        for (key, nonce) in checked.chain(others) {
            let seen = self
                .verifier
                .nonces
                .contains(&key.service_id, nonce, now)
                .await
                .map_err(VerifyError::NonceStore)?;
            if seen {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Checks the body against the signed `Content-Digest`, then records the nonce (a replay
    /// is refused), and gives the authenticated caller.
    ///
    /// A signature with a nonce is refused as stale ([`VerifyError::StaleTimestamp`]) when its
    /// skew window closed while the body was read: the nonce store keeps a nonce only until
    /// then, so a request recorded later could be replayed.
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
            // `keep_until` is the window's end plus a second (see `rfc9421.rs`): how long ago
            // the signature was made is what a stale head would have been told.
            if let Ok(past) = now.duration_since(*keep_until) {
                return Err(VerifyError::StaleTimestamp(
                    past + self.verifier.max_skew + Duration::from_secs(1),
                ));
            }
            let fresh = self
                .verifier
                .nonces
                .check_and_insert(&self.key.service_id, nonce, now, *keep_until)
                .await
                .map_err(VerifyError::NonceStore)?;
            // Spent, by this request or (not fresh) by one before it: the copies waiting are
            // refused at their heads either way.
            if let Some(turn) = &self.turn {
                turn.spent();
            }
            if !fresh {
                return Err(self.replay());
            }
        }
        for (key, nonce, keep_until) in &self.others {
            let fresh = self
                .verifier
                .nonces
                .check_and_insert(&key.service_id, nonce, now, *keep_until)
                .await
                .map_err(VerifyError::NonceStore)?;
            if !fresh {
                return Err(VerifyError::Replayed);
            }
        }
        let key = &self.key;
        // Unless the gate in front counted it on this key.
        if self.count_use {
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
        }
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        key.last_used.fetch_max(secs, Ordering::Relaxed);
        Ok(Caller {
            service_id: key.service_id.clone(),
            key_id: key.key_id.clone(),
            signing: self.signing,
            covered: self.covered,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// A GET to `/x` on host `h`, signed by `svc` with secret `k`.
    pub(super) fn signed(created: u64, nonce: &str) -> HeaderMap {
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
