//! Serving a router on a TCP listener with the limits a service reached from outside its own
//! fleet needs: [`serve`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::Sleep;
use tower_service::Service;

/// How long a connection may take to send a request's head, and stay idle between requests,
/// unless [`Serve::header_timeout`] says otherwise.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write of a response may make no progress (its client reading none of it) before
/// the connection is closed, unless [`Serve::write_timeout`] says otherwise.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a graceful shutdown waits for the requests in flight before it closes their
/// connections, unless [`Serve::shutdown_timeout`] says otherwise.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// How many connections are served at once, unless [`Serve::max_connections`] says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The largest request head (request line and header fields) taken, unless
/// [`Serve::max_head_bytes`] says otherwise: 80 KiB, room for the longest URL a comms client
/// sends (64 KiB, what `http::Uri` holds) with its signature and other headers.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 80 * 1024;

/// Serves `router` (an `axum::Router`, or a generated server, which converts into one) over
/// HTTP/1.1 on `listener`: until the process ends or, with
/// [`with_graceful_shutdown`](Serve::with_graceful_shutdown), until its signal comes and the
/// requests in flight are answered. Its future never fails: an error accepting a connection
/// is logged and the next one awaited.
///
/// `axum::serve` sets no limit on how a client uses a connection: one sending its head a byte
/// a minute, opening connections and sending nothing, or asking for responses and reading none
/// of them, holds a connection (and a file descriptor) for as long as it likes, and as many as
/// it likes. A [`VerifyLayer`] or a generated server checks a request once its head has
/// arrived, so it cannot help there. This server:
///
/// - closes a connection whose request head has not arrived whole within the header timeout
///   (30 s), which also bounds how long a connection stays open idle between requests;
/// - closes a connection whose client reads nothing of a response for the write timeout
///   (30 s): a client that reads slowly is served, one that stops reading is not waited for;
/// - serves at most `max_connections` connections at once (4,096). At the limit, a new
///   connection is served in the place of one holding its place without use: open a second
///   or more, with nothing in flight, and answered, if at all, only with 4xx no signature
///   vouched for (it sent nothing, or part of a head, or only requests refused, as a client
///   without the secret can), which is closed. A caller's connection (a verified request
///   answered, whatever its status, any request answered other than with a 4xx, or one in
///   flight) is never closed for this, since its next request may be on its way; when all are
///   callers', a new connection waits, accepted, until one closes (the ones after it in the
///   listener's backlog). A client without the secret can still hold places through a route
///   that answers it with anything but a 4xx, or by keeping a request in flight on a route
///   with no time limit of its own. An upgraded connection (a WebSocket, handed to its
///   handler) counts until it closes;
/// - answers a head over `max_head_bytes` (80 KiB), or with over 100 header fields, with a 431
///   and closes the connection;
/// - on its shutdown signal, stops accepting, closes idle connections, lets each request in
///   flight finish for up to the shutdown timeout (30 s) and then closes its connection. It
///   waits as long for a generated server's methods marked `idempotent` whose callers hung up
///   (each runs to its end in a task of its own). Upgraded connections are their handlers' to
///   close.
///
/// Connections per client are limited by what stands in front of a service reached from
/// outside its fleet (a load balancer, a proxy, a firewall rule), not here.
///
/// A request's body is read at the pace its handler reads it: behind a [`VerifyLayer`] or in
/// a generated server, whole and within their body timeout (10 s); a handler without either
/// that reads a body needs a timeout of its own. A handler can read the peer's address with
/// `ConnectInfo<SocketAddr>`, as under `into_make_service_with_connect_info`.
///
/// The header timeout is longer than the time a comms client's shared pool keeps an idle
/// connection (20 s), so that the client gives a connection up before the server closes it. A
/// call made on a connection just as the server closes it could fail with
/// [`Error::Transport`](crate::Error::Transport) (a comms client retries it only when its method
/// is idempotent). A service whose callers keep idle connections longer than its timeout (a
/// client of their own, or another library's) sets a longer one.
///
/// ```no_run
/// use comms::verify::{Verifier, VerifyLayer};
///
/// # async fn run(stop: tokio::sync::oneshot::Receiver<()>) -> std::io::Result<()> {
/// let app: comms::axum::Router = comms::axum::Router::new()
///     .route("/health", comms::axum::routing::get(|| async { "ok" }))
///     .layer(VerifyLayer::new(Verifier::new().service("billing", "s3cr3t")));
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
/// comms::server::serve(listener, app)
///     // Or `tokio::signal::ctrl_c()`, with tokio's `signal` feature.
///     .with_graceful_shutdown(async {
///         stop.await.ok();
///     })
///     .await
/// # }
/// ```
///
/// [`VerifyLayer`]: crate::verify::VerifyLayer
pub fn serve(listener: TcpListener, router: impl Into<Router>) -> Serve {
    Serve {
        listener,
        router: router.into(),
        limits: Limits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
        },
        signal: None,
    }
}

