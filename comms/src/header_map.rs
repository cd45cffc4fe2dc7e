//! Header maps: checking a header a user gives (a call's, a view's, a default, a built
//! response's), laying one map over another, the rule a call's headers, a view's headers,
//! a header hook's and a served answer's all follow, and showing one by its names alone.

use http::{HeaderMap, HeaderName, HeaderValue};

/// A header map shown by its names only, for `Debug`: values may be credentials (cookies,
/// tokens).
pub(crate) struct HeaderNames<'a>(pub(crate) &'a HeaderMap);

impl std::fmt::Debug for HeaderNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Why a header a user gave was not taken.
pub(crate) enum Refusal {
    /// The name is not a header name.
    Name,
    /// The name is one the caller does not accept (comms sets it, say).
    Refused(HeaderName),
    /// The value cannot travel as it is, for the reason given (to follow "the value of
    /// `<name>`"): it has a character a header cannot carry (a line break, a control
    /// character); or, in a request, white space at either end, which the receiver strips, or
    /// a character outside ASCII, which a signature cannot cover.
    Value(HeaderName, &'static str),
}

/// Why a value with a line break or control character is refused.
const UNCARRIED: &str = "has a line break or control character, which HTTP headers cannot carry";

/// `name` and `value` as a request header, unless the name is not one, `refused` refuses it,
/// or the value cannot be carried as it is. Each caller says why in its own words.
pub(crate) fn checked(
    name: &str,
    value: String,
    refused: fn(&HeaderName) -> bool,
) -> Result<(HeaderName, HeaderValue), Refusal> {
    let (name, value) = checked_response(name, value, refused)?;
    match unsigned(value.as_bytes()) {
        Some(why) => Err(Refusal::Value(name, why)),
        None => Ok((name, value)),
    }
}

/// [`checked`] for a response header, which no signature covers: a value with white space at
/// either end is taken, and arrives trimmed.
pub(crate) fn checked_response(
    name: &str,
    value: String,
    refused: fn(&HeaderName) -> bool,
) -> Result<(HeaderName, HeaderValue), Refusal> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Refusal::Name)?;
    if refused(&name) {
        return Err(Refusal::Refused(name));
    }
    match HeaderValue::try_from(value) {
        Ok(value) => Ok((name, value)),
        Err(_) => Err(Refusal::Value(name, UNCARRIED)),
    }
}

/// Why a request header's value a signature is to cover would not verify as it was signed
/// (to follow "the value of `<name>`"), if it would not: white space at either end, which a
/// receiver strips ([`is_padded`]); or a byte outside ASCII, which RFC 9421 §2.5 leaves out
/// of a signature base (independent verifiers refuse it).
pub(crate) fn unsigned(value: &[u8]) -> Option<&'static str> {
    if is_padded(value) {
        Some("has white space at either end, which the receiver strips")
    } else if !value.is_ascii() {
        Some("has a character outside ASCII, which an HTTP signature cannot cover")
    } else {
        None
    }
}

/// Whether a header value starts or ends with white space, which a receiver strips: sent in a
/// signed request, it would arrive changed, and its signature (over the trimmed value) still
/// verify.
pub(crate) fn is_padded(value: &[u8]) -> bool {
    let white = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    white(value.first()) || white(value.last())
}

/// Whether a received response's header belongs to the connection it came on rather than to
/// the message: `Transfer-Encoding` and the hop-by-hop headers (RFC 9110 §7.6.1). A server
/// answering with a response it received (a gateway passing on an upstream's answer) sets
/// these for its own connection. (`Content-Length` is framing too, but still means the size of
/// the resource in the answer to a HEAD: whoever knows the request decides.)
fn is_connection_header(name: &HeaderName) -> bool {
    name == http::header::TRANSFER_ENCODING || crate::signing::is_hop_by_hop(name)
}

/// Removes from a received response's `headers` what belonged to the connection it came on
/// (see [`is_connection_header`]), and the headers its `Connection` header names.
pub(crate) fn remove_connection_headers(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let own: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_connection_header(name))
        .cloned()
        .collect();
    for name in own {
        headers.remove(name);
    }
}

/// Lays `over` onto `out`: each name in `over` replaces `out`'s values of that name with all of
/// its own; names only in `out` stay.
pub(crate) fn lay_over(out: &mut HeaderMap, over: &HeaderMap) {
    let mut previous: Option<&HeaderName> = None;
    for (name, value) in over {
        if previous == Some(name) {
            out.append(name.clone(), value.clone());
        } else {
            out.insert(name.clone(), value.clone());
        }
        previous = Some(name);
    }
}

/// A clone of `base` with `over` laid onto it (see [`lay_over`]).
pub(crate) fn laid_over(base: &HeaderMap, over: &HeaderMap) -> HeaderMap {
    let mut out = base.clone();
    lay_over(&mut out, over);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_would_not_arrive_as_it_is_is_refused() {
        let none = |_: &HeaderName| false;
        for bad in [
            " a", "a ", "\ta", "a\t", " ", "a\nb", "a\0b", "Zoë", "\u{7f}",
        ] {
            let refused = checked("x-note", bad.to_owned(), none);
            assert!(matches!(refused, Err(Refusal::Value(..))), "{bad:?}");
        }
        for good in ["", "a", "a b", "a\tb", "~!\"#"] {
            let (_, value) = checked("x-note", good.to_owned(), none).ok().unwrap();
            assert_eq!(value.as_bytes(), good.as_bytes());
        }
        // No signature covers a response's: white space is taken (and arrives trimmed).
        let (_, padded) = checked_response("x-note", " a ".to_owned(), none)
            .ok()
            .unwrap();
        assert_eq!(padded.as_bytes(), b" a ");
    }

    #[test]
    fn a_name_laid_over_replaces_all_its_values_and_keeps_its_own() {
        let mut out = HeaderMap::new();
        out.append("x-a", "1".parse().unwrap());
        out.append("x-a", "2".parse().unwrap());
        out.insert("x-keep", "k".parse().unwrap());
        let mut over = HeaderMap::new();
        over.append("x-a", "3".parse().unwrap());
        over.append("x-a", "4".parse().unwrap());
        lay_over(&mut out, &over);
        let a: Vec<_> = out.get_all("x-a").iter().collect();
        assert_eq!(a, ["3", "4"]);
        assert_eq!(out["x-keep"], "k");
    }
}
