//! Sharing breaker transitions between the replicas of a service.
//!
//! A replica's breaker that opens or closes publishes the transition through its [`Link`]; the
//! link applies the other replicas' transitions to the local breakers of the same authority.
//! The backend that carries them (Redis pub/sub, with the `redis` feature) only sees
//! [`Remote`] events and authorities. A remote open is clamped to this replica's own
//! `open_for`, so no other clock, configuration or forged message keeps a breaker open here
//! longer than a local failure would.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::state::{State, Word};
use super::{Breaker, CircuitState, now_nanos};

/// Wall-clock milliseconds since the Unix epoch: what replicas tell each other open times in.
pub(crate) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The longest an open announced for a target no breaker here holds is kept for the next one,
/// in milliseconds: an hour, whatever the open says (each breaker holds it no longer than its
/// own `open_for` anyway).
const HELD_AT_MOST: u64 = 3_600_000;

/// A transition one replica tells the others about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Remote {
    /// Opened until this wall-clock time.
    Opened { until_unix_ms: u64 },
    /// Closed after a successful probe.
    Closed,
}

/// How a link hands this process's transitions to its backend.
type Publish = Box<dyn Fn(&str, Remote) + Send + Sync>;

/// What a link knows of this process's breakers, under one lock: an open either finds a
/// breaker to apply to, or is kept for the next one, never both or neither.
#[derive(Default)]
struct Members {
    /// The breakers of each target, by authority.
    breakers: HashMap<String, Vec<std::sync::Weak<Breaker>>>,
    /// Other replicas' opens for targets no breaker here holds now, by authority: until when
    /// (at most [`HELD_AT_MOST`] from their arrival), for the next breaker made for one.
    opens: HashMap<String, u64>,
}

/// The local end of a fleet-wide breaker channel: publishes this process's transitions and
/// applies the others'.
pub(crate) struct Link {
    pub(crate) id: u64,
    publish: Publish,
    members: Mutex<Members>,
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

    /// Adds `breaker` to the breakers a remote transition for its authority is applied to.
    pub(super) fn attach(&self, breaker: &Arc<Breaker>) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        // Those the registry let go of since, no client holding them, for any target: the
        // registry's own pass over its breakers is as long.
        members.breakers.retain(|_, list| {
            list.retain(|member| member.strong_count() > 0);
            !list.is_empty()
        });
        members
            .breakers
            .entry(breaker.authority.clone())
            .or_default()
            .push(Arc::downgrade(breaker));
        // An open another replica announced while no breaker here was there to take it: this
        // one takes it, once (its own close, published, does not come back to clear it).
        let until = members.opens.remove(&breaker.authority);
        drop(members);
        if let Some(until_unix_ms) = until.filter(|until| *until > unix_millis()) {
            breaker.apply_remote(Remote::Opened { until_unix_ms });
        }
    }

    /// Tells the other replicas about a local transition.
    pub(super) fn publish(&self, authority: &str, event: Remote) {
        (self.publish)(authority, event);
    }

    /// Whether a local transition for `authority`, still to be published, says what this
    /// process's breakers hold now: an open while one of them is open, a close while none is.
    /// One another replica's transition overtook since (a remote close applied to an open
    /// breaker) is moot, and publishing it would undo that transition everywhere else.
    // Only a fleet backend (the `redis` feature) publishes late.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn still_holds(&self, authority: &str, event: Remote) -> bool {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let open = members
            .breakers
            .get(authority)
            .into_iter()
            .flatten()
            .filter_map(std::sync::Weak::upgrade)
            .any(|breaker| breaker.state() == CircuitState::Open);
        match event {
            Remote::Opened { .. } => open,
            Remote::Closed => !open,
        }
    }

    /// Applies a transition another replica published for `authority`.
    // Only a fleet backend (the `redis` feature) links breakers across processes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn apply(&self, authority: &str, event: Remote) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let breakers: Vec<Arc<Breaker>> = members
            .breakers
            .get(authority)
            .map(|v| v.iter().filter_map(std::sync::Weak::upgrade).collect())
            .unwrap_or_default();
        if breakers.is_empty() {
            members.breakers.remove(authority);
        }
        // Kept for the next breaker made for the target (one no client holds is let go of by
        // the registry), or forgotten on its close.
        let now = unix_millis();
        members.opens.retain(|_, until| *until > now);
        match event {
            Remote::Opened { until_unix_ms } if breakers.is_empty() => {
                let until = until_unix_ms.min(now.saturating_add(HELD_AT_MOST));
                let kept = members.opens.entry(authority.to_owned()).or_default();
                *kept = (*kept).max(until);
            }
            Remote::Opened { .. } => {}
            Remote::Closed => {
                members.opens.remove(authority);
            }
        }
        drop(members);
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
/// [`open_for`](crate::BreakerConfig::open_for) from when it arrives: a replica configured
/// otherwise, a skewed clock or a forged message cannot keep it open longer than a local
/// failure would. The time is a wall-clock one, so a clock ahead of the sender's by part of
/// `open_for` shortens the open here by as much, and one ahead by all of it ignores the open.
///
/// Transitions are applied as they arrive, with no order between replicas': a close another
/// replica published just before this one opened on failures of its own, and delivered after,
/// closes it again, until its next `failure_threshold` failures.
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

