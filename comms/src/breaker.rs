//! The circuit breaker: a dead dependency fails fast instead of piling up waiting calls.
//!
//! States: **closed** (calls flow; consecutive failures are counted), **open** (calls fail with
//! [`Error::CircuitOpen`](crate::Error::CircuitOpen) without touching the network, until the
//! open period ends), **half-open** (exactly `half_open_probes` calls are let through; the first
//! probe to succeed closes the breaker, a probe failure reopens it).
//!
//! A call dropped by its caller (an outer `tokio::time::timeout`, a `select!`) ends its attempt
//! without an outcome. A probe its caller waited for and then dropped counts as a failed probe:
//! it was sent to the dependency and no answer came in time, and giving it back would let every
//! impatient caller through as "the" probe. It was waited for when the call was polled again
//! while it was in flight, or a millisecond has passed since it was sent, however the caller
//! stopped. A probe dropped before it was sent, or at once in the poll that sent it (a
//! `try_join!` ending on a sibling call's `CircuitOpen`), gives its place back: nobody waited
//! for it, so it says nothing of the dependency. In the closed state a dropped attempt counts
//! for nothing: the caller may have stopped waiting for its own reasons (another answer came
//! first), and counting that would open the breaker of a healthy dependency.
//!
//! A timeout at the call's deadline, when that comes before the attempt timeout, is the caller
//! running out of time, and says nothing of the target: it counts for nothing in the closed
//! state, and a probe cut short gives its place back. Deadlines travel between services, so a
//! request that arrives with little time left would otherwise count against a healthy
//! dependency: a few of them would open its breaker for every caller in the process (and, with
//! `share_breakers`, the fleet), and one would reopen it when it was the probe. So it is the
//! attempt timeout (the client's, or a method's `timeout_ms`) that makes a dependency that
//! hangs trip its breaker: give it a value that a healthy dependency answers within. The same
//! goes for a header hook that takes over half the attempt timeout: a request it left less than
//! half of that timeout to says nothing of the target when it times out. While a
//! hung dependency's breaker is half-open, callers in a hurry take the probe's place one at a
//! time (the others fail fast), until a probe with the attempt timeout to spare fails it.
//!
//! A probe's call that is kept but no longer polled (a `tokio::pin!`ed call that lost a
//! `select!` and stays in scope) cannot record anything, nor drop its permit, and would hold
//! the breaker half-open, refusing every call, for as long as it is kept. So each probe tells
//! the breaker when its verdict is due (its attempt timeout, plus [`PROBE_GRACE`]); a call
//! that finds every probe taken and all of them overdue starts the half-open period over, in
//! a new generation, with fresh probes. A probe with no attempt timeout (`Duration::MAX`), or
//! one longer than [`PROBE_HOLD_MAX`], holds its place for that long at most, so that a probe
//! of a hung dependency, polled or not, does not hold the breaker half-open for ever. A probe
//! overtaken this way that answers after all still speaks for the target if it succeeded: its
//! success closes the breaker while the half-open period it began in lasts.
//!
//! The state, the remaining probes, the half-open period's restarts and a generation number
//! share one `AtomicU64`, so every transition is a single compare-and-swap (whether a late
//! probe belongs to the period it would close among them) and admission on the closed path is
//! one atomic load, with no lock. The probes' due time is tagged with its generation, so it is
//! never reset, and no reset can race a probe beginning. The generation makes late results harmless: an outcome recorded for a permit
//! issued before the last transition changes nothing, but for the late success of a probe
//! overtaken within its half-open period, which closes the breaker.
//!
//! One breaker exists per target authority (scheme, host, port) and configuration, shared by
//! every client in the process, so all clients of a dead host learn of it together.
//!
//! What the one word holds is read and written only through `state::Word`; sharing transitions
//! with other replicas' breakers (`BreakerSync`, `Link`, applying a remote transition) lives in
//! `link.rs`.

mod link;
mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use link::BreakerSync;
pub(crate) use link::{Link, Remote, unix_millis};
use state::{State, Word};

/// When a target's breaker opens, and how it recovers.
///
/// A failed attempt is one that got no response (a connection failure, a broken one, the
/// attempt timeout) or a 500, 502, 503 or 504. A call its caller drops (an outer
/// `tokio::time::timeout`, a `select!`) counts for nothing while the breaker is closed, since
/// the caller may have stopped waiting for its own reasons, and so does an attempt cut short by
/// the call's deadline (its own, a view's, or one inherited from the request being served)
/// before its attempt timeout, or by what a header hook left of the attempt timeout (less than
/// half of it): a caller in a hurry says nothing of the target. Bound calls
/// with an attempt timeout for a hanging dependency to open its breaker. A half-open probe
/// dropped after its caller waited for it counts as failed; one dropped before that (before it
/// was sent, or in the poll that sent it), or cut short by its deadline, gives its place back.
/// A probe holds its place until its attempt timeout, and a minute at most: past that, the next
/// call probes afresh, and an overtaken probe that succeeds while the breaker is still
/// half-open closes it all the same.
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

    /// How many calls are let through while half-open. At least 1, at most 4,194,303 (what
    /// the breaker's one word counts).
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = n.clamp(1, state::MAX_PROBES);
        self
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    nanos(epoch().elapsed())
}

