//! Building request paths and queries from values, one percent-encoded piece at a time.
//!
//! A value placed in a path segment can never change the route: every byte outside
//! `A-Z a-z 0-9 - . _ ~` is percent-encoded (so `/`, `?`, `#` and `%` are carried literally),
//! and the values `.` and `..`, which every URL parser resolves as dot segments, are refused
//! with [`Error::Encode`], as is an empty value, which would collapse the segment.

use std::fmt::{self, Display, Write};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::Error;

/// Bytes that stay literal in encoded path segments and query components: RFC 3986's
/// unreserved set `A-Z a-z 0-9 - . _ ~` ([`comms_uri::is_unreserved`], in the form
/// `percent-encoding` takes; a test keeps the two equal). Everything else becomes `%XX`.
pub(crate) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

use comms_uri::is_unreserved;

/// Percent-encodes `value` as one query name or value (every byte outside the unreserved set).
fn encode_component(value: &str) -> impl fmt::Display + '_ {
    utf8_percent_encode(value, UNRESERVED)
}

/// Appends `/` and `value` as one encoded path segment.
///
/// ```
/// let mut path = String::from("/files");
/// comms::path::push_segment(&mut path, &"a/b?c").unwrap();
/// assert_eq!(path, "/files/a%2Fb%3Fc");
/// assert!(comms::path::push_segment(&mut path, &"..").is_err());
/// ```
pub fn push_segment(path: &mut String, value: &dyn Display) -> Result<(), Error> {
    // Written in place: most values (numbers, ids) need no encoding and no second buffer.
    let start = path.len();
    path.push('/');
    let _ = write!(path, "{value}");
    let text = &path[start + 1..];
    if let Err(e) = check_segment(text, false) {
        path.truncate(start);
        return Err(e);
    }
    if !text.bytes().all(is_unreserved) {
        let raw = path.split_off(start + 1);
        write_encoded(path, &raw);
    }
    Ok(())
}

/// Appends `/` and `value` as a trailing run of segments: `/` in the value separates segments
/// and is kept; each segment is encoded like [`push_segment`]. Empty segments are kept
/// (`a//b`); `.` and `..` segments are refused, and so are an empty value, which routers do
/// not match to a trailing parameter, and a value that starts with `/`: its
/// empty first segment would make `//`, which a URL parser can read as the start of an
/// authority and a server may collapse into another route.
///
/// ```
/// let mut path = String::from("/files");
/// comms::path::push_trailing(&mut path, &"docs/r\u{e9}sum\u{e9}.pdf").unwrap();
/// assert_eq!(path, "/files/docs/r%C3%A9sum%C3%A9.pdf");
/// assert!(comms::path::push_trailing(&mut path, &"docs/../../etc").is_err());
/// assert!(comms::path::push_trailing(&mut path, &"/etc/passwd").is_err());
/// ```
pub fn push_trailing(path: &mut String, value: &dyn Display) -> Result<(), Error> {
    let text = to_text(value);
    if text.is_empty() {
        // Routers match a trailing parameter (axum's `{*rest}`) only when it has something.
        return Err(Error::encode(
            "an empty value cannot fill a trailing parameter (a server's route for it would not \
             match the path)",
        ));
    }
    if text.starts_with('/') {
        return Err(Error::encode(format!(
            "`{text}` cannot fill a trailing parameter: a value starting with `/` would make `//`"
        )));
    }
    for segment in text.split('/') {
        check_segment(segment, true)?;
    }
    path.push('/');
    for (i, segment) in text.split('/').enumerate() {
        if i > 0 {
            path.push('/');
        }
        write_encoded(path, segment);
    }
    Ok(())
}

/// Appends `name=value` to a query string, both encoded, with `&` between pairs.
///
/// ```
/// let mut query = String::new();
/// comms::path::push_query(&mut query, "q", &"a b&c");
/// comms::path::push_query(&mut query, "per-page", &20);
/// assert_eq!(query, "q=a%20b%26c&per-page=20");
/// ```
pub fn push_query(query: &mut String, name: &str, value: &dyn Display) {
    if !query.is_empty() {
        query.push('&');
    }
    let _ = write!(query, "{}=", encode_component(name));
    let text = to_text(value);
    let _ = write!(query, "{}", encode_component(&text));
}

fn to_text(value: &dyn Display) -> String {
    let mut text = String::new();
    let _ = write!(text, "{value}");
    text
}

fn check_segment(text: &str, allow_empty: bool) -> Result<(), Error> {
    match text {
        "" if !allow_empty => Err(Error::encode(
            "an empty value cannot be a path segment (it would change the route)",
        )),
        "." | ".." => Err(Error::encode(format!(
            "`{text}` cannot be a path segment (URL parsers resolve it as a dot segment)"
        ))),
        _ => Ok(()),
    }
}

fn write_encoded(out: &mut String, text: &str) {
    let _ = write!(out, "{}", utf8_percent_encode(text, UNRESERVED));
}

