//! The route template parser: a pure `&str` → segments function with byte ranges, so that every
//! error can point inside the path literal. Knows nothing of `proc_macro`.

use std::fmt;
use std::ops::Range;

/// One `/`-separated piece of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Literal text, sent as written.
    Static(Range<usize>),
    /// `<name>`: one encoded segment. `name` is the range of the name inside the brackets.
    Param { name: Range<usize> },
    /// `<name..>`: the rest of the path, `/` kept, each segment encoded.
    Trailing { name: Range<usize> },
}

/// A parsed route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) segments: Vec<Segment>,
    /// Whether the route ends with `/` (`/items/` or just `/`).
    pub(crate) trailing_slash: bool,
}

/// What is wrong with a route, and where (a byte range of the route text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TemplateError {
    pub(crate) kind: ErrorKind,
    pub(crate) span: Range<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    MissingLeadingSlash,
    EmptySegment,
    DotSegment,
    /// `?` and what follows: the names of the `<name>` parameters written there, Rocket's way.
    Query(Vec<String>),
    Fragment,
    BadChar(char),
    BadEscape,
    Unclosed,
    Unopened,
    EmptyName,
    /// A parameter's name that is no identifier; the one meant, when it can be told (`<id: u64>`
    /// is `<id>`, `<user-id>` is `<user_id>`).
    BadName(Option<String>),
    /// `<id: u64>`: a type written in a parameter, whose name is `id`.
    TypedName(String),
    PartialSegment,
    TrailingNotLast,
    Duplicate,
    /// `{name}` (or `{*name}`), as axum and OpenAPI write a parameter: its comms spelling.
    Braced(String),
    /// A whole URL where the path goes.
    AbsoluteUrl,
    /// `<name...>`: a trailing parameter with three dots.
    ThreeDots,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::MissingLeadingSlash => f.write_str("a route must start with `/`"),
            ErrorKind::EmptySegment => f.write_str("empty segment (`//`) in route"),
            ErrorKind::DotSegment => f.write_str(
                "`.` and `..` segments (`%2e` is a dot) are resolved away by URL parsers; \
                 remove them",
            ),
            ErrorKind::Query(names) if names.is_empty() => f.write_str(
                "a route cannot contain `?`: mark query arguments with `#[query]` instead",
            ),
            ErrorKind::Query(names) => {
                let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                let list = match quoted.split_last() {
                    Some((last, [])) => last.clone(),
                    Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                    None => String::new(),
                };
                write!(
                    f,
                    "a route cannot contain `?`: remove the query from the route, and mark {list} \
                     `#[query]`"
                )
            }
            ErrorKind::Fragment => f.write_str("a route cannot contain `#`"),
            ErrorKind::BadChar(c) => write!(
                f,
                "`{}` is not allowed in a route; percent-encode it",
                c.escape_default()
            ),
            ErrorKind::BadEscape => f.write_str("`%` must start an escape of two hex digits"),
            ErrorKind::Unclosed => f.write_str("unclosed parameter: expected `>`"),
            ErrorKind::Unopened => f.write_str("`>` closes no parameter"),
            ErrorKind::EmptyName => f.write_str("parameter has no name: expected `<name>`"),
            ErrorKind::BadName(None) => f.write_str("parameter name must be a Rust identifier"),
            ErrorKind::BadName(Some(meant)) => write!(
                f,
                "parameter name must be a Rust identifier: write `<{meant}>`"
            ),
            ErrorKind::TypedName(name) => write!(
                f,
                "a route parameter is only a name: write `<{name}>`, and give the type to the \
                 argument `{name}`"
            ),
            ErrorKind::PartialSegment => f.write_str(
                "a parameter must be a whole segment: write `/<name>`, not `/prefix<name>`",
            ),
            ErrorKind::TrailingNotLast => {
                f.write_str("a trailing parameter `<name..>` must be the last segment")
            }
            ErrorKind::Duplicate => f.write_str("parameter appears more than once in the route"),
            ErrorKind::Braced(spelling) => write!(
                f,
                "a route parameter is written `{spelling}`, not in braces"
            ),
            ErrorKind::AbsoluteUrl => f.write_str(
                "a route is a path, starting with `/`: the scheme and host go in `base_url`",
            ),
            ErrorKind::ThreeDots => {
                f.write_str("a trailing parameter is written with two dots: `<name..>`")
            }
        }
    }
}

impl Template {
    /// The parameters' names with their ranges, in route order.
    pub(crate) fn params<'a>(
        &'a self,
        text: &'a str,
    ) -> impl Iterator<Item = (&'a str, Range<usize>, bool)> + 'a {
        self.segments.iter().filter_map(move |s| match s {
            Segment::Param { name } => Some((&text[name.clone()], name.clone(), false)),
            Segment::Trailing { name } => Some((&text[name.clone()], name.clone(), true)),
            Segment::Static(_) => None,
        })
    }
}

