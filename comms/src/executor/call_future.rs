//! The future of one call, written out by hand as a state machine.
//!
//! The same steps as an `async fn` attempt loop would take, without its cost: nested `async`
//! layers are each moved into their parent's state when first polled, and an argument moved
//! into a local takes room twice. Measured on loopback, those copies (kilobytes per call,
//! touched again by every one of many calls in flight) cost more than the rest of the runtime
//! together. Here the call lives in one place: the request in flight is reqwest's boxed future,
//! and one timer serves the attempt timeouts and the waits between attempts.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use pin_project_lite::pin_project;

use super::mode::Mode;
use super::{Attempt, Executor, Limit, Prepared, TARGET, classify};
use crate::Error;
use crate::breaker::Permit;
use crate::call::Call;
use crate::hook::HookFuture;
use crate::retry::budget::RetryBudget;
use crate::retry::policy::Outcome;
use crate::telemetry::AttemptTrace;

mod reading;
mod timer;

use reading::Reading;
use timer::Timer;

pin_project! {
    /// What [`Executor::execute`] and [`Executor::execute_streaming`] return: prepares the
    /// call on its first poll, then runs its attempts, waits and retries until the call
    /// succeeds or ends with an error. `M` says what a success is handed over as.
    pub(super) struct CallFuture<'a, F, M> {
        executor: &'a Executor,
        span: tracing::Span,
        // What sends a request: `reqwest::Client::execute`, whose future has no name.
        send: fn(&reqwest::Client, reqwest::Request) -> F,
        run: Run<'a>,
        #[pin]
        phase: Phase<F>,
        #[pin]
        timer: Timer,
        mode: PhantomData<fn() -> M>,
    }
}

/// What a call's span reports once it ends.
#[derive(Default)]
struct CallStats {
    attempts: u32,
    /// The status of the last attempt, if it got a response. (A `StatusCode`, two bytes in an
    /// `Option`: every call in flight holds these.)
    status: Option<StatusCode>,
    /// The status of the attempt in flight's head, once it arrived: kept for an attempt whose
    /// body then fails, which was answered all the same.
    head: Option<StatusCode>,
}

/// Everything about the call but its timer and span.
struct Run<'a> {
    call: Call,
    stats: CallStats,
    /// Set up by the first poll.
    prepared: Option<Prepared>,
    /// The breaker's permit for the attempt in flight.
    permit: Option<Permit<'a>>,
    /// Retries made so far.
    retry: u32,
    /// What the call ends with if the breaker refuses the next attempt (boxed: only calls
    /// that retry have one).
    last_error: Option<Box<Error>>,
    /// The duration a timeout of the attempt in flight (or its header hook) reports.
    limit_reported: Duration,
    /// Whether that attempt's limit is the call's deadline (see [`Limit`]).
    by_deadline: bool,
    /// The attempt in flight's span and timing (`otel`; nothing without it).
    trace: Option<AttemptTrace>,
    /// The retry the call waits to make, taken from the budget: given back unless it is made.
    withdrawn: Withdrawn<'a>,
}

/// A retry taken from the budget and not sent yet, given back when dropped unsent (the call
/// dropped while it waits or while its header hook runs, the breaker refusing it when the wait
/// ends, its hook failing): a retry nobody sends should not use up the allowance that other
/// callers' real retries need.
#[derive(Default)]
struct Withdrawn<'a>(Option<&'a RetryBudget>);

impl Withdrawn<'_> {
    /// The retry is being sent: nothing to give back.
    fn made(&mut self) {
        self.0 = None;
    }
}

impl Drop for Withdrawn<'_> {
    fn drop(&mut self) {
        if let Some(budget) = self.0.take() {
            budget.refund();
        }
    }
}

