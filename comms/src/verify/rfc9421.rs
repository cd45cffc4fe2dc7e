//! The RFC 9421 check of a request head: the `Signature-Input` and `Signature` Structured
//! Fields (parsed by `sfv`), the signature parameters, the covered components as the request
//! arrived, and the signed `Content-Digest` ([`ExpectedDigest`]) that the body is checked
//! against once it is read. Everything here needs the head only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, Method, Uri};
use sfv::{BareItem, KeyRef, ListEntry};
use sha2::{Digest, Sha256, Sha512};

use super::error::quoted;
use super::{VerifiedHead, Verifier, VerifyError, single};
use crate::signing::{self, Signing};

impl Verifier {
    pub(super) fn verify_rfc9421(
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
        let (label, entry, list, key) = inputs
            .iter()
            .find_map(|(label, entry)| {
                let ListEntry::InnerList(list) = entry else {
                    return None;
                };
                let key_id = list.params.get(KEYID)?.as_string()?.as_str();
                match self.keys.by_id.get(key_id) {
                    Some(key) => Some((label, entry, list, key)),
                    None => {
                        first_seen.get_or_insert_with(|| quoted(key_id));
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
                return Err(VerifyError::UnsupportedAlgorithm(quoted(alg.as_str())));
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
                    let shown = format!("{:?}", item.bare_item);
                    return Err(VerifyError::UnsupportedComponent(quoted(&shown)));
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
        if !self.authorities.is_empty()
            && let Some((_, Component::Text(authority))) =
                components.iter().find(|(name, _)| *name == "@authority")
            && !self.authorities.iter().any(|a| **a == **authority)
        {
            return Err(VerifyError::WrongAuthority(quoted(authority)));
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
        // The member as the signer serialized it, written from the parsed entry in place.
        let mut params_line = String::with_capacity(128);
        sfv::ListSerializer::with_buffer(&mut params_line).members([entry]);
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
            return Err(VerifyError::UnsupportedComponent(quoted(derived)));
        }
        field => {
            if field.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(VerifyError::UnsupportedComponent(quoted(field)));
            }
            let mut values = headers.get_all(field).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => Component::Bytes(value.as_bytes()),
                _ => return Err(VerifyError::CoveredFieldNotOnce(quoted(field))),
            }
        }
    })
}

/// A signed `Content-Digest`: the digests it names that this verifier can compute.
pub(super) struct ExpectedDigest {
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
    pub(super) fn check(&self, body: &[u8]) -> Result<(), VerifyError> {
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
/// The most bytes a `Signature-Input` or `Signature` field may have: room for several
/// signatures from any signer, far from what would make parsing a cost.
const MAX_SIGNATURE_FIELD: usize = 8 * 1024;

fn parse_field(headers: &HeaderMap, name: &HeaderName) -> Result<sfv::Dictionary, VerifyError> {
    let malformed = || VerifyError::MalformedHeader(name.clone());
    let all = headers.get_all(name);
    let mut values = all.iter();
    let first = values
        .next()
        .ok_or_else(|| VerifyError::MissingHeader(name.clone()))?;
    // Refused before it is parsed, so that an unsigned caller cannot make every request cost
    // the parsing of a field of hundreds of kilobytes. comms' own are about 300 bytes.
    let size: usize = all.iter().map(|v| v.len()).sum();
    if size > MAX_SIGNATURE_FIELD {
        return Err(malformed());
    }
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
    use super::super::tests::signed;
    use super::*;

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
}
