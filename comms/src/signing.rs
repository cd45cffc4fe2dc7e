//! Request signing: RFC 9421 HTTP Message Signatures (the default) and the legacy scheme of the
//! Python `microservice_comms` library.
//!
//! The executor signs every attempt and the verifier (see [`crate::verify`]) checks with the
//! same code: one function writes a signature base, whether into a MAC or into a string. The
//! free functions here are public so that other implementations can be tested against this one.
//!
//! # RFC 9421 (the default)
//!
//! An HTTP Message Signature ([RFC 9421]) with `hmac-sha256`, keyed with the secret's bytes,
//! and an [RFC 9530] `Content-Digest` of the body (`sha-256`, sent with every request, the empty
//! body included). Each request carries three headers:
//!
//! ```text
//! Content-Digest: sha-256=:<base64 SHA-256 of the body>:
//! Signature-Input: comms=("@method" "@authority" "@path" "@query" "content-digest");created=1764547200;keyid="billing";alg="hmac-sha256";nonce="08cd5f0c067369c87ff8cdd54a94ba5d"
//! Signature: comms=:<base64 of the 32-byte HMAC>:
//! ```
//!
//! The covered components are `@method`, `@authority`, `@path`, `@query` and `content-digest`,
//! then `content-type`, `idempotency-key`, `comms-deadline-ms` and `traceparent` when the
//! request has them, then every other header the call sets itself, in the order it set them.
//! The signature base is RFC 9421 §2.5's: one `"<component>": <value>` line per component and a
//! last `"@signature-params"` line repeating the `Signature-Input` member. Any RFC 9421
//! library can check it, given the key.
//!
//! # Legacy
//!
//! HMAC-SHA256 over `<METHOD>|<percent-decoded path>|<timestamp>`, sent as lowercase hex in
//! `X-Signature` beside `X-Service-ID` and `X-Timestamp`. Neither the body nor the query is
//! covered and there is no nonce, which is why it is only for services that speak nothing else.
//! (The Python client signs the path its caller wrote: one encoded already is signed as sent,
//! and a verifier tries that reading too.)
//!
//! [RFC 9421]: https://www.rfc-editor.org/rfc/rfc9421
//! [RFC 9530]: https://www.rfc-editor.org/rfc/rfc9530

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderName;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The label comms gives its signature in `Signature-Input` and `Signature`.
pub const LABEL: &str = "comms";
/// The `alg` parameter of every comms signature.
pub const ALGORITHM: &str = "hmac-sha256";

/// `Content-Digest` (RFC 9530): `sha-256=:<base64>:` of the body bytes.
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");
/// `Signature-Input` (RFC 9421): what the signature covers, and its parameters.
pub const SIGNATURE_INPUT: HeaderName = HeaderName::from_static("signature-input");
/// `Signature` (RFC 9421): the signature itself.
pub const SIGNATURE: HeaderName = HeaderName::from_static("signature");
/// `Idempotency-Key`: one value per call, the same on every attempt.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// `Comms-Deadline-Ms`: the milliseconds left of the call's deadline.
pub const COMMS_DEADLINE_MS: HeaderName = HeaderName::from_static("comms-deadline-ms");
/// `traceparent` (W3C Trace Context).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context): vendors' entries beside `traceparent`.
#[cfg(feature = "otel")]
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// Legacy `X-Service-ID`: the caller's identity.
pub const SERVICE_ID_HEADER: HeaderName = HeaderName::from_static("x-service-id");
/// Legacy `X-Timestamp`: Unix seconds, decimal.
pub const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("x-timestamp");
/// Legacy `X-Signature`: 64 lowercase hex digits.
pub const LEGACY_SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-signature");

/// The `Content-Digest` of an empty body.
pub const EMPTY_CONTENT_DIGEST: &str = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:";

