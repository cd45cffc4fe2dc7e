//! Requests whose RFC 9421 signatures verify, so that the verifier's work after a first
//! signature passed is explored: the other signatures by known keys (`MAX_OTHER_SIGNATURES`,
//! their `created` check, each one's nonce), the covered components (`@query-param`, `;key`,
//! `;bs`, `;sf`, `;tr`, `;req`, `@target-uri`, ...), the body's digest and the covered fields.
//!
//! The target builds a request from a structured input (method, target, headers, body, and
//! signatures with fuzzed labels, keys, covered components and parameters) and signs each
//! signature itself: the signature base as RFC 9421 writes it, HMAC-SHA256 under the key's
//! secret, written here without comms' signing code. Beside the request it works out what the
//! verifier must answer (a model of RFC 9421 as comms profiles it), then checks:
//!
//! - no panic; a request the model refuses is refused; one it accepts is accepted, by the
//!   first signature under a known key;
//! - an accepted request has recorded the nonce of its checked signature and of each other
//!   valid signature by a known key (one per service and nonce, kept until the latest
//!   `created` among them can no longer pass), and nothing else; a refused one none;
//! - what the head vouches for (`Comms-Deadline-Ms`, the covered fields) is what the checked
//!   signature covers whole;
//! - the same request again is refused as a replay, and so is each other valid signature
//!   sent alone;
//! - through a gate and a server behind it that verifies too (sharing the gate's store, as a
//!   clone or another instance at the same location, or with one of its own; knowing all the
//!   gate's keys or some, so that it may check another of the request's signatures), the
//!   request is admitted in front, and behind as the model says of the server's keys; its
//!   nonces are recorded once in each store, and its replay is refused.
//!
//! Where the model cannot tell (a `created` or `expires` within two seconds of the window's
//! edge, a member of a field that is not a generated Dictionary), only the invariants that
//! hold either way are checked.
#![no_main]

use std::collections::HashMap;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use comms::BoxError;
use comms::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use comms::verify::{Caller, NonceStore, Verifier, VerifyError};
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256, Sha512};

/// The verifier's skew window (its default), in seconds.
const SKEW: i64 = 300;

/// Key ids, their services and secrets; the verifier knows the first three.
const KEYS: [(&str, &str, &str); 5] = [
    ("svc", "svc", "secret-svc"),
    ("svc-next", "svc", "secret-next"),
    ("other", "other", "secret-other"),
    ("nobody", "nobody", "secret-nobody"),
    ("Svc", "svc", "secret-svc"),
];
const KNOWN_KEYS: usize = 3;

const LABELS: [&str; 6] = ["comms", "sig1", "a", "b", "x-y", "*s"];
const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
];
const HOSTS: [&str; 7] = [
    "h",
    "h:8080",
    "H:8080",
    "h:80",
    "h:443",
    "Example.COM:443",
    "[::1]:80",
];
const PATHS: [&str; 7] = ["/", "/x", "/x/y", "/users/7", "/a%2Fb", "/%7E~", "/p;q=1"];
/// Header fields a request may carry (beside `host`, `content-digest`, `content-length`).
const FIELDS: [&str; 8] = [
    "content-type",
    "date",
    "x-a",
    "x-dict",
    "comms-deadline-ms",
    "traceparent",
    "x-b",
    "idempotency-key",
];
/// Query parameter names: decoded, and as the query writes them.
const QUERY_NAMES: [(&str, &str); 5] = [
    ("a", "a"),
    ("b", "b"),
    ("id", "id"),
    ("x y", "x+y"),
    ("é", "%C3%A9"),
];
/// Names an `@query-param` asks for, as RFC 9421 writes them and decoded; the last is never
/// sent.
const QUERY_WANTED: [(&str, &str); 6] = [
    ("a", "a"),
    ("b", "b"),
    ("id", "id"),
    ("x%20y", "x y"),
    ("%C3%A9", "é"),
    ("c", "c"),
];
const DICT_KEYS: [&str; 6] = ["a", "b", "m", "z9", "*x", "Up"];
/// Dictionary member values: as a field writes them, and as RFC 9651 serializes them.
const DICT_VALUES: [(&str, &str); 8] = [
    ("=1", "1"),
    ("=?0", "?0"),
    ("", "?1"),
    ("=(1 2);p", "(1 2);p"),
    ("=\"s t\"", "\"s t\""),
    ("=tok;x=?1", "tok;x"),
    ("=:YWJj:", ":YWJj:"),
    ("=-5.5", "-5.5"),
];
const NONCES: [&str; 5] = [
    "0123456789abcdef0123456789abcdef",
    "nnnnnnnnnnnnnnnn",
    "Ab-_0123456789xyzQRS9w",
    "0123456789abcdef0123456789abcdee",
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
];

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    target: Target,
    host: u8,
    host_lines: u8,
    path: u8,
    query: Option<Vec<(u8, String, bool)>>,
    scheme: u8,
    authorities: u8,
    fields: Vec<(u8, FieldValue)>,
    digest: u8,
    content_length: u8,
    body: Vec<u8>,
    signatures: Vec<Sig>,
    input_lines: u8,
    signature_lines: u8,
    /// Behind a gate: the server is the gate's verifier cloned, another instance of its store
    /// (the same location), or has a store of its own.
    behind: u8,
}

