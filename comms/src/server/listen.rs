//! Serving a router on a TCP listener with the limits a service reached from outside its own
//! fleet needs: [`serve`].

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower_service::Service;

/// How long a connection may take to send a request's head, and stay idle between requests,
/// unless [`Serve::header_timeout`] says otherwise.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How many connections are served at once, unless [`Serve::max_connections`] says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The largest request head (request line and header fields) taken, unless
/// [`Serve::max_head_bytes`] says otherwise.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `router` (an `axum::Router`, or a generated server, which converts into one) over
/// HTTP/1.1 on `listener` until the future returned fails or, with
/// [`with_graceful_shutdown`](Serve::with_graceful_shutdown), its signal comes and the requests
/// in flight are answered.
///
/// `axum::serve` sets no limit on a request's head: a client sending its head a byte a
/// minute, or opening connections and sending nothing, holds a connection (and a file
/// descriptor) for as long as it likes, and as many as it likes. A [`VerifyLayer`] or a
/// generated server checks a request once its head has arrived, so it cannot help there. This
/// server:
///
/// - closes a connection whose request head has not arrived whole within the header timeout
///   (30 s), which also bounds how long a connection stays open idle between requests;
/// - serves at most `max_connections` connections at once (4,096): beyond them, new
///   connections wait in the listener's backlog until one closes;
/// - answers a head over `max_head_bytes` (64 KiB) with a 431 and closes the connection.
///
/// A handler can read the peer's address with `ConnectInfo<SocketAddr>`, as under
/// `into_make_service_with_connect_info`.
///
/// The header timeout is shorter than the time a comms client keeps an idle connection in its
/// pool (60 s): a call made on a connection as the server closes it fails before anything was
/// sent, which a comms client retries for an idempotent method only. A service with callers
/// that keep idle connections longer gives them a longer timeout than their pools'.
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
        header_timeout: DEFAULT_HEADER_TIMEOUT,
        max_connections: DEFAULT_MAX_CONNECTIONS,
        max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
        signal: None,
    }
}

/// A router served on a listener, from [`serve`]: configure it, then `.await` it.
#[must_use = "a server serves nothing until it is awaited"]
pub struct Serve {
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    max_connections: usize,
    max_head_bytes: usize,
    signal: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("header_timeout", &self.header_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_head_bytes", &self.max_head_bytes)
            .field("graceful_shutdown", &self.signal.is_some())
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// How long a connection may take to send a request's head, counted from when the server
    /// starts waiting for it (so also how long a connection may stay idle between requests);
    /// 30 s by default. The connection is closed then, without an answer.
    pub fn header_timeout(mut self, timeout: Duration) -> Serve {
        self.header_timeout = timeout;
        self
    }

    /// How many connections are served at once (4,096 by default; at least 1). More wait in
    /// the listener's backlog, not yet accepted, until one closes.
    pub fn max_connections(mut self, limit: usize) -> Serve {
        self.max_connections = limit.max(1);
        self
    }

    /// The largest request head taken, request line and header fields (64 KiB by default; at
    /// least 8 KiB, hyper's least read buffer). A larger one is answered 431 and its connection
    /// closed.
    pub fn max_head_bytes(mut self, limit: usize) -> Serve {
        self.max_head_bytes = limit.max(8 * 1024);
        self
    }

    /// Stops when `signal` completes: no new connection is accepted, each open one is closed
    /// once the request it is serving (if any) is answered, and the server's future ends when
    /// all are closed.
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
            header_timeout,
            max_connections,
            max_head_bytes,
            signal,
        } = self;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(max_head_bytes)
            .max_header_size(max_head_bytes);
        let builder = Arc::new(builder);
        let permits = Arc::new(Semaphore::new(max_connections));
        // Dropped when the signal comes: each connection's task then shuts its connection down
        // gracefully. Each task holds a receiver of `open`, whose sender's `closed()` says when
        // the last has ended.
        let (stop, stopped) = watch::channel(());
        let (open, _) = watch::channel(());
        let mut signal = signal.unwrap_or_else(|| Box::pin(std::future::pending()));
        loop {
            let accepted = tokio::select! {
                accepted = accept(&listener, &permits) => accepted,
                () = &mut signal => break,
            };
            let (stream, peer, permit) = accepted;
            let service = Connection {
                router: router.clone(),
                peer,
            };
            let builder = builder.clone();
            let mut stopped = stopped.clone();
            let open = open.subscribe();
            tokio::spawn(async move {
                let connection =
                    builder.serve_connection(TokioIo::new(stream), service.into_hyper());
                let mut connection = std::pin::pin!(connection.with_upgrades());
                tokio::select! {
                    result = connection.as_mut() => report(result),
                    _ = stopped.changed() => {
                        connection.as_mut().graceful_shutdown();
                        report(connection.await);
                    }
                }
                drop((permit, open));
            });
        }
        drop(stop);
        drop(listener);
        open.closed().await;
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

/// The next connection, once a permit for it is free. An error accepting one (a connection
/// reset before it was accepted, or the process out of file descriptors) is logged and the
/// next one awaited, after a pause when it is not the connection's own.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> (TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit) {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Answers are written whole; waiting to coalesce them only adds latency.
                let _ = stream.set_nodelay(true);
                return (stream, peer, permit);
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not accept a connection; trying again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
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
            request.extensions_mut().insert(ConnectInfo(self.peer));
            // A router is always ready: `call` needs no `poll_ready` first.
            let mut router = self.router.clone();
            router.call(request)
        })
    }
}
