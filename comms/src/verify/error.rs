//! Why a request was refused: [`VerifyError`], one variant per check, for logs and for
//! callers of [`Verifier`](super::Verifier) who answer refusals themselves.

use std::time::Duration;

use http::HeaderName;

use crate::BoxError;

/// Why a request was refused. Meant for logs: the HTTP answer should stay generic, as
/// [`VerifyLayer`](super::VerifyLayer)'s does.
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
    #[error("{}", UnknownKeyId(.0.as_deref()))]
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
    /// The request was signed for an authority this verifier was not told to accept
    /// ([`Verifier::authority`](super::Verifier::authority)).
    #[error("signed for another authority `{0}`")]
    WrongAuthority(String),
    /// The signature covers a component this verifier cannot check.
    #[error("unsupported covered component `{0}`")]
    UnsupportedComponent(String),
    /// The signature covers `@scheme` or `@target-uri`, and the scheme the request came by is
    /// unknown: an HTTP/1.1 request line does not carry it, and the verifier was not told it
    /// ([`Verifier::scheme`](super::Verifier::scheme)).
    #[error(
        "the signature covers the request's scheme, which this verifier was not told (Verifier::scheme)"
    )]
    UnknownScheme,
    /// A covered header field (or query parameter) is absent or occurs more than once.
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
    /// The request's target is not a path (an authority-form or asterisk-form request line):
    /// a router would serve it from another route than the `/` a signature could be over.
    #[error("the request target is not a path")]
    NoPath,
    /// A legacy signature over a path holding an encoded `/` (`%2F`): the legacy scheme signs
    /// the decoded path, which cannot tell that `/` from a segment's end, so the same
    /// signature would pass for another route.
    #[error(
        "a legacy signature cannot cover a path with an encoded `/` (%2F); sign it with RFC 9421"
    )]
    EncodedSlashInLegacyPath,
    /// A legacy signature over a path that, decoded, still holds an escape (`%2520`), and that
    /// does not match the path as sent: the signature a caller made over `/items/a%20b` (the
    /// resource `a b`, which it encoded itself) would pass for the resource `a%20b`.
    #[error(
        "a legacy signature cannot cover a path holding an encoded escape (%25 and two hex \
         digits); sign it with RFC 9421"
    )]
    EncodedEscapeInLegacyPath,
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

/// [`VerifyError::UnknownKey`]'s message: the key id seen as it was written, not as an
/// `Option`'s `Debug`.
struct UnknownKeyId<'a>(Option<&'a str>);

impl std::fmt::Display for UnknownKeyId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(key_id) => write!(f, "no signature with a known key id (saw `{key_id}`)"),
            None => f.write_str("no signature names a key id"),
        }
    }
}

/// Text the caller chose (a key id, a service id, a component's name), as a refusal quotes it
/// in errors and logs: its first 64 characters.
pub(super) fn quoted(text: &str) -> String {
    text.chars().take(64).collect()
}