pin_project! {
    /// Where the call is.
    #[project = PhaseProj]
    enum Phase<F> {
        // Not polled yet.
        Start,
        // Waiting for the executor's header hook before an attempt.
        Hooking { hooked: HookFuture },
        // Sending an attempt, until its response head arrives; `awaited` once it has been
        // polled and was not ready.
        Sending { #[pin] sent: F, awaited: bool },
        // Reading the body of an attempt's response.
        Reading { reading: Reading },
        // Waiting out the backoff before the next attempt.
        Waiting,
        // Returned its output.
        Done,
    }
}

impl<'a, F, M> CallFuture<'a, F, M> {
    pub(super) fn new(
        executor: &'a Executor,
        call: Call,
        span: tracing::Span,
        send: fn(&reqwest::Client, reqwest::Request) -> F,
    ) -> Self {
        CallFuture {
            executor,
            span,
            send,
            run: Run {
                call,
                stats: CallStats::default(),
                prepared: None,
                permit: None,
                retry: 0,
                last_error: None,
                limit_reported: Duration::ZERO,
                by_deadline: false,
                trace: None,
                withdrawn: Withdrawn::default(),
            },
            phase: Phase::Start,
            timer: Timer::Unset,
            mode: PhantomData,
        }
    }
}

impl<F, M: Mode> Future for CallFuture<'_, F, M>
where
    F: Future<Output = Result<reqwest::Response, reqwest::Error>>,
{
    type Output = Result<M::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let (executor, send, run) = (*this.executor, *this.send, this.run);
        let (mut phase, mut timer) = (this.phase, this.timer);
        loop {
            // Whether the attempt ends at its own timer, not at an error of reqwest's (a
            // client given with `http_client` may have a timeout of its own).
            let mut timer_fired = false;
            let attempt = match phase.as_mut().project() {
                PhaseProj::Start => {
                    let started = executor
                        .prepare(&mut run.call)
                        .and_then(|(prepared, permit)| {
                            run.prepared = Some(prepared);
                            run.permit = permit;
                            run.begin(executor, send, phase.as_mut(), timer.as_mut())
                        });
                    if let Err(e) = started {
                        return run.finish(this.span, phase, Err(e));
                    }
                    continue;
                }
                PhaseProj::Waiting => {
                    ready!(timer.as_mut().poll_fired(cx));
                    let next = executor.admit(run.last_error.take()).and_then(|permit| {
                        run.permit = permit;
                        run.begin(executor, send, phase.as_mut(), timer.as_mut())
                    });
                    if let Err(e) = next {
                        return run.finish(this.span, phase, Err(e));
                    }
                    continue;
                }
                PhaseProj::Hooking { hooked } => {
                    let sent = match hooked.as_mut().poll(cx) {
                        Poll::Ready(Ok(headers)) => run.send(
                            executor,
                            send,
                            phase.as_mut(),
                            timer.as_mut(),
                            Some(headers),
                        ),
                        Poll::Ready(Err(e)) => Err(e.into_hook_failure()),
                        Poll::Pending => {
                            ready!(timer.as_mut().poll_fired(cx));
                            Err(run.hook_timed_out())
                        }
                    };
                    if let Err(e) = sent {
                        return run.finish(this.span, phase, Err(e));
                    }
                    continue;
                }
                PhaseProj::Sending { sent, awaited } => match sent.poll(cx) {
                    // A client given with `http_client` may follow redirects: its response is
                    // then another location's, and the signed request has travelled there.
                    Poll::Ready(Ok(response)) if run.redirected(executor, &response) => {
                        let location = crate::response::shown(response.url());
                        Attempt::Redirected(response.status(), location)
                    }
                    Poll::Ready(Ok(response)) => match M::head(response) {
                        Ok(head) => {
                            let streamed = run.head_over::<M>(executor, head);
                            return run.finish(this.span, phase, Ok(streamed));
                        }
                        Err(response) => {
                            // A body that then fails still had this status.
                            run.stats.head = Some(response.status());
                            match Reading::start(
                                response,
                                &run.call.method,
                                executor.inner.max_response_bytes,
                                run.call.body_ignored,
                            ) {
                                Ok(reading) => {
                                    // The dependency answered: its body is waited for.
                                    if let Some(permit) = &mut run.permit {
                                        permit.waited();
                                    }
                                    phase.set(Phase::Reading { reading });
                                    continue;
                                }
                                Err((status, headers)) => {
                                    reading::over_limit(status, headers, run.call.body_ignored)
                                }
                            }
                        }
                    },
                    Poll::Ready(Err(e)) => classify(e),
                    Poll::Pending => {
                        // Polled again while in flight, the attempt is one its caller waits
                        // for; dropped from now on, a probe is a failed one (see `Permit`).
                        if *awaited && let Some(permit) = &mut run.permit {
                            permit.waited();
                        }
                        *awaited = true;
                        ready!(timer.as_mut().poll_fired(cx));
                        timer_fired = true;
                        Attempt::Timeout
                    }
                },
                PhaseProj::Reading { reading } => match reading.poll_body(cx) {
                    Poll::Ready(attempt) => attempt,
                    Poll::Pending => {
                        ready!(timer.as_mut().poll_fired(cx));
                        timer_fired = true;
                        Attempt::Timeout
                    }
                },
                PhaseProj::Done => panic!("a comms call future was polled after it completed"),
            };
            // The attempt is over; its request or body, dropped here, stops with it.
            phase.set(Phase::Waiting);
            let ended = (attempt, timer_fired);
            if let Some(result) = run.attempt_over::<M>(executor, ended, timer.as_mut()) {
                return run.finish(this.span, phase, result);
            }
        }
    }
}

