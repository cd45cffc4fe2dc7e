//! Request signing: the default `v2` scheme and the `legacy` scheme of the Python
//! `microservice_comms` library.
//!
//! The executor signs every attempt with a pre-keyed HMAC; the verifier (see [`crate::verify`]) checks
//! with the same functions, so the two sides share one definition of each string to sign. The
//! free functions here are public so that other implementations can be tested against this one.
//!
//! # v2
//!
//! HMAC-SHA256, keyed with the secret's bytes, over these lines joined by `\n`:
//!
//! ```text
//! COMMS-HMAC-SHA256-V2
//! <METHOD>
//! <path as on the request line, without the query>
//! <canonical query>
//! <service id>
//! <timestamp>
//! <nonce>
//! <hex SHA-256 of the body>
//! ```
//!
//! # legacy
//!
//! HMAC-SHA256 over `<METHOD>|<percent-decoded path>|<timestamp>`. Neither the body nor the
//! query is covered, which is why `v2` is the default.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// `X-Service-ID`: the caller's identity.
pub const SERVICE_ID_HEADER: &str = "x-service-id";
/// `X-Timestamp`: Unix seconds, decimal.
pub const TIMESTAMP_HEADER: &str = "x-timestamp";
/// `X-Nonce`: 16 random bytes as 32 lowercase hex digits (v2 only).
pub const NONCE_HEADER: &str = "x-nonce";
/// `X-Content-SHA256`: lowercase hex SHA-256 of the body bytes (v2 only).
pub const CONTENT_SHA256_HEADER: &str = "x-content-sha256";
/// `X-Signature`: `v2=<hex>` for v2, bare `<hex>` for legacy.
pub const SIGNATURE_HEADER: &str = "x-signature";
/// First line of every v2 string to sign.
pub const V2_ALGORITHM: &str = "COMMS-HMAC-SHA256-V2";
/// Prefix of a v2 `X-Signature` value.
pub const V2_PREFIX: &str = "v2=";

/// SHA-256 of the empty string, the content hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Bytes that stay literal in canonical queries and encoded path segments: RFC 3986's
/// unreserved set `A-Z a-z 0-9 - . _ ~`. Everything else becomes `%XX`.
pub(crate) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Whether `b` is one of the bytes [`UNRESERVED`] leaves as it is: `A-Z a-z 0-9 - . _ ~`.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Which signing scheme a client uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signing {
    /// The default: covers method, path, query, body, service id, timestamp and a nonce.
    #[default]
    V2,
    /// The Python `microservice_comms` scheme, for services that only speak it.
    Legacy,
}

impl FromStr for Signing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v2" => Ok(Signing::V2),
            "legacy" => Ok(Signing::Legacy),
            other => Err(format!(
                "unknown signing scheme `{other}`, expected `v2` or `legacy`"
            )),
        }
    }
}

impl fmt::Display for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signing::V2 => "v2",
            Signing::Legacy => "legacy",
        })
    }
}

/// A shared secret. Its bytes are wiped from memory when it is dropped and never printed.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps the secret's bytes (the UTF-8 bytes of the configured string).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(Zeroizing::new(bytes.into()))
    }

    /// Whether the secret has no bytes, which is refused by every builder.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A MAC keyed with this secret, ready to be cloned for each signature.
    pub(crate) fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret::new(s.into_bytes())
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret::new(s.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Lowercase hex SHA-256 of `body`.
pub fn content_sha256(body: &[u8]) -> String {
    if body.is_empty() {
        return EMPTY_SHA256.to_owned();
    }
    lower_hex(&Sha256::digest(body))
}

/// Lowercase hex of `bytes`, written in one allocation.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut out).expect("the buffer is twice the input");
    String::from_utf8(out).expect("hex is ASCII")
}

/// The canonical form of a raw query string, as covered by a v2 signature.
///
/// The raw query is split on `&`, empty pieces are dropped, each piece is split at its first
/// `=` (a piece without one has an empty value), names and values are percent-decoded (`+` stays
/// `+`) and re-encoded with every byte outside `A-Z a-z 0-9 - . _ ~` as upper-case `%XX`, then
/// the pairs are sorted by encoded name, then encoded value, and joined as `name=value` with `&`.
///
/// ```
/// assert_eq!(comms::signing::canonical_query("b=2&a=%7e&&a=1"), "a=1&a=~&b=2");
/// ```
pub fn canonical_query(raw: &str) -> String {
    if raw.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = raw
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (reencode(name), reencode(value))
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(raw.len() + 8);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Decodes and re-encodes one query name or value; one already in canonical form (only
/// unreserved bytes) is returned as it is, without allocating.
fn reencode(part: &str) -> Cow<'_, str> {
    if part.bytes().all(is_unreserved) {
        return Cow::Borrowed(part);
    }
    let bytes: Cow<'_, [u8]> = percent_decode_str(part).into();
    Cow::Owned(percent_encoding::percent_encode(&bytes, UNRESERVED).to_string())
}

/// Percent-encodes `value` as one query name or value (every byte outside the unreserved set).
pub(crate) fn encode_component(value: &str) -> impl fmt::Display + '_ {
    utf8_percent_encode(value, UNRESERVED)
}

