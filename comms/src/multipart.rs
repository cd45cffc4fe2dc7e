//! `multipart/form-data` bodies: [`Multipart`], a list of named [`Part`]s (text fields and
//! files), sent by a `#[multipart]` argument or [`Call::multipart`](crate::Call::multipart) and
//! handed to a served method the same way.
//!
//! A body is built whole, in memory, before the call starts: it is signed through its
//! `Content-Digest` like any body, and every attempt of the call sends the same bytes (so a
//! retry is the same request, and is made only when the call may be repeated: a POST not marked
//! `idempotent` is not resent once it may have reached the server).
//!
//! The boundary is `comms-` and 32 random hexadecimal digits (128 bits from the operating
//! system), drawn for each body. A part that contains the delimiter line it would make is
//! detected, and another boundary drawn, so a boundary never occurs inside a part. Names and
//! file names are quoted as browsers quote them (the WHATWG HTML encoding): `"`, CR and LF are
//! written `%22`, `%0D` and `%0A`, every other character as it is, in UTF-8.

#[cfg(feature = "server")]
pub(crate) mod parse;

/// The most a part's header lines may hold, all together: a name, a file name and a content
/// type take a few hundred bytes. A server refuses what is past this rather than read it, and
/// a client does not send it.
const MAX_PART_HEAD: usize = 16 * 1024;

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

use crate::Error;

/// A `multipart/form-data` body: named parts, in order, each a text field or a file.
///
/// ```
/// use comms::multipart::{Multipart, Part};
///
/// let form = Multipart::new()
///     .text("title", "Holiday")
///     .file("photo", "beach.jpg", "image/jpeg", vec![0xff, 0xd8, 0xff])
///     .part(Part::new("meta", r#"{"album": 7}"#).with_content_type("application/json"));
///
/// assert_eq!(form.get("title").and_then(|p| p.text()), Some("Holiday"));
/// assert_eq!(form.get("photo").and_then(|p| p.file_name()), Some("beach.jpg"));
/// assert_eq!(form.parts().len(), 3);
/// ```
///
/// As an argument of a service trait, `#[multipart] form: comms::Multipart` (or
/// `&comms::Multipart`) is the request's body, and a generated server passes the parts it
/// received to the method the same way. Its `Debug` shows names, file names, content types and
/// sizes, never the contents.
#[derive(Clone, Default)]
pub struct Multipart {
    parts: Vec<Part>,
}

/// One part of a [`Multipart`] body: a name, the bytes, and optionally a file name and a content
/// type.
#[derive(Clone)]
pub struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Bytes,
}

impl Multipart {
    /// A body with no parts yet.
    pub fn new() -> Multipart {
        Multipart::default()
    }

    /// Adds a text field: a part named `name` holding `value`, without file name or content
    /// type, as a browser sends an `<input type="text">`.
    #[must_use]
    pub fn text(self, name: impl Into<String>, value: impl Into<String>) -> Multipart {
        self.part(Part::new(name, value.into()))
    }