/// `d` in nanoseconds, as many as a `u64` holds (584 years): a longer `open_for` is that long,
/// not what is left of it past a `u64`.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A circuit breaker's state, as [`Executor::circuit_state`](crate::Executor::circuit_state)
/// reports it (for health checks and dashboards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Calls fail fast until the open period ends.
    Open,
    /// Probes are being let through.
    HalfOpen,
}

/// One target's breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    authority: String,
    config: BreakerConfig,
    /// The state, the probes left and the generation, packed (see [`Word`]).
    word: AtomicU64,
    failures: AtomicU32,
    /// Nanoseconds since [`epoch`] until which an open breaker refuses calls.
    open_until: AtomicU64,
    /// Nanoseconds since [`epoch`] of the last failure counted (0 for none): how long a
    /// breaker no client holds keeps what it knows (see [`Breaker::forgettable`]).
    last_failure: AtomicU64,
    /// When the verdicts of the probes that began their attempts in one half-open generation
    /// are due, were their calls polled: the latest of their attempt timeouts (each at most
    /// [`PROBE_HOLD_MAX`]), plus [`PROBE_GRACE`]; with that generation, so that no reset is
    /// needed, and none can race a probe beginning (see [`Due`]). Past it, with no probe left,
    /// the probes out are taken for calls no longer polled or waiting on a hung dependency
    /// (see [`Breaker::admit`]).
    probes_due: AtomicU64,
    /// Other replicas' breakers for the same target, when shared (see [`BreakerSync`]). Weak:
    /// the clients using the sync keep it (and its tasks) alive, not the process-wide registry.
    link: Option<std::sync::Weak<Link>>,
}

/// Leave to make one attempt. Record its outcome with [`Permit::record`]; a probe permit dropped
/// unrecorded (its call was cancelled) gives its probe back unless its request was waited for,
/// and is a failed probe if it was (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    generation: u32,
    probe: bool,
    recorded: bool,
    /// When its request was handed over to be sent, in nanoseconds since [`epoch`] (at least
    /// 1); 0 until then, and for a permit that is no probe.
    sending_since: u64,
    /// Its request was waited for: the call was polled again while it was in flight, or its
    /// response head arrived.
    waited: bool,
}

/// The breakers clients share: by authority, then by configuration and fleet link.
#[derive(Default)]
struct Registry {
    targets: HashMap<String, Vec<Registered>>,
    /// How many breakers `targets` holds.
    len: usize,
    /// How many it held after the last sweep, and when that was (in nanoseconds since
    /// [`epoch`]; `None` before the first).
    kept: usize,
    swept_at: Option<u64>,
    /// How many sweeps walked it.
    #[cfg(test)]
    sweeps: usize,
}

/// One breaker of a target in the [`Registry`].
struct Registered {
    config: BreakerConfig,
    /// The fleet link's id, 0 for none.
    link_id: u64,
    breaker: Arc<Breaker>,
}

/// The process's [`Registry`].
fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

impl Registry {
    /// Whether a breaker is let go: one of a sync every client has let go of, or one no client
    /// holds (only the registry hands out more) once what it knows is stale, so that a process
    /// calling many hosts over its life keeps breakers only for those in use or recently in
    /// trouble. (Another replica's open for its target is kept by the link for the next one.)
    fn let_go(registered: &Registered, now: u64) -> bool {
        let breaker = &registered.breaker;
        if registered.link_id != 0 && breaker.link.as_ref().is_none_or(|l| l.strong_count() == 0) {
            return true;
        }
        Arc::strong_count(breaker) == 1 && breaker.forgettable(now)
    }

    /// Lets go of the breakers [`let_go`](Self::let_go) says, when a second has passed since the
    /// last sweep or the registry has doubled since: a client built per call costs a constant,
    /// not a walk over every target the process has called.
    fn sweep(&mut self, now: u64) {
        let recent = self
            .swept_at
            .is_some_and(|at| now.saturating_sub(at) < nanos(Duration::from_secs(1)));
        if recent && self.len < self.kept.saturating_mul(2).max(64) {
            return;
        }
        self.targets.retain(|_, breakers| {
            breakers.retain(|registered| !Self::let_go(registered, now));
            !breakers.is_empty()
        });
        // The table a crowd of targets grew is given back once they are gone.
        if self.targets.capacity() > 4 * self.targets.len().max(16) {
            self.targets.shrink_to_fit();
        }
        self.len = self.targets.values().map(Vec::len).sum();
        self.kept = self.len;
        self.swept_at = Some(now);
        #[cfg(test)]
        {
            self.sweeps += 1;
        }
    }

