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
//! - A key is scoped to the service served (the trait, by its module path and the authority
//!   of the base URL it names), the calling service and the route (its parameters unnamed):
//!   the same key from another caller, on another route, or at a service serving another
//!   trait from the same store is another key. (Two services serving one trait need
//!   stores of their own, a namespace each.) On the same route, a key reused for a different
//!   request gets a 422: a key's record is fingerprinted with a digest of the request's path,
//!   query, `#[header]` arguments, `Content-Type` and body, so the same key sent to
//!   `/accounts/2/charge` after `/accounts/1/charge` is refused, not answered with the first
//!   account's answer.
//! - An answer that asks for the request again (408, 429), a server error (5xx), a
//!   dependency's refusal passed on (424) or a method that panicked is not kept: the key is
//!   released, and a retry runs the method again. (The
//!   500 of a method that returned a value JSON cannot write is kept: the method ran.) Nor
//!   is the refusal of an argument that did not parse (400, 415): the method never ran, and
//!   the request sent again with its mistake corrected runs under the same key.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::BoxError;

/// A kept answer: what the method's response was.
///
/// Non-exhaustive, so that what is kept can grow: a store of its own builds one with
/// [`StoredResponse::new`] and reads its fields. Its `Debug` shows the headers' names, not
/// their values (cookies, tokens), and the body's length.
#[derive(Clone)]
#[non_exhaustive]
pub struct StoredResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl std::fmt::Debug for StoredResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredResponse")
            .field("status", &self.status)
            .field("headers", &crate::header_map::HeaderNames(&self.headers))
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl StoredResponse {
    /// An answer of `status`, `headers` and `body`, as a store gives it back (from its own
    /// storage, say) in a [`Claim::Answered`].
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> StoredResponse {
        StoredResponse {
            status,
            headers,
            body,
        }
    }
}

/// What a store knows of a key when a request with it arrives.
#[derive(Debug)]
#[non_exhaustive]
pub enum Claim {
    /// Never seen (or forgotten): the key is now held by the claim that asked, and the method
    /// runs.
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
/// `scope` names the service served (its trait, by its module path and the authority of the
/// base URL it names), the calling service, and the method and route with the route's
/// parameters unnamed: `api::Orders at orders:8080|billing|POST /orders/<_>/pay`;
/// `fingerprint` identifies the request (a digest of its path, query, `#[header]` arguments,
/// `Content-Type` and body); `claim` identifies the request that claims the key, 32 hex digits
/// the server draws at random for each claim it asks for.
///
/// A store keeps a key claimed until its claim finishes or releases it. A store shared by a
/// fleet may let a claim lapse, so that a process that died holding a key does not hold it for
/// ever, but only well after any request could have ended: a claim lapsed while its request
/// still runs lets a retry run the method a second time. And `finish` and `release` act only
/// on a key still held by their `claim`: a request that lost its key that way must not answer
/// or free the key of the retry that claimed it next. A server asks again a `finish` or
/// `release` that failed, so either may reach the store more than once for one claim. A
/// server also releases a claim whose `claim` call failed, since the store may have recorded
/// it; a store whose calls can be carried out out of order (over several connections) should
/// make a claim that arrives after its own release take nothing, as
/// `comms::redis::RedisIdempotencyStore` does.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for `claim`, or says what is known of it.
    fn claim<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a str,
        claim: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Claim, BoxError>> + Send + 'a>>;

    /// Keeps the answer to a key `claim` holds; does nothing to a key it no longer holds.
    fn finish<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        claim: &'a str,
        response: StoredResponse,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

    /// Releases a key `claim` holds, without an answer, so that a retry runs the method again;
    /// does nothing to a key it no longer holds.
    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        claim: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;
}

/// The default number of keys [`MemoryIdempotencyStore`] keeps.
pub const DEFAULT_IDEMPOTENCY_CAPACITY: usize = 100_000;