#[derive(Arbitrary, Debug)]
enum Target {
    Origin,
    Absolute {
        https: bool,
        authority: u8,
    },
    /// `CONNECT`'s authority form.
    Authority,
}

#[derive(Arbitrary, Debug)]
enum FieldValue {
    Raw(Vec<u8>),
    /// A Dictionary: (key, value) indices, and whether members are separated by `,` alone.
    Dict(Vec<(u8, u8)>, bool),
}

#[derive(Arbitrary, Debug)]
struct Sig {
    label: u8,
    key: u8,
    /// Whether the four required derived components come first.
    required: bool,
    components: Vec<Component>,
    created: Created,
    expires: Option<i16>,
    alg: u8,
    nonce: u8,
    tag: bool,
    order: u8,
    tamper: u8,
    /// Whether `Signature-Input` is written with the white space RFC 9651 allows.
    loose: bool,
}

#[derive(Arbitrary, Debug)]
enum Created {
    Offset(i16),
    Absent,
    Negative,
    Text,
}

#[derive(Arbitrary, Debug)]
enum Component {
    Method,
    Authority,
    Path,
    Query,
    RequestTarget,
    Scheme,
    TargetUri,
    QueryParam(u8),
    /// A derived component this verifier cannot check.
    Unchecked(u8),
    Field(u8, FieldParam),
}

#[derive(Arbitrary, Debug)]
enum FieldParam {
    Plain,
    Bs,
    BsTrue,
    BsFalse,
    Key(u8),
    KeySf(u8),
    SfKey(u8),
    KeyInteger,
    Sf,
    Tr,
    Req,
    Upper,
}

/// What the model says of one check: passes, fails, or cannot tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    Unsure,
}

impl Verdict {
    fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
            (Verdict::Unsure, _) | (_, Verdict::Unsure) => Verdict::Unsure,
            _ => Verdict::Pass,
        }
    }

    fn fail_if(condition: bool) -> Verdict {
        if condition {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    }
}

/// One signature as built: its `Signature-Input` member (as sent), its `Signature` value (when
/// sent), and what the model says of it.
struct Built {
    label: &'static str,
    key: usize,
    member: String,
    value: Option<String>,
    /// Whether the signature checks out on its own, `Signature` value aside.
    verdict: Verdict,
    /// The signature value it must have to verify.
    expected_mac: Vec<u8>,
    created: Option<i64>,
    /// Whether `created` is more than the window ahead (only for the other signatures).
    future: Verdict,
    nonce: Option<&'static str>,
    covers_digest: bool,
    /// Whether the request declares a body (`Content-Length`) the signature does not cover:
    /// refused as the signature checked first, not as another.
    body_uncovered: bool,
    covers_deadline: bool,
    covered_fields: Vec<String>,
    loose: bool,
}

/// The request the model reasons about.
struct Request<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    scheme: Option<&'a str>,
    authorities: &'a [&'a str],
    /// The query's pairs, decoded, as generated.
    query: &'a [(String, String)],
    /// Each generated Dictionary field: its members (last one wins), serialized.
    dictionaries: &'a HashMap<&'static str, Vec<(String, String)>>,
    /// How each covered `content-digest` value parses, `None` for an error.
    digest: Option<Digests>,
    declares_body: bool,
    now: i64,
}

#[derive(Clone, Copy)]
struct Digests {
    sha256: Option<bool>,
    sha512: Option<bool>,
}

/// A nonce store that records what it is asked to record.
#[derive(Clone, Default)]
struct Store(Arc<Mutex<StoreState>>, Option<&'static str>);

#[derive(Default)]
struct StoreState {
    held: HashMap<(String, String), SystemTime>,
    recorded: Vec<(String, String, SystemTime)>,
}

impl NonceStore for Store {
    fn check_and_insert<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>> {
        assert!(keep_until > now, "a nonce to be kept no longer than now");
        let mut state = self.0.lock().unwrap();
        let key = (service_id.to_owned(), nonce.to_owned());
        let fresh = state.held.get(&key).is_none_or(|until| *until <= now);
        if fresh {
            state.held.insert(key, keep_until);
            state
                .recorded
                .push((service_id.to_owned(), nonce.to_owned(), keep_until));
        }
        Box::pin(std::future::ready(Ok(fresh)))
    }

    fn contains<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>> {
        let state = self.0.lock().unwrap();
        let key = (service_id.to_owned(), nonce.to_owned());
        let seen = state.held.get(&key).is_some_and(|until| *until > now);
        Box::pin(std::future::ready(Ok(seen)))
    }

    fn location(&self) -> Option<String> {
        self.1.map(str::to_owned)
    }
}

impl Store {
    fn take_recorded(&self) -> Vec<(String, String, SystemTime)> {
        std::mem::take(&mut self.0.lock().unwrap().recorded)
    }
}

fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the verifier waited on a store that never waits"),
    }
}

/// `application/x-www-form-urlencoded` as RFC 9421 §2.2.8 re-encodes a value: every byte but
/// ASCII letters, digits and `* - . _` percent-encoded (a space as `%20`).
fn form_encode(text: &str, space_as_plus: bool) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' if space_as_plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn trim(value: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ws(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |e| e + 1);
    &value[start..end]
}

fn mac(secret: &str, base: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(base);
    mac.finalize().into_bytes().to_vec()
}

