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
    /// What the body declared it would be (within the limit): the room the buffer takes at
    /// the second chunk.
    expected: usize,
    limit: usize,
}

/// A body over its limit.
#[derive(Debug)]
pub(crate) struct TooLarge;

impl Gathered {
    /// An empty body of at most `limit` bytes, `declared` by its `Content-Length` if it has one.
    pub(crate) fn new(limit: usize, declared: Option<u64>) -> Gathered {
        Gathered {
            first: None,
            gathered: BytesMut::new(),
            expected: declared.map_or(0, |len| len.min(limit as u64) as usize),
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