/// Parses a route, reporting every error found (not only the first).
pub(crate) fn parse(text: &str) -> Result<Template, Vec<TemplateError>> {
    let mut errors = Vec::new();
    let mut err = |kind, span: Range<usize>| errors.push(TemplateError { kind, span });
    if !text.starts_with('/') {
        match text.find("://") {
            Some(end) => err(ErrorKind::AbsoluteUrl, 0..end + 3),
            None => {
                let first = text.chars().next().map_or(0, char::len_utf8);
                err(ErrorKind::MissingLeadingSlash, 0..first);
            }
        }
        return Err(errors);
    }
    let mut segments = Vec::new();
    let mut seen: Vec<(&str, Range<usize>)> = Vec::new();
    let mut trailing_slash = false;
    // Segment boundaries: each segment starts after a `/`.
    let mut start = 1;
    // The path, up to a query (`?<page>&<per_page>`, in Rocket's way), which is reported once
    // the path's segments have been.
    let path_end = text.find('?').unwrap_or(text.len());
    let pieces: Vec<Range<usize>> = {
        let mut v = Vec::new();
        for (i, b) in text[..path_end].bytes().enumerate().skip(1) {
            if b == b'/' {
                v.push(start..i);
                start = i + 1;
            }
        }
        v.push(start..path_end);
        v
    };
    let last = pieces.len() - 1;
    for (index, range) in pieces.into_iter().enumerate() {
        let piece = &text[range.clone()];
        if piece.is_empty() {
            if index == last {
                trailing_slash = true;
            } else {
                err(
                    ErrorKind::EmptySegment,
                    range.start.saturating_sub(1)..range.start + 1,
                );
            }
            continue;
        }
        if let Some(inner) = piece.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let spelling = match inner.strip_prefix('*') {
                Some(rest) => format!("<{rest}..>"),
                None => format!("<{inner}>"),
            };
            err(ErrorKind::Braced(spelling), range.clone());
            continue;
        }
        if let Some(open) = piece.find('<') {
            let abs_open = range.start + open;
            let Some(close) = piece[open..].find('>') else {
                err(ErrorKind::Unclosed, abs_open..range.end);
                continue;
            };
            let abs_close = abs_open + close;
            // `<id>>`: a `>` too many, not a parameter inside a segment.
            let after = &text[abs_close + 1..range.end];
            if open == 0 && !after.is_empty() && after.bytes().all(|b| b == b'>') {
                err(ErrorKind::Unopened, abs_close + 1..range.end);
                continue;
            }
            if open != 0 || abs_close + 1 != range.end {
                err(ErrorKind::PartialSegment, range.clone());
                continue;
            }
            let inner = abs_open + 1..abs_close;
            if text[inner.clone()].ends_with("...") {
                err(ErrorKind::ThreeDots, abs_open..abs_close + 1);
                continue;
            }
            let (name, trailing) = match text[inner.clone()].strip_suffix("..") {
                Some(_) => (inner.start..inner.end - 2, true),
                None => (inner.clone(), false),
            };
            let name_text = &text[name.clone()];
            if name_text.is_empty() {
                err(ErrorKind::EmptyName, abs_open..abs_close + 1);
                continue;
            }
            if !is_ident(name_text) {
                err(bad_name(name_text), name.clone());
                continue;
            }
            if seen.iter().any(|(n, _)| *n == name_text) {
                err(ErrorKind::Duplicate, name.clone());
                continue;
            }
            seen.push((name_text, name.clone()));
            if trailing {
                if index != last {
                    err(ErrorKind::TrailingNotLast, abs_open..abs_close + 1);
                    continue;
                }
                segments.push(Segment::Trailing { name });
            } else {
                segments.push(Segment::Param { name });
            }
            continue;
        }
        if comms_uri::is_dot_segment(piece.as_bytes()) {
            err(ErrorKind::DotSegment, range.clone());
            continue;
        }
        let mut ok = true;
        let bytes = piece.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let at = range.start + i;
            let c = piece[i..].chars().next().expect("in bounds");
            match c {
                '>' => {
                    err(ErrorKind::Unopened, at..at + 1);
                    ok = false;
                }
                '#' => {
                    err(ErrorKind::Fragment, at..text.len());
                    return Err(errors);
                }
                '%' => {
                    let hex = bytes.get(i + 1..i + 3);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        // The `%` and up to two characters after it, on char boundaries.
                        let end = piece[i..]
                            .char_indices()
                            .nth(3)
                            .map_or(range.end, |(k, _)| at + k);
                        err(ErrorKind::BadEscape, at..end);
                        ok = false;
                    } else {
                        i += 3;
                        continue;
                    }
                }
                c if c.is_ascii() && comms_uri::is_pchar(c as u8) => {}
                // One per segment: the rest of the segment is most often more of the same.
                _ if !ok => {}
                c => {
                    err(ErrorKind::BadChar(c), at..at + c.len_utf8());
                    ok = false;
                }
            }
            i += c.len_utf8();
        }
        if ok {
            segments.push(Segment::Static(range));
        }
    }
    if path_end < text.len() {
        err(
            ErrorKind::Query(query_names(&text[path_end..])),
            path_end..text.len(),
        );
    }
    if errors.is_empty() {
        Ok(Template {
            segments,
            trailing_slash,
        })
    } else {
        Err(errors)
    }
}

