//! A retry budget: retries may add only a fraction of the recent traffic.
//!
//! A per-call retry count alone is not enough: when a dependency goes down, every call retries
//! the full count and the failing service sees its load multiplied. A budget caps the *sum*:
//! each call deposits `ratio` of a token, each retry withdraws a whole one, and a floor of
//! `min_per_sec` tokens a second lets a quiet client still retry. The floor banks at most one
//! second of its tokens, and deposits at most a cap (100 retries, or ten seconds of floor), so
//! a quiet spell saves up no burst, and a busy one no more than its recent calls paid for.
//! Deposits are one atomic add on the call path; the floor is refilled lazily, only when a
//! retry asks.
//!
//! Refusals are counted and reported at most once per interval, with the count, instead of
//! once each (a [`Throttle`]): in a partial outage that would be a warning for every failing
//! call.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use super::BudgetConfig;
#[cfg(test)]
use crate::report::REPORT_EVERY_MS;
use crate::report::Throttle;

const TOKEN: i64 = 1000;

#[derive(Debug)]
pub(crate) struct RetryBudget {
    /// Balance in thousandths of a retry.
    balance: AtomicI64,
    deposit: i64,
    floor_per_sec: i64,
    cap: i64,
    started: Instant,
    /// Milliseconds since `started` when the floor was last credited.
    refilled_at: AtomicU64,
    /// Refused retries, timed in milliseconds since `started`.
    refusals: Throttle,
}

/// What asking the budget for a retry gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Withdrawal {
    /// A retry may be made.
    Granted,
    /// No retry. `report` is the number of retries refused since the last report (this one
    /// included) when it is time to report them, and `None` otherwise.
    Refused { report: Option<u64> },
}

impl RetryBudget {
    pub(crate) fn new(config: BudgetConfig) -> RetryBudget {
        let floor_per_sec = i64::from(config.min_per_sec) * TOKEN;
        RetryBudget {
            balance: AtomicI64::new(floor_per_sec),
            deposit: (config.ratio * TOKEN as f64) as i64,
            floor_per_sec,
            cap: (floor_per_sec * 10).max(100 * TOKEN),
            started: Instant::now(),
            refilled_at: AtomicU64::new(0),
            refusals: Throttle::new(),
        }
    }

    /// Credits one call.
    pub(crate) fn deposit(&self) {
        if self.deposit == 0 || self.balance.load(Ordering::Relaxed) >= self.cap {
            return;
        }
        let _ = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b < self.cap).then(|| (b + self.deposit).min(self.cap))
            });
    }

    /// Takes one retry from the budget, if it has one.
    pub(crate) fn withdraw(&self) -> Withdrawal {
        // Milliseconds since `started`, read once for the refill and for the report.
        let now = self.started.elapsed().as_millis() as u64;
        self.refill(now);
        let granted = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b >= TOKEN).then_some(b - TOKEN)
            })
            .is_ok();
        if granted {
            return Withdrawal::Granted;
        }
        Withdrawal::Refused {
            report: self.refusals.count(now),
        }
    }

    /// Gives back a retry withdrawn and never sent (its call was dropped before sending it, the
    /// breaker refused it when the wait ended, or its header hook failed).
    pub(crate) fn refund(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some((b + TOKEN).min(self.cap.max(b)))
            });
    }

    /// Credits the floor for the time since the last refill; `now` is milliseconds since
    /// `started`.
    fn refill(&self, now: u64) {
        if self.floor_per_sec == 0 {
            return;
        }
        let last = self.refilled_at.load(Ordering::Acquire);
        if now <= last {
            return;
        }
        if self
            .refilled_at
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // floor_per_sec is thousandths per second, which is whole tokens per millisecond.
            // Saturating: a large floor over a long quiet spell is more than its bank anyway.
            let credit = i64::try_from(now - last)
                .unwrap_or(i64::MAX)
                .saturating_mul(self.floor_per_sec)
                / 1000;
            // The floor tops the balance up to one second of itself, not to the cap: ten quiet
            // seconds would otherwise bank a hundred retries for the first outage to spend at
            // once, on top of what the calls then pay for.
            let _ = self
                .balance
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                    Some(b.saturating_add(credit).min(self.floor_per_sec.max(b)))
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, min_per_sec: u32) -> RetryBudget {
        RetryBudget::new(BudgetConfig { ratio, min_per_sec })
    }

    impl RetryBudget {
        fn grants(&self) -> bool {
            self.withdraw() == Withdrawal::Granted
        }
    }

    #[test]
    fn the_largest_floor_credited_for_an_hour_is_capped_without_overflow() {
        let mut b = budget(0.2, u32::MAX);
        b.started = Instant::now()
            .checked_sub(std::time::Duration::from_secs(3600))
            .expect("an hour before now");
        assert!(b.grants());
        assert!(b.grants());
    }

    #[test]
    fn a_quiet_spell_banks_one_second_of_the_floor() {
        let mut b = budget(0.2, 10);
        b.started = Instant::now()
            .checked_sub(std::time::Duration::from_secs(60))
            .expect("a minute before now");
        let retries = (0..1000).filter(|_| b.grants()).count();
        assert!((10..=11).contains(&retries), "{retries}");
        // What calls pay for banks up to the cap.
        let b = budget(1.0, 10);
        for _ in 0..1000 {
            b.deposit();
        }
        let retries = (0..1000).filter(|_| b.grants()).count();
        assert!((100..=101).contains(&retries), "{retries}");
    }

    #[test]
    fn floor_allows_a_few_retries_without_traffic() {
        let b = budget(0.2, 3);
        assert!(b.grants() && b.grants() && b.grants());
        assert!(!b.grants(), "the floor's first second is spent");
    }

    #[test]
    fn deposits_buy_a_fraction_of_retries() {
        let b = budget(0.2, 0);
        assert!(!b.grants());
        for _ in 0..100 {
            b.deposit();
        }
        let retries = (0..100).filter(|_| b.grants()).count();
        assert_eq!(retries, 20);
    }

    #[test]
    fn balance_is_capped() {
        let b = budget(1.0, 0);
        for _ in 0..1_000_000 {
            b.deposit();
        }
        let retries = (0..1_000_000).filter(|_| b.grants()).count();
        assert_eq!(retries, 100);
    }

    #[test]
    fn floor_refills_over_time() {
        let b = budget(0.0, 1000);
        while b.grants() {}
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(b.grants(), "20 ms at 1000/s credits about 20 retries");
    }

    #[test]
    fn refusals_are_reported_at_most_once_per_interval_with_their_count() {
        let mut b = budget(1.0, 0);
        // Pretend the budget was made a while ago, so that "an interval ago" is a time it had.
        b.started = Instant::now()
            .checked_sub(std::time::Duration::from_millis(3 * REPORT_EVERY_MS))
            .expect("the clock has run longer than 30 s");
        assert_eq!(
            b.withdraw(),
            Withdrawal::Refused { report: Some(1) },
            "the first refusal is reported at once"
        );
        for _ in 0..99 {
            assert_eq!(b.withdraw(), Withdrawal::Refused { report: None });
        }
        b.deposit();
        assert_eq!(b.withdraw(), Withdrawal::Granted);
        assert_eq!(b.withdraw(), Withdrawal::Refused { report: None });
        // An interval after the last report, the next refusal reports every one since.
        b.started -= std::time::Duration::from_millis(REPORT_EVERY_MS);
        assert_eq!(b.withdraw(), Withdrawal::Refused { report: Some(101) });
        assert_eq!(b.withdraw(), Withdrawal::Refused { report: None });
    }
}