/// Headers a header shared by many calls (a view's, a header hook's) may not set, beyond the
/// [reserved](is_reserved) ones: those that belong to one call (its `Idempotency-Key`, its
/// deadline, its trace context), which a shared value would make wrong, and hop-by-hop headers,
/// which an intermediary removes, so a signature covering them would fail.
pub(crate) fn is_call_owned(name: &HeaderName) -> bool {
    is_reserved(name) || is_hop_by_hop(name) || is_context(name) || name == IDEMPOTENCY_KEY
}

/// Headers comms writes on each attempt from the call's deadline and trace context
/// ([`comms_uri::CONTEXT_HEADERS`]), which a call's own value would not survive.
pub(crate) fn is_context(name: &HeaderName) -> bool {
    comms_uri::is_context_header(name.as_str())
}

/// Hop-by-hop headers ([`comms_uri::HOP_BY_HOP_HEADERS`]), which no header of a call may be,
/// its own either: an intermediary removes them, so a signature covering one would fail on the
/// way.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    comms_uri::is_hop_by_hop_header(name.as_str())
}

/// The header fields a signature covers, after the required ones, whenever a request has them:
/// in this order, before the call's other headers.
pub(crate) static COVERED_WHEN_PRESENT: [HeaderName; 4] = [
    http::header::CONTENT_TYPE,
    IDEMPOTENCY_KEY,
    COMMS_DEADLINE_MS,
    TRACEPARENT,
];

/// Headers a call may not set ([`comms_uri::RESERVED_HEADERS`]): comms writes them, and a
/// second value would change what the signature or the framing means.
pub(crate) fn is_reserved(name: &HeaderName) -> bool {
    comms_uri::is_reserved_header(name.as_str())
}

/// The header fields a call's signature covers, given the call's own headers: `content-digest`,
/// those of [`COVERED_WHEN_PRESENT`] the call has, then its other headers in the order it set
/// them.
pub(crate) fn covered_fields(headers: &http::HeaderMap) -> impl Iterator<Item = &HeaderName> {
    // Which of them the call has, found in one pass over its few names: looking each of the
    // four up by its hash cost more, on every attempt.
    let mut present = [false; COVERED_WHEN_PRESENT.len()];
    for name in headers.keys() {
        if let Some(at) = COVERED_WHEN_PRESENT.iter().position(|field| field == name) {
            present[at] = true;
        }
    }
    std::iter::once(&CONTENT_DIGEST_NAME)
        .chain(
            COVERED_WHEN_PRESENT
                .iter()
                .zip(present)
                .filter_map(|(name, present)| present.then_some(name)),
        )
        .chain(
            headers
                .keys()
                .filter(|name| !COVERED_WHEN_PRESENT.contains(name) && **name != CONTENT_DIGEST),
        )
}

/// [`CONTENT_DIGEST`] as a static, to be borrowed.
static CONTENT_DIGEST_NAME: HeaderName = CONTENT_DIGEST;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Which signing scheme a client uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signing {
    /// The default: an RFC 9421 HTTP Message Signature (`hmac-sha256`) covering method,
    /// authority, path, query, the body's `Content-Digest` and the call's headers, with a
    /// creation time and a nonce.
    #[default]
    Rfc9421,
    /// The Python `microservice_comms` scheme, for services that only speak it. A call whose
    /// path decodes to an escape (a path value `a%20b`, sent as `a%2520b`) is refused with
    /// [`Error::Encode`](crate::Error::Encode), unsent: its signature would read as one over
    /// another resource's path.
    Legacy,
}

impl FromStr for Signing {
    type Err = ParseSigningError;

    /// `rfc9421` or `legacy`, as `Display` writes them and `signing = ".."` takes them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rfc9421" => Ok(Signing::Rfc9421),
            "legacy" => Ok(Signing::Legacy),
            other => Err(ParseSigningError {
                name: other.to_owned(),
            }),
        }
    }
}

/// A signing scheme's name [`Signing`]'s `FromStr` does not know: neither `rfc9421` nor
/// `legacy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseSigningError {
    name: String,
}

impl fmt::Display for ParseSigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown signing scheme `{}`, expected `rfc9421` or `legacy`",
            self.name
        )
    }
}