/// The trace of a retry, attempt `retry` of `call` to `url` (the first attempt's begins in
/// `prepare`).
fn retry_trace(executor: &Executor, call: &Call, url: &reqwest::Url, retry: u32) -> AttemptTrace {
    AttemptTrace::start(&executor.inner.target, &call.method, call.route, url, retry)
}

impl<'a> Run<'a> {
    /// Starts the next attempt: first the executor's header hook, if it has one (under the
    /// attempt's time limit), then the request.
    fn begin<F>(
        &mut self,
        executor: &'a Executor,
        send: fn(&reqwest::Client, reqwest::Request) -> F,
        mut phase: Pin<&mut Phase<F>>,
        timer: Pin<&mut Timer>,
    ) -> Result<(), Error> {
        match &executor.inner.hook {
            None => self.send(executor, send, phase, timer, None),
            Some(hook) => {
                let prepared = self.prepared.as_mut().expect("prepared before any attempt");
                // A retry's trace begins before its hook, as the first attempt's does (in
                // `prepare`): every attempt's span and duration hold its hook's time.
                if self.retry > 0 {
                    let trace = retry_trace(executor, &self.call, &prepared.url, self.retry);
                    prepared.trace = Some(trace);
                }
                let limit = prepared.limit(self.retry == 0);
                self.held_to(limit);
                timer.arm(limit.time);
                phase.set(Phase::Hooking { hooked: hook() });
                Ok(())
            }
        }
    }

    /// Whether `response` is not the answer to the request sent but to one the client made
    /// following a redirect. Only a client given with `http_client` can: comms' own never
    /// follows one, and its answers' URLs are not compared.
    fn redirected(&self, executor: &Executor, response: &reqwest::Response) -> bool {
        if executor.inner.default_client {
            return false;
        }
        let prepared = self.prepared.as_ref().expect("prepared before any attempt");
        response.url() != &prepared.url
    }

    /// Keeps what a timeout under `limit`, about to be armed, is to be taken for.
    fn held_to(&mut self, limit: Limit) {
        self.limit_reported = limit.reported;
        self.by_deadline = limit.by_deadline;
        if let Some(permit) = &mut self.permit {
            permit.begun(limit.time);
        }
    }

    /// The error of a header hook that outlasted the attempt's time limit: nothing was sent.
    fn hook_timed_out(&self) -> Error {
        let prepared = self.prepared.as_ref().expect("prepared before any attempt");
        Error::timeout(&self.call.method, &prepared.url, self.limit_reported)
    }