/// The default time [`MemoryIdempotencyStore`] keeps an answer: 24 hours.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// The default memory [`MemoryIdempotencyStore`] keeps its keys and answers in: 256 MiB.
pub const DEFAULT_IDEMPOTENCY_BYTES: usize = 256 * 1024 * 1024;

/// What one kept key costs beyond its text and its answer's bytes: its places in the map and
/// the queues, its record, its strings' allocations and their allocator's overhead. Counted so
/// that a flood of tiny keys is bounded too. Measured, with the header costs below, by a
/// counting allocator: a store kept at its byte budget by 200-byte answers with two headers,
/// twenty, or one header's twenty values takes 0.91 to 1.02 of the budget.
const ENTRY_OVERHEAD: usize = 512;

/// What a kept answer's header map costs for each name it has room for: the entry (its hash,
/// name, first value and links) and its index.
const HEADER_SLOT: usize =
    std::mem::size_of::<http::HeaderName>() + std::mem::size_of::<http::HeaderValue>() + 72;

/// What each value beyond a name's first costs in the map, with room the list keeps to grow.
const REPEATED_VALUE: usize = (std::mem::size_of::<http::HeaderValue>() + 24) * 2;

/// What each value's own bytes cost beyond their length: the buffer's allocation, shared by
/// the answer served and the one kept.
const VALUE_ALLOCATION: usize = 32;

/// A bounded in-memory [`IdempotencyStore`] for one process.
///
/// It keeps at most `capacity` keys, and their answers within `max_bytes` (keys, answers'
/// bodies and headers, and what keeping each costs the allocator: the store's memory stays
/// within about a tenth of it, whatever the answers' headers). An answer is kept for `ttl`
/// from when it was given; a key whose request is still running is kept until the request
/// ends, however long it runs (the process holding it is the one that would lose it): a
/// method that never returns holds its key, and its place among the `capacity`, for the life
/// of the process. When full it forgets the oldest answered key first (a retry that late runs
/// the method again), and it does not keep an answer larger than all of `max_bytes` (its retry
/// runs the method again). When every key is running it refuses new claims (the request gets a
/// 503). A claim costs the same however full the store is.
pub struct MemoryIdempotencyStore {
    inner: Mutex<Memory>,
    capacity: usize,
    ttl: Duration,
    max_bytes: usize,
}

impl std::fmt::Debug for MemoryIdempotencyStore {
    /// The limits and how many keys are kept; not the keys nor their answers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not waited for: `None` while the store is in use (or the lock poisoned).
        let kept = self.inner.try_lock().ok().map(|m| m.entries.len());
        f.debug_struct("MemoryIdempotencyStore")
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .field("max_bytes", &self.max_bytes)
            .field("kept", &kept)
            .finish()
    }
}

/// A key: the scope and the key itself, shared by the map and the queues.
type Id = Arc<(String, String)>;

#[derive(Debug, Default)]
struct Memory {
    entries: HashMap<Id, Entry>,
    /// Answered keys in the order they were answered, which is the order they expire in (all
    /// live for one `ttl`) and the first to forget when full; each with the number of its
    /// claim: a key forgotten and claimed again may be here twice, and only its latest claim
    /// counts.
    answered: VecDeque<(Id, u64)>,
    /// The number the next claim gets.
    claims: u64,
    /// What the kept keys and answers take, as `Entry::bytes` counts it.
    bytes: usize,
    /// Places taken off the queues' fronts, to show that a claim's cost does not grow with
    /// the store.
    #[cfg(test)]
    looked: usize,
}

