//! `ByteStream` and `JsonLines` over bodies built by hand, cut at every position.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use serde::Deserialize;

use super::{ByteStream, JsonLines};
use crate::Error;

#[derive(Debug, Deserialize, PartialEq)]
struct Item {
    id: u64,
}

/// A stream of results given up front.
struct Given(std::vec::IntoIter<Result<Bytes, Error>>);

impl Stream for Given {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next())
    }
}

fn given(results: Vec<Result<Bytes, Error>>) -> ByteStream {
    ByteStream::from_stream(Given(results.into_iter()))
}

/// Every item, as `Ok(id)` or `Err(error text)`.
async fn items(mut lines: JsonLines<Item>) -> Vec<Result<u64, String>> {
    let mut all = Vec::new();
    while let Some(item) = lines.next_item().await {
        all.push(item.map(|i| i.id).map_err(|e| {
            std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)
        }));
    }
    all
}

#[tokio::test]
async fn chunks_come_in_order_and_the_stream_stays_ended() {
    let mut body = ByteStream::from_chunks(["a", "", "bc"]);
    assert_eq!(body.next_chunk().await.unwrap().unwrap(), "a");
    assert_eq!(body.next_chunk().await.unwrap().unwrap(), "");
    assert_eq!(body.next_chunk().await.unwrap().unwrap(), "bc");
    assert!(body.next_chunk().await.is_none());
    assert!(body.next_chunk().await.is_none());
    assert_eq!((body.method(), body.url()), (None, None));
}

#[tokio::test]
async fn a_stream_ends_after_its_first_error() {
    let mut body = given(vec![
        Ok(Bytes::from("a")),
        Err(Error::internal("broken")),
        Ok(Bytes::from("never read")),
    ]);
    assert_eq!(body.next_chunk().await.unwrap().unwrap(), "a");
    assert!(matches!(
        body.next_chunk().await,
        Some(Err(Error::Server(_)))
    ));
    assert!(body.next_chunk().await.is_none());
}

#[tokio::test]
async fn json_lines_are_the_same_however_the_body_is_cut() {
    let text = "{\"id\":1}\n\n{\"id\":22}\r\n  \r\nnot json\n{\"id\":333}\r\n{\"id\":4}";
    let expected = vec![
        Ok(1),
        Ok(22),
        Err("expected ident at line 1 column 2".to_owned()),
        Ok(333),
        Ok(4),
    ];
    let bytes = text.as_bytes();
    for i in 0..=bytes.len() {
        for j in i..=bytes.len() {
            let pieces = [&bytes[..i], &bytes[i..j], &bytes[j..]].map(Bytes::copy_from_slice);
            let got = items(JsonLines::new(ByteStream::from_chunks(pieces))).await;
            assert_eq!(got, expected, "cut at {i} and {j}");
        }
    }
    // And byte by byte.
    let pieces: Vec<Bytes> = bytes
        .iter()
        .map(|b| Bytes::copy_from_slice(&[*b]))
        .collect();
    assert_eq!(
        items(JsonLines::new(ByteStream::from_chunks(pieces))).await,
        expected
    );
}

#[tokio::test]
async fn an_empty_or_blank_body_has_no_items() {
    for text in ["", "\n", "\r\n\r\n", "  \n\t"] {
        let lines = JsonLines::new(ByteStream::from_chunks([text]));
        assert!(items(lines).await.is_empty(), "{text:?}");
    }
}

#[tokio::test]
async fn a_byte_order_mark_before_the_first_line_is_skipped() {
    let body = "\u{feff}{\"id\":1}\n{\"id\":2}\n";
    for cut in 0..=4 {
        let (a, b) = body.as_bytes().split_at(cut);
        let chunks = [Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)];
        let lines = JsonLines::new(ByteStream::from_chunks(chunks));
        assert_eq!(items(lines).await, [Ok(1), Ok(2)], "cut at {cut}");
    }
    // Not counted against the limit, however the body is cut.
    let exact = "{\"id\":12345678}";
    let body = format!("\u{feff}{exact}\r\n{exact}");
    for cut in 0..=body.len() {
        let (a, b) = body.as_bytes().split_at(cut);
        let chunks = [Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)];
        let lines = JsonLines::new(ByteStream::from_chunks(chunks)).max_line_bytes(exact.len());
        assert_eq!(
            items(lines).await,
            [Ok(12345678), Ok(12345678)],
            "cut at {cut}"
        );
    }
    // Cut into one-byte chunks, under a limit smaller than the mark: a mark is nothing.
    for limit in [0, 1] {
        let body = ByteStream::from_chunks([&b"\xEF"[..], b"\xBB", b"\xBF\n", b"\n"]);
        assert_eq!(items(JsonLines::new(body).max_line_bytes(limit)).await, []);
        let body = ByteStream::from_chunks([&b"\xEF"[..], b"\xBBx\n"]);
        let got = items(JsonLines::new(body).max_line_bytes(1)).await;
        assert!(got[0].as_ref().unwrap_err().contains("limit"), "{got:?}");
    }
    // Only there: a second line's is not JSON.
    let lines = JsonLines::new(ByteStream::from_chunks([
        "{\"id\":1}\n\u{feff}{\"id\":2}\n",
    ]));
    let got = items(lines).await;
    assert_eq!(got[0], Ok(1));
    assert!(got[1].is_err(), "{got:?}");
}

