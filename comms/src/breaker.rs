//! The circuit breaker: a dead dependency fails fast instead of piling up waiting calls.
//!
//! States: **closed** (calls flow; consecutive failures are counted), **open** (calls fail with
//! [`Error::CircuitOpen`](crate::Error::CircuitOpen) without touching the network, until the
//! open period ends), **half-open** (exactly `half_open_probes` calls are let through; the first
//! probe to succeed closes the breaker, a probe failure reopens it).
//!
//! The state, the remaining probes and a generation number share one `AtomicU64`, so every
//! transition is a single compare-and-swap and admission on the closed path is one atomic load,
//! with no lock. The generation makes late results harmless: an outcome recorded for a permit
//! issued before the last transition changes nothing.
//!
//! One breaker exists per target authority (scheme, host, port) and configuration, shared by
//! every client in the process, so all clients of a dead host learn of it together.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// When a target's breaker opens, and how it recovers.
///
/// ```
/// use std::time::Duration;
/// let breaker = comms::BreakerConfig::default()
///     .failure_threshold(3)
///     .open_for(Duration::from_secs(10))
///     .half_open_probes(2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub struct BreakerConfig {
    pub(crate) enabled: bool,
    pub(crate) failure_threshold: u32,
    pub(crate) open_for: Duration,
    pub(crate) half_open_probes: u32,
}

impl Default for BreakerConfig {
    /// Opens after 5 consecutive failed attempts, stays open 30 s, then admits 1 probe.
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
            half_open_probes: 1,
        }
    }
}

impl BreakerConfig {
    /// No breaker: every call goes to the network.
    pub fn disabled() -> Self {
        BreakerConfig {
            enabled: false,
            ..BreakerConfig::default()
        }
    }

    /// Consecutive failed attempts (transport errors, timeouts, 500/502/503/504) that open the
    /// breaker. At least 1.
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n.max(1);
        self
    }

    /// How long the breaker stays open before it admits probes.
    pub fn open_for(mut self, d: Duration) -> Self {
        self.open_for = d;
        self
    }

    /// How many calls are let through while half-open. At least 1.
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = n.clamp(1, PROBE_MASK as u32);
        self
    }
}

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const STATE_MASK: u64 = 0b11;
const PROBE_SHIFT: u32 = 2;
const PROBE_MASK: u64 = (1 << 30) - 1;
const GEN_SHIFT: u32 = 32;

fn pack(state: u64, probes: u64, generation: u64) -> u64 {
    state | (probes & PROBE_MASK) << PROBE_SHIFT | generation << GEN_SHIFT
}

fn state_of(word: u64) -> u64 {
    word & STATE_MASK
}

fn probes_of(word: u64) -> u64 {
    (word >> PROBE_SHIFT) & PROBE_MASK
}

fn generation_of(word: u64) -> u64 {
    word >> GEN_SHIFT
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// The breaker state, as reported by [`Breaker::state`].
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Closed,
    Open,
    HalfOpen,
}

/// One target's breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    authority: String,
    config: BreakerConfig,
    word: AtomicU64,
    failures: AtomicU32,
    /// Nanoseconds since [`epoch`] until which an open breaker refuses calls.
    open_until: AtomicU64,
}

/// Leave to make one attempt. Record its outcome with [`Permit::record`]; a probe permit dropped
/// unrecorded (its call was cancelled) gives its probe back.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    generation: u64,
    probe: bool,
    recorded: bool,
}

