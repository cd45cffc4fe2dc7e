//! Reading a buffered `multipart/form-data` body back into a [`Multipart`] (feature `server`).
//!
//! RFC 7578 over RFC 2046's framing: a preamble before the first delimiter and an epilogue
//! after the closing one are ignored, as is whitespace after a delimiter; every part needs a
//! `Content-Disposition: form-data` header with a `name`; `Content-Type` is kept; other part
//! headers are ignored. A boundary, a part's `Content-Disposition` or `Content-Type`, or its
//! `name` or `filename`, given twice is refused, as Go's `mime` refuses it: readers that take
//! the first and the last would read other parts or names out of the same signed bytes. So is
//! a part's header name that is not a token (a folded line, a space before the `:`), and RFC
//! 2231's `name*` and `filename*` (RFC 7578 §4.2 has senders not use them; Go decodes them over
//! the plain parameter, which this reader takes), and a quote that does not make one quoted
//! value (`"a"b`, `a"b`). Names and file names are read as browsers
//! write them (`%22`, `%0D`, `%0A` for `"`, CR, LF). Each part's bytes are a slice of the body,
//! not a copy. Anything else is refused with a reason, never a panic.

use bytes::Bytes;
use memchr::memmem;

use super::{MAX_PART_HEAD, Multipart, Part};

/// The boundary of a `multipart/form-data` content type, or why there is none: `Ok(None)` for
/// another media type.
pub(crate) fn boundary(content_type: &str) -> Result<Option<String>, String> {
    let mut params = split_params(content_type);
    let media_type = params.next().unwrap_or_default();
    if !media_type.eq_ignore_ascii_case("multipart/form-data") {
        return Ok(None);
    }
    let mut boundary = None;
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            // Two would frame the same bytes two ways, one for each reader's choice.
            if boundary.is_some() {
                return Err("the content type names its boundary twice".into());
            }
            let value = unquote(value.trim())?;
            if value.is_empty() || value.len() > 70 {
                return Err("the boundary must be 1 to 70 characters".into());
            }
            boundary = Some(value.into_owned());
        }
    }
    boundary
        .map(Some)
        .ok_or_else(|| "the content type has no boundary".into())
}

/// Parses `body`, framed by `boundary`.
pub(crate) fn parse(boundary: &str, body: &Bytes) -> Result<Multipart, String> {
    let delimiter = format!("\r\n--{boundary}");
    let finder = memmem::Finder::new(delimiter.as_bytes());
    // The first delimiter has no line break before it when there is no preamble.
    let mut at = if body.starts_with(&delimiter.as_bytes()[2..]) {
        delimiter.len() - 2
    } else {
        finder
            .find(body)
            .map(|i| i + delimiter.len())
            .ok_or("the body has no delimiter line for its boundary")?
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(Multipart { parts });
        }
        if rest.is_empty() {
            return Err("the body ends without a closing delimiter".into());
        }
        // Transport padding, then the line break ending the delimiter line.
        let padding = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if !rest[padding..].starts_with(b"\r\n") {
            return Err("a delimiter line has something after the boundary".into());
        }
        let head_start = at + padding + 2;
        let head = &body[head_start..];
        let (head_len, data_start) = if head.starts_with(b"\r\n") {
            (0, head_start + 2)
        } else {
            // Looked for within the bound only: a part's headers are a few lines.
            let within = &head[..head.len().min(MAX_PART_HEAD + 4)];
            let end = match memmem::find(within, b"\r\n\r\n") {
                Some(end) if end <= MAX_PART_HEAD => end,
                _ if head.len() > MAX_PART_HEAD => {
                    return Err(format!(
                        "a part's headers are over {} KiB",
                        MAX_PART_HEAD / 1024
                    ));
                }
                _ => return Err("a part's headers never end".into()),
            };
            (end, head_start + end + 4)
        };
        let data_len = finder
            .find(&body[data_start..])
            .ok_or("a part is not closed by a delimiter")?;
        let mut part = part_head(&body[head_start..head_start + head_len])?;
        part.data = body.slice(data_start..data_start + data_len);
        parts.push(part);
        at = data_start + data_len + delimiter.len();
    }
}

