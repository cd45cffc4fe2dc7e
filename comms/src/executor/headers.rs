//! What each attempt carries: the header template it starts from, and its signature.
//!
//! Kept apart from the rest of the executor because this is where the bytes of a request are
//! decided, and the work every attempt repeats. The template holds every header the request will
//! carry, so neither comms, reqwest nor hyper grows the map on the way to the wire; the
//! signature is written into it afresh for each attempt, from the values it holds, so what is
//! signed is what is sent.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method};

use super::{Executor, Inner};
use crate::Error;
use crate::random::random_bytes;
use crate::signing::{
    self, COMMS_DEADLINE_MS, CONTENT_DIGEST, LEGACY_SIGNATURE_HEADER, SERVICE_ID_HEADER, SIGNATURE,
    SIGNATURE_INPUT, Signing, TIMESTAMP_HEADER,
};

/// The headers every attempt starts from: every header the request will carry, so that neither
/// comms, reqwest nor hyper grows the map on the way to the wire.
///
/// The signature headers are here with placeholder values that [`sign_into`] replaces on every
/// attempt. `Host` is what hyper would add itself (the host, and the port unless it is the
/// scheme's default), and what an RFC 9421 signature covers as `@authority`. `Accept: */*` is
/// what reqwest adds by default; with a client of the user's, the executor takes it out of each
/// attempt's copy again, leaving its room for the client's own default.
///
/// With a body, `Content-Type` and `Content-Length` are here too: a call with a body always
/// sets its type, and the executor sets the length, which hyper would otherwise add; with an
/// empty one that a method gives a meaning, `Content-Length: 0` (see
/// [`announces_empty_body`]). For a call with a deadline, `Comms-Deadline-Ms` is here, and
/// with `otel` for a traced call `traceparent`, each empty until the call's value replaces it.
///
/// Each attempt clones this map. A clone's entries are sized to fit exactly, so an insert
/// that adds a header would make it reallocate (into a block too large for glibc's per-thread
/// cache, which costs a quarter of the throughput when threads share the allocator) and
/// rehash; an insert that replaces a value does not. So an executor keeps a template for each
/// kind of attempt ([`Templates`]).
fn attempt_headers(
    base: &reqwest::Url,
    service_header: &HeaderValue,
    signing: Signing,
    Kind {
        body,
        deadline,
        traced,
    }: Kind,
) -> HeaderMap {
    let (body, announced) = match body {
        Body::None => (false, false),
        Body::Empty => (false, true),
        Body::Some => (true, true),
    };
    let mut headers = HeaderMap::with_capacity(9);
    let host = base.host_str().unwrap_or_default();
    let host = match base.port() {
        Some(port) => HeaderValue::try_from(format!("{host}:{port}")),
        None => HeaderValue::try_from(host),
    };
    if let Ok(host) = host {
        headers.insert(http::header::HOST, host);
    }
    headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
    match signing {
        Signing::Rfc9421 => {
            headers.insert(
                CONTENT_DIGEST,
                HeaderValue::from_static(signing::EMPTY_CONTENT_DIGEST),
            );
            headers.insert(SIGNATURE_INPUT, HeaderValue::from_static(""));
            headers.insert(SIGNATURE, HeaderValue::from_static(""));
        }
        Signing::Legacy => {
            headers.insert(SERVICE_ID_HEADER, service_header.clone());
            headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static("0"));
            headers.insert(LEGACY_SIGNATURE_HEADER, HeaderValue::from_static(""));
        }
    }
    if signing == Signing::Legacy || body {
        // The Python library sends it on every request; a call's own replaces it.
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if announced {
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    if deadline {
        headers.insert(COMMS_DEADLINE_MS, HeaderValue::from_static(""));
    }
    if traced {
        headers.insert(signing::TRACEPARENT, HeaderValue::from_static(""));
    }
    headers
}

/// What an attempt's body is, for the header template it starts from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Body {
    /// None, and none meant (a GET).
    None,
    /// None, said with `Content-Length: 0` (see [`announces_empty_body`]).
    Empty,
    /// A body, of the call's type and length.
    Some,
}

/// The kind of attempt a header template is for: its body, whether its call has a deadline,
/// and (with `otel`) whether its call carries a trace context.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Kind {
    body: Body,
    deadline: bool,
    traced: bool,
}

/// How many kinds of attempt there are: three bodies, with a deadline or not, and with `otel`
/// traced or not (without it, no attempt is told traced: see [`Templates::of`]).
const KINDS: usize = if cfg!(feature = "otel") { 12 } else { 6 };

