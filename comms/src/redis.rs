//! Fleet-wide state on Redis (feature `redis`): a nonce store every replica of a receiving
//! service shares, and breaker transitions every replica of a calling service shares.
//!
//! What stays local and what is shared:
//!
//! - **Nonces.** [`RedisNonceStore`] records each accepted nonce with `SET key token NX PX ttl`
//!   (atomic set-if-absent; the token tells a check its own write when the reply to it was
//!   lost and the command made again), keys namespaced per service:
//!   `<namespace>:nonce:<service id>:<nonce>`. A request captured on one replica is refused on
//!   every other. The TTL runs in milliseconds, rounded up, to the instant the request's
//!   timestamp leaves the skew window *plus* a margin for the clocks of the replicas
//!   ([`RedisNonceStore::clock_drift_margin`]): the TTL is counted on the clock of the replica
//!   that stored the key, and a replica whose clock is behind still accepts the timestamp after
//!   that one stops.
//!
//!   When Redis cannot answer within the timeout the store refuses the request
//!   ([`WhenUnavailable::Refuse`], the default: no replay slips through silently), or, when
//!   told to, checks nonces in the replica's own memory ([`WhenUnavailable::LocalOnly`], which
//!   keeps the service up but lets a replay through on a *different* replica while Redis is
//!   down). That memory records every nonce the replica accepts, through Redis or not, and is
//!   consulted before Redis, so a nonce accepted before an outage is still refused during it,
//!   and one accepted during it is still refused after, though Redis never saw it.
//!
//!   Redis remembers the nonces only as long as it keeps its data. Restarted without
//!   persistence, or failed over to a replica the latest writes had not reached, it has
//!   forgotten those of the last skew window, and a request captured in that window is
//!   accepted again (under [`LocalOnly`](WhenUnavailable::LocalOnly), by every replica but the
//!   one that accepted it first). Where that matters, run Redis with its append-only file
//!   (`appendonly yes`; with `appendfsync always`, no acknowledged nonce is lost). Every nonce
//!   key has a TTL, so a Redis that evicts such keys under memory pressure (every
//!   `maxmemory-policy` but `noeviction`) forgets live nonces while it is up: give the store a
//!   Redis with `maxmemory-policy noeviction`, which refuses writes when full, and so has the
//!   store refuse requests rather than forget.
//!
//!   After a failover, the Redis the URL named may be a replica that keeps its clients'
//!   connections and refuses their writes (`READONLY`): a nonce it refuses to record is
//!   checked as one Redis did not answer for (the request refused, or under
//!   [`LocalOnly`](WhenUnavailable::LocalOnly) checked in memory), and the connection is
//!   dropped, so that the next command connects again, to the primary the URL's host name or
//!   address now leads to (a Sentinel-managed one's, say).
//!   Redis Cluster is not supported: a cluster node answers most keys with `MOVED`, and the
//!   store would refuse those requests (or under `LocalOnly` check them in memory) for as long
//!   as it ran; an `ERROR` says so once.
//!
//!   A `SET` Redis ran after the command's timeout leaves the nonce recorded for a request
//!   that was refused: sent again unchanged, that request is then refused as a replay. A comms
//!   client signs every retry afresh, with a nonce of its own.
//! - **Breakers.** [`share_breakers`] publishes each local open (with its open-until time) and
//!   close on a Redis channel and applies the other replicas' transitions, so replicas open
//!   together and close together after one successful probe. A remote open holds a breaker
//!   open no longer than its own `open_for` from when it arrives. Admission stays local and
//!   lock-free; Redis is never on the request path. When Redis is unreachable each replica's
//!   breaker simply works on its own; its transitions waiting to be published meanwhile keep
//!   only each target's latest, so that the others are not sent a backlog when Redis answers.
//! - **Idempotency keys** (with the `server` feature too). [`RedisIdempotencyStore`] keeps a
//!   generated server's `Idempotency-Key` claims and answers in Redis, one hash per key
//!   (`<namespace>:idem:<scope length>:<scope>:<key>`), claimed, answered and released by Lua
//!   scripts, so that a retry reaching another replica is answered from the first run. A
//!   running claim lapses after [`RedisIdempotencyStore::claim_lapse`] (1 hour by default),
//!   should its replica die before settling it; while Redis cannot answer, an idempotent
//!   request gets a 503 and nothing runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::breaker::{BreakerSync, Link, Remote};
use crate::report::Throttle;
use crate::verify::{MemoryNonceStore, NonceStore};
use crate::{BoxError, Error};

#[cfg(feature = "server")]
mod idempotency;
#[cfg(feature = "server")]
pub use idempotency::{DEFAULT_CLAIM_LAPSE, DEFAULT_MAX_ANSWER_BYTES, RedisIdempotencyStore};

/// The default timeout of one Redis command.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The default margin for clock differences between replicas: 5 s, added to every nonce's
/// time in Redis.
pub const DEFAULT_CLOCK_DRIFT_MARGIN: Duration = Duration::from_secs(5);

/// The longest a nonce is kept in Redis, in milliseconds (about a century): a bound on the
/// TTL of a request from a skew window too wide to mean anything.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// What [`RedisNonceStore`] does when Redis cannot answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhenUnavailable {
    /// Refuse the request (fail closed). The default.
    #[default]
    Refuse,
    /// Check nonces in this replica's memory until Redis answers again (fail open across
    /// replicas, closed within one). The replica remembers every nonce it accepts, through
    /// Redis or not, in a [`MemoryNonceStore`] of the default capacity, and checks it before
    /// Redis: its own replays are refused before, during and after an outage. Once Redis has
    /// answered that a nonce is recorded, its memory is not asked: a request Redis took for a
    /// replay is refused, as under [`Refuse`](Self::Refuse), when no more could be learned.
    LocalOnly,
}