/// What is wrong with a parameter's name that is no identifier, with the name meant when it
/// can be told: `id: u64` (a type, as axum's extractors and other frameworks write one),
/// `user-id` (a dash where Rust has an underscore).
fn bad_name(name: &str) -> ErrorKind {
    if let Some((before, _)) = name.split_once(':') {
        let before = before.trim();
        if is_ident(before) {
            return ErrorKind::TypedName(before.to_owned());
        }
    }
    let underscored = name.trim().replace('-', "_");
    ErrorKind::BadName(is_ident(&underscored).then_some(underscored))
}

/// The names of the `<name>` parameters in a route's query part (`?<page>&<per_page>`).
fn query_names(query: &str) -> Vec<String> {
    query
        .split('<')
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split_once('>')?.0;
            let name = name.strip_suffix("..").unwrap_or(name);
            is_ident(name).then(|| name.to_owned())
        })
        .collect()
}

/// Whether `s` can name an argument (Unicode's identifier rules, as Rust's; a keyword names
/// a raw one, `r#type`).
fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || unicode_ident::is_xid_start(c))
        && chars.all(unicode_ident::is_xid_continue)
        && s != "_"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(ErrorKind, &str)> {
        parse(text)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.kind, &text[e.span]))
            .collect()
    }

    #[test]
    fn parameter_names_follow_rusts_identifiers() {
        assert!(parse("/p/<naïve>/<_x1>/<type>").is_ok());
        for bad in ["/p/<1x>", "/p/<a-b>", "/p/<_>", "/p/<a b>"] {
            assert!(
                kinds(bad)
                    .iter()
                    .any(|(kind, _)| matches!(kind, ErrorKind::BadName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_static_param_and_trailing() {
        let t = parse("/users/<id>/files/<path..>").unwrap();
        assert_eq!(
            t.segments,
            vec![
                Segment::Static(1..6),
                Segment::Param { name: 8..10 },
                Segment::Static(12..17),
                Segment::Trailing { name: 19..23 },
            ]
        );
        assert!(!t.trailing_slash);
        let names: Vec<_> = t
            .params("/users/<id>/files/<path..>")
            .map(|p| (p.0, p.2))
            .collect();
        assert_eq!(names, [("id", false), ("path", true)]);
    }

    #[test]
    fn root_and_trailing_slash() {
        let root = parse("/").unwrap();
        assert!(root.segments.is_empty() && root.trailing_slash);
        let t = parse("/items/").unwrap();
        assert_eq!(t.segments, vec![Segment::Static(1..6)]);
        assert!(t.trailing_slash);
        assert!(parse("/a/%20b/~c:d@e").is_ok());
    }

    #[test]
    fn errors_point_at_the_fault() {
        assert_eq!(kinds("users"), [(ErrorKind::MissingLeadingSlash, "u")]);
        assert_eq!(kinds(""), [(ErrorKind::MissingLeadingSlash, "")]);
        assert_eq!(kinds("/a//b"), [(ErrorKind::EmptySegment, "//")]);
        assert_eq!(kinds("/a/../b"), [(ErrorKind::DotSegment, "..")]);
        assert_eq!(kinds("/a/%2e%2E/b"), [(ErrorKind::DotSegment, "%2e%2E")]);
        assert_eq!(kinds("/a/.%2e"), [(ErrorKind::DotSegment, ".%2e")]);
        assert_eq!(kinds("/a?x=1"), [(ErrorKind::Query(vec![]), "?x=1")]);
        assert_eq!(
            kinds("/users?<page>&<per_page>"),
            [(
                ErrorKind::Query(vec!["page".into(), "per_page".into()]),
                "?<page>&<per_page>"
            )]
        );
        assert_eq!(
            kinds("/<id: u64>/<user-id>/<a b>"),
            [
                (ErrorKind::TypedName("id".into()), "id: u64"),
                (ErrorKind::BadName(Some("user_id".into())), "user-id"),
                (ErrorKind::BadName(None), "a b"),
            ]
        );
        assert_eq!(kinds("/a#top"), [(ErrorKind::Fragment, "#top")]);
        assert_eq!(kinds("/a b"), [(ErrorKind::BadChar(' '), " ")]);
        assert_eq!(kinds("/a%2"), [(ErrorKind::BadEscape, "%2")]);
        assert_eq!(kinds("/<id"), [(ErrorKind::Unclosed, "<id")]);
        assert_eq!(kinds("/id>"), [(ErrorKind::Unopened, ">")]);
        assert_eq!(kinds("/<>"), [(ErrorKind::EmptyName, "<>")]);
        assert_eq!(kinds("/<..>"), [(ErrorKind::EmptyName, "<..>")]);
        assert_eq!(kinds("/<1d>"), [(ErrorKind::BadName(None), "1d")]);
        assert_eq!(kinds("/v<id>"), [(ErrorKind::PartialSegment, "v<id>")]);
        assert_eq!(
            kinds("/<id>.json"),
            [(ErrorKind::PartialSegment, "<id>.json")]
        );
        assert_eq!(kinds("/<p..>/x"), [(ErrorKind::TrailingNotLast, "<p..>")]);
        assert_eq!(kinds("/<id>/<id>"), [(ErrorKind::Duplicate, "id")]);
        assert_eq!(
            kinds("/users/{id}/files/{*path}"),
            [
                (ErrorKind::Braced("<id>".into()), "{id}"),
                (ErrorKind::Braced("<path..>".into()), "{*path}"),
            ]
        );
    }

    #[test]
    fn reports_every_error() {
        assert_eq!(
            kinds("/<>/a b/<1x>"),
            [
                (ErrorKind::EmptyName, "<>"),
                (ErrorKind::BadChar(' '), " "),
                (ErrorKind::BadName(None), "1x"),
            ]
        );
    }

    #[test]
    fn non_ascii_is_refused_at_its_char() {
        assert_eq!(
            kinds("/caf\u{e9}"),
            [(ErrorKind::BadChar('\u{e9}'), "\u{e9}")]
        );
        // Found by the property test below: spans must not split a character.
        assert_eq!(
            kinds("\u{0BA8}"),
            [(ErrorKind::MissingLeadingSlash, "\u{0BA8}")]
        );
        // One error a segment: what follows the first is most often more of the same.
        assert_eq!(
            kinds("/%\u{4E2D}\u{6587}x"),
            [(ErrorKind::BadEscape, "%\u{4E2D}\u{6587}")]
        );
        assert_eq!(
            kinds("/us\u{e9}rs/\u{fc}n\u{ef}"),
            [
                (ErrorKind::BadChar('\u{e9}'), "\u{e9}"),
                (ErrorKind::BadChar('\u{fc}'), "\u{fc}"),
            ]
        );
    }

    #[test]
    fn common_slips_are_named_as_what_they_are() {
        assert_eq!(
            kinds("http://users/users"),
            [(ErrorKind::AbsoluteUrl, "http://")]
        );
        assert_eq!(kinds("/users/<id>>"), [(ErrorKind::Unopened, ">")]);
        assert_eq!(
            kinds("/files/<path...>"),
            [(ErrorKind::ThreeDots, "<path...>")]
        );
        assert_eq!(
            kinds("/files/x<path>"),
            [(ErrorKind::PartialSegment, "x<path>")]
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Reassembles a parsed route from its segments.
        fn render(text: &str, t: &Template) -> String {
            let mut out = String::new();
            for s in &t.segments {
                out.push('/');
                match s {
                    Segment::Static(r) => out.push_str(&text[r.clone()]),
                    Segment::Param { name } => out.push_str(&format!("<{}>", &text[name.clone()])),
                    Segment::Trailing { name } => {
                        out.push_str(&format!("<{}..>", &text[name.clone()]))
                    }
                }
            }
            if t.trailing_slash {
                out.push('/');
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

            #[test]
            fn never_panics_and_errors_stay_in_bounds(text in prop_oneof![
                any::<String>(),
                "[/<>.a-z%?#0-9 \u{e9}]{0,30}",
            ]) {
                match parse(&text) {
                    Ok(t) => prop_assert_eq!(render(&text, &t), text),
                    Err(errors) => {
                        prop_assert!(!errors.is_empty());
                        for e in errors {
                            prop_assert!(e.span.start <= e.span.end && e.span.end <= text.len());
                            prop_assert!(text.is_char_boundary(e.span.start));
                            prop_assert!(text.is_char_boundary(e.span.end));
                        }
                    }
                }
            }

            #[test]
            fn accepted_routes_carry_nothing_to_encode(text in "[/<>.a-z%?#0-9 ]{0,30}") {
                if let Ok(t) = parse(&text) {
                    for s in &t.segments {
                        if let Segment::Static(r) = s {
                            let piece = &text[r.clone()];
                            prop_assert!(!piece.contains(['?', '#', ' ', '<', '>', '/']));
                            prop_assert!(piece != "." && piece != "..");
                        }
                    }
                }
            }
        }
    }
}
