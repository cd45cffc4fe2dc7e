//! How long to wait before a retry: exponential backoff with full jitter.
//!
//! Full jitter (a uniform pick in `[0, min(max, base * 2^n)]`) spreads the retries of many
//! callers that failed together, instead of sending them back in synchronized waves.

use std::time::Duration;

/// The upper bound of the wait before retry number `retry` (0 for the first retry).
pub(crate) fn ceiling(base: Duration, max: Duration, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

/// A wait in `[0, ceiling]`, picked with the random number `random`. A ceiling longer than a
/// `u64` of nanoseconds (584 years) is taken as that many, not as what is left of it past a
/// `u64`, which could be a few nanoseconds.
pub(crate) fn full_jitter(base: Duration, max: Duration, retry: u32, random: u64) -> Duration {
    let ceiling = u64::try_from(ceiling(base, max, retry).as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random % ceiling.saturating_add(1))
}

/// A random wait for retry number `retry`.
pub(crate) fn delay(base: Duration, max: Duration, retry: u32) -> Duration {
    let random = crate::random::random_u64().unwrap_or(u64::MAX / 2);
    full_jitter(base, max, retry, random)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceiling_doubles_then_caps() {
        let (base, max) = (100 * MS, 2000 * MS);
        let ceilings: Vec<_> = (0..7).map(|n| ceiling(base, max, n)).collect();
        assert_eq!(
            ceilings,
            [100, 200, 400, 800, 1600, 2000, 2000].map(|ms| ms * MS)
        );
        assert_eq!(ceiling(base, max, u32::MAX), max);
        assert_eq!(ceiling(Duration::MAX, max, 40), max);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let (base, max) = (100 * MS, 2000 * MS);
        for retry in 0..10 {
            let top = ceiling(base, max, retry);
            assert_eq!(full_jitter(base, max, retry, 0), Duration::ZERO);
            assert_eq!(
                full_jitter(base, max, retry, top.as_nanos() as u64),
                top,
                "the ceiling itself is reachable"
            );
            for _ in 0..200 {
                assert!(delay(base, max, retry) <= top);
            }
        }
    }

    #[test]
    fn a_ceiling_past_what_a_u64_of_nanoseconds_holds_is_not_wrapped() {
        // 584 years and 2 ns: its nanoseconds past a u64 are 1, which must not become the
        // ceiling (a retry at once where the longest of waits was asked for).
        let base = Duration::from_nanos(u64::MAX) + Duration::from_nanos(2);
        let wait = full_jitter(base, Duration::MAX, 0, u64::MAX - 1);
        assert_eq!(wait, Duration::from_nanos(u64::MAX - 1));
        for base in [Duration::from_secs(u64::MAX), Duration::MAX] {
            let wait = full_jitter(base, Duration::MAX, 3, u64::MAX / 2);
            assert_eq!(wait, Duration::from_nanos(u64::MAX / 2), "{base:?}");
        }
    }

    #[test]
    fn jitter_spreads() {
        let waits: std::collections::HashSet<_> =
            (0..64).map(|_| delay(100 * MS, 2000 * MS, 3)).collect();
        assert!(waits.len() > 32, "64 draws gave only {} waits", waits.len());
    }
}