/// A lazily connected, reconnecting Redis connection with a per-command timeout.
///
/// redis-rs's `ConnectionManager` reconnects when its connection is closed, but not when it
/// stops answering while still open (a NAT or load balancer that forgot it): a command that
/// times out on a connection an earlier command used therefore drops the manager, and the next
/// command connects afresh. A command that connected first (or waited for another to connect)
/// is not held to that: on a slow Redis the connection and the command together may take
/// longer than either alone.
///
/// The nonce store's connection remembers a failed connection attempt (one that failed, or
/// that the command's timeout cut off): until the next one is due (100 ms after the first
/// failure, twice as long after each further one, up to 1 s) commands fail at once, and while
/// that next attempt is under way the others do not wait for it. With Redis down, each
/// command otherwise connected in turn behind the one connecting, and a request waited the
/// whole command timeout. Until an attempt has failed, commands wait for the one under way,
/// as at start-up they should. (The breaker publisher, one task sending one message at a
/// time, tries every time.)
struct Conn {
    client: redis::Client,
    /// The manager in use, with the number telling it from the ones before it.
    manager: tokio::sync::Mutex<Option<(u64, ConnectionManager)>>,
    /// How many managers were made; the next one's number.
    made: AtomicU64,
    timeout: Duration,
    /// Since the last failed connection attempt: when the next may be made, and the pause
    /// after it should it fail too. `None` once connected; `None` outside for a connection
    /// that does not remember failures.
    backoff: Option<std::sync::Mutex<Option<(Instant, Duration)>>>,
    /// Whether the Redis was found to be a cluster node, and said so (see [`Conn::refused`]).
    cluster_said: AtomicBool,
}

/// The first pause after a failed connection attempt, and the longest.
const CONNECT_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// Why a command got no connection.
enum Unconnected {
    /// Connecting failed.
    Failed(redis::RedisError),
    /// A connection attempt failed a moment ago; the next is due in this long.
    Pausing(Duration),
    /// Connection attempts have been failing, and one is under way.
    Retrying,
}

impl From<redis::RedisError> for Unconnected {
    fn from(e: redis::RedisError) -> Unconnected {
        Unconnected::Failed(e)
    }
}

impl Conn {
    /// A connection to the Redis at `url`, whose commands time out after `timeout`; with
    /// `backoff`, remembering failed connection attempts (see [`Conn`]).
    fn open(url: &str, timeout: Duration, backoff: bool) -> Result<Conn, Error> {
        // The URL may hold a password: it never goes into an error message.
        let client = redis::Client::open(url).map_err(|_| {
            // Parsed as the `url` crate does, scheme and all: `rediss://` parses as a URL,
            // and only the missing TLS support makes redis-rs refuse it.
            let tls = url.split_once("://").is_some_and(|(scheme, _)| {
                scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
            });
            if tls {
                Error::config(
                    "redis_url",
                    "TLS to Redis (rediss://) is not supported; use redis:// (a TLS proxy such as stunnel in front of a Redis that requires TLS)",
                )
            } else {
                Error::config("redis_url", "not a valid Redis URL")
            }
        })?;
        Ok(Conn {
            client,
            manager: tokio::sync::Mutex::new(None),
            made: AtomicU64::new(0),
            timeout,
            backoff: backoff.then(|| std::sync::Mutex::new(None)),
            cluster_said: AtomicBool::new(false),
        })
    }

    /// Sets the timeout of each command, unless `timeout` is zero (no command could answer
    /// within it): then it stays, and a WARN naming `store` says so.
    fn set_timeout(&mut self, timeout: Duration, store: &str) {
        if timeout.is_zero() {
            tracing::warn!(
                kept = ?self.timeout,
                "{store}::timeout(0) ignored: a Redis command cannot answer within no time; the timeout stays as it was"
            );
        } else {
            self.timeout = timeout;
        }
    }