    /// Makes the next [`sweep`](Self::sweep) walk the registry.
    #[cfg(test)]
    fn sweep_next() {
        registry()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .swept_at = None;
    }

    /// The authorities of the breakers it holds, once for each.
    #[cfg(test)]
    fn authorities(&self) -> impl Iterator<Item = (&str, u64)> {
        self.targets.iter().flat_map(|(authority, breakers)| {
            breakers.iter().map(|r| (authority.as_str(), r.link_id))
        })
    }
}

/// How long a breaker no client holds keeps the failures it counted, or its open state, after
/// the last of them: past that, the host's next client starts with a new breaker.
const FORGET_AFTER: Duration = Duration::from_secs(10 * 60);

/// How long after its request was handed over a probe dropped unanswered counts as waited for,
/// however its caller stopped (a `select!` whose other branch won, a task aborted, never
/// polled again): a millisecond, well past the poll that sent it (in which a `try_join!` drops
/// it on its sibling's refusal) and short of any answer a caller could have meant to wait for.
const PROBE_WAITED: Duration = Duration::from_millis(1);

/// How long past its attempt timeout a probe whose call is still alive but no longer polled (a
/// `select!` that went on with its future kept, pinned) holds its place: its own timer fires at
/// the timeout when it is polled, so only a call nobody polls, or a thread held up this long,
/// comes this far.
const PROBE_GRACE: Duration = Duration::from_secs(1);

/// The longest a probe holds its place, whatever its attempt timeout: one with none
/// (`Duration::MAX`) or a longer one, waiting on a hung dependency, would otherwise keep every
/// call to the target refused for as long as it waits, after the dependency recovered too.
const PROBE_HOLD_MAX: Duration = Duration::from_secs(60);

/// When the probes of one half-open generation have their verdicts due, packed in one `u64`:
/// milliseconds since [`epoch`] (40 bits, 34 years) and the generation's low 24 bits. Tagged
/// with its generation, it needs no reset when a period begins, which a probe already begun
/// could race (a reset landing after it would leave its due time unknown, and its place held
/// for ever); a probe of an older generation cannot replace a newer one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Due {
    at: u64,
    generation: u32,
}

impl Due {
    const GENERATION_BITS: u32 = 24;
    const GENERATION_MASK: u32 = (1 << Self::GENERATION_BITS) - 1;
    const MAX_AT: u64 = (1 << 40) - 1;

    /// Milliseconds since [`epoch`], the unit due times are kept in.
    fn now() -> u64 {
        now_nanos() / 1_000_000
    }

    /// The part of `generation` a due time is tagged with.
    fn tag(generation: u32) -> u32 {
        generation & Self::GENERATION_MASK
    }

    /// Whether tag `a` is of a later generation than tag `b` (wrapping, within half the range).
    fn newer(a: u32, b: u32) -> bool {
        let ahead = a.wrapping_sub(b) & Self::GENERATION_MASK;
        ahead != 0 && ahead < 1 << (Self::GENERATION_BITS - 1)
    }

    fn pack(self) -> u64 {
        // Never 0, which stands for none: `at` is at least the grace past the epoch.
        self.at << Self::GENERATION_BITS | u64::from(self.generation)
    }

    fn unpack(packed: u64) -> Option<Due> {
        (packed != 0).then_some(Due {
            at: packed >> Self::GENERATION_BITS,
            generation: (packed as u32) & Self::GENERATION_MASK,
        })
    }
}

