//! Remembering nonces for as long as their requests could be replayed.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::BoxError;

/// Where a verifier remembers the nonces it has accepted.
///
/// A nonce must be remembered until its request's timestamp leaves the skew window
/// (`expires_at`, Unix seconds); after that the timestamp check alone refuses a replay. The
/// in-memory [`MemoryNonceStore`] serves one process; a store shared by every replica (Redis,
/// say) stops a request captured on one replica from being replayed against another.
pub trait NonceStore: Send + Sync + 'static {
    /// Records `nonce` (32 lowercase hex digits) for `service_id` until `expires_at`, both
    /// times in Unix seconds by the verifier's clock, which reads `now`. Resolves to `true` when
    /// the nonce was new, `false` when it was already recorded and has not expired (a replay),
    /// and an error when the store cannot tell, in which case the request is refused.
    fn check_and_insert<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>>;
}

/// A bounded in-memory nonce store.
///
/// It holds at most `capacity` live nonces. Expired ones are swept out when room is needed;
/// when every held nonce is still live, new nonces are *refused* (the request fails with
/// [`VerifyError::NonceStore`](super::VerifyError::NonceStore)) rather than evicting a live
/// one, which would let its request be replayed. Only requests with a valid signature reach
/// the store, so filling it takes a caller's secret.
#[derive(Debug)]
pub struct MemoryNonceStore {
    /// A keyed hash: which shard holds a nonce is not up to the caller.
    hasher: std::collections::hash_map::RandomState,
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<(Box<str>, Box<str>), u64>,
    /// No entry expires before this time, so a sweep before it frees nothing.
    earliest_expiry: u64,
}

const SHARDS: usize = 16;

/// The default capacity of [`MemoryNonceStore`]: about 100 MB at most.
pub const DEFAULT_NONCE_CAPACITY: usize = 1_000_000;

impl Default for MemoryNonceStore {
    fn default() -> Self {
        MemoryNonceStore::with_capacity(DEFAULT_NONCE_CAPACITY)
    }
}

impl MemoryNonceStore {
    /// A store holding at most `capacity` live nonces (at least one per shard).
    pub fn with_capacity(capacity: usize) -> MemoryNonceStore {
        let shard_capacity = capacity.div_ceil(SHARDS).max(1);
        MemoryNonceStore {
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity,
        }
    }

    /// How many nonces are held now, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).entries.len()).sum()
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most nonces this store holds at once.
    pub fn capacity(&self) -> usize {
        self.shard_capacity * SHARDS
    }

    /// The synchronous core of [`NonceStore::check_and_insert`], with the clock given.
    fn insert_at(
        &self,
        service_id: &str,
        nonce: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<bool, BoxError> {
        let value: Box<str> = nonce.into();
        let shard = &self.shards[(self.hasher.hash_one((service_id, nonce)) as usize) % SHARDS];
        let mut shard = lock(shard);
        let key = (Box::<str>::from(service_id), value);
        if let Some(&expiry) = shard.entries.get(&key)
            && expiry >= now
        {
            return Ok(false);
        }
        if shard.entries.len() >= self.shard_capacity && !shard.entries.contains_key(&key) {
            if now < shard.earliest_expiry {
                return Err("nonce store is full of live nonces".into());
            }
            shard.entries.retain(|_, expiry| *expiry >= now);
            shard.earliest_expiry = shard.entries.values().copied().min().unwrap_or(u64::MAX);
            if shard.entries.len() >= self.shard_capacity {
                return Err("nonce store is full of live nonces".into());
            }
        }
        shard.earliest_expiry = shard.earliest_expiry.min(expires_at);
        shard.entries.insert(key, expires_at);
        Ok(true)
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard
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
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let result = self.insert_at(service_id, nonce, secs(keep_until), secs(now));
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_is_caught_and_services_are_apart() {
        let s = MemoryNonceStore::with_capacity(64);
        assert!(s.insert_at("a", "01", 100, 10).unwrap());
        assert!(!s.insert_at("a", "01", 100, 10).unwrap());
        assert!(s.insert_at("b", "01", 100, 10).unwrap());
        // Once expired, the timestamp check guards it; the slot may be reused.
        assert!(s.insert_at("a", "01", 200, 101).unwrap());
    }

    #[test]
    fn full_store_refuses_instead_of_evicting() {
        let s = MemoryNonceStore::with_capacity(SHARDS);
        // Live nonces fill the store until it refuses one.
        let accepted: Vec<String> = (0..10 * SHARDS)
            .map(|i| format!("{i:x}"))
            .take_while(|nonce| s.insert_at("a", nonce, 100, 10).is_ok())
            .collect();
        assert!(!accepted.is_empty() && accepted.len() <= s.capacity());
        // Every live nonce is still refused as a replay.
        for nonce in &accepted {
            assert!(!s.insert_at("a", nonce, 100, 50).unwrap());
        }
        // After expiry, room is made.
        assert!(s.insert_at("a", "fresh", 300, 101).unwrap());
        assert!(s.len() <= s.capacity());
    }
}
