//! Answering a retried request once: the server half of `idempotent` methods.
//!
//! A client retries a call marked `idempotent` with the same `Idempotency-Key` on every
//! attempt. When an attempt's response is lost on the way back (a reset, a timeout), the method
//! has already run, or is still running; the retry must get that first answer, not run it
//! again. So a server keeps the answer to each key it has served, for a while, and answers a
//! repeat from memory:
//!
//! - A claimed method runs to its end even when its caller hangs up (an attempt that timed out
//!   drops its connection), so its answer is kept rather than the work cut off halfway. (Not
//!   past the server's own shutdown: a store that outlives the process then keeps the key
//!   claimed until it expires.)
//! - A repeat that arrives while the first is still running waits for its answer, within the
//!   repeat's deadline and at most 5 s; still running then, it gets a 409, as the IETF
//!   `Idempotency-Key` draft has it.
//! - A key is scoped to the calling service and the route: the same key from another caller
//!   or on another route is another key. On the same route, a key reused for a different
//!   request gets a 422: a key's record is fingerprinted with a digest of the request's path,
//!   query, `#[header]` arguments and body, so the same key sent to `/accounts/2/charge` after
//!   `/accounts/1/charge` is refused, not answered with the first account's answer.
//! - An answer that asks for the request again (408, 429), a server error (5xx) or a method
//!   that panicked is not kept: the key is released, and a retry runs the method again.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::BoxError;

/// A kept answer: what the method's response was.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// What a store knows of a key when a request with it arrives.
#[derive(Debug)]
#[non_exhaustive]
pub enum Claim {
    /// Never seen (or forgotten): the key is now claimed, and the method runs.
    New,
    /// Answered before: the answer to repeat.
    Answered(StoredResponse),
    /// A request with this key is still running.
    InProgress,
    /// Seen with a different request.
    Mismatch,
}

/// Where a server keeps the answers to `Idempotency-Key`s, so that a fleet can share them.
///
/// `scope` names the calling service and the route; `fingerprint` identifies the request (a
/// digest of its path, query, `#[header]` arguments and body). A claim that is neither
/// finished nor released expires with the key.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key`, or says what is known of it.
    fn claim<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Claim, BoxError>> + Send + 'a>>;

    /// Keeps the answer to a claimed key.
    fn finish<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        response: StoredResponse,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

    /// Releases a claimed key without an answer, so that a retry runs the method again.
    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;
}

/// The default number of keys [`MemoryIdempotencyStore`] keeps.
pub const DEFAULT_IDEMPOTENCY_CAPACITY: usize = 100_000;

/// The default time [`MemoryIdempotencyStore`] keeps an answer: 24 hours.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// A bounded in-memory [`IdempotencyStore`] for one process.
///
/// It keeps at most `capacity` keys, each for `ttl`. When full it forgets the oldest answered
/// key first (a retry that late runs the method again); it never forgets a key whose request is
/// still running, and when every key is running it refuses new claims (the request gets a 503).
#[derive(Debug)]
pub struct MemoryIdempotencyStore {
    inner: Mutex<Memory>,
    capacity: usize,
    ttl: Duration,
}

#[derive(Debug, Default)]
struct Memory {
    entries: HashMap<(String, String), Entry>,
    /// Keys in the order they were claimed, for forgetting the oldest, each with the number of
    /// its claim: a key released or expired and claimed again is here twice, and only the
    /// place of its latest claim counts.
    order: VecDeque<((String, String), u64)>,
    /// The number the next claim gets.
    claims: u64,
}

#[derive(Debug)]
struct Entry {
    fingerprint: String,
    answer: Option<StoredResponse>,
    expires: Instant,
    /// Which claim made this entry (its place in `order`).
    claim: u64,
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        MemoryIdempotencyStore::new(DEFAULT_IDEMPOTENCY_CAPACITY, DEFAULT_IDEMPOTENCY_TTL)
    }
}

impl MemoryIdempotencyStore {
    /// A store keeping at most `capacity` keys (at least one), each for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> MemoryIdempotencyStore {
        MemoryIdempotencyStore {
            inner: Mutex::new(Memory::default()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    /// How many keys are kept now, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn claim_at(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: Instant,
    ) -> Result<Claim, BoxError> {
        let mut memory = self.lock();
        let id = (scope.to_owned(), key.to_owned());
        if let Some(entry) = memory.entries.get(&id) {
            if entry.expires > now {
                return Ok(if entry.fingerprint != fingerprint {
                    Claim::Mismatch
                } else {
                    match &entry.answer {
                        Some(answer) => Claim::Answered(answer.clone()),
                        None => Claim::InProgress,
                    }
                });
            }
            memory.entries.remove(&id);
        }
        memory.make_room(self.capacity, now)?;
        let claim = memory.claims;
        memory.claims += 1;
        memory.entries.insert(
            id.clone(),
            Entry {
                fingerprint: fingerprint.to_owned(),
                answer: None,
                expires: now + self.ttl,
                claim,
            },
        );
        memory.order.push_back((id, claim));
        // Released keys leave their places behind; drop them once they are as many as the
        // keys kept, so that `order` stays within twice the keys (and a constant).
        if memory.order.len() > 2 * memory.entries.len() + 16 {
            let Memory { entries, order, .. } = &mut *memory;
            order.retain(|(id, claim)| is_current(entries, id, *claim));
        }
        Ok(Claim::New)
    }
}

/// Whether `claim` of key `id` still holds its entry (not released, forgotten or claimed again).
fn is_current(
    entries: &HashMap<(String, String), Entry>,
    id: &(String, String),
    claim: u64,
) -> bool {
    entries.get(id).is_some_and(|entry| entry.claim == claim)
}

impl Memory {
    /// Drops expired keys, then the oldest answered ones, until there is room for one more.
    fn make_room(&mut self, capacity: usize, now: Instant) -> Result<(), BoxError> {
        if self.entries.len() < capacity {
            return Ok(());
        }
        self.entries.retain(|_, entry| entry.expires > now);
        let mut kept = VecDeque::with_capacity(self.order.len());
        while let Some((id, claim)) = self.order.pop_front() {
            if !is_current(&self.entries, &id, claim) {
                continue;
            }
            let answered = self.entries.get(&id).is_some_and(|e| e.answer.is_some());
            if answered && self.entries.len() >= capacity {
                self.entries.remove(&id);
            } else {
                kept.push_back((id, claim));
            }
        }
        self.order = kept;
        if self.entries.len() >= capacity {
            return Err("the idempotency store is full of requests still running".into());
        }
        Ok(())
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    fn claim<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Claim, BoxError>> + Send + 'a>> {
        let claim = self.claim_at(scope, key, fingerprint, Instant::now());
        Box::pin(std::future::ready(claim))
    }