#[derive(Debug)]
struct Entry {
    fingerprint: String,
    /// The answer, and when it expires (never, for a time to live longer than the clock can
    /// count: `Duration::MAX`); `None` while the request runs.
    answer: Option<(StoredResponse, Option<Instant>)>,
    /// The claim holding the key, as the server named it.
    holder: Box<str>,
    /// Which claim made this entry, by the store's own count: what the queue's places hold.
    claim: u64,
    /// What it takes: its key, scope, fingerprint and holder, its answer, and `ENTRY_OVERHEAD`.
    bytes: usize,
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        MemoryIdempotencyStore::new(DEFAULT_IDEMPOTENCY_CAPACITY, DEFAULT_IDEMPOTENCY_TTL)
    }
}

impl MemoryIdempotencyStore {
    /// A store keeping at most `capacity` keys (at least one), each answer for `ttl` from when
    /// it was given (`Duration::MAX`: until the store needs the room), within
    /// [`DEFAULT_IDEMPOTENCY_BYTES`].
    pub fn new(capacity: usize, ttl: Duration) -> MemoryIdempotencyStore {
        MemoryIdempotencyStore {
            inner: Mutex::new(Memory::default()),
            capacity: capacity.max(1),
            ttl,
            max_bytes: DEFAULT_IDEMPOTENCY_BYTES,
        }
    }

    /// Keeps the keys and answers within about `bytes` (by default
    /// [`DEFAULT_IDEMPOTENCY_BYTES`]), forgetting the oldest answered keys beyond it. An answer
    /// is kept when it is given, even when the requests still running hold the rest of the
    /// room (the store is then over by at most what they hold); like every answer, it goes
    /// when a later claim needs the room and it is the oldest left.
    #[must_use]
    pub fn max_bytes(mut self, bytes: usize) -> MemoryIdempotencyStore {
        self.max_bytes = bytes;
        self
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
        holder: &str,
        now: Instant,
    ) -> Result<Claim, BoxError> {
        let mut memory = self.lock();
        let id: Id = Arc::new((scope.to_owned(), key.to_owned()));
        if let Some(entry) = memory.entries.get(&id) {
            let live = entry
                .answer
                .as_ref()
                .is_none_or(|(_, expires)| expires.is_none_or(|at| at > now));
            if live {
                return Ok(if entry.fingerprint != fingerprint {
                    Claim::Mismatch
                } else {
                    match &entry.answer {
                        Some((answer, _)) => Claim::Answered(answer.clone()),
                        None => Claim::InProgress,
                    }
                });
            }
            memory.forget(&id);
        }
        let bytes = ENTRY_OVERHEAD + scope.len() + key.len() + fingerprint.len() + holder.len();
        memory.drop_expired(now);
        memory.make_room(self.capacity, self.max_bytes.saturating_sub(bytes))?;
        let claim = memory.claims;
        memory.claims += 1;
        memory.bytes += bytes;
        memory.entries.insert(
            id,
            Entry {
                fingerprint: fingerprint.to_owned(),
                answer: None,
                holder: holder.into(),
                claim,
                bytes,
            },
        );
        Ok(Claim::New)
    }

    fn finish_at(
        &self,
        scope: &str,
        key: &str,
        holder: &str,
        response: StoredResponse,
        now: Instant,
    ) {
        let response = compact(response);
        let mut memory = self.lock();
        let memory = &mut *memory;
        let lookup = (scope.to_owned(), key.to_owned());
        let Some((id, entry)) = memory.entries.get_key_value(&lookup) else {
            return;
        };
        if entry.answer.is_some() || *entry.holder != *holder {
            return;
        }
        let (id, claim) = (Arc::clone(id), entry.claim);
        let bytes = answer_bytes(&response);
        if entry.bytes + bytes > self.max_bytes {
            // An answer larger than all the store keeps is not kept, and costs the others
            // nothing: its key is forgotten, and a retry runs the method again.
            memory.forget(&lookup);
            return;
        }
        let entry = memory.entries.get_mut(&lookup).expect("just found");
        entry.answer = Some((response, now.checked_add(self.ttl)));
        entry.bytes += bytes;
        memory.bytes += bytes;
        // Over the bytes, the oldest answers go, older than this one: with the rest of the
        // room held by requests still running, it is kept beyond the bytes (by at most what
        // they hold) rather than forgotten as soon as it was given, when its retry would run
        // the method again.
        let _ = memory.make_room(usize::MAX, self.max_bytes);
        memory.answered.push_back((id, claim));
        memory.compact();
    }
}

