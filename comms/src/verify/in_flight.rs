//! The signed requests being admitted, by nonce: a copy of one waits its turn.
//!
//! A nonce is recorded only once its request's body has been read and matched the signed
//! digest (a body that does not match must not spend it), so until then the store cannot tell
//! a copy of the request from the request. Without this, copies of one signed head sent at
//! once would each have a body read, up to the size limit, before all but one were refused.
//! With it, one copy at a time is admitted: the next is then refused at its head when the one
//! before spent the nonce (known here, whatever the store), or, when the one before was
//! refused (a body that did not match, or that never came), is admitted in its place.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

/// A verifier's nonces in flight: those of the requests its gates are admitting.
///
/// Keyed by a keyed hash of the service and the nonce: two nonces that share it only make one
/// request wait for the other. Whether the nonce was spent is told by a second hash, with a
/// key of its own, which they would have to share as well (one chance in 2^64) for one of
/// them to be refused for the other.
#[derive(Default)]
pub(crate) struct InFlight {
    hasher: RandomState,
    spent_hasher: RandomState,
    nonces: Mutex<HashMap<u64, Slot>>,
}

/// One nonce in flight: the lock its copies take turns on, how many turns hold or wait for it
/// (the slot goes when the last of them does), and the nonce one of them spent, by its second
/// hash.
struct Slot {
    lock: Arc<TurnLock<()>>,
    turns: usize,
    spent: Option<u64>,
}

/// A request's turn to be admitted under its nonce, held until it is admitted or refused.
pub(crate) struct Turn<'a> {
    in_flight: &'a InFlight,
    key: u64,
    /// The nonce's second hash, which says whether it is the one spent on the slot.
    check: u64,
    held: Option<OwnedMutexGuard<()>>,
}

impl InFlight {
    /// Waits until no other request with `service`'s `nonce` is being admitted, and takes the
    /// turn. A wait dropped before it ends leaves nothing behind.
    pub(crate) async fn turn(&self, service: &str, nonce: &str) -> Turn<'_> {
        let key = self.hasher.hash_one((service, nonce));
        let check = self.spent_hasher.hash_one((service, nonce));
        let lock = {
            let mut nonces = self.nonces();
            let slot = nonces.entry(key).or_insert_with(|| Slot {
                lock: Arc::default(),
                turns: 0,
                spent: None,
            });
            slot.turns += 1;
            slot.lock.clone()
        };
        // Counted from here, so that a wait dropped part way still leaves its slot.
        let mut turn = Turn {
            in_flight: self,
            key,
            check,
            held: None,
        };
        turn.held = Some(lock.lock_owned().await);
        turn
    }

    fn nonces(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        // The map is consistent between any two statements: a panic elsewhere leaves it usable.
        self.nonces.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many nonces are in flight.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.nonces().len()
    }
}

impl Turn<'_> {
    /// Says that this turn's request spent its nonce: the copies waiting for it are refused
    /// at their heads, whatever the nonce store (one that does not look nonces up too).
    pub(crate) fn spent(&self) {
        if let Some(slot) = self.in_flight.nonces().get_mut(&self.key) {
            slot.spent = Some(self.check);
        }
    }

    /// Whether a copy that had its turn before this one spent the nonce.
    pub(crate) fn after_spent(&self) -> bool {
        self.in_flight
            .nonces()
            .get(&self.key)
            .is_some_and(|slot| slot.spent == Some(self.check))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // The next copy's wait ends with this.
        self.held = None;
        let mut nonces = self.in_flight.nonces();
        if let Some(slot) = nonces.get_mut(&self.key) {
            slot.turns -= 1;
            if slot.turns == 0 {
                nonces.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_copy_waits_for_the_turn_before_it_and_nothing_is_left_after() {
        let in_flight = InFlight::default();
        let first = in_flight.turn("billing", "n1").await;
        // Another nonce, or the same nonce of another service, does not wait.
        let other = in_flight.turn("billing", "n2").await;
        let elsewhere = in_flight.turn("orders", "n1").await;
        assert_eq!(in_flight.len(), 3);
        drop((other, elsewhere));
        assert_eq!(in_flight.len(), 1);

        let copy = in_flight.turn("billing", "n1");
        tokio::pin!(copy);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut copy)
                .await
                .is_err(),
            "a copy got its turn while the first held it"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), copy)
            .await
            .expect("the copy's turn once the first let it go");
        assert_eq!(in_flight.len(), 1);
        // The first was not admitted: the second goes on.
        assert!(!second.after_spent());
        let third = in_flight.turn("billing", "n1");
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut third)
                .await
                .is_err()
        );
        second.spent();
        drop(second);
        let third = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .unwrap();
        assert!(third.after_spent());
        drop(third);
        assert_eq!(in_flight.len(), 0);
        // Once no copy holds or waits for the nonce, the next is the store's to judge.
        assert!(!in_flight.turn("billing", "n1").await.after_spent());
    }

    #[tokio::test]
    async fn a_wait_dropped_before_its_turn_leaves_nothing_behind() {
        let in_flight = InFlight::default();
        let first = in_flight.turn("billing", "n1").await;
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), in_flight.turn("billing", "n1")).await;
        assert!(gave_up.is_err());
        assert_eq!(in_flight.len(), 1);
        drop(first);
        assert_eq!(in_flight.len(), 0);
    }
}