    /// The last failed connection attempt's record, when failures are remembered.
    fn backoff(&self) -> Option<std::sync::MutexGuard<'_, Option<(Instant, Duration)>>> {
        let backoff = self.backoff.as_ref()?;
        Some(backoff.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether the last connection attempt failed.
    fn failing(&self) -> bool {
        self.backoff().is_some_and(|backoff| backoff.is_some())
    }

    /// How long until the next connection attempt is due, if one failed and it is not yet.
    fn pausing(&self) -> Option<Duration> {
        let (due, _) = (*self.backoff()?)?;
        let left = due.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Notes how a connection attempt went.
    fn connected(&self, ok: bool) {
        let Some(mut backoff) = self.backoff() else {
            return;
        };
        Conn::note(&mut backoff, ok);
    }

    /// Notes a connection attempt the command's timeout cut off, begun when `made` managers
    /// had been made: a failed one, unless another command has connected since (this note
    /// comes after the slot was let go of, and must not mark a healthy connection failing).
    fn cut_off(&self, made: u64) {
        let Some(mut backoff) = self.backoff() else {
            return;
        };
        // Read under the backoff's lock, which a successful attempt takes after counting
        // its manager: either this sees that count, or its note comes first and is undone.
        if self.made.load(Ordering::SeqCst) == made {
            Conn::note(&mut backoff, false);
        }
    }

    fn note(backoff: &mut Option<(Instant, Duration)>, ok: bool) {
        *backoff = match (ok, *backoff) {
            (true, _) => None,
            (false, None) => Some((Instant::now() + CONNECT_BACKOFF.0, CONNECT_BACKOFF.0)),
            (false, Some((_, pause))) => {
                let pause = (pause * 2).min(CONNECT_BACKOFF.1);
                Some((Instant::now() + pause, pause))
            }
        };
    }

    /// The manager in use, and whether this command's time went into connecting it: it was
    /// connected just now, for this command or for one this command waited for. While this
    /// command makes a connection attempt, `connecting` holds one more than the number of
    /// managers made before it (0 otherwise).
    async fn manager(
        &self,
        connecting: &AtomicU64,
    ) -> Result<(u64, ConnectionManager, bool), Unconnected> {
        let (mut slot, waited) = match self.manager.try_lock() {
            Ok(slot) => (slot, false),
            // Another command holds the slot, taking a copy or connecting: after a failed
            // attempt, the one under way is not waited for.
            Err(_) if self.failing() => return Err(Unconnected::Retrying),
            Err(_) => (self.manager.lock().await, true),
        };
        if let Some((number, manager)) = &*slot {
            return Ok((*number, manager.clone(), waited));
        }
        // Also for a command that waited for the lock while another one's attempt failed.
        if let Some(left) = self.pausing() {
            return Err(Unconnected::Pausing(left));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        connecting.store(self.made.load(Ordering::SeqCst) + 1, Ordering::Relaxed);
        let made = ConnectionManager::new_with_config(self.client.clone(), config).await;
        connecting.store(0, Ordering::Relaxed);
        let manager = match made {
            Ok(manager) => manager,
            Err(e) => {
                self.connected(false);
                return Err(e.into());
            }
        };
        // Counted before the success is noted (see `cut_off`).
        let number = self.made.fetch_add(1, Ordering::SeqCst);
        self.connected(true);
        *slot = Some((number, manager.clone()));
        Ok((number, manager, true))
    }

    /// What an error Redis answered says of manager `number`'s connection: a demoted primary's
    /// (`READONLY`) is dropped; a Redis Cluster node's (`MOVED`, `ASK`, `CLUSTERDOWN`), which
    /// no connection to one address serves whole, is said once in an `ERROR`.
    fn refused(&self, refused: &redis::RedisError, number: u64) {
        use redis::{ErrorKind, ServerErrorKind};
        if is_demoted(refused) {
            tracing::warn!(
                "redis answered READONLY: a replica now, after a failover; connecting again"
            );
            self.forget(number);
            return;
        }
        let cluster = matches!(
            refused.kind(),
            ErrorKind::Server(
                ServerErrorKind::Moved | ServerErrorKind::Ask | ServerErrorKind::ClusterDown
            )
        );
        if cluster && !self.cluster_said.swap(true, Ordering::Relaxed) {
            tracing::error!(
                error = %refused,
                "the Redis at this URL is a node of a Redis Cluster, which comms' fleet state \
                 does not support: give it a standalone Redis (or the address of a \
                 Sentinel-managed primary)"
            );
        }
    }

    /// Drops manager `number` if it is still the one in use. Not waited for: a command that
    /// holds the slot is connecting (the slot is empty then) or taking a copy.
    fn forget(&self, number: u64) {
        if let Ok(mut slot) = self.manager.try_lock()
            && slot.as_ref().is_some_and(|(current, _)| *current == number)
        {
            *slot = None;
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BoxError> {
        self.run(|mut connection| async move { cmd.query_async::<T>(&mut connection).await })
            .await
    }

    /// Runs `op` on the connection (made again once on a new connection when the first finds
    /// it closed, as [`Conn::query`] does a command), under the timeout and the reconnection
    /// rules of a command: a Lua script's invocation, which may take two round trips
    /// (`EVALSHA`, and after `NOSCRIPT` the script loaded and invoked again).
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, BoxError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.answered(op)
            .await?
            .map_err(|e| format!("redis error: {e}").into())
    }

    /// [`run`](Conn::run), an error Redis answered with (`Ok(Err)`: it is up, and refused the
    /// command) kept apart from one that leaves the command in doubt (`Err`: no answer, or the
    /// connection failed).
    ///
    /// A `READONLY` answer is from a Redis a failover demoted to a replica, which keeps its
    /// clients: the connection is dropped, so that the next command connects again, to the
    /// primary the URL's name or address now leads to. Kept, its writes would be refused until
    /// the process restarted.
    async fn answered<T, F, Fut>(&self, op: F) -> Result<redis::RedisResult<T>, BoxError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        // The manager this command used.
        let used = AtomicU64::new(u64::MAX);
        // The manager this command used, when an earlier command had used it too.
        let reused = AtomicU64::new(u64::MAX);
        // Whether the command is cut off while it makes a connection attempt (see `manager`).
        let connecting = AtomicU64::new(0);
        let run = async {
            let (number, connection, fresh) = self.manager(&connecting).await?;
            used.store(number, Ordering::Relaxed);
            if !fresh {
                reused.store(number, Ordering::Relaxed);
            }
            let first = op(connection.clone()).await;
            Ok(match first {
                // Redis closed the connection while it was idle (its `timeout`, a restart, a
                // failover): the manager reports that to the command that finds it, then
                // reconnects, and that command is made once more on the new connection. A
                // command whose reply alone was lost is then made twice: the nonce store's
                // `SET NX` then finds its own token (see `RedisNonceStore::insert`), an
                // idempotency claim finds the key held by its own claim (and a finish or
                // release made twice changes nothing more), and a transition published twice
                // changes nothing more than once.
                Err(e) if e.is_connection_dropped() => op(connection).await,
                other => other,
            }
            .map(Ok)
            .or_else(|e| match e.code() {
                Some(_) => Ok(Err(e)),
                None => Err(e),
            })?)
        };
        let result = tokio::time::timeout(self.timeout, run).await;
        let attempt = connecting.load(Ordering::Relaxed);
        if result.is_err() && attempt != 0 {
            // Redis did not answer the attempt at all: a failed one.
            self.cut_off(attempt - 1);
        }
        let timed_out = match &result {
            Err(_) => true,
            Ok(Err(Unconnected::Failed(e))) => e.is_timeout(),
            Ok(Err(Unconnected::Pausing(_) | Unconnected::Retrying) | Ok(_)) => false,
        };
        let number = reused.load(Ordering::Relaxed);
        if timed_out && number != u64::MAX {
            self.forget(number);
        }
        if let Ok(Ok(Err(refused))) = &result {
            self.refused(refused, used.load(Ordering::Relaxed));
        }
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(Unconnected::Failed(e))) => Err(format!("redis error: {e}").into()),
            Ok(Err(Unconnected::Pausing(left))) => Err(format!(
                "redis unreachable: connecting failed a moment ago, next attempt in {left:?}"
            )
            .into()),
            Ok(Err(Unconnected::Retrying)) => {
                Err("redis unreachable: connecting failed, and another attempt is under way".into())
            }
            Err(_) => Err(format!("redis did not answer within {:?}", self.timeout).into()),
        }
    }
}

/// Whether Redis refused a command for being a replica (`READONLY`): see [`Conn::answered`].
fn is_demoted(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

/// A nonce store shared by every replica, on Redis. See the [module docs](self).
pub struct RedisNonceStore {
    conn: Conn,
    namespace: String,
    when_unavailable: WhenUnavailable,
    clock_drift_margin: Duration,
    /// This replica's own memory of nonces, under [`WhenUnavailable::LocalOnly`].
    local: MemoryNonceStore,
    /// Nonces checked locally alone because Redis did not answer, timed in milliseconds since
    /// `started`.
    unanswered: Throttle,
    started: Instant,
}

impl std::fmt::Debug for RedisNonceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisNonceStore")
            .field("namespace", &self.namespace)
            .field("when_unavailable", &self.when_unavailable)
            .field("clock_drift_margin", &self.clock_drift_margin)
            .finish_non_exhaustive()
    }
}