    /// Adds a file: a part named `name` holding `data`, with its file name and content type
    /// (`application/octet-stream` is the usual one for bytes of no particular type).
    #[must_use]
    pub fn file(
        self,
        name: impl Into<String>,
        file_name: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Multipart {
        self.part(
            Part::new(name, data)
                .with_file_name(file_name)
                .with_content_type(content_type),
        )
    }

    /// Adds a part.
    #[must_use]
    pub fn part(mut self, part: Part) -> Multipart {
        self.parts.push(part);
        self
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The first part named `name`.
    pub fn get(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|part| part.name == name)
    }

    /// The body, with a fresh boundary, and its `Content-Type`. A part's content type that a
    /// header cannot carry is an [`Error::Encode`].
    pub(crate) fn encode(&self) -> Result<(HeaderValue, Bytes), Error> {
        self.encode_with(|| {
            Ok(format!(
                "comms-{}",
                hex::encode(crate::random::random_bytes()?)
            ))
        })
    }

    /// [`Multipart::encode`] with the boundaries drawn by `draw`: the first that occurs in no
    /// part.
    fn encode_with(
        &self,
        mut draw: impl FnMut() -> Result<String, Error>,
    ) -> Result<(HeaderValue, Bytes), Error> {
        for part in &self.parts {
            let Some(content_type) = &part.content_type else {
                continue;
            };
            if HeaderValue::from_str(content_type).is_err() {
                return Err(Error::encode(format!(
                    "the content type of part `{}` has a character headers cannot carry",
                    part.name
                )));
            }
            // A receiver strips white space at either end of a header's value: the part
            // would not arrive as it was given.
            if crate::header_map::is_padded(content_type.as_bytes()) {
                return Err(Error::encode(format!(
                    "the content type of part `{}` has white space at either end, which the \
                     receiver strips",
                    part.name
                )));
            }
        }
        let boundary = loop {
            let boundary = draw()?;
            let delimiter = format!("--{boundary}");
            // With 128 random bits, this draws again with probability 2^-128 per part.
            if !self.parts.iter().any(|p| contains(&p.data, &delimiter)) {
                break boundary;
            }
        };
        let content_type =
            HeaderValue::try_from(format!("multipart/form-data; boundary={boundary}"))
                .map_err(|_| Error::encode("a multipart boundary headers cannot carry"))?;
        Ok((content_type, self.body(&boundary)?))
    }

    /// The body framed by `boundary`. A part whose header lines come to more than
    /// [`MAX_PART_HEAD`], which a comms server refuses rather than read, is an
    /// [`Error::Encode`]: not sent.
    fn body(&self, boundary: &str) -> Result<Bytes, Error> {
        let size: usize = self
            .parts
            .iter()
            .map(|p| {
                p.data.len()
                    + p.name.len()
                    + p.file_name.as_ref().map_or(0, String::len)
                    + p.content_type.as_ref().map_or(0, String::len)
                    + boundary.len()
                    + 100
            })
            .sum();
        let mut out = BytesMut::with_capacity(size + boundary.len() + 8);
        for part in &self.parts {
            out.put_slice(b"--");
            out.put_slice(boundary.as_bytes());
            out.put_slice(b"\r\n");
            let head_start = out.len();
            out.put_slice(b"Content-Disposition: form-data; name=\"");
            put_quoted(&mut out, &part.name);
            out.put_slice(b"\"");
            if let Some(file_name) = &part.file_name {
                out.put_slice(b"; filename=\"");
                put_quoted(&mut out, file_name);
                out.put_slice(b"\"");
            }
            out.put_slice(b"\r\n");
            if let Some(content_type) = &part.content_type {
                out.put_slice(b"Content-Type: ");
                out.put_slice(content_type.as_bytes());
                out.put_slice(b"\r\n");
            }
            // The header lines end where the blank line's `\r\n\r\n` begins.
            let head_len = out.len() - head_start - 2;
            if head_len > MAX_PART_HEAD {
                let name: String = part.name.chars().take(40).collect();
                return Err(Error::encode(format!(
                    "part `{name}`{} has a name, file name and content type of {head_len} bytes \
                     together, over the {} KiB a part's headers may hold",
                    if name.len() < part.name.len() {
                        "..."
                    } else {
                        ""
                    },
                    MAX_PART_HEAD / 1024
                )));
            }
            out.put_slice(b"\r\n");
            out.put_slice(&part.data);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"--");
        out.put_slice(boundary.as_bytes());
        out.put_slice(b"--\r\n");
        Ok(out.freeze())
    }
}

/// Writes `text` as the inside of a quoted name: `"`, CR and LF percent-encoded.
fn put_quoted(out: &mut BytesMut, text: &str) {
    for &b in text.as_bytes() {
        match b {
            b'"' => out.put_slice(b"%22"),
            b'\r' => out.put_slice(b"%0D"),
            b'\n' => out.put_slice(b"%0A"),
            b => out.put_u8(b),
        }
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &str) -> bool {
    memchr::memmem::find(haystack, needle.as_bytes()).is_some()
}

impl fmt::Debug for Multipart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.parts).finish()
    }
}