impl Kind {
    /// The kind of index `i` in [`Templates`].
    fn at(i: usize) -> Kind {
        Kind {
            body: [Body::None, Body::Empty, Body::Some][i % 3],
            deadline: i / 3 % 2 == 1,
            traced: i / 6 == 1,
        }
    }

    /// Its index in [`Templates`].
    fn index(self) -> usize {
        let body = match self.body {
            Body::None => 0,
            Body::Empty => 1,
            Body::Some => 2,
        };
        body + 3 * usize::from(self.deadline) + 6 * usize::from(self.traced)
    }
}

/// An executor's header templates (see [`attempt_headers`]), one for each kind of attempt, so
/// that an attempt's copy holds exactly the headers it will carry.
pub(super) struct Templates([HeaderMap; KINDS]);

impl Templates {
    pub(super) fn new(base: &reqwest::Url, service_header: &HeaderValue, signing: Signing) -> Self {
        Templates(std::array::from_fn(|i| {
            attempt_headers(base, service_header, signing, Kind::at(i))
        }))
    }

    /// The template of an attempt with `body`, of a call with a deadline or not, whose headers
    /// (the call's own, a header hook's among them) are `call_headers`.
    pub(super) fn of(&self, body: Body, deadline: bool, call_headers: &HeaderMap) -> &HeaderMap {
        // Without `otel`, a call's own `traceparent` is one of its headers like another.
        let traced = cfg!(feature = "otel") && call_headers.contains_key(signing::TRACEPARENT);
        &self.0[Kind {
            body,
            deadline,
            traced,
        }
        .index()]
    }
}

/// Whether a request of `method` without a body says so with `Content-Length: 0`: POST, PUT
/// and PATCH, whose body has a meaning. Without the header their body is empty all the same,
/// but RFC 9110 (section 8.6) asks a user agent to send it, as browsers and Python's
/// `requests` do, and some front ends refuse a POST without it (411 Length Required).
pub(super) fn announces_empty_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// What an RFC 9421 signature of a call covers, fixed for all its attempts: the inner list of
/// covered components for `Signature-Input`. Adds the body's `Content-Digest` to the call's
/// headers when the body is not empty (none for a legacy signature; an empty body's is the
/// header template's, [`attempt_headers`]). The caller has refused repeated covered headers
/// ([`refuse_repeated`]) first.
pub(super) fn covered(
    scheme: Signing,
    call_headers: &mut HeaderMap,
    body: &[u8],
) -> Cow<'static, str> {
    if scheme == Signing::Legacy {
        return Cow::Borrowed("");
    }
    // An empty body's digest is the template's already (every RFC 9421 template holds it),
    // and no call may set the header: laid over the template it would change nothing, and
    // putting it among a call's headers would make the map of a call without headers allocate.
    if !body.is_empty() {
        let digest = HeaderValue::try_from(signing::content_digest(body))
            .expect("base64 is a valid header value");
        call_headers.insert(CONTENT_DIGEST, digest);
    }
    // A call covering only the digest and the headers comms covers whenever they are there
    // has the same list as every other such call: not written again for each.
    if let Some(list) = signing::usual_inner_list(call_headers) {
        return Cow::Borrowed(list);
    }
    Cow::Owned(signing::inner_list(
        signing::covered_fields(call_headers).map(HeaderName::as_str),
    ))
}

/// Refuses a covered header the call set more than once, which a verifier would refuse.
pub(super) fn refuse_repeated(call_headers: &HeaderMap) -> Result<(), Error> {
    // As many values as names: no name has two.
    if call_headers.len() == call_headers.keys_len() {
        return Ok(());
    }
    match signing::covered_fields(call_headers)
        .find(|name| call_headers.get_all(*name).iter().nth(1).is_some())
    {
        Some(name) => Err(Error::encode(format!(
            "header `{name}` is set more than once; a signed header must occur once"
        ))),
        None => Ok(()),
    }
}

