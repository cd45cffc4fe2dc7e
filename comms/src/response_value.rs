//! [`ResponseValue<T>`]: a decoded body together with the status and headers it came with.

use std::ops::{Deref, DerefMut};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

/// A method's decoded result with the response's status and headers, for APIs whose headers
/// carry meaning (pagination links, rate-limit counters, an `ETag`). A method declared as
/// returning `Result<ResponseValue<T>, Error>` gets `T` decoded as it would be alone, and
/// dereferences to it:
///
/// ```no_run
/// # use comms::{Error, ResponseValue, service_client};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # pub struct User { name: String }
/// # #[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
/// # pub trait Users {
/// #[get("/users")]
/// async fn list(&self, #[query] page: u32) -> Result<ResponseValue<Vec<User>>, Error>;
/// # }
/// # async fn run(users: UsersClient) -> Result<(), Error> {
///
/// let page = users.list(1).await?;
/// let next = page.headers().get("link");
/// for user in page.iter() { /* ... */ }   // Deref to Vec<User>
/// let users: Vec<User> = page.into_inner();
/// # Ok(())
/// # }
/// ```
///
/// `ResponseValue<()>` keeps the status and headers and ignores the body, which also suits a
/// `#[head]` method. On a generated server, a method returns one to choose its status and add
/// headers: `ResponseValue::new(user).with_status(StatusCode::CREATED)`, answered with `T` as
/// JSON (or no body for `()`). `ResponseValue::new(())` answers 200 with no body, where a
/// method returning `()` answers 204.
///
/// Its `Debug` shows the value and the headers' names, not their values (cookies, tokens).
#[derive(Clone)]
pub struct ResponseValue<T> {
    status: StatusCode,
    headers: HeaderMap,
    value: T,
    /// Whether it was received (its headers came with a connection), not made: a generated
    /// server leaves out the hop-by-hop ones.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    received: bool,
}

impl<T: std::fmt::Debug> std::fmt::Debug for ResponseValue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseValue")
            .field("status", &self.status)
            .field("headers", &crate::header_map::HeaderNames(&self.headers))
            .field("value", &self.value)
            .finish()
    }
}

impl<T> ResponseValue<T> {
    /// `value` with status 200 and no headers: what a server method starts its answer from.
    pub fn new(value: T) -> ResponseValue<T> {
        ResponseValue {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            value,
            received: false,
        }
    }

    /// `value` with the status and headers it came with.
    pub fn from_parts(status: StatusCode, headers: HeaderMap, value: T) -> ResponseValue<T> {
        ResponseValue {
            status,
            headers,
            value,
            received: false,
        }
    }

    /// A value decoded from a received response, with its status and headers.
    pub(crate) fn received(status: StatusCode, headers: HeaderMap, value: T) -> ResponseValue<T> {
        ResponseValue {
            received: true,
            ..ResponseValue::from_parts(status, headers, value)
        }
    }

    /// Whether it was decoded from a received response, rather than made.
    #[cfg(feature = "server")]
    pub(crate) fn was_received(&self) -> bool {
        self.received
    }

    /// The same value with `status`, a 2xx one: a server method reports a failure as
    /// `Err(Error)`, which its caller receives as that error. A status without a body (204,
    /// 205, 304) is answered without one, so its caller declares `ResponseValue<()>`, or
    /// `ResponseValue<Option<T>>`, which a generated client decodes as `None` from such an
    /// answer (a value other than `None` is not sent, and the server logs a warning).
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> ResponseValue<T> {
        self.status = status;
        self
    }

    /// The same value with a header added (a value already set for `name` is kept as well).
    ///
    /// A generated server answers with these headers, except those that frame a body, which
    /// it frames itself: `Transfer-Encoding`, and `Content-Length` but in the answer to a HEAD.
    /// Of a value received from another service, it also leaves out the hop-by-hop headers
    /// (`Connection` and those it names, `Keep-Alive`, `TE`, `Trailer`, `Upgrade`), which
    /// described the connection it came on: a method can answer with what it received as it
    /// is.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ResponseValue<T> {
        self.headers.append(name, value);
        self
    }

    /// The response's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The decoded value, without the status and headers.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The status, the headers and the value.
    pub fn into_parts(self) -> (StatusCode, HeaderMap, T) {
        (self.status, self.headers, self.value)
    }
}

impl<T> Deref for ResponseValue<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for ResponseValue<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}