/// A router served on a listener, from [`serve`]: configure it, then `.await` it.
#[must_use = "a server serves nothing until it is awaited"]
pub struct Serve {
    listener: TcpListener,
    router: Router,
    limits: Limits,
    signal: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// What a [`Serve`] allows a connection.
#[derive(Clone, Copy, Debug)]
struct Limits {
    header_timeout: Duration,
    write_timeout: Duration,
    shutdown_timeout: Duration,
    max_connections: usize,
    max_head_bytes: usize,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("limits", &self.limits)
            .field("graceful_shutdown", &self.signal.is_some())
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// How long a connection may take to send a request's head, counted from when the server
    /// starts waiting for it (so also how long a connection may stay idle between requests);
    /// 30 s by default. The connection is closed then, without an answer.
    pub fn header_timeout(mut self, timeout: Duration) -> Serve {
        self.limits.header_timeout = timeout;
        self
    }

    /// How long a write of a response may make no progress, its client reading none of it,
    /// before the connection is closed (30 s by default). Each write that goes through starts
    /// the wait afresh.
    pub fn write_timeout(mut self, timeout: Duration) -> Serve {
        self.limits.write_timeout = timeout;
        self
    }

    /// How long a graceful shutdown waits for each request in flight, from its signal, before
    /// closing the request's connection (30 s by default).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Serve {
        self.limits.shutdown_timeout = timeout;
        self
    }

    /// How many connections are served at once (4,096 by default; at least 1). At the limit a
    /// connection holding its place without use makes way for a new one (see [`serve`]);
    /// otherwise the new one waits in the listener's backlog until one closes.
    pub fn max_connections(mut self, limit: usize) -> Serve {
        self.limits.max_connections = limit.max(1);
        self
    }

    /// The largest request head taken, request line and header fields (80 KiB by default; at
    /// least 8 KiB, hyper's least read buffer). A larger one is answered 431 and its connection
    /// closed.
    pub fn max_head_bytes(mut self, limit: usize) -> Serve {
        self.limits.max_head_bytes = limit.max(8 * 1024);
        self
    }