/// Refuses a path a legacy signature would not bind to one resource: one holding an encoded
/// `/` (a segment `a/b`, sent as `a%2Fb`), whose decoded form, the one signed, cannot be told
/// from two segments, so that a verifier refuses it; and one whose decoded form holds an
/// escape (a segment `a%20b`, sent as `a%2520b`), which a verifier takes as the path as sent
/// by a caller that encoded it, `a b` (see [`signing::decodes_to_escape`]). Both are refused
/// unsent, as an `Error::Encode`, rather than sent to be refused as unauthorized.
pub(super) fn refuse_ambiguous_legacy_path(url: &reqwest::Url) -> Result<(), Error> {
    if signing::holds_encoded_slash(url.path()) {
        return Err(Error::encode(
            "a legacy signature cannot cover a path holding an encoded `/` (`%2F`, a value \
             with a `/` in one segment), which a verifier cannot tell from two segments; sign \
             it with RFC 9421",
        ));
    }
    if signing::decodes_to_escape(url.path()) {
        return Err(Error::encode(
            "a legacy signature cannot cover a path holding an encoded escape (`%25` and two hex \
             digits), which a verifier could take for another resource; sign it with RFC 9421",
        ));
    }
    Ok(())
}

/// The covered components of one attempt whose headers differ from the call's (a header hook
/// added some): like [`covered`], for headers that already hold the body's `Content-Digest`.
pub(super) fn covered_list(scheme: Signing, call_headers: &HeaderMap) -> Result<String, Error> {
    if scheme == Signing::Legacy {
        return Ok(String::new());
    }
    refuse_repeated(call_headers)?;
    Ok(signing::inner_list(
        signing::covered_fields(call_headers).map(HeaderName::as_str),
    ))
}

