//! `comms::server::serve`: a generated server reached through it, and its limits on heads,
//! connections and shutdown, tried with raw TCP clients.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// Binds a loopback listener and gives it to `configure`'s server, spawned.
async fn start(
    router: impl Into<axum::Router>,
    configure: impl FnOnce(comms::server::Serve) -> comms::server::Serve,
) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = configure(comms::server::serve(listener, router));
    let addr = server.local_addr().unwrap();
    (addr, tokio::spawn(server.into_future()))
}

/// [`start`], `configure`d, and stopped gracefully when the sender it returns is sent to.
async fn start_stoppable(
    router: impl Into<axum::Router>,
    configure: impl FnOnce(comms::server::Serve) -> comms::server::Serve,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = start(router, |s| {
        configure(s).with_graceful_shutdown(async {
            stopped.await.ok();
        })
    })
    .await;
    (addr, server, stop)
}

/// Waits (at most 5 s) for a server's future to end, and for it to have ended well.
async fn ended(server: tokio::task::JoinHandle<std::io::Result<()>>) {
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server ends")
        .unwrap()
        .unwrap();
}

fn slow_router() -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                "slow"
            }),
        )
        .route("/big", axum::routing::get(|| async { vec![b'x'; BIG] }))
        .route(
            "/never",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .route("/echo", axum::routing::get(upgrade_to_echo))
        .route(
            "/peer",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                peer.to_string()
            }),
        )
}

/// A large answer: more than the socket buffers on both sides of a loopback connection hold
/// (4 MiB each at Linux's defaults), so that a client reading none of it stalls its writes.
const BIG: usize = 64 * 1024 * 1024;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const GET_AND_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Answers 101 and echoes what the upgraded connection sends until it closes.
async fn upgrade_to_echo(mut request: axum::extract::Request) -> axum::response::Response {
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = io.read(&mut buf).await {
            if io.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    axum::response::Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(axum::body::Body::empty())
        .unwrap()
}

/// What `stream` receives until it closes or `wait` passes: the bytes, and whether it closed.
async fn read_for(stream: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

/// One whole answer `stream` receives: its head, then as many body bytes as its
/// `Content-Length` says (none without one), or what came before the connection closed.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n @ 1..)) => got.extend_from_slice(&buf[..n]),
            _ => return text,
        }
    }
}