/// An answer as the store keeps it: its body in an allocation of its own length, and its
/// headers in a map of their size. The body a server answered with may sit in a buffer with
/// room to spare (a JSON body's can be near twice its length), and its header map has room for
/// more headers: kept for a day, the spare room would take memory the budget does not count.
fn compact(answer: StoredResponse) -> StoredResponse {
    // Room for its names: a name's further values go in a list beside them. (A map holds at
    // most 24,576 names, which is room `with_capacity` can make; values it has no limit on.)
    let mut headers = HeaderMap::with_capacity(answer.headers.keys_len());
    for (name, value) in &answer.headers {
        headers.append(name.clone(), value.clone());
    }
    StoredResponse {
        status: answer.status,
        headers,
        body: Bytes::copy_from_slice(&answer.body),
    }
}

/// What a [compacted](compact) answer takes: its body, its header map (a slot for each name it
/// has room for, a place for each further value) and the names' and values' bytes.
fn answer_bytes(answer: &StoredResponse) -> usize {
    let map = &answer.headers;
    let text: usize = map
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + VALUE_ALLOCATION)
        .sum();
    answer.body.len()
        + map.capacity() * HEADER_SLOT
        + (map.len() - map.keys_len()) * REPEATED_VALUE
        + text
}

impl Memory {
    /// Whether `claim` of key `id` still holds its entry (not released, forgotten or claimed
    /// again).
    fn is_current(&self, id: &Id, claim: u64) -> bool {
        self.entries
            .get(id)
            .is_some_and(|entry| entry.claim == claim)
    }

    /// Forgets a key, and what it took.
    fn forget(&mut self, id: &(String, String)) {
        if let Some(entry) = self.entries.remove(id) {
            self.bytes -= entry.bytes;
        }
    }

    /// Drops the answers whose time is up. They are at the front of `answered`, with the
    /// places of keys forgotten since, which go too.
    fn drop_expired(&mut self, now: Instant) {
        while let Some((id, claim)) = self.answered.front() {
            // Its entry, if this place is still the key's.
            let entry = self.entries.get(id).filter(|e| e.claim == *claim);
            let live = |e: &Entry| {
                e.answer
                    .as_ref()
                    .is_some_and(|(_, expires)| expires.is_none_or(|at| at > now))
            };
            if entry.is_some_and(live) {
                break;
            }
            let current = entry.is_some();
            let (id, _) = self.answered.pop_front().expect("a front");
            #[cfg(test)]
            {
                self.looked += 1;
            }
            if current {
                self.forget(&id);
            }
        }
    }

    /// Forgets the oldest answered keys until there is room for one more key, and `bytes`
    /// more would fit within `max_bytes` counted with them. Each place in `answered` is looked
    /// at once, whatever the store holds.
    fn make_room(&mut self, capacity: usize, max_bytes: usize) -> Result<(), BoxError> {
        while self.entries.len() >= capacity || self.bytes > max_bytes {
            let Some((id, claim)) = self.answered.pop_front() else {
                return Err("the idempotency store is full of requests still running".into());
            };
            #[cfg(test)]
            {
                self.looked += 1;
            }
            if self.is_current(&id, claim) {
                self.forget(&id);
            }
        }
        Ok(())
    }