impl std::error::Error for ParseSigningError {}

impl fmt::Display for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signing::Rfc9421 => "rfc9421",
            Signing::Legacy => "legacy",
        })
    }
}

/// A shared secret. Its bytes are wiped from memory when it is dropped and never printed.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

/// The shortest secret taken without a warning: 32 bytes, HMAC-SHA256's output, the length RFC
/// 2104 advises a key not to fall short of (and RFC 7518 requires of an HS256 key). One signed
/// request is enough to test guesses of a shorter, guessable secret offline.
pub(crate) const SHORT_SECRET: usize = 32;

impl Secret {
    /// Wraps the secret's bytes (the UTF-8 bytes of the configured string).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(Zeroizing::new(bytes.into()))
    }

    /// Whether the secret has no bytes, which is refused by every builder.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the secret is shorter than [`SHORT_SECRET`] bytes, which is taken with a
    /// warning.
    pub(crate) fn is_short(&self) -> bool {
        self.0.len() < SHORT_SECRET
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

/// Whether `key_id` can be a `keyid` parameter as comms writes it: 1 to 256 visible ASCII
/// characters other than `"` and `\`, so it is a Structured Field string needing no escapes.
pub fn is_valid_key_id(key_id: &str) -> bool {
    (1..=256).contains(&key_id.len())
        && key_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// The `Content-Digest` value of `body`: `sha-256=:<base64 of its SHA-256>:`.
///
/// ```
/// assert_eq!(
///     comms::signing::content_digest(b""),
///     "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
/// );
/// ```
pub fn content_digest(body: &[u8]) -> String {
    if body.is_empty() {
        return EMPTY_CONTENT_DIGEST.to_owned();
    }
    let mut out = String::with_capacity(EMPTY_CONTENT_DIGEST.len());
    out.push_str("sha-256=:");
    BASE64.encode_string(Sha256::digest(body), &mut out);
    out.push(':');
    out
}

/// What an RFC 9421 signature covers of a request, as comms signs it.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The authority in lower case: the `Host` header's value.
    pub authority: &'a str,
    /// The path, as on the request line.
    pub path: &'a str,
    /// The raw query, without its `?` (empty when there is none).
    pub query: &'a str,
    /// The covered header fields in order, `content-digest` first, names in lower case.
    pub fields: &'a [(&'a str, &'a str)],
}

/// The parameters comms gives a signature, in the order it writes them.
#[derive(Clone, Copy, Debug)]
pub struct Params<'a> {
    /// `created`: Unix seconds.
    pub created: u64,
    /// `keyid`: which key signed (by default the caller's service id).
    pub key_id: &'a str,
    /// `nonce`: 32 lowercase hex digits from 16 random bytes.
    pub nonce: &'a str,
}

/// The RFC 9421 signature base comms signs for `message` with `params`.
pub fn signature_base(message: &Message<'_>, params: &Params<'_>) -> String {
    let mut out = Vec::with_capacity(256);
    let inner_list = inner_list(message.fields.iter().map(|(name, _)| *name));
    write_base(
        &mut out,
        message.method.as_bytes(),
        message.authority.as_bytes(),
        message.path.as_bytes(),
        message.query.as_bytes(),
        message
            .fields
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes())),
    );
    write_params(&mut out, &inner_list, params);
    String::from_utf8(out).expect("every piece is UTF-8")
}

/// The `Signature-Input` value comms sends for `message` with `params`.
pub fn signature_input(message: &Message<'_>, params: &Params<'_>) -> String {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(LABEL.as_bytes());
    out.push(b'=');
    let inner_list = inner_list(message.fields.iter().map(|(name, _)| *name));
    write_params_value(&mut out, &inner_list, params);
    String::from_utf8(out).expect("every piece is UTF-8")
}

/// The `Signature` value for a signature base: `comms=:<base64 HMAC-SHA256>:`.
pub fn signature(secret: &Secret, base: &str) -> String {
    let mut mac = secret.mac();
    mac.update(base.as_bytes());
    let mut out = Vec::with_capacity(LABEL.len() + 48);
    write_signature_value(&mut out, &mac.finalize().into_bytes().into());
    String::from_utf8(out).expect("base64 is ASCII")
}