/// What a signature covers of a request besides its method, path and identity: for v2 the
/// canonical form of `raw_query` and the body's hash (borrowed for an empty body, the usual
/// case); legacy covers neither, so both are empty.
pub(crate) fn covered(
    scheme: Signing,
    raw_query: &str,
    body: &[u8],
) -> (String, Cow<'static, str>) {
    match scheme {
        Signing::V2 => (
            canonical_query(raw_query),
            match body {
                [] => Cow::Borrowed(EMPTY_SHA256),
                body => Cow::Owned(content_sha256(body)),
            },
        ),
        Signing::Legacy => (String::new(), Cow::Borrowed("")),
    }
}

/// The pieces of a v2 string to sign, in order, without the separating newlines.
struct V2Parts<'a>([&'a [u8]; 8]);

impl<'a> V2Parts<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        method: &'a str,
        path: &'a str,
        canonical_query: &'a str,
        service_id: &'a str,
        timestamp: &'a str,
        nonce: &'a str,
        content_sha256: &'a str,
    ) -> Self {
        V2Parts([
            V2_ALGORITHM.as_bytes(),
            method.as_bytes(),
            path.as_bytes(),
            canonical_query.as_bytes(),
            service_id.as_bytes(),
            timestamp.as_bytes(),
            nonce.as_bytes(),
            content_sha256.as_bytes(),
        ])
    }

    fn feed(&self, mac: &mut HmacSha256) {
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                mac.update(b"\n");
            }
            mac.update(part);
        }
    }
}

/// The v2 string to sign. `method` is upper-cased; `canonical_query` must already be canonical
/// (see [`canonical_query`]).
pub fn v2_string_to_sign(
    method: &str,
    path: &str,
    canonical_query: &str,
    service_id: &str,
    timestamp: u64,
    nonce: &str,
    content_sha256: &str,
) -> String {
    let method = method.to_ascii_uppercase();
    let timestamp = timestamp.to_string();
    let parts = V2Parts::new(
        &method,
        path,
        canonical_query,
        service_id,
        &timestamp,
        nonce,
        content_sha256,
    );
    let bytes: Vec<u8> = parts.0.join(&b'\n');
    String::from_utf8(bytes).expect("every part is UTF-8")
}

/// The legacy string to sign, `<METHOD>|<decoded path>|<timestamp>`, as bytes (a decoded path
/// need not be UTF-8). `wire_path` is the path as sent, without the query.
pub fn legacy_string_to_sign(method: &str, wire_path: &str, timestamp: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire_path.len() + 24);
    out.extend(method.bytes().map(|b| b.to_ascii_uppercase()));
    out.push(b'|');
    out.extend(percent_decode_str(wire_path));
    out.push(b'|');
    out.extend_from_slice(timestamp.to_string().as_bytes());
    out
}

/// `v2=<hex>`: the v2 `X-Signature` value for a string to sign.
pub fn sign_v2(secret: &Secret, string_to_sign: &str) -> String {
    let mut mac = secret.mac();
    mac.update(string_to_sign.as_bytes());
    format!("{V2_PREFIX}{}", lower_hex(&mac.finalize().into_bytes()))
}

/// `<hex>`: the legacy `X-Signature` value for a string to sign.
pub fn sign_legacy(secret: &Secret, string_to_sign: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(string_to_sign);
    lower_hex(&mac.finalize().into_bytes())
}

/// What one attempt's signature covers, besides the caller's identity and secret.
pub(crate) struct Target<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub canonical_query: &'a str,
    pub content_sha256: &'a str,
}

/// The headers one signed attempt carries.
pub(crate) struct SignatureHeaders {
    /// Lowercase hex of the nonce (v2 only).
    pub nonce: Option<[u8; 32]>,
    /// The `X-Signature` value: `v2=` and 64 hex digits, or 64 hex digits.
    pub signature: Signature,
}

/// An `X-Signature` value on the stack.
pub(crate) struct Signature {
    buf: [u8; 67],
    len: usize,
}

