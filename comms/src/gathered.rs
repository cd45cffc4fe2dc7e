//! A body read whole under a size limit, chunk by chunk: a response body on the client, a
//! request body on the receiving side.

use bytes::{Bytes, BytesMut};

/// A body gathered so far.
pub(crate) struct Gathered {
    /// The body so far is in exactly one of these: `first` while one chunk has come,
    /// `gathered` once a second one has. A body that arrives in one chunk, as small ones do,
    /// is returned as it came, without a copy; one in several is copied into one buffer, so
    /// that what it holds is bounded by the limit however small its chunks (each kept apart
    /// would pin the buffer it was read into).
    first: Option<Bytes>,
    gathered: BytesMut,
    /// What the body declared it would be (within the limit and [`RESERVED_AT_MOST`]): the
    /// room the buffer takes at the second chunk.
    expected: usize,
    limit: usize,
}

/// The most room a body's declared length takes before its bytes arrive. A length is the
/// sender's word: a peer declaring gigabytes under a generous limit, and sending two bytes,
/// must not have them set aside (an allocation that fails aborts the process). Past this the
/// buffer grows with what arrives.
const RESERVED_AT_MOST: u64 = 1 << 20;

/// A body over its limit.
#[derive(Debug)]
pub(crate) struct TooLarge;

impl Gathered {
    /// An empty body of at most `limit` bytes, `declared` by its `Content-Length` if it has one.
    pub(crate) fn new(limit: usize, declared: Option<u64>) -> Gathered {
        Gathered {
            first: None,
            gathered: BytesMut::new(),
            expected: declared.map_or(0, |len| {
                len.min(limit as u64).min(RESERVED_AT_MOST) as usize
            }),
            limit,
        }
    }

    /// Adds the next chunk; `Err` when it takes the body over the limit.
    pub(crate) fn push(&mut self, chunk: Bytes) -> Result<(), TooLarge> {
        let so_far = self.first.as_ref().map_or(self.gathered.len(), Bytes::len);
        if so_far + chunk.len() > self.limit {
            return Err(TooLarge);
        }
        match self.first.take() {
            None if self.gathered.is_empty() => self.first = Some(chunk),
            None => self.gathered.extend_from_slice(&chunk),
            Some(head) => {
                self.gathered
                    .reserve(self.expected.max(head.len() + chunk.len()));
                self.gathered.extend_from_slice(&head);
                self.gathered.extend_from_slice(&chunk);
            }
        }
        Ok(())
    }

    /// The whole body, leaving this one empty.
    pub(crate) fn take(&mut self) -> Bytes {
        self.first
            .take()
            .unwrap_or_else(|| std::mem::take(&mut self.gathered).freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_sets_aside_at_most_a_mebibyte() {
        let huge = 1 << 30;
        let mut body = Gathered::new(huge, Some(huge as u64));
        body.push(Bytes::from_static(b"a")).unwrap();
        body.push(Bytes::from_static(b"b")).unwrap();
        assert!(body.gathered.capacity() <= RESERVED_AT_MOST as usize);
        assert_eq!(body.take(), "ab");

        // A small body declared takes its room at once, and is read whole into it.
        let mut body = Gathered::new(huge, Some(6));
        body.push(Bytes::from_static(b"abc")).unwrap();
        body.push(Bytes::from_static(b"def")).unwrap();
        assert!((6..64).contains(&body.gathered.capacity()));
        assert_eq!(body.take(), "abcdef");
    }

    #[test]
    fn a_body_past_the_room_set_aside_grows_with_what_arrives() {
        let limit = 4 << 20;
        let mut body = Gathered::new(limit, Some(limit as u64));
        let chunk = Bytes::from(vec![7u8; 64 << 10]);
        for _ in 0..64 {
            body.push(chunk.clone()).unwrap();
        }
        assert!(body.push(Bytes::from_static(b"x")).is_err());
        assert_eq!(body.take().len(), limit);
    }
}