/// `comms=:<base64 of the 32-byte mac>:`, the `Signature` value, written into `sink`.
pub(crate) fn write_signature_value(sink: &mut impl Sink, mac: &[u8; 32]) {
    let mut encoded = [0u8; 44];
    let len = BASE64
        .encode_slice(mac, &mut encoded)
        .expect("32 bytes are 44 base64 characters");
    sink.put(LABEL.as_bytes());
    sink.put(b"=:");
    sink.put(&encoded[..len]);
    sink.put(b":");
}

/// The [`inner_list`] of a call whose headers are all among `Content-Digest` and
/// [`COVERED_WHEN_PRESENT`], as most calls' are (a body's type, a key, a deadline, a trace
/// context): one of the 16 such lists, written once rather than for each call.
pub(crate) fn usual_inner_list(headers: &http::HeaderMap) -> Option<&'static str> {
    static LISTS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        (0..1 << COVERED_WHEN_PRESENT.len())
            .map(|present: usize| {
                let fields = COVERED_WHEN_PRESENT
                    .iter()
                    .enumerate()
                    .filter(|(at, _)| present & (1 << at) != 0)
                    .map(|(_, name)| name.as_str());
                inner_list(std::iter::once(CONTENT_DIGEST_NAME.as_str()).chain(fields))
            })
            .collect()
    });
    let mut present = 0;
    for name in headers.keys() {
        if *name != CONTENT_DIGEST {
            present |= 1
                << COVERED_WHEN_PRESENT
                    .iter()
                    .position(|field| field == name)?;
        }
    }
    Some(&LISTS[present])
}

/// `("@method" "@authority" "@path" "@query" "<field>" ...)`: the covered components as an
/// inner list, the required derived components first.
pub(crate) fn inner_list<'a>(fields: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::with_capacity(96);
    out.push_str(r#"("@method" "@authority" "@path" "@query""#);
    for name in fields {
        out.push_str(" \"");
        out.push_str(name);
        out.push('"');
    }
    out.push(')');
    out
}

/// Where a signature base is written: a MAC, or a buffer.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for HmacSha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for bytes::BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// One `"<name>": <value>` line of a signature base, the value given in pieces.
pub(crate) fn write_line(sink: &mut impl Sink, name: &[u8], value: &[&[u8]]) {
    sink.put(b"\"");
    sink.put(name);
    sink.put(b"\": ");
    for piece in value {
        sink.put(piece);
    }
    sink.put(b"\n");
}

/// One `<identifier>: <value>` line of a signature base whose component identifier is already
/// serialized, quotes and parameters included (`"@query-param";name="id"`).
pub(crate) fn write_identified_line(sink: &mut impl Sink, identifier: &str, value: &[&[u8]]) {
    sink.put(identifier.as_bytes());
    sink.put(b": ");
    for piece in value {
        sink.put(piece);
    }
    sink.put(b"\n");
}

/// The lines of a signature base comms writes for a request, up to `@signature-params`:
/// the four derived components, then each covered field (value trimmed).
pub(crate) fn write_base<'a>(
    sink: &mut impl Sink,
    method: &[u8],
    authority: &[u8],
    path: &[u8],
    query: &[u8],
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) {
    write_line(sink, b"@method", &[method]);
    write_line(sink, b"@authority", &[authority]);
    write_line(sink, b"@path", &[path]);
    write_line(sink, b"@query", &[b"?", query]);
    for (name, value) in fields {
        write_line(sink, name, &[value.trim_ascii()]);
    }
}

/// The last line of a signature base, with no line break after it: `"@signature-params": `
/// and the `Signature-Input` member's value.
pub(crate) fn write_params_line(sink: &mut impl Sink, member: &[u8]) {
    sink.put(b"\"@signature-params\": ");
    sink.put(member);
}