impl Breaker {
    pub(crate) fn new(authority: String, config: BreakerConfig) -> Breaker {
        Breaker {
            authority,
            config,
            word: AtomicU64::new(pack(CLOSED, 0, 0)),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    /// The breaker shared by every client of `authority` with this configuration.
    pub(crate) fn shared(authority: &str, config: &BreakerConfig) -> Arc<Breaker> {
        type Registry = Mutex<HashMap<(String, BreakerConfig), Arc<Breaker>>>;
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        let registry = REGISTRY.get_or_init(Registry::default);
        let mut map = registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry((authority.to_owned(), config.clone()))
            .or_insert_with(|| Arc::new(Breaker::new(authority.to_owned(), config.clone())))
            .clone()
    }

    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        match state_of(self.word.load(Ordering::Acquire)) {
            CLOSED => State::Closed,
            OPEN => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// Asks to make an attempt. `Err` carries the time until the next probe.
    pub(crate) fn admit(&self) -> Result<Permit<'_>, Duration> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let generation = generation_of(word);
            let (next, probe) = match state_of(word) {
                CLOSED => return Ok(self.permit(generation, false)),
                OPEN => {
                    let now = now_nanos();
                    let until = self.open_until.load(Ordering::Acquire);
                    if now < until {
                        return Err(Duration::from_nanos(until - now));
                    }
                    // The open period is over: become half-open, taking the first probe.
                    let probes = u64::from(self.config.half_open_probes) - 1;
                    (pack(HALF_OPEN, probes, generation + 1), true)
                }
                _ => {
                    let probes = probes_of(word);
                    if probes == 0 {
                        return Err(Duration::ZERO);
                    }
                    (pack(HALF_OPEN, probes - 1, generation), true)
                }
            };
            match self
                .word
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if state_of(word) == OPEN {
                        tracing::info!(authority = %self.authority, "circuit breaker half-open");
                    }
                    return Ok(self.permit(generation_of(next), probe));
                }
                Err(actual) => word = actual,
            }
        }
    }

    fn permit(&self, generation: u64, probe: bool) -> Permit<'_> {
        Permit {
            breaker: self,
            generation,
            probe,
            recorded: false,
        }
    }

    fn on_success(&self, permit: &Permit<'_>) {
        if permit.probe {
            let from = self.word.load(Ordering::Acquire);
            if state_of(from) == HALF_OPEN
                && generation_of(from) == permit.generation
                && self.transition(from, CLOSED)
            {
                self.failures.store(0, Ordering::Release);
                tracing::info!(authority = %self.authority, "circuit breaker closed");
            }
        } else if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    fn on_failure(&self, permit: &Permit<'_>) {
        let from = self.word.load(Ordering::Acquire);
        if generation_of(from) != permit.generation {
            return;
        }
        let trip = if permit.probe {
            state_of(from) == HALF_OPEN
        } else {
            let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
            state_of(from) == CLOSED && failures >= self.config.failure_threshold
        };
        if trip {
            let until = now_nanos().saturating_add(self.config.open_for.as_nanos() as u64);
            self.open_until.store(until, Ordering::Release);
            if self.transition(from, OPEN) {
                tracing::warn!(
                    authority = %self.authority,
                    open_for = ?self.config.open_for,
                    "circuit breaker opened"
                );
            }
        }
    }

    fn give_back_probe(&self, permit: &Permit<'_>) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (state_of(w) == HALF_OPEN && generation_of(w) == permit.generation)
                    .then(|| pack(HALF_OPEN, probes_of(w) + 1, generation_of(w)))
            });
    }

    /// Moves from exactly `from` to `to` with a new generation; false if someone else moved first.
    fn transition(&self, from: u64, to: u64) -> bool {
        let next = pack(to, 0, generation_of(from) + 1);
        self.word
            .compare_exchange(from, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Permit<'_> {
    /// Records whether the attempt failed, in the breaker's sense.
    pub(crate) fn record(mut self, failure: bool) {
        self.recorded = true;
        if failure {
            self.breaker.on_failure(&self);
        } else {
            self.breaker.on_success(&self);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.give_back_probe(self);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, open_for: Duration, probes: u32) -> Breaker {
        Breaker::new(
            "http://test:1".into(),
            BreakerConfig::default()
                .failure_threshold(threshold)
                .open_for(open_for)
                .half_open_probes(probes),
        )
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(3, Duration::from_secs(60), 1);
        b.admit().unwrap().record(true);
        b.admit().unwrap().record(true);
        b.admit().unwrap().record(false); // a success resets the count
        b.admit().unwrap().record(true);
        b.admit().unwrap().record(true);
        assert_eq!(b.state(), State::Closed);
        b.admit().unwrap().record(true);
        assert_eq!(b.state(), State::Open);
        let wait = b.admit().unwrap_err();
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(60));
    }

    #[test]
    fn half_open_admits_exactly_the_probes_then_closes() {
        let b = breaker(1, Duration::ZERO, 2);
        b.admit().unwrap().record(true);
        assert_eq!(b.state(), State::Open);
        let p1 = b.admit().unwrap();
        assert_eq!(b.state(), State::HalfOpen);
        let p2 = b.admit().unwrap();
        assert_eq!(b.admit().unwrap_err(), Duration::ZERO);
        p1.record(false);
        assert_eq!(b.state(), State::Closed);
        // The second probe's late failure belongs to an older generation: ignored.
        p2.record(true);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn probe_failure_reopens() {
        let b = breaker(1, Duration::from_millis(30), 1);
        b.admit().unwrap().record(true);
        assert!(b.admit().is_err());
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.admit().unwrap();
        assert!(b.admit().is_err(), "only one probe");
        probe.record(true);
        assert_eq!(b.state(), State::Open);
        assert!(b.admit().unwrap_err() > Duration::from_millis(10));
    }

    #[test]
    fn cancelled_probe_is_given_back() {
        let b = breaker(1, Duration::ZERO, 1);
        b.admit().unwrap().record(true);
        drop(b.admit().unwrap());
        assert_eq!(b.state(), State::HalfOpen);
        b.admit()
            .expect("the dropped probe's slot is free again")
            .record(false);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn exactly_n_probes_under_contention() {
        let b = Arc::new(breaker(1, Duration::ZERO, 3));
        b.admit().unwrap().record(true);
        let admitted = AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if let Ok(p) = b.admit() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            std::mem::forget(p); // hold the probe forever
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn registry_shares_per_authority_and_config() {
        let config = BreakerConfig::default();
        let a = Breaker::shared("http://registry-test:1", &config);
        let b = Breaker::shared("http://registry-test:1", &config);
        let c = Breaker::shared("http://registry-test:2", &config);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
