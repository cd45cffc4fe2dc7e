//! Remembering nonces for as long as their requests could be replayed.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::BoxError;

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
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    /// Chooses a nonce's shard, keyed per store so callers cannot pick it.
    hasher: RandomState,
}

#[derive(Debug)]
struct Shard {
    /// Each held nonce, keyed by service and nonce, with the instant it may be forgotten.
    entries: HashMap<(Box<str>, Box<str>), SystemTime>,
    /// No entry expires before this time, so a sweep before it frees nothing.
    earliest_expiry: SystemTime,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            entries: HashMap::new(),
            earliest_expiry: UNIX_EPOCH,
        }
    }
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
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity,
            hasher: RandomState::new(),
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

    /// The synchronous core of [`NonceStore::check_and_insert`].
    fn insert_at(
        &self,
        service_id: &str,
        nonce: &str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Result<bool, BoxError> {
        let index = self.hasher.hash_one((service_id, nonce)) as usize % SHARDS;
        let mut shard = lock(&self.shards[index]);
        let key = (Box::<str>::from(service_id), Box::<str>::from(nonce));
        if let Some(&expiry) = shard.entries.get(&key)
            && now < expiry
        {
            return Ok(false);
        }
        if shard.entries.len() >= self.shard_capacity && !shard.entries.contains_key(&key) {
            if now < shard.earliest_expiry {
                return Err("nonce store is full of live nonces".into());
            }
            shard.entries.retain(|_, expiry| now < *expiry);
            shard.earliest_expiry = shard.entries.values().copied().min().unwrap_or(now);
            if shard.entries.len() >= self.shard_capacity {
                return Err("nonce store is full of live nonces".into());
            }
        }
        if shard.entries.is_empty() || keep_until < shard.earliest_expiry {
            shard.earliest_expiry = keep_until;
        }
        shard.entries.insert(key, keep_until);
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
        let result = self.insert_at(service_id, nonce, now, keep_until);
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn replay_is_caught_and_services_are_apart() {
        let s = MemoryNonceStore::with_capacity(64);
        let nonce = "Sf0_9-kXbQm2PzL4uW7yAg";
        assert!(s.insert_at("a", nonce, at(10), at(100)).unwrap());
        assert!(!s.insert_at("a", nonce, at(10), at(100)).unwrap());
        assert!(s.insert_at("b", nonce, at(10), at(100)).unwrap());
        // Once expired, the timestamp check guards it; the slot may be reused.
        assert!(s.insert_at("a", nonce, at(100), at(200)).unwrap());
    }

    #[test]
    fn full_store_refuses_instead_of_evicting() {
        let s = MemoryNonceStore::with_capacity(1);
        let nonces: Vec<String> = (0..200).map(|i| format!("{i:032x}")).collect();
        // Fill the store until it refuses.
        let mut held = Vec::new();
        let mut refused = None;
        for nonce in &nonces {
            match s.insert_at("a", nonce, at(10), at(100)) {
                Ok(fresh) => {
                    assert!(fresh);
                    held.push(nonce);
                }
                Err(_) => {
                    refused = Some(nonce);
                    break;
                }
            }
        }
        let refused = refused.expect("the store refused at some point");
        assert!(s.len() <= s.capacity());
        // Every live nonce is still refused as a replay.
        for nonce in &held {
            assert!(!s.insert_at("a", nonce, at(50), at(100)).unwrap());
        }
        // After expiry, room is made.
        assert!(s.insert_at("a", refused, at(100), at(200)).unwrap());
    }
}
