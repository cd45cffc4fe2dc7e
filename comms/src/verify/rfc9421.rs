//! The RFC 9421 check of a request head: the `Signature-Input` and `Signature` Structured
//! Fields (parsed by `sfv`), the signature parameters, the covered components as the request
//! arrived, and the signed `Content-Digest` ([`ExpectedDigest`]) that the body is checked
//! against once it is read. Everything here needs the head only.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, Method, Uri};
use sfv::{BareItem, KeyRef, ListEntry};
use sha2::{Digest, Sha256, Sha512};

use super::error::quoted;
use super::{Key, VerifiedHead, Verifier, VerifyError, single};
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

        // The signatures under key ids this verifier knows. A caller adds a few, not as many
        // as it likes: a key signs once, and each is checked.
        let known = self.known_signatures(&inputs);
        if known.len() > MAX_OTHER_SIGNATURES + 1 {
            return Err(VerifyError::MalformedSignature(
                "more than 4 other signatures are by keys this verifier knows",
            ));
        }
        let Some((first, checked)) =
            self.check_first(&known, &signatures, (method, uri, headers), now)
        else {
            return Err(VerifyError::UnknownKey(first_key_id(&inputs).map(quoted)));
        };
        let (label, _, _, key) = known[first];
        let mut head = checked?;

        // The other signatures by known keys. Which one is checked is the sender's choice
        // (their order is signed by none), so each in the profile must pass as the first did,
        // and its nonce is recorded too: or the same request, its signatures swapped or the
        // first dropped, would pass once for each. One in the profile that fails refuses the
        // request: whether it passes may hang on what no signature pins (the scheme of an
        // absolute-form request line, the request target's form, the clock of another replica
        // sharing the nonce store), and sent alone it could pass there, its nonce never
        // recorded. One outside the profile by its own parameters or coverage (another
        // application's: no nonce, fewer components) passes nowhere here, and is left alone.
        // A few are checked, not as many as a caller adds, and a key signs once: a caller's
        // signatures must not multiply the nonces it leaves in the store.
        let others: Vec<_> = known
            .iter()
            .filter(|(other, ..)| *other != label)
            .copied()
            .collect();
        for (at, other) in others.iter().enumerate() {
            let signed_before = |k: &Arc<Key>| Arc::ptr_eq(k, other.3);
            if signed_before(key) || others[..at].iter().any(|o| signed_before(o.3)) {
                return Err(VerifyError::MalformedSignature(
                    "two signatures are by one key",
                ));
            }
        }
        for other in others {
            // One that could pass later, once the clock reaches its `created`, could then be
            // sent alone, its nonce never recorded: the request is refused, as a first
            // signature that far ahead is.
            if let Ok(Some(created)) = integer_param(&other.2.params, CREATED)
                && created > now.saturating_add(self.max_skew.as_secs())
            {
                return Err(VerifyError::FutureTimestamp(Duration::from_secs(
                    created - now,
                )));
            }
            // Checked as for a request without a body, which the first signature's digest
            // already binds: whether it passes must not hang on the `Content-Length` a replay
            // sets. One not covering `content-digest` would pass for this head sent again
            // with no body, and its nonce must be recorded now.
            let verified =
                match self.verify_entry(other, &signatures, (method, uri, headers), false, now) {
                    Ok(verified) => verified,
                    // Outside the profile by its own parameters or coverage: it passes nowhere
                    // here, whatever the form or the clock.
                    Err(e) if outside_profile(&e) => continue,
                    Err(e) => return Err(e),
                };
            let VerifiedHead {
                key,
                nonce: Some((nonce, keep_until)),
                ..
            } = verified
            else {
                continue;
            };
            // One nonce is recorded once, for as long as any of its signatures could pass.
            let same = |k: &Key, n: &str| k.service_id == key.service_id && n == nonce;
            if let Some((n, until)) = &mut head.nonce
                && same(&head.key, n)
            {
                *until = (*until).max(keep_until);
            } else if let Some((_, _, until)) = head.others.iter_mut().find(|(k, n, _)| same(k, n))
            {
                *until = (*until).max(keep_until);
            } else {
                head.others.push((key, nonce, keep_until));
            }
        }
        Ok(head)
    }

    /// The `Signature-Input` members under key ids this verifier knows, in order, with their
    /// inner lists and keys.
    fn known_signatures<'i>(&self, inputs: &'i sfv::Dictionary) -> Vec<Known<'i, '_>> {
        inputs
            .iter()
            .filter_map(|(label, entry)| {
                let (list, key) = self.known_key(entry)?;
                Some((label, entry, list, key))
            })
            .collect()
    }

    /// The signature of `known` checked first, by its place, and what its check gave: the
    /// first in the profile. One before it outside the profile by its own parameters or
    /// coverage (another application's, put first) is passed over, as it is after it: which
    /// comes first is the sender's choice. One failing otherwise is the one checked (its
    /// error refuses the request); with none in the profile, the first, with its error.
    /// `None` when there is none.
    fn check_first(
        &self,
        known: &[Known<'_, '_>],
        signatures: &sfv::Dictionary,
        request: (&Method, &Uri, &HeaderMap),
        now: u64,
    ) -> Option<(usize, Result<VerifiedHead<'_>, VerifyError>)> {
        let body = declares_body(request.2);
        let mut passed_over = None;
        for (at, candidate) in known.iter().enumerate() {
            match self.verify_entry(*candidate, signatures, request, body, now) {
                Err(e) if outside_profile(&e) => {
                    passed_over.get_or_insert((at, Err(e)));
                }
                checked => return Some((at, checked)),
            }
        }
        passed_over
    }

    /// The inner list of a `Signature-Input` member and its key, when this verifier knows it.
    fn known_key<'e>(&self, entry: &'e ListEntry) -> Option<(&'e sfv::InnerList, &Arc<Key>)> {
        let (list, key_id) = key_id_of(entry)?;
        Some((list, self.keys.by_id.get(key_id)?))
    }

    /// The key a request claims to be signed with, for the log of its refusal: the key id of the
    /// signature [`verify_rfc9421`](Verifier::verify_rfc9421) checks first (of those under key
    /// ids this verifier knows, the first in the profile, see `check_first`; with none known,
    /// the first), or a legacy request's service id; quoted as caller text is. `None` when the
    /// request names none a parser reads.
    pub(super) fn claimed_key(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Option<String> {
        let Ok(inputs) = parse_field(headers, &signing::SIGNATURE_INPUT) else {
            let legacy = headers.get(&signing::SERVICE_ID_HEADER)?;
            return Some(quoted(legacy.to_str().ok()?));
        };
        let known = self.known_signatures(&inputs);
        // Which one was checked hangs on its check only when one of them comes before another.
        let first = match parse_field(headers, &signing::SIGNATURE) {
            Ok(signatures) if known.len() > 1 => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.check_first(&known, &signatures, (method, uri, headers), now)
                    .map_or(0, |(at, _)| at)
            }
            _ => 0,
        };
        let claimed = match known.get(first) {
            Some((_, _, _, key)) => &*key.key_id,
            None => first_key_id(&inputs)?,
        };
        Some(quoted(claimed))
    }

    /// Until when a nonce signed `created` must be remembered: the skew check compares whole
    /// seconds, so `created` passes until the clock reaches `created + max_skew + 1 s`.
    fn keep_until(&self, created: u64) -> SystemTime {
        unix_time(
            Duration::from_secs(created)
                .saturating_add(self.max_skew)
                .saturating_add(Duration::from_secs(1)),
        )
    }

    /// Checks the signature `label` (its `Signature-Input` member `entry`, its inner `list`,
    /// by `key`) over the request: its parameters, its covered components and its value in
    /// `signatures`. With `body`, the request declares a body, which it must cover by its
    /// `content-digest`.
    fn verify_entry(
        &self,
        (label, entry, list, key): (&sfv::Key, &ListEntry, &sfv::InnerList, &Arc<Key>),
        signatures: &sfv::Dictionary,
        (method, uri, headers): (&Method, &Uri, &HeaderMap),
        body: bool,
        now: u64,
    ) -> Result<VerifiedHead<'_>, VerifyError> {
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
        // Their values are found before the signature is checked, so an unsigned caller picks
        // how many: no more than a signer needs, and what they parse is parsed once.
        if list.items.len() > MAX_COMPONENTS {
            return Err(VerifyError::MalformedSignature(
                "a signature covers more than 64 components",
            ));
        }
        let mut components: Vec<Covered<'_>> = Vec::with_capacity(list.items.len());
        let mut parsed = Parsed::default();
        for item in &list.items {
            let covered = self.covered(item, method, uri, headers, &mut parsed)?;
            if components.iter().any(|seen| seen.is(&covered)) {
                return Err(VerifyError::MalformedSignature(
                    "a component is covered twice",
                ));
            }
            components.push(covered);
        }
        let plain = |name: &str| {
            components
                .iter()
                .find(|c| c.name == name && c.identifier.is_none())
        };
        for required in REQUIRED {
            if plain(required).is_none() {
                return Err(VerifyError::NotCovered(required));
            }
        }
        let scheme = request_scheme(self.scheme.as_deref(), uri);
        if !self.authorities.is_empty()
            && let Some(Covered {
                value: Component::Text(authority),
                ..
            }) = plain("@authority")
            && !self
                .authorities
                .iter()
                .any(|a| accepted_as(a, scheme).any(|a| a == &**authority))
        {
            return Err(VerifyError::WrongAuthority(quoted(authority)));
        }
        // The whole field must be covered, not one member of it (`key`), or a digest the
        // verifier does not compute could be the only one signed.
        let covers_digest = components
            .iter()
            .any(|c| c.name == "content-digest" && !c.is_member());
        if !covers_digest && body {
            return Err(VerifyError::NotCovered("content-digest"));
        }
        let covers_field = |name: &str| components.iter().any(|c| c.name == name && !c.is_member());
        let covers_deadline = covers_field("comms-deadline-ms");
        let covers_trace = crate::telemetry::trace_fields_covered(headers, covers_field);
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
                for covered in &components {
                    covered.write(mac);
                }
                signing::write_params_line(mac, params_line.as_bytes());
            },
            signature,
        );
        if !ok {
            return Err(VerifyError::BadSignature);
        }
        let keep_until = self.keep_until(created);
        Ok(VerifiedHead {
            verifier: self,
            key: key.clone(),
            signing: Signing::Rfc9421,
            nonce: Some((nonce.to_owned(), keep_until)),
            others: Vec::new(),
            digest,
            count_use: true,
            recorded_in_front: false,
            covers_deadline,
            covers_trace,
            covered: Some(covered_fields(&components).into()),
            turn: None,
        })
    }
}