    /// Stops when `signal` completes: no new connection is accepted, idle ones are closed, each
    /// one serving a request is closed once its answer is sent, or at the shutdown timeout, and
    /// the server's future ends when all are closed and every method marked `idempotent` whose
    /// caller left has ended (or at the shutdown timeout, with a warning).
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Serve
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.signal = Some(Box::pin(signal));
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    async fn run(self) -> io::Result<()> {
        let Serve {
            listener,
            router,
            limits,
            signal,
        } = self;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            // hyper answers 431 for a head over `max_header_size`, counted exactly once it is
            // parsed, and for one still unfinished when the read buffer is full. The buffer
            // alone is not the limit: one read may take in more than its maximum, and a head
            // that ends within that read would be served.
            .max_header_size(limits.max_head_bytes)
            .max_buf_size(limits.max_head_bytes);
        let builder = Arc::new(builder);
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let live = Arc::new(Mutex::new(Live::default()));
        // Dropped when the signal comes: each connection's task then shuts its connection down
        // gracefully. Each connection's service (its task's until it ends) holds a receiver of
        // `open`, whose sender's `closed()` says when the last has ended; so does each method
        // marked `idempotent` run in a task of its own (a `ShutdownHold` in its request's
        // extensions), which outlives a request its caller dropped.
        let (stop, stopped) = watch::channel(());
        let (open, opened) = watch::channel(());
        let mut signal = signal.unwrap_or_else(|| Box::pin(std::future::pending()));
        loop {
            let accepted = tokio::select! {
                accepted = accept(&listener, &permits, &live) => accepted,
                () = &mut signal => break,
            };
            let (stream, peer, permit) = accepted;
            let (listed, dropped) = Listed::new(&live);
            let service = Connection {
                router: router.clone(),
                peer,
                hold: ShutdownHold {
                    _open: opened.clone(),
                },
                state: listed.state.clone(),
            };
            let io = Guarded {
                stream,
                stall: None,
                stalled: false,
                write_timeout: limits.write_timeout,
                _permit: permit,
            };
            let builder = builder.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                // In the list of `Live` connections until the task ends.
                let listed = listed;
                let connection = builder.serve_connection(TokioIo::new(io), service.into_hyper());
                let mut connection = std::pin::pin!(connection.with_upgrades());
                let state = listed.state.clone();
                let make_way = async move {
                    // Asked first, and then only if nothing came in since it was chosen: a
                    // request that did is served, and its connection kept.
                    match dropped.await {
                        Ok(()) if state.in_flight.load(Ordering::Acquire) == 0 => {}
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    // Chosen to make way for a new connection (see `Live::make_way`): closed
                    // as it is, with nothing in flight.
                    () = make_way => tracing::debug!(
                        "a connection holding its place without use closed to make way for a new \
                         one"
                    ),
                    result = connection.as_mut() => report(result),
                    _ = stopped.changed() => {
                        connection.as_mut().graceful_shutdown();
                        match tokio::time::timeout(limits.shutdown_timeout, connection).await {
                            Ok(result) => report(result),
                            Err(_) => tracing::debug!(
                                "a request still in flight at the shutdown timeout; its \
                                 connection is closed"
                            ),
                        }
                    }
                }
            });
        }
        drop((stop, opened, listener));
        // Each connection is closed by the shutdown timeout; a method whose caller left may run
        // on, and is waited for as long.
        if tokio::time::timeout(limits.shutdown_timeout, open.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                running = open.receiver_count(),
                "methods marked `idempotent` still running at the shutdown timeout, their \
                 callers gone: they stop part way when the runtime does"
            );
        }
        Ok(())
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// The next connection, with a permit for it. At the limit, a connection that holds a place
/// without use is closed to make way (see [`Live::make_way`]), looked for again each second
/// until a place is free.
///
/// An error accepting a connection (one reset before it was accepted, or the process out of
/// file descriptors) is logged and the next one awaited, after a pause when it is not the
/// connection's own.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    live: &Mutex<Live>,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    let (stream, peer) = loop {
        match listener.accept().await {
            Ok(accepted) => break accepted,
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not accept a connection; trying again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    // Answers are written whole; waiting to coalesce them only adds latency.
    let _ = stream.set_nodelay(true);
    let permit = match permits.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => loop {
            Live::make_way(live);
            if let Ok(permit) =
                tokio::time::timeout(Duration::from_secs(1), permits.clone().acquire_owned()).await
            {
                break permit.expect("the semaphore is never closed");
            }
        },
    };
    (stream, peer, permit)
}

/// How long a connection is left to send its first request before it may be closed to make
/// way: a client sends one as soon as it has connected.
const UNUSED_AFTER: Duration = Duration::from_secs(1);

/// What a connection has done, as [`Live::make_way`] weighs it.
struct ConnectionState {
    opened: Instant,
    /// Requests being answered: from the head's arrival to the end of the answer's body.
    in_flight: AtomicUsize,
    /// Whether it is some caller's, in use: a request on it was verified (see
    /// [`CallerConnection`]), or answered other than with a 4xx.
    callers: AtomicBool,
}

impl ConnectionState {
    /// Marks the connection as some caller's, in use: never closed to make way.
    fn used_by_a_caller(&self) {
        self.callers.store(true, Ordering::Release);
    }
}

/// The connections being served, oldest first, each with what it has done and the sender
/// that closes it. An upgraded connection leaves the list (its task ends), keeping its place.
#[derive(Default)]
struct Live {
    next: u64,
    open: BTreeMap<u64, (Arc<ConnectionState>, oneshot::Sender<()>)>,
}

impl Live {
    /// Closes the oldest connection that holds its place without use: one open a second or
    /// more, with nothing in flight, that is not a caller's (see
    /// [`ConnectionState::callers`]): it sent nothing, or part of a head, or only requests
    /// refused. A caller's connection (answered, or answering) is never closed: closing one
    /// idle between requests would fail the request it may be sending on it. None such, the
    /// new connection waits for a place.
    fn make_way(live: &Mutex<Live>) {
        let mut list = live.lock().unwrap_or_else(PoisonError::into_inner);
        let unused = list.open.iter().find_map(|(id, (state, _))| {
            let idle = state.in_flight.load(Ordering::Acquire) == 0
                && !state.callers.load(Ordering::Acquire)
                && state.opened.elapsed() >= UNUSED_AFTER;
            idle.then_some(*id)
        });
        if let Some((_, close)) = unused.and_then(|id| list.open.remove(&id)) {
            let _ = close.send(());
        }
    }
}

/// A connection's place in [`Live`], given up when its task ends.
struct Listed {
    live: Arc<Mutex<Live>>,
    id: u64,
    state: Arc<ConnectionState>,
}