/// A part from its headers, without its bytes yet.
fn part_head(head: &[u8]) -> Result<Part, String> {
    let head = std::str::from_utf8(head).map_err(|_| "a part's headers are not UTF-8")?;
    let mut name = None;
    let mut file_name = None;
    let mut content_type = None;
    // A header or parameter given twice is refused, not read as the last (or the first) of
    // them: another reader of the same signed bytes could take the other one.
    let mut disposed = false;
    let twice = |what: &str| Err(format!("a part has two {what}"));
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let (header, value) = line
            .split_once(':')
            .ok_or_else(|| format!("a part's header line has no `:`: `{}`", shown(line)))?;
        // A name that is not a token is refused, not ignored as another header: a line that
        // starts with white space is a folded continuation of the line before to Go's
        // `textproto` and PHP, and readers that trim a name read `Content-Disposition :` as the
        // header; either would read names or file names that this reader does not.
        if header.is_empty() || !header.bytes().all(is_tchar) {
            return Err(format!(
                "a part's header name is not a token: `{}`",
                shown(line)
            ));
        }
        let value = value.trim();
        if header.eq_ignore_ascii_case("content-disposition") {
            if std::mem::replace(&mut disposed, true) {
                return twice("Content-Disposition headers");
            }
            let mut params = split_params(value);
            if !params
                .next()
                .is_some_and(|d| d.eq_ignore_ascii_case("form-data"))
            {
                return Err("a part's Content-Disposition is not `form-data`".into());
            }
            for param in params {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let key_lower = key.trim().to_ascii_lowercase();
                // RFC 2231's `name*`, `filename*` and their continuations (`*0`): RFC 7578
                // §4.2 has senders not use them, Go's `mime` decodes them and takes them over
                // the plain parameter, readers like this one ignore them. Refused, so that no
                // two readers take other names out of the same signed bytes.
                if let Some((base @ ("name" | "filename"), _)) = key_lower.split_once('*') {
                    return Err(format!(
                        "a part has a `{base}*` parameter, which is not read (RFC 7578, \
                         section 4.2): send `{base}`"
                    ));
                }
                let slot = match key_lower.as_str() {
                    "name" => &mut name,
                    "filename" => &mut file_name,
                    _ => continue,
                };
                if slot.is_some() {
                    return twice(&format!("`{}` parameters", key.trim()));
                }
                *slot = Some(unescape(&unquote(value.trim())?));
            }
        } else if header.eq_ignore_ascii_case("content-type") {
            if content_type.is_some() {
                return twice("Content-Type headers");
            }
            content_type = Some(value.to_owned());
        }
    }
    let name = name.ok_or("a part has no `Content-Disposition: form-data; name=..`")?;
    Ok(Part {
        name,
        file_name,
        content_type,
        data: Bytes::new(),
    })
}

/// Whether `b` may be in a header field's name (RFC 9110 `tchar`).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The start of a received line, as a refusal shows it: enough to find it, not the line back
/// at any length.
fn shown(line: &str) -> std::borrow::Cow<'_, str> {
    const SHOWN: usize = 64;
    match line.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &line[..end]).into(),
        None => line.into(),
    }
}

/// The `;`-separated items of a header value, trimmed; a `;` inside quotes is no separator.
/// Inside quotes, `\"` is an escaped quote ([`escaped_quote_at`]), not their end.
fn split_params(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    // The quotes not yet passed, which `escaped_quote_at` weighs: counted once here and kept
    // as they are passed, not counted again at every `\` (which made a value of many `\"`
    // take time in the square of its length).
    let mut quotes_left = value.bytes().filter(|&b| b == b'"').count();
    std::iter::from_fn(move || {
        let text = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in text.char_indices() {
            if c == '"' {
                quotes_left -= 1;
            }
            if std::mem::take(&mut escaped) {
                continue;
            }
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted && escaped_quote_at(text, i, quotes_left) => escaped = true,
                ';' if !quoted => {
                    rest = Some(&text[i + 1..]);
                    return Some(text[..i].trim());
                }
                _ => {}
            }
        }
        rest = None;
        Some(text.trim())
    })
}