    /// Keeps `answered` within twice the keys kept (and a constant): forgotten keys leave
    /// their places behind.
    fn compact(&mut self) {
        let limit = 2 * self.entries.len() + 16;
        if self.answered.len() > limit {
            let mut answered = std::mem::take(&mut self.answered);
            answered.retain(|(id, claim)| self.is_current(id, *claim));
            self.answered = answered;
        }
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    fn claim<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a str,
        claim: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Claim, BoxError>> + Send + 'a>> {
        let claimed = self.claim_at(scope, key, fingerprint, claim, Instant::now());
        Box::pin(std::future::ready(claimed))
    }

    fn finish<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        claim: &'a str,
        response: StoredResponse,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>> {
        self.finish_at(scope, key, claim, response, Instant::now());
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        claim: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>> {
        let mut memory = self.lock();
        let lookup = (scope.to_owned(), key.to_owned());
        if memory
            .entries
            .get(&lookup)
            .is_some_and(|entry| *entry.holder == *claim)
        {
            memory.forget(&lookup);
        }
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
            assert!(matches!(
                run(s.claim("a", &key, "f", "h")).unwrap(),
                Claim::New
            ));
            if i % 2 == 0 {
                run(s.finish("a", &key, "h", answer(200))).unwrap();
            }
            run(s.release("a", &key, "h")).unwrap();
        }
        let memory = s.lock();
        assert!(memory.entries.is_empty());
        assert!(memory.answered.len() <= 16, "{}", memory.answered.len());
        assert_eq!(memory.bytes, 0);
        drop(memory);
        // A key answered again after its release is in the queue once, where it was last
        // answered: here the newest, so an older answered key is forgotten before it.
        let s = MemoryIdempotencyStore::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(matches!(
            s.claim_at("a", "1", "f", "h", t0).unwrap(),
            Claim::New
        ));
        run(s.release("a", "1", "h")).unwrap();
        assert!(matches!(
            s.claim_at("a", "2", "f", "h", t0).unwrap(),
            Claim::New
        ));
        run(s.finish("a", "2", "h", answer(200))).unwrap();
        assert!(matches!(
            s.claim_at("a", "1", "f", "h", t0).unwrap(),
            Claim::New
        ));
        run(s.finish("a", "1", "h", answer(200))).unwrap();
        assert!(matches!(
            s.claim_at("a", "3", "f", "h", t0).unwrap(),
            Claim::New
        ));
        assert!(matches!(
            s.claim_at("a", "1", "f", "h", t0).unwrap(),
            Claim::Answered(_)
        ));
        assert!(matches!(
            s.claim_at("a", "2", "f", "h", t0).unwrap(),
            Claim::New
        ));
    }

    #[test]
    fn answers_kept_for_ever_are_kept_until_the_room_is_needed() {
        // `Duration::MAX`: no instant is that far, and the answer never expires.
        let s = MemoryIdempotencyStore::new(2, Duration::MAX);
        let t0 = Instant::now();
        for key in ["1", "2"] {
            assert!(matches!(
                s.claim_at("a", key, "f", "h", t0).unwrap(),
                Claim::New
            ));
            s.finish_at("a", key, "h", answer(200), t0);
        }
        let years = t0 + Duration::from_secs(50 * 365 * 24 * 3600);
        assert!(matches!(
            s.claim_at("a", "1", "f", "h", years).unwrap(),
            Claim::Answered(_)
        ));
        // A third key needs the room of the oldest answer.
        assert!(matches!(
            s.claim_at("a", "3", "f", "h", years).unwrap(),
            Claim::New
        ));
        assert!(matches!(
            s.claim_at("a", "1", "f", "h", years).unwrap(),
            Claim::New
        ));
    }

