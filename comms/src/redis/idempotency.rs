//! [`RedisIdempotencyStore`]: a generated server's `Idempotency-Key` answers, shared by every
//! replica through Redis.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use redis::Script;
use redis::aio::ConnectionManager;

use super::{Conn, DEFAULT_REDIS_TIMEOUT, millis};
use crate::server::{Claim, DEFAULT_IDEMPOTENCY_TTL, IdempotencyStore, StoredResponse};
use crate::{BoxError, Error};

/// The default time [`RedisIdempotencyStore`] lets a running claim hold its key when its
/// request never ends: 1 hour.
#[cfg_attr(docsrs, doc(cfg(all(feature = "redis", feature = "server"))))]
pub const DEFAULT_CLAIM_LAPSE: Duration = Duration::from_secs(3600);

/// The default largest answer [`RedisIdempotencyStore`] keeps, encoded: 16 MiB.
#[cfg_attr(docsrs, doc(cfg(all(feature = "redis", feature = "server"))))]
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Claims a key. `KEYS[1]`: its record, `KEYS[2]`: the claim's mark of a release that came first
/// (see [`RELEASE`]); ARGV: the fingerprint, the claim, the lapse in ms.
/// Returns `{what, answer}`: 0 new (or already this claim's), 1 answered, 2 running, 3 another
/// request's, 4 a record that is not one, 5 a claim released before it arrived.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return {5, ''} end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 'h', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {0, ''}
end
local record = redis.call('HMGET', KEYS[1], 'f', 'h', 'a')
if not record[1] or not record[2] then return {4, ''} end
if record[1] ~= ARGV[1] then return {3, ''} end
if record[3] then return {1, record[3]} end
if record[2] == ARGV[2] then return {0, ''} end
return {2, ''}
";

/// Keeps an answer, for a key its claim still holds unanswered. `KEYS[1]`: the record; ARGV: the
/// claim, the time to live in ms, the encoded answer.
const FINISH: &str = r"
if redis.call('HGET', KEYS[1], 'h') ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'a') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'a', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Forgets a key its claim still holds. `KEYS[1]`: the record, `KEYS[2]`: the claim's mark; ARGV:
/// the claim, the lapse in ms.
///
/// Finding the key not held by its claim, the claim may still be on its way: a claim cut off
/// by a stalled Redis is released by the server, and the release, on another connection, can
/// be carried out first (also while another request holds the key, which may free it before
/// the late claim arrives). It leaves a mark, for as long as a claim holds a key, that makes
/// such a late claim take nothing.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'h') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 0
";

/// An [`IdempotencyStore`] every replica of a service shares, on Redis (features `redis` and
/// `server`): a retry that reaches another replica than its first attempt is answered from
/// the first run, as one reaching the same replica is.
///
/// Each key is a Redis hash, `<namespace>:idem:<length of scope>:<scope>:<key>` (the length
/// keeps a scope and a key containing `:` apart), holding the request's fingerprint, the
/// claim holding the key and, once answered, the answer: its status, every header (repeated
/// names and values that are not UTF-8 included) and its body. A Lua script claims, finishes
/// or releases a key in one step, so two replicas never both claim it, and `finish` and
/// `release` act only on a key their claim still holds.
///
/// - An answer is kept for [`ttl`](Self::ttl) from when it was given (24 hours by default).
///   One larger than [`max_answer_bytes`](Self::max_answer_bytes) is not kept: its key is
///   released, and a retry runs the method again, as [`MemoryIdempotencyStore`] does with an
///   answer larger than all it keeps.
/// - A running claim holds its key for [`claim_lapse`](Self::claim_lapse) (1 hour by default)
///   and no longer: a replica that died while its method ran (or lost its connection to Redis
///   before it could settle the key) does not hold the key for ever. A claim that lapsed while
///   its method still runs lets a retry run the method a second time, so the lapse must be
///   well beyond the longest an idempotent method runs (a generated server lets one run to its
///   end even when its caller hangs up).
/// - Times are counted by Redis's clock (`PEXPIRE`), so the replicas' clocks need not agree.
/// - When Redis cannot answer within [`timeout`](Self::timeout), a claim fails and the
///   request gets a 503 (nothing runs), and the server releases the claim, which Redis may
///   still carry out once it answers, before or after the release: a release that does not
///   find its claim holding the key leaves a mark, `<namespace>:idem:released:<claim>`, kept
///   as long as a claim holds a key, so that the claim, arriving later, takes nothing. A
///   failed finish or release is logged by the server and asked again for about half a
///   minute; failing still, the key stays claimed until its lapse. A record the store cannot
///   read is an error too, never an answer.
///
/// Redis keeps the records as long as it keeps its data: give the store a Redis (or a
/// database of one) with `maxmemory-policy noeviction`, as for [`RedisNonceStore`]: a record
/// evicted under memory pressure lets a retry run its method again. So does a record lost with
/// Redis's data (a restart without persistence, a `FLUSHALL`, a failover to a replica it had
/// not reached): a retry arriving while the first run goes on runs the method a second time.
/// Run Redis with `appendonly yes` where that matters.
///
/// [`MemoryIdempotencyStore`]: crate::server::MemoryIdempotencyStore
/// [`RedisNonceStore`]: super::RedisNonceStore
#[cfg_attr(docsrs, doc(cfg(all(feature = "redis", feature = "server"))))]
pub struct RedisIdempotencyStore {
    conn: Conn,
    namespace: String,
    ttl: Duration,
    claim_lapse: Duration,
    max_answer_bytes: usize,
    claim: Script,
    finish: Script,
    release: Script,
}