/// The inner list of a `Signature-Input` member, and the key id it names.
fn key_id_of(entry: &ListEntry) -> Option<(&sfv::InnerList, &str)> {
    let ListEntry::InnerList(list) = entry else {
        return None;
    };
    Some((list, list.params.get(KEYID)?.as_string()?.as_str()))
}

/// A `Signature-Input` member under a key id a verifier knows: its label, the member, its
/// inner list and the key.
type Known<'i, 'v> = (
    &'i sfv::Key,
    &'i ListEntry,
    &'i sfv::InnerList,
    &'v Arc<Key>,
);

/// Whether a signature failed by its own parameters or coverage (another application's: no
/// nonce, fewer components, another algorithm), which no form of the request or clock could
/// make pass here: such a signature is left alone rather than refusing the request.
fn outside_profile(error: &VerifyError) -> bool {
    matches!(
        error,
        VerifyError::MalformedSignature(_)
            | VerifyError::MalformedNonce
            | VerifyError::NotCovered(_)
            | VerifyError::UnsupportedAlgorithm(_)
            | VerifyError::UnsupportedComponent(_)
            | VerifyError::WrongAuthority(_)
    )
}

/// The key id of the first `Signature-Input` member that names one.
fn first_key_id(inputs: &sfv::Dictionary) -> Option<&str> {
    inputs.values().find_map(|entry| Some(key_id_of(entry)?.1))
}