impl Executor {
    /// Signs `request` as the one attempt of a call with its method, URL, headers and body,
    /// into this executor's header template: the signed request a hand-written client of the
    /// protocol would send, with nothing else of a call around it (for the benchmarks).
    #[cfg(any(feature = "__internals", fuzzing, test))]
    pub(crate) fn sign_request(&self, request: &mut reqwest::Request) -> Result<(), Error> {
        let inner = &*self.inner;
        let mut call_headers = std::mem::take(request.headers_mut());
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .unwrap_or_default();
        if inner.signer.scheme() == Signing::Rfc9421 {
            refuse_repeated(&call_headers)?;
        }
        let inner_list = covered(inner.signer.scheme(), &mut call_headers, body);
        let body_kind = if body.is_empty() {
            Body::None
        } else {
            Body::Some
        };
        let template = inner.templates.of(body_kind, false, &call_headers);
        let mut headers = crate::header_map::laid_over(template, &call_headers);
        if !body.is_empty() {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        sign_into(
            inner,
            request.method(),
            request.url(),
            &call_headers,
            &inner_list,
            &mut headers,
        )?;
        *request.headers_mut() = headers;
        Ok(())
    }
}

/// Signs one attempt into `headers`, which hold everything the request will carry: a fresh
/// creation time and nonce, the signature over them, and the headers that carry it.
///
/// For RFC 9421, `inner_list` names the covered components, fixed for the call (see
/// [`covered`]); the signature base is written straight into the MAC from the values in
/// `headers`, so what is signed is what is sent.
pub(super) fn sign_into(
    inner: &Inner,
    method: &Method,
    url: &reqwest::Url,
    call_headers: &HeaderMap,
    inner_list: &str,
    headers: &mut HeaderMap,
) -> Result<(), Error> {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // The attempt's values share one buffer. reqwest clones the request headers (for a
    // redirect it will not follow), and a clone of a value that owns its own vector
    // allocates; pieces split off a shared buffer are cloned by a reference count.
    // Each value is written into the buffer in place, then split off.
    let mut buf = BytesMut::with_capacity(160 + inner_list.len() + inner.key_id.len());
    let split = |buf: &mut BytesMut| {
        HeaderValue::from_maybe_shared(buf.split().freeze()).expect("ASCII is a header value")
    };
    match inner.signer.scheme() {
        Signing::Rfc9421 => {
            let mut nonce = [0u8; 32];
            hex::encode_to_slice(random_bytes()?, &mut nonce).expect("16 bytes are 32 digits");
            let params = signing::Params {
                created,
                key_id: &inner.key_id,
                nonce: std::str::from_utf8(&nonce).expect("hex is ASCII"),
            };
            let authority = headers
                .get(http::header::HOST)
                .map_or(&b""[..], HeaderValue::as_bytes);
            let fields = signing::covered_fields(call_headers).map(|name| {
                let value = headers.get(name).map_or(&b""[..], HeaderValue::as_bytes);
                (name.as_str().as_bytes(), value)
            });
            let mac = inner.signer.mac(|mac| {
                signing::write_base(
                    mac,
                    method.as_str().as_bytes(),
                    authority,
                    url.path().as_bytes(),
                    url.query().unwrap_or("").as_bytes(),
                    fields,
                );
                signing::write_params(mac, inner_list, &params);
            });
            buf.extend_from_slice(signing::LABEL.as_bytes());
            buf.extend_from_slice(b"=");
            signing::write_params_value(&mut buf, inner_list, &params);
            headers.insert(SIGNATURE_INPUT, split(&mut buf));
            signing::write_signature_value(&mut buf, &mac);
            let mut signature = split(&mut buf);
            signature.set_sensitive(true);
            headers.insert(SIGNATURE, signature);
        }
        Signing::Legacy => {
            let mut digits = itoa::Buffer::new();
            let timestamp = digits.format(created);
            let mac = inner.signer.mac(|mac| {
                hmac::Mac::update(
                    mac,
                    &signing::legacy_string_to_sign(method.as_str(), url.path(), created),
                );
            });
            let mut hex_mac = [0u8; 64];
            hex::encode_to_slice(mac, &mut hex_mac).expect("32 bytes are 64 digits");
            headers.insert(SERVICE_ID_HEADER, inner.service_header.clone());
            buf.extend_from_slice(timestamp.as_bytes());
            headers.insert(TIMESTAMP_HEADER, split(&mut buf));
            buf.extend_from_slice(&hex_mac);
            let mut signature = split(&mut buf);
            signature.set_sensitive(true);
            headers.insert(LEGACY_SIGNATURE_HEADER, signature);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_is_what_hyper_would_write() {
        let host = |url: &str| {
            let url = reqwest::Url::parse(url).unwrap();
            let v = HeaderValue::from_static("svc");
            let templates = Templates::new(&url, &v, Signing::Rfc9421);
            templates.of(Body::None, false, &HeaderMap::new())[http::header::HOST].clone()
        };
        assert_eq!(
            host("http://users.internal:8080/api"),
            "users.internal:8080"
        );
        assert_eq!(host("http://users.internal:80"), "users.internal");
        assert_eq!(host("https://users.internal:443"), "users.internal");
        assert_eq!(host("https://users.internal:80"), "users.internal:80");
        assert_eq!(host("http://[::1]:9000"), "[::1]:9000");
        assert_eq!(host("http://bücher.example"), "xn--bcher-kva.example");
    }

    #[test]
    fn each_kind_of_attempt_has_a_template_holding_every_header_its_call_adds() {
        for i in 0..KINDS {
            assert_eq!(Kind::at(i).index(), i);
        }
        let url = reqwest::Url::parse("http://h:1").unwrap();
        let v = HeaderValue::from_static("svc");
        let templates = Templates::new(&url, &v, Signing::Rfc9421);
        let mut call = HeaderMap::new();
        call.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        call.insert(COMMS_DEADLINE_MS, HeaderValue::from_static("900"));
        // Without `otel`, a call's own `traceparent` is a header like another, and the
        // template keeps no room for it.
        let traced = cfg!(feature = "otel");
        if traced {
            call.insert(
                signing::TRACEPARENT,
                HeaderValue::from_static("00-ab-cd-01"),
            );
        }
        let template = templates.of(Body::Some, true, &call);
        assert_eq!(template.contains_key(signing::TRACEPARENT), traced);
        // Laid over it, the call's headers replace values: nothing is added.
        let laid = crate::header_map::laid_over(template, &call);
        assert_eq!(laid.len(), template.len());
        assert_eq!(laid[COMMS_DEADLINE_MS], "900");
        assert_eq!(laid[CONTENT_LENGTH], "0");
        call.remove(signing::TRACEPARENT);
        let untraced = templates.of(Body::Empty, false, &call);
        assert!(!untraced.contains_key(signing::TRACEPARENT));
        assert!(!untraced.contains_key(COMMS_DEADLINE_MS));
        assert_eq!(untraced[CONTENT_LENGTH], "0");
        assert!(
            !templates
                .of(Body::None, false, &call)
                .contains_key(CONTENT_LENGTH)
        );
    }

    #[test]
    fn legacy_attempts_carry_only_legacy_headers() {
        let url = reqwest::Url::parse("http://h:1").unwrap();
        let v = HeaderValue::from_static("svc");
        let templates = Templates::new(&url, &v, Signing::Legacy);
        let headers = templates.of(Body::None, false, &HeaderMap::new());
        let mut names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        let expected = [
            "accept",
            "content-type",
            "host",
            "x-service-id",
            "x-signature",
            "x-timestamp",
        ];
        assert_eq!(names, expected);
        assert_eq!(headers[CONTENT_TYPE], "application/json");
    }
}
