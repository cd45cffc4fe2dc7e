//! The URI and header-name rules `comms` and `comms-macros` share, so that what the `#[service_client]` macro
//! accepts at compile time and what the runtime accepts at run time are one rule, not two
//! copies that drift apart:
//!
//! - [`BaseUrl::parse`]: what a base URL may be (`http` or `https`, a host, an optional port
//!   and path prefix; no query, fragment, credentials, whitespace or control characters);
//! - [`is_unreserved`] and [`is_pchar`]: which bytes a request path carries as they are;
//! - [`is_reserved_header`] and [`is_hop_by_hop_header`]: which header names a call may not
//!   set, the macro's `#[header("..")]` arguments and the runtime's `Call::header` alike.
//!
//! This crate is an implementation detail of `comms`; its API follows what `comms` needs and
//! may change in any release. Use `comms` instead.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;

/// Whether `b` is in RFC 3986's unreserved set, `A-Z a-z 0-9 - . _ ~`: the bytes a value keeps
/// as they are when it is percent-encoded into a path segment or a query component.
pub const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether `b` may stand as it is in a path segment (RFC 3986 `pchar` without `%`): the
/// unreserved set, the sub-delimiters `! $ & ' ( ) * + , ; =`, `:` and `@`. `/` separates
/// segments and `%` starts an escape; callers handle both themselves.
pub const fn is_pchar(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// Whether a path segment is `.` or `..`, each dot written plainly or percent-encoded (`%2e`,
/// `%2E`): the segments URL parsers resolve away (RFC 3986 §5.2.4, and the WHATWG URL
/// standard, which also decodes `%2e`), so that a request would not reach the path written.
///
/// ```
/// assert!(comms_uri::is_dot_segment(b".%2E"));
/// assert!(!comms_uri::is_dot_segment(b"..."));
/// ```
pub fn is_dot_segment(segment: &[u8]) -> bool {
    let mut dots = 0;
    let mut rest = segment;
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'.' {
            rest = tail;
        } else if rest.len() >= 3 && first == b'%' && rest[1..3].eq_ignore_ascii_case(b"2e") {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    matches!(dots, 1 | 2)
}

/// The header fields comms writes on every request itself, lower case: the signature's
/// (RFC 9421 and legacy), and the framing's. A second value of any would change what the
/// signature or the framing means, so a call may not set them.
pub const RESERVED_HEADERS: [&str; 9] = [
    "content-digest",
    "signature-input",
    "signature",
    "x-service-id",
    "x-timestamp",
    "x-signature",
    "host",
    "content-length",
    "transfer-encoding",
];

/// The header fields comms writes on each attempt from what the call runs in, lower case: the
/// time left of its deadline and the W3C trace context. A call's own value would be replaced
/// (or, with no deadline, taken by the receiver for one), so a call may not set them.
pub const CONTEXT_HEADERS: [&str; 3] = ["comms-deadline-ms", "traceparent", "tracestate"];

/// The hop-by-hop header fields (RFC 9110 §7.6.1), lower case: an intermediary removes them
/// (and HTTP/2 cannot carry them), so a signature covering one would fail on the way.
pub const HOP_BY_HOP_HEADERS: [&str; 6] = [
    "connection",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-connection",
];

/// Whether `name` (in any case) is one of the [`RESERVED_HEADERS`].
///
/// ```
/// assert!(comms_uri::is_reserved_header("Content-Digest"));
/// assert!(!comms_uri::is_reserved_header("X-Request-Id"));
/// ```
pub fn is_reserved_header(name: &str) -> bool {
    RESERVED_HEADERS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
}

/// Whether `name` (in any case) is one of the [`CONTEXT_HEADERS`].
///
/// ```
/// assert!(comms_uri::is_context_header("Comms-Deadline-Ms"));
/// assert!(!comms_uri::is_context_header("Idempotency-Key"));
/// ```
pub fn is_context_header(name: &str) -> bool {
    CONTEXT_HEADERS
        .iter()
        .any(|context| context.eq_ignore_ascii_case(name))
}

/// Whether `name` (in any case) is one of the [`HOP_BY_HOP_HEADERS`].
///
/// ```
/// assert!(comms_uri::is_hop_by_hop_header("Keep-Alive"));
/// assert!(!comms_uri::is_hop_by_hop_header("Accept"));
/// ```
pub fn is_hop_by_hop_header(name: &str) -> bool {
    HOP_BY_HOP_HEADERS
        .iter()
        .any(|hop| hop.eq_ignore_ascii_case(name))
}

/// A base URL split into its parts, as written (nothing is normalized or decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseUrl<'a> {
    /// `"http"` or `"https"`, in lower case whatever the case it was written in.
    pub scheme: &'static str,
    /// The host as written, brackets included for an IPv6 literal (`[::1]`).
    pub host: &'a str,
    /// The port when one is written.
    pub port: Option<u16>,
    /// The path prefix as written: empty, or starting with `/`.
    pub path: &'a str,
}

impl<'a> BaseUrl<'a> {
    /// Splits `url` into its parts, refusing what a base URL must not have.
    ///
    /// ```
    /// use comms_uri::BaseUrl;
    ///
    /// let url = BaseUrl::parse("http://users.internal:8080/api").unwrap();
    /// assert_eq!((url.host, url.port, url.path), ("users.internal", Some(8080), "/api"));
    /// let err = BaseUrl::parse("http://users.internal/?v=1").unwrap_err();
    /// assert_eq!(err.to_string(), "it must not have a query (`?`)");
    /// ```
    pub fn parse(url: &'a str) -> Result<Self, BaseUrlError> {
        // Schemes are case-insensitive (RFC 3986 §3.1); the part reports it in lower case.
        let starts = |prefix: &str| {
            url.get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        };
        let (scheme, rest) = if starts("http://") {
            ("http", &url["http://".len()..])
        } else if starts("https://") {
            ("https", &url["https://".len()..])
        } else {
            return Err(BaseUrlError::Scheme);
        };
        if url.contains('?') {
            return Err(BaseUrlError::Query);
        }
        if url.contains('#') {
            return Err(BaseUrlError::Fragment);
        }
        // A `\` is a `/` to a URL parser for `http`, and a separator to nobody else.
        if let Some(c) = url
            .chars()
            .find(|&c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return Err(BaseUrlError::Char(c));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(BaseUrlError::Credentials);
        }
        // A `:` after an IPv6 literal's closing bracket, or anywhere in a name, starts the port.
        let port_at = match authority.rfind(']') {
            Some(close) => authority[close..].find(':').map(|i| close + i),
            None => authority.rfind(':'),
        };
        let (host, port) = match port_at {
            Some(i) => (&authority[..i], Some(&authority[i + 1..])),
            None => (authority, None),
        };
        if host.is_empty() || host == "[]" {
            return Err(BaseUrlError::NoHost);
        }
        match is_host(host) {
            Host::Fine => {}
            Host::Malformed => return Err(BaseUrlError::Host(host.to_owned())),
            Host::ShortAddress => return Err(BaseUrlError::Address(host.to_owned())),
            Host::NotAscii => return Err(BaseUrlError::NotAscii(host.to_owned())),
        }
        let port = match port {
            Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => Some(
                port.parse::<u16>()
                    .map_err(|_| BaseUrlError::Port(port.to_owned()))?,
            ),
            Some(port) => return Err(BaseUrlError::Port(port.to_owned())),
            None => None,
        };
        Ok(BaseUrl {
            scheme,
            host,
            port,
            path,
        })
    }
}

/// Whether `host` is one a URL parser reads as written: an IPv6 literal in brackets (without a
/// zone), a dotted IPv4 address, or a name of ASCII letters, digits, `-`, `_` and `~` in labels
/// that `.` separates, none of them empty but a last after a final `.`. A name whose last label
/// is a number is taken for an IPv4 address by URL parsers (`http://10.1` is `10.0.0.1`, `010`
/// is octal), so it must be one written out in full, which means the same to every reader.
///
/// A name outside ASCII is mapped by URL parsers (IDNA: `１０。１` is `10.1`, an address), which
/// this crate, without the mapping tables, cannot foresee: it is refused, and written in its
/// ASCII form (`xn--bcher-kva.example` for `bücher.example`) it means the same to all. Whether
/// an `xn--` label is valid Punycode is left to the URL parser: `comms` checks it when a client
/// is built, not when a `base_url` is compiled.
fn is_host(host: &str) -> Host {
    if let Some(inner) = host.strip_prefix('[') {
        let ip = inner.strip_suffix(']');
        return match ip.is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()) {
            true => Host::Fine,
            false => Host::Malformed,
        };
    }
    if !host.is_ascii() {
        return Host::NotAscii;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if !host.bytes().all(is_unreserved) || name.split('.').any(str::is_empty) {
        return Host::Malformed;
    }
    let last = name.rsplit('.').next();
    // A number as URL parsers read one: decimal digits, or `0x` and hexadecimal ones.
    let numeric = last.is_some_and(|label| {
        !label.is_empty()
            && (label.bytes().all(|b| b.is_ascii_digit())
                || label
                    .get(..2)
                    .filter(|x| x.eq_ignore_ascii_case("0x"))
                    .is_some_and(|_| label[2..].bytes().all(|b| b.is_ascii_hexdigit())))
    });
    match !numeric || name.parse::<std::net::Ipv4Addr>().is_ok() {
        true => Host::Fine,
        false => Host::ShortAddress,
    }
}

/// What [`is_host`] found.
enum Host {
    Fine,
    Malformed,
    /// A name with characters outside ASCII.
    NotAscii,
    /// A name whose last label is a number, but no dotted IPv4 address written out in full.
    ShortAddress,
}

/// Why a base URL was refused. Its `Display` reads as the end of a sentence about the URL:
/// "invalid `base_url`: it must not have a query (`?`)".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BaseUrlError {
    /// It does not start with `http://` or `https://`.
    Scheme,
    /// It has a query.
    Query,
    /// It has a fragment.
    Fragment,
    /// It contains whitespace or a control character.
    Char(char),
    /// It carries `user@` or `user:password@`.
    Credentials,
    /// Its host is empty.
    NoHost,
    /// Its host is malformed: an unclosed bracket, an IPv6 literal that is not one (or has a
    /// zone), a character a host name cannot have, or an empty label.
    Host(String),
    /// Its host has characters outside ASCII, which URL parsers map (IDNA) to others: write it
    /// in its ASCII form (`xn--bcher-kva.example` for `bücher.example`).
    NotAscii(String),
    /// Its host ends in a number, which URL parsers read as an IPv4 address, but is not one
    /// written out in full as four decimal numbers (`10.1`, `010.0.0.1`, `1.2.3.999`).
    Address(String),
    /// Its port is not a number from 0 to 65535, written in decimal digits alone.
    Port(String),
}