/// The last line of the signature base comms writes.
pub(crate) fn write_params(sink: &mut impl Sink, inner_list: &str, params: &Params<'_>) {
    write_params_line(sink, b"");
    write_params_value(sink, inner_list, params);
}

/// `<inner list>;created=<n>;keyid="<id>";alg="hmac-sha256";nonce="<nonce>"`.
pub(crate) fn write_params_value(sink: &mut impl Sink, inner_list: &str, params: &Params<'_>) {
    sink.put(inner_list.as_bytes());
    sink.put(b";created=");
    sink.put(itoa::Buffer::new().format(params.created).as_bytes());
    sink.put(b";keyid=\"");
    sink.put(params.key_id.as_bytes());
    sink.put(b"\";alg=\"");
    sink.put(ALGORITHM.as_bytes());
    sink.put(b"\";nonce=\"");
    sink.put(params.nonce.as_bytes());
    sink.put(b"\"");
}

/// The legacy string to sign, `<METHOD>|<decoded path>|<timestamp>`, as bytes (a decoded path
/// need not be UTF-8). `wire_path` is the path as sent, without the query.
pub fn legacy_string_to_sign(method: &str, wire_path: &str, timestamp: u64) -> Vec<u8> {
    legacy_string(
        method,
        wire_path.len(),
        percent_decode_str(wire_path),
        timestamp,
    )
}

/// The legacy string to sign over the path as sent, `<METHOD>|<wire path>|<timestamp>`: what
/// the Python client signs when its caller gave it a path encoded already, which it sends as
/// written. A verifier tries it beside [`legacy_string_to_sign`]'s.
pub(crate) fn legacy_string_to_sign_as_sent(
    method: &str,
    wire_path: &str,
    timestamp: u64,
) -> Vec<u8> {
    legacy_string(method, wire_path.len(), wire_path.bytes(), timestamp)
}

/// `<METHOD>|<path>|<timestamp>`, the path's bytes given (at most `path_len` of them).
fn legacy_string(
    method: &str,
    path_len: usize,
    path: impl Iterator<Item = u8>,
    timestamp: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(path_len + 24);
    out.extend(method.bytes().map(|b| b.to_ascii_uppercase()));
    out.push(b'|');
    out.extend(path);
    out.push(b'|');
    out.extend_from_slice(itoa::Buffer::new().format(timestamp).as_bytes());
    out
}

/// Whether `wire_path` holds an encoded `/` (`%2F`, either case): decoded, as the legacy string
/// to sign has it, one segment `a%2Fb` could not be told from the two of `a/b`.
pub(crate) fn holds_encoded_slash(wire_path: &str) -> bool {
    wire_path.contains("%2F") || wire_path.contains("%2f")
}

/// Whether `wire_path` decoded holds an escape of its own (`%25` followed by two hex digits,
/// `%2520`): the legacy string to sign over it could not be told from one over the path as
/// sent by a caller that encoded it (`%20`), a signature for another resource.
pub(crate) fn decodes_to_escape(wire_path: &str) -> bool {
    wire_path.as_bytes().windows(5).any(
        |w| matches!(w, [b'%', b'2', b'5', a, b] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit()),
    )
}

/// `<hex>`: the legacy `X-Signature` value for a string to sign.
pub fn sign_legacy(secret: &Secret, string_to_sign: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(string_to_sign);
    hex::encode(mac.finalize().into_bytes())
}

/// A pre-keyed HMAC: signs and checks without re-deriving the key each time.
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

    /// The MAC over whatever `write` feeds it.
    pub(crate) fn mac(&self, write: impl FnOnce(&mut HmacSha256)) -> [u8; 32] {
        let mut mac = self.mac.clone();
        write(&mut mac);
        mac.finalize().into_bytes().into()
    }

    /// Checks `signature` (raw MAC bytes) over whatever `write` feeds the MAC, in constant time.
    pub(crate) fn verify(&self, write: impl FnOnce(&mut HmacSha256), signature: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        write(&mut mac);
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
mod tests;