impl RedisNonceStore {
    /// A store on the Redis at `url` (`redis://host:port/db`), namespace `comms`, refusing
    /// requests while Redis is unavailable. Connects on first use.
    pub fn new(url: &str) -> Result<RedisNonceStore, Error> {
        Ok(RedisNonceStore {
            conn: Conn::open(url, DEFAULT_REDIS_TIMEOUT, true)?,
            namespace: "comms".to_owned(),
            when_unavailable: WhenUnavailable::Refuse,
            clock_drift_margin: DEFAULT_CLOCK_DRIFT_MARGIN,
            local: MemoryNonceStore::default(),
            unanswered: Throttle::new(),
            started: Instant::now(),
        })
    }

    /// The key prefix, to keep several deployments apart on one Redis.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> RedisNonceStore {
        self.namespace = namespace.into();
        self
    }

    /// What to do while Redis cannot answer.
    #[must_use]
    pub fn when_unavailable(mut self, choice: WhenUnavailable) -> RedisNonceStore {
        self.when_unavailable = choice;
        self
    }

    /// How much longer than its request's skew window a nonce is kept in Redis (5 s by
    /// default). Each replica judges timestamps by its own clock, and the key's TTL runs from
    /// the clock of the replica that stored it, so a replica whose clock is behind by more than
    /// this margin would accept a replay in the last moments of its window.
    #[must_use]
    pub fn clock_drift_margin(mut self, margin: Duration) -> RedisNonceStore {
        self.clock_drift_margin = margin;
        self
    }

    /// How long one Redis command may take before Redis counts as unavailable (1 s by
    /// default: long enough to ride out a busy moment, short enough that a hung Redis fails
    /// requests quickly). Zero, which would fail every command, is not taken: the timeout
    /// stays as it was, and a WARN says so.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> RedisNonceStore {
        self.conn.set_timeout(timeout, "RedisNonceStore");
        self
    }

    /// Sets `key` unless it is set: whether it was not. The value is a token of this check's
    /// own, so that a key found set is known for this check's when the reply to an earlier
    /// attempt of it was lost (Redis ran the `SET` and closed the connection before answering,
    /// and the command was made again on a new one): a genuine request is not taken for its
    /// own replay.
    async fn insert(
        &self,
        key: &str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Result<bool, Unsettled> {
        let token = crate::random::random_u64().map_err(|e| Unsettled::Unanswered(e.into()))?;
        let token = format!("{token:016x}");
        let ttl = ttl_millis(now, keep_until, self.clock_drift_margin);
        let mut set = redis::cmd("SET");
        set.arg(key).arg(&token).arg("NX").arg("PX").arg(ttl);
        let set = &set;
        // An error Redis answered with (out of memory, a read-only replica) is no outage: it
        // is up, and may hold the nonce. It is kept apart from one that leaves the connection
        // in doubt.
        let set = self
            .conn
            .answered(|mut connection| async move {
                set.query_async::<Option<String>>(&mut connection).await
            })
            .await
            .map_err(Unsettled::Unanswered)?;
        let refused = match set {
            Ok(Some(_)) => return Ok(true),
            Ok(None) => None,
            Err(refused) => Some(refused),
        };
        let mut get = redis::cmd("GET");
        get.arg(key);
        let found = self.conn.query::<Option<String>>(&get).await;
        match (refused, found) {
            // Set by someone; by this check only if an earlier attempt of it ran unanswered.
            (_, Ok(Some(found))) => Ok(found == token),
            // Redis refused to record a nonce it does not hold: under `LocalOnly`, the
            // replica's memory decides, as when Redis does not answer.
            (Some(refused), Ok(None)) => Err(Unsettled::Unanswered(
                format!("redis refused to record the nonce: {refused}").into(),
            )),
            (Some(refused), Err(error)) => Err(Unsettled::Unanswered(
                format!("redis refused to record the nonce ({refused}), then {error}").into(),
            )),
            // Set by someone, and gone (expired) before the `GET`: a replay all the same.
            (None, Ok(None)) => Ok(false),
            (None, Err(error)) => Err(Unsettled::Taken(error)),
        }
    }
}