/// `d` in whole milliseconds, as many as a `u64` holds.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Breaker {
    pub(crate) fn new(authority: String, config: BreakerConfig) -> Breaker {
        Breaker {
            authority,
            config,
            word: AtomicU64::new(Word::INITIAL.pack()),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            probes_due: AtomicU64::new(0),
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
        let now = now_nanos();
        let mut guard = registry()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let registry = &mut *guard;
        registry.sweep(now);
        let link = sync.map(|s| s.link.clone());
        let link_id = link.as_ref().map_or(0, |l| l.id);
        if let Some(breakers) = registry.targets.get_mut(authority) {
            // This target's breakers that a sweep now would let go are let go first (a few at
            // most): a stale one is not handed out, and one of a link no client holds, or of
            // another config, does not make the next one a second for the state gauge.
            let before = breakers.len();
            breakers.retain(|registered| !Registry::let_go(registered, now));
            registry.len -= before - breakers.len();
            if let Some(found) = breakers
                .iter()
                .find(|r| r.link_id == link_id && r.config == *config)
            {
                return Arc::clone(&found.breaker);
            }
        }
        // The state gauge is the target's: it starts at closed with the target's first breaker,
        // not with another (of another config) beside one that may be open; and before the
        // breaker is linked, so that an open another replica has for the target, applied then,
        // comes after it.
        let first_for_target = registry.targets.get(authority).is_none_or(Vec::is_empty);
        let mut breaker = Breaker::new(authority.to_owned(), config.clone());
        breaker.link = link.as_ref().map(Arc::downgrade);
        let breaker = Arc::new(breaker);
        if first_for_target {
            crate::telemetry::breaker_made(authority);
        }
        if let Some(link) = &link {
            link.attach(&breaker);
        }
        registry
            .targets
            .entry(authority.to_owned())
            .or_default()
            .push(Registered {
                config: config.clone(),
                link_id,
                breaker: Arc::clone(&breaker),
            });
        registry.len += 1;
        breaker
    }

    /// Whether the breaker, at `now`, knows nothing a new one should: it is closed with no
    /// failure counted, or its last failure, and the end of its last open period, are more than
    /// [`FORGET_AFTER`] past. A failing host's next client, built soon after the last one was
    /// dropped (a client made per call, say), still finds its failures and its open breaker.
    fn forgettable(&self, now: u64) -> bool {
        let state = Word::unpack(self.word.load(Ordering::Acquire)).state;
        if state == State::Closed && self.failures.load(Ordering::Acquire) == 0 {
            return true;
        }
        let last = self
            .last_failure
            .load(Ordering::Acquire)
            .max(self.open_until.load(Ordering::Acquire));
        now.saturating_sub(last) > nanos(FORGET_AFTER)
    }

    /// The fleet link, while some client still uses it.
    fn link(&self) -> Option<Arc<Link>> {
        self.link.as_ref().and_then(std::sync::Weak::upgrade)
    }

    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    pub(crate) fn state(&self) -> CircuitState {
        match Word::unpack(self.word.load(Ordering::Acquire)).state {
            State::Closed => CircuitState::Closed,
            State::Open => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether an attempt made `wait` from now would be refused, as things stand: the breaker
    /// is open past then, or half-open with every probe taken (whose outcome nobody can
    /// foresee; a call arriving now is refused as well).
    pub(crate) fn refuses_after(&self, wait: Duration) -> bool {
        match Word::unpack(self.word.load(Ordering::Acquire)).state {
            State::Closed => false,
            State::Open => {
                self.open_until.load(Ordering::Acquire) > now_nanos().saturating_add(nanos(wait))
            }
            State::HalfOpen { probes } => probes == 0,
        }
    }

    /// Asks to make an attempt. `Err` carries the time until the next probe.
    pub(crate) fn admit(&self) -> Result<Permit<'_>, Duration> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let from = Word::unpack(word);
            let next = match from.state {
                State::Closed => return Ok(self.permit(from.generation, false)),
                State::Open => {
                    let now = now_nanos();
                    let until = self.open_until.load(Ordering::Acquire);
                    if now < until {
                        return Err(Duration::from_nanos(until - now));
                    }
                    // The open period is over: become half-open, taking the first probe.
                    let probes = self.config.half_open_probes - 1;
                    from.next(State::HalfOpen { probes })
                }
                State::HalfOpen { probes } => {
                    if probes == 0 {
                        if self.probes_overdue(from.generation) {
                            self.probe_afresh(from.generation);
                            word = self.word.load(Ordering::Acquire);
                            continue;
                        }
                        return Err(Duration::ZERO);
                    }
                    from.with(State::HalfOpen { probes: probes - 1 })
                }
            };
            match self.word.compare_exchange_weak(
                word,
                next.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if from.state == State::Open {
                        tracing::info!(authority = %self.authority, "circuit breaker half-open");
                        crate::telemetry::breaker_changed(&self.authority, CircuitState::HalfOpen);
                    }
                    return Ok(self.permit(next.generation, true));
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Whether every probe out in half-open `generation` has outlived its attempt timeout (at
    /// most [`PROBE_HOLD_MAX`]) by [`PROBE_GRACE`]: its call, were it polled, would have
    /// recorded a verdict by now, or it waits on a dependency that has not answered in a
    /// minute. False while none of them has begun.
    fn probes_overdue(&self, generation: u32) -> bool {
        Due::unpack(self.probes_due.load(Ordering::Acquire))
            .is_some_and(|due| due.generation == Due::tag(generation) && Due::now() > due.at)
    }

    /// Starts half-open `generation` over with all its probes: those out belong to calls that
    /// are alive but no longer polled (kept by a `select!` that went on without them), or wait
    /// with no attempt timeout on a dependency that does not answer, and would otherwise hold
    /// the breaker half-open, refusing every call, until they are dropped. What they say of
    /// the target is unknown, so fresh probes ask. Their late failures belong to the old
    /// generation and change nothing; a late success closes the breaker (see
    /// [`Breaker::close_half_open`]).
    fn probe_afresh(&self, generation: u32) {
        let probes = self.config.half_open_probes;
        let restarted = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let word = Word::unpack(w);
                (word.state == State::HalfOpen { probes: 0 } && word.generation == generation)
                    .then(|| word.restarted(probes).pack())
            })
            .is_ok();
        if restarted {
            tracing::warn!(
                authority = %self.authority,
                "a half-open probe went unanswered past its attempt timeout (at most a minute); \
                 probing afresh"
            );
        }
    }

    fn permit(&self, generation: u32, probe: bool) -> Permit<'_> {
        Permit {
            breaker: self,
            generation,
            probe,
            recorded: false,
            sending_since: 0,
            waited: false,
        }
    }

    fn on_success(&self, permit: &Permit<'_>) {
        if permit.probe {
            if self.close_half_open(permit.generation) {
                self.failures.store(0, Ordering::Release);
                tracing::info!(authority = %self.authority, "circuit breaker closed");
                crate::telemetry::breaker_changed(&self.authority, CircuitState::Closed);
                if let Some(link) = self.link() {
                    link.publish(&self.authority, Remote::Closed);
                }
            }
        } else if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    fn on_failure(&self, permit: &Permit<'_>) {
        let from = self.word.load(Ordering::Acquire);
        let word = Word::unpack(from);
        if word.generation != permit.generation {
            return;
        }
        let now = now_nanos();
        self.last_failure.store(now, Ordering::Release);
        let trip = if permit.probe {
            matches!(word.state, State::HalfOpen { .. })
        } else {
            let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
            word.state == State::Closed && failures >= self.config.failure_threshold
        };
        if trip {
            let until = now.saturating_add(nanos(self.config.open_for));
            self.open_until.store(until, Ordering::Release);
            let opened = if permit.probe {
                self.end_half_open(permit.generation, State::Open)
            } else {
                // Closed, the word cannot change but by a transition.
                self.transition(from, State::Open)
            };
            if opened {
                // Counted afresh once closed again: a failure recorded between the closing
                // transition and a reset there would otherwise find the old count.
                self.failures.store(0, Ordering::Release);
                tracing::warn!(
                    authority = %self.authority,
                    open_for = ?self.config.open_for,
                    "circuit breaker opened"
                );
                crate::telemetry::breaker_changed(&self.authority, CircuitState::Open);
                if let Some(link) = self.link() {
                    let until = unix_millis().saturating_add(
                        u64::try_from(self.config.open_for.as_millis()).unwrap_or(u64::MAX),
                    );
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
                let word = Word::unpack(w);
                match word.state {
                    State::HalfOpen { probes } if word.generation == permit.generation => {
                        Some(word.with(State::HalfOpen { probes: probes + 1 }).pack())
                    }
                    _ => None,
                }
            });
    }

    /// Moves the breaker, half-open in `generation`, to `to` with a new generation, however
    /// many probes are taken and given back meanwhile (they change the word, not the state);
    /// false once another transition came first.
    fn end_half_open(&self, generation: u32, to: State) -> bool {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let word = Word::unpack(w);
                (matches!(word.state, State::HalfOpen { .. }) && word.generation == generation)
                    .then(|| word.next(to).pack())
            })
            .is_ok()
    }

    /// Closes the breaker on the success of a probe let through in `generation`: while it is
    /// half-open in that generation, or in a later one of the same half-open period, begun
    /// afresh while the probe was out (its success only came late; the word counts the
    /// restarts, so the check is part of the swap). False once it is not.
    fn close_half_open(&self, generation: u32) -> bool {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let word = Word::unpack(w);
                word.in_period(generation)
                    .then(|| word.next(State::Closed).pack())
            })
            .is_ok()
    }

    /// Moves from exactly `from` to `to` with a new generation; false if someone else moved first.
    fn transition(&self, from: u64, to: State) -> bool {
        let next = Word::unpack(from).next(to).pack();
        self.word
            .compare_exchange(from, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Permit<'_> {
    /// Marks the attempt as begun, under a time limit of `limit`: a probe's verdict is due by
    /// then, or by [`PROBE_HOLD_MAX`] when that is sooner (see `Breaker::probes_overdue`).
    pub(crate) fn begun(&mut self, limit: Duration) {
        if !self.probe {
            return;
        }
        let due = Due {
            at: Due::now()
                .saturating_add(millis(limit.min(PROBE_HOLD_MAX)))
                .saturating_add(millis(PROBE_GRACE))
                .min(Due::MAX_AT),
            generation: Due::tag(self.generation),
        };
        // Kept when it is this generation's latest, or the first of a newer generation; a
        // probe of an older one (its period over) leaves a newer generation's alone.
        let _ =
            self.breaker
                .probes_due
                .fetch_update(
                    Ordering::AcqRel,
                    Ordering::Acquire,
                    |packed| match Due::unpack(packed) {
                        Some(kept) if kept.generation == due.generation => {
                            (due.at > kept.at).then(|| due.pack())
                        }
                        Some(kept) if !Due::newer(due.generation, kept.generation) => None,
                        _ => Some(due.pack()),
                    },
                );
    }

    /// Marks the attempt's request as handed over to be sent: a probe dropped unrecorded from
    /// [`PROBE_WAITED`] on is a failed one.
    pub(crate) fn sending(&mut self) {
        if self.probe {
            self.sending_since = now_nanos().max(1);
        }
    }

    /// Marks the attempt's request as waited for: dropped unrecorded from now on, a probe is a
    /// failed one.
    pub(crate) fn waited(&mut self) {
        self.waited = true;
    }

    /// Records an attempt that says nothing of the target: its caller's deadline cut it short
    /// before the attempt timeout. Neither a failure nor a success; a probe's place is given
    /// back, for a caller with more time to probe.
    pub(crate) fn no_verdict(mut self) {
        self.recorded = true;
        if self.probe {
            self.breaker.give_back_probe(&self);
        }
    }

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
        if self.recorded || !self.probe {
            return;
        }
        let waited = self.waited
            || (self.sending_since > 0
                && now_nanos().saturating_sub(self.sending_since) >= nanos(PROBE_WAITED));
        match waited {
            true => self.breaker.on_failure(self),
            false => self.breaker.give_back_probe(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CircuitState as State;
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
    fn the_registry_lets_go_of_breakers_no_client_holds_and_that_know_nothing() {
        let config = BreakerConfig::default();
        let held: Vec<_> = (0..100)
            .map(|i| Breaker::shared(&format!("http://let-go-{i}:1"), &config, None))
            .collect();
        let troubled = Breaker::shared("http://let-go-troubled:1", &config, None);
        troubled.admit().unwrap().record(true);
        drop((held, troubled));
        // The next client's lookup tidies up, its sweep due.
        Registry::sweep_next();
        let _other = Breaker::shared("http://let-go-other:1", &config, None);
        let map = registry().lock().unwrap();
        let names: Vec<_> = map
            .authorities()
            .map(|(authority, _)| authority)
            .filter(|authority| authority.starts_with("http://let-go-"))
            .collect();
        assert_eq!(
            names.len(),
            2,
            "the troubled one and the one in use: {names:?}"
        );
        drop(map);
        // The failure counted is still there for the next client of that host.
        let again = Breaker::shared("http://let-go-troubled:1", &config, None);
        assert_eq!(again.failures.load(Ordering::Acquire), 1);
    }

    /// The registry's table, grown by thousands of targets no client holds any more, is given
    /// back by the sweep that lets them go.
    #[test]
    fn a_sweep_gives_back_the_table_a_crowd_of_targets_grew() {
        let mut registry = Registry::default();
        for i in 0..4_000 {
            let authority = format!("http://crowd-{i}:1");
            let breaker = Arc::new(Breaker::new(authority.clone(), BreakerConfig::default()));
            registry
                .targets
                .entry(authority)
                .or_default()
                .push(Registered {
                    config: BreakerConfig::default(),
                    link_id: 0,
                    breaker,
                });
            registry.len += 1;
        }
        let grown = registry.targets.capacity();
        assert!(grown >= 4_000);
        registry.sweep(now_nanos());
        assert_eq!(registry.len, 0);
        assert!(
            registry.targets.capacity() < grown / 10,
            "{}",
            registry.targets.capacity()
        );
    }

    /// A client built per call does not walk every target the process has called: the
    /// registry is swept at most once a second, or when it has doubled.
    #[test]
    fn the_registry_is_not_swept_at_every_lookup() {
        let config = BreakerConfig::default().failure_threshold(17);
        let sweeps = || registry().lock().unwrap().sweeps;
        Registry::sweep_next();
        let first = Breaker::shared("http://sweep-0:1", &config, None);
        let before = sweeps();
        let held: Vec<_> = (1..40)
            .map(|i| Breaker::shared(&format!("http://sweep-{i}:1"), &config, None))
            .collect();
        // Other tests' lookups meanwhile may find a second passed or the registry doubled,
        // and two other tests ask for a sweep: a few sweeps, not one a lookup.
        let walked = sweeps() - before;
        assert!(walked < 10, "{walked} sweeps for 39 lookups");
        drop((first, held));
    }

    #[test]
    fn what_a_breaker_no_client_holds_knows_goes_stale() {
        let forget = nanos(FORGET_AFTER);
        let b = breaker(3, Duration::from_secs(60), 1);
        assert!(b.forgettable(0), "a new breaker knows nothing");

        b.admit().unwrap().record(true);
        let failed = b.last_failure.load(Ordering::Acquire);
        assert!(
            !b.forgettable(failed + forget),
            "a failure is kept for a while"
        );
        assert!(b.forgettable(failed + forget + 1), "and then forgotten");

        // Open, it is kept until its open period has been over for as long.
        b.admit().unwrap().record(true);
        b.admit().unwrap().record(true);
        assert_eq!(b.state(), CircuitState::Open);
        let until = b.open_until.load(Ordering::Acquire);
        assert!(until >= b.last_failure.load(Ordering::Acquire) + nanos(Duration::from_secs(60)));
        assert!(!b.forgettable(until + forget));
        assert!(b.forgettable(until + forget + 1));

        // One that opens for ever is never forgotten.
        let b = breaker(1, Duration::MAX, 1);
        b.admit().unwrap().record(true);
        assert!(!b.forgettable(u64::MAX));

        // A success ends what the failures said.
        let b = breaker(3, Duration::from_secs(60), 1);
        b.admit().unwrap().record(true);
        b.admit().unwrap().record(false);
        assert!(b.forgettable(0));
    }

    /// Makes the breaker half-open with its one probe out, begun under `limit`.
    fn half_open_with_probe(b: &Breaker, limit: Duration) -> Permit<'_> {
        b.admit().unwrap().record(true);
        b.open_until.store(0, Ordering::Release);
        let mut probe = b.admit().unwrap();
        probe.begun(limit);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(b.admit().is_err(), "its one probe is out");
        probe
    }

    /// When the probes of `b`'s current generation are due.
    fn due(b: &Breaker) -> Due {
        let due = Due::unpack(b.probes_due.load(Ordering::Acquire)).expect("a probe has begun");
        let generation = Word::unpack(b.word.load(Ordering::Acquire)).generation;
        assert_eq!(due.generation, Due::tag(generation));
        due
    }

    /// Makes the probes out in `b`'s current generation overdue, as if their hold ran out.
    fn overdue(b: &Breaker) {
        let generation = Word::unpack(b.word.load(Ordering::Acquire)).generation;
        let past = Due {
            at: 1,
            generation: Due::tag(generation),
        };
        b.probes_due.store(past.pack(), Ordering::Release);
    }

    #[test]
    fn a_probe_with_no_attempt_timeout_holds_its_place_a_minute_at_most() {
        let b = breaker(1, Duration::from_secs(60), 1);
        let began = Due::now();
        let _probe = half_open_with_probe(&b, Duration::MAX);
        let most = began + millis(PROBE_HOLD_MAX) + millis(PROBE_GRACE) + 1_000;
        let at = due(&b).at;
        assert!(at > began && at <= most, "due {at}, at most {most}");
        // A shorter attempt timeout is its own.
        let b = breaker(1, Duration::from_secs(60), 1);
        let began = Due::now();
        let _probe = half_open_with_probe(&b, Duration::from_secs(2));
        let after = due(&b).at - began;
        assert!((3_000..4_000).contains(&after), "{after}");
    }

    #[test]
    fn due_times_are_their_generations_and_never_reset() {
        // Two probes of one generation: the later due time is kept.
        let b = breaker(1, Duration::from_secs(60), 2);
        let mut short = half_open_with_two(&b);
        let mut long = b.admit().unwrap();
        long.begun(Duration::from_secs(30));
        short.begun(Duration::from_secs(1));
        let first = due(&b);
        assert!(first.at >= Due::now() + 30_000, "{first:?}");
        // A probe of an older generation begins late (its period ended): it leaves the newer
        // generation's due time alone, as a racing reset could not, since there is none.
        overdue(&b);
        let mut fresh = b.admit().expect("probing afresh");
        fresh.begun(Duration::from_secs(5));
        let newer = due(&b);
        let current = Word::unpack(b.word.load(Ordering::Acquire)).generation;
        let mut stale = b.permit(current.wrapping_sub(1), true);
        stale.begun(Duration::from_secs(50));
        assert_eq!(due(&b), newer);
        drop((short, long, fresh, stale));
        // Tags compare across their wrap.
        assert!(Due::newer(0, Due::GENERATION_MASK));
        assert!(!Due::newer(Due::GENERATION_MASK, 0));
        assert!(!Due::newer(5, 5));
        assert_eq!(Due::unpack(0), None);
        let packed = Due {
            at: Due::MAX_AT,
            generation: Due::GENERATION_MASK,
        };
        assert_eq!(Due::unpack(packed.pack()), Some(packed));
    }

    /// Makes the breaker half-open, with two probes: returns the first, not yet begun.
    fn half_open_with_two(b: &Breaker) -> Permit<'_> {
        b.admit().unwrap().record(true);
        b.open_until.store(0, Ordering::Release);
        b.admit().unwrap()
    }

    #[test]
    fn an_overtaken_probes_late_success_closes_it_and_its_late_failure_does_not_open_it() {
        for late_success in [true, false] {
            let b = breaker(1, Duration::from_secs(60), 1);
            let old = half_open_with_probe(&b, Duration::MAX);
            // Its hold has run out: the next call probes afresh.
            overdue(&b);
            let fresh = b.admit().expect("the overdue probe's place is taken");
            assert_ne!(fresh.generation, old.generation);
            assert_eq!(b.state(), CircuitState::HalfOpen);
            old.record(!late_success);
            let expected = if late_success {
                CircuitState::Closed
            } else {
                CircuitState::HalfOpen
            };
            assert_eq!(b.state(), expected, "late success: {late_success}");
            // The fresh probe fails after: once closed, that changes nothing (its half-open
            // period is over); while still half-open, it reopens the breaker.
            fresh.record(true);
            let expected = if late_success {
                CircuitState::Closed
            } else {
                CircuitState::Open
            };
            assert_eq!(b.state(), expected, "late success: {late_success}");
        }
    }

    #[test]
    fn a_probe_of_an_earlier_half_open_period_does_not_close_the_next() {
        let b = breaker(1, Duration::from_secs(60), 1);
        let old = half_open_with_probe(&b, Duration::MAX);
        overdue(&b);
        // The fresh probe fails: open again, then half-open in a new period.
        b.admit().unwrap().record(true);
        assert_eq!(b.state(), CircuitState::Open);
        b.open_until.store(0, Ordering::Release);
        let _next = b.admit().unwrap();
        assert_eq!(b.state(), CircuitState::HalfOpen);
        // The first period's probe answers at last: it belongs to a period that ended.
        old.record(false);
        assert_eq!(b.state(), CircuitState::HalfOpen);

        // Nor does a probe of a period that ended with its sibling's failure, however the
        // admissions of the next period interleave: the period is in the word itself.
        let b = breaker(1, Duration::from_secs(60), 2);
        let first = half_open_with_two(&b);
        b.admit().unwrap().record(true);
        assert_eq!(b.state(), CircuitState::Open);
        b.open_until.store(0, Ordering::Release);
        let _next = b.admit().unwrap();
        first.record(false);
        assert_eq!(
            b.state(),
            CircuitState::HalfOpen,
            "an ended period's probe closed it"
        );
    }

    #[test]
    fn a_probes_verdict_holds_while_other_probes_come_and_go() {
        // With several probes, taking one and giving it back changes the word within a
        // generation: a probe's outcome must still end the half-open state.
        use std::sync::atomic::AtomicBool;
        for round in 0..200 {
            let b = breaker(1, Duration::from_secs(60), 64);
            b.admit().unwrap().record(true);
            b.open_until.store(0, Ordering::Release);
            let probe = b.admit().unwrap();
            assert_eq!(b.state(), CircuitState::HalfOpen);
            let fails = round % 2 == 1;
            let (busy, stop) = (AtomicBool::new(false), AtomicBool::new(false));
            std::thread::scope(|s| {
                // Other calls taking a probe and dropping it unsent, which gives it back.
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        drop(b.admit());
                        busy.store(true, Ordering::Relaxed);
                    }
                });
                while !busy.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
                probe.record(fails);
                let after = b.state();
                stop.store(true, Ordering::Relaxed);
                let expected = if fails {
                    CircuitState::Open
                } else {
                    CircuitState::Closed
                };
                assert_eq!(after, expected, "round {round}");
            });
        }
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
        assert_eq!(b.state(), State::Open);
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.admit().unwrap();
        assert!(b.admit().is_err(), "only one probe");
        // Open again for the whole period from the failure, read off the breaker rather than
        // asked of `admit`, which a thread stalled past 30 ms would find over.
        let failed = now_nanos();
        probe.record(true);
        assert_eq!(b.state(), State::Open);
        let until = b.open_until.load(Ordering::Acquire);
        assert!(until >= failed + 30_000_000, "{until} < {failed} + 30 ms");
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
        let a = Breaker::shared("http://registry-test:1", &config, None);
        let b = Breaker::shared("http://registry-test:1", &config, None);
        let c = Breaker::shared("http://registry-test:2", &config, None);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