/// The names of the header fields `components` covers whole, each followed by a space.
fn covered_fields(components: &[Covered<'_>]) -> String {
    let mut fields = String::with_capacity(128);
    for covered in components {
        if !covered.name.starts_with('@') && !covered.is_member() {
            fields.push_str(covered.name);
            fields.push(' ');
        }
    }
    fields
}

/// The most signatures by known keys a request's checked one may have beside it.
const MAX_OTHER_SIGNATURES: usize = 4;

const KEYID: &KeyRef = KeyRef::constant("keyid");
const CREATED: &KeyRef = KeyRef::constant("created");
const EXPIRES: &KeyRef = KeyRef::constant("expires");
const ALG: &KeyRef = KeyRef::constant("alg");
const NONCE: &KeyRef = KeyRef::constant("nonce");

/// The most components a signature may cover: comms' own cover the five the profile requires
/// and the headers a call sets, other signers' fewer.
const MAX_COMPONENTS: usize = 64;

/// The derived components every signature must cover.
const REQUIRED: [&str; 4] = ["@method", "@authority", "@path", "@query"];

/// One covered component: its name, its identifier when it has parameters, and its value in
/// the request as it arrived.
struct Covered<'a> {
    /// `@method`, `content-type`: the identifier's string.
    name: &'a str,
    /// The whole identifier as the signature base writes it, `"@query-param";name="id"`, for
    /// one with parameters; `None` for a bare name, written as `"<name>"`.
    identifier: Option<String>,
    /// What of the request the parameters pick, whatever their order or encoding: a
    /// `@query-param`'s decoded name, a field's `bs`, or the dictionary member it names.
    /// `None` for a bare name.
    picks: Option<Picks<'a>>,
    value: Component<'a>,
}

/// What a component's parameters pick of the request (see [`Covered::picks`]).
#[derive(PartialEq)]
enum Picks<'a> {
    QueryParam(Cow<'a, str>),
    ByteSequence,
    Member(&'a str),
}

impl Covered<'_> {
    /// Whether `other` names the same component: the same name, and parameters picking the
    /// same part of the request. Two identifiers written differently for one query parameter
    /// (`name="a"` and `name="%61"`) or one member (`;key="a";sf` and `;sf;key="a"`) are one
    /// component: each would have its value found, encoded and hashed again, as many times
    /// as a caller with no secret chose to name it.
    fn is(&self, other: &Covered<'_>) -> bool {
        self.name == other.name && self.picks == other.picks
    }

    /// Whether this is one member of a Dictionary field (`;key`) rather than the whole field.
    fn is_member(&self) -> bool {
        matches!(self.value, Component::Member(_))
    }

    /// Writes the component's line of the signature base.
    fn write(&self, sink: &mut impl signing::Sink) {
        let pieces = self.value.pieces();
        match &self.identifier {
            None => signing::write_line(sink, self.name.as_bytes(), &pieces),
            Some(identifier) => signing::write_identified_line(sink, identifier, &pieces),
        }
    }
}