#[tokio::test]
async fn a_line_over_the_limit_is_an_error_that_ends_the_items() {
    // Its end: the error comes at the line break.
    let long = format!("{{\"id\":1}}\n[{}0]\n{{\"id\":2}}\n", "0,".repeat(20));
    let lines = JsonLines::new(ByteStream::from_chunks([long])).max_line_bytes(16);
    let got = items(lines).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], Ok(1));
    assert!(
        got[1].as_ref().unwrap_err().contains("16 byte limit"),
        "{got:?}"
    );

    // No end in sight: the error comes once the line outgrows the limit, without reading the
    // rest of the body.
    let endless = std::iter::repeat_n(Bytes::from_static(b"[0,0,0,0,"), 1 << 20);
    let mut lines = JsonLines::<Item>::new(ByteStream::from_chunks(endless)).max_line_bytes(64);
    let err = lines.next_item().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    assert!(lines.next_item().await.is_none());

    // A line exactly at the limit is read.
    let exact = "{\"id\":12345678}";
    let lines = JsonLines::new(ByteStream::from_chunks([exact])).max_line_bytes(exact.len());
    assert_eq!(items(lines).await, [Ok(12345678)]);

    // Its break is not counted, `\r\n` no more than `\n`, however the body is cut.
    let crlf = format!("{exact}\r\n{exact}\r\n");
    for cut in 0..=crlf.len() {
        let (a, b) = crlf.split_at(cut);
        let chunks = [a.to_owned(), b.to_owned()];
        let lines = JsonLines::new(ByteStream::from_chunks(chunks)).max_line_bytes(exact.len());
        assert_eq!(
            items(lines).await,
            [Ok(12345678), Ok(12345678)],
            "cut at {cut}"
        );
    }
    // One byte more is still one too many.
    let over = "{\"id\":123456789}\r\n";
    let lines = JsonLines::new(ByteStream::from_chunks([over])).max_line_bytes(exact.len());
    assert!(items(lines).await[0].is_err());
}

#[tokio::test]
async fn an_error_of_the_body_ends_the_items() {
    let body = given(vec![
        Ok(Bytes::from("{\"id\":1}\n{\"id\"")),
        Err(Error::internal("cut off")),
        Ok(Bytes::from(":2}\n")),
    ]);
    let mut lines = JsonLines::<Item>::new(body);
    assert_eq!(lines.next_item().await.unwrap().unwrap(), Item { id: 1 });
    assert!(matches!(
        lines.next_item().await,
        Some(Err(Error::Server(_)))
    ));
    assert!(lines.next_item().await.is_none());
}

#[tokio::test]
async fn items_given_by_hand_are_yielded_as_they_are() {
    let lines = JsonLines::from_items((1..=3).map(|id| Item { id }));
    assert_eq!(items(lines).await, [Ok(1), Ok(2), Ok(3)]);
    let lines: JsonLines<Item> = vec![Item { id: 9 }].into_iter().collect();
    assert_eq!(items(lines).await, [Ok(9)]);
}

#[cfg(feature = "server")]
mod served {
    use super::*;

    async fn text(mut body: ByteStream) -> String {
        let mut all = Vec::new();
        while let Some(chunk) = body.next_chunk().await {
            all.extend_from_slice(&chunk.unwrap());
        }
        String::from_utf8(all).unwrap()
    }

    #[derive(serde::Serialize)]
    struct Out {
        id: u64,
    }

    #[tokio::test]
    async fn items_are_sent_one_per_line() {
        let lines = JsonLines::from_items((1..=2).map(|id| Out { id }));
        assert_eq!(text(lines.into_bytes()).await, "{\"id\":1}\n{\"id\":2}\n");
    }

    #[tokio::test]
    async fn lines_partly_read_are_passed_on_from_where_reading_stopped() {
        let body = ByteStream::from_chunks(["{\"id\":1}\n{\"id\":2}\n{\"id\"", ":3}\n"]);
        let mut lines = JsonLines::<serde_json::Value>::new(body);
        assert_eq!(lines.next_item().await.unwrap().unwrap()["id"], 1);
        assert_eq!(text(lines.into_bytes()).await, "{\"id\":2}\n{\"id\":3}\n");
    }
}