/// Why [`RedisNonceStore::insert`] could not tell whether a nonce is fresh.
enum Unsettled {
    /// Redis did not answer the `SET`: under [`WhenUnavailable::LocalOnly`], the replica's
    /// memory decides.
    Unanswered(BoxError),
    /// Redis answered that the nonce is recorded, but not whether by this check (its token):
    /// no outage, and most likely a replay, so the replica's memory, which may never have seen
    /// the nonce, is not asked. The check fails, and the store's error has the request refused
    /// as when Redis is unavailable (a client signing its retry afresh is not held up).
    Taken(BoxError),
}

impl NonceStore for RedisNonceStore {
    fn location(&self) -> Option<String> {
        let info = self.conn.client.get_connection_info();
        Some(format!(
            "redis {} db {} namespace {}",
            info.addr(),
            info.redis_settings().db(),
            self.namespace
        ))
    }

    fn check_and_insert<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>> {
        Box::pin(async move {
            // Under LocalOnly, this replica's memory first: it holds what Redis may not (what
            // was accepted during an outage), and it must hold what Redis accepts, for the
            // next outage.
            let local = match self.when_unavailable {
                WhenUnavailable::Refuse => None,
                _ => Some(
                    self.local
                        .check_and_insert(service_id, nonce, now, keep_until)
                        .await,
                ),
            };
            if let Some(Ok(false)) = local {
                return Ok(false);
            }
            let key = format!("{}:nonce:{service_id}:{nonce}", self.namespace);
            let error = match self.insert(&key, now, keep_until).await {
                // A full local memory leaves Redis alone to decide while it answers.
                Ok(fresh) => return Ok(fresh),
                Err(Unsettled::Unanswered(error)) => error,
                Err(Unsettled::Taken(error)) => {
                    return Err(format!(
                        "redis has the nonce recorded, and did not tell by whom: {error}"
                    )
                    .into());
                }
            };
            match local {
                None => Err(error),
                Some(Err(full)) => Err(format!("{error}, and {full}").into()),
                Some(Ok(fresh)) => {
                    let now_ms = self.started.elapsed().as_millis() as u64;
                    match self.unanswered.count(now_ms) {
                        Some(checked) => tracing::warn!(
                            %error,
                            checked,
                            "redis unavailable; nonces checked locally since the last report"
                        ),
                        None => {
                            tracing::debug!(%error, "redis unavailable; nonce checked locally")
                        }
                    }
                    Ok(fresh)
                }
            }
        })
    }
}

/// How long Redis keeps a nonce stored at `now`: until `keep_until` plus `margin`, in whole
/// milliseconds rounded up, at least 1 (Redis refuses a TTL of 0) and at most [`MAX_TTL_MS`].
fn ttl_millis(now: SystemTime, keep_until: SystemTime, margin: Duration) -> u64 {
    let left = keep_until
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        .saturating_add(margin);
    millis(left)
}

/// A time to live of `duration` for Redis: whole milliseconds rounded up, at least 1 (Redis
/// refuses a time to live of 0) and at most [`MAX_TTL_MS`].
fn millis(duration: Duration) -> u64 {
    let rounded =
        duration.as_millis() + u128::from(!duration.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(rounded)
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MS)
}

/// Shares breaker transitions with the other replicas through the Redis at `url`, on the
/// channel `<namespace>:breaker` (for a database other than 0 in the URL, `/3` say,
/// `<namespace>:breaker:db3`: Redis pub/sub ignores the database, and deployments kept apart by
/// database must not hear each other's transitions). Pass the result to
/// [`ExecutorBuilder::breaker_sync`](crate::ExecutorBuilder::breaker_sync) (or a generated
/// client's builder). Must be called inside a Tokio runtime: it spawns one task that publishes
/// and one that subscribes, reconnecting with backoff; both end when the last client using the
/// sync is gone.
///
/// Pub/sub keeps nothing for a replica that is not listening, so the targets open now are also
/// kept in a hash beside the channel, `<channel>:open` (a field per target, removed on its
/// close, or by the first replica to read it a minute after the open ended), which a replica
/// reads each time it subscribes: at its start, and again after losing its subscription. A
/// transition Redis did not take (down, or not answering) is published again, with backoff,
/// until it is, or until a later transition of its target or the end of its open period makes
/// it moot.
pub fn share_breakers(url: &str, namespace: &str) -> Result<BreakerSync, Error> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        Error::config(
            "redis",
            "share_breakers must be called inside a Tokio runtime",
        )
    })?;
    let conn = Conn::open(url, DEFAULT_REDIS_TIMEOUT, false)?;
    let channel = breaker_channel(
        namespace,
        conn.client.get_connection_info().redis_settings().db(),
    );
    // Tells this replica's messages from the others' on the shared channel.
    let sender = crate::random::random_u64()?;
    // The transitions waiting to be published, the latest of each target only, and a wake-up
    // for the publisher (which ends when the link, holding the sending half, is gone).
    let pending = Arc::new(std::sync::Mutex::new(Pending::default()));
    let (wake, woken) = tokio::sync::mpsc::channel::<()>(1);
    let waiting = pending.clone();
    let link = Arc::new(Link::new(move |authority, event| {
        let mut pending = waiting.lock().unwrap_or_else(|p| p.into_inner());
        match pending.get_mut(authority) {
            Some(latest) => *latest = event,
            None => {
                pending.insert(authority.to_owned(), event);
            }
        }
        drop(pending);
        // Full: the publisher has been woken and not yet taken what is pending.
        let _ = wake.try_send(());
    }));
    let shared = Arc::new(BreakerChannel {
        conn,
        name: channel,
        sender,
        link: Arc::downgrade(&link),
        pending,
    });
    runtime.spawn(publish(shared.clone(), woken));
    runtime.spawn(subscribe(shared));
    Ok(BreakerSync { link })
}