    /// Sends the next attempt, under its timeout, with the headers the hook gave for it.
    fn send<F>(
        &mut self,
        executor: &'a Executor,
        send: fn(&reqwest::Client, reqwest::Request) -> F,
        mut phase: Pin<&mut Phase<F>>,
        mut timer: Pin<&mut Timer>,
        hooked: Option<HeaderMap>,
    ) -> Result<(), Error> {
        let prepared = self.prepared.as_mut().expect("prepared before any attempt");
        let mut limit = prepared.limit(self.retry == 0);
        if hooked.is_some() {
            // The hook ran on the attempt's clock (see `begin`): the request gets what is left,
            // when that is less, and the hook's limit is the attempt's.
            if let Some(left) = timer.as_mut().left()
                && left < limit.time
            {
                limit.time = left;
                limit.by_deadline = self.by_deadline;
            }
            // A request the hook left less than half the attempt timeout says too little of
            // the target when it times out: the caller's own work took the time, as a deadline
            // would have (a hook overrunning all of it ends the call unsent, counting for
            // nothing). A hook quicker than that (a token fetched over the network) leaves the
            // request enough of the attempt timeout that a hung target still trips the breaker.
            let attempt = prepared.attempt_timeout;
            if limit.time < attempt / 2 {
                limit.by_deadline = true;
            }
            limit.reported = self.limit_reported;
        }
        if limit.time.is_zero() {
            // Nothing is left of the deadline (the header hook took the last of it): nothing
            // is sent, where a request would arrive already out of time.
            return Err(Error::timeout(
                &self.call.method,
                &prepared.url,
                limit.reported,
            ));
        }
        // The first attempt's trace was begun by `prepare`, its context already among the
        // call's headers; a retry's (begun before its hook, or now) writes its context over
        // them.
        let trace = prepared
            .trace
            .take()
            .unwrap_or_else(|| retry_trace(executor, &self.call, &prepared.url, self.retry));
        let retrace = (self.retry > 0).then_some(&trace);
        let request = match executor.request(&self.call, prepared, retrace, hooked) {
            Ok(request) => request,
            Err(e) => {
                trace.abandon(crate::telemetry::error_type(&e));
                return Err(e);
            }
        };
        // Counted once it is sent: the span's attempts and status are those of requests made.
        self.stats.attempts = self.retry + 1;
        if let Some(permit) = &mut self.permit {
            permit.sending();
        }
        self.withdrawn.made();
        if self.retry > 0 {
            crate::telemetry::retried(&executor.inner.target, &self.call.method);
        }
        self.trace = Some(trace);
        phase.set(Phase::Sending {
            sent: send(&executor.inner.http, request),
            awaited: false,
        });
        self.held_to(limit);
        timer.arm(limit.time);
        Ok(())
    }

    /// Records an attempt whose 2xx head is handed over, its body still to come: the head is
    /// the attempt's success, for its span and the breaker, and the call's.
    fn head_over<M: Mode>(&mut self, executor: &'a Executor, head: M::Head) -> M::Output {
        let status = M::status(&head);
        if let Some(trace) = self.trace.take() {
            trace.end(&executor.inner.target, Some(status), None);
        }
        if let Some(permit) = self.permit.take() {
            permit.record(Outcome::of_status(status).is_failure());
        }
        self.stats.status = Some(status);
        let prepared = self.prepared.take().expect("prepared");
        let request = (self.call.method.clone(), prepared.url, prepared.deadline);
        M::streamed(head, request, executor.inner.max_response_bytes)
    }