    #[test]
    fn a_key_is_claimed_once_then_answered_from_memory() {
        let s = MemoryIdempotencyStore::default();
        assert!(matches!(
            run(s.claim("a", "k", "f", "h")).unwrap(),
            Claim::New
        ));
        assert!(matches!(
            run(s.claim("a", "k", "f", "h")).unwrap(),
            Claim::InProgress
        ));
        assert!(matches!(
            run(s.claim("a", "k", "other", "h")).unwrap(),
            Claim::Mismatch
        ));
        assert!(
            matches!(run(s.claim("b", "k", "f", "h")).unwrap(), Claim::New),
            "scopes apart"
        );
        run(s.finish("a", "k", "h", answer(201))).unwrap();
        match run(s.claim("a", "k", "f", "h")).unwrap() {
            Claim::Answered(r) => assert_eq!(r.status, 201),
            other => panic!("{other:?}"),
        }
        // A released key runs again.
        run(s.release("b", "k", "h")).unwrap();
        assert!(matches!(
            run(s.claim("b", "k", "f", "h")).unwrap(),
            Claim::New
        ));
    }

    #[test]
    fn a_full_store_forgets_its_oldest_answer_without_looking_at_the_rest() {
        let s = MemoryIdempotencyStore::new(10_000, Duration::from_secs(60));
        let t0 = Instant::now();
        // A running key at the front stays through it all.
        assert!(matches!(
            s.claim_at("a", "running", "f", "h", t0).unwrap(),
            Claim::New
        ));
        for i in 0..30_000 {
            let key = i.to_string();
            assert!(matches!(
                s.claim_at("a", &key, "f", "h", t0).unwrap(),
                Claim::New
            ));
            run(s.finish("a", &key, "h", answer(200))).unwrap();
        }
        let memory = s.lock();
        assert_eq!(memory.entries.len(), 10_000);
        // Each of the 20,000 keys forgotten was looked at once (and a few stale places).
        assert!(memory.looked <= 20_100, "{}", memory.looked);
        drop(memory);
        assert!(matches!(
            s.claim_at("a", "running", "f", "h", t0).unwrap(),
            Claim::InProgress
        ));
        assert!(matches!(
            s.claim_at("a", "20001", "f", "h", t0).unwrap(),
            Claim::Answered(_)
        ));
        assert!(matches!(
            s.claim_at("a", "19990", "f", "h", t0).unwrap(),
            Claim::New
        ));
    }

