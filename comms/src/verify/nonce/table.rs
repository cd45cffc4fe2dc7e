//! One shard's table: 12-byte fingerprint slots under open addressing, each with the second its
//! nonce is forgotten at. A lookup and an insert share one probe run; an expired slot is reused
//! in place; the table is rebuilt (expired slots dropped) to a load of 0.6 once 0.8 of it is
//! used, and refuses a nonce when its share of the store's capacity is live. It is also rebuilt
//! smaller when it has become over four times the size its live nonces need (after a burst),
//! which it notices without counting them (see [`Generation`]). The store around it
//! (`nonce.rs`) explains why it is built this way, and locks one shard per call.

/// One fingerprint slot: the fingerprint's low and high halves, and the Unix second from which
/// the nonce is forgotten, 0 for a slot never used since the last rebuild.
pub(super) type Slot = [u32; 3];

/// Part of the nonces, in an open-addressing table.
pub(super) struct Shard {
    pub(super) slots: Vec<Slot>,
    /// Slots used since the last rebuild: live nonces and expired ones.
    pub(super) used: usize,
    /// The most live nonces this shard holds.
    capacity: usize,
    /// No used slot expires before this second (a lower bound), so a purge before it frees
    /// nothing.
    earliest: u32,
    /// The nonces recorded since the last turn of generations.
    current: Generation,
    /// The latest second a nonce of the generation before `current` is forgotten at: from it
    /// on, only nonces of `current` are live (with a clock that does not step back).
    previous_until: u32,
}

/// The nonces a shard recorded over a stretch of time: how many, and the latest second one of
/// them is forgotten at.
///
/// Generations turn when the one before the current has all expired (at its `until`): by
/// then every older one has too, so the current generation's count bounds the live nonces
/// (unless the clock stepped back: the count then only decides whether to rebuild, and a
/// rebuild keeps whatever is live). A table more than four times the size that count needs is
/// rebuilt then, so that a burst's table shrinks back within two of the nonces' lifetimes once
/// traffic calms, at the cost of one rebuild per lifetime at most. (With no insert at all,
/// nothing is looked at: the next one shrinks it.)
#[derive(Clone, Copy, Default)]
struct Generation {
    recorded: usize,
    until: u32,
}

/// What the probe run of a fingerprint holds.
enum Scan {
    /// A live slot holds it.
    Live,
    /// No live slot does: the first expired slot of the run, and its never-used end (none in
    /// an empty table).
    Absent {
        reusable: Option<usize>,
        unused: Option<usize>,
    },
}

/// The smallest table a shard makes.
const MIN_SLOTS: usize = 8;

/// Why a nonce was refused: its shard is full of live nonces.
#[derive(Debug, thiserror::Error)]
#[error("nonce store is full of live nonces (capacity {capacity})")]
pub(super) struct Full {
    capacity: usize,
}

impl Shard {
    pub(super) fn new(capacity: usize) -> Shard {
        Shard {
            slots: Vec::new(),
            used: 0,
            capacity,
            earliest: u32::MAX,
            current: Generation::default(),
            previous_until: 0,
        }
    }

    /// Whether a live slot holds `fingerprint` at second `now`.
    pub(super) fn contains(&self, fingerprint: u64, now: u32) -> bool {
        matches!(self.scan(fingerprint, now), Scan::Live)
    }