/// Whether the `\` at byte `at` of `text`, inside quotes, escapes a `"` after it: as Go and
/// `curl --form-escape` write a `"` in a name. Browsers, curl and Python's `requests` write a
/// `"` as `%22` and a `\` as it is, so a name of theirs ending in `\` ends `\"`: a `\"`
/// followed by the end of the value, or by a `;` and the next parameter (`; filename=`), is read
/// as theirs, a `\` and the closing quote. `quotes_left` is the number of quotes in `text`
/// after `at`.
fn escaped_quote_at(text: &str, at: usize, quotes_left: usize) -> bool {
    let Some(after) = text[at..].strip_prefix("\\\"") else {
        return false;
    };
    let after = after.trim_start();
    if after.is_empty() {
        return false;
    }
    let Some(next) = after.strip_prefix(';') else {
        return true;
    };
    // A parameter's name (an RFC 9110 token), then `=`.
    let next = next.trim_start();
    let name_end = next
        .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)))
        .unwrap_or(next.len());
    let starts_parameter = name_end > 0 && next[name_end..].trim_start().starts_with('=');
    // And what follows pairs its quotes, as the rest of a browser's header does once this
    // quote closes the value (its `\` are no escapes); Go's `"a\";b=c"; filename="f"` leaves
    // one over, and its quote is escaped.
    // (The quotes after this `\"`: those after `at` but its own.)
    !(starts_parameter && quotes_left.saturating_sub(1).is_multiple_of(2))
}

/// A parameter value without its quotes, if it has them, a `\"` inside them (an escaped quote,
/// see [`escaped_quote_at`]) read as `"`. Any other `\` is kept as it is, as browsers, curl
/// and Python's `requests` send one (`C:\file.txt`, `\\server\share`).
///
/// A quote anywhere else is refused, as Go's `mime` refuses it: a lone `"`, one that opens a
/// value and does not close it (`"abc`), text after the closing one (`"a"b`), a quote inside
/// a token (`a"b`) or one unescaped inside the quotes (`"a"b"`). Readers that end a quoted
/// value at its first unescaped quote and readers that take it to the last, or take it
/// whole, would read other names, or another boundary, out of the same signed bytes.
fn unquote(value: &str) -> Result<std::borrow::Cow<'_, str>, String> {
    let unmatched = || format!("a parameter's value has a stray quote: `{}`", shown(value));
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return match value.contains('"') {
            true => Err(unmatched()),
            false => Ok(value.into()),
        };
    };
    let bare_quote = inner
        .char_indices()
        .any(|(i, c)| c == '"' && !inner[..i].ends_with('\\'));
    if bare_quote {
        return Err(unmatched());
    }
    Ok(match inner.contains("\\\"") {
        true => inner.replace("\\\"", "\"").into(),
        false => inner.into(),
    })
}