impl std::fmt::Debug for RedisIdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisIdempotencyStore")
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("claim_lapse", &self.claim_lapse)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .finish_non_exhaustive()
    }
}

impl RedisIdempotencyStore {
    /// A store on the Redis at `url` (`redis://host:port/db`), namespace `comms`. Connects on
    /// first use; a URL that is not one is an [`Error::Config`] (which does not show it).
    pub fn new(url: &str) -> Result<RedisIdempotencyStore, Error> {
        Ok(RedisIdempotencyStore {
            conn: Conn::open(url, DEFAULT_REDIS_TIMEOUT, true)?,
            namespace: "comms".to_owned(),
            ttl: DEFAULT_IDEMPOTENCY_TTL,
            claim_lapse: DEFAULT_CLAIM_LAPSE,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
            claim: Script::new(CLAIM),
            finish: Script::new(FINISH),
            release: Script::new(RELEASE),
        })
    }

    /// The key prefix, to keep several deployments apart on one Redis. Keys are scoped to the
    /// trait served already (by its module path and base URL's authority, so two traits
    /// sharing a name are apart); two services serving one trait (from a shared API crate)
    /// need a namespace each, or one would answer the other's keys. A service's replicas share
    /// one.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> RedisIdempotencyStore {
        self.namespace = namespace.into();
        self
    }

    /// How long an answer is kept, from when it was given (by default
    /// [`DEFAULT_IDEMPOTENCY_TTL`], 24 hours; at most about a century).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> RedisIdempotencyStore {
        self.ttl = ttl;
        self
    }

    /// How long a running claim holds its key when it is never finished nor released (its
    /// replica died, or could not reach Redis to settle it): by default
    /// [`DEFAULT_CLAIM_LAPSE`], 1 hour. A retry arriving after the lapse runs the method
    /// again, also when the first run is in fact still going: keep it well beyond the longest
    /// any idempotent method of the service runs.
    #[must_use]
    pub fn claim_lapse(mut self, lapse: Duration) -> RedisIdempotencyStore {
        self.claim_lapse = lapse;
        self
    }

    /// The largest answer kept, encoded (its body, headers and a few bytes more): by default
    /// [`DEFAULT_MAX_ANSWER_BYTES`], 16 MiB. A larger answer's key is released instead, and a
    /// retry runs the method again.
    ///
    /// A kept answer travels whole in one command, to Redis and back to a retry, within the
    /// [`timeout`](Self::timeout), on the connection every command of the store shares: 16 MiB
    /// in the default second needs a link to Redis of about 130 Mbit/s. Over a slower one,
    /// lower this to what the link carries in well under the timeout, or a larger answer's
    /// key stays claimed until its lapse, and the commands behind it time out too.
    #[must_use]
    pub fn max_answer_bytes(mut self, bytes: usize) -> RedisIdempotencyStore {
        self.max_answer_bytes = bytes;
        self
    }

    /// How long one Redis command may take before Redis counts as unavailable (1 s by
    /// default): a claim then fails, and its request gets a 503. Zero, which would fail every
    /// claim, is not taken: the timeout stays as it was, and a WARN says so.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> RedisIdempotencyStore {
        self.conn.set_timeout(timeout, "RedisIdempotencyStore");
        self
    }

    /// The Redis key of `key` in `scope`.
    fn record(&self, scope: &str, key: &str) -> String {
        format!("{}:idem:{}:{scope}:{key}", self.namespace, scope.len())
    }

    /// The Redis key of the mark a release of `claim` leaves when the claim does not hold its
    /// key (see [`RELEASE`]). A record's key has a digit after `idem:`, so the two never meet.
    fn released(&self, claim: &str) -> String {
        format!("{}:idem:released:{claim}", self.namespace)
    }

    /// Runs `script` on `keys` with `args`.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<T, BoxError> {
        self.conn
            .run(|mut connection: ConnectionManager| {
                let mut invocation = script.prepare_invoke();
                for key in keys {
                    invocation.key(*key);
                }
                for arg in args {
                    invocation.arg(*arg);
                }
                async move { invocation.invoke_async::<T>(&mut connection).await }
            })
            .await
    }
}