    /// Scans the probe run of `fingerprint` at second `now` to its first never-used slot (a
    /// live copy may sit past an expired slot), remembering the first expired one on the way.
    fn scan(&self, fingerprint: u64, now: u32) -> Scan {
        let (low, high) = (fingerprint as u32, (fingerprint >> 32) as u32);
        let mut reusable = None;
        if self.slots.is_empty() {
            return Scan::Absent {
                reusable,
                unused: None,
            };
        }
        let mut i = fast_range(fingerprint, self.slots.len());
        loop {
            let [l, h, expiry] = self.slots[i];
            if expiry == 0 {
                return Scan::Absent {
                    reusable,
                    unused: Some(i),
                };
            }
            if expiry > now {
                if l == low && h == high {
                    return Scan::Live;
                }
            } else if reusable.is_none() {
                reusable = Some(i);
            }
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
    }

    /// Looks `fingerprint` up at second `now` and, when no live slot holds it, records it until
    /// second `until`. `Ok(false)` is a replay.
    pub(super) fn insert(&mut self, fingerprint: u64, now: u32, until: u32) -> Result<bool, Full> {
        let (low, high) = (fingerprint as u32, (fingerprint >> 32) as u32);
        let Scan::Absent {
            mut reusable,
            mut unused,
        } = self.scan(fingerprint, now)
        else {
            return Ok(false);
        };
        if until <= now {
            // Its request can no longer pass the skew check: nothing to remember.
            return Ok(true);
        }
        if now >= self.previous_until && self.turn_generations(now) {
            // The table was rebuilt, without expired slots: the probe run is another, and ends
            // at a never-used slot.
            (reusable, unused) = (None, Some(probe_unused(&self.slots, fingerprint)));
        }
        if let Some(i) = reusable {
            self.slots[i] = [low, high, until];
            self.earliest = self.earliest.min(until);
            self.recorded(until);
            return Ok(true);
        }
        if self.used >= self.capacity && now < self.earliest {
            // Full, and nothing has expired since the last purge.
            return Err(Full {
                capacity: self.capacity,
            });
        }
        let slot = match unused {
            Some(i) if self.used < self.limit() => i,
            _ => {
                self.rebuild(now)?;
                probe_unused(&self.slots, fingerprint)
            }
        };
        self.slots[slot] = [low, high, until];
        self.used += 1;
        self.earliest = self.earliest.min(until);
        self.recorded(until);
        Ok(true)
    }

    /// Counts a nonce recorded until `until` in the current generation.
    fn recorded(&mut self, until: u32) {
        self.current.recorded += 1;
        self.current.until = self.current.until.max(until);
    }

    /// Starts a new generation at second `now`, once every nonce but the current generation's
    /// has expired; first rebuilds the table, when it is over four times the size those
    /// nonces need. Says whether it rebuilt.
    fn turn_generations(&mut self, now: u32) -> bool {
        let needed = (self.current.recorded + 1) * 5 / 3;
        let shrink = self.slots.len() > MIN_SLOTS && needed.saturating_mul(4) < self.slots.len();
        // The rebuild keeps every nonce live at `now` and sizes the table for them, however
        // many: after a clock that stepped back, an older generation's nonces can be live
        // again. (It fails only when they fill the shard, and then changes nothing.)
        let rebuilt = shrink && self.rebuild(now).is_ok();
        self.previous_until = self.current.until;
        self.current = Generation::default();
        rebuilt
    }

    /// The most slots used before a rebuild: 0.8 of the table, and never more than the
    /// capacity (a slot holds at most one live nonce).
    fn limit(&self) -> usize {
        (self.slots.len() / 5 * 4 + self.slots.len() % 5 * 4 / 5).min(self.capacity)
    }

    /// Drops the expired slots and sizes the table for a load of 0.6 with one more nonce, or
    /// fails when the live nonces already fill the shard.
    fn rebuild(&mut self, now: u32) -> Result<(), Full> {
        let live = || self.slots.iter().filter(move |slot| slot[2] > now);
        let count = live().count();
        let earliest = live().map(|slot| slot[2]).min().unwrap_or(u32::MAX);
        if count >= self.capacity {
            self.earliest = earliest;
            return Err(Full {
                capacity: self.capacity,
            });
        }
        let length = ((count + 1) * 5).div_ceil(3).max(MIN_SLOTS);
        let mut slots = vec![[0; 3]; length];
        for &slot in live() {
            let fingerprint = u64::from(slot[0]) | (u64::from(slot[1]) << 32);
            let i = probe_unused(&slots, fingerprint);
            slots[i] = slot;
        }
        self.slots = slots;
        self.used = count;
        self.earliest = earliest;
        Ok(())
    }
}

/// The first never-used slot of `fingerprint`'s probe run.
fn probe_unused(slots: &[Slot], fingerprint: u64) -> usize {
    let mut i = fast_range(fingerprint, slots.len());
    while slots[i][2] != 0 {
        i += 1;
        if i == slots.len() {
            i = 0;
        }
    }
    i
}

/// Maps a hash to `0..len` by its top 32 bits (Lemire's multiply-shift): uniform for any
/// `len` up to 2^32, and no division.
pub(super) fn fast_range(hash: u64, len: usize) -> usize {
    (((hash >> 32) * len as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bursts, lulls, a clock that jumps ahead and steps back a few seconds: every nonce still
    /// live is found again, and refused as a replay, however the table was rebuilt and shrunk
    /// meanwhile; and the table ends shrunk back from the last burst.
    #[test]
    fn no_live_nonce_is_forgotten_through_bursts_shrinks_and_a_clock_that_steps_back() {
        let mut shard = Shard::new(1_000_000);
        let mut held: Vec<(u64, u32)> = Vec::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state
        };
        let mut now = 1_000u32;
        for round in 0..40u32 {
            // A burst every tenth round, else a trickle.
            let inserts = if round % 10 == 0 { 20_000 } else { 50 };
            for _ in 0..inserts {
                let fingerprint = next();
                let until = now + 1 + (next() % 300) as u32;
                assert!(shard.insert(fingerprint, now, until).unwrap());
                held.push((fingerprint, until));
            }
            // Mostly ahead, by up to ten minutes; now and then back by up to 5 s.
            now = match next() % 8 {
                0 => now.saturating_sub((next() % 6) as u32),
                _ => now + (next() % 600) as u32,
            };
            for &(fingerprint, until) in &held {
                if until > now {
                    assert!(
                        shard.contains(fingerprint, now),
                        "round {round}: a live nonce lost"
                    );
                    assert!(!shard.insert(fingerprint, now, until + 300).unwrap());
                }
            }
            held.retain(|&(_, until)| until > now);
        }
        let live = shard.slots.iter().filter(|slot| slot[2] > now).count();
        assert_eq!(live, held.len());
        assert!(shard.used <= shard.slots.len());
        // Shrunk back from the last burst of 20,000.
        assert!(shard.slots.len() < 2_000, "{} slots", shard.slots.len());
    }
}