    /// Records how an attempt ended and decides what follows: the call's result, or `None`
    /// when another attempt follows after a wait (the timer is set for it).
    fn attempt_over<M: Mode>(
        &mut self,
        executor: &'a Executor,
        (attempt, timer_fired): (Attempt, bool),
        timer: Pin<&mut Timer>,
    ) -> Option<Result<M::Output, Error>> {
        // A 504 that comes back once the deadline it was told of has run out is the hop behind
        // giving up where the timer would have (the deadline it inherited ended with this
        // one's): taken as this attempt's timeout, whichever the runtime noticed first, so a
        // hurried caller neither counts it against the breaker nor sees another error.
        let (attempt, timer_fired, answered) = match attempt {
            Attempt::Response(StatusCode::GATEWAY_TIMEOUT, ..)
                if self.by_deadline
                    && self
                        .prepared
                        .as_ref()
                        .is_some_and(Prepared::deadline_told_spent) =>
            {
                (Attempt::Timeout, true, Some(StatusCode::GATEWAY_TIMEOUT))
            }
            attempt => (attempt, timer_fired, None),
        };
        let outcome = attempt.outcome();
        let head = self.stats.head.take();
        if let Some(trace) = self.trace.take() {
            let (status, error_type) = attempt.traced();
            // A 504 taken for the timeout was received all the same, and so was the head of a
            // body that then failed: its span keeps the code.
            trace.end(
                &executor.inner.target,
                answered.or(status).or(head),
                error_type,
            );
        }
        if let Some(permit) = self.permit.take() {
            // A timeout at the call's deadline (its own or one it inherited), when that came
            // before the attempt timeout, is the caller running out of time, not the target
            // failing: a hurried caller must not open the breaker for the others. (A timeout
            // of the reqwest client's own is the target's, whatever the deadline.)
            match timer_fired && self.by_deadline {
                true => permit.no_verdict(),
                false => permit.record(outcome.is_failure()),
            }
        }
        // The last attempt's status: none when it got no response, whatever earlier ones got;
        // the head's when its body failed, or when it was a 504 taken for the timeout.
        self.stats.status = match &attempt {
            Attempt::Response(status, ..) | Attempt::TooLarge(status, _) => Some(*status),
            _ => answered.or(head),
        };
        let attempt = match attempt {
            Attempt::Response(status, headers, bytes) if status.is_success() => {
                let prepared = self.prepared.take().expect("prepared");
                let request = (self.call.method.clone(), prepared.url, prepared.deadline);
                let limit = executor.inner.max_response_bytes;
                return Some(Ok(M::whole(status, headers, bytes, request, limit)));
            }
            failed => failed,
        };
        let prepared = self.prepared.as_ref().expect("prepared");
        let err = executor.failure(attempt, &self.call, prepared, self.limit_reported);
        match executor.retry_wait(err, outcome, self.retry, prepared) {
            Ok((err, wait)) => {
                self.withdrawn = Withdrawn(executor.inner.budget.as_ref());
                self.retry += 1;
                let retry = self.retry;
                tracing::warn!(
                    target: TARGET,
                    service = %executor.inner.name,
                    retry,
                    wait_ms = wait.as_millis() as u64,
                    error = %crate::error::WithSources(&err),
                    "retrying"
                );
                self.last_error = Some(Box::new(err));
                timer.arm(wait);
                None
            }
            Err(err) => Some(Err(err)),
        }
    }

    /// Ends the call: what its span reports, and the result.
    fn finish<F, T>(
        &mut self,
        span: &tracing::Span,
        mut phase: Pin<&mut Phase<F>>,
        result: Result<T, Error>,
    ) -> Poll<Result<T, Error>> {
        phase.set(Phase::Done);
        // A probe's permit that ended the call unsent (its header hook failed, say) gives its
        // place back now, not when the future is dropped; so does a retry's budget token.
        self.permit = None;
        self.withdrawn = Withdrawn::default();
        // An attempt begun but never sent (its header hook failed): its span ends with the
        // call's error.
        if let Some(trace) = self.prepared.as_mut().and_then(|p| p.trace.take()) {
            trace.abandon(result.as_ref().err().and_then(crate::telemetry::error_type));
        }
        // As `i64`: tracing-opentelemetry exports an unsigned field as text, which a backend
        // cannot compare (`attempts > 1`).
        if self.stats.attempts > 0 {
            span.record("attempts", i64::from(self.stats.attempts));
        }
        if let Some(status) = self.stats.status {
            span.record("status", i64::from(status.as_u16()));
        }
        crate::telemetry::call_ended(span, result.as_ref().err());
        match &result {
            Ok(_) => tracing::debug!(target: TARGET, "call succeeded"),
            Err(e) => tracing::debug!(target: TARGET, error = %e, "call failed"),
        }
        Poll::Ready(result)
    }
}