/// The value of one covered component, in pieces.
enum Component<'a> {
    Text(Cow<'a, str>),
    /// A field's value as it arrived, trimmed when written.
    Bytes(&'a [u8]),
    Query(&'a str),
    /// One member of a Dictionary field, serialized.
    Member(String),
}

impl Component<'_> {
    fn pieces(&self) -> [&[u8]; 2] {
        match self {
            Component::Text(text) => [text.as_bytes(), b""],
            Component::Bytes(bytes) => [bytes.trim_ascii(), b""],
            Component::Query(query) => [b"?", query.as_bytes()],
            Component::Member(member) => [member.as_bytes(), b""],
        }
    }
}

impl Verifier {
    /// The component `item` names, with its value in the request as it arrived.
    fn covered<'a>(
        &self,
        item: &'a sfv::Item,
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        parsed: &mut Parsed<'a>,
    ) -> Result<Covered<'a>, VerifyError> {
        let Some(name) = item.bare_item.as_string().map(|name| name.as_str()) else {
            let shown = format!("{:?}", item.bare_item);
            return Err(VerifyError::UnsupportedComponent(quoted(&shown)));
        };
        let identifier = (!item.params.is_empty()).then(|| {
            sfv::ItemSerializer::new()
                .bare_item(&item.bare_item)
                .parameters(&item.params)
                .finish()
        });
        let shown = || quoted(identifier.as_deref().unwrap_or(name));
        let unsupported = || Err(VerifyError::UnsupportedComponent(shown()));
        let param = |key: &str| item.params.get(KeyRef::constant(key));
        let mut picks = None;
        let value = if name.starts_with('@') {
            if name == "@query-param" {
                // Exactly one parameter, `name`, a string, percent-encoded UTF-8.
                let Some(BareItem::String(wanted)) = param("name") else {
                    return unsupported();
                };
                if item.params.len() != 1 {
                    return unsupported();
                }
                let Ok(wanted) =
                    percent_encoding::percent_decode_str(wanted.as_str()).decode_utf8()
                else {
                    return unsupported();
                };
                let pairs = parsed
                    .query
                    .get_or_insert_with(|| query_pairs(uri.query().unwrap_or("")));
                let value = query_param(pairs, &wanted)
                    .ok_or_else(|| VerifyError::CoveredFieldNotOnce(shown()))?;
                picks = Some(Picks::QueryParam(wanted));
                Component::Text(Cow::Owned(value))
            } else if identifier.is_some() {
                // `req` is for responses; no other derived component takes parameters.
                return unsupported();
            } else {
                match derived(name, self.scheme.as_deref(), method, uri, headers)? {
                    Some(value) => value,
                    None => return unsupported(),
                }
            }
        } else {
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                return unsupported();
            }
            let mut values = headers.get_all(name).iter();
            let value = match (values.next(), values.next()) {
                (Some(value), None) => value.as_bytes(),
                _ => return Err(VerifyError::CoveredFieldNotOnce(shown())),
            };
            let keys: Vec<&str> = item.params.keys().map(|k| k.as_str()).collect();
            match keys.as_slice() {
                [] => Component::Bytes(value),
                // RFC 9421 §2.1.3: the field line, trimmed, as a Byte Sequence.
                ["bs"] if param("bs") == Some(&BareItem::Boolean(true)) => {
                    picks = Some(Picks::ByteSequence);
                    Component::Text(Cow::Owned(
                        sfv::ItemSerializer::new()
                            .bare_item(sfv::RefBareItem::ByteSequence(value.trim_ascii()))
                            .finish(),
                    ))
                }
                // RFC 9421 §2.1.2: one member of a Dictionary field, serialized (`sf` beside
                // `key` changes nothing).
                ["key"] | ["key", "sf"] | ["sf", "key"]
                    if item
                        .params
                        .get(KeyRef::constant("sf"))
                        .is_none_or(|sf| *sf == BareItem::Boolean(true)) =>
                {
                    let Some(BareItem::String(key)) = param("key") else {
                        return unsupported();
                    };
                    picks = Some(Picks::Member(key.as_str()));
                    let dictionary = parsed.dictionary(name, value);
                    Component::Member(
                        dictionary
                            .and_then(|d| dictionary_member(d, key.as_str()))
                            .ok_or_else(|| VerifyError::CoveredFieldNotOnce(shown()))?,
                    )
                }
                // `sf` alone needs the field's Structured Field type, which only a registry of
                // fields knows; `tr` names a trailer, `req` a request field in a response.
                _ => return unsupported(),
            }
        };
        Ok(Covered {
            name,
            identifier,
            picks,
            value,
        })
    }
}

/// The value of the derived component `name` without parameters, or `None` for one this
/// verifier does not know.
fn derived<'a>(
    name: &str,
    scheme: Option<&str>,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<Option<Component<'a>>, VerifyError> {
    Ok(Some(match name {
        "@method" => Component::Text(Cow::Borrowed(method.as_str())),
        "@authority" => Component::Text(authority(uri, headers, scheme)?),
        "@path" => Component::Text(Cow::Borrowed(path(uri))),
        "@query" => Component::Query(uri.query().unwrap_or("")),
        "@request-target" => Component::Text(Cow::Borrowed(request_target(method, uri))),
        "@scheme" => Component::Text(Cow::Owned(self_scheme(scheme, uri)?)),
        // RFC 9421 §2.2.2: the target URI, rebuilt from what the request line, the `Host`
        // header and the verifier know, as RFC 9110 §7.1 rebuilds it (the authority as it
        // arrived: only `@authority` is normalised to lower case).
        "@target-uri" => {
            let scheme = self_scheme(scheme, uri)?;
            let authority = raw_authority(uri, headers)?;
            let query = uri.query();
            let path = path(uri);
            let mut target = String::with_capacity(
                scheme.len() + 3 + authority.len() + path.len() + query.map_or(0, |q| q.len() + 1),
            );
            target.push_str(&scheme);
            target.push_str("://");
            target.push_str(authority);
            target.push_str(path);
            if let Some(query) = query {
                target.push('?');
                target.push_str(query);
            }
            Component::Text(Cow::Owned(target))
        }
        _ => return Ok(None),
    }))
}

