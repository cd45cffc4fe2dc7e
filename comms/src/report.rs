//! Reporting a refusal that repeats: counted every time, logged at most once per interval.
//!
//! Some refusals repeat for every request while their cause lasts: an exhausted retry budget
//! in a partial outage, a nonce store full of live nonces under a flood. A warning each would
//! flood the logs when they matter most, and let whoever causes the refusals decide how much
//! gets written. So each refusal is counted, and a report (with the count since the last one)
//! is due at the first refusal and then at most once every [`REPORT_EVERY_MS`]; callers log the
//! others at `DEBUG`, or not at all.
//!
//! [`Throttle`] takes the time from its caller (milliseconds on any monotonic clock), so a
//! caller that already read the clock does not read it again, and tests need no sleeping.

use std::sync::atomic::{AtomicU64, Ordering};

/// The least time between two reports, in milliseconds.
pub(crate) const REPORT_EVERY_MS: u64 = 10_000;

/// Counts events and says when to report them: at the first, then at most once every
/// [`REPORT_EVERY_MS`], each report carrying the count since the previous one.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    /// Events since the last report.
    pending: AtomicU64,
    /// One more than the clock reading of the last report; 0 before the first.
    reported_at: AtomicU64,
}

impl Throttle {
    /// A throttle that has counted nothing yet.
    pub(crate) const fn new() -> Throttle {
        Throttle {
            pending: AtomicU64::new(0),
            reported_at: AtomicU64::new(0),
        }
    }

    /// Counts one event, at `now_ms` milliseconds on the caller's monotonic clock. Returns the
    /// number of events since the last report, this one included, when a report is due, and
    /// `None` otherwise. Of concurrent callers, one at most is told to report.
    pub(crate) fn count(&self, now_ms: u64) -> Option<u64> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let stamp = now_ms.saturating_add(1);
        let last = self.reported_at.load(Ordering::Relaxed);
        let due = last == 0 || stamp.saturating_sub(last) >= REPORT_EVERY_MS;
        (due && self
            .reported_at
            .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok())
        .then(|| self.pending.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_reported_then_one_report_per_interval_with_the_count() {
        let t = Throttle::new();
        assert_eq!(t.count(0), Some(1), "the first event is reported at once");
        for ms in 1..100 {
            assert_eq!(t.count(ms), None);
        }
        assert_eq!(
            t.count(REPORT_EVERY_MS - 1),
            None,
            "not before a whole interval"
        );
        assert_eq!(
            t.count(REPORT_EVERY_MS),
            Some(101),
            "every event since the last report"
        );
        assert_eq!(t.count(REPORT_EVERY_MS), None);
        // After a quiet spell the next event is reported at once, with the one left unreported.
        assert_eq!(t.count(10 * REPORT_EVERY_MS), Some(2));
        assert_eq!(t.count(10 * REPORT_EVERY_MS + 1), None);
    }

    #[test]
    fn of_concurrent_callers_one_reports_and_no_event_is_lost() {
        let t = Throttle::new();
        let reported = AtomicU64::new(0);
        let reports = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        if let Some(n) = t.count(5) {
                            reports.fetch_add(1, Ordering::Relaxed);
                            reported.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(
            reports.load(Ordering::Relaxed),
            1,
            "one report in one instant"
        );
        // What the report did not carry is pending, and the next report carries it.
        let rest = t.count(5 + REPORT_EVERY_MS).expect("an interval later");
        assert_eq!(reported.load(Ordering::Relaxed) + rest, 40_001);
    }
}