/// The error for a record the store cannot read (written by something else, or damaged).
fn unreadable() -> BoxError {
    "redis holds an idempotency record this store cannot read".into()
}

/// An answer as the store keeps it: a version byte (1), the status (2 bytes), the number of
/// header fields (4 bytes), each field's name and value, each as its length (4 bytes) and its
/// bytes, then the body. Integers are big-endian.
fn encode(answer: &StoredResponse) -> Vec<u8> {
    let headers: usize = answer
        .headers
        .iter()
        .map(|(name, value)| 8 + name.as_str().len() + value.len())
        .sum();
    let mut out = Vec::with_capacity(7 + headers + answer.body.len());
    out.push(1);
    out.extend_from_slice(&answer.status.as_u16().to_be_bytes());
    out.extend_from_slice(&(answer.headers.len() as u32).to_be_bytes());
    for (name, value) in &answer.headers {
        for part in [name.as_str().as_bytes(), value.as_bytes()] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out.extend_from_slice(&answer.body);
    out
}

/// An answer [`encode`] wrote, or `None` for bytes it did not write.
fn decode(bytes: &[u8]) -> Option<StoredResponse> {
    fn take<'b>(bytes: &mut &'b [u8], n: usize) -> Option<&'b [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Some(head)
    }
    fn length(bytes: &mut &[u8]) -> Option<usize> {
        let raw: [u8; 4] = take(bytes, 4)?.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(raw)).ok()
    }
    let mut rest = bytes;
    if take(&mut rest, 1)? != [1] {
        return None;
    }
    let status: [u8; 2] = take(&mut rest, 2)?.try_into().ok()?;
    let status = StatusCode::from_u16(u16::from_be_bytes(status)).ok()?;
    let count = length(&mut rest)?;
    // Each field takes at least 8 bytes: a count larger than the rest can hold is no answer.
    if count > rest.len() / 8 {
        return None;
    }
    // A map grows as it is filled: the count is the record's word, and a map holds at most
    // 32,768 names (`try_append` says when it would hold more, where `append` panics).
    let mut headers = HeaderMap::with_capacity(count.min(64));
    for _ in 0..count {
        let n = length(&mut rest)?;
        let name = HeaderName::from_bytes(take(&mut rest, n)?).ok()?;
        let n = length(&mut rest)?;
        let value = HeaderValue::from_bytes(take(&mut rest, n)?).ok()?;
        headers.try_append(name, value).ok()?;
    }
    Some(StoredResponse::new(
        status,
        headers,
        Bytes::copy_from_slice(rest),
    ))
}