impl Listed {
    /// Lists a new connection, the youngest: its place, and what tells it to close.
    fn new(live: &Arc<Mutex<Live>>) -> (Listed, oneshot::Receiver<()>) {
        let (close, closed) = oneshot::channel();
        let state = Arc::new(ConnectionState {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            callers: AtomicBool::new(false),
        });
        let mut list = live.lock().unwrap_or_else(PoisonError::into_inner);
        let id = list.next;
        list.next += 1;
        list.open.insert(id, (state.clone(), close));
        let listed = Listed {
            live: live.clone(),
            id,
            state,
        };
        (listed, closed)
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open
            .remove(&self.id);
    }
}

/// The connection a request came on, in the request's extensions: a gate (`VerifyLayer`, a
/// generated server with a verifier) that admits the request as signed by a caller marks it as
/// the caller's, whatever the status it is then answered with (a lookup's 404 among them), so
/// that it is never closed to make way.
#[derive(Clone)]
pub(crate) struct CallerConnection(Arc<ConnectionState>);

impl CallerConnection {
    /// The request was verified: the connection is a caller's.
    pub(crate) fn vouched_for(&self) {
        self.0.used_by_a_caller();
    }
}

/// A request in flight on a connection, counted in its [`ConnectionState`] until dropped:
/// with the answer's body, once that is sent (or the request abandoned).
struct InFlight(Arc<ConnectionState>);

impl InFlight {
    fn new(state: &Arc<ConnectionState>) -> InFlight {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// An answer's body, holding its request's [`InFlight`] until it is dropped.
    struct Counted {
        #[pin]
        body: axum::body::Body,
        _in_flight: InFlight,
    }
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// An error of the connection being accepted, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// How a connection ended, when it was not as it should: at `DEBUG`, since clients that go
/// away or send a bad head are the server's daily weather.
fn report(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "a connection ended with an error");
    }
}

/// One connection's requests, handed to the router with the peer's address.
#[derive(Clone)]
struct Connection {
    router: Router,
    peer: SocketAddr,
    hold: ShutdownHold,
    state: Arc<ConnectionState>,
}

/// A hold on a graceful shutdown of [`serve`], in each request's extensions: a method marked
/// `idempotent`, run in a task of its own that outlives a request its caller dropped, keeps a
/// clone until it ends, and the server's future waits for it (up to the shutdown timeout).
#[derive(Clone)]
pub(crate) struct ShutdownHold {
    /// Held, never read: the server waits until every receiver is dropped.
    _open: watch::Receiver<()>,
}

impl Connection {
    fn into_hyper(
        self,
    ) -> impl hyper::service::Service<
        hyper::Request<Incoming>,
        Response = axum::response::Response,
        Error = Infallible,
        Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
    > {
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let in_flight = InFlight::new(&self.state);
            request.extensions_mut().insert(ConnectInfo(self.peer));
            request
                .extensions_mut()
                .insert(CallerConnection(self.state.clone()));
            request.extensions_mut().insert(self.hold.clone());
            // A router is always ready: `call` needs no `poll_ready` first.
            let mut router = self.router.clone();
            let answered = router.call(request);
            async move {
                let response = answered.await?;
                // A verified request marks its connection as it is admitted (see
                // `CallerConnection`); any other is a caller's once answered but with a 4xx.
                if !response.status().is_client_error() {
                    in_flight.0.used_by_a_caller();
                }
                Ok(response.map(|body| {
                    axum::body::Body::new(Counted {
                        body,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    }
}

/// A connection's socket, with the permit it holds (so that an upgraded connection, handed to
/// its handler, counts against the limit until it closes) and a timer on its writes: a write
/// or flush that makes no progress for the write timeout fails, and hyper closes the
/// connection.
struct Guarded {
    stream: TcpStream,
    /// Running since the last write or flush was left pending; made at the first stall.
    stall: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    write_timeout: Duration,
    _permit: OwnedSemaphorePermit,
}

impl Guarded {
    /// `write` (a write or a flush of the socket), failing once the socket has taken nothing
    /// for the write timeout.
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Poll::Ready(done) = write(Pin::new(&mut self.stream), cx) {
            self.stalled = false;
            return Poll::Ready(done);
        }
        let until = tokio::time::Instant::now() + self.write_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        if !self.stalled {
            self.stalled = true;
            stall.as_mut().reset(until);
        }
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of the response for the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .progress(cx, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .progress(cx, |stream, cx| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .progress(cx, |stream, cx| stream.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .progress(cx, |stream, cx| stream.poll_shutdown(cx))
    }
}
