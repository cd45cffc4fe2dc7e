//! The call's one timer: attempt timeouts, the waits between attempts, a header hook's time.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

pin_project! {
    /// The call's one timer, made on first use (inside the runtime) and reset after that.
    #[project = TimerProj]
    pub(super) enum Timer {
        Unset,
        Set { #[pin] sleep: tokio::time::Sleep },
    }
}

impl Timer {
    /// Sets the timer to fire `after` from now.
    pub(super) fn arm(mut self: Pin<&mut Self>, after: Duration) {
        match self.as_mut().project() {
            TimerProj::Set { sleep } => {
                // A duration too long for the clock (`Duration::MAX` for "no timeout") is as
                // good as never, as for `tokio::time::sleep`.
                let now = tokio::time::Instant::now();
                let at = now
                    .checked_add(after)
                    .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
                sleep.reset(at)
            }
            TimerProj::Unset => self.set(Timer::Set {
                sleep: tokio::time::sleep(after),
            }),
        }
    }

    /// The time left before the timer fires; `None` when it is not set.
    pub(super) fn left(self: Pin<&mut Self>) -> Option<Duration> {
        match self.project() {
            TimerProj::Set { sleep } => Some(
                sleep
                    .deadline()
                    .saturating_duration_since(tokio::time::Instant::now()),
            ),
            TimerProj::Unset => None,
        }
    }

    pub(super) fn poll_fired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project() {
            TimerProj::Set { sleep } => sleep.poll(cx),
            TimerProj::Unset => Poll::Ready(()),
        }
    }
}