impl IdempotencyStore for RedisIdempotencyStore {
    fn claim<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a str,
        claim: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Claim, BoxError>> + Send + 'a>> {
        Box::pin(async move {
            let keys = [&*self.record(scope, key), &*self.released(claim)];
            let lapse = millis(self.claim_lapse).to_string();
            let args: [&[u8]; 3] = [fingerprint.as_bytes(), claim.as_bytes(), lapse.as_bytes()];
            let (what, answer): (i64, Vec<u8>) = self.invoke(&self.claim, &keys, &args).await?;
            match what {
                // Also when the record is this claim's own: the reply to an earlier attempt of
                // this command was lost, and it was made again.
                0 => Ok(Claim::New),
                1 => decode(&answer).map(Claim::Answered).ok_or_else(unreadable),
                2 => Ok(Claim::InProgress),
                3 => Ok(Claim::Mismatch),
                // Only a claim whose request has given up on it comes after its release.
                5 => Err("this claim was released before it reached redis".into()),
                _ => Err(unreadable()),
            }
        })
    }

    fn finish<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        claim: &'a str,
        response: StoredResponse,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>> {
        Box::pin(async move {
            let answer = encode(&response);
            drop(response);
            if answer.len() > self.max_answer_bytes {
                // Not kept: the key is released, and a retry runs the method again.
                return self.release(scope, key, claim).await;
            }
            let record = self.record(scope, key);
            let ttl = millis(self.ttl).to_string();
            let args: [&[u8]; 3] = [claim.as_bytes(), ttl.as_bytes(), &answer];
            self.invoke::<i64>(&self.finish, &[&record], &args).await?;
            Ok(())
        })
    }

    fn release<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        claim: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>> {
        Box::pin(async move {
            let keys = [&*self.record(scope, key), &*self.released(claim)];
            let lapse = millis(self.claim_lapse).to_string();
            let args: [&[u8]; 2] = [claim.as_bytes(), lapse.as_bytes()];
            self.invoke::<i64>(&self.release, &keys, &args).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_every_header_and_byte() {
        let mut headers = HeaderMap::new();
        headers.append("x-tag", HeaderValue::from_static("a"));
        headers.append("x-tag", HeaderValue::from_static("b"));
        headers.append(
            "x-raw",
            HeaderValue::from_bytes(b"caf\xe9 \x80\xff").unwrap(),
        );
        headers.append("x-empty", HeaderValue::from_static(""));
        let body: Vec<u8> = (0..=255).collect();
        let answer = StoredResponse::new(StatusCode::CREATED, headers, Bytes::from(body));
        let back = decode(&encode(&answer)).unwrap();
        assert_eq!(back.status, answer.status);
        assert_eq!(back.headers, answer.headers);
        let tags: Vec<_> = back.headers.get_all("x-tag").iter().collect();
        assert_eq!(tags, ["a", "b"]);
        assert_eq!(back.body, answer.body);
        // Nothing but what `encode` wrote is an answer; no bytes make it panic.
        let encoded = encode(&answer);
        for cut in 0..encoded.len() {
            let _ = decode(&encoded[..cut]);
        }
        assert!(decode(b"").is_none());
        assert!(decode(b"\x02\x00\xc8\x00\x00\x00\x00").is_none());
        assert!(
            decode(b"\x01\x00\x00\x00\x00\x00\x00").is_none(),
            "status 0"
        );
        assert!(decode(b"\x01\x00\xc8\xff\xff\xff\xff").is_none());
        // More names than a header map holds: not an answer, and no panic.
        let names = 40_000u32;
        let mut many = vec![1, 0, 200];
        many.extend_from_slice(&names.to_be_bytes());
        for i in 0..names {
            let name = format!("x-{i}");
            many.extend_from_slice(&(name.len() as u32).to_be_bytes());
            many.extend_from_slice(name.as_bytes());
            many.extend_from_slice(&0u32.to_be_bytes());
        }
        assert!(decode(&many).is_none());
        let empty = decode(b"\x01\x00\xc8\x00\x00\x00\x00").unwrap();
        assert_eq!(empty.status, StatusCode::OK);
        assert!(empty.headers.is_empty() && empty.body.is_empty());
    }

    #[test]
    fn records_keep_scopes_and_keys_apart() {
        let store = RedisIdempotencyStore::new("redis://127.0.0.1:1/").unwrap();
        assert_ne!(store.record("a:b", "c"), store.record("a", "b:c"));
        assert_eq!(
            store.record("billing|POST /orders", "k"),
            "comms:idem:20:billing|POST /orders:k"
        );
    }

    #[test]
    fn times_are_whole_milliseconds_rounded_up_within_bounds() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 2);
        assert_eq!(millis(Duration::from_secs(3600)), 3_600_000);
        assert_eq!(millis(Duration::MAX), crate::redis::MAX_TTL_MS);
    }

    #[test]
    fn bad_urls_are_config_errors_without_the_url_and_debug_hides_it() {
        let err = RedisIdempotencyStore::new("redis://:hunter2@[bad").unwrap_err();
        assert!(matches!(&err, Error::Config { key, .. } if key == "redis_url"));
        assert!(!err.to_string().contains("hunter2"));
        let store = RedisIdempotencyStore::new("redis://:hunter2@127.0.0.1:1/").unwrap();
        assert!(!format!("{store:?}").contains("hunter2"));
    }
}