impl Part {
    /// A part named `name` holding `data` (a `String`, a `&'static str`, a `Vec<u8>`,
    /// [`Bytes`]...), without file name or content type.
    pub fn new(name: impl Into<String>, data: impl Into<Bytes>) -> Part {
        Part {
            name: name.into(),
            file_name: None,
            content_type: None,
            data: data.into(),
        }
    }

    /// Sends the part as a file named `file_name`.
    #[must_use]
    pub fn with_file_name(mut self, file_name: impl Into<String>) -> Part {
        self.file_name = Some(file_name.into());
        self
    }

    /// Sends the part with a `Content-Type` (`image/png`, `application/json`...). One that a
    /// header cannot carry (a line break, say) is an [`Error::Encode`] when the call is made.
    #[must_use]
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Part {
        self.content_type = Some(content_type.into());
        self
    }

    /// The part's name (the form field's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file name, for a file.
    pub fn file_name(&self) -> Option<&str> {
        self.file_name.as_deref()
    }

    /// The part's own content type, if it has one.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The part's bytes (cheap to clone).
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The part's bytes as text, when they are UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field("name", &self.name)
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("len", &self.data.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_framed_and_quoted_as_browsers_do() {
        let form = Multipart::new()
            .text("title", "Hi")
            .file("a\"b\r\nc", "x\".txt", "text/plain", &b"\x00data"[..])
            .part(Part::new("raw", "é"));
        let (content_type, body) = form.encode().unwrap();
        let content_type = content_type.to_str().unwrap();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        assert_eq!(boundary.len(), 38);
        assert!(boundary.starts_with("comms-"));
        let expected = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHi\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"a%22b%0D%0Ac\"; \
             filename=\"x%22.txt\"\r\nContent-Type: text/plain\r\n\r\n\x00data\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"raw\"\r\n\r\né\r\n\
             --{b}--\r\n",
            b = boundary
        );
        assert_eq!(std::str::from_utf8(&body).unwrap(), expected);
        // Another body, another boundary.
        let (again, _) = form.encode().unwrap();
        assert_ne!(again.to_str().unwrap(), content_type);
    }

    #[test]
    fn an_empty_body_is_the_closing_delimiter() {
        let (content_type, body) = Multipart::new().encode().unwrap();
        let boundary = &content_type.to_str().unwrap()[30..];
        assert_eq!(body, format!("--{boundary}--\r\n"));
    }

    #[test]
    fn a_content_type_headers_cannot_carry_is_an_encode_error() {
        for bad in ["text/plain\r\nX: y", " text/plain", "text/plain\t"] {
            let form = Multipart::new().part(Part::new("f", "x").with_content_type(bad));
            assert!(
                matches!(form.encode(), Err(Error::Encode { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_shows_no_contents() {
        let form = Multipart::new().text("password", "hunter2");
        let shown = format!("{form:?}");
        assert!(
            shown.contains("password") && shown.contains("len: 7"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn a_boundary_found_in_a_part_is_drawn_again() {
        let form = Multipart::new()
            .text("a", "x\r\n--first\r\n")
            .text("b", "--second-");
        let mut draws = ["first", "second", "third", "fourth"].into_iter();
        let (content_type, body) = form
            .encode_with(|| Ok(draws.next().unwrap().to_owned()))
            .unwrap();
        assert_eq!(content_type, "multipart/form-data; boundary=third");
        assert!(body.starts_with(b"--third\r\n"));
        assert_eq!(
            draws.next(),
            Some("fourth"),
            "drawn until one is free, no more"
        );
    }

    #[test]
    fn contains_finds_a_delimiter_anywhere() {
        assert!(contains(b"ab--x", "--x"));
        assert!(contains(b"--x", "--x"));
        assert!(!contains(b"--", "--x"));
        assert!(!contains(b"-- x", "--x"));
    }
}