/// The pub/sub channel of `namespace`'s breakers on database `db`. Redis delivers a message
/// to every subscriber of its channel whatever database either connection selected, so the
/// database is part of the name; database 0 keeps the plain name.
fn breaker_channel(namespace: &str, db: i64) -> String {
    match db {
        0 => format!("{namespace}:breaker"),
        db => format!("{namespace}:breaker:db{db}"),
    }
}

fn encode(sender: u64, authority: &str, event: Remote) -> String {
    match event {
        Remote::Opened { until_unix_ms } => {
            format!("{sender:016x} open {until_unix_ms} {authority}")
        }
        Remote::Closed => format!("{sender:016x} close 0 {authority}"),
    }
}

fn decode(message: &str) -> Option<(u64, Remote, &str)> {
    let mut parts = message.splitn(4, ' ');
    let sender = u64::from_str_radix(parts.next()?, 16).ok()?;
    let kind = parts.next()?;
    let until: u64 = parts.next()?.parse().ok()?;
    let authority = parts.next()?;
    let event = match kind {
        "open" => Remote::Opened {
            until_unix_ms: until,
        },
        "close" => Remote::Closed,
        _ => return None,
    };
    Some((sender, event, authority))
}

/// This replica's transitions not yet published: the latest of each target. While Redis does
/// not answer, each publication waits out the command's timeout; a target's transitions
/// meanwhile replace each other here, so that the others hear its state once Redis answers,
/// not its history (a backlog of opens and closes that would flap their breakers, growing
/// for as long as Redis hangs). One that could not be published goes back here, unless a
/// later one of its target came meanwhile, and is tried again.
type Pending = std::collections::HashMap<String, Remote>;

/// The hash beside the breaker channel holding the targets open now, by authority: each as
/// the message that announced it. A replica whose subscription was down when an
/// open was published (Redis restarted, its connection lost) reads it here once subscribed
/// again. An open is removed on its close; one left by a replica that died before its close is
/// read as over once its `until` has passed (one field per target, however many times it
/// opens).
fn opens_key(channel: &str) -> String {
    format!("{channel}:open")
}

/// What the breaker channel's two tasks share: the connection, the channel's name, this
/// replica's id on it, the link whose breakers they serve (weak: the clients using the sync
/// keep it alive, and the tasks end with it), and its transitions still to be published.
struct BreakerChannel {
    conn: Conn,
    name: String,
    sender: u64,
    link: Weak<Link>,
    pending: Arc<std::sync::Mutex<Pending>>,
}

/// The waits between attempts to publish what could not be, while Redis does not answer.
const REPUBLISH_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(2));