impl fmt::Display for BaseUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scheme => f.write_str("it must start with `http://` or `https://`"),
            Self::Query => f.write_str("it must not have a query (`?`)"),
            Self::Fragment => f.write_str("it must not have a fragment (`#`)"),
            Self::Char(c) => write!(f, "it must not contain `{}`", c.escape_default()),
            Self::Credentials => f.write_str("it must not carry credentials (`user@`)"),
            Self::NoHost => f.write_str("it has no host"),
            Self::Host(host) => write!(f, "`{host}` is not a host"),
            Self::NotAscii(host) => write!(
                f,
                "`{host}` is not ASCII: write an internationalized name in its ASCII form \
                 (`xn--...`, as `bücher.example` is `xn--bcher-kva.example`)"
            ),
            Self::Address(host) => write!(
                f,
                "`{host}` is read as an IPv4 address; write one as four decimal numbers \
                 without leading zeros (`10.0.0.1`)"
            ),
            Self::Port(port) => write!(f, "`{port}` is not a port number"),
        }
    }
}

impl std::error::Error for BaseUrlError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_base_urls_split_into_parts() {
        let cases = [
            (
                "http://users.internal:8080",
                ("http", "users.internal", Some(8080), ""),
            ),
            ("https://h", ("https", "h", None, "")),
            ("http://h/api/v1/", ("http", "h", None, "/api/v1/")),
            ("http://127.0.0.1:1", ("http", "127.0.0.1", Some(1), "")),
            ("http://[::1]:8080/x", ("http", "[::1]", Some(8080), "/x")),
            ("http://[::1]", ("http", "[::1]", None, "")),
            (
                "HTTPS://Users.Internal/x",
                ("https", "Users.Internal", None, "/x"),
            ),
            ("http://a_b~c-d:0080", ("http", "a_b~c-d", Some(80), "")),
            (
                "http://xn--bcher-kva.example",
                ("http", "xn--bcher-kva.example", None, ""),
            ),
            ("http://127.0.0.1./x", ("http", "127.0.0.1.", None, "/x")),
            ("http://v1.2x", ("http", "v1.2x", None, "")),
            ("http://0xcafe-svc:8", ("http", "0xcafe-svc", Some(8), "")),
            (
                "http://[::ffff:10.0.0.1]",
                ("http", "[::ffff:10.0.0.1]", None, ""),
            ),
        ];
        for (url, (scheme, host, port, path)) in cases {
            assert_eq!(
                BaseUrl::parse(url),
                Ok(BaseUrl {
                    scheme,
                    host,
                    port,
                    path
                }),
                "{url}"
            );
        }
    }

    #[test]
    fn refused_base_urls_say_why() {
        let cases = [
            ("users.internal", BaseUrlError::Scheme),
            ("ftp://h", BaseUrlError::Scheme),
            ("http://", BaseUrlError::NoHost),
            ("http://:80", BaseUrlError::NoHost),
            ("http://[]:80", BaseUrlError::NoHost),
            ("http://h?x=1", BaseUrlError::Query),
            ("http://h#f", BaseUrlError::Fragment),
            ("http://u@h", BaseUrlError::Credentials),
            ("http://u:p@h/", BaseUrlError::Credentials),
            ("http://h:port", BaseUrlError::Port("port".into())),
            ("http://h:99999", BaseUrlError::Port("99999".into())),
            ("http://h:", BaseUrlError::Port(String::new())),
            ("http://[::1:80", BaseUrlError::Host("[::1".into())),
            ("http://h /x", BaseUrlError::Char(' ')),
            ("http://h/\tx", BaseUrlError::Char('\t')),
            ("http://127.0.0.1\\api", BaseUrlError::Char('\\')),
            ("http://h:+80", BaseUrlError::Port("+80".into())),
            ("http://h:-1", BaseUrlError::Port("-1".into())),
            ("http://a:b:80", BaseUrlError::Host("a:b".into())),
            ("http://::1", BaseUrlError::Host(":".into())),
            ("http://[zz]", BaseUrlError::Host("[zz]".into())),
            (
                "http://[fe80::1%25eth0]",
                BaseUrlError::Host("[fe80::1%25eth0]".into()),
            ),
            ("http://h^x", BaseUrlError::Host("h^x".into())),
            ("http://h<x>", BaseUrlError::Host("h<x>".into())),
            ("http://h%41x", BaseUrlError::Host("h%41x".into())),
            ("http://h,x", BaseUrlError::Host("h,x".into())),
            ("http://a..b", BaseUrlError::Host("a..b".into())),
            ("http://.h", BaseUrlError::Host(".h".into())),
            ("http://..", BaseUrlError::Host("..".into())),
            (
                "http://1.2.3.999",
                BaseUrlError::Address("1.2.3.999".into()),
            ),
            ("http://10.1", BaseUrlError::Address("10.1".into())),
            (
                "http://010.0.0.1",
                BaseUrlError::Address("010.0.0.1".into()),
            ),
            ("http://h.0x7f", BaseUrlError::Address("h.0x7f".into())),
            ("http://１０.１", BaseUrlError::NotAscii("１０.１".into())),
            ("http://10。1", BaseUrlError::NotAscii("10。1".into())),
            ("http://0ｘ7f", BaseUrlError::NotAscii("0ｘ7f".into())),
            (
                "http://bücher.example",
                BaseUrlError::NotAscii("bücher.example".into()),
            ),
        ];
        for (url, why) in cases {
            assert_eq!(BaseUrl::parse(url), Err(why), "{url}");
        }
    }

    #[test]
    fn dot_segments_are_one_or_two_dots_however_written() {
        for dot in [".", "..", "%2e", "%2E.", ".%2e", "%2e%2E"] {
            assert!(is_dot_segment(dot.as_bytes()), "{dot}");
        }
        for not in ["", "...", "%2e%2e%2e", ".a", "%2", "%2f", "%252e", "a."] {
            assert!(!is_dot_segment(not.as_bytes()), "{not}");
        }
    }

    #[test]
    fn character_classes_nest() {
        for b in 0..=255u8 {
            if is_unreserved(b) {
                assert!(is_pchar(b), "{b}");
            }
        }
        let pchar: String = (0..=255u8)
            .filter(|&b| is_pchar(b) && !b.is_ascii_alphanumeric())
            .map(char::from)
            .collect();
        assert_eq!(pchar, "!$&'()*+,-.:;=@_~");
        assert!(!is_pchar(b'/') && !is_pchar(b'%') && !is_pchar(b'?') && !is_pchar(0x80));
    }
}