impl Request<'_> {
    /// The scheme the verifier takes the request to have come by.
    fn scheme(&self) -> Option<String> {
        self.scheme
            .or(self.uri.scheme_str())
            .map(str::to_ascii_lowercase)
    }

    /// The one `Host` value, when there is exactly one.
    fn host(&self) -> Option<&str> {
        let mut all = self.headers.get_all("host").iter();
        match (all.next(), all.next()) {
            (Some(v), None) => v.to_str().ok().filter(|v| !v.is_empty()),
            _ => None,
        }
    }

    /// The authority as it arrived (RFC 9110 §7.1: the target URI's, which `Host` must agree
    /// with when both are sent).
    fn raw_authority(&self) -> Option<String> {
        match self.uri.authority() {
            Some(authority) => {
                if self.headers.contains_key("host")
                    && !self
                        .host()
                        .is_some_and(|h| h.eq_ignore_ascii_case(authority.as_str()))
                {
                    return None;
                }
                Some(authority.as_str().to_owned())
            }
            None => self.host().map(str::to_owned),
        }
    }

    fn authority(&self) -> Option<String> {
        let raw = self.raw_authority()?.to_ascii_lowercase();
        Some(strip_default_port(&raw, self.scheme().as_deref()).to_owned())
    }

    fn path(&self) -> String {
        match self.uri.path() {
            "" => "/".to_owned(),
            path => path.to_owned(),
        }
    }

    fn query_suffix(&self) -> String {
        self.uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default()
    }

    /// The values of field `name`, when it occurs exactly once.
    fn field(&self, name: &str) -> Option<&[u8]> {
        let mut all = self.headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => Some(v.as_bytes()),
            _ => None,
        }
    }

    /// A covered component's identifier and value, or why it has none.
    fn component(&self, component: &Component) -> (String, Result<Vec<u8>, Verdict>) {
        let text = |value: Option<String>| value.map(String::into_bytes).ok_or(Verdict::Fail);
        match component {
            Component::Method => (
                r#""@method""#.into(),
                Ok(self.method.as_str().as_bytes().to_vec()),
            ),
            Component::Authority => (r#""@authority""#.into(), text(self.authority())),
            Component::Path => (r#""@path""#.into(), Ok(self.path().into_bytes())),
            Component::Query => (
                r#""@query""#.into(),
                Ok(format!("?{}", self.uri.query().unwrap_or("")).into_bytes()),
            ),
            Component::RequestTarget => {
                let target =
                    if *self.method == Method::CONNECT && self.uri.path_and_query().is_none() {
                        self.uri
                            .authority()
                            .map(|a| a.to_string())
                            .unwrap_or_default()
                    } else if self.uri.path_and_query().is_none() {
                        String::new()
                    } else {
                        format!("{}{}", self.uri.path(), self.query_suffix())
                    };
                (r#""@request-target""#.into(), Ok(target.into_bytes()))
            }
            Component::Scheme => (r#""@scheme""#.into(), text(self.scheme())),
            Component::TargetUri => {
                let uri = self
                    .scheme()
                    .zip(self.raw_authority())
                    .map(|(s, a)| format!("{s}://{a}{}{}", self.path(), self.query_suffix()));
                (r#""@target-uri""#.into(), text(uri))
            }
            Component::QueryParam(i) => {
                let (wanted, decoded) = QUERY_WANTED[*i as usize % QUERY_WANTED.len()];
                let identifier = format!(r#""@query-param";name="{wanted}""#);
                let mut values = self.query.iter().filter(|(name, _)| name == decoded);
                let value = match (values.next(), values.next()) {
                    (Some((_, value)), None) => Ok(form_encode(value, false).into_bytes()),
                    _ => Err(Verdict::Fail),
                };
                (identifier, value)
            }
            Component::Unchecked(i) => {
                let identifier = [
                    r#""@status""#,
                    r#""@signature-params""#,
                    r#""@nope""#,
                    r#""@method";req"#,
                    r#""@path";x=1"#,
                    r#""@query-param""#,
                    r#""@query-param";name="a";x"#,
                    r#""@query-param";name=1"#,
                ][*i as usize % 8];
                (identifier.into(), Err(Verdict::Fail))
            }
            Component::Field(i, param) => {
                let names = [
                    &FIELDS[..],
                    &["content-digest", "content-length", "host", "x-absent"],
                ]
                .concat();
                let name = names[*i as usize % names.len()];
                let dict_key = |k: &u8| DICT_KEYS[*k as usize % DICT_KEYS.len()];
                let identifier = match param {
                    FieldParam::Plain => format!("\"{name}\""),
                    FieldParam::Bs | FieldParam::BsTrue => format!("\"{name}\";bs"),
                    FieldParam::BsFalse => format!("\"{name}\";bs=?0"),
                    FieldParam::Key(k) => format!("\"{name}\";key=\"{}\"", dict_key(k)),
                    FieldParam::KeySf(k) => format!("\"{name}\";key=\"{}\";sf", dict_key(k)),
                    FieldParam::SfKey(k) => format!("\"{name}\";sf;key=\"{}\"", dict_key(k)),
                    FieldParam::KeyInteger => format!("\"{name}\";key=1"),
                    FieldParam::Sf => format!("\"{name}\";sf"),
                    FieldParam::Tr => format!("\"{name}\";tr"),
                    FieldParam::Req => format!("\"{name}\";req"),
                    FieldParam::Upper => format!("\"{}\"", name.to_ascii_uppercase()),
                };
                let value = match (param, self.field(name)) {
                    (FieldParam::Upper, _) => Err(Verdict::Fail),
                    (_, None) => Err(Verdict::Fail),
                    (FieldParam::Plain, Some(value)) => Ok(trim(value).to_vec()),
                    (FieldParam::Bs | FieldParam::BsTrue, Some(value)) => {
                        Ok(format!(":{}:", BASE64.encode(trim(value))).into_bytes())
                    }
                    (FieldParam::Key(k) | FieldParam::KeySf(k) | FieldParam::SfKey(k), _) => {
                        match self.dictionaries.get(name) {
                            Some(members) => members
                                .iter()
                                .find(|(key, _)| key == dict_key(k))
                                .map(|(_, value)| value.clone().into_bytes())
                                .ok_or(Verdict::Fail),
                            None if dict_key(k) == "Up" => Err(Verdict::Fail),
                            None => Err(Verdict::Unsure),
                        }
                    }
                    _ => Err(Verdict::Fail),
                };
                (identifier, value)
            }
        }
    }

    /// Builds signature `sig`: its member, value, and the model's verdict.
    fn sign(&self, sig: &Sig) -> Built {
        let label = LABELS[sig.label as usize % LABELS.len()];
        let key = sig.key as usize % (KEYS.len() + 2);
        let mut components: Vec<&Component> = Vec::new();
        const REQUIRED: [Component; 4] = [
            Component::Method,
            Component::Authority,
            Component::Path,
            Component::Query,
        ];
        if sig.required {
            components.extend(REQUIRED.iter());
        }
        components.extend(sig.components.iter().take(24));

        let mut verdict = Verdict::Pass;
        let mut base = Vec::new();
        let mut identifiers: Vec<String> = Vec::new();
        let mut covers_digest = false;
        let mut covers_deadline = false;
        let mut covered_fields = Vec::new();
        let mut authority = None;
        for component in &components {
            let (identifier, value) = self.component(component);
            // One component named twice, however written: a member's `sf` beside its `key`
            // changes nothing.
            let same = |identifier: &str| {
                if identifier.contains(";key=") {
                    identifier.replace(";sf", "")
                } else {
                    identifier.to_owned()
                }
            };
            verdict = verdict.and(Verdict::fail_if(
                identifiers
                    .iter()
                    .any(|seen| same(seen) == same(&identifier)),
            ));
            let value = value.unwrap_or_else(|v| {
                verdict = verdict.and(v);
                Vec::new()
            });
            if let Component::Field(_, FieldParam::Plain | FieldParam::Bs | FieldParam::BsTrue) =
                component
            {
                let name = identifier[1..].split('"').next().unwrap().to_owned();
                covers_digest |= name == "content-digest";
                covers_deadline |= name == "comms-deadline-ms";
                covered_fields.push(name);
            }
            if let Component::Authority = component {
                authority = Some(String::from_utf8(value.clone()).unwrap());
            }
            base.extend_from_slice(identifier.as_bytes());
            base.extend_from_slice(b": ");
            base.extend_from_slice(&value);
            base.push(b'\n');
            identifiers.push(identifier);
        }
        for required in ["\"@method\"", "\"@authority\"", "\"@path\"", "\"@query\""] {
            verdict = verdict.and(Verdict::fail_if(!identifiers.iter().any(|i| i == required)));
        }
        if !self.authorities.is_empty()
            && let Some(authority) = &authority
        {
            let scheme = self.scheme();
            verdict = verdict.and(Verdict::fail_if(!self.authorities.iter().any(|a| {
                strip_default_port(&a.to_ascii_lowercase(), scheme.as_deref()) == authority
            })));
        }
        // A request declaring a body must have its digest covered by the signature checked
        // first; the others are checked as for a request without one.
        let body_uncovered = !covers_digest && self.declares_body;
        if covers_digest {
            verdict = verdict.and(Verdict::fail_if(self.digest.is_none()));
        }

        // Parameters, in an order of the fuzzer's.
        let mut params: Vec<String> = Vec::new();
        let mut created = None;
        let mut future = Verdict::Pass;
        match sig.created {
            Created::Offset(offset) => {
                let offset = i64::from(offset % 400);
                let at = self.now + offset;
                created = Some(at);
                params.push(format!("created={at}"));
                let edge = (offset.abs() - SKEW).abs() <= 2;
                verdict = verdict.and(if edge {
                    Verdict::Unsure
                } else {
                    Verdict::fail_if(offset.abs() > SKEW)
                });
                future = if edge && offset > 0 {
                    Verdict::Unsure
                } else {
                    Verdict::fail_if(offset > SKEW)
                };
            }
            Created::Absent => verdict = Verdict::Fail,
            Created::Negative => {
                params.push("created=-5".into());
                verdict = Verdict::Fail;
            }
            Created::Text => {
                params.push(format!("created=\"{}\"", self.now));
                verdict = Verdict::Fail;
            }
        }
        if let Some(expires) = sig.expires {
            let offset = i64::from(expires % 50);
            params.push(format!("expires={}", self.now + offset));
            verdict = verdict.and(if offset.abs() <= 2 {
                Verdict::Unsure
            } else {
                Verdict::fail_if(offset < 0)
            });
        }
        match key {
            k if k < KEYS.len() => params.push(format!("keyid=\"{}\"", KEYS[k].0)),
            k if k == KEYS.len() => params.push("keyid=svc".into()),
            _ => {}
        }
        match sig.alg % 4 {
            0 => {}
            1 => params.push("alg=\"hmac-sha256\"".into()),
            2 => {
                params.push("alg=\"rsa-pss-sha512\"".into());
                verdict = Verdict::Fail;
            }
            _ => {
                params.push("alg=hmac-sha256".into());
                verdict = Verdict::Fail;
            }
        }
        let mut nonce = None;
        match sig.nonce as usize % (NONCES.len() + 6) {
            n if n < NONCES.len() => {
                nonce = Some(NONCES[n]);
                params.push(format!("nonce=\"{}\"", NONCES[n]));
            }
            n => {
                verdict = Verdict::Fail;
                match n - NONCES.len() {
                    0 => params.push("nonce=\"short\"".into()),
                    1 => params.push(format!("nonce=\"{}\"", "n".repeat(15))),
                    2 => params.push(format!("nonce=\"{}\"", "n".repeat(129))),
                    3 => params.push("nonce=\"0123456789abcdef+/\"".into()),
                    4 => params.push("nonce=abcdefghijklmnopq".into()),
                    _ => {}
                }
            }
        }
        if sig.tag {
            params.push("tag=\"fuzz\"".into());
        }
        if !params.is_empty() {
            let n = sig.order as usize % params.len();
            params.rotate_left(n);
        }

        let inner = format!("({})", identifiers.join(" "));
        let canonical = format!(
            "{inner}{}",
            params.iter().map(|p| format!(";{p}")).collect::<String>()
        );
        let member = if sig.loose {
            format!(
                "{label}=(  {} ){}",
                identifiers.join("  "),
                params.iter().map(|p| format!("; {p}")).collect::<String>()
            )
        } else {
            format!("{label}={canonical}")
        };
        base.extend_from_slice(b"\"@signature-params\": ");
        base.extend_from_slice(canonical.as_bytes());

        let secret = KEYS.get(key).map_or("no-key", |k| k.2);
        let expected_mac = mac(secret, &base);
        let value = match sig.tamper % 8 {
            // Mostly as signed.
            0..=2 => Some(expected_mac.clone()),
            3 => {
                let mut flipped = expected_mac.clone();
                flipped[sig.order as usize % 32] ^= 1 << (sig.tamper % 8);
                Some(flipped)
            }
            4 => Some(mac("wrong-secret", &base)),
            5 => {
                base.push(b'\n');
                Some(mac(secret, &base))
            }
            6 => None,
            _ => Some(Vec::new()),
        };
        let value = match (sig.tamper % 8, value) {
            (7, _) => Some(format!("{label}=token")),
            (_, Some(bytes)) => Some(format!("{label}=:{}:", BASE64.encode(bytes))),
            (_, None) => None,
        };
        Built {
            label,
            key,
            member,
            value,
            verdict,
            expected_mac,
            created,
            future,
            nonce,
            covers_digest,
            body_uncovered,
            covers_deadline,
            covered_fields,
            loose: sig.loose,
        }
    }
}

fn strip_default_port<'a>(authority: &'a str, scheme: Option<&str>) -> &'a str {
    let default = match scheme {
        Some("http") => ":80",
        Some("https") => ":443",
        _ => return authority,
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// Writes `members` as `lines` field lines of `name`.
fn put_lines(headers: &mut HeaderMap, name: &str, members: &[&str], lines: u8, loose: bool) {
    if members.is_empty() {
        return;
    }
    let lines = (lines as usize % 3 + 1).min(members.len());
    let per_line = members.len().div_ceil(lines);
    for chunk in members.chunks(per_line) {
        let separator = if loose { " ,\t" } else { ", " };
        let value = chunk.join(separator);
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
}

/// What the verifier must answer.
#[derive(Debug, PartialEq)]
enum Expected {
    Accept,
    Refuse,
    Either,
}

fn verify(
    verifier: &Verifier,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Caller, comms::__internals::HeadCoverage), VerifyError> {
    let head = verifier.verify_head(method, uri, headers)?;
    let coverage = comms::__internals::head_coverage(&head);
    let caller = ready(head.verify_body(body))?;
    Ok((caller, coverage))
}

fuzz_target!(|input: Input| {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let method = &METHODS[input.method as usize % METHODS.len()];
    let host = HOSTS[input.host as usize % HOSTS.len()];

    // The target: path and query.
    let mut query = Vec::new();
    let query_text = input.query.as_ref().map(|pairs| {
        let mut text = Vec::new();
        for (name, value, plus) in pairs.iter().take(8) {
            let (decoded, encoded) = QUERY_NAMES[*name as usize % QUERY_NAMES.len()];
            text.push(format!("{encoded}={}", form_encode(value, *plus)));
            query.push((decoded.to_owned(), value.clone()));
        }
        text.join("&")
    });
    let path = PATHS[input.path as usize % PATHS.len()];
    let origin = match &query_text {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let uri_text = match input.target {
        Target::Origin => origin,
        Target::Absolute { https, authority } => {
            let scheme = if https { "https" } else { "http" };
            let authority = HOSTS[authority as usize % HOSTS.len()];
            format!("{scheme}://{authority}{origin}")
        }
        Target::Authority if *method == Method::CONNECT => {
            // No path, no query.
            query.clear();
            host.to_ascii_lowercase()
        }
        Target::Authority => return,
    };
    let Ok(uri) = uri_text.parse::<Uri>() else {
        return;
    };

    // The head.
    let mut headers = HeaderMap::new();
    for _ in 0..input.host_lines % 3 {
        headers.append("host", HeaderValue::from_static(host));
    }
    let mut dictionaries: HashMap<&'static str, Vec<(String, String)>> = HashMap::new();
    let mut field_lines: HashMap<&'static str, usize> = HashMap::new();
    for (name, value) in input.fields.iter().take(12) {
        let name = FIELDS[*name as usize % FIELDS.len()];
        let bytes = match value {
            FieldValue::Raw(bytes) => {
                dictionaries.remove(name);
                bytes
                    .iter()
                    .copied()
                    .filter(|b| (*b >= 0x20 && *b != 0x7f) || *b == b'\t')
                    .collect::<Vec<u8>>()
            }
            FieldValue::Dict(members, tight) => {
                let mut resolved: Vec<(String, String)> = Vec::new();
                let mut text = Vec::new();
                for (k, v) in members.iter().take(6) {
                    let key = DICT_KEYS[*k as usize % (DICT_KEYS.len() - 1)];
                    let (written, serialized) = DICT_VALUES[*v as usize % DICT_VALUES.len()];
                    text.push(format!("{key}{written}"));
                    match resolved.iter_mut().find(|(seen, _)| seen == key) {
                        Some(seen) => seen.1 = serialized.to_owned(),
                        None => resolved.push((key.to_owned(), serialized.to_owned())),
                    }
                }
                dictionaries.insert(name, resolved);
                text.join(if *tight { "," } else { ", " }).into_bytes()
            }
        };
        *field_lines.entry(name).or_default() += 1;
        headers.append(name, HeaderValue::from_bytes(&bytes).unwrap());
    }
    // Only a field sent once, as generated, has members the model knows.
    dictionaries.retain(|name, _| field_lines.get(name) == Some(&1));

    let body = &input.body[..input.body.len().min(256)];
    let sha256 = format!("sha-256=:{}:", BASE64.encode(Sha256::digest(body)));
    let sha512 = format!("sha-512=:{}:", BASE64.encode(Sha512::digest(body)));
    let wrong = format!(
        "sha-256=:{}:",
        BASE64.encode(Sha256::digest([body, b"x"].concat()))
    );
    let (digest_lines, digest): (Vec<String>, Option<Digests>) = match input.digest % 9 {
        0 => (vec![], None),
        1 => (
            vec![sha256.clone()],
            Some(Digests {
                sha256: Some(true),
                sha512: None,
            }),
        ),
        2 => (
            vec![sha512.clone()],
            Some(Digests {
                sha256: None,
                sha512: Some(true),
            }),
        ),
        3 => (
            vec![format!("{sha512}, {sha256}")],
            Some(Digests {
                sha256: Some(true),
                sha512: Some(true),
            }),
        ),
        4 => (
            vec![wrong],
            Some(Digests {
                sha256: Some(false),
                sha512: None,
            }),
        ),
        5 => (
            vec!["md5=:AAAA:".into()],
            Some(Digests {
                sha256: None,
                sha512: None,
            }),
        ),
        6 => (vec!["sha-256=abc".into()], None),
        7 => (
            vec![sha256.clone(), sha256.clone()],
            Some(Digests {
                sha256: Some(true),
                sha512: None,
            }),
        ),
        _ => (
            vec![format!("  {sha256} \t")],
            Some(Digests {
                sha256: Some(true),
                sha512: None,
            }),
        ),
    };
    for line in &digest_lines {
        headers.append("content-digest", HeaderValue::from_str(line).unwrap());
    }
    let content_length = match input.content_length % 4 {
        0 => None,
        1 => Some(body.len().to_string()),
        2 => Some("0".to_owned()),
        _ => Some("5".to_owned()),
    };
    if let Some(length) = &content_length {
        headers.insert("content-length", HeaderValue::from_str(length).unwrap());
    }
    let declares_body = content_length
        .as_deref()
        .is_some_and(|l| l.bytes().any(|b| b != b'0'));

    let scheme = [None, Some("http"), Some("HTTPS")][input.scheme as usize % 3];
    let authorities: &[&str] = [
        &[][..],
        &["h:8080"][..],
        &["H:8080", "h"][..],
        &["example.com"][..],
    ][input.authorities as usize % 4];
    let model = Request {
        method,
        uri: &uri,
        headers: &headers,
        scheme,
        authorities,
        query: &query,
        dictionaries: &dictionaries,
        digest,
        declares_body,
        now,
    };
    let built: Vec<Built> = input
        .signatures
        .iter()
        .take(8)
        .map(|s| model.sign(s))
        .collect();

    // The signature fields: several members of one label are one, the last (RFC 9651 §4.2.2).
    let mut signed = headers.clone();
    let members: Vec<&str> = built.iter().map(|b| b.member.as_str()).collect();
    let loose = built.iter().any(|b| b.loose);
    put_lines(
        &mut signed,
        "signature-input",
        &members,
        input.input_lines,
        loose,
    );
    let values: Vec<&str> = built.iter().filter_map(|b| b.value.as_deref()).collect();
    put_lines(
        &mut signed,
        "signature",
        &values,
        input.signature_lines,
        false,
    );

    // The model: each label's member, in the order each first appeared, and its value.
    let mut entries: Vec<(&str, usize)> = Vec::new();
    for (i, b) in built.iter().enumerate() {
        match entries.iter_mut().find(|(label, _)| *label == b.label) {
            Some(entry) => entry.1 = i,
            None => entries.push((b.label, i)),
        }
    }
    let value_of = |label: &str| {
        built
            .iter()
            .rev()
            .find(|b| b.label == label && b.value.is_some())
            .and_then(|b| b.value.as_deref())
    };
    // Whether entry `i` verifies on its own (its value, and its checks).
    // Whether signature `i` passes as one beside the first (the body aside).
    let passes = |i: usize| {
        let b = &built[i];
        let expected = format!("{}=:{}:", b.label, BASE64.encode(&b.expected_mac));
        b.verdict.and(Verdict::fail_if(
            value_of(b.label) != Some(expected.as_str()),
        ))
    };
    // Whether signature `i` passes as the one checked first, the body included.
    let passes_first = |i: usize| passes(i).and(Verdict::fail_if(built[i].body_uncovered));
    // Each field is at most 8 KiB, or it is refused unparsed.
    let size = |name: &str| -> usize { signed.get_all(name).iter().map(|v| v.len()).sum() };
    let oversized = size("signature-input") > 8192 || size("signature") > 8192;
    // What a verifier knowing the keys `keys` answers: its answer, the signature it checks,
    // and the other signatures by keys it knows.
    let judge = |keys: &[usize]| {
        let known = |i: usize| keys.contains(&built[i].key);
        let first = entries.iter().map(|(_, i)| *i).find(|i| known(*i));
        let others: Vec<usize> = entries
            .iter()
            .map(|(_, i)| *i)
            .filter(|i| Some(*i) != first && known(*i))
            .collect();
        let mut expected = Verdict::fail_if(values.is_empty() || oversized);
        match first {
            Some(first) => {
                let b = &built[first];
                expected = expected.and(passes_first(first));
                expected = expected.and(Verdict::fail_if(others.len() > 4));
                // A key signs once.
                let mut signers = vec![b.key];
                for other in &others {
                    expected = expected.and(Verdict::fail_if(signers.contains(&built[*other].key)));
                    signers.push(built[*other].key);
                }
                for other in &others {
                    expected = expected.and(built[*other].future);
                    // One that does not pass is left alone when it is outside the profile by
                    // its own parameters or coverage, and has the request refused otherwise:
                    // the model does not tell the two apart.
                    if passes(*other) != Verdict::Pass {
                        expected = expected.and(Verdict::Unsure);
                    }
                }
                if b.covers_digest {
                    // Every digest named must match, and one must be.
                    let matches = digest.is_some_and(|d| {
                        (d.sha256.is_some() || d.sha512.is_some())
                            && d.sha256 != Some(false)
                            && d.sha512 != Some(false)
                    });
                    expected = expected.and(Verdict::fail_if(!matches));
                } else {
                    expected = expected.and(Verdict::fail_if(!body.is_empty()));
                }
            }
            None => expected = Verdict::Fail,
        }
        let expected = match expected {
            Verdict::Pass => Expected::Accept,
            Verdict::Fail => Expected::Refuse,
            Verdict::Unsure => Expected::Either,
        };
        (expected, first, others)
    };
    const ALL_KEYS: [usize; KNOWN_KEYS] = [0, 1, 2];
    let (expected, first, others) = judge(&ALL_KEYS);

    let configured = |store: &Store, keys: &[usize]| {
        let mut verifier = Verifier::new().nonce_store(store.clone());
        for key in keys {
            let (key_id, service, secret) = KEYS[*key];
            verifier = verifier.key(key_id, service, secret);
        }
        if let Some(scheme) = scheme {
            verifier = verifier.scheme(scheme);
        }
        for authority in authorities {
            verifier = verifier.authority(*authority);
        }
        verifier
    };
    let store = Store::default();
    let verifier = configured(&store, &ALL_KEYS);

    let result = verify(&verifier, method, &uri, &signed, body);
    let recorded = store.take_recorded();
    let (caller, coverage) = match (result, &expected) {
        (Err(_), Expected::Refuse | Expected::Either) => {
            assert!(
                recorded.is_empty(),
                "a refused request recorded {recorded:?}"
            );
            return;
        }
        (Err(e), Expected::Accept) => panic!("refused ({e:?}) a request the model accepts"),
        (Ok(_), Expected::Refuse) => panic!("accepted a request the model refuses"),
        (Ok(accepted), Expected::Accept | Expected::Either) => accepted,
    };

    // Accepted: by the first signature under a known key.
    let first_index = first.expect("a signature under a known key");
    let first = &built[first_index];
    let (key_id, service, _) = KEYS[first.key];
    assert_eq!((caller.key_id(), caller.service_id()), (key_id, service));
    assert_eq!(coverage.covers_deadline, first.covers_deadline);
    assert_eq!(
        coverage.covered_fields.as_ref(),
        Some(&first.covered_fields)
    );

    // Its nonces: the first's, and each other valid signature's, one per service and nonce,
    // kept until the latest of their `created` can no longer pass. Also whether the model
    // cannot tell, and the other signatures that are valid.
    let nonces = |first: usize, others: &[usize]| {
        let keep_until =
            |created: i64| UNIX_EPOCH + Duration::from_secs((created + SKEW + 1) as u64);
        let mut wanted: Vec<(String, String, SystemTime)> = Vec::new();
        let mut unsure = false;
        let mut valid_others = Vec::new();
        for (i, b) in std::iter::once(first)
            .chain(others.iter().copied())
            .map(|i| (i, &built[i]))
        {
            if i != first {
                match passes(i) {
                    Verdict::Pass => valid_others.push(i),
                    Verdict::Unsure => {
                        unsure = true;
                        continue;
                    }
                    Verdict::Fail => continue,
                }
            }
            let service = KEYS[b.key].1.to_owned();
            let nonce = b.nonce.unwrap().to_owned();
            let until = keep_until(b.created.unwrap());
            match wanted
                .iter_mut()
                .find(|(s, n, _)| *s == service && *n == nonce)
            {
                Some(seen) => seen.2 = seen.2.max(until),
                None => wanted.push((service, nonce, until)),
            }
        }
        (wanted, unsure, valid_others)
    };
    let (wanted, unsure, valid_others) = nonces(first_index, &others);
    let sorted = |mut v: Vec<(String, String, SystemTime)>| {
        v.sort();
        v
    };
    if !unsure {
        assert_eq!(
            sorted(recorded.clone()),
            sorted(wanted.clone()),
            "the nonces recorded"
        );
    } else {
        for w in &wanted {
            assert!(
                recorded.iter().any(|r| r.0 == w.0 && r.1 == w.1),
                "{w:?} not recorded"
            );
        }
    }

    // The same request again: a replay.
    let again = verify(&verifier, method, &uri, &signed, body);
    match (&again, &expected) {
        (Err(VerifyError::Replayed), _) | (Err(_), Expected::Either) => {}
        _ => panic!("the same request again: {again:?}"),
    }
    assert!(
        store.take_recorded().is_empty(),
        "a replay recorded a nonce"
    );

    // Each other valid signature alone: its nonce is recorded, so it too is refused.
    for other in valid_others {
        let b = &built[other];
        let mut alone = headers.clone();
        alone.append("signature-input", HeaderValue::from_str(&b.member).unwrap());
        if let Some(value) = value_of(b.label) {
            alone.append("signature", HeaderValue::from_str(value).unwrap());
        }
        let result = verify(&verifier, method, &uri, &alone, body);
        assert!(result.is_err(), "signature {} alone passed again", b.label);
        assert!(
            store.take_recorded().is_empty(),
            "signature {} alone recorded a nonce",
            b.label
        );
    }

    // Through a gate and a server behind it, each verifying: admitted by the gate, and by the
    // server as the model says of a verifier knowing the server's keys (which may pick another
    // of the request's signatures); each nonce recorded once in each store (once in all when
    // theirs is one, the server leaving to the gate what it recorded), and a replay refused.
    let gate_store = Store(Default::default(), Some("fuzz"));
    let gate = configured(&gate_store, &ALL_KEYS);
    let server_keys: &[usize] = [&ALL_KEYS[..], &[2], &[1, 2], &[0]][input.behind as usize / 3 % 4];
    let (server, server_store) = match input.behind % 3 {
        0 if server_keys == ALL_KEYS => (gate.clone(), None),
        0 | 1 => {
            let other = Store(gate_store.0.clone(), Some("fuzz"));
            (configured(&other, server_keys), None)
        }
        _ => {
            let own = Store::default();
            (configured(&own, server_keys), Some(own))
        }
    };
    let (server_expected, server_first, server_others) = judge(server_keys);
    let gate_unsure = unsure || expected == Expected::Either;
    let (in_front, behind) = ready(comms::__internals::verify_behind(
        &gate, &server, method, &uri, &signed, body,
    ));
    let in_gate = gate_store.take_recorded();
    let in_own = server_store.as_ref().map(Store::take_recorded);
    match &in_front {
        Ok(a) => assert_eq!(a.key_id(), key_id),
        Err(_) if gate_unsure => return,
        Err(e) => panic!("refused in front ({e:?}) a request verified alone"),
    }
    if !gate_unsure {
        assert_eq!(sorted(in_gate), sorted(wanted.clone()), "recorded in front");
    }
    let behind = behind.expect("a request admitted in front goes on");
    match (&behind, server_expected) {
        (Err(_), Expected::Refuse | Expected::Either) => {
            if let Some(in_own) = &in_own {
                assert!(in_own.is_empty(), "refused behind, recorded {in_own:?}");
            }
        }
        (Err(e), Expected::Accept) => panic!("refused behind ({e:?}) what the model accepts"),
        (Ok(_), Expected::Refuse) => panic!("accepted behind what the model refuses"),
        (Ok(b), Expected::Accept | Expected::Either) => {
            let server_first = server_first.expect("a signature under a key it knows");
            assert_eq!(b.key_id(), KEYS[built[server_first].key].0);
            let (server_wanted, server_unsure, _) = nonces(server_first, &server_others);
            if let Some(in_own) = in_own
                && !server_unsure
            {
                assert_eq!(sorted(in_own), sorted(server_wanted), "recorded behind");
            }
        }
    }
    let (in_front, behind) = ready(comms::__internals::verify_behind(
        &gate, &server, method, &uri, &signed, body,
    ));
    assert!(
        in_front.is_err() && behind.is_none(),
        "a replay behind a gate: {in_front:?}, then {behind:?}"
    );
});