async fn publish(channel: Arc<BreakerChannel>, mut woken: tokio::sync::mpsc::Receiver<()>) {
    let pending = &channel.pending;
    let mut failing = false;
    let mut backoff = REPUBLISH_BACKOFF.0;
    let mut retrying = false;
    loop {
        if retrying {
            // Tried again after a wait, or sooner for a new transition.
            tokio::select! {
                woke = woken.recv() => if woke.is_none() { return },
                () = tokio::time::sleep(backoff) => {}
            }
        } else if woken.recv().await.is_none() {
            return;
        }
        let batch = std::mem::take(&mut *pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut unsent = Vec::new();
        for (authority, event) in batch {
            // One another replica's transition overtook while it waited is moot.
            let moot = channel
                .link
                .upgrade()
                .is_none_or(|link| !link.still_holds(&authority, event));
            if !moot && !channel.publish_one(&authority, event, &mut failing).await {
                unsent.push((authority, event));
            }
        }
        retrying = !unsent.is_empty();
        if retrying {
            let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
            for (authority, event) in unsent {
                // A later transition of the target, made meanwhile, is the one to publish.
                pending.entry(authority).or_insert(event);
            }
            backoff = (backoff * 2).min(REPUBLISH_BACKOFF.1);
        } else {
            backoff = REPUBLISH_BACKOFF.0;
        }
    }
}

impl BreakerChannel {
    /// Publishes one transition, first keeping it in the [`opens_key`] hash; false when Redis
    /// did not answer, so that it is tried again. An open that has already ended is dropped,
    /// and so is a transition Redis refused (an error reply: no permission to publish, say),
    /// which asking again would not change.
    ///
    /// The hash is written first, on its own: a replica subscribing between the two commands
    /// then reads it, and one subscribed before hears the message. A Redis that refuses the
    /// write (full under `noeviction`, a read-only replica) still carries the message, as
    /// pub/sub needs no memory; one that does not answer is asked for both again.
    async fn publish_one(&self, authority: &str, event: Remote, failing: &mut bool) -> bool {
        if let Remote::Opened { until_unix_ms } = event
            && until_unix_ms <= crate::breaker::unix_millis()
        {
            return true;
        }
        let message = encode(self.sender, authority, event);
        let mut keep = redis::cmd(match event {
            Remote::Opened { .. } => "HSET",
            Remote::Closed => "HDEL",
        });
        keep.arg(opens_key(&self.name)).arg(authority);
        if let Remote::Opened { .. } = event {
            keep.arg(&message);
        }
        // Refused by a Redis demoted to a replica: published all the same (on a new
        // connection, see `Conn::answered`), and kept again later, on the primary by then.
        let mut kept = true;
        match answered(&self.conn, &keep).await {
            Ok(Ok(())) => {}
            Ok(Err(refused)) => {
                kept = !is_demoted(&refused);
                tracing::debug!(
                    error = %refused,
                    "redis refused to keep a breaker transition for later subscribers"
                );
            }
            // No answer: neither is sent yet, and both are asked again (a `PUBLISH` alone,
            // should Redis answer it a moment later, would leave a replica that subscribes
            // after it, a restarted Redis's, nothing to read).
            Err(e) => return unanswered(e, failing),
        }
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&self.name).arg(message);
        match answered(&self.conn, &publish).await {
            Ok(Ok(())) => {
                *failing = false;
                kept
            }
            Ok(Err(refused)) => {
                tracing::warn!(
                    error = %refused,
                    "redis refused a breaker transition; not published"
                );
                kept
            }
            Err(e) => unanswered(e, failing),
        }
    }

    /// Applies the opens other replicas keep in the [`opens_key`] hash: those published while
    /// this replica was not subscribed, but for targets with a transition of this replica's
    /// still to be published (newer than what the hash says, and about to replace it). Best
    /// effort: without an answer, the next message will do.
    ///
    /// Read as bytes: a field or value that is not UTF-8 (written by something else) is not
    /// one of ours, and is deleted with the opens long over, rather than failing the read of
    /// every other.
    async fn read_opens(&self) {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(opens_key(&self.name));
        let opens = match self
            .conn
            .query::<std::collections::HashMap<Vec<u8>, Vec<u8>>>(&cmd)
            .await
        {
            Ok(opens) => opens,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the targets open on the breaker channel");
                return;
            }
        };
        let Some(link) = self.link.upgrade() else {
            return;
        };
        let now = crate::breaker::unix_millis();
        let mut stale = Vec::new();
        for (field, message) in &opens {
            let read = std::str::from_utf8(field)
                .ok()
                .and(std::str::from_utf8(message).ok())
                .and_then(decode);
            let Some((from, event @ Remote::Opened { until_unix_ms }, authority)) = read else {
                stale.push((field, message));
                continue;
            };
            if until_unix_ms.saturating_add(STALE_OPEN_MARGIN_MS) < now {
                stale.push((field, message));
            }
            let ours = self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(authority);
            if from != self.sender && until_unix_ms > now && !ours {
                link.apply(authority, event);
            }
        }
        drop(link);
        if !stale.is_empty() {
            self.forget_opens(&stale).await;
        }
    }

    /// Deletes from the [`opens_key`] hash the fields given with the values they were read
    /// with, unless another replica has written them since: opens long over (or unreadable),
    /// whose target may never be called or closed again (a host retired, a webhook removed),
    /// and would otherwise stay in Redis for ever, read by every replica each time it
    /// subscribes. Best effort, as reading them was.
    async fn forget_opens(&self, stale: &[(&Vec<u8>, &Vec<u8>)]) {
        let script = redis::Script::new(FORGET_OPENS);
        let key = opens_key(&self.name);
        let forgot = self
            .conn
            .run(|mut connection| {
                let mut invocation = script.key(&key);
                for (field, message) in stale {
                    invocation.arg(field.as_slice()).arg(message.as_slice());
                }
                async move { invocation.invoke_async::<u64>(&mut connection).await }
            })
            .await;
        if let Err(e) = forgot {
            tracing::debug!(error = %e, "cannot delete opens long over from the breaker channel's hash");
        }
    }
}

/// How long after its end an open kept in the [`opens_key`] hash is deleted by a replica that
/// reads it: a minute, so that a replica whose clock is ahead does not delete one the others
/// still hold.
const STALE_OPEN_MARGIN_MS: u64 = 60_000;

/// Deletes each field `ARGV[i]` of `KEYS[1]` whose value is still `ARGV[i + 1]`.
const FORGET_OPENS: &str = r"
local forgot = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    forgot = forgot + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return forgot
";

/// Notes a transition Redis did not answer for (warning once while it does not), to be asked
/// again: false.
fn unanswered(error: BoxError, failing: &mut bool) -> bool {
    if !*failing {
        *failing = true;
        tracing::warn!(
            %error,
            "cannot publish a breaker transition; replicas decide alone until it is"
        );
    }
    false
}

/// Runs `cmd`, its reply ignored: `Ok(Err)` for an error Redis answered with, `Err` when Redis
/// did not answer (or the connection failed).
async fn answered(
    conn: &Conn,
    cmd: &redis::Cmd,
) -> Result<Result<(), redis::RedisError>, BoxError> {
    let answer = conn
        .answered(
            |mut connection| async move { cmd.query_async::<redis::Value>(&mut connection).await },
        )
        .await?;
    Ok(answer.map(drop))
}

