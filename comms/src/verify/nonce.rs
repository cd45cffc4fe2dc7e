//! Remembering nonces for as long as their requests could be replayed.
//!
//! A verifier must remember every nonce it accepted until the request's timestamp leaves the
//! skew window: at 20,000 requests a second and the default 300 s window, six million of them
//! at once. Kept as strings in a general-purpose map they would take around a hundred bytes
//! each, and an attacker who chooses the bits that pick a shard could pile them into one. So
//! [`MemoryNonceStore`] keeps 12 bytes a slot:
//!
//! - **A keyed 64-bit fingerprint** of (service id, nonce) instead of the nonce: SipHash under
//!   the store's own `RandomState`, a random key no caller knows, so no caller can aim two
//!   nonces at one fingerprint, one slot or one shard. A second hash under that key, of a
//!   differently tagged input, picks the shard independently of the fingerprint, so two
//!   distinct nonces are confused only when they land in one shard *and* their fingerprints
//!   are equal: in a full default store, less than once in 10^14 requests, and what it costs
//!   is one genuine request refused as a replay, never a replay let through.
//! - **The expiry in whole Unix seconds** (a `u32`, good until 2106), rounded *up* from
//!   `keep_until`, and compared with the clock rounded down: a nonce is never forgotten before
//!   its `keep_until`, and the verifier's `keep_until` is a whole second, so it is forgotten
//!   exactly then.
//! - **Open addressing, one table per shard**: linear probing over a `Vec<[u32; 3]>`, a slot's
//!   home found by multiplying the fingerprint's top 32 bits by the length (so any length
//!   works, not only powers of two). A lookup reads a few adjacent slots. An expired slot is
//!   reused by the next insert whose probe run reaches it but keeps its place in the run, so
//!   a nonce stored past it is still found; rebuilds drop expired slots.
//! - **Rebuilt to a load of 0.6 when 0.8 of the slots are used**: a table is sized for the
//!   nonces it actually holds (12 / 0.6 = 20 bytes per live nonce after a rebuild), starts
//!   empty and grows by at most a third per rebuild, so memory follows use, not capacity; a
//!   store that is never used allocates nothing but its shards. A table left over four times
//!   too large by a burst is rebuilt to fit once the burst's nonces have expired, within two
//!   of the nonces' lifetimes (`max_skew` and a second), at the next insert. A rebuild moves one shard's
//!   nonces (at most its share of the capacity) with only that shard locked.
//! - **Bounded, and refusing when full**: each shard holds an equal share of the capacity.
//!   When a shard is full of live nonces a new one is *refused* (its request fails) rather
//!   than evicting a live one, which would let that request be replayed. A full shard is
//!   purged of what has expired at most once a second (expiries are whole seconds), so a flood
//!   against a full store costs a constant per request. Refusals are counted
//!   ([`MemoryNonceStore::refused_full`]) and logged: each at `DEBUG`, and a `WARN` with the
//!   count at most every 10 s.
//!
//! The table of one shard lives in `nonce/table.rs`; the store, its shards and its keys here.

mod table;

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::BoxError;
use crate::report::Throttle;
use table::{Shard, Slot, fast_range};

/// Where a verifier remembers the nonces it has accepted.
///
/// A nonce must be remembered for as long as its request could still pass the verifier's
/// clock-skew check (until `keep_until`); after that the timestamp check alone refuses a
/// replay. The in-memory [`MemoryNonceStore`] serves one process; a store shared by every
/// replica (Redis, say) stops a request captured on one replica from being replayed against
/// another.
pub trait NonceStore: Send + Sync + 'static {
    /// Records `nonce` for `service_id`, to be remembered at least until `keep_until`.
    ///
    /// `nonce` is the signature's nonce as the caller sent it: 16 to 128 characters of
    /// `A-Z a-z 0-9 - _` (the verifier checks that before asking the store). `now` is the
    /// verifier's clock; `keep_until` is the instant after which the request's timestamp can
    /// no longer pass the skew check, so the store must refuse a replay at any instant before
    /// it and may forget the nonce after it.
    ///
    /// Resolves to `true` when the nonce is new (and now recorded), `false` when it was already
    /// recorded and is still remembered (a replay), an error when the store cannot tell, in
    /// which case the request is refused.
    fn check_and_insert<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>>;

    /// Whether `nonce` is recorded for `service_id` and still remembered at `now`, without
    /// recording it: asked when a request's head has been verified, so that a replay is
    /// refused before its body is read. A store for which asking costs a round trip (a remote
    /// one) may leave the default, which answers `false` and so leaves replays to
    /// [`check_and_insert`](NonceStore::check_and_insert), after the body.
    fn contains<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>> {
        let _ = (service_id, nonce, now);
        Box::pin(std::future::ready(Ok(false)))
    }

    /// Where the store keeps its nonces, when another instance may keep them in the same place
    /// (a Redis store: its server, as its URL names it, database and namespace); `None`, the
    /// default, when only the instance itself does.
    ///
    /// A generated server behind a `VerifyLayer` that admitted a request already leaves the
    /// request's nonce to the layer when the two verifiers' stores are one: the same instance,
    /// or two saying the same place here. Otherwise it records the nonce in its own store too
    /// (the layer's may be this process's memory, the server's the fleet's), where a second
    /// record of one place would refuse the request as its own replay. Two instances saying
    /// one place are taken for one store, whatever else differs between them: the layer's
    /// decides.
    fn location(&self) -> Option<String> {
        None
    }
}