#[tokio::test]
async fn a_generated_server_is_reached_through_it_and_handlers_see_the_peer() {
    let service = DirectoryImpl::default();
    let server =
        DirectoryServer::new(service.clone()).verifier(Verifier::new().service("billing", SECRET));
    // A generated server is served as it is, or merged into a router first.
    let (addr, _server) = start(server.clone(), |s| s).await;
    let client = client_of(&format!("http://{addr}"), SECRET, RetryConfig::none());
    assert_eq!(client.get_user(7).await.unwrap().id, 7);
    let (addr, _server) = start(server.into_router().merge(slow_router()), |s| s).await;
    let client = client_of(&format!("http://{addr}"), SECRET, RetryConfig::none());
    assert_eq!(
        client.whoami().await.unwrap(),
        ["billing", "billing", "rfc9421"]
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream
        .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_for(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(&local.to_string()), "{answer}");
}

/// A head sent a piece at a time, never finished, has its connection closed at the header
/// timeout; so has a connection left idle after a request.
#[tokio::test]
async fn a_head_not_finished_in_time_and_an_idle_connection_are_closed() {
    let (addr, _server) = start(slow_router(), |s| {
        s.header_timeout(Duration::from_millis(300))
    })
    .await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    slow.write_all(b"Host: x\r\n").await.unwrap();
    let (answer, closed) = read_for(&mut slow, Duration::from_secs(5)).await;
    assert!(closed && answer.is_empty(), "{closed} {answer:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "closed after {took:?}");

    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(GET).await.unwrap();
    let answer = read_answer(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (more, closed) = read_for(&mut idle, Duration::from_secs(5)).await;
    assert!(closed && more.is_empty(), "{closed} {more:?}");
}

/// With `holder` taking the server's one place, a new connection (connected: the kernel's
/// backlog takes it) asks and is not answered; once `holder` closes, it is.
async fn waits_for_the_place_of(addr: SocketAddr, holder: TcpStream) {
    let mut next = TcpStream::connect(addr).await.unwrap();
    next.write_all(GET_AND_CLOSE).await.unwrap();
    served_once_closed(&mut next, holder, Duration::from_millis(300)).await;
}

/// `next`, which has asked while `holder` takes the place it needs, is neither answered nor
/// closed within `wait`; once `holder` closes, it is answered.
async fn served_once_closed(next: &mut TcpStream, holder: TcpStream, wait: Duration) {
    let (answer, closed) = read_for(next, wait).await;
    assert!(answer.is_empty() && !closed, "{closed} {answer:?}");
    drop(holder);
    let answer = read_answer(next).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A new connection's request, answered with a 200 within `limit`: a place was made for it.
async fn served_within(addr: SocketAddr, limit: Duration) {
    let started = Instant::now();
    let mut next = TcpStream::connect(addr).await.unwrap();
    next.write_all(GET).await.unwrap();
    let answer = read_answer(&mut next).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let took = started.elapsed();
    assert!(took < limit, "the new connection waited {took:?}");
}

/// `stream`, which asked for the `echo` upgrade, is answered 101 and then echoes what it is
/// sent.
async fn echoes_once_upgraded(stream: &mut TcpStream) {
    let answer = read_answer(stream).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
}

/// A router answering `/peer`, GET or POST, with the address the request came from: which
/// connection a comms client's call went over.
fn peer_router() -> axum::Router {
    let peer = |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() };
    axum::Router::new().route("/peer", axum::routing::get(peer).post(peer))
}

/// A comms client of the server at `addr` that neither retries nor breaks: each call is one
/// attempt, whose failure shows.
fn single_attempt_client(addr: SocketAddr) -> comms::Executor {
    comms_tests::executor_with(
        &format!("http://{addr}"),
        "billing",
        SECRET,
        RetryConfig::none(),
        BreakerConfig::disabled(),
    )
}

/// Beyond the connection limit a connection is not served until one closes.
#[tokio::test]
async fn a_connection_beyond_the_limit_waits_for_one_to_close() {
    let (addr, _server) = start(slow_router(), |s| s.max_connections(1)).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(GET).await.unwrap();
    let answer = read_answer(&mut first).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    waits_for_the_place_of(addr, first).await;
}

#[tokio::test]
async fn a_head_over_the_limit_is_431() {
    let (addr, _server) = start(slow_router(), |s| s.max_head_bytes(16 * 1024)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    stream.write_all(big.as_bytes()).await.unwrap();
    let (answer, closed) = read_for(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(closed);

    // A head under it is served.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let fits = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    stream.write_all(fits.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The default limit holds to the byte, for a head that arrives in one piece: hyper's read
/// buffer alone would take in one read well past its maximum, and serve a head that ended
/// within it.
#[tokio::test]
async fn a_head_one_byte_over_the_default_limit_is_431_in_one_piece() {
    let (addr, _server) = start(slow_router(), |s| s).await;
    let head = |len: usize| {
        let start = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ";
        let end = "\r\n\r\n";
        format!("{start}{}{end}", "a".repeat(len - start.len() - end.len()))
    };
    let limit = comms::server::DEFAULT_MAX_HEAD_BYTES;
    assert_eq!(limit, 80 * 1024);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head(limit + 1).as_bytes()).await.unwrap();
    let (answer, closed) = read_for(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(closed);

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head(limit).as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The longest URL a comms client sends (what `http::Uri` holds, 65,534 bytes; a longer one is
/// an `Error::Encode`, unsent) reaches a server under the default head limit, signed.
#[tokio::test]
async fn the_longest_url_a_client_sends_is_served_under_the_default_limit() {
    let router = axum::Router::new().route(
        "/q",
        axum::routing::get(|uri: axum::http::Uri| async move {
            uri.query().unwrap_or_default().len().to_string()
        }),
    );
    let (addr, _server) = start(router, |s| s).await;
    let client = single_attempt_client(addr);
    let url_len = |query: usize| format!("http://{addr}/q?q=").len() + query;
    let longest = u16::MAX as usize - 1 - url_len(0);
    let response = client
        .execute(Call::get("/q").query("q", "q".repeat(longest)))
        .await
        .unwrap();
    assert_eq!(response.text().unwrap(), (longest + 2).to_string());
    let refused = client
        .execute(Call::get("/q").query("q", "q".repeat(longest + 1)))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Encode { .. }), "{refused:?}");
    assert_eq!(url_len(longest), 65_534);
}

/// A connection that holds its place without use (here it sent one byte of a head) is closed
/// to make way for a new one once it has had a second to send its request, not at the header
/// timeout.
#[tokio::test]
async fn a_connection_holding_its_place_unused_makes_way_for_a_new_one() {
    let (addr, _server) = start(slow_router(), |s| {
        s.max_connections(1).header_timeout(Duration::from_secs(10))
    })
    .await;
    let mut holder = TcpStream::connect(addr).await.unwrap();
    holder.write_all(b"G").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    served_within(addr, Duration::from_secs(3)).await;
    let (_, closed) = read_for(&mut holder, Duration::from_secs(1)).await;
    assert!(closed);
}

/// Of the connections at the limit, those of callers (answered) are kept; those holding a
/// place without use, older or younger, make way.
#[tokio::test]
async fn a_callers_connection_is_kept_and_unused_ones_make_way() {
    let (addr, _server) = start(slow_router(), |s| {
        s.max_connections(3).header_timeout(Duration::from_secs(10))
    })
    .await;
    let mut caller = TcpStream::connect(addr).await.unwrap();
    caller.write_all(GET).await.unwrap();
    assert!(read_answer(&mut caller).await.starts_with("HTTP/1.1 200"));
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut holder = TcpStream::connect(addr).await.unwrap();
        holder.write_all(b"G").await.unwrap();
        holders.push(holder);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = TcpStream::connect(addr).await.unwrap();
    next.write_all(GET).await.unwrap();
    assert!(read_answer(&mut next).await.starts_with("HTTP/1.1 200"));
    let (_, holder_closed) = read_for(&mut holders[0], Duration::from_secs(1)).await;
    assert!(holder_closed);
    // The caller's connection still serves it.
    caller.write_all(GET).await.unwrap();
    assert!(read_answer(&mut caller).await.starts_with("HTTP/1.1 200"));
}

/// A connection kept alive with requests refused at their heads (a 4xx each) holds its place
/// without use, and makes way.
#[tokio::test]
async fn a_connection_kept_alive_with_refused_requests_makes_way() {
    let router = slow_router().route(
        "/refused",
        axum::routing::get(|| async { axum::http::StatusCode::UNAUTHORIZED }),
    );
    let (addr, _server) = start(router, |s| s.max_connections(1)).await;
    let refused = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut answers = 0;
        while stream
            .write_all(b"GET /refused HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .is_ok()
        {
            let answer = read_answer(&mut stream).await;
            if !answer.starts_with("HTTP/1.1 401") {
                break;
            }
            answers += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        answers
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    served_within(addr, Duration::from_secs(3)).await;
    let answers = tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .unwrap()
        .unwrap();
    assert!(answers >= 1, "{answers}");
}

/// A caller's kept-alive connection is not closed under the request it is sending: the new
/// connection waits for a place instead.
#[tokio::test]
async fn a_callers_connection_is_not_closed_under_its_next_request() {
    let (addr, _server) = start(slow_router(), |s| s.max_connections(1)).await;
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(GET).await.unwrap();
    assert!(read_answer(&mut kept).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    kept.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let mut next = TcpStream::connect(addr).await.unwrap();
    next.write_all(GET).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    kept.write_all(b"Host: x\r\n\r\n").await.unwrap();
    let answer = read_answer(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    served_once_closed(&mut next, kept, Duration::from_millis(300)).await;
}

/// A verified caller's connection is kept whatever its answers' status: one answered only
/// with a 404 (a lookup that found nothing) is not closed to make way, since the caller's next
/// request may be on its way on it.
#[tokio::test]
async fn a_verified_callers_connection_answered_404_is_kept() {
    let router = axum::Router::new()
        .route(
            "/missing",
            axum::routing::get(|| async { axum::http::StatusCode::NOT_FOUND }),
        )
        .layer(comms::verify::VerifyLayer::new(
            Verifier::new().service("billing", SECRET),
        ));
    let (addr, _server) = start(router, |s| s.max_connections(1)).await;
    let executor = comms_tests::plain_executor(&format!("http://{addr}"), "billing", SECRET);
    let err = executor.execute(Call::get("/missing")).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404), "{err}");
    let mut next = TcpStream::connect(addr).await.unwrap();
    next.write_all(GET).await.unwrap();
    let (answer, closed) = read_for(&mut next, Duration::from_millis(2500)).await;
    assert!(answer.is_empty() && !closed, "{closed} {answer:?}");
    let err = executor.execute(Call::get("/missing")).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404), "{err}");
}

/// A connection answering its first request has it in flight, and is not closed to make way,
/// however long the answer takes.
#[tokio::test]
async fn a_connection_answering_its_first_request_is_not_closed_to_make_way() {
    let (addr, _server) = start(slow_router(), |s| s.max_connections(1)).await;
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = TcpStream::connect(addr).await.unwrap();
    next.write_all(GET).await.unwrap();
    let (answer, closed) = read_for(&mut busy, Duration::from_millis(2500)).await;
    assert!(answer.is_empty() && !closed, "{closed} {answer:?}");
    served_once_closed(&mut next, busy, Duration::from_millis(100)).await;
}

/// A client opening connections at the limit, over and over, makes no call of a comms
/// client's fail: its connections are in use, and are not closed under it.
#[tokio::test]
async fn a_client_churning_connections_fails_no_callers_post() {
    let (addr, _server) = start(peer_router(), |s| s.max_connections(8)).await;
    let executor = single_attempt_client(addr);
    let churn = tokio::spawn(async move {
        let mut held = std::collections::VecDeque::new();
        loop {
            if let Ok(stream) = TcpStream::connect(addr).await {
                held.push_back(stream);
                if held.len() > 64 {
                    held.pop_front();
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let (mut ok, mut failed) = (0, Vec::new());
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        match executor.execute(Call::post("/peer")).await {
            Ok(_) => ok += 1,
            Err(e) => failed.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    churn.abort();
    assert!(
        failed.is_empty(),
        "{ok} ok, {} failed: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(ok > 0);
}

/// A connection whose upgrade is being answered when a new one arrives upgrades, and keeps
/// its place.
#[tokio::test]
async fn a_connection_upgrading_at_the_limit_still_upgrades() {
    let router = slow_router().route(
        "/slow-echo",
        axum::routing::get(|request: axum::extract::Request| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            upgrade_to_echo(request).await
        }),
    );
    let (addr, _server) = start(router, |s| s.max_connections(1)).await;
    let mut up = TcpStream::connect(addr).await.unwrap();
    up.write_all(
        b"GET /slow-echo HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = TcpStream::connect(addr).await.unwrap();
    next.write_all(GET_AND_CLOSE).await.unwrap();
    echoes_once_upgraded(&mut up).await;
    served_once_closed(&mut next, up, Duration::from_millis(1500)).await;
}

/// The server's graceful shutdown while a new connection waits for a place behind a request
/// that does not end: the server still ends by its shutdown timeout, and closes the new one.
#[tokio::test]
async fn a_shutdown_while_a_new_connection_waits_for_a_place_ends_in_time() {
    let (addr, server, stop) = start_stoppable(slow_router(), |s| {
        s.max_connections(1)
            .shutdown_timeout(Duration::from_millis(500))
    })
    .await;
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = TcpStream::connect(addr).await.unwrap();
    next.write_all(GET).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.send(()).unwrap();
    let started = Instant::now();
    ended(server).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let (answer, closed) = read_for(&mut next, Duration::from_secs(2)).await;
    assert!(closed && answer.is_empty(), "{closed} {answer:?}");
}

/// At the shutdown signal a request in flight is answered, an idle connection closed, no new
/// connection taken, and the server's future ends once the last connection has.
#[tokio::test]
async fn a_graceful_shutdown_answers_what_is_in_flight_then_ends() {
    let (addr, server, stop) = start_stoppable(slow_router(), |s| s).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(GET).await.unwrap();
    let answer = read_answer(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();

    let (answer, closed) = read_for(&mut idle, Duration::from_secs(5)).await;
    assert!(closed && answer.is_empty(), "{closed} {answer:?}");
    let (answer, closed) = read_for(&mut busy, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow"),
        "{answer}"
    );
    assert!(closed, "the connection closes once its request is answered");
    ended(server).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

/// A client that asks for a large answer and reads none of it is let go at the write
/// timeout, and its connection's place goes to the next.
#[tokio::test]
async fn a_client_reading_nothing_is_let_go_at_the_write_timeout() {
    let (addr, _server) = start(slow_router(), |s| {
        s.max_connections(1)
            .write_timeout(Duration::from_millis(300))
    })
    .await;
    let hog = tokio::net::TcpSocket::new_v4().unwrap();
    hog.set_recv_buffer_size(4096).unwrap();
    let mut hog = hog.connect(addr).await.unwrap();
    hog.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut next = TcpStream::connect(addr).await.unwrap();
    next.write_all(GET_AND_CLOSE).await.unwrap();
    let (answer, _) = read_for(&mut next, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    // The large answer was cut short: its connection closed before all of it came.
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(Ok(n @ 1..)) =
        tokio::time::timeout(Duration::from_secs(5), hog.read(&mut buf)).await
    {
        got += n;
    }
    assert!(got < BIG, "read {got} bytes");
}

/// An upgraded connection keeps its place under the limit until it closes.
#[tokio::test]
async fn an_upgraded_connection_counts_until_it_closes() {
    let (addr, _server) = start(slow_router(), |s| s.max_connections(1)).await;
    let mut upgraded = TcpStream::connect(addr).await.unwrap();
    upgraded
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    echoes_once_upgraded(&mut upgraded).await;

    waits_for_the_place_of(addr, upgraded).await;
}

/// A request still in flight at the shutdown timeout has its connection closed, and the
/// server ends then rather than when the handler would have answered.
#[tokio::test]
async fn a_shutdown_waits_no_longer_than_its_timeout() {
    let (addr, server, stop) = start_stoppable(slow_router(), |s| {
        s.shutdown_timeout(Duration::from_millis(300))
    })
    .await;
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    stop.send(()).unwrap();
    ended(server).await;
    assert!(signalled.elapsed() >= Duration::from_millis(300));
    let (answer, closed) = read_for(&mut waiting, Duration::from_secs(5)).await;
    assert!(closed && answer.is_empty(), "{closed} {answer:?}");
}

/// A method marked `idempotent` whose caller hung up runs on in a task of its own: a graceful
/// shutdown waits for it to end, as for a request in flight, where the runtime stopping after
/// the server's future would cut it off part way.
#[tokio::test]
async fn a_graceful_shutdown_waits_for_an_idempotent_method_its_caller_left() {
    let service = DirectoryImpl::default();
    let server =
        DirectoryServer::new(service.clone()).verifier(Verifier::new().service("billing", SECRET));
    let (addr, server, stop) = start_stoppable(server, |s| s).await;
    let client = DirectoryClient::builder()
        .base_url(format!("http://{addr}"))
        .secret(SECRET)
        .timeout(Duration::from_millis(100))
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    // `slow` takes 500 ms: the call times out at 100 ms and drops its connection.
    let err = client.order("slow").await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The server sees the connection closed, and its request dropped, before the signal.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    ended(server).await;
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        service.finished.load(Ordering::SeqCst),
        1,
        "the server's future ended before the method did"
    );
}

/// A key whose answer the store failed to keep is asked again, and a graceful shutdown waits
/// for that too: ended with the request, the process would leave the key claimed until the
/// store let it lapse, and each retry would be told it is still running.
#[tokio::test]
async fn a_graceful_shutdown_waits_for_a_key_its_store_is_asked_again_to_keep() {
    let store = WatchedStore {
        failing_finishes: AtomicUsize::new(1),
        ..WatchedStore::default()
    };
    let kept = Arc::clone(&store.kept);
    let server = DirectoryServer::new(DirectoryImpl::default())
        .verifier(Verifier::new().service("billing", SECRET))
        .idempotency_store(store);
    let (addr, server, stop) = start_stoppable(server, |s| s).await;
    let client = client_of(&format!("http://{addr}"), SECRET, RetryConfig::none());
    assert_eq!(client.order("book").await.unwrap(), 1);
    stop.send(()).unwrap();
    ended(server).await;
    assert_eq!(
        kept.load(Ordering::SeqCst),
        1,
        "the server's future ended before the answer was kept"
    );
}

/// ... but no longer than its shutdown timeout.
#[tokio::test]
async fn a_graceful_shutdown_waits_for_an_idempotent_method_no_longer_than_its_timeout() {
    let service = DirectoryImpl::default();
    let server =
        DirectoryServer::new(service.clone()).verifier(Verifier::new().service("billing", SECRET));
    let (addr, server, stop) =
        start_stoppable(server, |s| s.shutdown_timeout(Duration::from_millis(100))).await;
    let client = client_of(&format!("http://{addr}"), SECRET, RetryConfig::none());
    let call = tokio::spawn(async move { client.order("slow").await });
    while service.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    ended(server).await;
    assert_eq!(
        service.finished.load(Ordering::SeqCst),
        0,
        "the server waited past its shutdown timeout"
    );
    assert!(call.await.unwrap().is_err(), "its connection was closed");
}

/// Under both defaults, a comms client's shared pool gives up a connection left idle before the
/// server closes it: a POST sent after 21 s of quiet goes over a new connection, not one the
/// server is about to close (at 30 s), where it could be lost without a retry.
#[tokio::test]
async fn a_comms_client_gives_up_an_idle_connection_before_the_server_closes_it() {
    let (addr, _server) = start(peer_router(), |s| s).await;
    let executor = single_attempt_client(addr);
    let first = executor.execute(Call::get("/peer")).await.unwrap();
    // The pool reuses a connection while it is fresh. (A connection goes back to the pool
    // from a task of its own once its answer is read: a call made at once could find none.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = executor.execute(Call::get("/peer")).await.unwrap();
    assert_eq!(first.text().unwrap(), again.text().unwrap());
    tokio::time::sleep(Duration::from_secs(21)).await;
    let later = executor.execute(Call::post("/peer")).await.unwrap();
    assert_ne!(later.text().unwrap(), first.text().unwrap());
}
