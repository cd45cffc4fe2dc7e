//! Deadlines that travel from one service to the next.
//!
//! A call with a deadline tells the service it calls how long is left, as `Comms-Deadline-Ms`
//! (relative, so that the two clocks need not agree; covered by the signature, and ignored by
//! a receiving side when an RFC 9421 signature does not cover it, since anyone on the way
//! could have added it). The receiving side answers 504 at once when a request arrives with
//! nothing left, and otherwise runs its handler with that deadline, counted from the head's
//! arrival, in scope: every comms call the handler makes is then bounded by
//! the smaller of its own deadline and what is left of the inherited one, so work nobody waits
//! for any more is not started.

use std::future::Future;
use std::time::{Duration, Instant};

use http::HeaderMap;

use crate::signing::COMMS_DEADLINE_MS;

tokio::task_local! {
    static INHERITED: Instant;
}

/// The deadline the request being served arrived with, if any.
pub(crate) fn inherited() -> Option<Instant> {
    INHERITED.try_with(|at| *at).ok()
}

/// Runs `future` with `at` as the inherited deadline, if there is one.
pub(crate) async fn scope<F: Future>(at: Option<Instant>, future: F) -> F::Output {
    match at {
        Some(at) => INHERITED.scope(at, future).await,
        None => future.await,
    }
}

/// Runs `f` with `at` as the inherited deadline, if there is one: for work a served request
/// does outside its own future, polled in turns (a streamed answer's body).
#[cfg(feature = "server")]
pub(crate) fn in_scope<R>(at: Option<Instant>, f: impl FnOnce() -> R) -> R {
    match at {
        Some(at) => INHERITED.sync_scope(at, f),
        None => f(),
    }
}

/// A call's deadline: the smaller of its own (`own` from now) and the one the request being
/// served arrived with, and the duration a timeout reports. The clock is read only when there
/// is a deadline.
pub(crate) fn for_call(own: Option<Duration>) -> Option<(Instant, Duration)> {
    let inherited = inherited();
    if own.is_none() && inherited.is_none() {
        return None;
    }
    let now = Instant::now();
    // A deadline too far for the clock to hold is no deadline.
    let own = own.and_then(|d| Some((now.checked_add(d)?, d)));
    match (own, inherited) {
        (Some((at, _)), Some(inherited)) if inherited >= at => own,
        (_, Some(inherited)) => Some((inherited, inherited.saturating_duration_since(now))),
        (own, None) => own,
    }
}

/// What is left of the deadline the request being served arrived with: `None` without one.
#[cfg(any(feature = "server", test))]
pub(crate) fn remaining() -> Option<Duration> {
    inherited().map(|at| at.saturating_duration_since(Instant::now()))
}

/// The longest time a `Comms-Deadline-Ms` says: 12 digits of milliseconds, almost 32 years. A
/// client says no more than this of a longer deadline, and a server reads a longer value as
/// this.
const MAX_MS: u64 = 999_999_999_999;

/// The milliseconds a request says are left of its deadline: `Ok(None)` without the header,
/// `Err(())` when it is not one decimal number. A number over [`MAX_MS`] is read as that.
pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Option<Duration>, ()> {
    let mut values = headers.get_all(COMMS_DEADLINE_MS).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    let text = value.to_str().map_err(|_| ())?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    // Parsed only within 12 digits (leading zeros aside), so no length costs more.
    let digits = text.trim_start_matches('0');
    let ms = match digits.len() {
        0 => 0,
        1..=12 => digits.parse().map_err(|_| ())?,
        _ => MAX_MS,
    };
    Ok(Some(Duration::from_millis(ms)))
}

/// The header value for a deadline at `at`: the whole milliseconds left, so that the next hop
/// is never told more time than there is; 1 for under a millisecond, so that a request with
/// any time left never says 0 (which a receiving comms server answers with a 504 at once); 0
/// once passed; at most [`MAX_MS`].
pub(crate) fn header_value(at: Instant) -> http::HeaderValue {
    header_value_at(at, Instant::now())
}

/// [`header_value`] as of `now`.
fn header_value_at(at: Instant, now: Instant) -> http::HeaderValue {
    let left = at.saturating_duration_since(now);
    let ms = match u64::try_from(left.as_millis()) {
        Ok(0) if !left.is_zero() => 1,
        Ok(ms) => ms,
        Err(_) => MAX_MS,
    };
    http::HeaderValue::from(ms.min(MAX_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_whole_milliseconds() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&h), Ok(None));
        h.insert(COMMS_DEADLINE_MS, "250".parse().unwrap());
        assert_eq!(from_headers(&h), Ok(Some(Duration::from_millis(250))));
        // More than 12 digits is read as the longest deadline, not refused; leading zeros are
        // not counted.
        for (long, ms) in [
            ("9999999999999", MAX_MS),
            ("18446744073709551616000", MAX_MS),
            ("0000000000000250", 250),
            ("000", 0),
        ] {
            h.insert(COMMS_DEADLINE_MS, long.parse().unwrap());
            assert_eq!(
                from_headers(&h),
                Ok(Some(Duration::from_millis(ms))),
                "{long}"
            );
        }
        for bad in ["", "-1", "1.5", " 1", "+1", "soon"] {
            h.insert(COMMS_DEADLINE_MS, bad.parse().unwrap());
            assert_eq!(from_headers(&h), Err(()), "{bad:?}");
        }
        h.insert(COMMS_DEADLINE_MS, "1".parse().unwrap());
        h.append(COMMS_DEADLINE_MS, "2".parse().unwrap());
        assert_eq!(from_headers(&h), Err(()), "twice");
    }

    #[test]
    fn a_deadline_is_in_scope_only_inside() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        assert_eq!(inherited(), None);
        let at = Instant::now() + Duration::from_secs(5);
        let inside = runtime.block_on(scope(Some(at), async { (inherited(), remaining()) }));
        assert_eq!(inside.0, Some(at));
        assert!(inside.1.is_some_and(|left| left <= Duration::from_secs(5)));
        assert_eq!(inherited(), None);
        let now = Instant::now();
        assert_eq!(header_value(now - Duration::from_millis(1)), "0");
        // Under a millisecond left is sent as 1, not as the 0 that means none.
        assert_eq!(header_value_at(now + Duration::from_micros(900), now), "1");
        // Otherwise whole milliseconds, never more than is left.
        assert_eq!(
            header_value_at(now + Duration::from_micros(249_999), now),
            "249"
        );
        assert_eq!(
            header_value_at(now + Duration::from_millis(250), now),
            "250"
        );
        // A deadline longer than the header says is sent as the longest it says.
        let century = Duration::from_secs(100 * 365 * 86_400);
        assert_eq!(header_value_at(now + century, now), "999999999999");
        assert_eq!(from_headers(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn a_call_takes_the_smaller_of_its_own_and_the_inherited_deadline() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        assert_eq!(for_call(None), None);
        let own = Duration::from_secs(10);
        let (at, total) = for_call(Some(own)).unwrap();
        assert_eq!(total, own);
        assert!(at > Instant::now());
        let soon = Instant::now() + Duration::from_secs(1);
        let later = Instant::now() + Duration::from_secs(60);
        runtime.block_on(scope(Some(soon), async {
            let (at, total) = for_call(Some(own)).unwrap();
            assert_eq!(at, soon, "the inherited one is sooner");
            assert!(total <= Duration::from_secs(1));
            assert_eq!(for_call(None).unwrap().0, soon);
        }));
        runtime.block_on(scope(Some(later), async {
            let (_, total) = for_call(Some(own)).unwrap();
            assert_eq!(total, own, "its own is sooner");
        }));
    }
}