/// A name as browsers escape it: `%22`, `%0D` and `%0A` back to `"`, CR and LF.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3).unwrap_or_default();
        let decoded = match escape.to_ascii_uppercase().as_str() {
            "%22" => Some('"'),
            "%0D" => Some('\r'),
            "%0A" => Some('\n'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[i + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(boundary: &str, body: &'static [u8]) -> Result<Multipart, String> {
        parse(boundary, &Bytes::from_static(body))
    }

    #[test]
    fn what_is_encoded_parses_back() {
        let form = Multipart::new()
            .text("title", "Hi")
            .file(
                "a\"b\r\nc;\\",
                "x\";%22\\\\\\\".txt\\",
                "text/plain",
                &b"\x00--data\r\n"[..],
            )
            .part(Part::new("empty", ""))
            .part(Part::new("100%", "é"));
        let (content_type, body) = form.encode().unwrap();
        let boundary = boundary(content_type.to_str().unwrap()).unwrap().unwrap();
        let back = parse(&boundary, &body).unwrap();
        assert_eq!(back.parts().len(), 4);
        for (sent, got) in form.parts().iter().zip(back.parts()) {
            let file_name = sent.file_name().map(|f| f.replace("%22", "\""));
            assert_eq!(got.name(), sent.name());
            assert_eq!(got.file_name(), file_name.as_deref());
            assert_eq!(got.content_type(), sent.content_type());
            assert_eq!(got.data(), sent.data());
        }
    }

    /// Go writes `a";b=c` as `"a\";b=c"`: what follows the `\"` leaves a quote unpaired, so
    /// it is escaped, and the file name after it is kept; nor does a name become a file name.
    #[test]
    fn an_escaped_quote_before_what_looks_like_a_parameter_is_read() {
        let form = parsed(
            "X",
            b"--X\r\nContent-Disposition: form-data; name=\"a\\\";b=c\"; \
              filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\ndata\r\n--X--\r\n",
        )
        .unwrap();
        let part = &form.parts()[0];
        assert_eq!((part.name(), part.file_name()), ("a\";b=c", Some("f.txt")));
        let form = parsed(
            "X",
            b"--X\r\nContent-Disposition: form-data; name=\"x\\\";filename=evil.sh\"\r\n\r\n\
              data\r\n--X--\r\n",
        )
        .unwrap();
        let part = &form.parts()[0];
        assert_eq!(
            (part.name(), part.file_name()),
            ("x\";filename=evil.sh", None)
        );
    }

    /// A name or file name whose quotes do not make one quoted value is refused: a reader ending
    /// it at the first unescaped quote would read another name.
    #[test]
    fn a_name_with_a_stray_quote_is_refused() {
        for disposition in [
            "form-data; name=\"a\"b",
            "form-data; name=\"a\"b\"",
            "form-data; name=a\"b",
            "form-data; name=\"a; filename=\"f\"",
            "form-data; name=\"a\"; filename=\"",
        ] {
            let body =
                format!("--X\r\nContent-Disposition: {disposition}\r\n\r\ndata\r\n--X--\r\n");
            let refused = parse("X", &Bytes::from(body)).unwrap_err();
            assert!(refused.contains("stray quote"), "{disposition}: {refused}");
        }
    }

    /// Go writes `a";b` as `"a\";b"`: the `;` there starts no parameter, so the quote is
    /// escaped, and the file name after it is kept.
    #[test]
    fn an_escaped_quote_before_a_semicolon_in_the_name_is_read() {
        let form = parsed(
            "X",
            b"--X\r\nContent-Disposition: form-data; name=\"a\\\";b\"; \
              filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\ndata\r\n--X--\r\n",
        )
        .unwrap();
        let part = &form.parts()[0];
        assert_eq!((part.name(), part.file_name()), ("a\";b", Some("f.txt")));
    }

    #[test]
    fn an_escaped_quote_is_read_as_go_and_curl_form_escape_write_it() {
        let form = parsed(
            "X",
            b"--X\r\nContent-Disposition: form-data; name=\"fi\\\"eld\"; \
              filename=\"x\\\"y\\z.txt\"\r\n\r\ndata\r\n--X--\r\n",
        )
        .unwrap();
        let part = &form.parts()[0];
        assert_eq!(part.name(), "fi\"eld");
        // A `\` before anything but a quote is kept.
        assert_eq!(part.file_name(), Some("x\"y\\z.txt"));
    }

    /// Browsers, curl and Python's `requests` send a `\` as it is: a name ending in one, and a
    /// doubled one, arrive as they were.
    #[test]
    fn a_backslash_sent_as_it_is_is_kept() {
        let form = parsed(
            "X",
            b"--X\r\nContent-Disposition: form-data; name=\"dir\\\"; \
              filename=\"\\\\srv\\share\\a.txt\"\r\n\r\ndata\r\n--X--\r\n",
        )
        .unwrap();
        let part = &form.parts()[0];
        assert_eq!(part.name(), "dir\\");
        assert_eq!(part.file_name(), Some("\\\\srv\\share\\a.txt"));
    }

    #[test]
    fn a_refusal_shows_the_start_of_a_line_not_the_line() {
        let line = "\u{1}".repeat(8 << 10);
        let body = Bytes::from(format!("--B\r\n{line}\r\n\r\nx\r\n--B--"));
        let err = parse("B", &body).map(|_| ()).unwrap_err();
        assert!(err.len() < 200, "a {}-byte reason", err.len());
        assert!(err.starts_with("a part's header line has no `:`"), "{err}");
    }

    #[test]
    fn a_browser_body_with_preamble_padding_and_epilogue_parses() {
        let body = b"preamble\r\n--XyZ  \r\n\
            content-disposition: FORM-DATA; filename=\"a;b.txt\"; name=field\r\n\
            X-Other: 1\r\n\r\n\
            one\r\n--XyZ\r\n\
            Content-Disposition: form-data; name=\"f2\"\r\n\
            Content-Type: image/png\r\n\r\n\
            \r\n--XyZ--\r\nepilogue";
        let form = parsed("XyZ", body).unwrap();
        let parts = form.parts();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].name(), parts[0].file_name(), parts[0].text()),
            ("field", Some("a;b.txt"), Some("one"))
        );
        assert_eq!(parts[1].content_type(), Some("image/png"));
        assert!(parts[1].data().is_empty());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for (body, why) in [
            (&b""[..], "no delimiter"),
            (b"--B", "without a closing delimiter"),
            (
                b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--B",
                "without a closing",
            ),
            (b"--Bx\r\n", "after the boundary"),
            (
                b"--B\r\nContent-Disposition: form-data; name=a\r\n",
                "headers never end",
            ),
            (
                b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\ndata",
                "not closed",
            ),
            (
                b"--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--",
                "no `Content",
            ),
            (
                b"--B\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--B--",
                "not `form-data`",
            ),
            (b"--B\r\nno colon\r\n\r\nx\r\n--B--", "no `:`"),
            (
                b"--B\r\nContent-Disposition: form-data; name=a\r\n filename=x:y\r\n\r\nx\r\n--B--",
                "not a token",
            ),
            (
                b"--B\r\nContent-Disposition : form-data; name=a\r\n\r\nx\r\n--B--",
                "not a token",
            ),
            (b"--B\r\n: form-data\r\n\r\nx\r\n--B--", "not a token"),
            (
                b"--B\r\nContent-Disposition: form-data; name=a; filename=x; \
                  filename*=UTF-8''y\r\n\r\nx\r\n--B--",
                "a `filename*` parameter",
            ),
            (
                b"--B\r\nContent-Disposition: form-data; name=a; NAME*0=b\r\n\r\nx\r\n--B--",
                "send `name`",
            ),
            (
                b"--B\r\nContent-Disposition: form-data; name=a; NAME=b\r\n\r\nx\r\n--B--",
                "two `NAME` parameters",
            ),
            (
                b"--B\r\nContent-Disposition: form-data; name=a; filename=x; filename=y\r\n\r\n\
                  x\r\n--B--",
                "two `filename` parameters",
            ),
            (
                b"--B\r\nContent-Disposition: form-data; name=a\r\n\
                  content-disposition: form-data; name=b; filename=x\r\n\r\nx\r\n--B--",
                "two Content-Disposition headers",
            ),
            (
                b"--B\r\nContent-Disposition: form-data; name=a\r\nContent-Type: text/plain\r\n\
                  Content-Type: image/png\r\n\r\nx\r\n--B--",
                "two Content-Type headers",
            ),
            (
                b"--B\r\nContent-Disposition: form-data; name=\xff\r\n\r\nx\r\n--B--",
                "UTF-8",
            ),
        ] {
            let err = parsed("B", body).map(|_| ()).unwrap_err();
            assert!(err.contains(why), "{body:?}: {err}");
        }
    }

    #[test]
    fn a_parts_headers_are_read_within_16_kib() {
        // A name of escaped quotes and what look like parameters, 20 KiB of it: refused
        // without being read past the bound.
        let mut body = b"--B\r\nContent-Disposition: form-data; name=\"".to_vec();
        body.extend("\\\";a=".repeat(4 * 1024).as_bytes());
        body.extend(b"\"\r\n\r\nx\r\n--B--\r\n");
        let err = parse("B", &Bytes::from(body)).map(|_| ()).unwrap_err();
        assert!(err.contains("over 16 KiB"), "{err}");
    }

    /// The quotes after a `\` counted once for the whole value give what counting them again
    /// at each `\` gave, for every short value of the characters that matter.
    #[test]
    fn escapes_are_read_as_when_quotes_were_counted_at_each_backslash() {
        fn counted_again(text: &str, at: usize) -> bool {
            let quotes = text[at..]
                .strip_prefix("\\\"")
                .map_or(0, |after| after.matches('"').count() + 1);
            escaped_quote_at(text, at, quotes)
        }
        fn split_counting_again(value: &str) -> Vec<&str> {
            let mut out = Vec::new();
            let mut rest = Some(value);
            while let Some(text) = rest {
                let (mut quoted, mut escaped) = (false, false);
                rest = None;
                let mut end = text.len();
                for (i, c) in text.char_indices() {
                    if std::mem::take(&mut escaped) {
                        continue;
                    }
                    match c {
                        '"' => quoted = !quoted,
                        '\\' if quoted && counted_again(text, i) => escaped = true,
                        ';' if !quoted => {
                            rest = Some(&text[i + 1..]);
                            end = i;
                            break;
                        }
                        _ => {}
                    }
                }
                out.push(text[..end].trim());
            }
            out
        }
        let alphabet = ['\\', '"', ';', 'a', '=', ' '];
        let mut value = String::new();
        for n in 0..6u32.pow(7) {
            value.clear();
            let mut k = n;
            for _ in 0..7 {
                value.push(alphabet[(k % 6) as usize]);
                k /= 6;
            }
            let once: Vec<&str> = split_params(&value).collect();
            assert_eq!(once, split_counting_again(&value), "{value:?}");
        }
    }

    #[test]
    fn boundaries_come_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc")
                .unwrap()
                .as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=x; BOUNDARY=\"a b;c\"")
                .unwrap()
                .as_deref(),
            Some("a b;c")
        );
        assert_eq!(boundary("application/json").unwrap(), None);
        assert!(boundary("multipart/form-data").is_err());
        assert!(
            boundary("multipart/form-data; boundary=A; Boundary=B")
                .unwrap_err()
                .contains("twice")
        );
        assert!(boundary("multipart/form-data; boundary=\"\"").is_err());
        // Quotes that do not make one quoted value.
        for stray in ["\"", "\"abc", "\"a\"b", "a\"b", "\"a\"b\""] {
            let refused = boundary(&format!("multipart/form-data; boundary={stray}")).unwrap_err();
            assert!(refused.contains("stray quote"), "{stray}: {refused}");
        }
        assert!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_parts_parse_back_and_any_damage_is_refused_without_a_panic(
            parts in proptest::collection::vec(
                (
                    "(.|%22|%0[dD]|\r){0,12}",
                    proptest::option::of("(.|%22|%0A|\"){0,12}"),
                    proptest::collection::vec(proptest::num::u8::ANY, 0..64),
                ),
                0..5,
            ),
            cut in proptest::num::usize::ANY,
            flip in proptest::num::usize::ANY,
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let form = parts.iter().fold(Multipart::new(), |form, (name, file_name, data)| {
                let part = Part::new(name.clone(), data.clone());
                form.part(match file_name {
                    Some(f) => part.with_file_name(f.clone()).with_content_type("a/b"),
                    None => part,
                })
            });
            let (content_type, body) = form.encode().unwrap();
            let boundary = boundary(content_type.to_str().unwrap()).unwrap().unwrap();
            let back = parse(&boundary, &body).unwrap();
            proptest::prop_assert_eq!(back.parts().len(), parts.len());
            for (got, (name, file_name, data)) in back.parts().iter().zip(&parts) {
                // Browsers' quoting cannot tell a `%22` that was written from one it wrote:
                // what was sent is read as `unescape` reads it.
                proptest::prop_assert_eq!(got.name(), unescape(name));
                proptest::prop_assert_eq!(
                    got.file_name().map(str::to_owned),
                    file_name.as_deref().map(unescape)
                );
                proptest::prop_assert_eq!(&got.data()[..], &data[..]);
            }
            // Cut short, one byte changed, or noise: an answer, never a panic.
            let _ = parse(&boundary, &body.slice(..cut % (body.len() + 1)));
            let mut changed = body.to_vec();
            let i = flip % changed.len();
            changed[i] ^= 0x5a;
            let _ = parse(&boundary, &Bytes::from(changed));
            let _ = parse(&boundary, &Bytes::from(noise.clone()));
            let _ = parse("B", &Bytes::from(noise));
        }
    }

    #[test]
    fn names_are_unescaped_as_browsers_escape_them() {
        assert_eq!(unescape("a%22b%0d%0Ac%25%2"), "a\"b\r\nc%25%2");
        assert_eq!(unescape("%"), "%");
    }
}