/// A bounded in-memory nonce store.
///
/// It holds at most [`capacity`](MemoryNonceStore::capacity) live nonces, in about 20 bytes
/// each at a steady rate: memory grows with the nonces held, not with the capacity. When full
/// of live nonces it *refuses* new ones (the request fails with
/// [`VerifyError::NonceStore`](super::VerifyError::NonceStore)) rather than evict a live one,
/// which would let its request be replayed; refusals are counted
/// ([`refused_full`](MemoryNonceStore::refused_full)) and logged, a `WARN` at most every 10 s.
/// Only requests with a valid signature reach the store, so filling it takes a caller's
/// secret.
///
/// Each nonce is kept as a 64-bit fingerprint of service id and nonce, hashed under a random
/// key of the store's own, with its expiry in whole Unix seconds rounded up from
/// `keep_until`; fingerprints live in open-addressing tables spread over shards by a second
/// keyed hash, so no caller can aim nonces at one fingerprint or crowd one shard.
pub struct MemoryNonceStore {
    shards: Box<[Padded]>,
    capacity: usize,
    /// The per-store key of both hashes.
    key: RandomState,
    refused_full: AtomicU64,
    /// Refusals for a full store, timed in milliseconds since `started`.
    refusals: Throttle,
    started: Instant,
}

/// A shard on a cache line of its own, so that two cores locking two shards do not contend.
#[repr(align(64))]
struct Padded(Mutex<Shard>);

/// At most this many shards.
const MAX_SHARDS: usize = 256;

/// A store smaller than this many nonces per shard has fewer shards, so that each holds
/// enough for the hash to spread the nonces evenly.
const MIN_SHARD_CAPACITY: usize = 4096;

/// The most nonces a store holds: the tables index slots with 32-bit arithmetic.
const MAX_CAPACITY: usize = u32::MAX as usize;

/// The default capacity of [`MemoryNonceStore`]: 8 million live nonces, enough for 20,000
/// verified requests a second over the default 300 s skew window with a third to spare, in
/// at most about 160 MB when full.
pub const DEFAULT_NONCE_CAPACITY: usize = 8_000_000;

impl Default for MemoryNonceStore {
    fn default() -> Self {
        MemoryNonceStore::with_capacity(DEFAULT_NONCE_CAPACITY)
    }
}

impl fmt::Debug for MemoryNonceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryNonceStore")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .field("refused_full", &self.refused_full())
            .finish_non_exhaustive()
    }
}

impl MemoryNonceStore {
    /// A store holding at most `capacity` live nonces (at least 1, at most `u32::MAX`). It
    /// allocates its tables as nonces arrive.
    pub fn with_capacity(capacity: usize) -> MemoryNonceStore {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        let count = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        let shards = (0..count)
            .map(|i| {
                // Shares as equal as they can be, adding up to `capacity`.
                let share = capacity / count + usize::from(i < capacity % count);
                Padded(Mutex::new(Shard::new(share)))
            })
            .collect();
        MemoryNonceStore {
            shards,
            capacity,
            key: RandomState::new(),
            refused_full: AtomicU64::new(0),
            refusals: Throttle::new(),
            started: Instant::now(),
        }
    }

    /// How many nonces are held now, expired ones not yet dropped by a rebuild included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).used).sum()
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most live nonces this store holds at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bytes of memory this store has allocated: its tables, its shards and itself. It
    /// follows the nonces held, not the capacity.
    pub fn allocated_bytes(&self) -> usize {
        let tables: usize = self
            .shards
            .iter()
            .map(|s| lock(s).slots.capacity() * size_of::<Slot>())
            .sum();
        tables + self.shards.len() * size_of::<Padded>() + size_of::<MemoryNonceStore>()
    }