/// Checks a hand-written path: it must start with `/` and contain only characters a request
/// line carries as they are (unreserved, sub-delims, `:`, `@`, `/` and `%XX` escapes), and no
/// dot segment, spelled plainly or with `%2e`, which URL parsers would resolve away.
pub(crate) fn check_raw_path(path: &str) -> Result<(), Error> {
    if !path.starts_with('/') {
        return Err(Error::encode(format!("path `{path}` must start with `/`")));
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return Err(Error::encode(format!(
                    "path `{path}` has a `%` that starts no escape"
                )));
            }
            i += 3;
            continue;
        }
        if !(b == b'/' || comms_uri::is_pchar(b)) {
            return Err(Error::encode(format!(
                "path `{path}` has a character that must be percent-encoded at byte {i}; \
                 build it with `Call::segment`"
            )));
        }
        i += 1;
    }
    if bytes.split(|&b| b == b'/').any(comms_uri::is_dot_segment) {
        return Err(Error::encode(format!(
            "path `{path}` has a dot segment, which URL parsers resolve away"
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_encode_set_is_the_unreserved_rule() {
        for b in 0..=127u8 {
            let byte = [b];
            let text = std::str::from_utf8(&byte).unwrap();
            let encoded = utf8_percent_encode(text, UNRESERVED).to_string();
            assert_eq!(encoded.len() == 1, is_unreserved(b), "byte {b}");
        }
    }

    #[test]
    fn segments_cannot_escape() {
        let mut p = String::new();
        push_segment(&mut p, &"../x").unwrap();
        assert_eq!(p, "/..%2Fx");
        for bad in [".", "..", ""] {
            assert!(push_segment(&mut String::new(), &bad).is_err(), "{bad:?}");
        }
        let mut p = String::new();
        push_segment(&mut p, &"...").unwrap();
        assert_eq!(p, "/...");
        let mut p = String::new();
        push_segment(&mut p, &"%2e%2e").unwrap();
        assert_eq!(p, "/%252e%252e");
    }

    #[test]
    fn trailing_keeps_slashes() {
        let mut p = String::from("/f");
        push_trailing(&mut p, &"a/b c/").unwrap();
        assert_eq!(p, "/f/a/b%20c/");
        assert!(push_trailing(&mut String::new(), &"a/./b").is_err());
        assert!(push_trailing(&mut String::new(), &"..").is_err());
        for bad in ["/", "/etc/passwd", "//host/x"] {
            let mut p = String::from("/files");
            assert!(push_trailing(&mut p, &bad).is_err(), "{bad}");
            assert_eq!(p, "/files", "nothing is written for a refused value");
        }
    }

    #[test]
    fn raw_paths_are_checked() {
        assert!(check_raw_path("/users/1").is_ok());
        assert!(check_raw_path("/a%2Fb/~x").is_ok());
        assert!(check_raw_path("users").is_err());
        assert!(check_raw_path("/a b").is_err());
        assert!(check_raw_path("/a?b").is_err());
        assert!(check_raw_path("/a#b").is_err());
        assert!(check_raw_path("/a/../b").is_err());
        assert!(check_raw_path("/a/%2e%2E/b").is_err());
        assert!(check_raw_path("/a/.%2e/b").is_err());
        assert!(check_raw_path("/a/%2e").is_err());
        assert!(check_raw_path("/a/%2e%2e%2e/b").is_ok());
        assert!(check_raw_path("/a%zz").is_err());
        assert!(check_raw_path("/a/..").is_err());
        assert!(check_raw_path("/./a").is_err());
        assert!(check_raw_path("/a/.../b").is_ok());
        assert!(check_raw_path("/a/.b/b.").is_ok());
        assert!(check_raw_path("/a/%2e%41").is_ok());
        assert!(check_raw_path("/a//b/").is_ok());
    }

    /// Every string of at most `most` of `pieces`, in order and without repeats: the values an
    /// exhaustive test of a path rule runs through.
    pub(crate) fn strings_of(pieces: &[&str], most: usize) -> Vec<String> {
        let mut strings = vec![String::new()];
        for _ in 0..most {
            let longer: Vec<String> = strings
                .iter()
                .flat_map(|s| pieces.iter().map(move |p| format!("{s}{p}")))
                .collect();
            strings.extend(longer);
        }
        strings.sort();
        strings.dedup();
        strings
    }

    #[test]
    fn dot_segments_match_a_decode_and_compare_reference() {
        // The reference: decode every `%2e` (any case), then compare with `.` and `..`.
        let reference = |segment: &str| {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            decoded == "." || decoded == ".."
        };
        let segments = strings_of(&[".", "%2e", "%2E", "a", "%41", "%25", "2e", "-"], 4);
        assert!(segments.len() > 4000);
        for segment in &segments {
            assert_eq!(
                comms_uri::is_dot_segment(segment.as_bytes()),
                reference(segment),
                "{segment:?}"
            );
            let path = format!("/a/{segment}/b");
            assert_eq!(check_raw_path(&path).is_err(), reference(segment), "{path}");
        }
    }
}