    fn finish<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        response: StoredResponse,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>> {
        let mut memory = self.lock();
        if let Some(entry) = memory.entries.get_mut(&(scope.to_owned(), key.to_owned())) {
            entry.answer = Some(response);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>> {
        self.lock()
            .entries
            .remove(&(scope.to_owned(), key.to_owned()));
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> StoredResponse {
        StoredResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
        }
    }

    fn run<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => unreachable!("the memory store never waits"),
        }
    }

    #[test]
    fn released_keys_leave_no_trace_behind() {
        let s = MemoryIdempotencyStore::new(100, Duration::from_secs(60));
        for i in 0..10_000 {
            let key = i.to_string();
            assert!(matches!(run(s.claim("a", &key, "f")).unwrap(), Claim::New));
            run(s.release("a", &key)).unwrap();
        }
        let memory = s.lock();
        assert!(memory.entries.is_empty());
        assert!(memory.order.len() <= 16, "{}", memory.order.len());
        drop(memory);
        // A key claimed again after its release is in the order once, where it was last
        // claimed: here the newest, so an older answered key is forgotten before it.
        let s = MemoryIdempotencyStore::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(matches!(s.claim_at("a", "1", "f", t0).unwrap(), Claim::New));
        run(s.release("a", "1")).unwrap();
        assert!(matches!(s.claim_at("a", "2", "f", t0).unwrap(), Claim::New));
        run(s.finish("a", "2", answer(200))).unwrap();
        assert!(matches!(s.claim_at("a", "1", "f", t0).unwrap(), Claim::New));
        run(s.finish("a", "1", answer(200))).unwrap();
        assert!(matches!(s.claim_at("a", "3", "f", t0).unwrap(), Claim::New));
        assert!(matches!(
            s.claim_at("a", "1", "f", t0).unwrap(),
            Claim::Answered(_)
        ));
        assert!(matches!(s.claim_at("a", "2", "f", t0).unwrap(), Claim::New));
    }

    #[test]
    fn a_key_is_claimed_once_then_answered_from_memory() {
        let s = MemoryIdempotencyStore::default();
        assert!(matches!(run(s.claim("a", "k", "f")).unwrap(), Claim::New));
        assert!(matches!(
            run(s.claim("a", "k", "f")).unwrap(),
            Claim::InProgress
        ));
        assert!(matches!(
            run(s.claim("a", "k", "other")).unwrap(),
            Claim::Mismatch
        ));
        assert!(
            matches!(run(s.claim("b", "k", "f")).unwrap(), Claim::New),
            "scopes apart"
        );
        run(s.finish("a", "k", answer(201))).unwrap();
        match run(s.claim("a", "k", "f")).unwrap() {
            Claim::Answered(r) => assert_eq!(r.status, 201),
            other => panic!("{other:?}"),
        }
        // A released key runs again.
        run(s.release("b", "k")).unwrap();
        assert!(matches!(run(s.claim("b", "k", "f")).unwrap(), Claim::New));
    }

    #[test]
    fn keys_expire_and_the_store_stays_bounded() {
        let s = MemoryIdempotencyStore::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(matches!(s.claim_at("a", "1", "f", t0).unwrap(), Claim::New));
        run(s.finish("a", "1", answer(200))).unwrap();
        assert!(matches!(s.claim_at("a", "2", "f", t0).unwrap(), Claim::New));
        // Full: the oldest answered key goes, the running one stays.
        assert!(matches!(s.claim_at("a", "3", "f", t0).unwrap(), Claim::New));
        assert_eq!(s.len(), 2);
        assert!(matches!(
            s.claim_at("a", "2", "f", t0).unwrap(),
            Claim::InProgress
        ));
        // Full of running requests: refused, not evicted.
        assert!(s.claim_at("a", "4", "f", t0).is_err());
        // After the time to live, room again.
        let later = t0 + Duration::from_secs(11);
        assert!(matches!(
            s.claim_at("a", "4", "f", later).unwrap(),
            Claim::New
        ));
        assert!(s.len() <= 2);
    }
}