    /// How many nonces were refused because the store was full of live ones, since it was made.
    pub fn refused_full(&self) -> u64 {
        self.refused_full.load(Ordering::Relaxed)
    }

    /// The shard of (service id, nonce) and the fingerprint stored for it: two keyed hashes,
    /// told apart by a leading tag.
    fn locate(&self, service_id: &str, nonce: &str) -> (&Padded, u64) {
        let fingerprint = self.key.hash_one((0u8, service_id, nonce));
        let pick = self.key.hash_one((1u8, service_id, nonce));
        (
            &self.shards[fast_range(pick, self.shards.len())],
            fingerprint,
        )
    }

    /// The synchronous core of [`NonceStore::check_and_insert`].
    fn insert_at(
        &self,
        service_id: &str,
        nonce: &str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Result<bool, BoxError> {
        let (shard, fingerprint) = self.locate(service_id, nonce);
        let result = lock(shard).insert(
            fingerprint,
            unix_seconds(now, false),
            unix_seconds(keep_until, true),
        );
        result.map_err(|full| {
            self.refused_full.fetch_add(1, Ordering::Relaxed);
            let now_ms = self.started.elapsed().as_millis() as u64;
            match self.refusals.count(now_ms) {
                Some(refused) => tracing::warn!(
                    refused,
                    capacity = self.capacity,
                    "nonce store full of live nonces; new nonces refused since the last report"
                ),
                None => tracing::debug!(
                    service = service_id,
                    "nonce store full of live nonces; new nonce refused"
                ),
            }
            full.into()
        })
    }
}

/// `time` in whole Unix seconds, rounded up or down, within `0..=u32::MAX`.
fn unix_seconds(time: SystemTime, round_up: bool) -> u32 {
    let Ok(since) = time.duration_since(UNIX_EPOCH) else {
        return 0;
    };
    let seconds = since.as_secs() + u64::from(round_up && since.subsec_nanos() != 0);
    u32::try_from(seconds).unwrap_or(u32::MAX)
}

fn lock(shard: &Padded) -> std::sync::MutexGuard<'_, Shard> {
    shard
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl NonceStore for MemoryNonceStore {
    fn check_and_insert<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>> {
        let result = self.insert_at(service_id, nonce, now, keep_until);
        Box::pin(std::future::ready(result))
    }

    fn contains<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>> {
        let (shard, fingerprint) = self.locate(service_id, nonce);
        let held = lock(shard).contains(fingerprint, unix_seconds(now, false));
        Box::pin(std::future::ready(Ok(held)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn at_ms(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    impl MemoryNonceStore {
        /// The nonces still live at `now`.
        fn live_at(&self, now: SystemTime) -> usize {
            let now = unix_seconds(now, false);
            let live = |s: &Padded| lock(s).slots.iter().filter(|x| x[2] > now).count();
            self.shards.iter().map(live).sum()
        }

        fn shard_of(&self, service_id: &str, nonce: &str) -> usize {
            let (shard, _) = self.locate(service_id, nonce);
            self.shards
                .iter()
                .position(|s| std::ptr::eq(s, shard))
                .unwrap()
        }
    }

    #[test]
    fn replay_is_caught_and_services_are_apart() {
        let s = MemoryNonceStore::with_capacity(64);
        // A 22-character base64url nonce (Python's requests-http-signature) and comms' hex.
        for nonce in ["Sf0_9-kXbQm2PzL4uW7yAg", "0123456789abcdef0123456789abcdef"] {
            assert!(s.insert_at("a", nonce, at(10), at(100)).unwrap());
            assert!(!s.insert_at("a", nonce, at(10), at(100)).unwrap());
            assert!(!s.insert_at("a", nonce, at(99), at(200)).unwrap());
            assert!(s.insert_at("b", nonce, at(10), at(100)).unwrap());
        }
        // Where the service id ends and the nonce begins is part of what is hashed.
        assert!(
            s.insert_at("billing", "x123456789abcdef", at(10), at(100))
                .unwrap()
        );
        assert!(
            s.insert_at("billin", "gx123456789abcdef", at(10), at(100))
                .unwrap()
        );
    }

    #[test]
    fn a_nonce_is_looked_up_without_being_recorded() {
        let s = MemoryNonceStore::with_capacity(64);
        let held = |service: &str, nonce: &str, secs| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime
                .block_on(s.contains(service, nonce, at(secs)))
                .unwrap()
        };
        let nonce = "0123456789abcdef";
        assert!(!held("a", nonce, 10), "never recorded");
        assert!(
            s.insert_at("a", nonce, at(10), at(100)).unwrap(),
            "still new"
        );
        assert!(held("a", nonce, 50));
        assert!(!held("b", nonce, 50), "another service's");
        assert!(!held("a", "fedcba9876543210", 50));
        assert!(!held("a", nonce, 100), "forgotten at keep_until");
    }

    #[test]
    fn a_nonce_is_kept_until_keep_until_to_the_millisecond() {
        let s = MemoryNonceStore::with_capacity(64);
        let nonce = "0123456789abcdef";
        // keep_until on a whole second, as the verifier passes it.
        assert!(s.insert_at("a", nonce, at(1000), at(1300)).unwrap());
        assert!(!s.insert_at("a", nonce, at_ms(1_299_999), at(1600)).unwrap());
        assert!(s.insert_at("a", nonce, at(1300), at(1600)).unwrap());
        assert!(!s.insert_at("a", nonce, at(1300), at(1600)).unwrap());
        // Between seconds, a nonce is kept to the next whole second: never less.
        assert!(s.insert_at("b", nonce, at(1000), at_ms(1_300_500)).unwrap());
        assert!(!s.insert_at("b", nonce, at_ms(1_300_499), at(1600)).unwrap());
        assert!(!s.insert_at("b", nonce, at_ms(1_300_999), at(1600)).unwrap());
        assert!(s.insert_at("b", nonce, at(1301), at(1600)).unwrap());
        // A request already past its window is accepted and not remembered.
        assert!(s.insert_at("c", nonce, at(1000), at(1000)).unwrap());
        assert!(s.insert_at("c", nonce, at(1000), at(1000)).unwrap());
    }

    #[test]
    fn expired_slots_are_reused_at_keep_until_and_not_before() {
        // One shard of 4: full after four live nonces.
        let s = MemoryNonceStore::with_capacity(4);
        for i in 0..4 {
            assert!(
                s.insert_at("a", &format!("{i:016x}"), at(10), at(100))
                    .unwrap()
            );
        }
        let next = "ffffffffffffffff";
        assert!(s.insert_at("a", next, at_ms(99_999), at(200)).is_err());
        assert!(s.insert_at("a", next, at(100), at(200)).unwrap());
        assert_eq!(s.live_at(at(100)), 1);
        // The expired slots take new nonces without growing the table.
        let bytes = s.allocated_bytes();
        for i in 4..7 {
            assert!(
                s.insert_at("a", &format!("{i:016x}"), at(150), at(200))
                    .unwrap()
            );
        }
        assert_eq!(s.allocated_bytes(), bytes);
        assert!(s.len() <= s.capacity());
        assert_eq!(s.refused_full(), 1);
    }

    #[test]
    fn a_full_store_refuses_counts_and_evicts_nothing() {
        let s = MemoryNonceStore::with_capacity(100);
        let nonce = |i: u32| format!("{i:032x}");
        for i in 0..100 {
            assert!(s.insert_at("a", &nonce(i), at(10), at(100)).unwrap());
        }
        for i in 100..150 {
            let err = s.insert_at("a", &nonce(i), at(10), at(100)).unwrap_err();
            assert!(err.to_string().contains("full of live nonces"), "{err}");
        }
        assert_eq!(s.refused_full(), 50);
        assert_eq!(s.len(), 100);
        // Every live nonce is still refused as a replay, to the last millisecond.
        for i in 0..100 {
            assert!(!s.insert_at("a", &nonce(i), at_ms(99_999), at(200)).unwrap());
        }
        // Once they expire, room is made.
        for i in 100..150 {
            assert!(s.insert_at("a", &nonce(i), at(100), at(200)).unwrap());
        }
        assert_eq!(s.refused_full(), 50);
    }

    #[test]
    fn nonces_alike_in_any_bits_spread_over_the_shards() {
        let s = MemoryNonceStore::default();
        let shards = s.shards.len();
        assert_eq!(shards, MAX_SHARDS);
        let per_shard = 64;
        let count = shards * per_shard;
        // Nonces that differ only in their first, last or middle characters.
        let families: [fn(usize) -> String; 3] = [
            |i| format!("{i:04x}{}", "0".repeat(28)),
            |i| format!("{}{i:04x}", "0".repeat(28)),
            |i| format!("{}{i:04x}{}", "A".repeat(10), "_".repeat(10)),
        ];
        for family in families {
            let mut load = vec![0usize; shards];
            for i in 0..count {
                load[s.shard_of("billing", &family(i))] += 1;
            }
            let (min, max) = (load.iter().min().unwrap(), load.iter().max().unwrap());
            assert!(
                *min >= per_shard / 3 && *max <= per_shard * 3,
                "{min}..{max}"
            );
        }
        // Another store, another key: the same nonce goes elsewhere.
        let other = MemoryNonceStore::default();
        let moved = (0..64)
            .filter(|&i| {
                let nonce = families[0](i);
                s.shard_of("billing", &nonce) != other.shard_of("billing", &nonce)
            })
            .count();
        assert!(moved > 32, "only {moved} of 64 moved");
    }

    #[test]
    fn memory_grows_with_use() {
        let s = MemoryNonceStore::default();
        assert!(s.allocated_bytes() < 64 * 1024, "{}", s.allocated_bytes());
        assert!(s.is_empty());
    }

    /// A burst's tables shrink back once its nonces have expired and the traffic is calm:
    /// within two of the nonces' lifetimes, to about what the live ones need; and what is live
    /// is still refused as a replay.
    #[test]
    fn a_bursts_tables_shrink_back_once_the_traffic_calms() {
        let s = MemoryNonceStore::default();
        let start = 1_700_000_000u64;
        let nonce = |n: u64| format!("{n:032x}");
        for n in 0..1_000_000 {
            assert!(
                s.insert_at("billing", &nonce(n), at(start), at(start + 301))
                    .unwrap()
            );
        }
        let burst = s.allocated_bytes();
        // Then 10 a second for 15 minutes.
        let mut n = 1_000_000;
        let mut after_one_lifetime = 0;
        for second in 1..=900 {
            for _ in 0..10 {
                let now = at(start + second);
                assert!(
                    s.insert_at("billing", &nonce(n), now, at(start + second + 301))
                        .unwrap()
                );
                n += 1;
            }
            if second == 250 {
                after_one_lifetime = s.allocated_bytes();
            }
        }
        let calm = s.allocated_bytes();
        // Still about the burst's while its nonces live (a shard the trickle fills past its
        // load is rebuilt, at a size its live nonces need).
        assert!(
            after_one_lifetime > burst / 2,
            "{after_one_lifetime} bytes while a burst of {burst} lives"
        );
        let live = s.live_at(at(start + 900));
        assert!(live >= 3_000, "{live}");
        assert!(calm < burst / 50, "{calm} bytes after a burst of {burst}");
        assert!(
            calm < live * 80 + 64 * 1024,
            "{calm} bytes for {live} nonces"
        );
        for m in (n - 3_000..n).step_by(7) {
            assert!(
                !s.insert_at("billing", &nonce(m), at(start + 900), at(start + 1200))
                    .unwrap()
            );
        }
        assert_eq!(s.refused_full(), 0);
    }

    /// 20,000 verified requests a second for 450 simulated seconds (9 million nonces) on a
    /// default store: a 300 s window holds 6 million live nonces, none is refused, and the
    /// store holds them in at most 24 bytes each.
    #[test]
    fn a_300_s_window_at_20_000_a_second_fits_in_24_bytes_a_nonce() {
        const RATE: u64 = 20_000;
        const SECONDS: u64 = 450;
        let s = MemoryNonceStore::default();
        let start = 1_700_000_000u64;
        let mut nonce = String::with_capacity(32);
        let mut peak = 0.0f64;
        for n in 0..RATE * SECONDS {
            let now = at_ms(start * 1000 + n * 1000 / RATE);
            let created = start + n / RATE;
            // As the verifier passes it: created + max_skew + 1 s.
            let keep_until = at(created + 301);
            nonce.clear();
            std::fmt::Write::write_fmt(&mut nonce, format_args!("{n:032x}")).unwrap();
            assert!(
                s.insert_at("billing", &nonce, now, keep_until).unwrap(),
                "{n}"
            );
            if n % (RATE * 10) == RATE * 10 - 1 && n > RATE * 301 {
                let live = s.live_at(now);
                peak = peak.max(s.allocated_bytes() as f64 / live as f64);
            }
        }
        let now = at(start + SECONDS);
        let live = s.live_at(now);
        assert!(live >= 6_000_000, "{live}");
        assert_eq!(s.refused_full(), 0);
        let per_nonce = s.allocated_bytes() as f64 / live as f64;
        assert!(
            per_nonce <= 24.0 && peak <= 24.0,
            "{per_nonce} now, {peak} at most"
        );
        // The last window's nonces are all still refused as replays.
        for n in (RATE * (SECONDS - 300)..RATE * SECONDS).step_by(997) {
            let nonce = format!("{n:032x}");
            assert!(
                !s.insert_at("billing", &nonce, now, at(start + 900))
                    .unwrap()
            );
        }
    }
}
