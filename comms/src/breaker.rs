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
use std::fmt;
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

/// A circuit breaker's state, as [`Executor::circuit_state`](crate::Executor::circuit_state)
/// reports it (for health checks and dashboards).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Calls fail fast until the open period ends.
    Open,
    /// Probes are being let through.
    HalfOpen,
}

#[cfg(test)]
use CircuitState as State;

/// One target's breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    authority: String,
    config: BreakerConfig,
    word: AtomicU64,
    failures: AtomicU32,
    /// Nanoseconds since [`epoch`] until which an open breaker refuses calls.
    open_until: AtomicU64,
    /// Other replicas' breakers for the same target, when shared (see [`BreakerSync`]).
    link: Option<Arc<Link>>,
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
            link: None,
        }
    }

    /// The breaker shared by every client of `authority` with this configuration (and this
    /// fleet link, if any).
    pub(crate) fn shared(
        authority: &str,
        config: &BreakerConfig,
        sync: Option<&BreakerSync>,
    ) -> Arc<Breaker> {
        type Key = (String, BreakerConfig, u64);
        static REGISTRY: OnceLock<Mutex<HashMap<Key, Arc<Breaker>>>> = OnceLock::new();
        let registry = REGISTRY.get_or_init(Mutex::default);
        let mut map = registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let link = sync.map(|s| s.link.clone());
        let key = (
            authority.to_owned(),
            config.clone(),
            link.as_ref().map_or(0, |l| l.id),
        );
        map.entry(key)
            .or_insert_with(|| {
                let mut breaker = Breaker::new(authority.to_owned(), config.clone());
                breaker.link = link.clone();
                let breaker = Arc::new(breaker);
                if let Some(link) = &link {
                    link.attach(&breaker);
                }
                breaker
            })
            .clone()
    }

    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    pub(crate) fn state(&self) -> CircuitState {
        match state_of(self.word.load(Ordering::Acquire)) {
            CLOSED => CircuitState::Closed,
            OPEN => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// Whether the breaker is open and stays open for longer than `wait` from now, so that an
    /// attempt made after `wait` would be refused.
    pub(crate) fn open_past(&self, wait: Duration) -> bool {
        state_of(self.word.load(Ordering::Acquire)) == OPEN
            && self.open_until.load(Ordering::Acquire)
                > now_nanos().saturating_add(wait.as_nanos() as u64)
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
                if let Some(link) = &self.link {
                    link.publish(&self.authority, Remote::Closed);
                }
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
                if let Some(link) = &self.link {
                    let until =
                        unix_millis().saturating_add(self.config.open_for.as_millis() as u64);
                    link.publish(
                        &self.authority,
                        Remote::Opened {
                            until_unix_ms: until,
                        },
                    );
                }
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

    /// Applies another replica's transition, without publishing it again.
    ///
    /// A remote open holds this breaker open until the time it names, but never longer than
    /// this breaker's own `open_for` from now: the time comes from another clock and another
    /// configuration, or from whoever can publish on the channel, and must not keep calls
    /// failing fast here indefinitely.
    // Only a fleet backend (the `redis` feature) links breakers across processes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn apply_remote(&self, event: Remote) {
        match event {
            Remote::Opened { until_unix_ms } => {
                let left = Duration::from_millis(until_unix_ms.saturating_sub(unix_millis()))
                    .min(self.config.open_for);
                if left.is_zero() {
                    return;
                }
                let until = now_nanos().saturating_add(left.as_nanos() as u64);
                loop {
                    let from = self.word.load(Ordering::Acquire);
                    if state_of(from) == OPEN {
                        self.open_until.fetch_max(until, Ordering::AcqRel);
                        return;
                    }
                    self.open_until.store(until, Ordering::Release);
                    if self.transition(from, OPEN) {
                        tracing::warn!(authority = %self.authority, "circuit breaker opened by another replica");
                        return;
                    }
                }
            }
            Remote::Closed => loop {
                let from = self.word.load(Ordering::Acquire);
                if state_of(from) == CLOSED {
                    return;
                }
                if self.transition(from, CLOSED) {
                    self.failures.store(0, Ordering::Release);
                    tracing::info!(authority = %self.authority, "circuit breaker closed by another replica");
                    return;
                }
            },
        }
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

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A transition one replica tells the others about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Remote {
    /// Opened until this wall-clock time.
    Opened { until_unix_ms: u64 },
    /// Closed after a successful probe.
    Closed,
}

/// The local end of a fleet-wide breaker channel: publishes this process's transitions and
/// applies the others'.
type Publish = Box<dyn Fn(&str, Remote) + Send + Sync>;

pub(crate) struct Link {
    pub(crate) id: u64,
    publish: Publish,
    members: Mutex<HashMap<String, Vec<std::sync::Weak<Breaker>>>>,
    /// Whether the backend currently delivers other replicas' transitions.
    pub(crate) connected: std::sync::atomic::AtomicBool,
}

impl Link {
    // Only a fleet backend (the `redis` feature) links breakers across processes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn new(publish: impl Fn(&str, Remote) + Send + Sync + 'static) -> Link {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Link {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            publish: Box::new(publish),
            members: Mutex::default(),
            connected: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn attach(&self, breaker: &Arc<Breaker>) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members
            .entry(breaker.authority.clone())
            .or_default()
            .push(Arc::downgrade(breaker));
    }

    fn publish(&self, authority: &str, event: Remote) {
        (self.publish)(authority, event);
    }

    /// Applies a transition another replica published for `authority`.
    // Only a fleet backend (the `redis` feature) links breakers across processes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn apply(&self, authority: &str, event: Remote) {
        let breakers: Vec<Arc<Breaker>> = {
            let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
            members
                .get(authority)
                .map(|v| v.iter().filter_map(std::sync::Weak::upgrade).collect())
                .unwrap_or_default()
        };
        for breaker in breakers {
            breaker.apply_remote(event);
        }
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Shares breaker transitions between the replicas of a service, so that when one replica's
/// breaker for a target opens, every replica's does, and they close together after a
/// successful probe. Made by a fleet backend such as `comms::redis::share_breakers`; pass it
/// to [`ExecutorBuilder::breaker_sync`](crate::ExecutorBuilder::breaker_sync).
///
/// An open announced by another replica holds this replica's breaker open until the time it
/// names, but never longer than this replica's own
/// [`open_for`](BreakerConfig::open_for) from when it arrives: a replica configured otherwise,
/// a skewed clock or a forged message cannot keep it open longer than a local failure would.
/// When the backend is unreachable each replica's breaker keeps working on its own.
#[derive(Clone, Debug)]
pub struct BreakerSync {
    pub(crate) link: Arc<Link>,
}

impl BreakerSync {
    /// Whether other replicas' transitions are being received right now.
    pub fn is_connected(&self) -> bool {
        self.link.connected.load(Ordering::Acquire)
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
    fn linked_breakers_open_and_close_together() {
        // Two "replicas" whose links deliver to each other directly.
        type Slot = Arc<Mutex<Option<Arc<Link>>>>;
        let (to_a, to_b): (Slot, Slot) = Default::default();
        let (ta, tb) = (to_a.clone(), to_b.clone());
        let a = BreakerSync {
            link: Arc::new(Link::new(move |auth, ev| {
                if let Some(l) = tb.lock().unwrap().as_ref() {
                    l.apply(auth, ev)
                }
            })),
        };
        let b = BreakerSync {
            link: Arc::new(Link::new(move |auth, ev| {
                if let Some(l) = ta.lock().unwrap().as_ref() {
                    l.apply(auth, ev)
                }
            })),
        };
        *to_a.lock().unwrap() = Some(a.link.clone());
        *to_b.lock().unwrap() = Some(b.link.clone());
        let config = BreakerConfig::default()
            .failure_threshold(2)
            .open_for(Duration::from_millis(50));
        let ba = Breaker::shared("http://linked:1", &config, Some(&a));
        let bb = Breaker::shared("http://linked:1", &config, Some(&b));
        assert!(!Arc::ptr_eq(&ba, &bb), "one breaker per replica");
        ba.admit().unwrap().record(true);
        ba.admit().unwrap().record(true);
        assert_eq!(ba.state(), State::Open);
        assert_eq!(bb.state(), State::Open, "b opened with a");
        assert!(bb.admit().is_err());
        std::thread::sleep(Duration::from_millis(60));
        bb.admit().unwrap().record(false);
        assert_eq!(bb.state(), State::Closed);
        assert_eq!(ba.state(), State::Closed, "a closed with b's probe");
    }

    #[test]
    fn a_remote_open_lasts_no_longer_than_the_local_open_for() {
        let sync = BreakerSync {
            link: Arc::new(Link::new(|_, _| {})),
        };
        let open_for = Duration::from_millis(200);
        let config = BreakerConfig::default().open_for(open_for);
        let b = Breaker::shared("http://remote-clamp:1", &config, Some(&sync));
        let apply = |until_unix_ms| {
            sync.link
                .apply("http://remote-clamp:1", Remote::Opened { until_unix_ms })
        };
        // A shorter remote open is taken as it is.
        apply(unix_millis() + 50);
        assert_eq!(b.state(), State::Open);
        assert!(b.admit().unwrap_err() <= Duration::from_millis(50));
        // A replica open for an hour, a clock a day ahead, a forged "forever", again and
        // again: each holds this breaker open for at most its own open_for.
        for until in [
            unix_millis() + 3_600_000,
            unix_millis() + 86_400_000,
            u64::MAX,
        ] {
            apply(until);
            assert_eq!(b.state(), State::Open);
            let wait = b.admit().unwrap_err();
            assert!(wait <= open_for, "{wait:?}");
        }
        // Once that has passed, a probe goes through and closes it.
        std::thread::sleep(open_for + Duration::from_millis(50));
        b.admit()
            .expect("a probe after the local open period")
            .record(false);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn registry_shares_per_authority_and_config() {
        let config = BreakerConfig::default();
        let a = Breaker::shared("http://registry-test:1", &config, None);
        let b = Breaker::shared("http://registry-test:1", &config, None);
        let c = Breaker::shared("http://registry-test:2", &config, None);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