impl Signature {
    fn new(prefix: &str, mac: &[u8]) -> Signature {
        let mut buf = [0u8; 67];
        buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
        let len = prefix.len() + mac.len() * 2;
        hex::encode_to_slice(mac, &mut buf[prefix.len()..len]).expect("a SHA-256 MAC fits");
        Signature { buf, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A caller identity with its pre-keyed MAC: signs attempts without re-deriving the key.
#[derive(Clone)]
pub(crate) struct Signer {
    mac: HmacSha256,
    scheme: Signing,
}

impl Signer {
    pub(crate) fn new(secret: &Secret, scheme: Signing) -> Signer {
        Signer {
            mac: secret.mac(),
            scheme,
        }
    }

    pub(crate) fn scheme(&self) -> Signing {
        self.scheme
    }

    /// Signs one attempt with the given clock reading and nonce.
    pub(crate) fn sign(
        &self,
        service_id: &str,
        target: &Target<'_>,
        timestamp: u64,
        nonce: [u8; 16],
    ) -> SignatureHeaders {
        let mut mac = self.mac.clone();
        match self.scheme {
            Signing::V2 => {
                let mut nonce_hex = [0u8; 32];
                hex::encode_to_slice(nonce, &mut nonce_hex).expect("16 bytes are 32 hex digits");
                let mut digits = itoa::Buffer::new();
                let ts = digits.format(timestamp);
                V2Parts::new(
                    target.method,
                    target.path,
                    target.canonical_query,
                    service_id,
                    ts,
                    std::str::from_utf8(&nonce_hex).expect("hex is ASCII"),
                    target.content_sha256,
                )
                .feed(&mut mac);
                SignatureHeaders {
                    nonce: Some(nonce_hex),
                    signature: Signature::new(V2_PREFIX, &mac.finalize().into_bytes()),
                }
            }
            Signing::Legacy => {
                mac.update(&legacy_string_to_sign(
                    target.method,
                    target.path,
                    timestamp,
                ));
                SignatureHeaders {
                    nonce: None,
                    signature: Signature::new("", &mac.finalize().into_bytes()),
                }
            }
        }
    }

    /// Checks `signature` (raw MAC bytes) over `message` in constant time.
    pub(crate) fn verify_raw(&self, message: &[&[u8]], signature: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        for part in message {
            mac.update(part);
        }
        mac.verify_slice(signature).is_ok()
    }

    /// Checks a v2 signature (raw MAC bytes) in constant time.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn verify_v2(
        &self,
        method: &str,
        path: &str,
        canonical_query: &str,
        service_id: &str,
        timestamp: &str,
        nonce: &str,
        content_sha256: &str,
        signature: &[u8],
    ) -> bool {
        let mut mac = self.mac.clone();
        V2Parts::new(
            method,
            path,
            canonical_query,
            service_id,
            timestamp,
            nonce,
            content_sha256,
        )
        .feed(&mut mac);
        mac.verify_slice(signature).is_ok()
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_query_sorts_and_reencodes() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("&&"), "");
        assert_eq!(
            canonical_query("q=hello%20world&limit=5&a=2&a=1"),
            "a=1&a=2&limit=5&q=hello%20world"
        );
        // `+` is not a space here, `~` needs no escape, lower-case escapes are normalised.
        assert_eq!(canonical_query("x=a+b&y=%7e%2f"), "x=a%2Bb&y=~%2F");
        // A bare name has an empty value; only the first `=` splits.
        assert_eq!(canonical_query("flag&k=v=w"), "flag=&k=v%3Dw");
        // Raw bytes outside the unreserved set are encoded, invalid escapes kept literally.
        assert_eq!(canonical_query("n=é&m=%zz"), "m=%25zz&n=%C3%A9");
    }

    #[test]
    fn legacy_string_decodes_the_path() {
        assert_eq!(
            legacy_string_to_sign("get", "/files/a%2Fb/r%C3%A9sum%C3%A9", 7),
            "GET|/files/a/b/résumé|7".as_bytes()
        );
    }

    #[test]
    fn content_hash_of_empty_body() {
        assert_eq!(content_sha256(b""), EMPTY_SHA256);
        assert_eq!(hex::encode(Sha256::digest(b"")), EMPTY_SHA256);
    }

    #[test]
    fn secret_debug_is_redacted() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn signing_scheme_parses() {
        assert_eq!("v2".parse::<Signing>(), Ok(Signing::V2));
        assert_eq!("legacy".parse::<Signing>(), Ok(Signing::Legacy));
        assert!("V2".parse::<Signing>().is_err());
    }
}