    #[test]
    fn an_answer_is_kept_when_running_requests_hold_the_rest_of_the_room() {
        let s = MemoryIdempotencyStore::new(1000, Duration::from_secs(60)).max_bytes(16 * 1024);
        let t0 = Instant::now();
        let fingerprint = "f".repeat(64);
        let claim =
            |key: &str, holder: &str| s.claim_at("a", key, &fingerprint, holder, t0).unwrap();
        // An older answer, then requests still running: about half the room.
        assert!(matches!(claim("old", "h"), Claim::New));
        run(s.finish("a", "old", "h", answer(200))).unwrap();
        for i in 0..14 {
            assert!(matches!(claim(&format!("running-{i}"), "h"), Claim::New));
        }
        assert!(s.lock().bytes > 8 * 1024, "{}", s.lock().bytes);
        // An answer of half the room: the older answer goes, and it stays, over the bytes.
        assert!(matches!(claim("done", "h"), Claim::New));
        let half = StoredResponse {
            status: StatusCode::CREATED,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; 8 * 1024]),
        };
        run(s.finish("a", "done", "h", half)).unwrap();
        assert!(matches!(claim("done", "retry"), Claim::Answered(_)));
        assert!(s.lock().bytes > 16 * 1024, "{}", s.lock().bytes);
        // Once the running requests end, the store is within its bytes again, the answer kept.
        for i in 0..14 {
            run(s.release("a", &format!("running-{i}"), "h")).unwrap();
        }
        assert!(s.lock().bytes <= 16 * 1024, "{}", s.lock().bytes);
        assert!(matches!(claim("done", "again"), Claim::Answered(_)));
        assert!(matches!(claim("old", "retry"), Claim::New));
    }

    #[test]
    fn answers_are_kept_within_the_bytes() {
        let big = |n: usize| StoredResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; n]),
        };
        let s = MemoryIdempotencyStore::new(100, Duration::from_secs(60)).max_bytes(12_000);
        let t0 = Instant::now();
        for key in ["1", "2", "3", "4"] {
            assert!(matches!(
                s.claim_at("a", key, "f", "h", t0).unwrap(),
                Claim::New
            ));
            run(s.finish("a", key, "h", big(3_000))).unwrap();
        }
        // Four answers of 3,000 bytes and their keys do not fit in 12,000: the first is gone.
        assert!(s.lock().bytes <= 12_000);
        for key in ["2", "3", "4"] {
            assert!(matches!(
                s.claim_at("a", key, "f", "h", t0).unwrap(),
                Claim::Answered(_)
            ));
        }
        assert!(matches!(
            s.claim_at("a", "1", "f", "h", t0).unwrap(),
            Claim::New
        ));
        run(s.release("a", "1", "h")).unwrap();
        // An answer larger than all of them is not kept, and the others stay: its retry runs
        // again, theirs are answered.
        assert!(matches!(
            s.claim_at("a", "huge", "f", "h", t0).unwrap(),
            Claim::New
        ));
        run(s.finish("a", "huge", "h", big(20_000))).unwrap();
        assert!(matches!(
            s.claim_at("a", "huge", "f", "h", t0).unwrap(),
            Claim::New
        ));
        for key in ["2", "3", "4"] {
            assert!(matches!(
                s.claim_at("a", key, "f", "h", t0).unwrap(),
                Claim::Answered(_)
            ));
        }
        assert!(s.lock().bytes <= 12_000);
        // Forgetting keys gives their bytes back.
        for key in ["huge", "2", "3", "4"] {
            run(s.release("a", key, "h")).unwrap();
        }
        assert_eq!(s.lock().bytes, 0);
    }

    /// An answer is kept in what it needs, not in the buffers it came in with their room to
    /// spare (a JSON body's can be near twice its length, a header map has room for more),
    /// which the byte budget would not count.
    #[test]
    fn an_answer_is_kept_without_the_room_its_buffers_had_to_spare() {
        let mut body = Vec::with_capacity(8192);
        body.extend_from_slice(&[b'x'; 5_000]);
        let body = Bytes::from(body);
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        headers.append("x-step", "1".parse().unwrap());
        headers.append("x-step", "2".parse().unwrap());
        let room = headers.capacity();
        let s = MemoryIdempotencyStore::new(10, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(matches!(
            s.claim_at("a", "1", "f", "h", t0).unwrap(),
            Claim::New
        ));
        let answer = StoredResponse::new(StatusCode::CREATED, headers, body.clone());
        run(s.finish("a", "1", "h", answer)).unwrap();
        let Claim::Answered(kept) = s.claim_at("a", "1", "f", "h", t0).unwrap() else {
            panic!("not answered");
        };
        assert_eq!(kept.status, StatusCode::CREATED);
        assert_eq!(kept.body, body);
        assert_ne!(
            kept.body.as_ptr(),
            body.as_ptr(),
            "the body's buffer is kept"
        );
        let steps: Vec<_> = kept.headers.get_all("x-step").iter().collect();
        assert_eq!(steps, ["1", "2"]);
        assert_eq!(kept.headers["content-type"], "text/plain");
        assert!(
            kept.headers.capacity() < room,
            "{}",
            kept.headers.capacity()
        );
    }

    /// An answer with more values of one header than a map has room for names (a map holds
    /// 24,576 names, and any number of values) is kept: it is not sized by its values.
    #[test]
    fn an_answer_with_tens_of_thousands_of_one_headers_values_is_kept() {
        let mut headers = HeaderMap::new();
        for i in 0..25_000 {
            headers.append("x-item", i.to_string().parse().unwrap());
        }
        let s = MemoryIdempotencyStore::new(10, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(matches!(
            s.claim_at("a", "1", "f", "h", t0).unwrap(),
            Claim::New
        ));
        let answer = StoredResponse::new(StatusCode::OK, headers, Bytes::from_static(b"{}"));
        run(s.finish("a", "1", "h", answer)).unwrap();
        let Claim::Answered(kept) = s.claim_at("a", "1", "f", "h", t0).unwrap() else {
            panic!("not answered");
        };
        assert_eq!(kept.headers.get_all("x-item").iter().count(), 25_000);
        assert_eq!(
            kept.headers.get_all("x-item").iter().next_back().unwrap(),
            "24999"
        );
    }

    /// A running request's key is kept however long it runs, and only its own claim answers
    /// or frees it; an answer is kept for the time to live from when it was given.
    #[test]
    fn a_key_is_held_by_its_claim_until_it_ends() {
        let s = MemoryIdempotencyStore::new(10, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        assert!(matches!(
            s.claim_at("a", "k", "f", "first", t0).unwrap(),
            Claim::New
        ));
        // Past the time to live, still running: a repeat is told so, and does not run it.
        assert!(matches!(
            s.claim_at("a", "k", "f", "second", at(60)).unwrap(),
            Claim::InProgress
        ));
        // Another claim's answer or release does nothing to the key.
        s.finish_at("a", "k", "second", answer(500), at(61));
        run(s.release("a", "k", "second")).unwrap();
        assert!(matches!(
            s.claim_at("a", "k", "f", "third", at(62)).unwrap(),
            Claim::InProgress
        ));
        // Its own answer is kept for ten seconds from then.
        s.finish_at("a", "k", "first", answer(201), at(100));
        match s.claim_at("a", "k", "f", "fourth", at(109)).unwrap() {
            Claim::Answered(r) => assert_eq!(r.status, 201),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.claim_at("a", "k", "f", "fifth", at(111)).unwrap(),
            Claim::New
        ));
        // The first claim's late release does not free the fifth's.
        run(s.release("a", "k", "first")).unwrap();
        assert!(matches!(
            s.claim_at("a", "k", "f", "sixth", at(112)).unwrap(),
            Claim::InProgress
        ));
    }

    #[test]
    fn keys_expire_and_the_store_stays_bounded() {
        let s = MemoryIdempotencyStore::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(matches!(
            s.claim_at("a", "1", "f", "h", t0).unwrap(),
            Claim::New
        ));
        run(s.finish("a", "1", "h", answer(200))).unwrap();
        assert!(matches!(
            s.claim_at("a", "2", "f", "h", t0).unwrap(),
            Claim::New
        ));
        // Full: the oldest answered key goes, the running one stays.
        assert!(matches!(
            s.claim_at("a", "3", "f", "h", t0).unwrap(),
            Claim::New
        ));
        assert_eq!(s.len(), 2);
        assert!(matches!(
            s.claim_at("a", "2", "f", "h", t0).unwrap(),
            Claim::InProgress
        ));
        // Full of running requests: refused, not evicted, however long they run.
        assert!(s.claim_at("a", "4", "f", "h", t0).is_err());
        let later = t0 + Duration::from_secs(60);
        assert!(s.claim_at("a", "4", "f", "h", later).is_err());
        // An answer's time to live runs from when it was given: kept at first, then gone,
        // and its room taken.
        s.finish_at("a", "3", "h", answer(200), later);
        assert!(matches!(
            s.claim_at("a", "3", "f", "h", later + Duration::from_secs(9))
                .unwrap(),
            Claim::Answered(_)
        ));
        let expired = later + Duration::from_secs(11);
        assert!(matches!(
            s.claim_at("a", "4", "f", "h", expired).unwrap(),
            Claim::New
        ));
        assert_eq!(s.len(), 2);
        assert!(matches!(
            s.claim_at("a", "3", "f", "h", expired)
                .unwrap_err()
                .to_string()
                .as_str(),
            "the idempotency store is full of requests still running"
        ));
    }
}