async fn subscribe(channel: Arc<BreakerChannel>) {
    let link = &channel.link;
    const FIRST_WAIT: Duration = Duration::from_millis(100);
    /// How long a subscription must have lasted for its loss to start the waits afresh.
    const STEADY: Duration = Duration::from_secs(1);
    let mut backoff = FIRST_WAIT;
    loop {
        let Some(strong) = link.upgrade() else { return };
        drop(strong);
        let began = Instant::now();
        match listen(&channel).await {
            Ok(()) => return,
            Err(e) => {
                // A subscription that held for a while and was then lost starts waiting
                // afresh: an outage long ago does not leave the next blip deaf for the longest
                // wait. One dropped as soon as it is made (a server in a crash loop, at its
                // client limit) keeps backing off.
                let was_connected = link
                    .upgrade()
                    .is_some_and(|l| l.connected.swap(false, Ordering::AcqRel));
                if was_connected && began.elapsed() >= STEADY {
                    backoff = FIRST_WAIT;
                }
                tracing::debug!(error = %e, "breaker channel lost; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// How long the breaker channel's subscriber waits for a message before it checks that its
/// link is still used and its connection still answers.
const SUBSCRIBER_CHECK: Duration = Duration::from_secs(5);

/// Applies other replicas' transitions until the link is gone (`Ok`) or the connection drops.
async fn listen(channel: &BreakerChannel) -> Result<(), redis::RedisError> {
    let link = &channel.link;
    use futures_core::Stream;
    let lost = |why: &str| redis::RedisError::from(std::io::Error::other(why.to_owned()));
    // A connection that goes silent while it subscribes is given up like one that goes silent
    // later.
    let subscribing = async {
        let mut pubsub = channel.conn.client.get_async_pubsub().await?;
        pubsub.subscribe(&channel.name).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    // Connecting and subscribing are two round trips, each allowed the timeout.
    let pubsub = tokio::time::timeout(DEFAULT_REDIS_TIMEOUT * 2, subscribing)
        .await
        .map_err(|_| lost("no answer while subscribing to the breaker channel"))??;
    if let Some(l) = link.upgrade() {
        l.connected.store(true, Ordering::Release);
    }
    // Subscribed: what is published from now on arrives as messages, and what was published
    // before (while this replica was not listening) is read from the hash of opens.
    channel.read_opens().await;
    let (mut sink, mut messages) = pubsub.split();
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut messages).poll_next(cx));
        // Wake up now and then to notice a link nobody uses any more, and a connection that
        // died without closing (a quiet channel and a dead one look alike until asked).
        let message = match tokio::time::timeout(SUBSCRIBER_CHECK, next).await {
            Ok(Some(message)) => message,
            Ok(None) => return Err(lost("subscription closed")),
            Err(_) => {
                if link.strong_count() == 0 {
                    return Ok(());
                }
                let ping = sink.ping::<redis::Value>();
                match tokio::time::timeout(DEFAULT_REDIS_TIMEOUT, ping).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(lost("no answer to a ping on the breaker channel")),
                }
            }
        };
        let Some(link) = link.upgrade() else {
            return Ok(());
        };
        let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) else {
            continue;
        };
        match decode(text) {
            Some((from, event, authority)) if from != channel.sender => {
                link.apply(authority, event)
            }
            Some(_) => {}
            None => tracing::debug!("ignored a malformed breaker message"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command's timeout that cut off its connection attempt is noted after the slot was let
    /// go of: by then another command may have connected, and the note must not mark that
    /// healthy connection failing (commands would then be refused while it serves).
    #[test]
    fn an_attempt_cut_off_after_another_connected_is_no_failure() {
        let conn = Conn::open("redis://127.0.0.1:1/", Duration::from_secs(1), true).unwrap();
        // An attempt begun with no manager made; another command connects meanwhile.
        conn.made.fetch_add(1, Ordering::SeqCst);
        conn.connected(true);
        conn.cut_off(0);
        assert!(!conn.failing());
        assert_eq!(conn.pausing(), None);
        // Cut off with nothing made since it began: a failure, and a pause.
        conn.cut_off(1);
        assert!(conn.failing());
        assert!(conn.pausing().is_some());
        // The breaker publisher's connection remembers nothing.
        let publisher = Conn::open("redis://127.0.0.1:1/", Duration::from_secs(1), false).unwrap();
        publisher.cut_off(0);
        assert!(!publisher.failing());
    }

    #[test]
    fn messages_round_trip() {
        let open = Remote::Opened {
            until_unix_ms: 1_700_000_000_123,
        };
        let text = encode(0xabc, "http://users:8080", open);
        assert_eq!(decode(&text), Some((0xabc, open, "http://users:8080")));
        let text = encode(7, "https://h:443", Remote::Closed);
        assert_eq!(decode(&text), Some((7, Remote::Closed, "https://h:443")));
        assert_eq!(decode("zz open 1 a"), None);
        assert_eq!(decode("1 opened 1 a"), None);
        assert_eq!(decode("1 open"), None);
    }

    #[test]
    fn ttls_run_to_keep_until_plus_the_margin_rounded_up_to_the_millisecond() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let later = |micros| now + Duration::from_micros(micros);
        assert_eq!(ttl_millis(now, later(1_500_000), Duration::ZERO), 1500);
        assert_eq!(ttl_millis(now, later(1_500_001), Duration::ZERO), 1501);
        assert_eq!(
            ttl_millis(now, later(1_500_000), Duration::from_secs(5)),
            6500
        );
        // Already past keep_until on this clock: another replica's clock may still be behind.
        assert_eq!(ttl_millis(now, now, Duration::from_secs(5)), 5000);
        assert_eq!(ttl_millis(later(1), now, Duration::ZERO), 1);
        let far = now + Duration::from_secs(1 << 40);
        assert_eq!(ttl_millis(now, far, Duration::ZERO), MAX_TTL_MS);
    }

    #[test]
    fn bad_urls_are_config_errors_without_the_url() {
        let err = RedisNonceStore::new("redis://:hunter2@[bad").unwrap_err();
        assert!(matches!(&err, Error::Config { key, .. } if key == "redis_url"));
        assert!(!err.to_string().contains("hunter2"));
    }

    /// A managed Redis that requires TLS is named by a `rediss://` URL, which parses: the
    /// error says that TLS is what is missing, not that the URL is malformed.
    #[test]
    fn a_tls_url_is_refused_as_unsupported_tls_not_as_a_bad_url() {
        let err = RedisNonceStore::new("rediss://:hunter2@cache.example:6380/0").unwrap_err();
        let shown = err.to_string();
        assert!(matches!(&err, Error::Config { key, .. } if key == "redis_url"));
        assert!(shown.contains("TLS"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