/// The request's authority as it arrived: the URI's when it has one (HTTP/2, or an absolute-form
/// request line), else the `Host` header. With both, they must agree (in any case): handlers
/// read `Host`, which the signature would not otherwise cover.
fn raw_authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Result<&'a str, VerifyError> {
    let Some(authority) = uri.authority() else {
        return single(headers, &http::header::HOST);
    };
    if headers.contains_key(http::header::HOST)
        && !single(headers, &http::header::HOST)?.eq_ignore_ascii_case(authority.as_str())
    {
        return Err(VerifyError::MalformedHeader(http::header::HOST));
    }
    Ok(authority.as_str())
}

/// `@authority`: the request's authority ([`raw_authority`]) as RFC 9421 §2.2.3 normalises it
/// (RFC 9110 §4.2.3): in lower case, without the default port of the scheme (`configured`, or
/// the request URI's own), when that is known.
fn authority<'a>(
    uri: &'a Uri,
    headers: &'a HeaderMap,
    configured: Option<&str>,
) -> Result<Cow<'a, str>, VerifyError> {
    let authority = raw_authority(uri, headers)?;
    let authority = without_default_port(authority, request_scheme(configured, uri));
    Ok(if authority.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(authority.to_ascii_lowercase())
    } else {
        Cow::Borrowed(authority)
    })
}

/// The forms of an authority given to [`Verifier::authority`] that a signature's
/// `@authority` may take: without a default port under a known scheme; with the scheme
/// unknown (an HTTP/1.1 request, no [`Verifier::scheme`]), as written and without `:80` or
/// `:443`, which callers leave out of their base URLs' `http://host` and `https://host`.
fn accepted_as<'a>(configured: &'a str, scheme: Option<&str>) -> impl Iterator<Item = &'a str> {
    let forms = match scheme {
        Some(_) => [without_default_port(configured, scheme); 3],
        None => [
            configured,
            without_default_port(configured, Some("http")),
            without_default_port(configured, Some("https")),
        ],
    };
    forms.into_iter()
}

/// `authority` without its port where RFC 3986 §6.2.3 omits it: when it is empty (`host:`),
/// or is the scheme's default (80 under `http`, 443 under `https`, however many zeros lead it).
fn without_default_port<'a>(authority: &'a str, scheme: Option<&str>) -> &'a str {
    // The port follows the last `:`, but not one inside an IPv6 literal's brackets.
    let Some((host, port)) = authority
        .rsplit_once(':')
        .filter(|(_, port)| !port.contains(']'))
    else {
        return authority;
    };
    let default = match scheme {
        _ if port.is_empty() => return host,
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => 80,
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => 443,
        _ => return authority,
    };
    let digits = port.bytes().all(|b| b.is_ascii_digit());
    if digits && port.trim_start_matches('0').parse::<u16>() == Ok(default) {
        host
    } else {
        authority
    }
}

/// `@request-target`: the path and query of the request line (RFC 9421 §2.2.5), or for a
/// `CONNECT` the authority it names.
fn request_target<'a>(method: &Method, uri: &'a Uri) -> &'a str {
    match (uri.path_and_query(), uri.authority()) {
        (None, Some(authority)) if method == Method::CONNECT => authority.as_str(),
        (target, _) => target.map_or(uri.path(), |target| target.as_str()),
    }
}

/// `@path`: the request's path, `/` for an empty one.
fn path(uri: &Uri) -> &str {
    match uri.path() {
        "" => "/",
        path => path,
    }
}

/// The scheme the request came by: the verifier's [`Verifier::scheme`], else the request URI's
/// own (HTTP/2's, or an absolute-form request line's: the client's word for it).
fn request_scheme<'a>(configured: Option<&'a str>, uri: &'a Uri) -> Option<&'a str> {
    configured.or_else(|| uri.scheme_str())
}

/// [`request_scheme`] in lower case, which `@scheme` and `@target-uri` need.
fn self_scheme(configured: Option<&str>, uri: &Uri) -> Result<String, VerifyError> {
    request_scheme(configured, uri)
        .map(str::to_ascii_lowercase)
        .ok_or(VerifyError::UnknownScheme)
}

/// What covered components parse from the request, once for all of them.
#[derive(Default)]
struct Parsed<'a> {
    /// The query's pairs (see [`query_pairs`]), once an `@query-param` is covered.
    query: Option<HashMap<Cow<'a, str>, Option<Cow<'a, str>>>>,
    /// Each field a member of which is covered, as a Dictionary (`None`: it is not one).
    dictionaries: Vec<(&'a str, Option<sfv::Dictionary>)>,
}

impl<'a> Parsed<'a> {
    /// The field `name`, whose value is `value`, as a Dictionary.
    fn dictionary(&mut self, name: &'a str, value: &[u8]) -> Option<&sfv::Dictionary> {
        let at = match self.dictionaries.iter().position(|(seen, _)| *seen == name) {
            Some(at) => at,
            None => {
                let dictionary = sfv::Parser::new(value).parse().ok();
                self.dictionaries.push((name, dictionary));
                self.dictionaries.len() - 1
            }
        };
        self.dictionaries[at].1.as_ref()
    }
}