impl Breaker {
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
                let until = now_nanos().saturating_add(super::nanos(left));
                loop {
                    let from = self.word.load(Ordering::Acquire);
                    if Word::unpack(from).state == State::Open {
                        self.open_until.fetch_max(until, Ordering::AcqRel);
                        return;
                    }
                    self.open_until.store(until, Ordering::Release);
                    if self.transition(from, State::Open) {
                        tracing::warn!(authority = %self.authority, "circuit breaker opened by another replica");
                        crate::telemetry::breaker_changed(&self.authority, CircuitState::Open);
                        return;
                    }
                }
            }
            Remote::Closed => loop {
                let from = self.word.load(Ordering::Acquire);
                if Word::unpack(from).state == State::Closed {
                    return;
                }
                if self.transition(from, State::Closed) {
                    self.failures.store(0, Ordering::Release);
                    tracing::info!(authority = %self.authority, "circuit breaker closed by another replica");
                    crate::telemetry::breaker_changed(&self.authority, CircuitState::Closed);
                    return;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BreakerConfig, CircuitState as State};
    use super::*;

    #[test]
    fn a_transition_another_replicas_overtook_is_no_longer_held() {
        let sync = BreakerSync {
            link: Arc::new(Link::new(|_, _| {})),
        };
        let config = BreakerConfig::default()
            .failure_threshold(1)
            .open_for(Duration::from_secs(60));
        let authority = "http://still-holds:1";
        let breaker = Breaker::shared(authority, &config, Some(&sync));
        let opened = Remote::Opened {
            until_unix_ms: unix_millis() + 60_000,
        };
        assert!(sync.link.still_holds(authority, Remote::Closed));
        assert!(!sync.link.still_holds(authority, opened));
        breaker.admit().unwrap().record(true);
        assert_eq!(breaker.state(), State::Open);
        // Its open, waiting to be published, is what it holds.
        assert!(sync.link.still_holds(authority, opened));
        assert!(!sync.link.still_holds(authority, Remote::Closed));
        // Another replica's close arrives first: the open waiting here is moot.
        sync.link.apply(authority, Remote::Closed);
        assert_eq!(breaker.state(), State::Closed);
        assert!(!sync.link.still_holds(authority, opened));
        // A target no breaker here holds has no open to publish.
        assert!(!sync.link.still_holds("http://nobody:1", opened));
    }

    #[test]
    fn a_links_idle_breakers_are_let_go_and_an_open_for_one_reaches_the_next() {
        let sync = BreakerSync {
            link: Arc::new(Link::new(|_, _| {})),
        };
        let config = BreakerConfig::default().open_for(Duration::from_secs(60));
        let registered = |prefix: &str| {
            let registry = super::super::registry().lock().unwrap();
            registry
                .authorities()
                .filter(|(authority, link)| *link == sync.link.id && authority.starts_with(prefix))
                .count()
        };
        for i in 0..1000 {
            drop(Breaker::shared(
                &format!("http://link-host-{i}:1"),
                &config,
                Some(&sync),
            ));
        }
        super::super::Registry::sweep_next();
        let _other = Breaker::shared("http://link-other:1", &config, Some(&sync));
        assert_eq!(
            registered("http://link-host-"),
            0,
            "no breaker kept for idle hosts"
        );
        assert!(sync.link.members.lock().unwrap().breakers.len() <= 2);
        // Another replica's open for an idle target reaches its next client.
        sync.link.apply(
            "http://link-host-7:1",
            Remote::Opened {
                until_unix_ms: unix_millis() + 60_000,
            },
        );
        let next = Breaker::shared("http://link-host-7:1", &config, Some(&sync));
        assert_eq!(next.state(), State::Open);
        // A close forgets it.
        drop(next);
        sync.link.apply(
            "http://link-host-8:1",
            Remote::Opened {
                until_unix_ms: unix_millis() + 60_000,
            },
        );
        sync.link.apply("http://link-host-8:1", Remote::Closed);
        let after_close = Breaker::shared("http://link-host-8:1", &config, Some(&sync));
        assert_eq!(after_close.state(), State::Closed);
    }

    #[test]
    fn a_kept_open_is_taken_once() {
        // Taken by the next breaker, seen through (its own open period over, a probe that
        // succeeds), that breaker let go of: the one after it starts closed.
        let sync = BreakerSync {
            link: Arc::new(Link::new(|_, _| {})),
        };
        let config = BreakerConfig::default().open_for(Duration::from_millis(30));
        let until_unix_ms = unix_millis() + 60_000;
        sync.link
            .apply("http://link-once:1", Remote::Opened { until_unix_ms });
        let first = Breaker::shared("http://link-once:1", &config, Some(&sync));
        assert_eq!(first.state(), State::Open);
        std::thread::sleep(Duration::from_millis(50));
        first.admit().unwrap().record(false);
        assert_eq!(first.state(), State::Closed);
        drop(first);
        let _other = Breaker::shared("http://link-once-other:1", &config, Some(&sync));
        let next = Breaker::shared("http://link-once:1", &config, Some(&sync));
        assert_eq!(next.state(), State::Closed);
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
            .open_for(Duration::from_millis(500));
        let ba = Breaker::shared("http://linked:1", &config, Some(&a));
        let bb = Breaker::shared("http://linked:1", &config, Some(&b));
        assert!(!Arc::ptr_eq(&ba, &bb), "one breaker per replica");
        ba.admit().unwrap().record(true);
        ba.admit().unwrap().record(true);
        assert_eq!(ba.state(), State::Open);
        assert_eq!(bb.state(), State::Open, "b opened with a");
        assert!(bb.admit().is_err());
        std::thread::sleep(Duration::from_millis(600));
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
        // Refused for at most `longest` from `applied`; a thread stalled past that (a loaded
        // machine) may be admitted, but never before it.
        let refused_within = |applied: std::time::Instant, longest: Duration| match b.admit() {
            Err(wait) => assert!(wait <= longest, "{wait:?} > {longest:?}"),
            Ok(_probe) => assert!(
                applied.elapsed() >= longest - Duration::from_millis(1),
                "admitted {:?} into a {longest:?} open",
                applied.elapsed()
            ),
        };
        // A shorter remote open is taken as it is.
        let applied = std::time::Instant::now();
        apply(unix_millis() + 50);
        assert_eq!(b.state(), State::Open);
        refused_within(applied, Duration::from_millis(50));
        // A replica open for an hour, a clock a day ahead, a forged "forever", again and
        // again: each holds this breaker open for at most its own open_for.
        for until in [
            unix_millis() + 3_600_000,
            unix_millis() + 86_400_000,
            u64::MAX,
        ] {
            let applied = std::time::Instant::now();
            apply(until);
            assert_eq!(b.state(), State::Open);
            refused_within(applied, open_for);
        }
        // Once that has passed, a probe goes through and closes it.
        std::thread::sleep(open_for + Duration::from_millis(50));
        b.admit()
            .expect("a probe after the local open period")
            .record(false);
        assert_eq!(b.state(), State::Closed);
    }
}
