//! Per-call overrides: [`CallOptions`], applied through [`Executor::with`] or a generated
//! client's `with`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use crate::Error;
#[cfg(doc)]
use crate::Executor;

/// Settings that override a client's for the calls made through a view of it:
/// `client.with(CallOptions::new().timeout(..))` (a generated client) or
/// [`Executor::with`]. The view is cheap (it shares the client's pool, budget and breaker)
/// and the generated methods work on it unchanged.
///
/// ```no_run
/// # async fn run(users: comms::Executor) -> Result<(), comms::Error> {
/// use std::time::Duration;
/// use comms::{Call, CallOptions};
///
/// let urgent = users.with(
///     CallOptions::new()
///         .timeout(Duration::from_millis(200))
///         .deadline(Duration::from_millis(500))
///         .header("x-tenant", "acme"),
/// );
/// urgent.execute(Call::get("/users").segment(7)).await?;
/// # Ok(()) }
/// ```
///
/// What wins where two settings meet:
/// - `timeout` replaces the attempt timeout, the method's own `timeout_ms` included: it is
///   the caller's choice for this call;
/// - `deadline` replaces the client's deadline; inside a served request the call is still
///   bounded by what is left of the deadline the request arrived with;
/// - a `header` is sent on every call that does not set it itself (a method's `#[header]`
///   argument wins), over a default header of the same name, and is covered by the signature.
///
/// A header that is not valid, that comms writes itself (the signature's, framing, `Host`),
/// that belongs to one call (`Idempotency-Key`, `Comms-Deadline-Ms`, `traceparent`,
/// `tracestate`) or that is hop-by-hop (`Connection`, `TE`, `Upgrade`, ...), makes every call
/// through the view fail with [`Error::Config`], unsent.
#[derive(Clone, Default)]
#[must_use]
pub struct CallOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) headers: HeaderMap,
    /// Why a header was refused; reported by every call.
    pub(crate) error: Option<Arc<str>>,
}

impl fmt::Debug for CallOptions {
    /// Header values are not shown: they are often credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOptions")
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field("headers", &crate::header_map::HeaderNames(&self.headers))
            .finish_non_exhaustive()
    }
}

impl CallOptions {
    /// No overrides.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// The timeout of each attempt. More than zero: a call whose attempt timeout is zero
    /// would end every attempt before its request was sent, and count each against the
    /// target's breaker, so it fails with [`Error::Config`] instead, unsent.
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// A deadline for each whole call, all attempts and waits included.
    pub fn deadline(mut self, deadline: Duration) -> CallOptions {
        self.deadline = Some(deadline);
        self
    }

    /// A header sent on every call that does not set it itself. A signed header occurs once,
    /// so setting a name again replaces its value. A `Content-Type` replaces the one a JSON or
    /// raw body implies (`application/json` for a `#[body]`), but not one the call sets, nor a
    /// form's or multipart body's own.
    pub fn header(mut self, name: &str, value: impl fmt::Display) -> CallOptions {
        use crate::header_map::{Refusal, checked};
        match checked(name, value.to_string(), crate::signing::is_call_owned) {
            Ok((name, value)) => {
                self.headers.insert(name, value);
            }
            Err(Refusal::Refused(name)) => self.refuse(format!(
                "`{name}` is set by comms itself, belongs to one call or is hop-by-hop"
            )),
            Err(Refusal::Name) => self.refuse(format!("`{name}` is not a valid header name")),
            Err(Refusal::Value(name, why)) => self.refuse(format!("the value of `{name}` {why}")),
        }
        self
    }

    fn refuse(&mut self, why: String) {
        self.error.get_or_insert_with(|| why.into());
    }

    /// `self` laid over `base`: a setting of `self` wins.
    pub(crate) fn over(mut self, base: &CallOptions) -> CallOptions {
        self.timeout = self.timeout.or(base.timeout);
        self.deadline = self.deadline.or(base.deadline);
        self.error = self.error.or_else(|| base.error.clone());
        self.headers = crate::header_map::laid_over(&base.headers, &self.headers);
        self
    }

    /// The error every call through a view with these options fails with, if a header was
    /// refused.
    pub(crate) fn refusal(&self) -> Option<Error> {
        self.error
            .as_ref()
            .map(|why| Error::config("CallOptions::header", why.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_view_wins_and_keeps_the_rest() {
        let base = CallOptions::new()
            .timeout(Duration::from_secs(1))
            .header("x-a", "1")
            .header("x-b", "1");
        let top = CallOptions::new()
            .deadline(Duration::from_secs(2))
            .header("x-b", "2")
            .header("x-b", "3")
            .over(&base);
        assert_eq!(top.timeout, Some(Duration::from_secs(1)));
        assert_eq!(top.deadline, Some(Duration::from_secs(2)));
        assert_eq!(top.headers["x-a"], "1");
        let b: Vec<_> = top.headers.get_all("x-b").iter().collect();
        assert_eq!(
            b,
            ["3"],
            "a name set again is replaced: a signed header occurs once"
        );
        assert!(top.refusal().is_none());
    }

    #[test]
    fn reserved_and_invalid_headers_are_refused_and_values_are_not_shown() {
        for (name, value) in [
            ("signature", "x"),
            ("host", "x"),
            ("content-length", "1"),
            ("bad name", "x"),
            ("idempotency-key", "k"),
            ("traceparent", "00-x"),
            ("connection", "close"),
            ("x-ok", "line\nbreak"),
        ] {
            let options = CallOptions::new().header(name, value);
            let err = options.refusal().expect(name);
            assert!(matches!(err, Error::Config { .. }), "{err}");
        }
        let shown = format!(
            "{:?}",
            CallOptions::new().header("authorization", "Bearer tok")
        );
        assert!(
            shown.contains("authorization") && !shown.contains("tok"),
            "{shown}"
        );
    }
}