/// The query parsed as `application/x-www-form-urlencoded`: each decoded name with its one
/// decoded value, or `None` for a name that occurs more than once.
fn query_pairs(query: &str) -> HashMap<Cow<'_, str>, Option<Cow<'_, str>>> {
    let mut pairs = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        pairs
            .entry(name)
            .and_modify(|seen: &mut Option<Cow<'_, str>>| *seen = None)
            .or_insert(Some(value));
    }
    pairs
}

/// What `@query-param;name=..` covers (RFC 9421 §2.2.8), of the query's `pairs`, for the
/// `name` decoded as `wanted`: the parameter's one value, decoded, then percent-encoded again
/// with the `application/x-www-form-urlencoded` set (a space as `%20`). `None` when the
/// parameter is absent or occurs more than once, which the RFC leaves unsignable.
fn query_param(
    pairs: &HashMap<Cow<'_, str>, Option<Cow<'_, str>>>,
    wanted: &str,
) -> Option<String> {
    let value = pairs.get(wanted)?.as_ref()?;
    Some(percent_encoding::utf8_percent_encode(value, FORM_VALUE).to_string())
}

/// The `application/x-www-form-urlencoded` percent-encode set: every byte but ASCII letters,
/// digits and `* - . _`.
const FORM_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// The member `key` of `dictionary`, serialized with its parameters; `None` when it has no
/// such member.
fn dictionary_member(dictionary: &sfv::Dictionary, key: &str) -> Option<String> {
    let member = dictionary.get(KeyRef::from_str(key).ok()?)?;
    let mut serializer = sfv::ListSerializer::new();
    serializer.members([member]);
    serializer.finish()
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

/// Whether the head announces a body that is not empty: a non-zero `Content-Length`. (A body
/// of unannounced length, chunked or HTTP/2's, may be empty: it is checked once read, by
/// `VerifiedHead::verify_body`.)
fn declares_body(headers: &HeaderMap) -> bool {
    headers
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
    fn the_key_claimed_is_the_one_checked_first() {
        let v = Verifier::new().service("known", "k");
        let claimed = |input: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                signing::SIGNATURE_INPUT,
                http::HeaderValue::from_str(input).unwrap(),
            );
            v.claimed_key(&Method::GET, &Uri::from_static("/"), &h)
        };
        let params = ";created=1;nonce=\"0123456789abcdef\";alg=\"hmac-sha256\"";
        assert_eq!(
            claimed(&format!(
                "a=();keyid=\"other\"{params}, b=();keyid=\"known\"{params}"
            )),
            Some("known".to_owned())
        );
        assert_eq!(
            claimed(&format!("a=();keyid=\"other\"{params}")),
            Some("other".to_owned())
        );
        assert_eq!(
            claimed(&format!("a=();keyid=\"{}\"", "x".repeat(100))),
            Some("x".repeat(64))
        );
        assert_eq!(claimed("a=()"), None);
        assert_eq!(claimed("not a dictionary"), None);

        let mut legacy = HeaderMap::new();
        legacy.insert(signing::SERVICE_ID_HEADER, "billing".parse().unwrap());
        assert_eq!(
            v.claimed_key(&Method::GET, &Uri::from_static("/"), &legacy),
            Some("billing".to_owned())
        );
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

    /// `headers` with a `Signature-Input` and a `Signature` under key `svc` (secret `k`) over
    /// `lines`, each an identifier as written in the base and its value, written out by hand.
    fn signed_over(mut headers: HeaderMap, lines: &[(&str, &str)]) -> HeaderMap {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ids: Vec<&str> = lines.iter().map(|(id, _)| *id).collect();
        let member = format!(
            r#"({});created={now};keyid="svc";nonce="{}""#,
            ids.join(" "),
            "n".repeat(32)
        );
        let mut base = String::new();
        for (id, value) in lines {
            base.push_str(&format!("{id}: {value}\n"));
        }
        base.push_str(&format!("\"@signature-params\": {member}"));
        let signature = signing::signature(&signing::Secret::from("k"), &base);
        for (name, value) in [
            (signing::SIGNATURE_INPUT, format!("comms={member}")),
            (signing::SIGNATURE, signature),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        headers
    }

    fn host(host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, host.parse().unwrap());
        headers
    }

    const PROFILE: [(&str, &str); 4] = [
        (r#""@method""#, "GET"),
        (r#""@authority""#, "h:8080"),
        (r#""@path""#, "/x/y"),
        (r#""@query""#, "?b=x+y&a=1"),
    ];

    fn head(v: &Verifier, uri: &str, headers: &HeaderMap) -> Result<(), VerifyError> {
        let uri: Uri = uri.parse().unwrap();
        v.verify_head(&Method::GET, &uri, headers).map(drop)
    }

    #[test]
    fn derived_components_other_signers_cover_are_checked() {
        let mut lines = PROFILE.to_vec();
        lines.extend([
            // The authority as it arrived: only `@authority` is in lower case.
            (r#""@target-uri""#, "https://H:8080/x/y?b=x+y&a=1"),
            (r#""@scheme""#, "https"),
            (r#""@request-target""#, "/x/y?b=x+y&a=1"),
            (r#""@query-param";name="b""#, "x%20y"),
            (r#""@query-param";name="a""#, "1"),
        ]);
        let headers = signed_over(host("H:8080"), &lines);
        let v = Verifier::new().service("svc", "k");
        // An HTTP/1.1 request line carries no scheme: the verifier must be told it.
        assert!(matches!(
            head(&v, "/x/y?b=x+y&a=1", &headers),
            Err(VerifyError::UnknownScheme)
        ));
        head(&v.clone().scheme("HTTPS"), "/x/y?b=x+y&a=1", &headers).unwrap();
        assert!(matches!(
            head(&v.clone().scheme("http"), "/x/y?b=x+y&a=1", &headers),
            Err(VerifyError::BadSignature)
        ));
        // An absolute URI (HTTP/2, or an absolute-form request line) carries its own scheme
        // and authority, and its authority is the one signed for, whatever `Host` says.
        head(&v, "https://H:8080/x/y?b=x+y&a=1", &headers).unwrap();
        // Another authority than `Host`'s, which handlers read: refused.
        assert!(matches!(
            head(&v, "https://elsewhere:8080/x/y?b=x+y&a=1", &headers),
            Err(VerifyError::MalformedHeader(h)) if h == http::header::HOST
        ));
        // Another authority, with `Host` agreeing: not the one signed for.
        let mut elsewhere = headers.clone();
        elsewhere.insert(http::header::HOST, "elsewhere:8080".parse().unwrap());
        assert!(matches!(
            head(&v, "https://elsewhere:8080/x/y?b=x+y&a=1", &elsewhere),
            Err(VerifyError::BadSignature)
        ));
        // The covered query parameter changed: the signature no longer matches.
        assert!(matches!(
            head(&v.clone().scheme("https"), "/x/y?b=x+z&a=1", &headers),
            Err(VerifyError::BadSignature)
        ));
    }

    #[test]
    fn field_parameters_other_signers_use_are_checked() {
        let mut headers = host("h:8080");
        headers.insert("x-dict", "a=1, b=2;x=?1, c=(x y)".parse().unwrap());
        headers.insert("x-id", "  abc ".parse().unwrap());
        let mut lines = PROFILE.to_vec();
        lines.extend([
            (r#""x-dict";key="b""#, "2;x"),
            (r#""x-dict";key="c""#, "(x y)"),
            (r#""x-id";bs"#, ":YWJj:"),
        ]);
        let headers = signed_over(headers, &lines);
        let v = Verifier::new().service("svc", "k");
        head(&v, "/x/y?b=x+y&a=1", &headers).unwrap();
        // A member that is not covered may change; one that is may not.
        let mut other = headers.clone();
        other.insert("x-dict", "a=9, b=2;x=?1, c=(x y)".parse().unwrap());
        head(&v, "/x/y?b=x+y&a=1", &other).unwrap();
        let mut covered = headers;
        covered.insert("x-dict", "a=1, b=3;x=?1, c=(x y)".parse().unwrap());
        assert!(matches!(
            head(&v, "/x/y?b=x+y&a=1", &covered),
            Err(VerifyError::BadSignature)
        ));
    }

    #[test]
    fn components_that_cannot_be_checked_are_refused() {
        let v = Verifier::new().service("svc", "k");
        let mut base = host("h:8080");
        base.insert("x-dict", "a=1".parse().unwrap());
        base.insert("content-type", "text/plain".parse().unwrap());
        let refusal = |extra: &[(&str, &str)], uri: &str| {
            let mut lines = PROFILE.to_vec();
            lines.extend_from_slice(extra);
            head(&v, uri, &signed_over(base.clone(), &lines)).unwrap_err()
        };
        let uri = "/x/y?b=x+y&a=1";
        for unsupported in [
            r#""content-type";sf"#,
            r#""content-type";tr"#,
            r#""@method";req"#,
            r#""@query-param""#,
            r#""@query-param";name="a";x"#,
            r#""x-dict";key=1"#,
            r#""@status""#,
            r#""@signature-params""#,
        ] {
            let err = refusal(&[(unsupported, "v")], uri);
            assert!(
                matches!(&err, VerifyError::UnsupportedComponent(c) if c == unsupported.trim_matches('"')
                    || c == unsupported),
                "{unsupported}: {err:?}"
            );
        }
        for (absent, uri) in [
            (r#""@query-param";name="c""#, uri),
            (r#""@query-param";name="a""#, "/x/y?a=1&a=2"),
            (r#""x-dict";key="z""#, uri),
            (r#""x-absent";key="a""#, uri),
        ] {
            let err = refusal(&[(absent, "v")], uri);
            assert!(
                matches!(&err, VerifyError::CoveredFieldNotOnce(c) if c == absent
                    || c == absent.split(';').next().unwrap().trim_matches('"')),
                "{absent}: {err:?}"
            );
        }
        assert!(matches!(
            refusal(
                &[(r#""x-dict";key="a""#, "1"), (r#""x-dict";key="a""#, "1")],
                uri
            ),
            VerifyError::MalformedSignature(_)
        ));
    }

    #[test]
    fn a_member_of_content_digest_does_not_cover_the_body() {
        let v = Verifier::new().service("svc", "k");
        let mut headers = host("h:8080");
        headers.insert(
            signing::CONTENT_DIGEST,
            signing::EMPTY_CONTENT_DIGEST.parse().unwrap(),
        );
        headers.insert(http::header::CONTENT_LENGTH, "5".parse().unwrap());
        let mut lines = PROFILE.to_vec();
        let member = signing::EMPTY_CONTENT_DIGEST
            .strip_prefix("sha-256=")
            .unwrap();
        lines.push((r#""content-digest";key="sha-256""#, member));
        let headers = signed_over(headers, &lines);
        assert!(matches!(
            head(&v, "/x/y?b=x+y&a=1", &headers),
            Err(VerifyError::NotCovered("content-digest"))
        ));
    }

    #[test]
    fn an_empty_or_default_port_is_left_out_of_the_authority() {
        for (authority, scheme, normalised) in [
            ("users.internal:", None, "users.internal"),
            ("users.internal:", Some("https"), "users.internal"),
            ("users.internal:80", Some("http"), "users.internal"),
            ("users.internal:080", Some("HTTP"), "users.internal"),
            ("users.internal:443", Some("https"), "users.internal"),
            ("[::1]:0443", Some("https"), "[::1]"),
            ("[::1]:", None, "[::1]"),
            // Kept: a port that is not the scheme's default, or a scheme not known.
            ("users.internal:80", None, "users.internal:80"),
            ("users.internal:443", Some("http"), "users.internal:443"),
            ("users.internal:8080", Some("http"), "users.internal:8080"),
            ("users.internal:0", Some("http"), "users.internal:0"),
            ("users.internal:+80", Some("http"), "users.internal:+80"),
            ("[::1]", Some("http"), "[::1]"),
            ("[::80]", Some("http"), "[::80]"),
            ("users.internal", Some("http"), "users.internal"),
        ] {
            assert_eq!(
                without_default_port(authority, scheme),
                normalised,
                "{authority} under {scheme:?}"
            );
        }
    }

    #[test]
    fn a_connects_request_target_is_its_authority() {
        let uri: Uri = "h:443".parse().unwrap();
        assert_eq!(request_target(&Method::CONNECT, &uri), "h:443");
        let uri: Uri = "*".parse().unwrap();
        assert_eq!(request_target(&Method::OPTIONS, &uri), "*");
        let uri: Uri = "/x?y".parse().unwrap();
        assert_eq!(request_target(&Method::GET, &uri), "/x?y");
    }

    #[test]
    fn a_signature_covering_more_than_64_components_is_refused_unlooked_at() {
        let mut lines = PROFILE.to_vec();
        let names: Vec<String> = (0..61).map(|i| format!(r#""x-{i}""#)).collect();
        lines.extend(names.iter().map(|name| (name.as_str(), "v")));
        let err = head(
            &Verifier::new().service("svc", "k"),
            "/x/y?b=x+y&a=1",
            &signed_over(host("h:8080"), &lines),
        )
        .unwrap_err();
        // Refused for its size, before its missing headers are looked for.
        assert!(matches!(err, VerifyError::MalformedSignature(_)), "{err:?}");
    }

    #[test]
    fn query_parameters_are_encoded_as_rfc_9421_shows() {
        // RFC 9421 §2.2.8's examples.
        let query = "var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace\
                     &fa%C3%A7ade%22%3A%20=something";
        assert_eq!(
            query_param(&query_pairs(query), "var").unwrap(),
            "this%20is%20a%20big%0Amultiline%20value"
        );
        assert_eq!(
            query_param(&query_pairs(query), "bar").unwrap(),
            "with%20plus%20whitespace"
        );
        assert_eq!(
            // The name `fa%C3%A7ade%22%3A%20`, decoded as `covered` decodes it.
            query_param(&query_pairs(query), "fa\u{e7}ade\": ").unwrap(),
            "something"
        );
        let query = "param=value&foo=bar&baz=batman&qux=";
        assert_eq!(query_param(&query_pairs(query), "baz").unwrap(), "batman");
        assert_eq!(query_param(&query_pairs(query), "qux").unwrap(), "");
        // Absent, or more than once: no value to sign.
        assert_eq!(query_param(&query_pairs(query), "nope"), None);
        assert_eq!(query_param(&query_pairs("a=1&a=2"), "a"), None);
        // Only letters, digits and `* - . _` stay as they are.
        assert_eq!(
            query_param(&query_pairs("v=%7E%2A-._%2F%20ok"), "v").unwrap(),
            "%7E*-._%2F%20ok"
        );
    }

    #[test]
    fn dictionary_members_are_serialized_with_their_parameters() {
        let mut parsed = Parsed::default();
        let field = parsed
            .dictionary("x-d", b"a=1, b=2;x=?1;y=\"z\", c=(1 2);p, d")
            .unwrap()
            .clone();
        assert_eq!(dictionary_member(&field, "a").unwrap(), "1");
        assert_eq!(dictionary_member(&field, "b").unwrap(), r#"2;x;y="z""#);
        assert_eq!(dictionary_member(&field, "c").unwrap(), "(1 2);p");
        assert_eq!(dictionary_member(&field, "d").unwrap(), "?1");
        assert_eq!(dictionary_member(&field, "e"), None);
        assert_eq!(dictionary_member(&field, "Not-A-Key"), None);
        // Parsed once: a second look at the field finds the first parse.
        assert!(parsed.dictionary("x-d", b"not even read").is_some());
        assert!(parsed.dictionary("x-e", b"not a (dictionary").is_none());
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
